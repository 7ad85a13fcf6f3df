//! An ad-hoc query: a compiled filter evaluated over a whole database, on every core.
//!
//! Each profile's document is rendered with only the members the filter names (the
//! projection a lookup with `?fields=` would show) and the filter is evaluated on it, so
//! a query means what the documents say. The profiles are split between the cores;
//! matches are put in creation order for paging. Every page counts the whole database
//! again (`total` is always current); saved segments will keep their members instead.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::Value as Json;
use ulid::Ulid;

use super::Compiled;
use super::eval::ColumnPlan;
use super::filter::FilterError;
use crate::document::{self, Context, Projection};
use crate::schema::Schema;
use crate::store::{Packed, ProfileStore, Slot};

/// What a query found: how many match, one page of them, and where the next starts.
#[derive(Debug)]
pub struct Found {
    /// Profiles matching, in the whole database.
    pub total: usize,
    /// The page, oldest first.
    pub page: Vec<Packed>,
    /// The last profile of the page, when more follow.
    pub next: Option<Ulid>,
}

/// The projection that shows what `compiled` reads.
pub fn projection(compiled: &Compiled, schema: &Schema) -> Result<Projection, FilterError> {
    Projection::from_paths(compiled.projection().iter().map(String::as_str), schema).map_err(|p| {
        FilterError {
            column: 1,
            message: p.detail,
        }
    })
}

/// Whether one profile matches: read from its bytes when the filter names only what
/// they hold, else from its projected document.
fn matches(
    compiled: &Compiled,
    view: &crate::store::ProfileView<'_>,
    schema: &Schema,
    projection: &Projection,
    cx: &Context<'_>,
) -> bool {
    if compiled.is_direct() {
        return compiled.matches_view(view);
    }
    let bytes = document::render_view(view, schema, Some(projection), cx);
    let doc: Json = serde_json::from_slice(&bytes).expect("documents are JSON");
    compiled.matches(&doc)
}

/// What to evaluate, and how much of the answer to give.
pub struct Ask<'a> {
    /// The filter.
    pub compiled: &'a Compiled,
    /// The projection `compiled` reads (for filters on derived members).
    pub projection: &'a Projection,
    /// The filter over field columns, when it reads only columned fields.
    pub plan: Option<&'a ColumnPlan>,
    /// The page starts after this profile.
    pub after: Option<Ulid>,
    /// The page size (0: count only).
    pub limit: usize,
    /// Threads to scan with.
    pub threads: usize,
    /// Give up past this instant.
    pub deadline: Option<Instant>,
}

/// The query ran past its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the query ran past its time budget")]
pub struct TimedOut;

/// Profiles between deadline checks.
const CHECK_EVERY: usize = 1 << 14;

/// Evaluates a filter on every profile of `store` and cuts the page after `ask.after`.
pub fn run(
    store: &ProfileStore,
    schema: &Schema,
    cx: &Context<'_>,
    ask: &Ask<'_>,
) -> Result<Found, TimedOut> {
    let stop = AtomicBool::new(false);
    let late = || {
        let late = stop.load(Ordering::Relaxed) || ask.deadline.is_some_and(|d| Instant::now() > d);
        if late {
            stop.store(true, Ordering::Relaxed);
        }
        late
    };
    if let Some(plan) = ask.plan {
        return run_columns(store, plan, ask, &late);
    }
    let all = store.all();
    let chunk = all.len().div_ceil(ask.threads.max(1)).max(1);
    let compiled = ask.compiled;
    let matches_of = |part: &[Packed]| -> Option<Vec<(Ulid, Packed)>> {
        let mut out = Vec::new();
        for block in part.chunks(CHECK_EVERY) {
            if late() {
                return None;
            }
            out.extend(block.iter().filter_map(|p| {
                if compiled.is_fields_only() {
                    let head = p.head();
                    return compiled.matches_head(&head).then(|| (head.id(), p.clone()));
                }
                let view = p.view();
                matches(compiled, &view, schema, ask.projection, cx).then(|| (view.id(), p.clone()))
            }));
        }
        Some(out)
    };
    let parts: Vec<Option<Vec<(Ulid, Packed)>>> = std::thread::scope(|s| {
        let workers: Vec<_> = all
            .chunks(chunk)
            .map(|part| s.spawn(move || matches_of(part)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a query thread does not panic"))
            .collect()
    });
    let mut found: Vec<(Ulid, Packed)> = Vec::new();
    for part in parts {
        found.extend(part.ok_or(TimedOut)?);
    }
    found.sort_unstable_by_key(|(id, _)| *id);
    let total = found.len();
    let start = ask
        .after
        .map_or(0, |a| found.partition_point(|(id, _)| *id <= a));
    let rest = &found[start.min(total)..];
    let limit = ask.limit;
    let page: Vec<Packed> = rest.iter().take(limit).map(|(_, p)| p.clone()).collect();
    let next = (rest.len() > limit && limit > 0).then(|| rest[limit - 1].0);
    Ok(Found { total, page, next })
}

/// [`run`] over field columns: the slots split between the threads, each cell read in
/// place; matches come out in slot order, which is creation order.
fn run_columns(
    store: &ProfileStore,
    plan: &ColumnPlan,
    ask: &Ask<'_>,
    late: &(dyn Fn() -> bool + Sync),
) -> Result<Found, TimedOut> {
    let bound = store.slot_bound() as usize;
    let live = store.columns.live();
    let scan = plan.scan();
    let per = bound.div_ceil(ask.threads.max(1)).max(1);
    let parts: Vec<Option<Vec<Slot>>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..bound)
            .step_by(per)
            .map(|from| {
                let (live, scan) = (&live, &scan);
                s.spawn(move || {
                    let mut out = Vec::new();
                    let to = (from + per).min(bound);
                    for block in (from..to).step_by(CHECK_EVERY) {
                        if late() {
                            return None;
                        }
                        let end = (block + CHECK_EVERY).min(to);
                        out.extend(
                            (block as Slot..end as Slot)
                                .filter(|s| live.cell(*s).is_some() && scan.matches(*s)),
                        );
                    }
                    Some(out)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a query thread does not panic"))
            .collect()
    });
    let mut found: Vec<Slot> = Vec::new();
    for part in parts {
        found.extend(part.ok_or(TimedOut)?);
    }
    let total = found.len();
    let id_of = |slot: Slot| store.by_slot(slot).map(|p| p.view().id());
    // Slots are in creation order, so ids ascend along them: the cursor's place is a
    // binary search. A slot erased since the scan reads as the next live one's id,
    // which keeps the order (and none left reads as past the cursor).
    let start = ask.after.map_or(0, |a| {
        let (mut lo, mut hi) = (0, found.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match found[mid..].iter().find_map(|s| id_of(*s)) {
                Some(id) if id <= a => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo
    });
    let rest = &found[start.min(total)..];
    let limit = ask.limit;
    let page = store.by_slots(rest.iter().take(limit).copied());
    let next = (rest.len() > limit && limit > 0)
        .then(|| page.last().map(|p| p.view().id()))
        .flatten();
    Ok(Found { total, page, next })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::activity::ActivityStore;
    use crate::schema::{FieldSpec, Value};
    use crate::segments::{compile, parse};
    use crate::store::{ColumnKind, Profile};
    use crate::suppression::SuppressionLists;

    /// The fast path (bytes) and the document path agree on every filter they both take.
    #[test]
    fn reading_the_bytes_agrees_with_reading_the_document() {
        let mut schema = Schema::default();
        for spec in [
            json!({"name":"score","type":"integer"}),
            json!({"name":"tier","type":"string","default":"bronze"}),
            json!({"name":"labels","type":"tags","default":["new"]}),
            json!({"name":"ratio","type":"float"}),
            json!({"name":"seen_from","type":"ip"}),
        ] {
            let spec: FieldSpec = serde_json::from_value(spec).unwrap();
            schema = schema.with_field(spec.into_def().unwrap()).unwrap();
        }
        let field = |p: &mut Profile, name: &str, v: Value| {
            p.fields.push((schema.id_of(name).unwrap(), v));
            p.fields.sort_by_key(|(n, _)| *n);
        };
        let mut profiles = Vec::new();
        for i in 0..12i64 {
            let t0 = jiff::Timestamp::from_second(1_700_000_000 + i * 86_400).unwrap();
            let mut p = Profile::new(format!("c{i}").into(), t0);
            if i % 2 == 0 {
                field(&mut p, "score", Value::Int(i));
            }
            if i % 3 == 0 {
                field(&mut p, "tier", Value::Str("gold".into()));
            }
            if i % 4 == 0 {
                field(
                    &mut p,
                    "labels",
                    Value::Tags(vec!["vip".into(), "b2c".into()]),
                );
            }
            field(&mut p, "ratio", Value::Float(i as f64 / 4.0));
            field(
                &mut p,
                "city",
                Value::Str(["Lisbon", "Porto", "Faro"][i as usize % 3].into()),
            );
            field(
                &mut p,
                "birth_date",
                Value::Date(jiff::civil::date(1980 + i as i16, 1, 1)),
            );
            if i == 5 {
                field(&mut p, "seen_from", Value::Ip("10.0.0.1".parse().unwrap()));
            }
            if i % 5 == 0 {
                p.tags.push("trial".into());
                p.external_ids.push(("crm".into(), format!("A-{i}").into()));
            }
            p.email = (i % 2 == 1)
                .then(|| crate::contacts::EmailContact::new(&format!("u{i}@example.com")));
            profiles.push(Packed::encode(&p));
        }
        let activity = ActivityStore::new();
        let lists = SuppressionLists::open(None).unwrap();
        let cx = Context::detached(&activity, &lists, &[], jiff::Timestamp::now());
        for filter in [
            r#"score >= 4"#,
            r#"score != 4"#,
            r#"score = null"#,
            r#"score EXISTS OR tier = "gold""#,
            r#"tier = "bronze""#,
            r#"tier IN ["gold", "silver"]"#,
            r#"labels CONTAINS "new""#,
            r#"labels CONTAINS "vip" AND NOT tags CONTAINS "trial""#,
            r#"ratio > 1.25 AND ratio <= 2"#,
            r#"city CONTAINS "or" OR city < "G""#,
            r#"birth_date >= "1985-01-01""#,
            r#"seen_from = "10.0.0.1""#,
            r#"identifiers.crm = "A-5" OR identifiers.email = "u3@example.com""#,
            r#"identifiers.crm EXISTS"#,
            r#"customer_id IN ["c1", "c7"]"#,
            r#"created_at > "2023-11-18T00:00:00Z""#,
            r#"updated_at <= "2023-11-16""#,
            r#"tags EXISTS AND first_name = null"#,
        ] {
            let compiled = compile(&parse(filter).unwrap(), &schema).unwrap();
            assert!(compiled.is_direct(), "{filter}");
            let projection = projection(&compiled, &schema).unwrap();
            for p in &profiles {
                let v = p.view();
                let doc: Json = serde_json::from_slice(&document::render_view(
                    &v,
                    &schema,
                    Some(&projection),
                    &cx,
                ))
                .unwrap();
                assert_eq!(
                    compiled.matches_view(&v),
                    compiled.matches(&doc),
                    "{filter} on {}: {doc}",
                    v.customer_id
                );
            }
        }
        // And field columns give the same verdicts as the bytes, values and defaults alike.
        let store = ProfileStore::new();
        let slots: Vec<Slot> = profiles
            .iter()
            .map(|p| store.put(p.clone(), None))
            .collect();
        let mut planned = 0;
        for filter in [
            r#"score >= 4"#,
            r#"score != 4 OR score = null"#,
            r#"score EXISTS OR tier = "gold""#,
            r#"tier = "bronze""#,
            r#"NOT tier IN ["gold", "silver"]"#,
            r#"ratio > 1.25 AND ratio <= 2"#,
            r#"city CONTAINS "or" OR city < "G""#,
            r#"birth_date >= "1985-01-01" AND birth_date != "1990-01-01""#,
            r#"city EXISTS AND NOT birth_date = null"#,
        ] {
            let compiled = compile(&parse(filter).unwrap(), &schema).unwrap();
            let columns: Vec<_> = compiled
                .column_fields()
                .unwrap()
                .iter()
                .map(|f| {
                    let def = schema.get(f).unwrap();
                    store.build_column(def.id, def.name.clone(), ColumnKind::of(def.ty).unwrap())
                })
                .collect();
            let plan = compiled.column_plan(&columns).expect(filter);
            planned += 1;
            let scan = plan.scan();
            for (p, slot) in profiles.iter().zip(&slots) {
                assert_eq!(
                    scan.matches(*slot),
                    compiled.matches_view(&p.view()),
                    "{filter}"
                );
            }
        }
        assert_eq!(planned, 9);
        // A write after the columns exist reaches them.
        let mut p = profiles[0].unpack(&schema);
        let score = schema.id_of("score").unwrap();
        p.fields.retain(|(n, _)| *n != score);
        let rewritten = Packed::encode(&p);
        store.put(rewritten.clone(), Some(&profiles[0]));
        let compiled = compile(&parse("score = null").unwrap(), &schema).unwrap();
        let columns = vec![store.columns.get("score").unwrap()];
        let plan = compiled.column_plan(&columns).unwrap();
        assert!(plan.scan().matches(slots[0]));
        let ask = Ask {
            compiled: &compiled,
            projection: &projection(&compiled, &schema).unwrap(),
            plan: Some(&plan),
            after: None,
            limit: 100,
            threads: 2,
            deadline: None,
        };
        let by_columns = run(&store, &schema, &cx, &ask).unwrap();
        let by_bytes = run(&store, &schema, &cx, &Ask { plan: None, ..ask }).unwrap();
        assert_eq!(by_columns.total, by_bytes.total);
        assert_eq!(by_columns.page, by_bytes.page);
        let late = Ask {
            deadline: Some(std::time::Instant::now() - std::time::Duration::from_secs(1)),
            plan: None,
            ..ask
        };
        assert_eq!(run(&store, &schema, &cx, &late).unwrap_err(), TimedOut);

        let derived = compile(&parse("stats.receipts_count > 0").unwrap(), &schema).unwrap();
        assert!(!derived.is_direct());
    }
}

//! An ad-hoc query: a compiled filter evaluated over a whole database, on every core.
//!
//! Each profile's document is rendered with only the members the filter names (the
//! projection a lookup with `?fields=` would show) and the filter is evaluated on it, so
//! a query means what the documents say. The profiles are split between the cores;
//! matches are put in creation order for paging. Every page counts the whole database
//! again (`total` is always current); saved segments will keep their members instead.

use serde_json::Value as Json;
use ulid::Ulid;

use super::Compiled;
use super::filter::FilterError;
use crate::document::{self, Context, Projection};
use crate::schema::Schema;
use crate::store::{Packed, ProfileStore};

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
    let bytes = document::render(view, schema, Some(projection), cx);
    let doc: Json = serde_json::from_slice(&bytes).expect("documents are JSON");
    compiled.matches(&doc)
}

#[allow(clippy::too_many_arguments)]
/// Evaluates `compiled` on every profile of `store`, with `threads` threads, and cuts the
/// page of `limit` after `after` (none with `limit` 0).
pub fn run(
    store: &ProfileStore,
    schema: &Schema,
    compiled: &Compiled,
    projection: &Projection,
    cx: &Context<'_>,
    after: Option<Ulid>,
    limit: usize,
    threads: usize,
) -> Found {
    let all = store.all();
    let chunk = all.len().div_ceil(threads.max(1)).max(1);
    let matches_of = |part: &[Packed]| -> Vec<(Ulid, Packed)> {
        part.iter()
            .filter_map(|p| {
                if compiled.is_fields_only() {
                    let head = p.head();
                    return compiled.matches_head(&head).then(|| (head.id(), p.clone()));
                }
                let view = p.view();
                matches(compiled, &view, schema, projection, cx).then(|| (view.id(), p.clone()))
            })
            .collect()
    };
    let mut found: Vec<(Ulid, Packed)> = std::thread::scope(|s| {
        let workers: Vec<_> = all
            .chunks(chunk)
            .map(|part| s.spawn(move || matches_of(part)))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a query thread does not panic"))
            .collect()
    });
    found.sort_unstable_by_key(|(id, _)| *id);
    let total = found.len();
    let start = after.map_or(0, |a| found.partition_point(|(id, _)| *id <= a));
    let rest = &found[start.min(total)..];
    let page: Vec<Packed> = rest.iter().take(limit).map(|(_, p)| p.clone()).collect();
    let next = (rest.len() > limit && limit > 0).then(|| rest[limit - 1].0);
    Found { total, page, next }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::activity::ActivityStore;
    use crate::channels::Reach;
    use crate::schema::{FieldSpec, Value};
    use crate::segments::{compile, parse};
    use crate::store::Profile;
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
            p.fields
                .push((Arc::clone(&schema.get(name).unwrap().name), v));
            p.fields.sort_by_key(|(n, _)| schema.position(n));
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
        let cx = Context {
            activity: &activity,
            now: jiff::Timestamp::now(),
            window_days: 30,
            reach: Reach {
                lists: &lists,
                attached: &[],
            },
            related: None,
        };
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
                let doc: Json =
                    serde_json::from_slice(&document::render(&v, &schema, Some(&projection), &cx))
                        .unwrap();
                assert_eq!(
                    compiled.matches_view(&v),
                    compiled.matches(&doc),
                    "{filter} on {}: {doc}",
                    v.customer_id
                );
            }
        }
        let derived = compile(&parse("stats.receipts_count > 0").unwrap(), &schema).unwrap();
        assert!(!derived.is_direct());
    }
}

//! Segments over a store of 1,000,000 profiles (`PROFILES` overrides): an ad-hoc
//! three-term filter, count only and with a page of 100, on every core; saved segments'
//! count and first page; and the upkeep of 20 saved segments on one write.
//!
//! Issue 8's goals: ≤ 50 ms count only, ≤ 60 ms with a page of 100; saved-segment count
//! and first page ≤ 50 µs; upkeep per write with 20 saved segments ≤ 2 µs.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::Timestamp;
use persona::activity::ActivityStore;
use persona::document::Context;
use persona::segments::{SavedSegments, SegmentDef, compile, parse, query};
use persona::store::{ColumnKind, Packed};
use persona::suppression::SuppressionLists;

fn queries(c: &mut Criterion) {
    let n: u64 = std::env::var("PROFILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let (schema, store) = common::store(n);
    let activity = ActivityStore::new();
    let lists = SuppressionLists::open(None).unwrap();
    let attached = vec!["global".to_string()];
    let cx = Context::detached(&activity, &lists, &attached, Timestamp::now());
    let filter = r#"city = "Lisbon" AND loyalty_score >= 5000 AND birth_date < "1980-01-01""#;
    let compiled = compile(&parse(filter).unwrap(), &schema).unwrap();
    let reading = query::projection(&compiled, &schema).unwrap();
    let threads = std::thread::available_parallelism().map_or(2, |t| t.get());
    let ask = |plan, limit| query::Ask {
        compiled: &compiled,
        projection: &reading,
        plan,
        after: None,
        limit,
        threads,
        deadline: None,
    };
    let found = query::run(&store, &schema, &cx, &ask(None, 100)).unwrap();
    println!(
        "segments bench: {n} profiles, `{filter}` selects {}",
        found.total
    );
    // The columns the writer builds the first time a query names these fields.
    let started = std::time::Instant::now();
    let columns: Vec<_> = compiled
        .column_fields()
        .unwrap()
        .iter()
        .map(|f| {
            let def = schema.get(f).unwrap();
            store.build_column(def.id, def.name.clone(), ColumnKind::of(def.ty).unwrap())
        })
        .collect();
    println!("segments bench: 3 columns built in {:?}", started.elapsed());
    let plan = compiled.column_plan(&columns).unwrap();
    let by_columns = query::run(&store, &schema, &cx, &ask(Some(&plan), 100)).unwrap();
    assert_eq!(by_columns.total, found.total);
    assert_eq!(by_columns.page, found.page);

    let mut g = c.benchmark_group("query_three_terms");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("count_only", |b| {
        b.iter(|| {
            black_box(
                query::run(&store, &schema, &cx, &ask(None, 0))
                    .unwrap()
                    .total,
            )
        })
    });
    g.bench_function("page_of_100", |b| {
        b.iter(|| {
            black_box(
                query::run(&store, &schema, &cx, &ask(None, 100))
                    .unwrap()
                    .page
                    .len(),
            )
        })
    });
    g.bench_function("count_only_columns", |b| {
        b.iter(|| {
            black_box(
                query::run(&store, &schema, &cx, &ask(Some(&plan), 0))
                    .unwrap()
                    .total,
            )
        })
    });
    g.bench_function("page_of_100_columns", |b| {
        b.iter(|| {
            black_box(
                query::run(&store, &schema, &cx, &ask(Some(&plan), 100))
                    .unwrap()
                    .page
                    .len(),
            )
        })
    });
    g.finish();
}

/// Twenty saved segments of the kinds marketers keep: places, tiers, scores, ages,
/// identifiers, and their combinations.
const SAVED: [&str; 20] = [
    r#"city = "Lisbon""#,
    r#"city IN ["Porto", "Braga", "Coimbra"]"#,
    r#"country = "ES""#,
    r#"country != "PT""#,
    r#"tier = "gold""#,
    r#"tier IN ["gold", "platinum"]"#,
    r#"loyalty_score >= 9000"#,
    r#"loyalty_score < 1000"#,
    r#"loyalty_score >= 5000 AND tier = "silver""#,
    r#"birth_date < "1970-01-01""#,
    r#"birth_date >= "2000-01-01""#,
    r#"registered_at >= "2024-01-01""#,
    r#"city = "Lisbon" AND loyalty_score >= 5000 AND birth_date < "1980-01-01""#,
    r#"country = "FR" OR country = "DE""#,
    r#"first_name = "Ana""#,
    r#"last_name EXISTS AND tier != "bronze""#,
    r#"tags CONTAINS "vip""#,
    r#"identifiers.email EXISTS"#,
    r#"NOT (city = "London" OR city = "Paris")"#,
    r#"phone EXISTS AND loyalty_score > 2500"#,
];

fn saved(c: &mut Criterion) {
    let n = common::profiles();
    let (schema, store) = common::store(n);
    let activity = ActivityStore::new();
    let lists = SuppressionLists::open(None).unwrap();
    let attached = vec!["global".to_string()];
    let cx = Context::detached(&activity, &lists, &attached, Timestamp::now());
    let defs: Vec<SegmentDef> = SAVED
        .iter()
        .enumerate()
        .map(|(i, f)| SegmentDef {
            name: format!("s{i:02}"),
            filter: (*f).into(),
            saved_at: Timestamp::now(),
        })
        .collect();
    let segments = SavedSegments::new();
    segments.install(defs, &schema, &store, &cx);
    let threads = std::thread::available_parallelism().map_or(2, |t| t.get());
    let started = std::time::Instant::now();
    segments.go_live(&schema, &store, &cx, threads);
    let lisbon = segments.get("s00").unwrap();
    println!(
        "segments bench: 20 saved segments over {n} profiles evaluated in {:?}; `{}` holds {}",
        started.elapsed(),
        lisbon.def.filter,
        lisbon.count()
    );

    let mut g = c.benchmark_group("saved_segment");
    g.bench_function("count", |b| b.iter(|| black_box(lisbon.count())));
    g.bench_function("count_and_first_page_of_100", |b| {
        b.iter(|| {
            let (slots, _) = lisbon.page(None, 100);
            let page: Vec<Packed> = store.by_slots(slots);
            black_box((lisbon.count(), page.len()))
        })
    });
    g.finish();

    // A write: the same profile rewritten with another city and score each time, judged
    // against all twenty (the store put itself is not timed).
    let mut g = c.benchmark_group("saved_segments_upkeep");
    let (slot, base) = store.get_slotted(&common::customer_id(7)).unwrap();
    let variants: Vec<Packed> = (0..16u64)
        .map(|i| {
            let mut p = base.unpack(&schema);
            let other = common::fields(i * 7919);
            for (id, v) in p.fields.iter_mut() {
                let name = &schema.by_id(*id).unwrap().name;
                if let Some((_, json)) = other.iter().find(|(n, _)| *n == &**name) {
                    if let (persona::schema::Value::Str(s), Some(t)) = (&mut *v, json.as_str()) {
                        *s = t.into();
                    } else if let (persona::schema::Value::Int(x), Some(y)) =
                        (&mut *v, json.as_i64())
                    {
                        *x = y;
                    }
                }
            }
            Packed::encode(&p)
        })
        .collect();
    let mut i = 0;
    g.bench_function("20_segments_one_write", |b| {
        b.iter(|| {
            i = (i + 1) % variants.len();
            segments.upkeep(slot, &variants[i], &schema, &cx);
        })
    });
    g.finish();
}

criterion_group!(benches, queries, saved);
criterion_main!(benches);

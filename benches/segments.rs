//! Ad-hoc segment queries: a three-term filter over a store of 1,000,000 profiles
//! (`PROFILES` overrides), count only and with a page of 100, on every core.
//!
//! Issue 8's goal: ≤ 50 ms count only, ≤ 60 ms with a page of 100.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::Timestamp;
use persona::activity::ActivityStore;
use persona::channels::Reach;
use persona::document::Context;
use persona::segments::{compile, parse, query};
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
    let cx = Context {
        activity: &activity,
        now: Timestamp::now(),
        window_days: 30,
        reach: Reach {
            lists: &lists,
            attached: &attached,
        },
    };
    let filter = r#"city = "Lisbon" AND loyalty_score >= 5000 AND birth_date < "1980-01-01""#;
    let compiled = compile(&parse(filter).unwrap(), &schema).unwrap();
    let reading = query::projection(&compiled, &schema).unwrap();
    let threads = std::thread::available_parallelism().map_or(2, |t| t.get());
    let found = query::run(
        &store, &schema, &compiled, &reading, &cx, None, 100, threads,
    );
    println!(
        "segments bench: {n} profiles, `{filter}` selects {}",
        found.total
    );

    let mut g = c.benchmark_group("query_three_terms");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("count_only", |b| {
        b.iter(|| {
            black_box(query::run(&store, &schema, &compiled, &reading, &cx, None, 0, threads).total)
        })
    });
    g.bench_function("page_of_100", |b| {
        b.iter(|| {
            black_box(
                query::run(
                    &store, &schema, &compiled, &reading, &cx, None, 100, threads,
                )
                .page
                .len(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, queries);
criterion_main!(benches);

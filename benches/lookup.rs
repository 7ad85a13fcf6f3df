//! The lookup path without HTTP: a store of 1,000,000 profiles (`PROFILES` overrides),
//! random customer ids, `ProfileStore::get`/`find` and `document::to_vec`.
//!
//! Groups (time per lookup, `Throughput::Elements(1)`):
//! - `get_by_id_serialize`: random id → `store.get` → the whole document to JSON bytes;
//! - `get_by_id_projection3`: the same with `?fields=email,city,loyalty_score`;
//! - `get_by_email`: `store.find(identifier_key("email", ..))` → the whole document;
//! - `get_by_id_only` and `serialize_hot`: the two halves of the first group apart (the
//!   map lookup with its cache misses; serialization of one cache-hot profile);
//! - the floors, what no serializer can beat on this machine: `floor_packed` reads
//!   every cache line of a random profile's packed record and writes nothing;
//!   `floor_prerendered` holds every document (whole, and the 3-field projection)
//!   rendered in advance in a `DashMap` of its own and copies a random one out (the
//!   issue's "bare map of pre-serialized bodies", without HTTP).
//!
//! Run with `cargo bench --bench lookup`.

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use compact_str::CompactString;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jiff::Timestamp;
use persona::activity::ActivityStore;
use persona::document::{self, Projection};
use persona::store::Packed;

use common::XorShift;

fn lookups(c: &mut Criterion) {
    let n = common::profiles();
    let t0 = Instant::now();
    let (schema, store) = common::store(n);
    let built = t0.elapsed();
    let ids: Vec<CompactString> = (0..n).map(common::customer_id).collect();
    let email_keys: Vec<CompactString> = (0..n).map(common::email_key).collect();
    // No events in this bench: the activity map is looked up (as on the server) and
    // found empty. `benches/activity.rs` reads profiles with activity.
    let activity = ActivityStore::new();
    let now = Timestamp::now();
    // Channels are checked against a filled global stop list (99,000 emails and 1,000
    // domains, none of them the profiles') and an attached list of 10,000 phones: every
    // lookup pays the hash probes a real server pays.
    let lists = persona::suppression::SuppressionLists::open(None).unwrap();
    let fill = |list: &str, e: persona::suppression::Entries| lists.add(list, &e).unwrap();
    fill(
        "global",
        persona::suppression::Entries {
            emails: (0..99_000)
                .map(|i| format!("s{i}@suppressed.example"))
                .collect(),
            domains: (0..1000).map(|i| format!("d{i}.example")).collect(),
            ..Default::default()
        },
    );
    lists.put("partners", None).unwrap();
    fill(
        "partners",
        persona::suppression::Entries {
            phones: (0..10_000).map(|i| format!("+35191{i:07}")).collect(),
            ..Default::default()
        },
    );
    let attached = vec!["global".to_string(), "partners".to_string()];
    let cx = document::Context::detached(&activity, &lists, &attached, now);
    let projection = Projection::parse("email,city,loyalty_score", &schema).unwrap();

    let size = |i: u64, projection: Option<&Projection>| {
        let p = store.get(&ids[i as usize]).unwrap();
        document::render(&p, &schema, projection, &cx).len()
    };
    let sample = n.min(10_001);
    let median = |projection: Option<&Projection>| {
        let mut sizes: Vec<usize> = (0..sample)
            .map(|k| size(k * (n / sample), projection))
            .collect();
        sizes.sort_unstable();
        (sizes[sizes.len() / 2], sizes[0], sizes[sizes.len() - 1])
    };
    let (whole, lo, hi) = median(None);
    let (proj3, _, _) = median(Some(&projection));
    println!(
        "lookup bench: {n} profiles built in {:.1}s; document median {whole} bytes \
         (min {lo}, max {hi}), projection3 median {proj3} bytes",
        built.as_secs_f64()
    );
    if let Some(rss) = common::rss_bytes() {
        println!(
            "lookup bench: rss {:.0} MiB with the id/email key tables (~{:.0} MiB), {:.0} bytes a profile",
            rss as f64 / (1 << 20) as f64,
            (n as f64 * 2.0 * 48.0) / (1 << 20) as f64,
            rss as f64 / n as f64
        );
    }

    // The lookup path after the map: read the packed bytes, serialize them.
    let render =
        |p: &Packed, projection: Option<&Projection>| document::render(p, &schema, projection, &cx);
    let mut rng = XorShift::new(0x5EED);
    let len = n as usize;

    let mut g = c.benchmark_group("get_by_id_serialize");
    g.throughput(Throughput::Elements(1));
    g.bench_function("whole_document", |b| {
        b.iter(|| {
            let id = &ids[rng.below(len)];
            let p = store.get(black_box(id)).unwrap();
            black_box(render(&p, None))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("get_by_id_projection3");
    g.throughput(Throughput::Elements(1));
    g.bench_function("email_city_loyalty_score", |b| {
        b.iter(|| {
            let id = &ids[rng.below(len)];
            let p = store.get(black_box(id)).unwrap();
            black_box(render(&p, Some(&projection)))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("get_by_email");
    g.throughput(Throughput::Elements(1));
    g.bench_function("whole_document", |b| {
        b.iter(|| {
            let key = &email_keys[rng.below(len)];
            let p = store.find(black_box(key)).unwrap();
            black_box(render(&p, None))
        })
    });
    g.finish();

    // Diagnostics: the lookup and the serialization apart.
    let mut g = c.benchmark_group("get_by_id_only");
    g.throughput(Throughput::Elements(1));
    g.bench_function("store_get", |b| {
        b.iter(|| {
            let id = &ids[rng.below(len)];
            black_box(store.get(black_box(id)).unwrap())
        })
    });
    g.finish();

    // The floors. First our own layout's: the probe, and every cache line of the packed
    // record read once, with nothing written: no rendering from these bytes can be faster.
    let mut g = c.benchmark_group("floor_packed");
    g.throughput(Throughput::Elements(1));
    g.bench_function("probe_and_touch", |b| {
        b.iter(|| {
            let id = &ids[rng.below(len)];
            let p = store.get(black_box(id)).unwrap();
            black_box(p.bytes().iter().step_by(64).fold(0u8, |a, b| a ^ b))
        })
    });
    g.finish();

    // Then documents rendered in advance, each in a `DashMap` of its own (~1.5 GB and
    // ~0.2 GB for 1M), so a lookup is a probe and a copy of bytes not in the cache.
    // Built last: they would otherwise take cache and TLB room from the groups above.
    type Prerendered = dashmap::DashMap<CompactString, Arc<[u8]>, foldhash::fast::RandomState>;
    let prerender = |projection: Option<&Projection>| {
        let map = Prerendered::with_capacity_and_hasher(len, Default::default());
        for id in &ids {
            let p = store.get(id).unwrap();
            map.insert(id.clone(), Arc::from(render(&p, projection)));
        }
        map
    };
    let mut g = c.benchmark_group("floor_prerendered");
    g.throughput(Throughput::Elements(1));
    for (name, projection) in [("whole_document", None), ("projection3", Some(&projection))] {
        let bodies = prerender(projection);
        g.bench_function(name, |b| {
            b.iter(|| {
                let id = &ids[rng.below(len)];
                let body = bodies.get(black_box(id)).unwrap().value().clone();
                black_box(body.to_vec())
            })
        });
    }
    g.finish();

    let hot = store.get(&ids[0]).unwrap();
    let mut g = c.benchmark_group("serialize_hot");
    g.throughput(Throughput::Elements(1));
    g.bench_function("whole_document", |b| {
        b.iter(|| black_box(render(black_box(&hot), None)))
    });
    g.bench_function("projection3", |b| {
        b.iter(|| black_box(render(black_box(&hot), Some(&projection))))
    });
    g.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);

//! Activity without HTTP: a database of 1,000,000 profiles (`PROFILES` overrides), each
//! with 8 events (3 receipts of 3 items in one of 20 stores, 2 category views, a cart
//! add, a bonus, a mailing), so every profile is RFM-ranked.
//!
//! Groups:
//! - `derived_read`: random id → `store.get` → `document::render` with the profile's
//!   activity and RFM scores (`whole_document`), or `?fields=stats,rfm`, after every
//!   profile was read once (the digest a first read renders is printed apart);
//! - `rfm_maintenance`: `RfmIndex::update` moving one profile's keys (what a receipt
//!   costs the rankings), and `ActivityStore::apply` of one receipt to a random profile
//!   (timeline, aggregates and rankings);
//! - `event_parse`: checking one posted receipt of 3 items from its bytes
//!   (`activity::event::parse_slice`).
//!
//! It also prints the memory a kept event costs (RSS growth over the events applied).
//! Run with `cargo bench --bench activity`.

mod common;

use std::hint::black_box;
use std::time::Instant;

use compact_str::CompactString;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jiff::Timestamp;
use persona::activity::event::{self, Payload};
use persona::activity::{ActivityStore, Event, Fixed, RfmIndex, RfmKeys};
use persona::document::{self, Projection};
use serde_json::json;

use common::XorShift;

const HOUR_US: i64 = 3_600_000_000;

fn receipt_json(customer: &str, id: u64, store: u64) -> serde_json::Value {
    json!({"customer_id": customer, "type": "receipt", "time": "2026-01-15T10:00:00Z",
        "data": {"receipt_id": format!("r{id}"), "total": 59.9, "currency": "EUR",
            "store": {"id": format!("s{store}"), "name": format!("Store {store}")},
            "items": [
                {"sku": "A1", "name": "Monitor 24", "category": "monitors", "price": 39.9, "quantity": 1},
                {"sku": "C7", "name": "HDMI cable", "category": "cables", "price": 5.0, "quantity": 2},
                {"sku": "K2", "name": "Keyboard", "category": "keyboards", "price": 10.0, "quantity": 1}]}})
}

/// The events of profile `i`: templates with times, totals and stores from `i`.
fn events_of(i: u64, templates: &[Event]) -> Vec<Event> {
    let m = common::mix(i);
    let base = 1_767_225_600_000_000 + (m % (300 * 24)) as i64 * HOUR_US; // from 2026-01-01
    templates
        .iter()
        .enumerate()
        .map(|(k, t)| {
            let mut e = t.clone();
            e.time = base + k as i64 * 37 * HOUR_US;
            if let Payload::Receipt(r) = &mut e.payload {
                r.receipt_id = format!("r{k}");
                r.total = ((m >> (8 * k)) % 20_000) as f64 / 100.0 + 1.0;
                if let Some(s) = &mut r.store {
                    s.id = format!("s{}", (m >> 20) % 20);
                }
            }
            e
        })
        .collect()
}

fn templates() -> Vec<Event> {
    let t = Timestamp::now();
    let parse = |v: serde_json::Value| event::parse(v, t).unwrap().event;
    let mut out: Vec<Event> = (0..3).map(|k| parse(receipt_json("c", k, k))).collect();
    for v in [
        json!({"customer_id":"c","type":"category_view","data":{"category":"monitors"}}),
        json!({"customer_id":"c","type":"category_view","data":{"category":"lamps"}}),
        json!({"customer_id":"c","type":"cart_add","data":{"sku":"L1","name":"Lamp","price":25.0}}),
        json!({"customer_id":"c","type":"bonus","data":{"bonus_id":"b1","amount":120,"status":"active","expires_at":"2027-01-01T00:00:00Z"}}),
        json!({"customer_id":"c","type":"mailing","data":{"mailing_id":"m1","name":"Spring","channel":"email"}}),
    ] {
        out.push(parse(v));
    }
    out
}

fn activity(c: &mut Criterion) {
    let n = common::profiles();
    let (schema, store) = common::store(n);
    let ids: Vec<CompactString> = (0..n).map(common::customer_id).collect();
    let acts = ActivityStore::new();
    let templates = templates();
    let rss0 = common::rss_bytes();
    let t0 = Instant::now();
    let mut lsn = 0;
    let mut events = 0u64;
    for (i, id) in ids.iter().enumerate() {
        let evs = events_of(i as u64, &templates);
        events += evs.len() as u64;
        lsn += 1;
        acts.apply(lsn, id, &evs, 1000);
    }
    let built = t0.elapsed();
    if let (Some(a), Some(b)) = (rss0, common::rss_bytes()) {
        println!(
            "activity bench: {events} events for {n} profiles applied in {:.1}s ({:.2} µs an event); \
             RSS grew {:.0} MiB: {:.0} bytes a kept event (timeline and aggregates)",
            built.as_secs_f64(),
            built.as_secs_f64() * 1e6 / events as f64,
            (b.saturating_sub(a)) as f64 / (1 << 20) as f64,
            b.saturating_sub(a) as f64 / events as f64
        );
    }
    println!("activity bench: {} profiles ranked", acts.ranked());
    let now = Timestamp::now();
    // Channels are checked against an empty global stop list, as on a fresh server.
    let lists = persona::suppression::SuppressionLists::open(None).unwrap();
    let attached = vec!["global".to_string()];
    let cx = document::Context::detached(&acts, &lists, &attached, now);
    let projection = Projection::parse("stats,rfm", &schema).unwrap();
    let mut rng = XorShift::new(0xACE);
    let len = n as usize;
    let sample = &ids[0];
    let doc = document::render(&store.get(sample).unwrap(), &schema, None, &cx);
    println!(
        "activity bench: a whole document with activity is {} bytes",
        doc.len()
    );

    // Every profile read once: its digest is rendered on the first read after a change
    // and served from then on, which is the steady state of a lookup-heavy server.
    let t0 = Instant::now();
    for id in &ids {
        let p = store.get(id).unwrap();
        black_box(document::render(&p, &schema, None, &cx));
    }
    println!(
        "activity bench: first read after a change (digest rendered): {:.2} µs a profile",
        t0.elapsed().as_secs_f64() * 1e6 / n as f64
    );

    let mut g = c.benchmark_group("derived_read");
    g.throughput(Throughput::Elements(1));
    g.bench_function("whole_document", |b| {
        b.iter(|| {
            let id = &ids[rng.below(len)];
            let p = store.get(black_box(id)).unwrap();
            black_box(document::render(&p, &schema, None, &cx))
        })
    });
    g.bench_function("stats_rfm_projection", |b| {
        b.iter(|| {
            let id = &ids[rng.below(len)];
            let p = store.get(black_box(id)).unwrap();
            black_box(document::render(&p, &schema, Some(&projection), &cx))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("rfm_maintenance");
    g.throughput(Throughput::Elements(1));
    // The same shape of rankings as the store's: n profiles' keys.
    let keys: Vec<RfmKeys> = (0..n)
        .map(|i| {
            let m = common::mix(i);
            RfmKeys {
                last_day: 20_454 + (m % 300) as i32,
                count: 1 + (m >> 9) as u32 % 12,
                total: Fixed::from_f64(((m >> 17) % 200_000) as f64 / 100.0).unwrap(),
            }
        })
        .collect();
    let mut index = RfmIndex::from_keys(&keys);
    let mut current = keys.clone();
    g.bench_function("index_update_per_receipt", |b| {
        b.iter(|| {
            let i = rng.below(len);
            let old = current[i];
            let new = RfmKeys {
                last_day: old.last_day + 1,
                count: old.count + 1,
                total: old.total.saturating_add(Fixed::from_f64(19.9).unwrap()),
            };
            index.update(Some(old), Some(new));
            current[i] = new;
        })
    });
    let one = templates[0].clone();
    g.bench_function("store_apply_one_receipt", |b| {
        b.iter(|| {
            let i = rng.below(len);
            lsn += 1;
            let mut e = one.clone();
            e.time = 1_790_000_000_000_000 + lsn as i64;
            if let Payload::Receipt(r) = &mut e.payload {
                r.receipt_id = format!("x{lsn}");
            }
            acts.apply(lsn, &ids[i], std::slice::from_ref(&e), 1000);
        })
    });
    g.finish();

    let mut g = c.benchmark_group("event_parse");
    g.throughput(Throughput::Elements(1));
    // As the HTTP path reads it: the line's bytes, parsed once into the typed payload.
    let posted = serde_json::to_vec(&receipt_json("c42", 7, 3)).unwrap();
    g.bench_function("receipt_3_items", |b| {
        b.iter(|| black_box(event::parse_slice(black_box(&posted), now).unwrap()))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(4));
    targets = activity
}
criterion_main!(benches);

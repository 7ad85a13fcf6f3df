//! Any bytes as a posted events body (one event, an array, or NDJSON): refused or read
//! into updates, never a panic; every good event survives the log's round trip and
//! folds into an activity.
#![no_main]

use libfuzzer_sys::fuzz_target;
use persona::activity::{Activity, event};
use persona::ingest::events;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
    let Ok(batch) = events::read(body, selector & 1 == 1, now, None) else {
        return;
    };
    let mut act = Activity::default();
    for (n, u) in batch.updates.iter().enumerate() {
        for e in &u.events {
            let back = event::restore(e.kind, e.custom.as_deref(), e.time, &e.data)
                .expect("a checked event reads back from its logged form");
            assert_eq!(&back, e);
        }
        act.apply(n as u64 + 1, &u.events, 50);
    }
    let _ = persona::activity::view::digest(&act);
});

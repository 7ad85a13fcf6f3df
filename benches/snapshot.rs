//! Snapshots without HTTP: write and load one database of 1,000,000 profiles
//! (`PROFILES` overrides), the shared generator's ten-field profiles.
//!
//! Groups:
//! - `snapshot/write`: `store.all()` (the Arc clones a snapshot reads while writes go
//!   on), encode, write, fsync, rename (what the snapshot thread does);
//! - `snapshot/load`: read and check the file, decode on every core, rebuild the store
//!   with its identifier and order indexes (what start-up does before WAL replay);
//! - `snapshot/pause`: what the actor itself spends to start a snapshot (a WAL segment
//!   switch queued and two `Arc` loads), the only time writes wait.
//!
//! Run with `cargo bench --bench snapshot`; `scripts/bench-snapshot.sh` runs it beside
//! Redis `SAVE` and a Redis restart with the same data.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use criterion::{Criterion, criterion_group, criterion_main};
use persona::activity::ActivityStore;
use persona::config::FsyncPolicy;
use persona::persist::{Wal, recover, snapshot};
use persona::store::ProfileStore;

fn snapshots(c: &mut Criterion) {
    let n = common::profiles();
    let t0 = Instant::now();
    let (schema, store) = common::store(n);
    eprintln!("built {n} profiles in {:.1?}", t0.elapsed());
    let settings = common::settings();
    let dir = tempfile::tempdir_in(".").expect("a temporary directory on the bench disk");
    let threads = std::thread::available_parallelism().map_or(2, |t| t.get());

    phases(&dir, &settings, &schema, &store, threads);

    let mut g = c.benchmark_group("snapshot");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(1));
    let mut info = None;
    g.bench_function("write", |b| {
        b.iter(|| {
            let profiles = store.all();
            info = Some(
                snapshot::write(
                    dir.path(),
                    1,
                    &settings,
                    &schema,
                    &profiles,
                    &ActivityStore::new(),
                    false,
                )
                .unwrap(),
            );
        })
    });
    let info = info.expect("at least one write");
    eprintln!(
        "snapshot: {} profiles, {} bytes ({} bytes a profile)",
        info.profiles,
        info.bytes,
        info.bytes / info.profiles.max(1)
    );
    g.bench_function("load", |b| {
        // Freeing a million profiles (~0.9 s) is not part of a load: a server loads
        // once and never frees the store.
        b.iter_with_large_drop(|| {
            let loaded = recover::load_snapshot(dir.path(), threads).unwrap();
            assert_eq!(loaded.store.len() as u64, n);
            black_box(loaded)
        })
    });
    g.finish();

    // Not a criterion group: each iteration makes a WAL segment file, so a fixed, small
    // count is timed instead of the millions criterion would run.
    let wal = Wal::open(&dir.path().join("wal"), 1, FsyncPolicy::Never).unwrap();
    let live_settings = ArcSwap::from_pointee(settings.clone());
    let live_schema = ArcSwap::from_pointee(schema.clone());
    let mut pauses: Vec<Duration> = (1..=51u64)
        .map(|lsn| {
            let t = Instant::now();
            let rotated = wal.rotate(lsn);
            black_box((live_settings.load_full(), live_schema.load_full()));
            let pause = t.elapsed();
            rotated.recv().unwrap().unwrap();
            pause
        })
        .collect();
    pauses.sort();
    eprintln!(
        "snapshot/pause (actor time to start a snapshot): median {:?}, max {:?} over 51",
        pauses[25], pauses[50]
    );
    wal.close();
}

/// One timed pass of each phase, printed: where a write's and a load's time goes.
fn phases(
    dir: &tempfile::TempDir,
    settings: &persona::schema::DatabaseSettings,
    schema: &persona::schema::Schema,
    store: &ProfileStore,
    threads: usize,
) {
    let t = Instant::now();
    let profiles = store.all();
    let all = t.elapsed();
    let t = Instant::now();
    let mut buf = Vec::with_capacity(1 << 20);
    let mut encoded = 0;
    for chunk in profiles.chunks(4096) {
        persona::persist::record::encode_profiles(chunk.iter(), &mut buf);
        encoded += buf.len();
        buf.clear();
    }
    let encode = t.elapsed();
    let t = Instant::now();
    let info = snapshot::write(
        dir.path(),
        1,
        settings,
        schema,
        &profiles,
        &ActivityStore::new(),
        false,
    )
    .unwrap();
    let write = t.elapsed();
    drop(profiles);
    let t = Instant::now();
    let bytes = std::fs::read(&info.path).unwrap();
    let read = t.elapsed();
    drop(bytes);
    let t = Instant::now();
    let loaded = snapshot::read(&info.path, threads).unwrap();
    let load = t.elapsed();
    let t = Instant::now();
    drop(loaded);
    let free = t.elapsed();
    eprintln!(
        "phases: store.all {all:.1?}; encode {encode:.1?} ({encoded} bytes); whole write \
         {write:.1?}; read file alone {read:.1?}; read+check+decode+index \
         {load:.1?}; drop store {free:.1?}"
    );
}

criterion_group!(benches, snapshots);
criterion_main!(benches);

//! Plugin calls: the per-call overhead of the sandbox (a fresh store, instantiation,
//! the call, lifting the output and turning it into updates) for a 1 KB webhook, through
//! the Shopify example and through a plugin that does next to nothing, and a CSV chunk
//! through the example CRM plugin.
//!
//! `cargo bench --bench plugin`. Builds the example plugins first (wasm32-wasip2).

#[path = "../tests/support/plugins.rs"]
mod plugins_built;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use persona::plugins::host::{Chunk, Header, Source as PayloadSource};
use persona::plugins::{Payload, PluginSettings, Plugins, convert};
use persona::schema::{FieldDef, FieldType, Schema, Source};

fn payload(body: Vec<u8>, content_type: &str, schema: &Schema, chunk: Option<Chunk>) -> Payload {
    Payload {
        body,
        content_type: content_type.into(),
        headers: vec![Header {
            name: "x-shopify-topic".into(),
            value: "customers/create".into(),
        }],
        source: if chunk.is_some() {
            PayloadSource::Import
        } else {
            PayloadSource::Webhook
        },
        database: "bench".into(),
        fields: convert::fields_of(schema),
        chunk,
    }
}

fn bench(c: &mut Criterion) {
    let plugins = Plugins::open(None).unwrap();
    let schema = Schema::default()
        .with_field(FieldDef::custom("loyalty_score", FieldType::Integer))
        .unwrap()
        .with_field(FieldDef::custom("tier", FieldType::String))
        .unwrap();
    let settings = PluginSettings {
        timeout_ms: 10_000,
        memory_mib: 256,
    };

    let (shopify, _) = plugins
        .put("shopify", &plugins_built::plugin("shopify"), settings)
        .unwrap();
    let hook = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/webhooks/shopify_customers_create.json"
    ))
    .unwrap();
    let mut g = c.benchmark_group("plugin_call");
    let p = payload(hook.clone(), "application/json", &schema, None);
    g.throughput(Throughput::Bytes(hook.len() as u64));
    g.bench_function("webhook_1kb_shopify_customer", |b| {
        b.iter(|| {
            let out = plugins.call(&shopify, black_box(&p)).unwrap();
            black_box(convert::convert(out, Source::Webhook))
        })
    });
    // The sandbox's own cost: the same kilobyte to a plugin that does next to nothing
    // with it (one update out of one line).
    let (hostile, _) = plugins
        .put("hostile", &plugins_built::plugin("hostile"), settings)
        .unwrap();
    let line = format!("c1,{}", "a".repeat(hook.len() - 3));
    let p = payload(line.into_bytes(), "text/plain", &schema, None);
    g.bench_function("webhook_1kb_minimal_plugin", |b| {
        b.iter(|| {
            let out = plugins.call(&hostile, black_box(&p)).unwrap();
            black_box(convert::convert(out, Source::Webhook))
        })
    });
    g.finish();

    // A 256 KiB chunk of the ingest bench's CSV shape (the import chunk size).
    let (csv, _) = plugins
        .put("csv", &plugins_built::plugin("csv"), settings)
        .unwrap();
    let mut body = String::from(
        "customer_id,first_name,last_name,email,phone,birth_date,country,city,registered_at,loyalty_score,tier\n",
    );
    let mut rows = 0u64;
    while body.len() < 256 << 10 {
        body.push_str(&format!(
            "c{rows:08},Ana,Silva,ana.silva.{rows}@example.com,+35191{:07},1980-01-02,PT,Lisboa,2023-05-01T10:11:12Z,{},gold\n",
            rows % 10_000_000,
            rows % 10_000
        ));
        rows += 1;
    }
    let chunk = Chunk {
        index: 0,
        first_row: 1,
        header: None,
    };
    let p = payload(body.into_bytes(), "text/csv", &schema, Some(chunk));
    let mut g = c.benchmark_group("plugin_import");
    g.throughput(Throughput::Elements(rows));
    g.sample_size(20);
    g.bench_function("csv_chunk_256kb", |b| {
        b.iter(|| {
            let out = plugins.call(&csv, black_box(&p)).unwrap();
            black_box(convert::convert(out, Source::Import))
        })
    });
    g.finish();
}

// The server's allocator: a call allocates the payload, the lifted output and the
// updates on the host, so the figure depends on it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

criterion_group!(benches, bench);
criterion_main!(benches);

//! Shared data for the benches: a deterministic generator of realistic profiles.
//!
//! Profile `i` has ten fields — the eight default fields `first_name`, `last_name`,
//! `email`, `phone`, `birth_date`, `country`, `city`, `registered_at` (not `gender`), plus
//! two custom ones: `loyalty_score` (integer) and `tier` (string) — a unique email
//! (`first.last.i@example.com`) and a unique, valid Portuguese mobile number
//! (`+35191xxxxxxx`), so both identifier indexes hold one key per profile. No tags,
//! external ids or subscriptions. Everything derives from `i` (splitmix64), so runs
//! compare.
//!
//! Typical sizes (measured with 1,000,000 profiles):
//! - whole JSON document (`document::to_vec`, no projection): median 1,187 bytes,
//!   1,153–1,224 (the server's are ~20 bytes longer: its `created_at`/`updated_at` carry
//!   nanoseconds). About 40% of it is constant placeholder members (`stats`, `bonuses`,
//!   `rfm`, empty arrays), a quarter is `identifiers` + `contacts` repeating the email
//!   and phone, and only ~260 bytes are the ten field values;
//! - 3-field projection `email,city,loyalty_score`: median 150 bytes;
//! - in memory: ~1.85 KB of RSS per profile with the store's indexes (server: 1,849
//!   bytes; the `lookup` bench prints its own figure, which includes its key tables).
//!
//! `scripts/load-lookup.sh` writes the same shape over HTTP (its Lua generator mirrors
//! this one, not bit for bit).

#![allow(dead_code)]

use compact_str::{CompactString, format_compact};
use jiff::Timestamp;
use persona::db::build_profile;
use persona::schema::{
    DatabaseSettings, DatabaseSpec, FieldDef, FieldType, ProfileUpdate, RawValue, Schema, Source,
};
use persona::store::{Packed, ProfileStore, identifier_key};
use serde_json::Value as Json;

const FIRST: &[&str] = &[
    "Ana",
    "Beatriz",
    "Carla",
    "Diana",
    "Eva",
    "Filipa",
    "Joana",
    "Lara",
    "Marta",
    "Sofia",
    "Andre",
    "Bruno",
    "Carlos",
    "Daniel",
    "Eduardo",
    "Francisco",
    "Joao",
    "Luis",
    "Miguel",
    "Tiago",
];
const LAST: &[&str] = &[
    "Silva",
    "Santos",
    "Ferreira",
    "Pereira",
    "Oliveira",
    "Costa",
    "Rodrigues",
    "Martins",
    "Jesus",
    "Sousa",
    "Fernandes",
    "Goncalves",
    "Gomes",
    "Lopes",
    "Marques",
    "Alves",
    "Almeida",
    "Ribeiro",
    "Pinto",
    "Carvalho",
];
const PLACES: &[(&str, &str)] = &[
    ("PT", "Lisbon"),
    ("PT", "Porto"),
    ("PT", "Braga"),
    ("PT", "Coimbra"),
    ("ES", "Madrid"),
    ("ES", "Barcelona"),
    ("FR", "Paris"),
    ("DE", "Berlin"),
    ("GB", "London"),
    ("BR", "Sao Paulo"),
];
const TIERS: &[&str] = &["bronze", "silver", "gold", "platinum"];

/// The instant every generated profile is created at.
pub const CREATED: i64 = 1_735_689_600; // 2025-01-01T00:00:00Z

/// A well-mixed 64-bit hash of `i` (splitmix64).
pub fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A cheap deterministic generator (xorshift64*) for picking ids in bench loops.
pub struct XorShift(u64);

impl XorShift {
    /// Seeded; a zero seed is replaced.
    pub fn new(seed: u64) -> Self {
        XorShift(if seed == 0 {
            0x2545_F491_4F6C_DD1D
        } else {
            seed
        })
    }

    /// The next number.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (multiply-shift; the bias is irrelevant here).
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// The customer id of profile `i`.
pub fn customer_id(i: u64) -> CompactString {
    format_compact!("c{i}")
}

fn names(i: u64) -> (&'static str, &'static str) {
    let h = mix(i);
    (
        FIRST[(h % FIRST.len() as u64) as usize],
        LAST[((h >> 8) % LAST.len() as u64) as usize],
    )
}

/// The email of profile `i`, already normalized (lower case).
pub fn email(i: u64) -> String {
    let (f, l) = names(i);
    format!("{}.{}.{i}@example.com", f.to_lowercase(), l.to_lowercase())
}

/// The identifier index key of profile `i`'s email.
pub fn email_key(i: u64) -> CompactString {
    identifier_key("email", &email(i))
}

/// The phone of profile `i`: a valid Portuguese mobile in E.164, unique up to 40M.
pub fn phone(i: u64) -> String {
    let prefix = [1, 2, 3, 6][((i / 10_000_000) % 4) as usize];
    format!("+3519{prefix}{:07}", i % 10_000_000)
}

/// The schema: the default fields plus `loyalty_score` (integer) and `tier` (string).
pub fn schema() -> Schema {
    Schema::default()
        .with_field(FieldDef::custom("loyalty_score", FieldType::Integer))
        .and_then(|s| s.with_field(FieldDef::custom("tier", FieldType::String)))
        .expect("the bench fields are new")
}

/// Settings of the bench database (`bench`, default region PT).
pub fn settings() -> DatabaseSettings {
    let spec = DatabaseSpec {
        name: Some("bench".into()),
        consent_confirmed: Some(true),
        default_region: Some("PT".into()),
        ..DatabaseSpec::default()
    };
    DatabaseSettings::create(spec, Timestamp::from_second(CREATED).unwrap())
        .expect("valid bench settings")
}

/// The field values of profile `i`, as an API body's `fields` would carry them.
pub fn fields(i: u64) -> Vec<(&'static str, Json)> {
    let h = mix(i);
    let (first, last) = names(i);
    let (country, city) = PLACES[((h >> 16) % PLACES.len() as u64) as usize];
    let birth = format!(
        "{:04}-{:02}-{:02}",
        1950 + (h >> 24) % 55,
        1 + (h >> 32) % 12,
        1 + (h >> 40) % 28
    );
    // Registered some time in 2020–2024, to the second.
    let registered = Timestamp::from_second(1_577_836_800 + ((h >> 20) % 157_766_400) as i64)
        .expect("in range")
        .to_string();
    vec![
        ("first_name", first.into()),
        ("last_name", last.into()),
        ("email", email(i).into()),
        ("phone", phone(i).into()),
        ("birth_date", birth.into()),
        ("country", country.into()),
        ("city", city.into()),
        ("registered_at", registered.into()),
        ("loyalty_score", ((h >> 48) % 10_000).into()),
        ("tier", TIERS[((h >> 44) % 4) as usize].into()),
    ]
}

/// The write that creates profile `i` (a PUT through the API).
pub fn update(i: u64) -> ProfileUpdate {
    let mut u = ProfileUpdate::new(customer_id(i), Source::Api);
    u.replace = true;
    u.fields = fields(i)
        .into_iter()
        .map(|(k, v)| (k.into(), RawValue::Json(v)))
        .collect();
    u
}

/// A store holding profiles `0..n`, built through `build_profile` (validation, email and
/// phone parsing, like the actor) on every core, with its schema.
pub fn store(n: u64) -> (Schema, ProfileStore) {
    let schema = schema();
    let settings = settings();
    let store = ProfileStore::new();
    let now = Timestamp::from_second(CREATED).unwrap();
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()) as u64;
    std::thread::scope(|s| {
        for t in 0..threads {
            let (schema, settings, store) = (&schema, &settings, &store);
            s.spawn(move || {
                let mut i = t;
                while i < n {
                    let p = build_profile(schema, settings, store, None, &update(i), now)
                        .expect("generated profiles are valid");
                    store.put(Packed::encode(&p), None);
                    i += threads;
                }
            });
        }
    });
    assert_eq!(store.len() as u64, n, "every generated profile is distinct");
    // Built on every core, so slots were given out of id order; numbered again in id
    // order, as a server's writer (one thread a database) or a load leaves them.
    let order = store
        .all()
        .iter()
        .map(|p| {
            let v = p.view();
            (v.id(), CompactString::from(v.customer_id))
        })
        .collect();
    store.set_order(order);
    (schema, store)
}

/// How many profiles a bench builds: `PROFILES`, 1,000,000 by default.
pub fn profiles() -> u64 {
    std::env::var("PROFILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// This process's resident set size in bytes (Linux), if readable.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

// The server's allocator (see src/main.rs), so the benches measure what it runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

//! Any bytes as the JSON bodies of database and field creation: an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use persona::schema::{DatabaseSettings, DatabaseSpec, FieldSpec};

fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = serde_json::from_slice::<DatabaseSpec>(data) {
        let _ = DatabaseSettings::create(spec, jiff::Timestamp::UNIX_EPOCH);
    }
    if let Ok(spec) = serde_json::from_slice::<FieldSpec>(data) {
        let _ = spec.into_def();
    }
});

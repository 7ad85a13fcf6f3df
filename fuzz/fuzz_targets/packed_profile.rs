//! Any bytes as a packed profile: refused with an error, or accepted and then viewed,
//! rendered as a document and unpacked without a panic (every reader trusts a checked
//! `Packed`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use persona::document::{self, Document};
use persona::schema::Schema;
use persona::store::Packed;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Packed::from_bytes(data) else {
        return;
    };
    let schema = Schema::default();
    let view = p.view();
    let _ = view.identifier_keys();
    let doc = Document {
        profile: &view,
        schema: &schema,
        projection: None,
        today: jiff::civil::Date::constant(2024, 1, 1),
    };
    let json = document::to_vec(&doc);
    assert!(serde_json::from_slice::<serde_json::Value>(&json).is_ok());
    assert_eq!(Packed::encode(&p.unpack(&schema)).view().customer_id, view.customer_id);
});

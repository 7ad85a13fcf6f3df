//! Any bytes as a packed profile: refused with an error, or accepted and then viewed,
//! rendered as a document (whole, a projection of fields read from the head alone, a
//! projection of members) and unpacked without a panic. Every reader trusts a checked
//! `Packed`, down to reading its strings without a second UTF-8 check: every document
//! must still parse as JSON. The same bytes read as a record from before fields had
//! numbers give an error or a checked profile too.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use persona::activity::ActivityStore;
use persona::document::{self, Context, Projection};
use persona::schema::Schema;
use persona::store::Packed;
use persona::suppression::SuppressionLists;

static LISTS: LazyLock<SuppressionLists> =
    LazyLock::new(|| SuppressionLists::open(None).expect("lists in memory"));

fuzz_target!(|data: &[u8]| {
    let schema = Schema::default();
    if let Ok((old, used)) = Packed::read_unnumbered(data, &schema) {
        assert!(used <= data.len());
        assert!(Packed::from_bytes(old.bytes()).is_ok_and(|again| again == old));
    }
    let Ok(p) = Packed::from_bytes(data) else {
        return;
    };
    let view = p.view();
    let _ = view.identifier_keys();
    let activity = ActivityStore::new();
    let cx = Context::detached(&activity, &LISTS, &[], jiff::Timestamp::UNIX_EPOCH);
    let fields = Projection::parse("first_name,email,phone,city", &schema).unwrap();
    let members = Projection::parse("email,contacts,channels.email,tags,identifiers", &schema)
        .unwrap();
    for projection in [None, Some(&fields), Some(&members)] {
        let json = document::render(&p, &schema, projection, &cx);
        assert!(serde_json::from_slice::<serde_json::Value>(&json).is_ok());
    }
    assert_eq!(Packed::encode(&p.unpack(&schema)).view().customer_id, view.customer_id);
});

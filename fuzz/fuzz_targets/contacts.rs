//! Any string as an email or phone (with and without a default region), and as a
//! suppression entry of each kind: never a panic, and an accepted entry is a fixed point
//! of its own normalization (a list never holds two spellings of one contact).
#![no_main]

use libfuzzer_sys::fuzz_target;
use persona::contacts::{EmailContact, PhoneContact, normalize_email};
use persona::suppression::{Kind, normalize};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let e = EmailContact::new(text);
    assert_eq!(e.normalized, normalize_email(text));
    let _ = PhoneContact::new(text, None);
    let _ = PhoneContact::new(text, Some("PT"));
    for kind in [Kind::Email, Kind::Domain, Kind::Phone] {
        if let Ok(n) = normalize(kind, text, Some("PT")) {
            assert_eq!(normalize(kind, &n, None).as_deref(), Ok(n.as_str()), "{kind:?} {text:?}");
        }
    }
});

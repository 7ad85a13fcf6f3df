//! Any string as an email or phone (with and without a default region): never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use persona::contacts::{EmailContact, PhoneContact, normalize_email};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let e = EmailContact::new(text);
    assert_eq!(e.normalized, normalize_email(text));
    let _ = PhoneContact::new(text, None);
    let _ = PhoneContact::new(text, Some("PT"));
});

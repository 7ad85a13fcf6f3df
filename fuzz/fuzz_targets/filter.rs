//! Any text as a segment filter: never a panic, an error's column inside the text, and a
//! parsed filter written back parses to the same tree. (The printed form parenthesizes
//! every group, so it may pass the length or depth caps the original kept under.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use persona::segments::filter::{MAX_DEPTH, MAX_LEN};
use persona::segments::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse(text) {
        Ok(e) => {
            let printed = e.to_string();
            match parse(&printed) {
                Ok(again) => assert_eq!(again.to_string(), printed),
                Err(err) => assert!(
                    printed.len() > MAX_LEN || err.message.contains(&format!("{MAX_DEPTH} levels")),
                    "a printed filter parses: {err} in {printed}"
                ),
            }
        }
        Err(err) => assert!(err.column >= 1 && err.column <= text.chars().count() + 1),
    }
});

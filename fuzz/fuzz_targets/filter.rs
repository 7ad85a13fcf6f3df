//! Any text as a segment filter: never a panic, an error's column inside the text, and a
//! parsed filter written back parses to the same tree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use persona::segments::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse(text) {
        Ok(e) => {
            let again = parse(&e.to_string()).expect("a printed filter parses");
            assert_eq!(again.to_string(), e.to_string());
        }
        Err(err) => assert!(err.column >= 1 && err.column <= text.chars().count() + 1),
    }
});

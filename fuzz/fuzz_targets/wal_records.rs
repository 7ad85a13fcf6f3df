//! Any bytes as a WAL segment body: framing stops cleanly, and every frame that passes
//! its checksum decodes to a record or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use persona::persist::record::decode_entry;
use persona::persist::wal::{Tail, read_frames};

fuzz_target!(|data: &[u8]| {
    let (frames, tail) = read_frames(data);
    if let Tail::Torn { offset, .. } = tail {
        assert!(offset <= data.len());
    }
    for frame in frames {
        let _ = decode_entry(frame);
    }
    // The payload decoder alone, as if the bytes had passed a checksum.
    let _ = decode_entry(data);
});

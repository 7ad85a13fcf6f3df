//! Any bytes as a WAL segment body: framing stops cleanly, and every frame that passes
//! its checksum decodes to a record or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use persona::persist::record::{decode_entry, decode_entry_unnumbered};
use persona::schema::Schema;
use persona::persist::wal::{Tail, read_frames};

fuzz_target!(|data: &[u8]| {
    let (frames, tail) = read_frames(data);
    if let Tail::Torn { offset, .. } = tail {
        assert!(offset <= data.len());
    }
    let schema = Schema::default();
    for frame in frames {
        let _ = decode_entry(frame);
        let _ = decode_entry_unnumbered(frame, &schema);
    }
    // The payload decoders alone, as if the bytes had passed a checksum.
    let _ = decode_entry(data);
    let _ = decode_entry_unnumbered(data, &schema);
});

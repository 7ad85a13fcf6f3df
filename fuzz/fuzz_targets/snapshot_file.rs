//! Any bytes as a snapshot file: read back as a store or refused as corrupt, never a
//! panic or an allocation the file's size does not justify.
#![no_main]

use libfuzzer_sys::fuzz_target;
use persona::persist::snapshot;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("persona-fuzz-{}.bin", std::process::id()));
    std::fs::write(&path, data).unwrap();
    let _ = snapshot::read(&path, 2);
});

//! The workspace's plugins as bytes, for the HTTP tests and the benches (both include
//! this file): built for wasm32-wasip2 once a process, with one `cargo build`, in a
//! target directory of their own so it never waits on the build running the tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Every plugin crate of the workspace, by short name.
const PLUGINS: [&str; 5] = ["hostile", "shopify", "segment", "stripe", "csv"];

/// The bytes of plugin `name` (`hostile`, `shopify`, `segment`, `stripe` or `csv`).
pub fn plugin(name: &str) -> Vec<u8> {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = root.join("target").join("test-plugins");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(root)
            .args(["build", "--locked", "--profile", "plugin"])
            .args(["--target", "wasm32-wasip2", "--target-dir"])
            .arg(&target);
        for p in PLUGINS {
            cmd.args(["-p", &format!("persona-plugin-{p}")]);
        }
        let out = cmd.output().expect("cargo runs");
        assert!(
            out.status.success(),
            "building the plugins failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        target.join("wasm32-wasip2").join("plugin")
    });
    let path = dir.join(format!("persona_plugin_{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

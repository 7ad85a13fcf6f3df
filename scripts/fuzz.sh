#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (SECONDS_EACH, default 60).
# Needs cargo-fuzz and a nightly toolchain: `cargo install cargo-fuzz`, `rustup toolchain install nightly`.
set -euo pipefail
cd "$(dirname "$0")/.."
each=${SECONDS_EACH:-60}
for target in $(cargo +nightly fuzz list); do
  echo "== $target (${each}s)"
  cargo +nightly fuzz run "$target" -- -max_total_time="$each" -rss_limit_mb=2048
done

#!/usr/bin/env bash
# cargo-nextest, the oracle of `vmdbg test --partition` (tests/tests/
# vmdbg_test.rs compares its shards with `cargo nextest list --partition`).
# From crates.io when missing (a few minutes' build on 2 cores; --locked:
# the versions its release was tested with).
set -euo pipefail
if command -v cargo-nextest >/dev/null; then
    exit 0
fi
echo "setup: cargo install --locked cargo-nextest"
cargo install --locked --quiet cargo-nextest

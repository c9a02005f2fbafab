#!/usr/bin/env bash
# The fuzz targets (fuzz/: its own workspace and Cargo.lock) must keep
# compiling, and nothing else builds them: a check build with clippy's
# lints, as for the workspace. It shares the workspace's target directory,
# so the static guest agent that vmdbg embeds (dap-server/build.rs) is the
# one the cargo build already made. Running the targets (fuzz/run.sh,
# cargo-fuzz) takes far longer than CI has.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root/fuzz"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
start=$SECONDS
before="$(sha256sum Cargo.lock)"
cargo clippy --quiet --bins -- -D warnings
[ "$before" = "$(sha256sum Cargo.lock)" ] ||
    echo "fuzz: fuzz/Cargo.lock was out of date with the workspace's crates; cargo updated it here (commit the update)"
targets="$(sed -n 's/^name = "\(.*\)"/\1/p' Cargo.toml | grep -vx vmdbg-fuzz | xargs)"
echo "fuzz: check build of every target ($targets) in $((SECONDS - start)) s"

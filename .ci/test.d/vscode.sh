#!/usr/bin/env bash
# The VS Code extension: build the .vsix offline, its unit tests, then the
# end-to-end scenarios in a real VS Code (code-server) with the vmdbg binary
# the cargo build made (under $CARGO_TARGET_DIR when set, as cargo puts it;
# vmdbg finds vmdbg-vmm next to itself). Screenshots land in
# vscode-extension/e2e/output/.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
# cargo reads a relative CARGO_TARGET_DIR from where it runs; this script cds.
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
bin="$target/release"
cd "$root/vscode-extension"
npm run package
npm test
for f in vmdbg vmdbg-vmm; do
    [ -x "$bin/$f" ] || { echo "vscode: $bin/$f is missing (cargo build --release -p vmdbg -p vmdbg-vmm)" >&2; exit 1; }
done
VMDBG_BIN="$bin/vmdbg" node e2e/run.mjs ${VMDBG_VSCODE_SCENARIOS:-kernel program linux tests}

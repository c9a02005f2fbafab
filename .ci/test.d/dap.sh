#!/usr/bin/env bash
# The DAP end-to-end tests: a real DAP client (DebugClient) drives the real
# `vmdbg dap` on the bare-metal test kernels under vmdbg-vmm (host tier),
# and attached to QEMU's gdbstub. Builds what it needs when run alone.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export VMDBG_KERNELS="${VMDBG_KERNELS:-$root/tests/dap/.kernels}"
make -s -C tests/guests/baremetal OUT="$VMDBG_KERNELS"
bin="${CARGO_TARGET_DIR:-$root/target}/release"
if [ ! -x "$bin/vmdbg" ] || [ ! -x "$bin/vmdbg-vmm" ] || [ -n "$(find dap-server vmm -newer "$bin/vmdbg" -name '*.rs' -print -quit)" ]; then
    cargo build --release -p vmdbg -p vmdbg-vmm
fi
export VMDBG_BIN_DIR="$bin"
cd tests/dap
[ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error
npm test

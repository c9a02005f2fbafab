#!/usr/bin/env bash
# The host tier's QEMU equivalence: each bare-metal test kernel, the same
# ELF the vmdbg-vmm tests boot, runs under QEMU TCG with the serial output
# and exit status the tests expect (tests/guests/baremetal/check-qemu.sh;
# ~10 s). QEMU is part of .ci/setup, so a missing one fails here too.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
sh tests/guests/baremetal/check-qemu.sh "${CARGO_TARGET_DIR:-$root/target}/baremetal-qemu"

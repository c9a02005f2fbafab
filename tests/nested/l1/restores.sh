#!/bin/sh
# restores.sh: `vmdbg test` of /app/restore-tests (tests/nested/restore-tests.rs)
# on the KVM engine: one boot, one snapshot after set-up, twenty tests each
# run from a restore of it. Every line vmdbg prints (JSON events on stdout,
# its messages on stderr) is stamped "@@AT <L1 wall clock ms>" as it
# arrives, so the harness can hold each test's guest clock against L1's.
set -o pipefail
vmdbg test --engine kvm --mem 256M --format json -- /app/restore-tests 2>&1 |
    while IFS= read -r line; do echo "@@AT $(vsock-helper clock) $line"; done
echo "@@STATUS $?"

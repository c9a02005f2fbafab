#!/usr/bin/env bash
# Benchmark (not a test): per-test overhead of `vmdbg test` (restore + run +
# collect) for 50 trivial libtest tests, against booting a fresh VM per test
# (`vmdbg run` per test, the way vmtest-like tools work; RUNS of them) and
# against running the tests on the host. Medians from one run.
# Run: bash tests/bench/vmdbg-test-overhead.sh [engine] [runs]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
engine="${1:-qemu}"
runs="${2:-5}"
vmdbg="${VMDBG_BIN:-$root/target/release/vmdbg}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

{
    for i in $(seq -w 1 50); do echo "#[test] fn trivial_$i() { assert_eq!(2 + 2, 4); }"; done
} > "$work/trivial.rs"
rustc --edition 2021 --test -O -o "$work/trivial" "$work/trivial.rs"

now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

t0=$(now); "$work/trivial" --test-threads 1 >/dev/null; t1=$(now)
host_total=$(ms "$t0" "$t1")

t0=$(now); "$vmdbg" test --engine "$engine" --format json -- "$work/trivial" > "$work/events.json" 2>"$work/stderr"; t1=$(now)
vmdbg_total=$(ms "$t0" "$t1")
# Per test: the median exec_time (run + collect; the restore before each
# test is in the amortized figure, with the boot and the snapshot).
per_test=$(python3 - "$work/events.json" <<'PY'
import json, sys, time
events = [json.loads(l) for l in open(sys.argv[1])]
times = sorted(e["exec_time"] for e in events if e.get("type") == "test" and e.get("event") == "ok")
print(f'{times[len(times)//2]*1000:.0f} {len(times)}')
PY
)

runs_ms=()
for i in $(seq 1 "$runs"); do
    t0=$(now)
    "$vmdbg" run --engine "$engine" --copy "$work/trivial:/root/trivial" -- /root/trivial --exact "trivial_0$i" >/dev/null 2>&1
    t1=$(now)
    runs_ms+=("$(ms "$t0" "$t1")")
done
run_median=$(printf '%s\n' "${runs_ms[@]}" | median)

read -r exec_median passed <<<"$per_test"
echo "engine: $engine; 50 trivial tests"
echo "host, all 50:                        ${host_total} ms"
echo "vmdbg test, all 50 (boot included):  ${vmdbg_total} ms  ($passed passed)"
echo "vmdbg test, run+collect per test:    ${exec_median} ms median (exec_time)"
echo "vmdbg test, amortized per test:      $(( vmdbg_total / 50 )) ms"
echo "vmdbg run per test (fresh boot):     ${run_median} ms median of $runs"
echo "ratio fresh boot / vmdbg test amortized: $(python3 -c "print(f'{$run_median / ($vmdbg_total / 50):.1f}')")"

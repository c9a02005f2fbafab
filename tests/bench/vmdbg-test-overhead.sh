#!/usr/bin/env bash
# Benchmark (not a test): per-test overhead of `vmdbg test` (restore + run +
# collect) for 50 trivial libtest tests with a warm cache (the set-up state
# saved by an earlier invocation), against booting a fresh VM per test
# (`vmdbg run` per test, the way vmtest-like tools work; RUNS of them, warm
# boot and --cold) and against running the tests on the host. Medians and
# ratios from one run.
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

# On the host: each test alone, as vmdbg test runs them (one process each).
host_ms=()
for i in $(seq -w 1 50); do
    t0=$(now); "$work/trivial" --exact "trivial_$i" >/dev/null; t1=$(now)
    host_ms+=("$(( (t1 - t0) / 1000 ))")
done
host_median_us=$(printf '%s\n' "${host_ms[@]}" | median)

# vmdbg test: each event stamped as it arrives; a test's overhead is the
# time from its "started" event to the next one (restore + run + collect).
stamped() {
    python3 -c '
import sys, time, json
last = None
gaps = []
for line in sys.stdin:
    now = time.monotonic()
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("type") == "test" and e.get("event") == "started":
        if last is not None:
            gaps.append(now - last)
        last = now
    if e.get("type") == "suite" and e.get("event") in ("ok", "failed"):
        gaps.append(now - last)
gaps.sort()
print(f"{gaps[len(gaps)//2]*1000:.0f} {len(gaps)}")
'
}
vmdbg_test() {
    "$vmdbg" test --engine "$engine" --format json "$@" -- "$work/trivial" 2>>"$work/stderr" | stamped
}
t0=$(now); read -r cold_per_test n <<<"$(vmdbg_test --fresh)"; t1=$(now)
cold_total=$(ms "$t0" "$t1")
t0=$(now); read -r warm_per_test n <<<"$(vmdbg_test)"; t1=$(now)
warm_total=$(ms "$t0" "$t1")
t0=$(now); read -r jobs2_per_test n2 <<<"$(vmdbg_test --jobs 2)"; t1=$(now)
jobs2_total=$(ms "$t0" "$t1")
grep -q "started from the cached set-up state" "$work/stderr" || { echo "the warm runs did not start from the cached set-up state:"; cat "$work/stderr"; exit 1; }

fresh_vm() {
    local out=() i t0 t1
    for i in $(seq 1 "$runs"); do
        t0=$(now)
        "$vmdbg" run --engine "$engine" "$@" --copy "$work/trivial:/root/trivial" -- /root/trivial --exact "trivial_0$i" >/dev/null 2>&1
        t1=$(now)
        out+=("$(ms "$t0" "$t1")")
    done
    printf '%s\n' "${out[@]}" | median
}
run_warm=$(fresh_vm)
run_cold=$(fresh_vm --cold)

ratio() { python3 -c "print(f'{$1 / $2:.1f}')"; }
echo "engine: $engine; 50 trivial tests, one run"
echo "host, one test alone (own process):        $(python3 -c "print(f'{$host_median_us/1000:.1f}')") ms median"
echo "vmdbg test warm cache, per test:            ${warm_per_test} ms median (restore + run + collect; $n tests)"
echo "vmdbg test warm cache, all 50:              ${warm_total} ms (start from the cached set-up state included)"
echo "vmdbg test --jobs 2 warm cache, all 50:     ${jobs2_total} ms (a test started every ${jobs2_per_test} ms, median)"
echo "vmdbg test --fresh (boot + setup), all 50:  ${cold_total} ms (per test ${cold_per_test} ms median)"
echo "vmdbg run per test, warm boot:              ${run_warm} ms median of $runs"
echo "vmdbg run per test, --cold boot:            ${run_cold} ms median of $runs"
echo "ratios: vmdbg run (warm) / vmdbg test per test: $(ratio "$run_warm" "$warm_per_test"); vmdbg run --cold / vmdbg test per test: $(ratio "$run_cold" "$warm_per_test"); vmdbg test per test / host: $(ratio "$warm_per_test" "($host_median_us / 1000)")"

#!/usr/bin/env bash
# Benchmark (not a test; nothing here asserts a time): issue 32's ratios
# from one run. Per-test overhead of `vmdbg test` (restore + start the test
# + collect) = (a run of 50 trivial libtest tests - a run selecting none of
# them) / 50, both from the cached set-up state; against a warm `vmdbg run
# -- true` (a new VM from the saved boot, command run, VM ended), `vmdbg run
# --cold -- true`, and the host (each test alone in its own process, the
# same subtraction). RUNS rounds, each round running every variant once
# (interleaved, so machine load hits them alike); medians printed.
# Run: bash tests/bench/per-test-overhead.sh [engine] [runs]
#   VMDBG_BIN: the vmdbg binary (default target/release/vmdbg).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
engine="${1:-qemu}"
runs="${2:-3}"
count=50
vmdbg="${VMDBG_BIN:-$root/target/release/vmdbg}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for i in $(seq -w 1 "$count"); do echo "#[test] fn trivial_$i() { assert_eq!(2 + 2, 4); }"; done >"$work/trivial.rs"
rustc --edition 2021 --test -O -o "$work/trivial" "$work/trivial.rs"

now() { date +%s%N; }
# Milliseconds a command takes; its output goes to $work/last.
timed() {
    local t0 t1
    t0=$(now)
    if ! "$@" >"$work/last" 2>&1; then
        echo "failed: $*" >&2
        cat "$work/last" >&2
        exit 1
    fi
    t1=$(now)
    echo $(((t1 - t0) / 1000000))
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
vtest() { "$vmdbg" test --engine "$engine" -- "$work/trivial" "$@"; }
host_each() {
    local i
    for i in $(seq -w 1 "$count"); do "$work/trivial" --exact "trivial_$i" >/dev/null; done
}
host_none() {
    local i
    for i in $(seq -w 1 "$count"); do "$work/trivial" --exact no_such_test >/dev/null; done
}

# Prime the caches (the set-up state, the saved boot); not measured.
vtest >/dev/null 2>&1
"$vmdbg" run --engine "$engine" -- true >/dev/null 2>&1

declare -a all none warm cold h_each h_none
for r in $(seq 1 "$runs"); do
    all+=("$(timed vtest)")
    grep -q "started from the cached set-up state" "$work/last" || {
        echo "vmdbg test did not start from the cached set-up state:" >&2
        cat "$work/last" >&2
        exit 1
    }
    grep -q "test result: ok. $count passed" "$work/last" || {
        cat "$work/last" >&2
        exit 1
    }
    warm+=("$(timed "$vmdbg" run --engine "$engine" -- true)")
    none+=("$(timed vtest --exact no_such_test)")
    cold+=("$(timed "$vmdbg" run --engine "$engine" --cold -- true)")
    h_each+=("$(timed host_each)")
    h_none+=("$(timed host_none)")
    echo "round $r: test all ${all[-1]} ms, test none ${none[-1]} ms, run warm ${warm[-1]} ms, run --cold ${cold[-1]} ms, host ${h_each[-1]}/${h_none[-1]} ms; load $(cut -d' ' -f1-3 /proc/loadavg)"
done

per_test=()
host_per_test=()
for r in $(seq 0 $((runs - 1))); do
    per_test+=("$(((all[r] - none[r]) / count))")
    host_per_test+=("$(python3 -c "print(round(${h_each[r]} / $count, 2))")")
done
m_per=$(printf '%s\n' "${per_test[@]}" | median)
m_warm=$(printf '%s\n' "${warm[@]}" | median)
m_cold=$(printf '%s\n' "${cold[@]}" | median)
m_host=$(printf '%s\n' "${host_per_test[@]}" | median)
m_all=$(printf '%s\n' "${all[@]}" | median)
m_none=$(printf '%s\n' "${none[@]}" | median)
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
echo "engine $engine, $count trivial tests, medians of $runs interleaved rounds, $(nproc) cores, load at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "vmdbg test, per test:        $m_per ms  (all $m_all ms - none $m_none ms, / $count)"
echo "vmdbg run -- true, warm:     $m_warm ms"
echo "vmdbg run --cold -- true:    $m_cold ms"
echo "host, one test in its own process: $m_host ms"
echo "ratio vmdbg test per test / warm vmdbg run: $(ratio "$m_per" "$m_warm")  (issue 32's goal: <= 0.25)"
echo "ratio vmdbg test per test / vmdbg run --cold: $(ratio "$m_per" "$m_cold")"
echo "ratio vmdbg test per test / host per test: $(ratio "$m_per" "$m_host")"

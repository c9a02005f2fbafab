#!/usr/bin/env bash
# Runs every fuzz target in turn for SECONDS each (default 60), or only the
# targets named after it: `fuzz/run.sh 600 rsp_front_end dap`.
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and nightly Rust, or stable
# Rust with RUSTC_BOOTSTRAP=1 (used when rustup has no nightly): the
# address sanitizer is a -Z flag. Each run
# starts from the committed seeds (fuzz/seeds/TARGET) plus what earlier
# runs found (fuzz/corpus/TARGET, not committed); crashes land in
# fuzz/artifacts/TARGET. Prints each target's execution count.
set -euo pipefail
cd "$(dirname "$0")"
# FUZZ_RUNS=N stops each target after N executions instead (the time
# limit then only bounds a slow one).
seconds="${1:-60}"
limit=(-max_total_time="$seconds")
[ -z "${FUZZ_RUNS:-}" ] || limit+=(-runs="$FUZZ_RUNS")
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(rsp_front_end dap frame_decoder virtio_chains control_api snapshot_state recording_file)
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
else
    fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz)
fi
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    log="$(mktemp)"
    # One job: the machine is shared; -timeout makes a hang a finding.
    # Without comparison tracing: gdbstub checks each packet against its
    # whole 4 KiB buffer, and traced, that was half of every execution;
    # the seeds carry the command names instead. Short inputs (a few
    # packets or requests each) keep the sessions many.
    # State files and recording headers are tens of KiB of JSON: their
    # targets take whole seeds; every other input is a few packets.
    case "$target" in
        snapshot_state | recording_file) max_len=65536 ;;
        *) max_len=512 ;;
    esac
    if ! "${fuzz[@]}" run --no-trace-compares "$target" "corpus/$target" "seeds/$target" -- \
        "${limit[@]}" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        tail -40 "$log"
        echo "fuzz/run.sh: $target FAILED (log: $log)"
        exit 1
    fi
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
    secs="$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o '[0-9]* second' | grep -o '[0-9]*' | tail -1)"
    echo "fuzz/run.sh: $target: ${runs:-?} executions in ${secs:-?} s, no crash"
    rm -f "$log"
done

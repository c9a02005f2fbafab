#!/usr/bin/env bash
# The Eclipse plugin: build vmdbg-eclipse-<version>.jar with javac/jar
# against the Eclipse that .ci/setup-tests.d/eclipse.sh assembles, then run
# in that real Eclipse (a) the headless suite (a kernel session on
# vmdbg-vmm, a program session in a Linux guest; exit status = failures)
# and (b) a workbench under Xvfb stopped at a breakpoint, captured with xwd.
# Output (logs, screenshot) lands in eclipse-plugin/test-output/.
#   VMDBG_BIN_DIR    where vmdbg and vmdbg-vmm are (default: this checkout's cargo release dir)
#   VMDBG_ECLIPSE_TESTS  which parts run: "headless workbench" (default); "tests-workbench" (opt-in)
#                    captures the "vmdbg Tests" view after a run (test-output/tests-view.png) and its
#                    failing test debugged from the view (test-output/tests-debug.png)
#   VMDBG_ECLIPSE_SCENARIOS  which headless scenarios run: "kernel,program,tests" (default; "tests"
#                    is the "vmdbg Tests" launch type and view model over `vmdbg test`)
#   VMDBG_TEST_ENGINE  the program session's engine (default qemu, as tests/dap)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
start=$SECONDS
. .ci/lib.sh
strict=false
if ci_strict; then strict=true; fi

# A misspelt part or scenario would run nothing and pass: refuse it,
# naming the valid ones (HeadlessTests.java checks the scenarios again).
valid_parts="headless workbench tests-workbench"
valid_scenarios="kernel,program,tests"
parts="${VMDBG_ECLIPSE_TESTS:-headless workbench}"
scenarios="${VMDBG_ECLIPSE_SCENARIOS:-$valid_scenarios}"
for part in $parts; do
    [[ " $valid_parts " == *" $part "* ]] ||
        { echo "eclipse: FAIL: unknown part '$part' in VMDBG_ECLIPSE_TESTS (valid: $valid_parts)" >&2; exit 1; }
done
[ -n "${parts// /}" ] || { echo "eclipse: FAIL: VMDBG_ECLIPSE_TESTS names no part (valid: $valid_parts)" >&2; exit 1; }
IFS=, read -r -a wanted <<<"$scenarios"
for scenario in "${wanted[@]}"; do
    [[ ",$valid_scenarios," == *",$scenario,"* ]] ||
        { echo "eclipse: FAIL: unknown scenario '$scenario' in VMDBG_ECLIPSE_SCENARIOS (valid: $valid_scenarios)" >&2; exit 1; }
done
((${#wanted[@]})) || { echo "eclipse: FAIL: VMDBG_ECLIPSE_SCENARIOS names no scenario (valid: $valid_scenarios)" >&2; exit 1; }

bin="${VMDBG_BIN_DIR:-${CARGO_TARGET_DIR:-$root/target}/release}"
out="$root/eclipse-plugin/test-output"
rm -rf "$out"; mkdir -p "$out"
eclipse="$(bash .ci/setup-tests.d/eclipse.sh --print-dir)"

echo "eclipse: building the plugin ($(date +%T))"
jars=($(bash eclipse-plugin/build/build.sh "$eclipse" "$out/jars" --tests))
echo "eclipse: built ${jars[0]##*/}"

kernels="$out/kernels"
make -s -C tests/guests/baremetal OUT="$kernels"
mkdir -p "$out/programs"
gcc -g -O0 -o "$out/programs/locals" tests/guests/programs/locals.c
isolation=""
if [[ ",$scenarios," == *",tests,"* ]]; then
    # The isolation crate's libtest binary for the "vmdbg Tests" scenario.
    isolation="$(CARGO_TARGET_DIR="$root/target/eclipse-isolation" cargo test --no-run --quiet --message-format=json \
        --manifest-path tests/guests/isolation/Cargo.toml | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)"
fi

# A configuration area per run: the assembled config.ini plus the plugin and its tests.
configure() {
    local dir="$out/config-$1"
    mkdir -p "$dir"
    sed "s#^osgi.bundles=#osgi.bundles=reference:file:${jars[0]},reference:file:${jars[1]},#" \
        "$eclipse/configuration/config.ini" >"$dir/config.ini"
    echo "$dir"
}

run_eclipse() { # NAME APPLICATION [java -D options...]
    local name="$1" app="$2"; shift 2
    java -Xmx1g -Djava.library.path="$eclipse/jni" \
        -Dvmdbg.test.repo="$root" -Dvmdbg.test.bin="$bin" -Dvmdbg.test.kernels="$kernels" \
        -Dvmdbg.test.programs="$out/programs" -Dvmdbg.test.strict="$strict" \
        -Dvmdbg.test.isolation="$isolation" -Dvmdbg.test.scenarios="$scenarios" "$@" \
        -jar "$eclipse"/plugins/org.eclipse.equinox.launcher_*.jar \
        -install "$eclipse" -configuration "$(configure "$name")" -data "$out/workspace-$name" \
        -nosplash -application "$app"
}

# The IDE workbench on a private Xvfb display. WorkbenchScenario (a startup
# hook) drives it; whenever it wants the screen taken it writes the PNG's
# name into "ready" and waits for "done": the screen is taken with xwd, as
# a person would see it.
workbench() { # MODE (kernel: stopped at a breakpoint; tests: the "vmdbg Tests" view, then a test debugged from it) SCREENSHOT...
    local mode="$1" display n pid xvfb rc=0 exit_status=0 tool name shot result; shift
    result="$out/workbench-$mode.result"
    for tool in Xvfb xwd convert; do
        command -v "$tool" >/dev/null && continue
        if [ "$strict" = true ]; then echo "FAIL workbench: \`$tool\` is not installed (.ci/setup-tests.d/eclipse.sh)"; return 1; fi
        echo "SKIPPED: workbench: \`$tool\` is not installed (.ci/setup-tests.d/eclipse.sh)"; return 0
    done
    for n in $(seq 90 120); do [ -e "/tmp/.X11-unix/X$n" ] || [ -e "/tmp/.X$n-lock" ] || { display=":$n"; break; }; done
    [ -n "${display:-}" ] || { echo "eclipse: no free X display"; return 1; }
    Xvfb "$display" -screen 0 1280x1024x24 -nolisten tcp >"$out/xvfb.log" 2>&1 &
    xvfb=$!
    for _ in $(seq 50); do [ -e "/tmp/.X11-unix/X${display#:}" ] && break; sleep 0.1; done
    rm -f "$out/ready" "$out/done"
    DISPLAY="$display" GDK_BACKEND=x11 run_eclipse workbench org.eclipse.ui.ide.workbench \
        -Dvmdbg.test.workbench="$mode" -Dvmdbg.test.ready="$out/ready" -Dvmdbg.test.done="$out/done" \
        -Dvmdbg.test.result="$result" >"$out/workbench-$mode.log" 2>&1 &
    pid=$!
    # Screenshots on request until the workbench exits (the kernel mode then
    # still debugs a program in a Linux guest: a boot under TCG).
    for _ in $(seq 4200); do
        kill -0 "$pid" 2>/dev/null || break
        if [ -e "$out/ready" ]; then
            name="$(basename "$(cat "$out/ready")")"
            rm -f "$out/ready"
            xwd -root -display "$display" -silent | convert xwd:- "png:$out/$name"
            echo "eclipse: screenshot $out/$name"
            touch "$out/done"
        fi
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "eclipse: the workbench did not exit; killing it"
        kill "$pid"; rc=1
    fi
    wait "$pid" || exit_status=$?
    kill "$xvfb" 2>/dev/null || true
    wait "$xvfb" 2>/dev/null || true
    if [ -e "$result" ]; then cat "$result"; else echo "FAIL workbench: no result (log: $out/workbench-$mode.log)"; rc=1; fi
    # A verdict written before Eclipse crashed, or a workbench that could
    # not close cleanly, is no pass.
    if [ "$exit_status" != 0 ]; then
        echo "FAIL workbench: Eclipse exited with status $exit_status (log: $out/workbench-$mode.log)"
        tail -20 "$out/workbench-$mode.log"
        rc=1
    fi
    grep -q '^SKIPPED' "$result" 2>/dev/null && return $rc
    grep -q '^PASS' "$result" 2>/dev/null || { tail -40 "$out/workspace-workbench/.metadata/.log" 2>/dev/null; rc=1; }
    for shot in "$@"; do [ -e "$out/$shot" ] || { echo "eclipse: no screenshot $shot was taken"; rc=1; }; done
    return $rc
}

status=0
if [[ " $parts " == *" headless "* ]]; then
    echo "eclipse: headless suite ($(date +%T))"
    run_eclipse headless vmdbg.eclipse.tests.headless 2>"$out/headless.stderr" | tee "$out/headless.out" || status=1
    log="$out/workspace-headless/.metadata/.log"
    if [ "$status" != 0 ] || ! grep -q '^headless: .* passed' "$out/headless.out"; then
        echo "eclipse: the headless suite failed; Eclipse's log ($log) ends:"
        tail -40 "$log" "$out/headless.stderr" 2>/dev/null || true
        status=1
    fi
fi
if [[ " $parts " == *" workbench "* ]]; then
    echo "eclipse: workbench under Xvfb ($(date +%T))"
    workbench kernel stopped.png || status=1
fi
if [[ " $parts " == *" tests-workbench "* ]]; then
    # Opt-in: the "vmdbg Tests" view in the workbench after a run (test-output/tests-view.png), then
    # its failing test debugged from the view, stopped inside the test (test-output/tests-debug.png).
    echo "eclipse: vmdbg Tests view in the workbench under Xvfb ($(date +%T))"
    workbench tests tests-view.png tests-debug.png || status=1
fi
# One closing line over both parts.
read -r passed failed skipped < <(cat "$out/headless.out" "$out"/workbench-*.result 2>/dev/null | awk '
    /^PASS / { p++ } /^FAIL / { f++ } /^SKIPPED: / { s++ } END { print p+0, f+0, s+0 }')
[ "$status" = 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "eclipse: done in $((SECONDS - start)) s"
echo "eclipse: $passed passed, $failed failed, $skipped skipped"
exit $status

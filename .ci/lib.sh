# Shared by the set-up and test scripts (sourced).

# Whether this run is strict: a part this machine lacks fails instead of
# skipping. Strict when CI or VMDBG_REQUIRE_KVM is set to anything but
# empty, "0" or "false" -- the rule the test harnesses follow too
# (tests/src/lib.rs, tests/dap/test/helpers.js, vscode-extension/e2e/run.mjs,
# the Eclipse tests through -Dvmdbg.test.strict), so CI=1 is as strict as
# CI=true everywhere.
is_on() { [ -n "${1:-}" ] && [ "$1" != 0 ] && [ "$1" != false ]; }
ci_strict() { is_on "${CI:-}" || is_on "${VMDBG_REQUIRE_KVM:-}"; }

# install_missing: install Debian packages for the commands that are
# missing. Usage: install_missing CMD:PACKAGE ...  (a PACKAGE alone is
# checked with dpkg instead of a command).
install_missing() {
    local need=() item cmd pkg
    for item in "$@"; do
        cmd="${item%%:*}"; pkg="${item#*:}"
        if [ "$cmd" = "$item" ]; then
            dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
        else
            command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
        fi
    done
    ((${#need[@]})) || return 0
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "setup: installing ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

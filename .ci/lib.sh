# Shared by the set-up scripts: install Debian packages for the commands
# that are missing. Usage: install_missing CMD:PACKAGE ...  (a PACKAGE alone
# is checked with dpkg instead of a command).
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

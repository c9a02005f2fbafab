# Sourced: sets kernel_pkg and kernel_ver to the default image's kernel pin,
# read from dap-server/src/image/pins.rs (the one place it is written).
# Expects the repository root as the current directory.
pins=dap-server/src/image/pins.rs
kernel_pkg=$(sed -n 's/.*package: "\(linux-image-[^"]*\)".*/\1/p' "$pins" | head -1)
kernel_ver=$(grep -A1 "package: \"$kernel_pkg\"" "$pins" | sed -n 's/.*version: "\([^"]*\)".*/\1/p')
[ -n "$kernel_pkg" ] && [ -n "$kernel_ver" ] || { echo "no kernel pin found in $pins" >&2; exit 1; }
# Whether apt's package lists have PACKAGE=VERSION (apt-cache show exits 0
# with no output for a version it does not know).
apt_has() { apt-cache show --no-all-versions "$1" 2>/dev/null | grep -q '^Package:'; }

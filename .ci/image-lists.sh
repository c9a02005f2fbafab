#!/usr/bin/env bash
# The default guest image (vmdbg image build, run by the first Linux-guest
# test) fetches pinned Debian packages with `apt-get download`, which needs
# the package lists. Refresh them when the pinned kernel is not listed
# (a fresh machine, or lists older than the pin). The pin is read from
# dap-server/src/image/pins.rs so this never drifts from it.
set -euo pipefail
cd "$(dirname "$0")/.."
pins=dap-server/src/image/pins.rs
kernel_pkg=$(sed -n 's/.*package: "\(linux-image-[^"]*\)".*/\1/p' "$pins" | head -1)
kernel_ver=$(grep -A1 "package: \"$kernel_pkg\"" "$pins" | sed -n 's/.*version: "\([^"]*\)".*/\1/p')
if ! apt-cache show "$kernel_pkg=$kernel_ver" >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "setup: apt-get update (the pinned $kernel_pkg $kernel_ver is not in the package lists)"
    $sudo apt-get update -qq
    apt-cache show "$kernel_pkg=$kernel_ver" >/dev/null || {
        echo "setup: $kernel_pkg=$kernel_ver is not on this machine's Debian mirror; update $pins (apt-cache policy linux-image-amd64)" >&2
        exit 1
    }
fi

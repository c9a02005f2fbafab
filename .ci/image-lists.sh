#!/usr/bin/env bash
# The default guest image (vmdbg image build, run by the first Linux-guest
# test) fetches pinned Debian packages with `apt-get download`, which needs
# the package lists. Refresh them when the pinned kernel is not listed
# (a fresh machine, or lists older than the pin). The pin is read from
# dap-server/src/image/pins.rs so this never drifts from it. A pin the
# archive has dropped is no failure: vmdbg then builds the image from the
# newest kernel the lists offer, and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/pins.sh
if ! apt_has "$kernel_pkg=$kernel_ver"; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "setup: apt-get update (the pinned $kernel_pkg $kernel_ver is not in the package lists)"
    $sudo apt-get update -qq
    apt_has "$kernel_pkg=$kernel_ver" ||
        echo "setup: the pinned $kernel_pkg=$kernel_ver is no longer in the archive; vmdbg's image will use the newest linux-image-*-amd64 (update $pins: apt-cache policy linux-image-amd64)"
fi

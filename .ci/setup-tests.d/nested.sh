#!/usr/bin/env bash
# The nested test tier (tests/nested/, tests/tests/nested_linux.rs): the
# packages it builds its images with, the pinned Debian kernel it boots and
# the QEMU (>= 9.1, bookworm-backports) it runs L1 under,
# fetched once into $XDG_CACHE_HOME/vmdbg/nested (checksum-verified).
set -euo pipefail
cd "$(dirname "$0")/../.."
need=()
for cmd_pkg in cpio:cpio xz:xz-utils strip:binutils file:file; do
    command -v "${cmd_pkg%%:*}" >/dev/null 2>&1 || need+=("${cmd_pkg#*:}")
done
# gcc -static needs glibc's static archive.
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || need+=(libc6-dev)
if ((${#need[@]})); then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "setup: installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-gnu \
    || rustup target add x86_64-unknown-linux-gnu >/dev/null 2>&1 || true
bash tests/nested/fetch-kernel.sh >/dev/null
# L1 runs under a QEMU >= 9.1 from bookworm-backports (the system's 7.2
# cannot stop L2 at breakpoints); the rest of the tests keep the system's.
bash tests/nested/fetch-qemu.sh >/dev/null

#!/usr/bin/env bash
# Fetches the QEMU the nested tier runs L1 under (tests/src/nested.rs): the
# newest qemu-system-x86 of Debian's bookworm-backports, which must be
# >= 9.1. Older TCG never arms DR7 on an emulated VMRUN and turns int3 into a
# software interrupt, so L2 (the kernel vmdbg-vmm debugs inside L1) can stop
# at no breakpoint (QEMU commit "target/i386: disable/enable breakpoints on
# vmentry/vmexit", 9.1). Only this tier uses it; everything else keeps the
# system's QEMU.
#
# apt reads a private source list, lists dir and cache (the system's apt
# configuration stays untouched) and checks the backports InRelease against
# Debian's archive keyring, then each .deb's SHA256 against the signed
# Packages index; this script checks that SHA256 once more itself before
# unpacking. Unpacked with dpkg-deb: qemu-system-x86 (the binary), qemu-system-data
# (its option ROMs, linuxboot_dma.bin) and seabios (backports' QEMU wants a
# newer one than bookworm's); the binary's libraries all come from bookworm
# main (installed with apt-get when missing).
#
# Result: $cache/qemu-<version>/ with usr/bin/qemu-system-x86_64, and
# $cache/qemu -> qemu-<version>, the path nested.rs looks for. Idempotent:
# prints the directory and exits at once when it is already there.
set -euo pipefail
cache="${VMDBG_NESTED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmdbg/nested}"
MIN_VERSION=9.1
SUITE=bookworm-backports
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
PACKAGES="qemu-system-x86 qemu-system-data seabios"
# Bump LAYOUT when what is unpacked changes, so old caches are not reused.
LAYOUT=1

current="$cache/qemu"
if [ -f "$current/.complete" ] && [ "$(cat "$current/.complete")" = "$LAYOUT" ]; then
    readlink -f "$current"; exit 0
fi
for tool in apt-get apt-cache dpkg-deb dpkg; do
    command -v "$tool" >/dev/null || {
        echo "fetch-qemu: $tool is needed to fetch QEMU from $SUITE (Debian/Ubuntu host)" >&2; exit 1; }
done
[ -r "$KEYRING" ] || {
    echo "fetch-qemu: $KEYRING is missing; install debian-archive-keyring" >&2; exit 1; }
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.fetch-qemu.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/apt/lists/partial" "$tmp/apt/cache/archives/partial" "$tmp/debs"
echo "deb [signed-by=$KEYRING] http://deb.debian.org/debian $SUITE main" >"$tmp/apt/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$tmp/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$tmp/apt/lists" -o "Dir::Cache=$tmp/apt/cache"
    -o APT::Sandbox::User=root -o Acquire::Languages=none)
apt-get "${apt_opts[@]}" update -qq >&2 || {
    echo "fetch-qemu: apt-get update of $SUITE failed (network, or its InRelease signature did not verify)" >&2; exit 1; }
field() { apt-cache "${apt_opts[@]}" show "$1=$2" | awk -v f="$3:" '$1==f{print $2; exit}'; }
candidate() { apt-cache "${apt_opts[@]}" policy "$1" | awk '/Candidate:/{print $2; exit}'; }
version=$(candidate qemu-system-x86)
upstream=${version#*:}; upstream=${upstream%%+*}
if [ -z "$version" ] || ! dpkg --compare-versions "$upstream" ge "$MIN_VERSION"; then
    echo "fetch-qemu: $SUITE has qemu-system-x86 '${version:-none}'; the nested tier needs >= $MIN_VERSION" >&2; exit 1
fi
for pkg in $PACKAGES; do
    ver=$(candidate "$pkg")
    want=$(field "$pkg" "$ver" SHA256)
    [ -n "$want" ] || { echo "fetch-qemu: the $SUITE index has no SHA256 for $pkg=$ver" >&2; exit 1; }
    (cd "$tmp/debs" && apt-get "${apt_opts[@]}" download -qq "$pkg=$ver" >&2)
    deb=$(ls "$tmp"/debs/"${pkg}"_*.deb)
    got=$(sha256sum "$deb" | cut -d' ' -f1)
    if [ "$got" != "$want" ]; then
        echo "fetch-qemu: $deb has sha256 $got, the signed $SUITE index says $want; refusing it" >&2; exit 1
    fi
    dpkg-deb -x "$deb" "$tmp/root"
done
rm -rf "$tmp/root/usr/share/doc" "$tmp/root/usr/share/man"
# Its shared libraries come from the system's (bookworm main) packages.
need=()
for dep in $(dpkg-deb -f "$tmp"/debs/qemu-system-x86_*.deb Depends | tr ',' '\n' | awk '{print $1}'); do
    case " $PACKAGES qemu-system-common ipxe-qemu " in *" $dep "*) continue ;; esac
    dpkg-query -W -f='${Status}' "$dep" 2>/dev/null | grep -q "install ok installed" || need+=("$dep")
done
if ((${#need[@]})); then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "fetch-qemu: installing QEMU $upstream's libraries: ${need[*]}" >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
missing=$(ldd "$tmp/root/usr/bin/qemu-system-x86_64" | awk '/not found/{print $1}')
if [ -n "$missing" ]; then
    echo "fetch-qemu: QEMU $version needs libraries this host lacks: $missing (apt-get install the bookworm packages that ship them)" >&2; exit 1
fi
"$tmp/root/usr/bin/qemu-system-x86_64" --version >/dev/null
echo "$LAYOUT" >"$tmp/root/.complete"
out="$cache/qemu-$upstream-$LAYOUT"
rm -rf "$out"
mv "$tmp/root" "$out"
# Point qemu at it with a rename, so a reader never sees it half made.
ln -sfn "$(basename "$out")" "$tmp/link"
mv -T "$tmp/link" "$current"
echo "$out"

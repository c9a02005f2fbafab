#!/usr/bin/env bash
# Fetches the Debian kernel package the nested tier boots (as L1 and as L2;
# the same package as vmdbg's default image: PACKAGE VERSION as `vmdbg image
# info` names them, else the pin in dap-server/src/image/pins.rs), checks
# its sha256 against the one apt's signed index gives, and unpacks it: vmlinuz, the uncompressed vmlinux (extracted from its XZ payload, so
# the guest skips decompression), L1's modules (KVM, the e1000 NIC that
# carries the DAP tests' connection, and 9p over virtio-pci) and L2's virtio modules, each in the
# order they must be insmod-ed (the package has no modules.dep).
# Idempotent: prints the unpacked directory and exits at once when it is
# already there. Usage: fetch-kernel.sh [PACKAGE VERSION]
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ $# -ge 2 ]; then
    PKG=$1 VERSION=$2
else
    . .ci/pins.sh
    PKG=$kernel_pkg VERSION=$kernel_ver
    if ! apt_has "$PKG=$VERSION"; then
        # The archive dropped the pin; vmdbg's image then uses the newest
        # kernel, and the nested test passes that one here.
        echo "fetch-kernel: the pinned $PKG=$VERSION is no longer in the archive; the nested test fetches the kernel vmdbg's image uses" >&2
        exit 0
    fi
fi
cache="${VMDBG_NESTED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmdbg/nested}"
# Bump LAYOUT when what is unpacked changes, so old caches are not reused.
LAYOUT=3
out="$cache/$PKG-$VERSION-$LAYOUT"
if [ -f "$out/.complete" ]; then echo "$out"; exit 0; fi
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || {
    echo "fetch-kernel: apt-get and dpkg-deb are needed to fetch $PKG $VERSION (Debian/Ubuntu host)" >&2; exit 1; }
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
want=$(apt-cache show "$PKG=$VERSION" 2>/dev/null | awk '/^SHA256:/{print $2; exit}')
if [ -z "$want" ]; then
    echo "fetch-kernel: apt does not know $PKG=$VERSION; run apt-get update (bookworm-security must be a source)" >&2; exit 1
fi
(cd "$tmp" && apt-get download -qq "$PKG=$VERSION" >&2)
deb=$(ls "$tmp"/*.deb)
got=$(sha256sum "$deb" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
    echo "fetch-kernel: $deb has sha256 $got, apt's index says $want; refusing it" >&2; exit 1
fi
dpkg-deb -x "$deb" "$tmp/root"
KREL=$(basename "$(ls "$tmp"/root/boot/vmlinuz-*)"); KREL=${KREL#vmlinuz-}
mkdir -p "$tmp/out"
cp "$tmp/root/boot/vmlinuz-$KREL" "$tmp/out/vmlinuz"
mods="$tmp/root/lib/modules/$KREL/kernel"
mkdir -p "$tmp/out/l1-modules" "$tmp/out/virtio-modules"
l1_order="virt/lib/irqbypass.ko arch/x86/kvm/kvm.ko drivers/crypto/ccp/ccp.ko arch/x86/kvm/kvm-amd.ko
  drivers/net/ethernet/intel/e1000/e1000.ko"
virtio_order="drivers/virtio/virtio_ring.ko drivers/virtio/virtio.ko drivers/virtio/virtio_mmio.ko
  drivers/block/virtio_blk.ko net/vmw_vsock/vsock.ko net/vmw_vsock/vmw_vsock_virtio_transport_common.ko
  net/vmw_vsock/vmw_vsock_virtio_transport.ko"
# The 9p file system over virtio-pci: L1 reads the host's cache of the
# default kernel's DWARF and sources through it (tests/src/nested.rs).
l1_order="$l1_order drivers/virtio/virtio_ring.ko drivers/virtio/virtio.ko
  drivers/virtio/virtio_pci_legacy_dev.ko drivers/virtio/virtio_pci_modern_dev.ko drivers/virtio/virtio_pci.ko
  net/9p/9pnet.ko net/9p/9pnet_virtio.ko fs/netfs/netfs.ko fs/fscache/fscache.ko fs/9p/9p.ko"
for m in $l1_order; do cp "$mods/$m" "$tmp/out/l1-modules/"; basename "$m" >> "$tmp/out/l1-modules/order"; done
for m in $virtio_order; do cp "$mods/$m" "$tmp/out/virtio-modules/"; basename "$m" >> "$tmp/out/virtio-modules/order"; done
# The bzImage's payload is an XZ stream; vmlinux is what it unpacks to.
offset=$(LC_ALL=C grep -abo $'\xfd7zXZ\x00' "$tmp/out/vmlinuz" | head -1 | cut -d: -f1)
[ -n "$offset" ] || { echo "fetch-kernel: no XZ payload in vmlinuz" >&2; exit 1; }
tail -c +$((offset + 1)) "$tmp/out/vmlinuz" | xz -dc 2>/dev/null > "$tmp/out/vmlinux" || true
head -c 4 "$tmp/out/vmlinux" | grep -q ELF || { echo "fetch-kernel: extracting vmlinux failed" >&2; exit 1; }
echo "$KREL" > "$tmp/out/release"
touch "$tmp/out/.complete"
rm -rf "$out"; mv "$tmp/out" "$out"
echo "$out"

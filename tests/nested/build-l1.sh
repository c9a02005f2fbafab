#!/usr/bin/env bash
# build-l1.sh VMM VMDBG KERNEL_DIR IMAGE_KERNEL_DIR IMAGE_INITRD HELPER APP_DIR OUT_DIR:
# builds the nested tier's initramfs images:
# - OUT_DIR/l2-initrd.cpio: busybox, the vsock helper, the virtio modules,
#   l2/init (the L2 of the raw vmdbg-vmm scenarios);
# - OUT_DIR/l1-initrd.cpio: busybox, the static vmdbg-vmm and vmdbg, the KVM
#   modules, l1/*, vmdbg's default image as vmdbg's cache holds it
#   (IMAGE_KERNEL_DIR, IMAGE_INITRD; at /root/.cache/vmdbg, so `vmdbg run`
#   finds it), whose vmlinux is also L2's kernel, and APP_DIR (host-built
#   test programs, at its host path and at /app) with the host libraries
#   they link, at the same paths as on the host (as `vmdbg run --copy`
#   resolves them).
# Uncompressed: L1 runs under TCG, where decompressing costs more than
# reading the bigger file.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "build-l1: must run as root (mknod /dev/console in the images)" >&2; exit 1; }
[ $# = 8 ] || { echo "usage: build-l1.sh VMM VMDBG KERNEL_DIR IMAGE_KERNEL_DIR IMAGE_INITRD HELPER APP_DIR OUT_DIR" >&2; exit 2; }
vmm=$1 vmdbg=$2 kdir=$3 image_kdir=$4 image_initrd=$5 helper=$6 app=$7 out=$8
here="$(cd "$(dirname "$0")" && pwd)"
busybox=$(command -v busybox)
file -L "$busybox" 2>/dev/null | grep -q "statically linked" || ldd "$busybox" 2>&1 | grep -q "not a dynamic" || {
    echo "build-l1: $busybox is not static; install busybox-static" >&2; exit 1; }
mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

l2="$stage/l2"
mkdir -p "$l2"/{bin,dev,proc,sys,modules}
# The kernel opens /dev/console for init before anything is mounted.
mknod "$l2/dev/console" c 5 1
cp "$busybox" "$l2/bin/busybox"
cp "$helper" "$l2/bin/vsock-helper"
cp "$here/l2/init" "$l2/init"
cp "$kdir"/virtio-modules/* "$l2/modules/"
(cd "$l2" && find . | cpio -o -H newc --quiet) > "$out/l2-initrd.cpio"

l1="$stage/l1"
mkdir -p "$l1"/{bin,dev,proc,sys,tmp,l2,l1-modules,root/.cache/vmdbg}
mknod "$l1/dev/console" c 5 1
cp "$busybox" "$l1/bin/busybox"
cp "$vmm" "$l1/bin/vmdbg-vmm"
cp "$vmdbg" "$l1/bin/vmdbg"
cache="$l1/root/.cache/vmdbg"
image_kname=$(basename "$image_kdir")
mkdir -p "$cache/$image_kname"
cp "$image_kdir"/{release,modules.order,vmlinux} "$cache/$image_kname/"
cp "$image_initrd" "$cache/"
# Where the archive dropped a pin, vmdbg records what stands in for it;
# vmdbg in L1 must find the same image names.
for record in "$(dirname "$image_kdir")"/fallback-*; do
    [ -e "$record" ] && cp "$record" "$cache/"
done
# At its host path too: the DAP tests' programs name their sources and
# libraries by host paths.
mkdir -p "$l1$app"
cp -r "$app"/. "$l1$app/"
ln -s "$app" "$l1/app"
for bin in "$vmdbg" $(find "$app" -type f -perm -u+x); do
    for lib in $(ldd "$bin" 2>/dev/null | awk '/=> \// {print $3} /^[ \t]*\/lib/ {print $1}'); do
        case "$lib" in "$app"/*) continue ;; esac
        mkdir -p "$l1$(dirname "$lib")"
        [ -e "$l1$lib" ] || cp -L "$lib" "$l1$lib"
    done
done
cp "$helper" "$l1/bin/vsock-helper"
cp "$here/l1/init" "$l1/init"
for s in "$here"/l1/*.sh; do cp "$s" "$l1/bin/$(basename "$s")"; done
cp "$kdir"/l1-modules/* "$l1/l1-modules/"
# The same Debian kernel as the default image (tests/nested/fetch-kernel.sh
# pins it): one vmlinux serves both.
cmp -s "$kdir/release" "$image_kdir/release" || {
    echo "build-l1: $kdir and $image_kdir hold different kernels (fetch-kernel.sh was given another package than the image's kernel-*/deb)" >&2; exit 1; }
ln -s "/root/.cache/vmdbg/$image_kname/vmlinux" "$l1/l2/vmlinux"
cp "$kdir/vmlinuz" "$l1/l2/"
cp "$out/l2-initrd.cpio" "$l1/l2/initrd.cpio"
# For the boot benchmark only (VMDBG_NESTED_WITH_QEMU=1): QEMU with its
# shared libraries and the microvm firmware, to boot the same L2 under
# `-M microvm -accel kvm` beside vmdbg-vmm. Adds ~50 MB to L1.
if [ -n "${VMDBG_NESTED_WITH_QEMU:-}" ]; then
    qemu=$(command -v qemu-system-x86_64)
    mkdir -p "$l1/usr/bin" "$l1/usr/share/qemu"
    cp "$qemu" "$l1/usr/bin/"
    for lib in $(ldd "$qemu" | awk '/=>/ {print $3} /^[ \t]*\/lib/ {print $1}'); do
        mkdir -p "$l1$(dirname "$lib")"
        cp -L "$lib" "$l1$lib"
    done
    for f in qboot.rom bios-microvm.bin pvh.bin linuxboot_dma.bin; do
        cp -L "/usr/share/qemu/$f" "$l1/usr/share/qemu/"
    done
fi
khz=$(awk -F: '/^cpu MHz/ {printf "%d\n", $2 * 1000; exit}' /proc/cpuinfo)
echo "${khz:-0}" > "$l1/tsc_khz"
(cd "$l1" && find . | cpio -o -H newc --quiet) > "$out/l1-initrd.cpio.tmp"
mv "$out/l1-initrd.cpio.tmp" "$out/l1-initrd.cpio"
echo "$out/l1-initrd.cpio"

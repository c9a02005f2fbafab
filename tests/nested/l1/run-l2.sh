#!/bin/sh
# run-l2.sh KERNEL SCENARIO [VMM options...]: boots L2, prints its console
# prefixed with "L2| " once it ends, then the VMM's exit status and the
# boot-to-init time measured here (wall clock, ms). The VMM is vmdbg-vmm,
# or with L2_VMM=qemu the boot benchmark's comparison point: the same
# kernel, initramfs and command line under QEMU's microvm with KVM.
kernel=$1; scenario=$2; shift 2
# Milliseconds since L1 booted (busybox date has no %N).
now_ms() { read -r up _ < /proc/uptime; echo $(( ${up%.*} * 1000 + 10 * 1${up#*.} - 1000 )); }
cmdline="console=ttyS0 panic=-1 quiet loglevel=3 pci=off tsc_early_khz=$(cat /tsc_khz) scenario=$scenario"
rm -f /tmp/l2-console
start=$(now_ms)
case "${L2_VMM:-vmdbg-vmm}" in
    qemu)
        qemu-system-x86_64 -M microvm -accel kvm -cpu host -m 512M -smp 1 -nodefaults -no-user-config \
            -display none -no-reboot -serial file:/tmp/l2-console -kernel "$kernel" -initrd /l2/initrd.cpio \
            -append "$cmdline" "$@" & ;;
    *)
        vmdbg-vmm --kernel "$kernel" --initrd /l2/initrd.cpio --mem 512M --cmdline "$cmdline" \
            --serial file:/tmp/l2-console "$@" & ;;
esac
pid=$!
init_ms=""
while kill -0 $pid 2>/dev/null; do
    if [ -z "$init_ms" ] && grep -q "@@L2-INIT" /tmp/l2-console 2>/dev/null; then
        init_ms=$(( $(now_ms) - start ))
    fi
    sleep 0.05
done
wait $pid
status=$?
[ -n "$init_ms" ] || { grep -q "@@L2-INIT" /tmp/l2-console && init_ms=$(( $(now_ms) - start )); }
sed 's/^/L2| /' /tmp/l2-console
echo "@@VMM-STATUS $status"
echo "@@BOOT-TO-INIT-MS ${init_ms:-none}"

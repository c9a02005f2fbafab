#!/usr/bin/env bash
# vmdbg's end-to-end overhead on top of QEMU (issue 5's closing number):
#   A: `vmdbg run --engine qemu -- true` (boot, modules, agent ready, hello,
#      exec `true`, status, shutdown), wall time;
#   B: plain qemu-system-x86_64 with the same machine, kernel, initramfs and
#      command line, whose init is busybox's `poweroff -f` (so: QEMU start,
#      kernel boot to its init, power off), wall time.
# Runs are interleaved (A, B, A, B, ...) so machine load hits both alike.
# Prints each run, the medians and the ratio A/B, for wall time and for CPU
# time (user+sys of the whole process tree, QEMU included: steadier than
# wall time on a loaded machine). Needs GNU time (/usr/bin/time).
# Usage: bash dap-server/benches/run_vs_qemu.sh [runs]   (default 7)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-7}
vmdbg=${VMDBG:-${CARGO_TARGET_DIR:-target}/release/vmdbg}
[ -x "$vmdbg" ] || { echo "build first: cargo build --release -p vmdbg (or set VMDBG=path)" >&2; exit 1; }
"$vmdbg" image build >/tmp/vmdbg-bench-image.txt
kernel=$(sed -n 's/^kernel: *//p' /tmp/vmdbg-bench-image.txt)
initrd=$(sed -n 's/^initramfs: *//p' /tmp/vmdbg-bench-image.txt)
khz=$(awk -F: '/cpu MHz/{printf "%d", $2*1000; exit}' /proc/cpuinfo)
# The same flags as the QEMU engine (dap-server/src/engine/qemu/mod.rs).
plain_qemu=(qemu-system-x86_64 -M microvm,acpi=on -accel tcg -cpu max -m 512M -smp 1
    -nodefaults -no-user-config -display none -no-reboot
    -kernel "$kernel" -initrd "$initrd"
    -append "console=ttyS0 quiet panic=-1 pci=off tsc_early_khz=$khz rdinit=/bin/busybox -- poweroff -f"
    -serial null -device virtio-serial-device,max_ports=2)
timed() { /usr/bin/time -f '%e %U %S' -o /tmp/vmdbg-bench-time "$@"; awk '{print $1, $2 + $3}' /tmp/vmdbg-bench-time; }
a=(); b=(); ac=(); bc=()
for i in $(seq "$runs"); do
    read -r wall cpu < <(timed "$vmdbg" run --engine qemu -- true); a+=("$wall"); ac+=("$cpu")
    read -r wall cpu < <(timed "${plain_qemu[@]}"); b+=("$wall"); bc+=("$cpu")
    printf 'run %d: vmdbg run -- true %.3f s (cpu %.3f s), plain QEMU boot to init %.3f s (cpu %.3f s)\n' \
        "$i" "${a[-1]}" "${ac[-1]}" "${b[-1]}" "${bc[-1]}"
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
for kind in wall cpu; do
    if [ $kind = wall ]; then ma=$(median "${a[@]}"); mb=$(median "${b[@]}"); else ma=$(median "${ac[@]}"); mb=$(median "${bc[@]}"); fi
    printf 'median %s: vmdbg run --engine qemu -- true %.3f s; plain QEMU boot to init %.3f s; ratio %.2f; overhead %.3f s\n' \
        "$kind" "$ma" "$mb" "$(awk "BEGIN {print $ma / $mb}")" "$(awk "BEGIN {print $ma - $mb}")"
done

#!/bin/sh
# Developer aid: build the bare-metal kernels and run each one under QEMU
# (TCG), checking serial output and exit status. Exits non-zero on mismatch.
#   tests/guests/baremetal/check-qemu.sh [OUT-dir]    (default: build/)
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-${OUT:-$here/build}}
case $out in /*) ;; *) out=$PWD/$out ;; esac
qemu=${QEMU:-qemu-system-x86_64}

make -s -C "$here" OUT="$out" || { echo "FAIL: build"; exit 1; }
command -v "$qemu" >/dev/null || { echo "FAIL: $qemu not found"; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

# run NAME EXPECTED-STATUS EXPECTED-OUTPUT(printf format)
run() {
	name=$1 want_status=$2 want_out=$3
	printf '%b' "$want_out" > "$tmp/$name.want"
	: > "$tmp/$name.out"; : > "$tmp/$name.log"
	timeout 60 "$qemu" -accel tcg -M pc -m 128 -display none \
		-serial "file:$tmp/$name.out" -monitor none -no-reboot \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
		-d cpu_reset -D "$tmp/$name.log" \
		-kernel "$out/$name.elf" </dev/null >/dev/null 2>"$tmp/$name.err"
	status=$?
	ok=1
	if [ "$status" -ne "$want_status" ]; then
		echo "FAIL: $name: exit status $status, want $want_status"
		ok=0
	fi
	if ! cmp -s "$tmp/$name.out" "$tmp/$name.want"; then
		echo "FAIL: $name: serial output differs (want / got):"
		od -c "$tmp/$name.want" | sed 's/^/    want /'
		od -c "$tmp/$name.out" | sed 's/^/    got  /'
		ok=0
	fi
	if { [ "$name" = fault ] || [ "$name" = rewind ]; } && ! grep -q 'Triple fault' "$tmp/$name.log"; then
		echo "FAIL: $name: no 'Triple fault' in QEMU's -d cpu_reset log"
		ok=0
	fi
	if [ $ok -eq 1 ]; then
		echo "ok:   $name (status $status)"
	else
		fails=$((fails + 1))
		sed 's/^/    stderr: /' "$tmp/$name.err"
	fi
}

run hello 85 'Hello from a vmdbg bare-metal guest\n'
calls_out='calls: start\ncalls: compute=217\ncalls: factorial base\ncalls: factorial(5)=120\ncalls: counter=30\ncalls: exit=111\n'
run calls-O0 223 "$calls_out"
run calls-O2 223 "$calls_out"
run lines-O0 171 'lines: done\n'
run interrupts 33 'ticks: 10\n'
run int3 33 'int3 handled\nticks: 10\n'
# Triple fault + -no-reboot: QEMU shuts down with status 0.
run fault 0 'about to fault\n'
run rewind 0 'rewind: slots filled\n'

if [ $fails -ne 0 ]; then
	echo "$fails kernel(s) FAILED"
	exit 1
fi
echo "all bare-metal kernels OK"

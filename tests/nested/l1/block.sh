#!/bin/sh
# block.sh KERNEL: a raw disk written in L1 is read by L2 through
# virtio-blk, and what L2 writes to its second sector is read back here.
rm -f /tmp/disk.img /tmp/l2-console
printf 'written-by-l1' > /tmp/disk.img
truncate -s 1M /tmp/disk.img
run-l2.sh "$1" block --disk /tmp/disk.img
echo "@@L1-BLOCK-SECTOR1 $(dd if=/tmp/disk.img bs=512 skip=1 count=1 2>/dev/null | tr -d '\000' | head -1)"

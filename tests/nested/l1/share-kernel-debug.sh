#!/bin/sh
# share-kernel-debug.sh CACHE_HOME: lets the `vmdbg dap` servers in L1 use
# the host's vmdbg cache (the default kernel's 631 MB DWARF, its modules'
# debug files and its source tree, which the host fetched with `vmdbg image
# symbols`) at the host's own path, so the paths a session reports (source
# files) are the host's. QEMU shares CACHE_HOME/vmdbg read-only over 9p
# (tag vmdbg-cache, tests/src/nested.rs); vmdbg needs to write its lock
# and saved states, so CACHE_HOME/vmdbg in L1 is a directory in RAM whose
# entries link to the share. `vmdbg dap` reads /tmp/dap.env (dap-serve.sh);
# removing it gives the servers L1's own cache again.
set -e
home=$1
[ -n "$home" ] || { echo "usage: share-kernel-debug.sh CACHE_HOME" >&2; exit 2; }
mnt=/mnt/host-cache
if ! grep -q " $mnt 9p " /proc/mounts; then
    mkdir -p $mnt
    mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 vmdbg-cache $mnt
fi
mkdir -p "$home/vmdbg"
for entry in $mnt/*; do
    name=${entry##*/}
    case $name in
        lock|warm|test-setup|*.tmp*|.*) ;;
        *) [ -e "$home/vmdbg/$name" ] || ln -s "$entry" "$home/vmdbg/$name" ;;
    esac
done
echo "export XDG_CACHE_HOME='$home'" > /tmp/dap.env
ls "$home/vmdbg"

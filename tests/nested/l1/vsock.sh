#!/bin/sh
# vsock.sh KERNEL: a vsock round trip each way between L1 (through
# vmdbg-vmm's unix sockets) and L2. Host-initiated: L1 connects to L2's
# port 5000. Guest-initiated: L2 connects to host port 6000, which the VMM
# bridges to /tmp/v.sock_6000.
rm -f /tmp/v.sock /tmp/v.sock_6000 /tmp/l2-console
vsock-helper uds-listen /tmp/v.sock_6000 > /tmp/uds-listen.out 2>&1 &
run-l2.sh "$1" vsock --vsock-uds /tmp/v.sock > /tmp/run.out 2>&1 &
run=$!
i=0
while ! grep -q "@@L2-VSOCK-LISTENING" /tmp/l2-console 2>/dev/null; do
    i=$((i+1)); [ $i -lt 1200 ] || { echo "@@L1-VSOCK-TIMEOUT"; break; }
    sleep 0.1
done
echo "@@L1-UDS-CONNECT $(vsock-helper uds-connect /tmp/v.sock 5000 from-l1 2>&1 | tr '\n' ' ')"
wait $run
cat /tmp/run.out
echo "@@L1-UDS-LISTEN $(cat /tmp/uds-listen.out)"

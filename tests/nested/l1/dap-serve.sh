#!/bin/sh
# One `vmdbg dap` on the connection busybox nc hands over as stdin/stdout;
# its log goes to /tmp/dap.log, never into the DAP stream. /tmp/dap.env,
# while a test has written it, sets its environment (the kernel suite's
# cache: share-kernel-debug.sh).
[ -r /tmp/dap.env ] && . /tmp/dap.env
exec vmdbg dap 2>>/tmp/dap.log

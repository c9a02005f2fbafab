#!/bin/sh
# One `vmdbg dap` on the connection busybox nc hands over as stdin/stdout;
# its log goes to /tmp/dap.log, never into the DAP stream.
exec vmdbg dap 2>>/tmp/dap.log

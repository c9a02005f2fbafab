#!/usr/bin/env bash
# The DAP end-to-end tests (tests/dap): Microsoft's DebugClient and mocha,
# pinned by package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/../../tests/dap"
npm ci --no-audit --no-fund --loglevel=error

#!/usr/bin/env bash
# The VS Code extension: build the .vsix offline, its unit tests, then the
# end-to-end scenarios in a real VS Code (code-server) with the vmdbg binary
# the cargo build made. Screenshots land in vscode-extension/e2e/output/.
set -euo pipefail
cd "$(dirname "$0")/../../vscode-extension"
npm run package
npm test
VMDBG_BIN="$PWD/../target/release/vmdbg" node e2e/run.mjs ${VMDBG_VSCODE_SCENARIOS:-kernel program linux tests}

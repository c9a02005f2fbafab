#!/usr/bin/env bash
# The VS Code extension's build tools, and code-server + chromium for its
# end-to-end run.
set -euo pipefail
cd "$(dirname "$0")/../../vscode-extension"
npm ci --no-audit --no-fund
bash e2e/install.sh

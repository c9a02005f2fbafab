// Shared set-up for the DAP end-to-end tests: where the binaries and test
// kernels are, loud skips (fail under CI, SKIPPED elsewhere), marker lines,
// and a DebugClient (Microsoft's real DAP client) on the real `vmdbg dap`.
'use strict';
const fs = require('fs');
const path = require('path');
const cp = require('child_process');
const { DebugClient } = require('@vscode/debugadapter-testsupport');

const repo = path.resolve(__dirname, '..', '..', '..');
// The tests' image cache (tests/src/lib.rs, test_cache_home), not the
// user's ~/.cache/vmdbg: every vmdbg a test starts gets it.
const testCacheHome = process.env.VMDBG_TEST_CACHE || path.join(repo, 'target', 'test-cache');
const binDir = process.env.VMDBG_BIN_DIR || path.join(repo, 'target', 'release');
const vmdbg = path.join(binDir, 'vmdbg');
const vmm = path.join(binDir, 'vmdbg-vmm');
const kernels = process.env.VMDBG_KERNELS || path.join(__dirname, '..', '.kernels');
const sourceDir = path.join(repo, 'tests', 'guests', 'baremetal');
const callsC = path.join(sourceDir, 'calls.c');

function strict() {
  const on = (v) => v && v !== '0' && v !== 'false';
  return on(process.env.CI) || on(process.env.VMDBG_REQUIRE_KVM);
}

function haveCommand(name) {
  return cp.spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/** Why this machine cannot run the host tier, or null. */
function hostTierMissing(extraTools = []) {
  try {
    fs.accessSync('/dev/kvm', fs.constants.R_OK | fs.constants.W_OK);
  } catch (e) {
    return `/dev/kvm cannot be opened (${e.code})`;
  }
  for (const f of [vmdbg, vmm]) {
    if (!fs.existsSync(f)) return `${f} is not built (cargo build --release -p vmdbg -p vmdbg-vmm)`;
  }
  for (const k of ['calls-O0.elf', 'calls-O2.elf']) {
    if (!fs.existsSync(path.join(kernels, k))) return `test kernel ${k} is not built in ${kernels} (make -C tests/guests/baremetal OUT=${kernels})`;
  }
  for (const t of extraTools) {
    if (!haveCommand(t)) return `\`${t}\` is not installed (see .ci/setup-tests)`;
  }
  return null;
}

/** In a mocha before(): fails under CI, skips loudly elsewhere. */
function requireTier(ctx, missing) {
  if (!missing) return;
  if (strict()) throw new Error(`required but unavailable under CI: ${missing}`);
  console.log(`SKIPPED: ${ctx.test.parent.title}: ${missing}`);
  ctx.skip();
}

/** Line number of the `/* MARK:name *\/` comment in a kernel source. */
function marker(name, file = callsC) {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const index = lines.findIndex((l) => l.includes(`MARK:${name} */`));
  if (index < 0) throw new Error(`no MARK:${name} in ${file}`);
  return index + 1;
}

/**
 * A DebugClient on a fresh `vmdbg dap` process (stdio, its environment
 * with `extraEnv` added), or, with
 * VMDBG_DAP_PORT, on the `vmdbg dap` a server at 127.0.0.1:PORT starts per
 * connection (the nested tier's L1).
 */
async function startClient(extraEnv = {}) {
  // The tests' image cache (tests/src/lib.rs, test_cache_home), not the
  // user's ~/.cache/vmdbg.
  const env = { ...process.env, VMDBG_VMM: vmm, XDG_CACHE_HOME: testCacheHome, ...extraEnv };
  delete env.RUST_LOG;
  const dc = new DebugClient(vmdbg, 'dap', 'vmdbg', { env }, !!process.env.VMDBG_DAP_STDERR);
  dc.defaultTimeout = 20000;
  const port = process.env.VMDBG_DAP_PORT;
  await (port ? dc.start(Number(port)) : dc.start());
  dc.console = '';
  dc.on('output', (e) => { if (e.body.category === 'console') dc.console += e.body.output; });
  return dc;
}

/** Line number of the first line of `file` matching `regex`. */
function lineOf(file, regex) {
  const index = fs.readFileSync(file, 'utf8').split('\n').findIndex((l) => regex.test(l));
  if (index < 0) throw new Error(`no line matching ${regex} in ${file}`);
  return index + 1;
}

function kernel(name) {
  return path.join(kernels, name);
}

/** Sends a request and waits for the stopped event it causes. */
async function stepAndWait(dc, request, args) {
  const stopped = dc.waitForEvent('stopped');
  await dc.send(request, args);
  const event = await stopped;
  const trace = await dc.stackTraceRequest({ threadId: event.body.threadId });
  return { event, frames: trace.body.stackFrames };
}

async function scopeVariables(dc, frameId, scopeName) {
  const scopes = await dc.scopesRequest({ frameId });
  const scope = scopes.body.scopes.find((s) => s.name === scopeName);
  if (!scope) throw new Error(`no scope ${scopeName}`);
  const vars = await dc.variablesRequest({ variablesReference: scope.variablesReference });
  return { scope, variables: vars.body.variables };
}

/** Where `location` (`file.c:LINE`) starts, as Debian's gdb reads the ELF's
 * line table: an answer that does not come from vmdbg. */
function gdbLineAddress(elf, location) {
  const out = cp.spawnSync('gdb', ['-batch', '-nx', '-ex', `info line ${location}`, elf], { encoding: 'utf8', timeout: 60000 });
  const m = /starts at address (0x[0-9a-f]+)/.exec(out.stdout);
  if (!m) throw new Error(`gdb has no address for ${location}: ${out.stdout}${out.stderr}`);
  return BigInt(m[1]);
}

module.exports = {
  repo, testCacheHome, vmdbg, vmm, kernels, callsC, sourceDir, strict, haveCommand, hostTierMissing, requireTier,
  marker, lineOf, startClient, kernel, stepAndWait, scopeVariables, gdbLineAddress,
};

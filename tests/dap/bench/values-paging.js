// Benchmark (not a test): the cost of looking at a 1,000,000-element Vec
// in a Rust program inside the VM (the QEMU engine; VMDBG_TEST_ENGINE,
// VMDBG_DAP_PORT and VMDBG_TEST_PROGRAMS as the values suite takes them
// for another engine or a `vmdbg dap` elsewhere). Times, over repeated
// requests at one stop: the Locals listing that summarizes it, the first
// page of its elements (100 rows, what VS Code asks for first), a page at
// its far end, and rust-gdb's `print big` of the same binary on this host
// as the anchor (`set print elements 100`, so both show 100 elements).
// The first of each series reads the target; the rest hit vmdbg's
// per-stop memory cache. Run: node bench/values-paging.js [repeats]   (after cargo build --release -p vmdbg)
'use strict';
const cp = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { startClient, lineOf } = require('../test/helpers');
const { sources: { valuesRs: source }, buildValuesPrograms } = require('../programs');

const REPEATS = Number(process.argv[2] || 20);
const prebuilt = process.env.VMDBG_TEST_PROGRAMS;
const engine = process.env.VMDBG_TEST_ENGINE || 'qemu';

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function timed(f) {
  const start = process.hrtime.bigint();
  await f();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

(async () => {
  const work = prebuilt || fs.mkdtempSync(path.join(os.tmpdir(), 'vmdbg-bench-values-'));
  if (!prebuilt) buildValuesPrograms(work);
  const binary = path.join(work, 'values');
  const line = lineOf(source, /MARK:values/);

  const dc = await startClient();
  dc.defaultTimeout = 240000;
  const stopped = dc.waitForEvent('stopped', 240000);
  await dc.initializeRequest({ adapterID: 'vmdbg', supportsVariablePaging: true });
  const initialized = dc.waitForEvent('initialized', 240000);
  const launched = dc.launchRequest({ engine, program: binary });
  await initialized;
  await dc.setBreakpointsRequest({ source: { path: source }, breakpoints: [{ line }] });
  await dc.configurationDoneRequest();
  await launched;
  const event = await stopped;
  const frame = (await dc.stackTraceRequest({ threadId: event.body.threadId })).body.stackFrames[0];

  const listing = [];
  const first = [];
  const last = [];
  for (let i = 0; i < REPEATS; i++) {
    // A fresh scopes request each time: no value is cached across them.
    const scopes = await dc.scopesRequest({ frameId: frame.id });
    const ref = scopes.body.scopes.find((s) => s.name === 'Locals').variablesReference;
    let big;
    listing.push(await timed(async () => {
      big = (await dc.variablesRequest({ variablesReference: ref })).body.variables.find((v) => v.name === 'big');
    }));
    first.push(await timed(() => dc.variablesRequest({ variablesReference: big.variablesReference, start: 0, count: 100 })));
    last.push(await timed(() => dc.variablesRequest({ variablesReference: big.variablesReference, start: 999900, count: 100 })));
  }
  await dc.stop();

  const gdb = [];
  for (let i = 0; i < Math.min(REPEATS, 5); i++) {
    cp.execFileSync('rust-gdb', ['-batch', '-nx', '-ex', 'set startup-with-shell off', '-ex', 'set print elements 100',
      '-ex', `break values.rs:${line}`, '-ex', 'run', '-ex', 'python import time; t=time.perf_counter(); gdb.execute("print big", to_string=True); print("print-ms", (time.perf_counter()-t)*1000)',
      binary], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().split('\n')
      .filter((l) => l.startsWith('print-ms')).forEach((l) => gdb.push(Number(l.split(' ')[1])));
  }
  if (!prebuilt) fs.rmSync(work, { recursive: true, force: true });
  // The first request at a stop reads the target; later ones at the same
  // stop are served from vmdbg's per-stop memory cache, as a user's
  // repeated expansions are.
  const row = (name, xs) => console.log(`${name.padEnd(52)} first ${xs[0].toFixed(1)} ms, median ${median(xs).toFixed(1)} ms  (n=${xs.length})`);
  console.log(`engine: ${engine}`);
  row('vmdbg: Locals listing (every local summarized)', listing);
  row('vmdbg: first page of big (100 of 1,000,000)', first);
  row('vmdbg: last page of big (999,900..999,999)', last);
  row('rust-gdb on the host: print big (100 elements)', gdb);
  console.log(`ratio first page / rust-gdb print: ${(median(first) / median(gdb)).toFixed(2)}`);
})().catch((e) => { console.error(e); process.exit(1); });

// VM snapshots in a debug session (issue 11), end to end on this host's
// QEMU engine: a real DAP client (DebugClient) stops a C program in a Linux
// VM, takes `vmdbg/snapshot`, runs on, and `vmdbg/restore` brings the whole
// VM back in place — the stop's line and the old values of its locals —
// with the session's breakpoints (including one set after the snapshot)
// still working, and the program running on to the same end.
'use strict';
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { vmdbg, haveCommand, requireTier, startClient, lineOf, scopeVariables } = require('./helpers');
const { sources, buildPrograms } = require('../programs');

const BOOT_MS = 240000;

function tierMissing() {
  if (!fs.existsSync(vmdbg)) return `${vmdbg} is not built (cargo build --release -p vmdbg)`;
  for (const tool of ['gcc', 'qemu-system-x86_64', 'qemu-img']) {
    if (!haveCommand(tool)) return `\`${tool}\` is not installed (see .ci/setup)`;
  }
  return null;
}

async function locals(dc, threadId) {
  const frames = (await dc.stackTraceRequest({ threadId })).body.stackFrames;
  const { variables } = await scopeVariables(dc, frames[0].id, 'Locals');
  return { line: frames[0].line, name: frames[0].name, values: Object.fromEntries(variables.map((v) => [v.name, v.value])) };
}

async function continueTo(dc, threadId) {
  const stopped = dc.waitForEvent('stopped', 60000);
  await dc.continueRequest({ threadId });
  return (await stopped).body;
}

describe('VM snapshots in a program session (qemu engine)', function () {
  this.timeout(BOOT_MS + 120000);
  let work;
  let dc;

  before(function () {
    requireTier(this, tierMissing());
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'vmdbg-dap-snapshot-'));
    buildPrograms(work);
  });

  beforeEach(async function () {
    dc = await startClient();
    dc.stdout = '';
    dc.on('output', (e) => { if (e.body.category === 'stdout') dc.stdout += e.body.output; });
  });

  afterEach(async function () {
    if (dc) await dc.stop().catch(() => {});
    dc = null;
  });

  after(function () {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('restore returns to the snapshot\'s stop with its values; breakpoints set since still hit', async function () {
    const loop = lineOf(sources.tallyC, /MARK:loop/);
    const squareReturn = lineOf(sources.tallyC, /MARK:square-return/);
    const firstStop = dc.waitForEvent('stopped', BOOT_MS);
    await dc.initializeRequest({ adapterID: 'vmdbg' });
    const initialized = dc.waitForEvent('initialized', BOOT_MS);
    const launched = dc.launchRequest({ engine: 'qemu', program: path.join(work, 'tally') });
    await Promise.race([initialized, launched.then(() => initialized)]);
    await dc.setBreakpointsRequest({ source: { path: sources.tallyC }, breakpoints: [{ line: loop }] });
    await dc.configurationDoneRequest();
    await launched;
    const threadId = (await firstStop).body.threadId;

    let here = await locals(dc, threadId);
    assert.deepStrictEqual([here.line, here.values.i, here.values.total], [loop, '1', '0']);
    const taken = await dc.send('vmdbg/snapshot', { name: 'first-pass' });
    console.log(`      vmdbg/snapshot: ${taken.body.milliseconds} ms`);
    assert.deepStrictEqual((await dc.send('vmdbg/snapshots', {})).body.snapshots, [{ name: 'first-pass' }]);

    await continueTo(dc, threadId);
    here = await locals(dc, threadId);
    assert.deepStrictEqual([here.line, here.values.i, here.values.total], [loop, '2', '1']);

    // A breakpoint the snapshot's moment did not have.
    await dc.setBreakpointsRequest({ source: { path: sources.tallyC }, breakpoints: [{ line: loop }, { line: squareReturn }] });

    const restoredStop = dc.waitForEvent('stopped', 60000);
    const restored = await dc.send('vmdbg/restore', { name: 'first-pass' });
    console.log(`      vmdbg/restore: ${restored.body.milliseconds} ms`);
    assert.strictEqual((await restoredStop).body.reason, 'restore');
    here = await locals(dc, threadId);
    assert.deepStrictEqual([here.line, here.values.i, here.values.total], [loop, '1', '0'], 'the restored stop and its old values');

    // The program runs on from the snapshot: into square(1) at the new
    // breakpoint, then the loop's second pass exactly as before.
    await continueTo(dc, threadId);
    here = await locals(dc, threadId);
    assert.deepStrictEqual([here.name, here.line, here.values.result], ['square', squareReturn, '1']);
    await continueTo(dc, threadId);
    here = await locals(dc, threadId);
    assert.deepStrictEqual([here.line, here.values.i, here.values.total], [loop, '2', '1']);

    await assert.rejects(dc.send('vmdbg/restore', { name: 'never-taken' }), /no snapshot named "never-taken" \(taken: first-pass\)/);
    await assert.rejects(dc.send('vmdbg/snapshot', { name: 'bad name' }), /use 1 to 64 letters/);

    await dc.setBreakpointsRequest({ source: { path: sources.tallyC }, breakpoints: [] });
    const exited = dc.waitForEvent('exited', 60000);
    await dc.continueRequest({ threadId });
    assert.strictEqual((await exited).body.exitCode, 3);
    assert.strictEqual(dc.stdout, 'total=14\n');
  });
});

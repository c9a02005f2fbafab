// Record and replay on both engines ("rewind from the crash"): a recorded
// kernel session of rewind.elf runs into its page fault and stops there
// with the exception; reverseContinue with a data breakpoint on the
// corrupted pointer stops at the line that corrupted it, with the value
// before and after the write; stepBack walks back by line (over calls) and
// by instruction; line breakpoints hold going backwards; the start of the
// recording is reported as such. The same tests run on the KVM engine
// (vmdbg-vmm's recorder; its gdb stub steps and continues backwards from
// in-memory checkpoints — the host tier) and on the QEMU engine (QEMU's
// icount record/replay; going back replays afresh from the start, seconds
// a step on a loaded machine). One recording per engine for its suite,
// made once; each test starts from the same known point of it, the end of
// the recording (the fault), whatever the test before it did or left.
'use strict';
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const h = require('./helpers');

const rewindC = path.join(h.sourceDir, 'rewind.c');

function tierMissing(engine) {
  if (engine === 'kvm') {
    const missing = h.hostTierMissing();
    if (missing) return missing;
  }
  if (!fs.existsSync(h.vmdbg)) return `${h.vmdbg} is not built (cargo build --release -p vmdbg)`;
  if (!fs.existsSync(h.kernel('rewind.elf'))) return `test kernel rewind.elf is not built in ${h.kernels} (make -C tests/guests/baremetal OUT=${h.kernels})`;
  if (engine === 'qemu') {
    for (const tool of ['qemu-system-x86_64', 'qemu-img']) {
      if (!h.haveCommand(tool)) return `\`${tool}\` is not installed (Debian: qemu-system-x86, qemu-utils)`;
    }
  }
  return null;
}

for (const engine of ['kvm', 'qemu']) describe(`DAP record and replay (${engine} engine): rewind from the crash`, function () {
  this.timeout(120000);
  let dc;
  const events = [];
  // Every packet vmdbg sends to the stub (VMDBG_RSP_LOG), to see how a
  // forward step was made.
  const rspLog = path.join(fs.mkdtempSync(path.join(require('os').tmpdir(), 'vmdbg-record-')), 'rsp.log');
  const sent = () => (fs.existsSync(rspLog) ? fs.readFileSync(rspLog, 'utf8').split('\n').filter((l) => l) : []);

  const top = async () => (await dc.stackTraceRequest({ threadId: 1 })).body.stackFrames[0];
  const value = async (expression) => (await dc.evaluateRequest({ expression, frameId: 1 })).body.result;
  const back = async (args = {}) => {
    const { event, frames } = await h.stepAndWait(dc, 'stepBack', { threadId: 1, ...args });
    return { event, frame: frames[0] };
  };
  const reverseContinue = async () => {
    const stopped = dc.waitForEvent('stopped');
    await dc.send('reverseContinue', { threadId: 1 });
    return stopped;
  };

  // The launch's stop at the end of the recording, for the first test.
  let launchStop;

  before(async function () {
    h.requireTier(this, tierMissing(engine));
    dc = await h.startClient({ VMDBG_RSP_LOG: rspLog });
    dc.defaultTimeout = 100000;
    for (const name of ['capabilities', 'progressStart', 'progressUpdate', 'progressEnd']) {
      dc.on(name, (e) => events.push(e));
    }
    const initialized = dc.waitForEvent('initialized');
    await dc.launch({ kernel: h.kernel('rewind.elf'), engine, record: true, mem: '64M' });
    await initialized;
    const stopped = dc.waitForEvent('stopped');
    await dc.configurationDoneRequest();
    launchStop = await stopped;
  });

  // Back to the known point: no breakpoints of any kind, then forward to
  // the end of the recording (nothing runs when already there).
  beforeEach(async function () {
    await dc.setBreakpointsRequest({ source: { path: rewindC }, breakpoints: [] });
    await dc.send('setFunctionBreakpoints', { breakpoints: [] });
    await dc.send('setDataBreakpoints', { breakpoints: [] });
    const end = dc.waitForEvent('stopped');
    await dc.continueRequest({ threadId: 1 });
    const event = await end;
    assert.match(event.body.description, /end of the recording/, JSON.stringify(event.body));
    const frame = await top();
    assert.deepStrictEqual([frame.name, frame.line], ['sum_list', h.marker('fault', rewindC)], 'each test starts at the fault');
  });

  after(async function () {
    if (dc) await dc.stop();
    fs.rmSync(path.dirname(rspLog), { recursive: true, force: true });
  });

  /** From the end, reverseContinue with a write watch on table.head: the
   * stop at fill_slots' corrupting store. Clears the watch again. */
  const toCorruptingStore = async () => {
    const info = await dc.send('dataBreakpointInfo', { name: 'table.head', frameId: 1 });
    assert.ok(info.body.dataId, info.body.description);
    const set = await dc.send('setDataBreakpoints', { breakpoints: [{ dataId: info.body.dataId, accessType: 'write' }] });
    assert.strictEqual(set.body.breakpoints[0].verified, true);
    const event = await reverseContinue();
    await dc.send('setDataBreakpoints', { breakpoints: [] });
    return { event, id: set.body.breakpoints[0].id };
  };

  it('a recorded session runs into the fault and stops there with the exception', async function () {
    const caps = events.find((e) => e.event === 'capabilities');
    assert.ok(caps && caps.body.capabilities.supportsStepBack, 'a capabilities event turns on supportsStepBack');
    const progress = events.filter((e) => e.event.startsWith('progress')).map((e) => e.body.message || e.body.title);
    assert.ok(progress.some((m) => /record/i.test(m)), `progress while recording: ${progress.join(' | ')}`);
    assert.ok(progress.some((m) => /recorded \d+ instructions/.test(m)), progress.join(' | '));
    const event = launchStop;
    assert.strictEqual(event.body.reason, 'exception', JSON.stringify(event.body));
    assert.match(event.body.description, /end of the recording/);
    assert.match(event.body.description, /triple fault/);
    assert.match(event.body.description, /page-fault address \(CR2\) was 0x4000000004/);
    const frame = await top();
    assert.strictEqual(frame.name, 'sum_list');
    assert.strictEqual(frame.line, h.marker('fault', rewindC));
    assert.strictEqual(await value('n'), '0x4000000004');
    const info = await dc.send('exceptionInfo', { threadId: 1 });
    assert.strictEqual(info.body.exceptionId, 'triple fault');
    // Forward from the end: nothing runs, the end is reported again.
    const again = dc.waitForEvent('stopped');
    await dc.continueRequest({ threadId: 1 });
    assert.match((await again).body.description, /end of the recording/);
  });

  it('stepBack from the faulting instruction: to the start of its line, then one instruction back', async function () {
    let { frame } = await back();
    assert.strictEqual(frame.name, 'sum_list');
    assert.strictEqual(frame.line, h.marker('fault', rewindC));
    const lineStart = BigInt(frame.instructionPointerReference);
    ({ frame } = await back({ granularity: 'instruction' }));
    assert.ok(BigInt(frame.instructionPointerReference) !== lineStart);
    assert.strictEqual(frame.line, h.marker('fault', rewindC) - 1, 'the while (n) check ran just before');
  });

  it('reverseContinue with a data breakpoint on the pointer stops at the corrupting line, old and new value shown', async function () {
    const { event, id } = await toCorruptingStore();
    assert.strictEqual(event.body.reason, 'data breakpoint', JSON.stringify(event.body));
    assert.deepStrictEqual(event.body.hitBreakpointIds, [id]);
    const frame = await top();
    assert.strictEqual(frame.name, 'fill_slots');
    assert.strictEqual(frame.line, h.marker('corrupt', rewindC));
    assert.strictEqual(await value('i'), '4');
    // Before the write (where the replay is now) and after it.
    assert.match(await value('table.head'), /^0x102000\b|nodes/);
    assert.match(event.body.description, /from 0x102000 to 0x4000000004/);
  });

  it('stepBack walks back line by line through the loop', async function () {
    const { event } = await toCorruptingStore();
    assert.strictEqual(event.body.reason, 'data breakpoint', JSON.stringify(event.body));
    // From the store (the middle of its line): the start of that line first.
    let { frame } = await back();
    assert.strictEqual(frame.line, h.marker('corrupt', rewindC));
    assert.strictEqual(await value('i'), '4');
    ({ frame } = await back());
    assert.strictEqual(frame.line, lineOf('MARK:fill-loop'));
    ({ frame } = await back());
    assert.strictEqual(frame.line, h.marker('corrupt', rewindC));
    assert.strictEqual(await value('i'), '3');
  });

  it('stepBack by line steps back over calls; function and line breakpoints stop a reverseContinue', async function () {
    // From the fault, inside sum_list's second call: back to that call's line.
    const after = h.marker('sum-after', rewindC);
    await dc.setBreakpointsRequest({ source: { path: rewindC }, breakpoints: [{ line: after }] });
    const hit = await reverseContinue();
    assert.strictEqual(hit.body.reason, 'breakpoint', JSON.stringify(hit.body));
    assert.strictEqual((await top()).line, after);
    let { frame } = await back();
    assert.strictEqual(frame.name, 'kmain');
    assert.strictEqual(frame.line, h.marker('puts', rewindC), 'back over serial_puts');
    ({ frame } = await back());
    assert.strictEqual(frame.name, 'kmain');
    assert.strictEqual(frame.line, h.marker('call-fill', rewindC), 'back over fill_slots');
    // Going back from here: sum_list's first call (a function breakpoint)
    // comes before its call's line (a line breakpoint).
    const before = h.marker('sum-before', rewindC);
    await dc.setBreakpointsRequest({ source: { path: rewindC }, breakpoints: [{ line: before }] });
    await dc.send('setFunctionBreakpoints', { breakpoints: [{ name: 'sum_list' }] });
    let event = await reverseContinue();
    assert.strictEqual(event.body.reason, 'function breakpoint', JSON.stringify(event.body));
    assert.strictEqual((await top()).name, 'sum_list');
    assert.match(await value('n'), /^0x102000\b|nodes/, 'the list head, before fill_slots corrupts it');
    event = await reverseContinue();
    assert.strictEqual(event.body.reason, 'breakpoint', JSON.stringify(event.body));
    assert.strictEqual((await top()).line, before);
    await dc.send('setFunctionBreakpoints', { breakpoints: [] });
    await dc.setBreakpointsRequest({ source: { path: rewindC }, breakpoints: [] });
  });

  // vmdbg-vmm's stub range-steps a replay too (its recorder steps the
  // range); QEMU's has no vCont;r.
  if (engine === 'kvm') it('next forward in the replay, range-stepped, lands where stepBack left from', async function () {
    const after = h.marker('sum-after', rewindC);
    await dc.setBreakpointsRequest({ source: { path: rewindC }, breakpoints: [{ line: after }] });
    const hit = await reverseContinue();
    assert.strictEqual(hit.body.reason, 'breakpoint', JSON.stringify(hit.body));
    const from = await top();
    await dc.setBreakpointsRequest({ source: { path: rewindC }, breakpoints: [] });
    const { frame } = await back();
    assert.strictEqual(frame.line, h.marker('puts', rewindC));
    const before = sent().length;
    const { frames } = await h.stepAndWait(dc, 'next', { threadId: 1 });
    assert.deepStrictEqual([frames[0].name, frames[0].line, frames[0].instructionPointerReference], ['kmain', after, from.instructionPointerReference]);
    const resumes = sent().slice(before).filter((p) => p.startsWith('vCont') && p !== 'vCont?');
    assert.ok(resumes.some((p) => p.startsWith('vCont;r')), resumes.join('\n'));
  });

  it('reverseContinue without breakpoints reaches the start of the recording; stepBack there says so', async function () {
    let event = await reverseContinue();
    assert.strictEqual(event.body.description, 'start of the recording', JSON.stringify(event.body));
    const { event: again } = await back();
    assert.strictEqual(again.body.description, 'start of the recording');
    event = await reverseContinue();
    assert.strictEqual(event.body.description, 'start of the recording');
  });
});

for (const engine of ['kvm', 'qemu']) describe(`DAP record and replay (${engine} engine): limits`, function () {
  this.timeout(120000);
  let dc;

  before(function () {
    h.requireTier(this, tierMissing(engine));
  });

  afterEach(async function () {
    if (dc) await dc.stop();
    dc = null;
  });

  it('recordLimit ends the recording of a kernel that runs on; the replay stops at its end and steps back', async function () {
    dc = await h.startClient();
    dc.defaultTimeout = 100000;
    const progress = [];
    dc.on('progressUpdate', (e) => progress.push(e.body.message));
    const initialized = dc.waitForEvent('initialized');
    await dc.launch({ kernel: h.kernel('spin.elf'), engine, record: true, recordLimit: 1, mem: '64M' });
    await initialized;
    assert.ok(progress.some((m) => /recorded \d+ instructions \(the time limit ended it\)/.test(m)), progress.join(' | '));
    const stopped = dc.waitForEvent('stopped');
    await dc.configurationDoneRequest();
    const end = (await stopped).body;
    assert.strictEqual(end.reason, 'step', JSON.stringify(end));
    assert.strictEqual(end.description, 'end of the recording');
    const spinC = path.join(h.sourceDir, 'spin.c');
    const frames = (await dc.stackTraceRequest({ threadId: 1 })).body.stackFrames;
    assert.strictEqual(frames[0].name, 'kmain', 'the kernel was spinning when the limit came');
    const { event, frames: after } = await h.stepAndWait(dc, 'stepBack', { threadId: 1 });
    assert.strictEqual(event.body.reason, 'step', JSON.stringify(event.body));
    assert.ok([h.marker('spin-loop', spinC), h.marker('spin-loop', spinC) - 1].includes(after[0].line), `line ${after[0].line}`);
  });

  if (engine === 'kvm') {
    it('a Linux guest is not recorded on vmdbg-vmm: the error names the fix', async function () {
      dc = await h.startClient();
      await assert.rejects(
        dc.send('launch', { kernel: h.kernel('rewind.elf'), initrd: h.kernel('rewind.elf'), engine, record: true }),
        /refuses virtio devices while recording.*"engine": "qemu"/s,
      );
    });
  }
});

function lineOf(mark) {
  return h.lineOf(rewindC, new RegExp(mark.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
}

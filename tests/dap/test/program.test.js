// Program mode end to end: a real DAP client (DebugClient) drives the real
// `vmdbg dap`, which boots a fresh Linux VM (the QEMU engine; TCG where this
// host's KVM cannot run Linux), copies in a C or a Rust program built here
// with -g, and debugs it through the guest agent's process debugger:
// breakpoints, locals, step over, stdout/stderr as output events, the exit
// code in `exited`, a NULL dereference as an exception at the faulting line,
// signals passed on as gdb does (SIGCHLD/SIGWINCH without a stop; a
// reported signal delivered on continue or step; a program killed by its
// signal reported with `exited` 128+N), a breakpoint in a shared library, and
// a breakpoint on a thread spawned after the launch (listed by its name). It also prints the time from
// `launch` to the first `stopped` event.
'use strict';
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { vmdbg, strict, haveCommand, startClient, lineOf, scopeVariables } = require('./helpers');

const { sources, buildPrograms } = require('../programs');
const { tallyC, handledC, segvC, rustMain, usesLibC, libShapeC, threadsC } = sources;

// The nested tier runs this suite against `vmdbg dap` inside its L1 VM
// (tests/tests/nested_linux.rs): the programs are prebuilt at a path L1
// shares, the adapter is reached over TCP, and the engine is KVM.
const prebuilt = process.env.VMDBG_TEST_PROGRAMS;
const engine = process.env.VMDBG_TEST_ENGINE || 'qemu';

// A boot under TCG takes seconds; a loaded CI host may take a minute.
const BOOT_MS = 240000;

/** Why this machine cannot run program sessions, or null. */
function programTierMissing() {
  if (prebuilt) return null;
  if (!fs.existsSync(vmdbg)) return `${vmdbg} is not built (cargo build --release -p vmdbg)`;
  for (const tool of ['gcc', 'rustc', 'qemu-system-x86_64']) {
    if (!haveCommand(tool)) return `\`${tool}\` is not installed (see .ci/setup-tests)`;
  }
  return null;
}

/** Launches `config`, sets breakpoints, and returns the first stop. */
async function launchToStop(dc, config, breakpoints) {
  const started = Date.now();
  const stopped = dc.waitForEvent('stopped', BOOT_MS);
  await dc.initializeRequest({ adapterID: 'vmdbg', supportsProgressReporting: true });
  const initialized = dc.waitForEvent('initialized', BOOT_MS);
  const launched = dc.launchRequest({ engine, ...config });
  // A launch refused before `initialized` would otherwise leave this
  // waiting for an event that never comes.
  await Promise.race([initialized, launched.then(() => initialized)]);
  const bpResponses = [];
  for (const [source, lines] of breakpoints) {
    bpResponses.push(await dc.setBreakpointsRequest({ source: { path: source }, breakpoints: lines.map((line) => ({ line })) }));
  }
  await dc.configurationDoneRequest();
  await launched;
  const event = await stopped;
  return { event, ms: Date.now() - started, bpResponses };
}

async function topFrames(dc, threadId) {
  const trace = await dc.stackTraceRequest({ threadId });
  return trace.body.stackFrames;
}

function output(dc, category) {
  return dc.outputs.filter((o) => o.category === category).map((o) => o.output).join('');
}

describe(`program session in a Linux VM (${engine} engine)`, function () {
  this.timeout(BOOT_MS + 60000);
  let work;
  let dc;

  before(function () {
    const missing = programTierMissing();
    if (missing) {
      if (strict()) throw new Error(`required but unavailable under CI: ${missing}`);
      console.log(`SKIPPED: ${this.test.parent.title}: ${missing}`);
      this.skip();
    }
    if (prebuilt) {
      work = prebuilt;
    } else {
      work = fs.mkdtempSync(path.join(os.tmpdir(), 'vmdbg-dap-program-'));
      buildPrograms(work);
    }
  });

  beforeEach(async function () {
    dc = await startClient();
    dc.outputs = [];
    dc.on('output', (e) => dc.outputs.push(e.body));
  });

  afterEach(async function () {
    if (dc) {
      await dc.stop().catch(() => {});
      dc = null;
    }
  });

  after(function () {
    if (work && !prebuilt) fs.rmSync(work, { recursive: true, force: true });
  });

  it('C: breakpoint in main, locals, step over, stdout/stderr as output, exit code', async function () {
    const first = lineOf(tallyC, /MARK:main-first/);
    const loop = lineOf(tallyC, /MARK:loop/);
    const progress = [];
    dc.on('progressStart', (e) => progress.push(e.body.title));
    const { event, ms, bpResponses } = await launchToStop(dc, { program: path.join(work, 'tally') }, [[tallyC, [first]]]);
    console.log(`      launch -> first stopped (breakpoint in main, C program): ${ms} ms`);
    assert.ok(progress.length > 0, 'progressStart was sent for the boot');
    // The adapter's own word on which engine booted the VM, so a run meant
    // for the KVM engine cannot pass on another.
    const said = output(dc, 'console');
    assert.ok(said.includes(`vmdbg: engine ${engine} `), `not booted on the ${engine} engine; the console said:\n${said}`);
    assert.strictEqual(bpResponses[0].body.breakpoints[0].verified, true);
    assert.strictEqual(event.body.reason, 'breakpoint');
    let frames = await topFrames(dc, event.body.threadId);
    assert.strictEqual(frames[0].name, 'main');
    assert.strictEqual(frames[0].line, first);

    // Step over twice: total = 0, count = 3, then the loop's line.
    for (let i = 0; i < 2; i++) {
      const stepped = dc.waitForEvent('stopped');
      await dc.nextRequest({ threadId: event.body.threadId });
      assert.strictEqual((await stepped).body.reason, 'step');
    }
    frames = await topFrames(dc, event.body.threadId);
    assert.ok(frames[0].line > first && frames[0].line <= loop, `stepped to line ${frames[0].line}`);
    const { variables } = await scopeVariables(dc, frames[0].id, 'Locals');
    const byName = Object.fromEntries(variables.map((v) => [v.name, v]));
    assert.strictEqual(byName.total.value, '0');
    assert.strictEqual(byName.count.value, '3');
    assert.strictEqual(byName.total.type, 'int');

    const exited = dc.waitForEvent('exited', 60000);
    await dc.continueRequest({ threadId: event.body.threadId });
    assert.strictEqual((await exited).body.exitCode, 3);
    assert.strictEqual(output(dc, 'stdout'), 'total=14\n');
    assert.strictEqual(output(dc, 'stderr'), 'tally: done\n');
    await dc.waitForEvent('terminated', 10000);
  });

  it('C: a NULL dereference stops with an exception at the faulting line', async function () {
    const fault = lineOf(segvC, /MARK:fault/);
    const { event } = await launchToStop(dc, { program: path.join(work, 'segv') }, []);
    assert.strictEqual(event.body.reason, 'exception');
    const info = await dc.send('exceptionInfo', { threadId: event.body.threadId });
    assert.match(info.body.exceptionId, /SIGSEGV/);
    const frames = await topFrames(dc, event.body.threadId);
    assert.strictEqual(frames[0].name, 'read_through');
    assert.strictEqual(frames[0].line, fault);
    assert.strictEqual(path.basename(frames[0].source.path), 'segv.c');
    assert.deepStrictEqual(frames.slice(1, 3).map((f) => f.name), ['outer', 'main']);
    const terminated = dc.waitForEvent('terminated', 20000);
    await dc.send('terminate', {});
    await terminated;
  });

  it('C: a conditional breakpoint and a logpoint; `next` over a call passes the logpoint without stopping', async function () {
    const loop = lineOf(tallyC, /MARK:loop/);
    const squareReturn = lineOf(tallyC, /MARK:square-return/);
    const stops = [];
    dc.on('stopped', (e) => stops.push(e.body.reason));
    await dc.initializeRequest({ adapterID: 'vmdbg' });
    const initialized = dc.waitForEvent('initialized', BOOT_MS);
    const launched = dc.launchRequest({ engine, program: path.join(work, 'tally') });
    await initialized;
    const reply = await dc.setBreakpointsRequest({
      source: { path: tallyC },
      breakpoints: [{ line: squareReturn, logMessage: 'square({x})={result}' }, { line: loop, condition: 'i == 3 && total == 5' }],
    });
    assert.deepStrictEqual(reply.body.breakpoints.map((b) => b.verified), [true, true]);
    const stopped = dc.waitForEvent('stopped', BOOT_MS);
    await dc.configurationDoneRequest();
    await launched;
    const event = await stopped;
    assert.strictEqual(event.body.reason, 'breakpoint');
    let frames = await topFrames(dc, event.body.threadId);
    assert.strictEqual(frames[0].line, loop);
    const i = await dc.evaluateRequest({ expression: 'i', frameId: frames[0].id });
    assert.strictEqual(i.body.result, '3');
    assert.match(dc.console, /square\(1\)=1\nsquare\(2\)=4\n/);
    assert.doesNotMatch(dc.console, /square\(3\)/);
    const stepped = dc.waitForEvent('stopped');
    await dc.nextRequest({ threadId: event.body.threadId });
    assert.strictEqual((await stepped).body.reason, 'step');
    frames = await topFrames(dc, event.body.threadId);
    assert.strictEqual(frames[0].name, 'main');
    assert.match(dc.console, /square\(3\)=9\n/);
    const exited = dc.waitForEvent('exited', 60000);
    await dc.continueRequest({ threadId: event.body.threadId });
    assert.strictEqual((await exited).body.exitCode, 3);
    assert.deepStrictEqual(stops, ['breakpoint', 'step']);
  });

  it('signals: SIGWINCH and SIGCHLD pass without a stop; SIGUSR1 stops, and continue runs its handler', async function () {
    const { event } = await launchToStop(dc, { program: path.join(work, 'handled') }, []);
    assert.strictEqual(event.body.reason, 'exception', JSON.stringify(event.body));
    assert.strictEqual(event.body.text, 'SIGUSR1', 'the first stop is SIGUSR1, not SIGWINCH or SIGCHLD');
    const info = await dc.send('exceptionInfo', { threadId: event.body.threadId });
    assert.strictEqual(info.body.exceptionId, 'SIGUSR1');
    assert.match(dc.console, /Program received signal SIGUSR1, User defined signal 1\./);
    const exited = dc.waitForEvent('exited', 60000);
    await dc.continueRequest({ threadId: event.body.threadId });
    assert.strictEqual((await exited).body.exitCode, 0, output(dc, 'stdout'));
    assert.strictEqual(output(dc, 'stdout'), 'SIGUSR1 handler ran\nwinch=1 chld=1 usr1=1\n');
    await dc.waitForEvent('terminated', 10000);
  });

  it('signals: `stepIn` at a SIGUSR1 stop steps into the handler; continue then exits 0', async function () {
    const { event } = await launchToStop(dc, { program: path.join(work, 'handled') }, []);
    assert.strictEqual(event.body.text, 'SIGUSR1', JSON.stringify(event.body));
    const stepped = dc.waitForEvent('stopped');
    await dc.stepInRequest({ threadId: event.body.threadId });
    assert.strictEqual((await stepped).body.reason, 'step');
    const frames = await topFrames(dc, event.body.threadId);
    assert.strictEqual(frames[0].name, 'on_usr1');
    assert.strictEqual(path.basename(frames[0].source.path), 'handled.c');
    assert.strictEqual(output(dc, 'stdout'), '', 'the handler has not run yet');
    const exited = dc.waitForEvent('exited', 60000);
    await dc.continueRequest({ threadId: event.body.threadId });
    assert.strictEqual((await exited).body.exitCode, 0, output(dc, 'stdout'));
    assert.strictEqual(output(dc, 'stdout'), 'SIGUSR1 handler ran\nwinch=1 chld=1 usr1=1\n');
  });

  it('signals: continued past its SIGSEGV stop, the program dies of it: console line, exited 139, then terminated', async function () {
    const order = [];
    dc.on('exited', () => order.push('exited'));
    dc.on('terminated', () => order.push('terminated'));
    const { event } = await launchToStop(dc, { program: path.join(work, 'segv') }, []);
    assert.strictEqual(event.body.reason, 'exception');
    assert.strictEqual(event.body.text, 'SIGSEGV');
    const exited = dc.waitForEvent('exited', 60000);
    const terminated = dc.waitForEvent('terminated', 60000);
    await dc.continueRequest({ threadId: event.body.threadId });
    assert.strictEqual((await exited).body.exitCode, 139);
    await terminated;
    assert.deepStrictEqual(order, ['exited', 'terminated']);
    assert.match(dc.console, /program terminated by signal SIGSEGV \(Segmentation fault\), exit code 139/);
  });

  it('signals: `next` at a SIGSEGV stop delivers the signal, and the program dies of it', async function () {
    const { event } = await launchToStop(dc, { program: path.join(work, 'segv') }, []);
    assert.strictEqual(event.body.reason, 'exception');
    const laterStops = [];
    dc.on('stopped', (e) => laterStops.push(e.body));
    const exited = dc.waitForEvent('exited', 60000);
    await dc.nextRequest({ threadId: event.body.threadId });
    assert.strictEqual((await exited).body.exitCode, 139);
    await dc.waitForEvent('terminated', 10000);
    assert.deepStrictEqual(laterStops, [], 'the step did not stop again at the fault');
  });

  it('Rust: breakpoint in a function, its argument, stdout, exit code', async function () {
    const line = lineOf(rustMain, /MARK:triple/);
    const { event, ms } = await launchToStop(dc, { program: path.join(work, 'rust_main') }, [[rustMain, [line]]]);
    console.log(`      launch -> first stopped (breakpoint, Rust program): ${ms} ms`);
    assert.strictEqual(event.body.reason, 'breakpoint');
    const frames = await topFrames(dc, event.body.threadId);
    assert.match(frames[0].name, /triple/);
    assert.strictEqual(frames[0].line, line);
    assert.ok(frames.some((f) => /main/.test(f.name)), frames.map((f) => f.name).join(' < '));
    const { variables } = await scopeVariables(dc, frames[0].id, 'Arguments');
    assert.strictEqual(variables.find((v) => v.name === 'v').value, '14');
    const exited = dc.waitForEvent('exited', 60000);
    await dc.continueRequest({ threadId: event.body.threadId });
    assert.strictEqual((await exited).body.exitCode, 0);
    assert.strictEqual(output(dc, 'stdout'), 'total=42\n');
  });

  it('C: a breakpoint in a shared library (svr4 list -> the host copy\'s DWARF), its locals, step out to main', async function () {
    const line = lineOf(libShapeC, /MARK:area/);
    const { event, bpResponses } = await launchToStop(dc, { program: path.join(work, 'uses_lib') }, [[libShapeC, [line]]]);
    assert.strictEqual(bpResponses[0].body.breakpoints[0].verified, true, JSON.stringify(bpResponses[0].body));
    assert.strictEqual(event.body.reason, 'breakpoint');
    let frames = await topFrames(dc, event.body.threadId);
    assert.strictEqual(frames[0].name, 'shape_area');
    assert.strictEqual(frames[0].line, line);
    assert.strictEqual(path.basename(frames[0].source.path), 'libshape.c');
    assert.strictEqual(frames[1].name, 'main', 'the stack crosses from the library into the program');
    assert.strictEqual(path.basename(frames[1].source.path), 'uses_lib.c');
    const { variables } = await scopeVariables(dc, frames[0].id, 'Arguments');
    assert.deepStrictEqual(variables.map((v) => `${v.name}=${v.value}`), ['width=6', 'height=7']);
    const out = dc.waitForEvent('stopped');
    await dc.stepOutRequest({ threadId: event.body.threadId });
    await out;
    frames = await topFrames(dc, event.body.threadId);
    assert.strictEqual(frames[0].name, 'main');
    assert.strictEqual(path.basename(frames[0].source.path), 'uses_lib.c');
    const exited = dc.waitForEvent('exited', 60000);
    await dc.continueRequest({ threadId: event.body.threadId });
    assert.strictEqual((await exited).body.exitCode, 0);
    assert.strictEqual(output(dc, 'stdout'), 'area=42\n');
  });

  it('threads: a breakpoint on a thread spawned after the launch stops on that thread, listed with its name', async function () {
    const ready = lineOf(threadsC, /MARK:ready/);
    const started = [];
    dc.on('thread', (e) => e.body.reason === 'started' && started.push(e.body.threadId));
    const { event } = await launchToStop(dc, { program: path.join(work, 'threads') }, [[threadsC, [ready]]]);
    assert.strictEqual(event.body.reason, 'breakpoint');
    const { threads } = (await dc.threadsRequest()).body;
    const names = threads.map((t) => t.name).join(', ');
    // main and the three workers, by the names the program gave them (worker-N) and its own (threads).
    assert.strictEqual(threads.length, 4, names);
    for (const name of ['threads', 'worker-0', 'worker-1', 'worker-2']) {
      assert.ok(threads.some((t) => t.name.startsWith(`${name} (`)), `no thread named ${name}: ${names}`);
    }
    const stoppedOn = threads.find((t) => t.id === event.body.threadId);
    assert.ok(stoppedOn, `the stopped thread ${event.body.threadId} is not listed: ${names}`);
    assert.ok(stoppedOn.name.startsWith('worker-0 ('), `stopped on ${stoppedOn.name}`);
    for (const t of threads.filter((t) => t.name.startsWith('worker-'))) {
      assert.ok(started.includes(t.id), `no 'thread started' event for ${t.name} (events: ${started})`);
    }
    const frames = await topFrames(dc, event.body.threadId);
    assert.strictEqual(frames[0].name, 'worker_ready');
    assert.strictEqual(frames[0].line, ready);
    assert.strictEqual(frames[1].name, 'worker');
    const { variables } = await scopeVariables(dc, frames[0].id, 'Arguments');
    assert.strictEqual(variables.find((v) => v.name === 'id').value, '0');
    const exited = dc.waitForEvent('exited', 60000);
    await dc.continueRequest({ threadId: event.body.threadId });
    assert.strictEqual((await exited).body.exitCode, 0);
    assert.match(output(dc, 'stdout'), /worker 0 ready\njoined\n/);
  });

  it('a program that does not exist is refused with a clear error', async function () {
    await dc.initializeRequest({ adapterID: 'vmdbg' });
    await assert.rejects(dc.launchRequest({ program: path.join(work, 'no-such-program') }), /is not a file/);
  });
});

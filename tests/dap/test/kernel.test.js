// Kernel sessions on the host tier: `vmdbg dap` launches calls-O0.elf /
// calls-O2.elf on vmdbg-vmm (real KVM) and a real DAP client drives it.
'use strict';
const assert = require('assert');
const cp = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const h = require('./helpers');

describe('kernel session on vmdbg-vmm (host tier)', function () {
  this.timeout(60000);
  let dc;

  before(function () {
    h.requireTier(this, h.hostTierMissing());
  });

  beforeEach(async function () {
    dc = await h.startClient();
  });

  afterEach(async function () {
    if (dc) await dc.stop();
    dc = null;
  });

  const stopAt = (kernelName, line, file = h.callsC) =>
    dc.hitBreakpoint({ kernel: h.kernel(kernelName) }, { path: file, line });

  it('a line breakpoint hits and the stack shows the call chain with source lines', async function () {
    requireGdbUnderQemu(this);
    const gdbFrames = gdbBacktrace(h.kernel('calls-O0.elf'), `calls.c:${h.marker('leaf')}`);
    await stopAt('calls-O0.elf', h.marker('leaf'));
    const trace = await dc.stackTraceRequest({ threadId: 1 });
    const frames = trace.body.stackFrames;
    assert.deepStrictEqual(
      frames.slice(0, 4).map((f) => [f.name, f.line, path.basename(f.source.path)]),
      [
        ['leaf', h.marker('leaf'), 'calls.c'],
        ['accumulate', h.marker('call-leaf'), 'calls.c'],
        ['compute', h.marker('call-accumulate'), 'calls.c'],
        ['kmain', h.marker('call-compute'), 'calls.c'],
      ],
    );
    // The whole stack, down to the entry code, is the one gdb's bt shows
    // at the same breakpoint under QEMU: no frame missing past kmain,
    // none made up.
    assert.deepStrictEqual(
      frames.map((f) => `${f.name} ${f.source ? path.basename(f.source.path) : null}:${f.source ? f.line : null}`),
      gdbFrames,
    );
  });

  it('a breakpoint on a line without code moves to the next line with code', async function () {
    await launchAndConfigure(dc, { kernel: h.kernel('calls-O0.elf') });
    // `int r;` in compute() has no code; the `for` below it has.
    const declLine = h.marker('compute-loop') - 3;
    assert.match(fs.readFileSync(h.callsC, 'utf8').split('\n')[declLine - 1], /^\s*int r;\s*$/);
    const reply = await dc.setBreakpointsRequest({ source: { path: h.callsC }, breakpoints: [{ line: declLine }] });
    const bp = reply.body.breakpoints[0];
    assert.strictEqual(bp.verified, true);
    assert.strictEqual(bp.line, h.marker('compute-loop') - 1);
    const stopped = dc.waitForEvent('stopped');
    await dc.configurationDoneRequest();
    const event = await stopped;
    assert.strictEqual(event.body.reason, 'breakpoint');
    const trace = await dc.stackTraceRequest({ threadId: event.body.threadId });
    assert.strictEqual(trace.body.stackFrames[0].line, bp.line);
  });

  it('locals, arguments, a struct, an array and globals show the values and types', async function () {
    await stopAt('calls-O0.elf', h.marker('leaf'));
    const locals = (await h.scopeVariables(dc, 1, 'Locals')).variables;
    const byName = Object.fromEntries(locals.map((v) => [v.name, v]));
    assert.strictEqual(byName.depth.value, '3');
    assert.strictEqual(byName.depth.type, 'volatile int');
    assert.strictEqual(byName.shade.value, 'BLUE');
    assert.strictEqual(byName.shade.type, 'volatile enum color');
    assert.strictEqual(byName.p.type, 'volatile struct point');
    assert.strictEqual(byName.p.value, '{x = 7, y = 9}');
    const members = (await dc.variablesRequest({ variablesReference: byName.p.variablesReference })).body.variables;
    assert.deepStrictEqual(members.map((m) => [m.name, m.value]), [['x', '7'], ['y', '9']]);
    assert.match(byName.arr.type, /int\[5\]$/);
    const elements = (await dc.variablesRequest({ variablesReference: byName.arr.variablesReference })).body.variables;
    assert.deepStrictEqual(elements.map((e) => [e.name, e.value]), [['[0]', '10'], ['[1]', '20'], ['[2]', '30'], ['[3]', '40'], ['[4]', '50']]);

    const args = Object.fromEntries((await h.scopeVariables(dc, 1, 'Arguments')).variables.map((v) => [v.name, v]));
    assert.strictEqual(args.level.value, '3');
    assert.strictEqual(args.pt.type, 'const struct point *');
    const pointee = (await dc.variablesRequest({ variablesReference: args.pt.variablesReference })).body.variables;
    assert.strictEqual(pointee[0].name, '*pt');
    assert.strictEqual(pointee[0].value, '{x = 7, y = 9}');

    const globals = Object.fromEntries((await h.scopeVariables(dc, 1, 'Globals')).variables.map((v) => [v.name, v]));
    assert.strictEqual(globals.favorite.value, 'GREEN');
    assert.strictEqual(globals.counter.value, '30');
    const shape = (await dc.variablesRequest({ variablesReference: globals.shape.variablesReference })).body.variables;
    const shapeBy = Object.fromEntries(shape.map((v) => [v.name, v]));
    assert.match(shapeBy.name.value, /"square"$/);
    assert.strictEqual(shapeBy.sides.value, '[5, 6, 7, 8]');
    assert.strictEqual(shapeBy.color.value, 'BLUE');
    assert.strictEqual(shapeBy.corner.value, '{x = 7, y = 9}');

    // Caller frames have their own variables (CFI-unwound frame base).
    const computeLocals = Object.fromEntries((await h.scopeVariables(dc, 3, 'Locals')).variables.map((v) => [v.name, v.value]));
    assert.strictEqual(computeLocals.sum, '150');
    assert.strictEqual(computeLocals.c, 'GREEN');
  });

  it('evaluate reads names, registers, members, pointers and indexes, and setVariable writes', async function () {
    await stopAt('calls-O0.elf', h.marker('leaf'));
    const ev = async (expression, frameId = 1) => (await dc.evaluateRequest({ expression, frameId })).body;
    assert.strictEqual((await ev('shape.sides[2]')).result, '7');
    assert.strictEqual((await ev('pt->y')).result, '9');
    assert.strictEqual((await ev('*src')).result, '10');
    assert.strictEqual((await ev('src[4]')).result, '50');
    assert.strictEqual((await ev('arr[1]')).result, '20');
    assert.strictEqual((await ev('sum', 3)).result, '150');
    // Stopped on the leaf breakpoint: rip is where gdb says that line starts.
    assert.strictEqual(BigInt((await ev('$rip')).result), h.gdbLineAddress(h.kernel('calls-O0.elf'), `calls.c:${h.marker('leaf')}`));
    await assert.rejects(dc.evaluateRequest({ expression: 'no_such_name', frameId: 1 }), /no symbol/);
    await assert.rejects(dc.evaluateRequest({ expression: 'pt.x', frameId: 1 }), /use ->/);

    const locals = await h.scopeVariables(dc, 1, 'Locals');
    const set = await dc.setVariableRequest({ variablesReference: locals.scope.variablesReference, name: 'depth', value: '5' });
    assert.strictEqual(set.body.value, '5');
    assert.strictEqual((await ev('depth')).result, '5');
    await assert.rejects(dc.setVariableRequest({ variablesReference: locals.scope.variablesReference, name: 'depth', value: 'banana' }), /not a number/);
  });

  it('next, step in and step out land on the lines gdb lands on under QEMU', async function () {
    requireGdbUnderQemu(this);
    const start = h.marker('call-accumulate');
    // [DAP request, gdb command]
    const plan = [
      ['stepIn', 'step'], ['next', 'next'], ['next', 'next'], ['stepOut', 'finish'],
      ['next', 'next'], ['next', 'next'], ['next', 'next'], ['next', 'next'], ['stepIn', 'step'],
      ['next', 'next'], ['stepOut', 'finish'], ['next', 'next'],
    ];
    const gdbLines = gdbStepLines(h.kernel('calls-O0.elf'), `calls.c:${start}`, plan.map((p) => p[1]));
    await stopAt('calls-O0.elf', start);
    const ours = [];
    for (const [request] of plan) {
      const { frames } = await h.stepAndWait(dc, request, { threadId: 1 });
      ours.push(`${frames[0].name}:${frames[0].line}`);
    }
    assert.deepStrictEqual(ours.map((s) => Number(s.split(':')[1])), gdbLines, `vmdbg: ${ours.join(' ')}`);
    // Spot checks that do not depend on gdb.
    assert.strictEqual(ours[0].split(':')[0], 'accumulate');
    assert.strictEqual(ours[3], `compute:${start}`);
    assert.strictEqual(ours[4], `compute:${h.marker('after-accumulate')}`);
  });

  it('instruction stepping moves by one instruction', async function () {
    await stopAt('calls-O0.elf', h.marker('leaf'));
    const before = BigInt((await dc.stackTraceRequest({ threadId: 1 })).body.stackFrames[0].instructionPointerReference);
    const { frames } = await h.stepAndWait(dc, 'next', { threadId: 1, granularity: 'instruction' });
    const after = BigInt(frames[0].instructionPointerReference);
    // The marker line's instruction is a 1-byte nop.
    assert.strictEqual(after - before, 1n);
    const dis = await dc.send('disassemble', { memoryReference: `0x${before.toString(16)}`, instructionCount: 3 });
    assert.strictEqual(dis.body.instructions.length, 3);
    assert.strictEqual(dis.body.instructions[0].instruction, 'nop');
    const mem = await dc.send('readMemory', { memoryReference: `0x${before.toString(16)}`, count: 1 });
    assert.strictEqual(Buffer.from(mem.body.data, 'base64')[0], 0x90);
  });

  it('a data breakpoint on a global stops when it changes', async function () {
    await launchAndConfigure(dc, { kernel: h.kernel('calls-O0.elf') });
    // Stop early (in compute) to set the watchpoint before the write.
    await dc.setBreakpointsRequest({ source: { path: h.callsC }, breakpoints: [{ line: h.marker('call-accumulate') }] });
    let stopped = dc.waitForEvent('stopped');
    await dc.configurationDoneRequest();
    await stopped;
    const info = await dc.send('dataBreakpointInfo', { name: 'counter', frameId: 1 });
    assert.ok(info.body.dataId, info.body.description);
    assert.ok(info.body.accessTypes.includes('write'));
    const set = await dc.send('setDataBreakpoints', { breakpoints: [{ dataId: info.body.dataId, accessType: 'write' }] });
    assert.strictEqual(set.body.breakpoints[0].verified, true);
    await dc.setBreakpointsRequest({ source: { path: h.callsC }, breakpoints: [] });
    stopped = dc.waitForEvent('stopped');
    await dc.continueRequest({ threadId: 1 });
    const event = await stopped;
    assert.strictEqual(event.body.reason, 'data breakpoint');
    assert.deepStrictEqual(event.body.hitBreakpointIds, [set.body.breakpoints[0].id]);
    const frames = (await dc.stackTraceRequest({ threadId: 1 })).body.stackFrames;
    assert.strictEqual(frames[0].name, 'leaf');
    assert.ok([h.marker('counter-write'), h.marker('leaf')].includes(frames[0].line), `stopped at line ${frames[0].line}`);
    assert.strictEqual((await dc.evaluateRequest({ expression: 'counter', frameId: 1 })).body.result, '30');
  });

  it('continue runs to the end and `exited` carries the guest exit code', async function () {
    await stopAt('calls-O0.elf', h.marker('leaf'));
    await dc.setBreakpointsRequest({ source: { path: h.callsC }, breakpoints: [] });
    const exited = dc.waitForEvent('exited');
    const terminated = dc.waitForEvent('terminated');
    await dc.continueRequest({ threadId: 1 });
    const code = (await exited).body.exitCode;
    await terminated;
    const printed = /calls: exit=(\d+)/.exec(dc.console);
    assert.ok(printed, `the guest's serial output arrived as console output: ${JSON.stringify(dc.console)}`);
    assert.strictEqual(code, Number(printed[1]));
  });

  it('restart boots a fresh VM and keeps the breakpoints', async function () {
    await stopAt('calls-O0.elf', h.marker('leaf'));
    let terminated = false;
    dc.on('terminated', () => { terminated = true; });
    const stopped = dc.waitForEvent('stopped');
    await dc.send('restart', {});
    const event = await stopped;
    assert.strictEqual(event.body.reason, 'breakpoint');
    const frames = (await dc.stackTraceRequest({ threadId: event.body.threadId })).body.stackFrames;
    assert.strictEqual(frames[0].line, h.marker('leaf'));
    assert.strictEqual(terminated, false, 'a restart does not end the session');
  });

  it('a fifth breakpoint is refused with the reason (4 hardware slots)', async function () {
    await launchAndConfigure(dc, { kernel: h.kernel('calls-O0.elf') });
    const lines = ['leaf', 'call-leaf', 'after-leaf', 'compute-loop', 'after-accumulate'].map((m) => h.marker(m));
    const reply = await dc.setBreakpointsRequest({ source: { path: h.callsC }, breakpoints: lines.map((line) => ({ line })) });
    const verified = reply.body.breakpoints.filter((b) => b.verified);
    const refused = reply.body.breakpoints.filter((b) => !b.verified);
    assert.strictEqual(verified.length, 4);
    assert.strictEqual(refused.length, 1);
    assert.match(refused[0].message, /DR0–DR3/);
  });

  it('function breakpoints and pause', async function () {
    await launchAndConfigure(dc, { kernel: h.kernel('calls-O0.elf') });
    const reply = await dc.setFunctionBreakpointsRequest({ breakpoints: [{ name: 'factorial' }, { name: 'nonexistent' }] });
    assert.strictEqual(reply.body.breakpoints[0].verified, true);
    assert.strictEqual(reply.body.breakpoints[1].verified, false);
    const stopped = dc.waitForEvent('stopped');
    await dc.configurationDoneRequest();
    const event = await stopped;
    assert.strictEqual(event.body.reason, 'function breakpoint');
    const frames = (await dc.stackTraceRequest({ threadId: 1 })).body.stackFrames;
    assert.strictEqual(frames[0].name, 'factorial');
    assert.strictEqual((await dc.evaluateRequest({ expression: 'n', frameId: 1 })).body.result, '5');
    // Recursion: the same breakpoint hits again one level deeper.
    const again = await h.stepAndWait(dc, 'continue', { threadId: 1 });
    assert.strictEqual(again.frames[0].name, 'factorial');
    assert.strictEqual(again.frames[1].name, 'factorial');
    assert.strictEqual((await dc.evaluateRequest({ expression: 'n', frameId: 1 })).body.result, '4');
  });

  /** Launches calls-O0.elf with `breakpoints` in calls.c and starts it. */
  async function launchWith(breakpoints) {
    await launchAndConfigure(dc, { kernel: h.kernel('calls-O0.elf') });
    const reply = await dc.setBreakpointsRequest({ source: { path: h.callsC }, breakpoints });
    const stops = [];
    dc.on('stopped', (e) => stops.push(e.body));
    const exited = dc.waitForEvent('exited');
    const stopped = dc.waitForEvent('stopped');
    await dc.configurationDoneRequest();
    return { reply, stops, exited, stopped };
  }
  const evaluate = async (expression) => (await dc.evaluateRequest({ expression, frameId: 1 })).body.result;
  async function continueToStop() {
    const stopped = dc.waitForEvent('stopped');
    await dc.continueRequest({ threadId: 1 });
    return (await stopped).body;
  }

  it('initialize claims conditional and hit-count breakpoints and logpoints', async function () {
    const init = await dc.initializeRequest({ adapterID: 'vmdbg' });
    assert.strictEqual(init.body.supportsConditionalBreakpoints, true);
    assert.strictEqual(init.body.supportsHitConditionalBreakpoints, true);
    assert.strictEqual(init.body.supportsLogPoints, true);
  });

  it('a conditional breakpoint stops only where its condition holds; evaluate computes', async function () {
    const { reply, stops, exited, stopped } = await launchWith([{ line: h.marker('compute-loop'), condition: 'i == 3' }]);
    assert.strictEqual(reply.body.breakpoints[0].verified, true);
    const event = await stopped;
    assert.strictEqual(event.body.reason, 'breakpoint');
    assert.strictEqual(await evaluate('i'), '3');
    assert.strictEqual(await evaluate('sum'), '60');
    assert.strictEqual(await evaluate('i * 2 + 1 == 7 && !(sum < 60)'), '1');
    assert.strictEqual(await evaluate('arr[i] - arr[i - 1] * 2'), '-20');
    await dc.continueRequest({ threadId: 1 });
    await exited;
    assert.strictEqual(stops.length, 1, JSON.stringify(stops));
  });

  it('hit counts: `>= 3` stops from the third hit on, `% 2` every second (recursive factorial)', async function () {
    const line = h.marker('fact-recurse');
    const first = await launchWith([{ line, hitCondition: '>= 3' }]);
    await first.stopped;
    assert.strictEqual(await evaluate('n'), '3', 'hits 1 and 2 (n = 5, 4) went on');
    await continueToStop();
    assert.strictEqual(await evaluate('n'), '2');
    await dc.continueRequest({ threadId: 1 });
    await first.exited;
    assert.strictEqual(first.stops.length, 2);
    await dc.stop();
    dc = await h.startClient();
    const every = await launchWith([{ line, hitCondition: '% 2' }]);
    await every.stopped;
    assert.strictEqual(await evaluate('n'), '4');
    await continueToStop();
    assert.strictEqual(await evaluate('n'), '2');
    await dc.continueRequest({ threadId: 1 });
    await every.exited;
    assert.strictEqual(every.stops.length, 2);
  });

  it('a logpoint prints its {expressions} and does not stop', async function () {
    const { reply, stops, exited } = await launchWith([{ line: h.marker('compute-loop'), logMessage: 'i={i} sum={sum} {{literal}}' }]);
    assert.strictEqual(reply.body.breakpoints[0].verified, true);
    await exited;
    assert.deepStrictEqual(stops, []);
    const logged = dc.console.split('\n').filter((l) => l.startsWith('i='));
    assert.deepStrictEqual(logged, [0, 1, 2, 3, 4].map((i) => `i=${i} sum=${[0, 10, 30, 60, 100][i]} {literal}`));
  });

  it('a condition that cannot be evaluated stops and says why; a bad hitCondition is refused', async function () {
    const changed = dc.waitForEvent('breakpoint');
    const { reply, stopped } = await launchWith([
      { line: h.marker('compute-loop'), condition: 'nosuch > 1' },
      { line: h.marker('fact-recurse'), hitCondition: 'often' },
      { line: h.marker('leaf'), condition: 'depth ==' },
    ]);
    const [unknown, badHits, badSyntax] = reply.body.breakpoints;
    assert.strictEqual(unknown.verified, true);
    assert.strictEqual(badHits.verified, false);
    assert.match(badHits.message, /hitCondition "often" is not understood.*% N/);
    assert.match(badSyntax.message, /condition "depth ==" does not parse/);
    const event = await stopped;
    assert.strictEqual(event.body.reason, 'breakpoint');
    assert.deepStrictEqual(event.body.hitBreakpointIds, [unknown.id]);
    assert.match(dc.console, new RegExp(`Error in testing condition for breakpoint ${unknown.id}: .*nosuch`));
    const update = (await changed).body;
    assert.strictEqual(update.reason, 'changed');
    assert.strictEqual(update.breakpoint.id, unknown.id);
    assert.match(update.breakpoint.message, /condition "nosuch > 1" failed: .*nosuch/);
  });

  it('calls-O2: CFI unwinding through optimized frames, and inlined frames', async function () {
    await stopAt('calls-O2.elf', h.marker('leaf'));
    let frames = (await dc.stackTraceRequest({ threadId: 1 })).body.stackFrames;
    assert.deepStrictEqual(frames.slice(0, 4).map((f) => f.name), ['leaf', 'accumulate', 'compute', 'kmain']);
    assert.strictEqual(frames[1].line, h.marker('call-leaf'));
    const locals = Object.fromEntries((await h.scopeVariables(dc, 1, 'Locals')).variables.map((v) => [v.name, v.value]));
    assert.strictEqual(locals.depth, '3');
    assert.strictEqual(locals.arr, '[10, 20, 30, 40, 50]');
    // lib.c is -O2: serial_puts() inlines serial_putc(), which inlines inb().
    await dc.setBreakpointsRequest({ source: { path: h.callsC }, breakpoints: [] });
    const bp = await dc.setFunctionBreakpointsRequest({ breakpoints: [{ name: 'serial_puts' }] });
    assert.strictEqual(bp.body.breakpoints[0].verified, true);
    ({ frames } = await h.stepAndWait(dc, 'continue', { threadId: 1 }));
    const libC = path.join(h.sourceDir, 'lib.c');
    const shownOf = (list) => list.map((f) => `${f.name}:${path.basename(f.source.path)}:${f.line}`);
    // As gdb at a function breakpoint: the calls inlined at the stop's pc
    // (serial_putc and its inb begin there) are not entered yet; the stop
    // is at their call site.
    assert.deepStrictEqual(shownOf(frames).slice(0, 1), [`serial_puts:lib.c:${h.lineOf(libC, /serial_putc\(\*s\+\+\);/)}`], shownOf(frames).join(' < '));
    assert.strictEqual(frames[1].name, 'kmain');
    // A step enters them as gdb's `step` does, one call down without
    // running: serial_putc's frame, inlined into serial_puts.
    ({ frames } = await h.stepAndWait(dc, 'stepIn', { threadId: 1 }));
    assert.deepStrictEqual(shownOf(frames).slice(0, 2), [
      `serial_putc [inlined]:lib.c:${h.lineOf(libC, /while \(!\(inb\(COM1 \+ 5\)/)}`,
      `serial_puts:lib.c:${h.lineOf(libC, /serial_putc\(\*s\+\+\);/)}`,
    ], shownOf(frames).join(' < '));
    assert.strictEqual(frames[2].name, 'kmain');
    // The next goes down into inb, still without running (gdb's `step`).
    ({ frames } = await h.stepAndWait(dc, 'stepIn', { threadId: 1 }));
    // inb's line is the one binutils' addr2line gives for the stop's pc
    // (its inlined chain read from the ELF by a DWARF reader that is not
    // vmdbg's), and it lies in inb's body in lib.h.
    const chain = addr2lineChain(h.kernel('calls-O2.elf'), frames[0].instructionPointerReference);
    assert.deepStrictEqual(chain.slice(0, 3), [
      `inb:lib.h:${chain[0].split(':')[2]}`,
      `serial_putc:lib.c:${h.lineOf(libC, /while \(!\(inb\(COM1 \+ 5\)/)}`,
      `serial_puts:lib.c:${h.lineOf(libC, /serial_putc\(\*s\+\+\);/)}`,
    ], `addr2line -f -i at ${frames[0].instructionPointerReference}: ${chain.join(' < ')}`);
    const libH = path.join(h.sourceDir, 'lib.h');
    const inbLine = Number(chain[0].split(':')[2]);
    const inbStart = h.lineOf(libH, /^static inline uint8_t inb\(/);
    const inbEnd = inbStart + fs.readFileSync(libH, 'utf8').split('\n').slice(inbStart).findIndex((l) => l === '}') + 1;
    assert.ok(inbLine > inbStart && inbLine < inbEnd, `addr2line's inb line ${inbLine} is in inb's body (lib.h:${inbStart}-${inbEnd})`);
    assert.deepStrictEqual(shownOf(frames).slice(0, 3), [
      `inb [inlined]:lib.h:${inbLine}`,
      `serial_putc [inlined]:lib.c:${h.lineOf(libC, /while \(!\(inb\(COM1 \+ 5\)/)}`,
      `serial_puts:lib.c:${h.lineOf(libC, /serial_putc\(\*s\+\+\);/)}`,
    ], shownOf(frames).join(' < '));
    assert.strictEqual(frames[3].name, 'kmain');
    // The inlined frames share the physical frame's pc.
    assert.strictEqual(frames[0].instructionPointerReference, frames[2].instructionPointerReference);
    // Each inlined frame has its own scopes: serial_putc's parameter c.
    const args = (await h.scopeVariables(dc, frames[1].id, 'Arguments')).variables;
    assert.deepStrictEqual(args.map((a) => a.name), ['c']);
  });
});

/** Launches and waits for `initialized` (registered first: it follows the response at once). */
async function launchAndConfigure(dc, args) {
  const initialized = dc.waitForEvent('initialized');
  await dc.launch(args);
  await initialized;
}

/** In a test: skips (fails under CI) without gdb and QEMU. */
function requireGdbUnderQemu(ctx) {
  for (const tool of ['gdb', 'qemu-system-x86_64']) {
    if (!h.haveCommand(tool)) {
      if (h.strict()) throw new Error(`${tool} is required under CI`);
      console.log(`SKIPPED: gdb comparison: ${tool} is not installed`);
      ctx.skip();
    }
  }
}

/** addr2line's (binutils) inlined-call chain at `pc` in `elf`, innermost
 * first, each as `function:file:line`. */
function addr2lineChain(elf, pc) {
  if (!h.haveCommand('addr2line')) throw new Error('`addr2line` (binutils) is not installed');
  const r = cp.spawnSync('addr2line', ['-f', '-i', '-e', elf, pc], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`addr2line failed: ${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  const chain = [];
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const at = /^(.*):(\d+)(?: \(discriminator \d+\))?$/.exec(lines[i + 1]);
    if (!at) throw new Error(`addr2line printed no line for ${pc}: ${r.stdout}`);
    chain.push(`${lines[i]}:${path.basename(at[1])}:${at[2]}`);
  }
  return chain;
}

/** gdb's `bt` at `location` of `elf` under QEMU (gdbUnderQemu), each frame
 * as `name file:line` (`null:null` for a frame without a line). */
function gdbBacktrace(elf, location) {
  const [bt] = gdbUnderQemu(elf, location, ['bt']);
  const frames = [];
  for (const l of bt.split('\n')) {
    const m = /^#\d+\s+(?:0x[0-9a-f]+ in )?(\S+) \(.*?\)(?: at (\S+):(\d+))?$/.exec(l);
    if (m) frames.push(`${m[1]} ${m[2] ? path.basename(m[2]) : null}:${m[3] || null}`);
  }
  if (!frames.length) throw new Error(`gdb printed no backtrace: ${bt}`);
  return frames;
}

/** Runs gdb on the same ELF under QEMU's gdbstub (TCG: a stub that is
 * not vmdbg's, so a stepping bug shared by vmdbg dap and vmdbg-vmm cannot
 * agree with itself) and returns the line after each command. */
function gdbStepLines(elf, location, commands) {
  return gdbUnderQemu(elf, location, commands).map((s) => {
    const lines = [...s.matchAll(/^(\d+)\t/gm)];
    if (!lines.length) throw new Error(`gdb printed no line for a step: ${JSON.stringify(s)}`);
    return Number(lines[lines.length - 1][1]);
  });
}

/** gdb on `elf` under QEMU's gdbstub, stopped at a hardware breakpoint
 * on `location`: what it printed for each of `commands`. */
function gdbUnderQemu(elf, location, commands) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmdbg-gdb-'));
  const sock = path.join(dir, 'gdb.sock');
  const qemu = cp.spawn('qemu-system-x86_64', [
    '-accel', 'tcg', '-M', 'pc', '-m', '128', '-display', 'none', '-serial', 'null', '-no-reboot',
    '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04', '-S', '-gdb', `unix:${sock},server=on,wait=off`,
    '-kernel', elf,
  ], { stdio: 'ignore' });
  try {
    const deadline = Date.now() + 10000;
    while (!fs.existsSync(sock) && Date.now() < deadline) cp.spawnSync('sleep', ['0.05']);
    const args = ['-batch', '-nx', '-ex', 'set pagination off', '-ex', `target remote ${sock}`, '-ex', `hbreak ${location}`, '-ex', 'continue'];
    for (const c of commands) args.push('-ex', 'echo @@\\n', '-ex', c);
    args.push('-ex', 'echo @@\\n', '-ex', 'kill', elf);
    const out = cp.spawnSync('gdb', args, { encoding: 'utf8', timeout: 60000 }).stdout;
    const segments = out.split('@@\n').slice(1, commands.length + 1);
    if (segments.length !== commands.length) throw new Error(`gdb under QEMU stopped early:\n${out}`);
    return segments;
  } finally {
    qemu.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// Range stepping: vmdbg-vmm's stub range-steps (`vCont;r`), and `vmdbg
// dap` steps a source line with one range step instead of one `vCont;s`
// per instruction. The packets are counted in the RSP client's packet log
// (VMDBG_RSP_LOG); VMDBG_RANGE_STEP=0 turns range stepping off in the
// client, which is how the same `next` is shown to cost 20+ single steps.
describe('range stepping on vmdbg-vmm (host tier)', function () {
  this.timeout(60000);
  const linesC = path.join(h.sourceDir, 'lines.c');
  let dc;
  let dir;
  let log;

  before(function () {
    h.requireTier(this, h.hostTierMissing());
    if (!fs.existsSync(h.kernel('lines-O0.elf'))) {
      h.requireTier(this, `test kernel lines-O0.elf is not built in ${h.kernels}`);
    }
  });

  beforeEach(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmdbg-range-'));
    log = path.join(dir, 'rsp.log');
  });

  afterEach(async function () {
    if (dc) await dc.stop();
    dc = null;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Stopped at `marker` of lines.c with every breakpoint cleared again. */
  async function stopAt(marker, env = {}) {
    dc = await h.startClient({ VMDBG_RSP_LOG: log, ...env });
    await dc.hitBreakpoint({ kernel: h.kernel('lines-O0.elf') }, { path: linesC, line: h.marker(marker, linesC) });
    await dc.setBreakpointsRequest({ source: { path: linesC }, breakpoints: [] });
  }

  const sent = () => fs.readFileSync(log, 'utf8').split('\n').filter((l) => l);
  /** The resumes among packets: vCont actions other than the `vCont?` query, and plain s/c. */
  const resumes = (packets) => packets.filter((p) => (p.startsWith('vCont') && p !== 'vCont?') || p === 's' || p === 'c');

  async function next() {
    const before = sent().length;
    const { frames } = await h.stepAndWait(dc, 'next', { threadId: 1 });
    return { frame: frames[0], packets: sent().slice(before) };
  }

  it('next over a line of 20+ instructions is one vCont;r round trip', async function () {
    await stopAt('long-line');
    const { frame, packets } = await next();
    assert.strictEqual(frame.line, h.marker('call-line', linesC));
    // The line gdb says comes next, at the address gdb says it starts.
    const callLine = h.gdbLineAddress(h.kernel('lines-O0.elf'), `lines.c:${h.marker('call-line', linesC)}`);
    assert.strictEqual(BigInt(frame.instructionPointerReference), callLine);
    const longLine = h.gdbLineAddress(h.kernel('lines-O0.elf'), `lines.c:${h.marker('long-line', linesC)}`);
    const r = resumes(packets);
    assert.strictEqual(r.length, 1, packets.join('\n'));
    assert.ok(r[0].startsWith(`vCont;r${longLine.toString(16)},${callLine.toString(16)}:`), r[0]);
  });

  it('with range stepping off, the same next takes a vCont;s per instruction and lands on the same pc', async function () {
    await stopAt('long-line', { VMDBG_RANGE_STEP: '0' });
    const { frame, packets } = await next();
    const callLine = h.gdbLineAddress(h.kernel('lines-O0.elf'), `lines.c:${h.marker('call-line', linesC)}`);
    assert.strictEqual(BigInt(frame.instructionPointerReference), callLine);
    const steps = resumes(packets);
    assert.ok(steps.every((p) => p.startsWith('vCont;s')), steps.join('\n'));
    assert.ok(steps.length >= 20, `the long line took ${steps.length} single steps`);
  });

  it('next over calls, a loop in one line and a return, and step into a call, land where gdb lands under QEMU', async function () {
    requireGdbUnderQemu(this);
    const start = h.marker('before-long', linesC);
    const plan = [['next', 'next'], ['next', 'next'], ['next', 'next'], ['next', 'next'], ['next', 'next']];
    const gdbLines = gdbStepLines(h.kernel('lines-O0.elf'), `lines.c:${start}`, plan.map((p) => p[1]));
    await stopAt('before-long');
    const ours = [];
    const all = [];
    for (const [request] of plan) {
      const before = sent().length;
      const { frames } = await h.stepAndWait(dc, request, { threadId: 1 });
      ours.push(frames[0].line);
      all.push(...sent().slice(before));
    }
    assert.deepStrictEqual(ours, gdbLines);
    // The calls of the call line were stepped over after the range step
    // stopped in the callee: a temporary breakpoint at the return, a continue.
    const r = resumes(all);
    assert.ok(r.filter((p) => p.startsWith('vCont;r')).length >= plan.length, r.join('\n'));
    assert.ok(r.includes('vCont;c'), r.join('\n'));

    // stepIn on the call line enters twice after its prologue, as gdb's step does.
    await dc.stop();
    const [gdbStep] = gdbStepLines(h.kernel('lines-O0.elf'), `lines.c:${h.marker('call-line', linesC)}`, ['step']);
    await stopAt('call-line');
    const { frames } = await h.stepAndWait(dc, 'stepIn', { threadId: 1 });
    assert.strictEqual(frames[0].name, 'twice');
    assert.strictEqual(frames[0].line, gdbStep);
  });

  it('next over a line that loops for ever ends with a step stop that says so; once the loop ends, next leaves the line', async function () {
    await stopAt('spin-line');
    // A scope's reference ends at each stop: looked up afresh.
    const set = async (value) => {
      const globals = await h.scopeVariables(dc, 1, 'Globals');
      await dc.setVariableRequest({ variablesReference: globals.scope.variablesReference, name: 'spin_for', value });
    };
    await set('1000000000000');
    const spinLine = h.marker('spin-line', linesC);
    let { event, frames } = await h.stepAndWait(dc, 'next', { threadId: 1 });
    assert.strictEqual(event.body.reason, 'step');
    assert.match(event.body.description || '', /without reaching another line/);
    assert.strictEqual(frames[0].line, spinLine);
    assert.ok(resumes(sent()).some((p) => p.startsWith('vCont;r')), 'the loop was range-stepped');
    await set('0');
    ({ frames } = await h.stepAndWait(dc, 'next', { threadId: 1 }));
    assert.strictEqual(frames[0].line, h.marker('after', linesC));
  });
});

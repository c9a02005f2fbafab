// Session behaviour beyond one kernel run: a malformed DAP message does not
// end the session; pause a running guest and release it by setting a
// variable; attach to QEMU's gdbstub (a different engine, same ELF).
'use strict';
const assert = require('assert');
const cp = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const h = require('./helpers');

describe('DAP session robustness and control', function () {
  this.timeout(60000);
  let dc;

  before(function () {
    h.requireTier(this, h.hostTierMissing());
  });

  afterEach(async function () {
    if (dc) await dc.stop();
    dc = null;
  });

  it('a malformed message gets an error or is dropped, and the session goes on', async function () {
    dc = await h.startClient();
    const raw = dc.outputStream;
    raw.write('Content-Length: 7\r\n\r\nnot{}!!');                  // not JSON
    raw.write('garbage header line\r\n\r\n');                        // no Content-Length
    const body = JSON.stringify({ seq: 7, type: 'request' });        // no command
    raw.write(`Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    await assert.rejects(dc.send('noSuchRequest', {}), /unsupported request/);
    await assert.rejects(dc.send('launch', { kernel: 42 }), /invalid launch configuration/);
    await assert.rejects(dc.send('launch', { kernel: '/nonexistent.elf' }), /does not exist/);
    await assert.rejects(dc.send('stackTrace', { threadId: 1 }), /launch or attach first/);
    // Still alive: a full session works.
    await dc.hitBreakpoint({ kernel: h.kernel('calls-O0.elf') }, { path: h.callsC, line: h.marker('leaf') });
    await assert.rejects(dc.send('variables', { variablesReference: 9999 }), /not valid/);
    await assert.rejects(dc.send('evaluate', { expression: 'arr[', frameId: 1 }), /end of expression/);
  });

  it('pause stops a running guest; setVariable releases it; exited has its code', async function () {
    const spinC = path.join(h.sourceDir, 'spin.c');
    if (!fs.existsSync(h.kernel('spin.elf'))) throw new Error('spin.elf was not built');
    dc = await h.startClient();
    // Pause once the guest says it spins (an event, not a head start a
    // loaded host may not give it).
    const spinning = new Promise((resolve) => {
      let seen = '';
      dc.on('output', (e) => {
        seen += e.body.output;
        if (seen.includes('spin: waiting to be released')) resolve();
      });
    });
    const initialized = dc.waitForEvent('initialized');
    await dc.launch({ kernel: h.kernel('spin.elf') });
    await initialized;
    const continued = dc.waitForEvent('continued');
    await dc.configurationDoneRequest();
    await continued;
    await spinning;
    const stopped = dc.waitForEvent('stopped');
    await dc.pauseRequest({ threadId: 1 });
    assert.strictEqual((await stopped).body.reason, 'pause');
    let frames = (await dc.stackTraceRequest({ threadId: 1 })).body.stackFrames;
    // Just after its message the guest may still be on its way out of
    // serial_puts, or not yet through the loop once: step (out of
    // serial_puts, then by line) until it is in kmain's loop having spun,
    // rather than pause again and hope the guest ran meanwhile.
    const loop = h.marker('spin-loop', spinC);
    const spinsNow = async () => Number((await dc.evaluateRequest({ expression: 'spins', frameId: 1 })).body.result);
    for (let step = 0; step < 10; step++) {
      if (frames[0].name === 'kmain' && [loop - 1, loop].includes(frames[0].line) && (await spinsNow()) > 0) break;
      ({ frames } = await h.stepAndWait(dc, frames[0].name === 'kmain' ? 'next' : 'stepOut', { threadId: 1 }));
    }
    assert.strictEqual(frames[0].name, 'kmain', `paused in ${frames.map((f) => f.name).join(' <- ')}`);
    assert.ok([loop - 1, loop].includes(frames[0].line), `paused at line ${frames[0].line}`);
    assert.ok((await spinsNow()) > 0, 'the guest ran before the pause');
    const globals = await h.scopeVariables(dc, 1, 'Globals');
    await dc.setVariableRequest({ variablesReference: globals.scope.variablesReference, name: 'released', value: '1' });
    const exited = dc.waitForEvent('exited');
    await dc.continueRequest({ threadId: 1 });
    assert.strictEqual((await exited).body.exitCode, 0x15);
  });

  it('the console terminal types into the guest (vmdbg/consoleInput) and sees its answer', async function () {
    dc = await h.startClient();
    let console = '';
    const waitForConsole = (text) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "${text}" on the console; it shows: ${JSON.stringify(console)}`)), 20000);
      const check = () => {
        if (console.includes(text)) {
          clearTimeout(timer);
          dc.removeListener('output', onOutput);
          resolve();
        }
      };
      const onOutput = (e) => {
        if (e.body.category === 'console') console += e.body.output;
        check();
      };
      dc.on('output', onOutput);
      check();
    });
    const initialized = dc.waitForEvent('initialized');
    await dc.launch({ kernel: h.kernel('echo.elf') });
    await initialized;
    await dc.configurationDoneRequest();
    await waitForConsole('echo: type a line');
    const exited = dc.waitForEvent('exited');
    await dc.customRequest('vmdbg/consoleInput', { text: 'hello vmdbg\n' });
    await waitForConsole('echo: got "hello vmdbg"');
    assert.strictEqual((await exited).body.exitCode, 'hello vmdbg'.length);
    await assert.rejects(dc.customRequest('vmdbg/consoleInput', {}), /needs a string `text`/);
  });

  it('a kernel that takes an unhandled exception stops with reason exception at the faulting line', async function () {
    const faultC = path.join(h.sourceDir, 'fault.c');
    dc = await h.startClient();
    const initialized = dc.waitForEvent('initialized');
    await dc.launch({ kernel: h.kernel('fault.elf') });
    await initialized;
    const stopped = dc.waitForEvent('stopped');
    await dc.configurationDoneRequest();
    const event = await stopped;
    assert.strictEqual(event.body.reason, 'exception');
    const info = await dc.send('exceptionInfo', { threadId: event.body.threadId });
    assert.match(info.body.description, /triple fault/);
    const frames = (await dc.stackTraceRequest({ threadId: event.body.threadId })).body.stackFrames;
    assert.strictEqual(frames[0].name, 'kmain');
    assert.strictEqual(frames[0].line, h.marker('ud2', faultC));
    const scopes = (await dc.scopesRequest({ frameId: 1 })).body.scopes;
    const regs = (await dc.variablesRequest({ variablesReference: scopes[0].variablesReference })).body.variables;
    // rip is on the ud2, where gdb's reading of the line table puts that line.
    const rip = regs.find((r) => r.name === 'rip');
    assert.strictEqual(BigInt(rip.value), h.gdbLineAddress(h.kernel('fault.elf'), `fault.c:${h.marker('ud2', faultC)}`));
    const exited = dc.waitForEvent('exited');
    const terminated = dc.waitForEvent('terminated');
    await dc.continueRequest({ threadId: event.body.threadId });
    // vmdbg-vmm's status for a triple fault (`vmdbg-vmm --help`), not the
    // guest's: the guest wrote nothing to port 0xf4.
    assert.strictEqual((await exited).body.exitCode, 6);
    await terminated;
  });

  describe('attach to QEMU gdbstub', function () {
    let qemu;
    let dir;

    before(function () {
      h.requireTier(this, h.hostTierMissing(['qemu-system-x86_64']));
    });

    afterEach(function () {
      if (qemu && qemu.exitCode === null) qemu.kill('SIGKILL');
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it('hits a breakpoint with the same symbols, and detaching leaves QEMU running to its exit', async function () {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmdbg-qemu-'));
      const sock = path.join(dir, 'gdb.sock');
      const elf = h.kernel('calls-O0.elf');
      qemu = cp.spawn('qemu-system-x86_64', [
        '-accel', 'tcg', '-M', 'pc', '-m', '128', '-display', 'none', '-serial', 'null',
        '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04', '-S', '-gdb', `unix:${sock},server=on,wait=off`,
        '-kernel', elf,
      ], { stdio: 'ignore' });
      const qemuExit = new Promise((resolve) => qemu.on('exit', (code) => resolve(code)));
      const deadline = Date.now() + 10000;
      while (!fs.existsSync(sock) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.ok(fs.existsSync(sock), 'QEMU did not open its gdb socket');

      dc = await h.startClient();
      await dc.initializeRequest();
      const initialized = dc.waitForEvent('initialized');
      await dc.attachRequest({ gdbServer: `unix:${sock}`, symbols: elf, stopOnEntry: false });
      await initialized;
      const bp = await dc.setBreakpointsRequest({ source: { path: h.callsC }, breakpoints: [{ line: h.marker('leaf') }] });
      assert.strictEqual(bp.body.breakpoints[0].verified, true);
      const stopped = dc.waitForEvent('stopped');
      await dc.configurationDoneRequest();
      const event = await stopped;
      assert.strictEqual(event.body.reason, 'breakpoint');
      const frames = (await dc.stackTraceRequest({ threadId: event.body.threadId })).body.stackFrames;
      assert.deepStrictEqual(frames.slice(0, 4).map((f) => [f.name, f.line]), [
        ['leaf', h.marker('leaf')], ['accumulate', h.marker('call-leaf')],
        ['compute', h.marker('call-accumulate')], ['kmain', h.marker('call-compute')],
      ]);
      assert.strictEqual((await dc.evaluateRequest({ expression: 'p.y', frameId: 1 })).body.result, '9');
      // Line stepping works against QEMU's stub too.
      const { frames: after } = await h.stepAndWait(dc, 'next', { threadId: event.body.threadId });
      assert.strictEqual(after[0].line, h.marker('leaf') + 1);
      await dc.disconnectRequest({});
      dc.stopAdapter();
      dc = null;
      // Detached: the guest runs on to its own exit, (111 << 1) | 1.
      const code = await Promise.race([qemuExit, new Promise((r) => setTimeout(() => r('timeout'), 30000))]);
      assert.strictEqual(code, (111 << 1) | 1);
    });

    // QEMU stops a running guest when a debugger connects and says so with a
    // stop reply that can arrive before the reply to `qSupported`; the
    // session must take each reply for its own request all the same.
    it('attaches to a QEMU whose guest is already running, stops it where it runs, and lets it go', async function () {
      const spinC = path.join(h.sourceDir, 'spin.c');
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmdbg-qemu-'));
      const sock = path.join(dir, 'gdb.sock');
      const serial = path.join(dir, 'serial.log');
      qemu = cp.spawn('qemu-system-x86_64', [
        '-accel', 'tcg', '-M', 'pc', '-m', '128', '-display', 'none', '-serial', `file:${serial}`,
        '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04', '-gdb', `unix:${sock},server=on,wait=off`,
        '-kernel', h.kernel('spin.elf'),
      ], { stdio: 'ignore' });
      const qemuExit = new Promise((resolve) => qemu.on('exit', (code) => resolve(code)));
      const deadline = Date.now() + 20000;
      const running = () => fs.existsSync(serial) && fs.readFileSync(serial, 'utf8').includes('spin: waiting');
      while (!running() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.ok(running(), 'the guest did not start spinning under QEMU');

      dc = await h.startClient();
      await dc.initializeRequest();
      const initialized = dc.waitForEvent('initialized');
      await dc.attachRequest({ gdbServer: `unix:${sock}`, symbols: h.kernel('spin.elf') });
      await initialized;
      const stopped = dc.waitForEvent('stopped');
      await dc.configurationDoneRequest();
      const event = await stopped;
      const frames = (await dc.stackTraceRequest({ threadId: event.body.threadId })).body.stackFrames;
      assert.strictEqual(frames[0].name, 'kmain');
      const loop = h.marker('spin-loop', spinC);
      assert.ok([loop - 1, loop].includes(frames[0].line), `stopped at line ${frames[0].line}`);
      const spins = Number((await dc.evaluateRequest({ expression: 'spins', frameId: frames[0].id })).body.result);
      assert.ok(spins > 0, 'the guest ran before the attach');
      const globals = await h.scopeVariables(dc, frames[0].id, 'Globals');
      await dc.setVariableRequest({ variablesReference: globals.scope.variablesReference, name: 'released', value: '1' });
      await dc.disconnectRequest({});
      dc.stopAdapter();
      dc = null;
      const code = await Promise.race([qemuExit, new Promise((r) => setTimeout(() => r('timeout'), 30000))]);
      assert.strictEqual(code, (0x15 << 1) | 1);
    });
  });
});

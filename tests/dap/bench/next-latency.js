// Benchmark (not a test): round-trip latency of a source-line `next`.
//   vmdbg dap -> vmdbg-vmm (KVM)        DAP `next` request to `stopped` event
//   gdb       -> QEMU gdbstub (TCG)     `next` timed with gdb's python
//   gdb       -> vmdbg-vmm              the same, for reference
// The same ELF (calls-O0.elf), the same breakpoint and the same sequence of
// `next`s through kmain (plain lines and lines that call functions).
// Run: node bench/next-latency.js [sessions]   (after .ci/test.d/dap.sh built things)
'use strict';
const cp = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const h = require('../test/helpers');

const SESSIONS = Number(process.argv[2] || 5);
const NEXTS = 12; // kmain's lines from MARK:call-compute to MARK:kmain-return
const elf = h.kernel('calls-O0.elf');
const startLine = h.marker('call-compute');

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function dapSamples() {
  const samples = [];
  const lines = [];
  for (let s = 0; s < SESSIONS; s++) {
    const dc = await h.startClient();
    await dc.hitBreakpoint({ kernel: elf }, { path: h.callsC, line: startLine });
    await dc.setBreakpointsRequest({ source: { path: h.callsC }, breakpoints: [] });
    for (let i = 0; i < NEXTS; i++) {
      const stopped = dc.waitForEvent('stopped');
      const t0 = process.hrtime.bigint();
      await dc.nextRequest({ threadId: 1 });
      await stopped;
      samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (s === 0) lines.push((await dc.stackTraceRequest({ threadId: 1 })).body.stackFrames[0].line);
    }
    await dc.stop();
  }
  return { samples, lines };
}

const GDB_SCRIPT = `
import gdb, time, json
gdb.execute("set pagination off")
gdb.execute("target remote %SOCK%")
gdb.execute("hbreak calls.c:%LINE%")
gdb.execute("continue", to_string=True)
gdb.execute("delete", to_string=True)
samples = []
lines = []
for i in range(%NEXTS%):
    t0 = time.perf_counter()
    gdb.execute("next", to_string=True)
    samples.append((time.perf_counter() - t0) * 1000.0)
    lines.append(gdb.selected_frame().find_sal().line)
print("RESULT " + json.dumps({"samples": samples, "lines": lines}))
gdb.execute("kill", to_string=True)
`;

function gdbSession(engine) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmdbg-bench-'));
  const sock = path.join(dir, 'gdb.sock');
  const child = engine === 'qemu'
    ? cp.spawn('qemu-system-x86_64', ['-accel', 'tcg', '-M', 'pc', '-m', '128', '-display', 'none', '-serial', 'null',
      '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04', '-S', '-gdb', `unix:${sock},server=on,wait=off`, '-kernel', elf], { stdio: 'ignore' })
    : cp.spawn(h.vmm, ['--kernel', elf, '--gdb', `unix:${sock}`, '--wait-gdb', '--serial', 'none'], { stdio: 'ignore' });
  try {
    const deadline = Date.now() + 10000;
    while (!fs.existsSync(sock) && Date.now() < deadline) cp.spawnSync('sleep', ['0.05']);
    const script = path.join(dir, 'bench.py');
    fs.writeFileSync(script, GDB_SCRIPT.replace('%SOCK%', sock).replace('%LINE%', startLine).replace('%NEXTS%', NEXTS));
    const out = cp.spawnSync('gdb', ['-batch', '-nx', '-x', script, elf], { encoding: 'utf8', timeout: 120000 });
    const line = out.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    if (!line) throw new Error(`gdb did not finish:\n${out.stdout}\n${out.stderr}`);
    return JSON.parse(line.slice(7));
  } finally {
    child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function gdbSamples(engine) {
  const samples = [];
  let lines = [];
  for (let s = 0; s < SESSIONS; s++) {
    const r = gdbSession(engine);
    samples.push(...r.samples);
    if (s === 0) lines = r.lines;
  }
  return { samples, lines };
}

(async () => {
  const missing = h.hostTierMissing(['gdb', 'qemu-system-x86_64']);
  if (missing) {
    console.log(`bench cannot run here: ${missing}`);
    process.exit(1);
  }
  const rows = [
    ['vmdbg dap -> vmdbg-vmm (KVM)', await dapSamples()],
    ['gdb -> QEMU gdbstub (TCG)', gdbSamples('qemu')],
    ['gdb -> vmdbg-vmm (KVM)', gdbSamples('vmm')],
  ];
  console.log(`next round trip on calls-O0.elf, ${SESSIONS} sessions x ${NEXTS} nexts from calls.c:${startLine}`);
  console.log('engine                           p50 ms   p95 ms   lines');
  for (const [name, r] of rows) {
    console.log(`${name.padEnd(32)} ${percentile(r.samples, 50).toFixed(2).padStart(7)}  ${percentile(r.samples, 95).toFixed(2).padStart(7)}   ${r.lines.join(',')}`);
  }
  const [dap, qemu, gvmm] = rows.map((r) => r[1].samples);
  console.log(`ratio gdb/QEMU to vmdbg dap: p50 ${(percentile(qemu, 50) / percentile(dap, 50)).toFixed(2)}x, p95 ${(percentile(qemu, 95) / percentile(dap, 95)).toFixed(2)}x`);
  console.log(`ratio gdb/vmdbg-vmm to vmdbg dap: p50 ${(percentile(gvmm, 50) / percentile(dap, 50)).toFixed(2)}x, p95 ${(percentile(gvmm, 95) / percentile(dap, 95)).toFixed(2)}x`);
  const same = JSON.stringify(rows[0][1].lines) === JSON.stringify(rows[1][1].lines);
  console.log(`same lines as gdb: ${same ? 'yes' : 'NO'}`);
})().catch((e) => { console.error(e); process.exit(1); });

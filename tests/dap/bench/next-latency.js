// Benchmark (not a test): round-trip latency of a source-line `next`.
//   vmdbg dap -> vmdbg-vmm (KVM)        DAP `next` request to `stopped` event,
//                                       range stepping (`vCont;r`, one round
//                                       trip per line)
//   the same, single steps              VMDBG_RANGE_STEP=0: a `vCont;s` per
//                                       instruction, as before range stepping
//   gdb       -> QEMU gdbstub (TCG)     `next` timed with gdb's python (QEMU's
//                                       stub has no vCont;r: gdb single-steps)
//   gdb       -> vmdbg-vmm              the same; gdb range-steps here
// For each subject the same ELF, the same breakpoint and the same sequence
// of `next`s: calls-O0.elf through kmain (short lines and lines that call
// functions), and lines-O0.elf from the line before its 32-instruction line
// (a long line, calls, a loop in one line). Medians and p95 with ratios to
// the DAP range-stepping row of the same run; no timing is asserted.
// Run: node bench/next-latency.js [sessions]   (after .ci/test.d/dap.sh built things)
'use strict';
const cp = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const h = require('../test/helpers');

const SESSIONS = Number(process.argv[2] || 5);
const linesC = path.join(h.sourceDir, 'lines.c');
const SUBJECTS = [
  // kmain's lines from MARK:call-compute to MARK:kmain-return
  { elf: h.kernel('calls-O0.elf'), source: h.callsC, startLine: h.marker('call-compute'), nexts: 12 },
  // before-long, long-line, call-line, loop-line, spin-line (3 turns)
  { elf: h.kernel('lines-O0.elf'), source: linesC, startLine: h.marker('before-long', linesC), nexts: 5 },
];

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function dapSamples({ elf, source, startLine, nexts }, env = {}) {
  const samples = [];
  const lines = [];
  for (let s = 0; s < SESSIONS; s++) {
    const dc = await h.startClient(env);
    await dc.hitBreakpoint({ kernel: elf }, { path: source, line: startLine });
    await dc.setBreakpointsRequest({ source: { path: source }, breakpoints: [] });
    for (let i = 0; i < nexts; i++) {
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
gdb.execute("hbreak %FILE%:%LINE%")
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

function gdbSession(engine, { elf, source, startLine, nexts }) {
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
    fs.writeFileSync(script, GDB_SCRIPT.replace('%SOCK%', sock).replace('%FILE%', path.basename(source))
      .replace('%LINE%', startLine).replace('%NEXTS%', nexts));
    const out = cp.spawnSync('gdb', ['-batch', '-nx', '-x', script, elf], { encoding: 'utf8', timeout: 120000 });
    const line = out.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    if (!line) throw new Error(`gdb did not finish:\n${out.stdout}\n${out.stderr}`);
    return JSON.parse(line.slice(7));
  } finally {
    child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function gdbSamples(engine, subject) {
  const samples = [];
  let lines = [];
  for (let s = 0; s < SESSIONS; s++) {
    const r = gdbSession(engine, subject);
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
  for (const subject of SUBJECTS) {
    const rows = [
      ['vmdbg dap -> vmdbg-vmm, range steps', await dapSamples(subject)],
      ['vmdbg dap -> vmdbg-vmm, single steps', await dapSamples(subject, { VMDBG_RANGE_STEP: '0' })],
      ['gdb -> vmdbg-vmm (KVM)', gdbSamples('vmm', subject)],
      ['gdb -> QEMU gdbstub (TCG)', gdbSamples('qemu', subject)],
    ];
    const anchor = rows[0][1].samples;
    console.log(`\nnext round trip on ${path.basename(subject.elf)}, ${SESSIONS} sessions x ${subject.nexts} nexts from ${path.basename(subject.source)}:${subject.startLine}`);
    console.log('engine                                   p50 ms   p95 ms   p50/anchor  p95/anchor   lines');
    for (const [name, r] of rows) {
      const p50 = percentile(r.samples, 50);
      const p95 = percentile(r.samples, 95);
      console.log(`${name.padEnd(40)} ${p50.toFixed(2).padStart(7)}  ${p95.toFixed(2).padStart(7)}   ${(p50 / percentile(anchor, 50)).toFixed(2).padStart(8)}x  ${(p95 / percentile(anchor, 95)).toFixed(2).padStart(8)}x   ${r.lines.join(',')}`);
    }
    // p50 of each `next` by the line it stepped over (every session steps
    // the same lines in the same order).
    for (const [name, r] of rows) {
      const from = [subject.startLine, ...r.lines.slice(0, -1)];
      const byLine = from.map((line, i) => `${line}:${percentile(r.samples.filter((_, j) => j % subject.nexts === i), 50).toFixed(2)}`);
      console.log(`  p50 ms by line stepped over, ${name}: ${byLine.join(' ')}`);
    }
    const same = rows.every((r) => JSON.stringify(r[1].lines) === JSON.stringify(rows[3][1].lines));
    console.log(`(anchor: the first row)  same lines as gdb on QEMU in every row: ${same ? 'yes' : 'NO'}`);
  }
})().catch((e) => { console.error(e); process.exit(1); });

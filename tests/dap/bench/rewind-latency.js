// Benchmark (not a test): reverse execution in recorded kernel sessions on
// both engines, rewind.elf (a short run that corrupts a pointer and
// triple-faults), in one run:
//   record overhead     run to the triple fault, plain vs recording: QEMU TCG
//                       (-icount …,rr=record) and vmdbg-vmm (--record-to)
//   stepBack            DAP request to `stopped`, by instruction and by line,
//                       from the end of the recording
//   reverseContinue     to the write of a data breakpoint (table.head), from
//                       the end of the recording
// p50 and p99 of RUNS samples each, and the ratio KVM engine / QEMU engine
// (the anchor: QEMU's record/replay, measured in the same run).
// Run: node bench/rewind-latency.js [runs]   (after .ci/test.d/dap.sh built things)
'use strict';
const cp = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const h = require('../test/helpers');

const RUNS = Number(process.argv[2] || 20);
const elf = h.kernel('rewind.elf');

const percentile = (v, p) => {
  const sorted = [...v].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
};
const median = (v) => percentile(v, 50);
const ms = (v) => `${median(v).toFixed(1)} ms`;
const p50p99 = (v) => `p50 ${percentile(v, 50).toFixed(1)} ms, p99 ${percentile(v, 99).toFixed(1)} ms`;

/** vmdbg-vmm on rewind.elf to its triple fault (exit status 6), plain or
 * recording to a file. */
function vmmRun(record) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmdbg-rr-bench-'));
  try {
    const args = ['--kernel', elf, '--mem', '64M', '--serial', 'none'];
    if (record) args.push('--record-to', path.join(dir, 'run.rec'));
    const start = process.hrtime.bigint();
    const r = cp.spawnSync(h.vmm, args, { stdio: 'ignore', timeout: 60000 });
    const took = Number(process.hrtime.bigint() - start) / 1e6;
    if (r.status !== 6) throw new Error(`vmdbg-vmm exited ${r.status}, not 6 (triple fault)`);
    return took;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function qemuRun(record) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmdbg-rr-bench-'));
  try {
    const args = ['-M', 'microvm,acpi=on', '-accel', 'tcg', '-cpu', 'max', '-m', '64M', '-nodefaults', '-no-user-config',
      '-display', 'none', '-no-reboot', '-kernel', elf, '-serial', `file:${path.join(dir, 'console.log')}`];
    if (record) {
      cp.execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', path.join(dir, 'rr.qcow2'), '1M']);
      args.push('-icount', `shift=auto,sleep=off,rr=record,rrfile=${path.join(dir, 'replay.bin')},rrsnapshot=init`,
        '-drive', `file=${path.join(dir, 'rr.qcow2')},if=none,id=rr`);
    }
    const start = process.hrtime.bigint();
    const r = cp.spawnSync('qemu-system-x86_64', args, { stdio: 'ignore', timeout: 60000 });
    const took = Number(process.hrtime.bigint() - start) / 1e6;
    if (r.status !== 0) throw new Error(`qemu exited ${r.status}`);
    return took;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function timed(dc, request, args) {
  const stopped = dc.waitForEvent('stopped');
  const start = process.hrtime.bigint();
  await dc.send(request, args);
  const event = await stopped;
  return { took: Number(process.hrtime.bigint() - start) / 1e6, event };
}

/** One recorded DAP session on `engine`: the latencies of each reverse request. */
async function reverseLatencies(engine) {
  const dc = await h.startClient();
  dc.defaultTimeout = 120000;
  const launchStart = process.hrtime.bigint();
  const initialized = dc.waitForEvent('initialized');
  await dc.launch({ kernel: elf, engine, record: true, mem: '64M' });
  await initialized;
  const launch = Number(process.hrtime.bigint() - launchStart) / 1e6;
  const end = dc.waitForEvent('stopped');
  await dc.configurationDoneRequest();
  await end;
  // Forwards to the end again (through the data breakpoint's write).
  const toEnd = async () => {
    for (let i = 0; i < 3; i++) {
      const { event } = await timed(dc, 'continue', { threadId: 1 });
      if (/end of the recording/.test(event.body.description || '')) return;
    }
    throw new Error('continue did not reach the end of the recording');
  };
  const byInstruction = [];
  const byLine = [];
  const reverse = [];
  for (let i = 0; i < RUNS; i++) byInstruction.push((await timed(dc, 'stepBack', { threadId: 1, granularity: 'instruction' })).took);
  // Six lines back from the end stay in sum_list and kmain (further back
  // is the assembly entry and the start of the recording).
  for (let i = 0; i < RUNS; i++) {
    if (i % 6 === 0) await toEnd();
    const { took, event } = await timed(dc, 'stepBack', { threadId: 1 });
    if (event.body.reason !== 'step' || /start of the recording/.test(event.body.description || '')) throw new Error(JSON.stringify(event.body));
    byLine.push(took);
  }
  const info = await dc.send('dataBreakpointInfo', { name: 'table.head', frameId: 1 });
  await dc.send('setDataBreakpoints', { breakpoints: [{ dataId: info.body.dataId, accessType: 'write' }] });
  for (let i = 0; i < RUNS; i++) {
    await toEnd();
    const { took, event } = await timed(dc, 'reverseContinue', { threadId: 1 });
    if (event.body.reason !== 'data breakpoint') throw new Error(JSON.stringify(event.body));
    reverse.push(took);
  }
  await dc.stop();
  return { launch, byInstruction, byLine, reverse };
}

async function main() {
  const plain = { qemu: [], kvm: [] };
  const recorded = { qemu: [], kvm: [] };
  for (let i = 0; i < Math.min(RUNS, 10); i++) {
    plain.qemu.push(qemuRun(false));
    recorded.qemu.push(qemuRun(true));
    plain.kvm.push(vmmRun(false));
    recorded.kvm.push(vmmRun(true));
  }
  const kvm = await reverseLatencies('kvm');
  const qemu = await reverseLatencies('qemu');
  const qemuVersion = cp.execFileSync('qemu-system-x86_64', ['--version']).toString().split('\n')[0];
  console.log(`rewind.elf (3,009 instructions to its triple fault); ${qemuVersion}; ${RUNS} samples per latency, load ${os.loadavg()[0].toFixed(1)}:`);
  for (const [name, engine] of [['QEMU TCG', 'qemu'], ['vmdbg-vmm', 'kvm']]) {
    console.log(`  ${name.padEnd(10)} run to the triple fault: plain ${ms(plain[engine])}, recording ${ms(recorded[engine])} (x${(median(recorded[engine]) / median(plain[engine])).toFixed(2)})`);
  }
  console.log(`  DAP launch, record + start the replay: kvm ${kvm.launch.toFixed(0)} ms, qemu ${qemu.launch.toFixed(0)} ms (one sample each)`);
  const rows = [
    ['stepBack, instruction', 'byInstruction'],
    ['stepBack, line', 'byLine'],
    ['reverseContinue to a data breakpoint', 'reverse'],
  ];
  for (const [label, key] of rows) {
    const ratio = (p) => (percentile(kvm[key], p) / percentile(qemu[key], p)).toFixed(3);
    console.log(`  ${label.padEnd(38)} kvm ${p50p99(kvm[key])} | qemu ${p50p99(qemu[key])} | kvm/qemu p50 x${ratio(50)}, p99 x${ratio(99)}`);
  }
}

main().catch((e) => { console.error(e); process.exit(1); });

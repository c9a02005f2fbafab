// Benchmark (not a test): reverse execution on the QEMU engine's recorded
// kernel sessions, rewind.elf (a short run that corrupts a pointer and
// triple-faults).
//   record overhead     QEMU TCG run to the triple fault, plain vs recording
//                       (-icount …,rr=record), the same command otherwise
//   stepBack            DAP request to `stopped`, by instruction and by line,
//                       from the end of the recording
//   reverseContinue     to the write of a data breakpoint (table.head), from
//                       the end of the recording
// Medians of RUNS samples each.
// Run: node bench/rewind-latency.js [runs]   (after .ci/test.d/dap.sh built things)
'use strict';
const cp = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const h = require('../test/helpers');

const RUNS = Number(process.argv[2] || 5);
const elf = h.kernel('rewind.elf');

const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const ms = (v) => `${median(v).toFixed(0)} ms`;

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

async function main() {
  const plain = [];
  const recorded = [];
  for (let i = 0; i < RUNS; i++) {
    plain.push(qemuRun(false));
    recorded.push(qemuRun(true));
  }
  const dc = await h.startClient();
  dc.defaultTimeout = 120000;
  const launchStart = process.hrtime.bigint();
  const initialized = dc.waitForEvent('initialized');
  await dc.launch({ kernel: elf, engine: 'qemu', record: true, mem: '64M' });
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
  await toEnd();
  for (let i = 0; i < RUNS; i++) byLine.push((await timed(dc, 'stepBack', { threadId: 1 })).took);
  const info = await dc.send('dataBreakpointInfo', { name: 'table.head', frameId: 1 });
  await dc.send('setDataBreakpoints', { breakpoints: [{ dataId: info.body.dataId, accessType: 'write' }] });
  for (let i = 0; i < RUNS; i++) {
    await toEnd();
    const { took, event } = await timed(dc, 'reverseContinue', { threadId: 1 });
    if (event.body.reason !== 'data breakpoint') throw new Error(JSON.stringify(event.body));
    reverse.push(took);
  }
  await dc.stop();
  console.log(`rewind.elf, QEMU ${cp.execFileSync('qemu-system-x86_64', ['--version']).toString().split('\n')[0]}, ${RUNS} runs each, medians:`);
  console.log(`  plain TCG run to the triple fault     ${ms(plain)}`);
  console.log(`  recorded run (rr=record)              ${ms(recorded)}   (x${(median(recorded) / median(plain)).toFixed(2)} the plain run)`);
  console.log(`  DAP launch: record + start the replay ${launch.toFixed(0)} ms (one sample)`);
  console.log(`  stepBack, instruction                 ${ms(byInstruction)}`);
  console.log(`  stepBack, line                        ${ms(byLine)}`);
  console.log(`  reverseContinue to a data breakpoint  ${ms(reverse)}`);
}

main().catch((e) => { console.error(e); process.exit(1); });

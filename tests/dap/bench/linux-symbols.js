// Speed and memory of `vmdbg dap` on Debian's 631 MB vmlinux beside gdb 13
// on the same file, in the same run. vmdbg: attach to a QEMU whose kernel
// runs (booted once, attached and detached RUNS times) → `initialized`
// (reading the DWARF); the first function breakpoint (do_sys_openat2); the
// first line breakpoint (fs/open.c); the adapter's peak RSS, and how much
// of it is the mapped file (reclaimable) against its own heap; then the
// first global by name (init_task.comm: the one-time name index). gdb: the
// same breakpoints from the same file (`gdb -batch`), wall time and peak
// RSS from GNU time. Medians over RUNS (default 3), ratios vmdbg / gdb.
// Needs `vmdbg image symbols` (and a build) done.
'use strict';
const cp = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const h = require('../test/helpers');

const RUNS = Number(process.env.RUNS || 3);

function paths(...args) {
  const env = { ...process.env, XDG_CACHE_HOME: h.testCacheHome };
  const out = {};
  for (const line of cp.execFileSync(h.vmdbg, args, { encoding: 'utf8', env }).split('\n')) {
    const m = /^(\w+):\s+(.*)$/.exec(line);
    if (m) out[m[1]] = m[2];
  }
  return out;
}

/** Peak RSS, and the file-backed and anonymous parts of the current RSS (MB). */
function memory(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key) => Number((new RegExp(`${key}:\\s+(\\d+) kB`).exec(status) || [0, NaN])[1]) / 1024;
  return { peak: kb('VmHWM'), file: kb('RssFile'), anon: kb('RssAnon') };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function gdbRun(vmlinux, command) {
  const t = process.hrtime.bigint();
  const r = cp.spawnSync('/usr/bin/time', ['-f', '%M', 'gdb', '-batch', '-nx', vmlinux, '-ex', command], { encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  const rss = Number(r.stderr.trim().split('\n').pop());
  return { ms, rssMb: rss / 1024, out: r.stdout.trim().split('\n').pop() };
}

async function waitFor(file, text, ms) {
  const deadline = Date.now() + ms;
  const seen = () => fs.existsSync(file) && fs.readFileSync(file, 'utf8').includes(text);
  while (!seen() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (!seen()) throw new Error(`no "${text}" in ${file}`);
}

async function vmdbgRun(sock, vmlinux, sources, openC, line) {
  const dc = await h.startClient();
  dc.defaultTimeout = 300000;
  await dc.initializeRequest();
  const t0 = Date.now();
  const initialized = dc.waitForEvent('initialized', 300000);
  await dc.attachRequest({ gdbServer: `unix:${sock}`, symbols: vmlinux, sourceMap: { 'debian/build/build_amd64_none_amd64': sources } });
  await initialized;
  const init = Date.now() - t0;
  let t = Date.now();
  const fb = await dc.setFunctionBreakpointsRequest({ breakpoints: [{ name: 'do_sys_openat2' }] });
  const fn = Date.now() - t;
  t = Date.now();
  const lb = await dc.setBreakpointsRequest({ source: { path: openC }, breakpoints: [{ line }] });
  const ln = Date.now() - t;
  if (!fb.body.breakpoints[0].verified || !lb.body.breakpoints[0].verified) throw new Error('a breakpoint was not verified');
  const mem = memory(dc._adapterProcess.pid);
  // The first global by name builds the name index (a pass over every unit).
  await dc.setFunctionBreakpointsRequest({ breakpoints: [] });
  await dc.setBreakpointsRequest({ source: { path: openC }, breakpoints: [] });
  const stopped = dc.waitForEvent('stopped', 60000);
  await dc.configurationDoneRequest();
  const ev = await stopped;
  const trace = await dc.stackTraceRequest({ threadId: ev.body.threadId });
  t = Date.now();
  const comm = await dc.evaluateRequest({ expression: 'init_task.comm', frameId: trace.body.stackFrames[0].id, context: 'watch' });
  const global = Date.now() - t;
  if (!/swapper/.test(comm.body.result)) throw new Error(`init_task.comm = ${comm.body.result}`);
  const after = memory(dc._adapterProcess.pid);
  await dc.disconnectRequest({});
  dc.stopAdapter();
  return { init, fn, ln, mem, global, after };
}

(async () => {
  const { vmlinux, sources } = paths('image', 'symbols');
  const image = paths('image', 'build');
  const openC = path.join(sources, 'fs', 'open.c');
  const line = h.lineOf(openC, /struct file \*f = do_filp_open\(dfd, tmp, &op\);/);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmdbg-bench-'));
  const sock = path.join(dir, 'gdb.sock');
  const serial = path.join(dir, 'serial.log');
  // As the kernel suite starts it: without tsc_early_khz, TSC calibration under TCG can stall the boot.
  const mhz = /cpu MHz\s*:\s*([\d.]+)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
  const tsc = mhz ? ` tsc_early_khz=${Math.round(Number(mhz[1]) * 1000)}` : '';
  const qemu = cp.spawn('qemu-system-x86_64', ['-M', 'microvm,acpi=on', '-accel', 'tcg', '-cpu', 'max', '-m', '512M',
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot', '-kernel', image.kernel, '-initrd', image.initramfs,
    '-append', `console=ttyS0 panic=-1 pci=off nokaslr${tsc}`, '-serial', `file:${serial}`,
    '-gdb', `unix:${sock},server=on,wait=off`], { stdio: 'ignore' });
  try {
    await waitFor(serial, 'Freeing unused kernel', 180000);
    const v = [];
    const g = [];
    for (let i = 0; i < RUNS; i++) {
      v.push(await vmdbgRun(sock, vmlinux, sources, openC, line));
      g.push({ fn: gdbRun(vmlinux, 'break do_sys_openat2'), ln: gdbRun(vmlinux, `break fs/open.c:${line}`) });
      console.error(`run ${i + 1}: vmdbg ${JSON.stringify(v[i])}; gdb fn ${g[i].fn.ms.toFixed(0)} ms, line ${g[i].ln.ms.toFixed(0)} ms (${g[i].ln.out})`);
    }
    const m = (xs) => median(xs);
    const vInit = m(v.map((r) => r.init));
    const vFn = m(v.map((r) => r.init + r.fn));
    const vLn = m(v.map((r) => r.init + r.ln));
    const gFn = m(g.map((r) => r.fn.ms));
    const gLn = m(g.map((r) => r.ln.ms));
    const vPeak = m(v.map((r) => r.mem.peak));
    const gPeak = m(g.map((r) => Math.max(r.fn.rssMb, r.ln.rssMb)));
    console.log(`medians of ${RUNS} runs, same vmlinux (${vmlinux}):`);
    console.log(`vmdbg dap: attach -> initialized ${(vInit / 1000).toFixed(2)} s; + function breakpoint ${m(v.map((r) => r.fn))} ms; + line breakpoint ${m(v.map((r) => r.ln))} ms`);
    console.log(`vmdbg dap: peak RSS ${vPeak.toFixed(0)} MB (now: ${m(v.map((r) => r.mem.file)).toFixed(0)} MB of it the mapped file, ${m(v.map((r) => r.mem.anon)).toFixed(0)} MB heap)`);
    console.log(`vmdbg dap: first global by name (init_task.comm, builds the name index) ${(m(v.map((r) => r.global)) / 1000).toFixed(2)} s; RSS after it ${m(v.map((r) => r.after.file + r.after.anon)).toFixed(0)} MB (${m(v.map((r) => r.after.anon)).toFixed(0)} MB heap)`);
    console.log(`gdb 13:    load + function breakpoint ${(gFn / 1000).toFixed(2)} s; load + line breakpoint ${(gLn / 1000).toFixed(2)} s; peak RSS ${gPeak.toFixed(0)} MB`);
    console.log(`ratios vmdbg/gdb: to a function breakpoint ${(vFn / gFn).toFixed(2)}x, to a line breakpoint ${(vLn / gLn).toFixed(2)}x, peak RSS ${(vPeak / gPeak).toFixed(2)}x`);
  } finally {
    qemu.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
})().catch((e) => { console.error(e); process.exit(1); });

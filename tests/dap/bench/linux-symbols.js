// Speed and memory of `vmdbg dap` on Debian's 631 MB vmlinux beside gdb on
// the same file, in the same run: attach to a QEMU started with -S →
// `initialized`; the first function breakpoint (do_sys_openat2); the first
// line breakpoint (fs/open.c); the adapter's peak RSS. gdb: the same two
// breakpoints resolved from the same file (`gdb -batch`), wall time and
// peak RSS from GNU time. Needs `vmdbg image symbols` (and build) done.
'use strict';
const cp = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const h = require('../test/helpers');

function paths(...args) {
  const out = {};
  for (const line of cp.execFileSync(h.vmdbg, args, { encoding: 'utf8' }).split('\n')) {
    const m = /^(\w+):\s+(.*)$/.exec(line);
    if (m) out[m[1]] = m[2];
  }
  return out;
}

function peakKb(pid) {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

function gdbRun(vmlinux, command) {
  const t = process.hrtime.bigint();
  const r = cp.spawnSync('/usr/bin/time', ['-f', '%M', 'gdb', '-batch', '-nx', vmlinux, '-ex', command], { encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  const rss = Number(r.stderr.trim().split('\n').pop());
  return { ms, rssMb: rss / 1024, out: r.stdout.trim().split('\n').pop() };
}

(async () => {
  const { vmlinux, sources } = paths('image', 'symbols');
  const image = paths('image', 'build');
  const openC = path.join(sources, 'fs', 'open.c');
  const line = h.lineOf(openC, /struct file \*f = do_filp_open\(dfd, tmp, &op\);/);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmdbg-bench-'));
  const sock = path.join(dir, 'gdb.sock');
  const qemu = cp.spawn('qemu-system-x86_64', ['-M', 'microvm,acpi=on', '-accel', 'tcg', '-cpu', 'max', '-m', '512M',
    '-nodefaults', '-no-user-config', '-display', 'none', '-kernel', image.kernel, '-initrd', image.initramfs,
    '-append', 'console=ttyS0 nokaslr', '-gdb', `unix:${sock},server=on,wait=off`, '-S'], { stdio: 'ignore' });
  try {
    while (!fs.existsSync(sock)) await new Promise((r) => setTimeout(r, 20));
    const dc = await h.startClient();
    dc.defaultTimeout = 300000;
    await dc.initializeRequest();
    const t0 = Date.now();
    const initialized = dc.waitForEvent('initialized', 300000);
    await dc.attachRequest({ gdbServer: `unix:${sock}`, symbols: vmlinux, sourceMap: { 'debian/build/build_amd64_none_amd64': sources } });
    await initialized;
    const tInit = Date.now() - t0;
    let t = Date.now();
    await dc.setFunctionBreakpointsRequest({ breakpoints: [{ name: 'do_sys_openat2' }] });
    const tFn = Date.now() - t;
    t = Date.now();
    await dc.setBreakpointsRequest({ source: { path: openC }, breakpoints: [{ line }] });
    const tLine = Date.now() - t;
    const rss = peakKb(dc._adapterProcess.pid) / 1024;
    console.log(`vmdbg dap: attach -> initialized ${(tInit / 1000).toFixed(1)} s (incl. running to start_kernel), function breakpoint ${tFn} ms, line breakpoint ${tLine} ms, peak RSS ${rss.toFixed(0)} MB`);
    qemu.kill('SIGKILL');
    dc.stopAdapter();
    const gFn = gdbRun(vmlinux, 'break do_sys_openat2');
    const gLine = gdbRun(vmlinux, `break fs/open.c:${line}`);
    console.error(`gdb said: ${gFn.out} / ${gLine.out}`);
    console.log(`gdb 13:    load + function breakpoint ${(gFn.ms / 1000).toFixed(1)} s (peak RSS ${gFn.rssMb.toFixed(0)} MB); load + line breakpoint ${(gLine.ms / 1000).toFixed(1)} s (peak RSS ${gLine.rssMb.toFixed(0)} MB)`);
  } finally {
    qemu.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
})().catch((e) => { console.error(e); process.exit(1); });

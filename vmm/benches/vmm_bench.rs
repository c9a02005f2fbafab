//! `cargo bench -p vmdbg-vmm --bench vmm_bench`: vmdbg-vmm against QEMU on
//! the same bare-metal kernels, with anchors measured in the same run.
//!
//! What it measures, and why:
//!
//! 1. **Process start → guest exit** for `hello.elf` (prints one line on
//!    COM1, then writes to the isa-debug-exit port 0xf4, exit status 85).
//!    The whole cost a test pays per VM: exec, KVM setup, ELF load, guest
//!    run, teardown. Compared with `qemu-system-x86_64 -accel kvm` and
//!    `-accel tcg` booting the very same ELF through its PVH note. Ratio is
//!    qemu / vmdbg-vmm (higher = vmdbg-vmm faster).
//! 2. **RSP `stepi` round trip**: a minimal gdb remote-protocol client
//!    (below; no gdb involved) attaches to `--gdb 127.0.0.1:PORT --wait-gdb`,
//!    runs `calls-O0.elf` to a hardware breakpoint on `kmain`, then times
//!    single steps, each one from sending the step packet to receiving the
//!    `T05` stop reply. Same client against QEMU's gdbstub (`-gdb tcp:… -S`).
//!    This is the floor under every debugger `stepi`/`next`.
//! 3. **VMM memory beyond guest RAM**: while stopped at that breakpoint,
//!    `/proc/PID/smaps` is summed over every mapping except the guest-RAM
//!    mapping (the one anonymous mapping exactly `--mem` bytes long). That
//!    is the VMM's own footprint; Firecracker publishes ≤ 5 MiB for it.
//!
//! Knobs (environment): `VMDBG_BENCH_RUNS` (part 1, default 20),
//! `VMDBG_BENCH_STEPS` (part 2, default 500), `VMDBG_VMM_BIN` (use this
//! vmdbg-vmm instead of the one cargo built for the bench),
//! `VMDBG_BENCH_QEMU` (QEMU binary, default `qemu-system-x86_64` in PATH).
//! Positional arguments `startup`, `step`, `mem` select parts (default all).
//!
//! The kernels are built with `make -C tests/guests/baremetal` into
//! `<target>/bench-guests`. Every child gets `PR_SET_PDEATHSIG` (it dies with
//! the bench), every wait and socket read has a timeout, and a missing QEMU
//! or an unusable `-accel kvm` is reported as `unavailable: <reason>`.
//! Only std and libc are used.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Guest RAM for every VM, in MiB (vmdbg-vmm `--mem`, QEMU `-m`).
const GUEST_MIB: u64 = 128;
/// Exit status of `hello.elf` on both VMMs: (0x2a << 1) | 1.
const HELLO_STATUS: i32 = 85;
const HELLO_OUTPUT: &str = "Hello from a vmdbg bare-metal guest\n";
/// One boot of hello.elf, whichever VMM.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// Until a gdb server accepts a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// One RSP reply (a single step, or `continue` to the kmain breakpoint).
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Published Firecracker VMM memory overhead (SPECIFICATION.md).
const FIRECRACKER_MIB: f64 = 5.0;

/// Builds the command that starts one gdb server on a port.
type CommandForPort<'a> = Box<dyn Fn(u16) -> Command + 'a>;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let want = |part: &str| args.is_empty() || args.iter().any(|a| a == part);

    let env = match Env::prepare() {
        Ok(env) => env,
        Err(e) => {
            eprintln!("vmm_bench: setup failed: {e}");
            std::process::exit(1);
        }
    };
    env.print_header();

    let mut out = String::new();
    if want("startup") {
        out += &bench_startup(&env);
    }
    let mut sessions = Vec::new();
    if want("step") || want("mem") {
        let steps = if want("step") { env.steps } else { 0 };
        let (text, s) = bench_step(&env, steps);
        if want("step") {
            out += &text;
        }
        sessions = s;
    }
    if want("mem") {
        out += &bench_memory(&sessions);
    }
    drop(sessions);
    print!("{out}");
}

// ---------------------------------------------------------------------------
// Environment: binaries, kernels, QEMU availability.
// ---------------------------------------------------------------------------

struct Env {
    vmm: PathBuf,
    kernels: PathBuf,
    scratch: PathBuf,
    /// `Ok(path)` or `Err(reason)` when QEMU is missing.
    qemu: Result<PathBuf, String>,
    qemu_version: String,
    runs: usize,
    steps: usize,
}

impl Env {
    fn prepare() -> Result<Env, String> {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest.parent().ok_or("no workspace root")?.to_path_buf();
        let target = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(t) => PathBuf::from(t),
            None => root.join("target"),
        };
        let target = if target.is_absolute() {
            target
        } else {
            root.join(target)
        };
        let kernels = target.join("bench-guests");
        let scratch = kernels.join("logs");
        std::fs::create_dir_all(&scratch)
            .map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;

        // Kernels: make is incremental, so this is cheap after the first run.
        let src = root.join("tests/guests/baremetal");
        let mut make = Command::new("make");
        make.arg("-s")
            .arg("-C")
            .arg(&src)
            .arg(format!("OUT={}", kernels.display()));
        let log = scratch.join("make.log");
        let (status, _) =
            run_with_timeout(&mut make, Stdio::null(), &log, Duration::from_secs(300))
                .map_err(|e| format!("make in {}: {e}", src.display()))?;
        if !status.success() {
            return Err(format!(
                "make in {} failed ({status}):\n{}",
                src.display(),
                read_lossy(&log)
            ));
        }

        // The vmdbg-vmm binary cargo built alongside this bench (bench
        // profile = release), unless overridden.
        let vmm = match std::env::var_os("VMDBG_VMM_BIN") {
            Some(p) => PathBuf::from(p),
            None => PathBuf::from(env!("CARGO_BIN_EXE_vmdbg-vmm")),
        };
        if !vmm.is_file() {
            return Err(format!("vmdbg-vmm binary not found at {}", vmm.display()));
        }

        let qemu_name =
            std::env::var("VMDBG_BENCH_QEMU").unwrap_or_else(|_| "qemu-system-x86_64".to_string());
        let qemu = find_in_path(&qemu_name).ok_or_else(|| {
            format!(
                "{qemu_name} not found in PATH (install qemu-system-x86 or set VMDBG_BENCH_QEMU)"
            )
        });
        let qemu_version = match &qemu {
            Ok(q) => Command::new(q)
                .arg("--version")
                .stdin(Stdio::null())
                .output()
                .ok()
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .and_then(|s| s.lines().next().map(str::to_string))
                .unwrap_or_default(),
            Err(_) => String::new(),
        };

        Ok(Env {
            vmm,
            kernels,
            scratch,
            qemu,
            qemu_version,
            runs: env_usize("VMDBG_BENCH_RUNS", 20),
            steps: env_usize("VMDBG_BENCH_STEPS", 500),
        })
    }

    fn kernel(&self, name: &str) -> PathBuf {
        self.kernels.join(name)
    }

    fn print_header(&self) {
        println!("vmdbg-vmm benchmark");
        println!("  vmdbg-vmm : {}", self.vmm.display());
        println!("  kernels   : {}", self.kernels.display());
        match &self.qemu {
            Ok(q) => println!("  qemu      : {} ({})", q.display(), self.qemu_version),
            Err(e) => println!("  qemu      : unavailable: {e}"),
        }
        println!(
            "  host      : {} CPUs, /dev/kvm {}",
            thread::available_parallelism().map_or(0, |n| n.get()),
            kvm_description()
        );
        println!(
            "  runs={} steps={}  (VMDBG_BENCH_RUNS, VMDBG_BENCH_STEPS)",
            self.runs, self.steps
        );
        println!();
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().ok().filter(|&n| n > 0).unwrap_or_else(|| {
            eprintln!("vmm_bench: ignoring {name}={v:?} (want a positive integer)");
            default
        }),
        Err(_) => default,
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name)).filter(|p| p.is_file());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Which KVM module serves /dev/kvm (kvm_pvm here is a paravirtual nested one).
fn kvm_description() -> String {
    if !Path::new("/dev/kvm").exists() {
        return "missing".into();
    }
    let modules = std::fs::read_to_string("/proc/modules").unwrap_or_default();
    let kind: Vec<&str> = modules
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|m| matches!(*m, "kvm_intel" | "kvm_amd" | "kvm_pvm"))
        .collect();
    if kind.is_empty() {
        "present".into()
    } else {
        format!("present ({})", kind.join(", "))
    }
}

fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// The first non-empty line of a log, for "unavailable: <reason>" messages.
fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.contains("warning:"))
        .or_else(|| text.lines().map(str::trim).find(|l| !l.is_empty()))
        .unwrap_or("(no output)")
        .to_string()
}

// ---------------------------------------------------------------------------
// Child processes: die with the bench, never waited on without a timeout.
// ---------------------------------------------------------------------------

/// `Command::spawn` with the child set to receive SIGKILL when this (main)
/// thread exits, so an interrupted bench leaves no VMs behind.
fn spawn(cmd: &mut Command) -> io::Result<Child> {
    // SAFETY: prctl is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

fn kill(pid: u32) {
    // SAFETY: plain kill(2) on a child we spawned and have not reaped yet.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

/// Runs `cmd` to completion (stdin closed, stderr to `stderr_log`) and
/// returns its status and the time from just before spawn to the moment
/// `wait` returned. Kills it after `timeout`.
fn run_with_timeout(
    cmd: &mut Command,
    stdout: Stdio,
    stderr_log: &Path,
    timeout: Duration,
) -> Result<(ExitStatus, Duration), String> {
    let err = File::create(stderr_log).map_err(|e| format!("{}: {e}", stderr_log.display()))?;
    cmd.stdin(Stdio::null()).stdout(stdout).stderr(err);
    let start = Instant::now();
    let mut child = spawn(cmd).map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send((status, Instant::now()));
    });
    match rx.recv_timeout(timeout) {
        Ok((status, end)) => {
            let _ = waiter.join();
            let status = status.map_err(|e| format!("wait: {e}"))?;
            Ok((status, end - start))
        }
        Err(_) => {
            kill(pid);
            let _ = waiter.join();
            Err(format!("timed out after {} s (killed)", timeout.as_secs()))
        }
    }
}

fn status_text(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => status.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Statistics and table formatting.
// ---------------------------------------------------------------------------

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Stats {
    median: f64,
    p95: f64,
    n: usize,
}

impl Stats {
    fn of(mut samples: Vec<f64>) -> Option<Stats> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        Some(Stats {
            median: percentile(&samples, 50.0),
            p95: percentile(&samples, 95.0),
            n: samples.len(),
        })
    }
}

/// A row's result: numbers, or why there are none.
type Row = Result<Stats, String>;

fn ratio_text(num: Option<f64>, den: Option<f64>) -> String {
    match (num, den) {
        (Some(n), Some(d)) if d > 0.0 => format!("{:.2}x", n / d),
        _ => "-".into(),
    }
}

/// Rows `(label, result)`; the first row is the base of the ratio column.
fn stats_table(unit: &str, ratio_head: &str, rows: &[(String, Row)]) -> String {
    let base = rows
        .first()
        .and_then(|(_, r)| r.as_ref().ok())
        .map(|s| s.median);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "  {:<34} {:>11} {:>11} {:>5}  {}",
        "",
        format!("median {unit}"),
        format!("p95 {unit}"),
        "n",
        ratio_head
    );
    for (i, (label, row)) in rows.iter().enumerate() {
        match row {
            Ok(s) => {
                let ratio = if i == 0 {
                    "1.00x (base)".into()
                } else {
                    ratio_text(Some(s.median), base)
                };
                let _ = writeln!(
                    t,
                    "  {:<34} {:>11.1} {:>11.1} {:>5}  {}",
                    label, s.median, s.p95, s.n, ratio
                );
            }
            Err(reason) => {
                let _ = writeln!(t, "  {label:<34} unavailable: {reason}");
            }
        }
    }
    t
}

// ---------------------------------------------------------------------------
// Part 1: process start -> guest exit.
// ---------------------------------------------------------------------------

fn qemu_boot_args(cmd: &mut Command, accel: &str, kernel: &Path) {
    cmd.args(["-accel", accel, "-M", "pc", "-m", &GUEST_MIB.to_string()])
        .args(["-display", "none", "-serial", "stdio", "-no-reboot"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .arg("-kernel")
        .arg(kernel);
}

/// Boots hello.elf `runs` times after one untimed warm-up run that also
/// checks the serial output and status (and tells "KVM unusable" apart).
fn time_boots(env: &Env, tag: &str, make: &dyn Fn() -> Command) -> Row {
    let out_log = env.scratch.join(format!("{tag}.out"));
    let err_log = env.scratch.join(format!("{tag}.err"));
    let out = File::create(&out_log).map_err(|e| e.to_string())?;
    let (status, _) = run_with_timeout(&mut make(), out.into(), &err_log, RUN_TIMEOUT)?;
    let stderr = read_lossy(&err_log);
    if status.code() != Some(HELLO_STATUS) {
        return Err(format!("{}: {}", status_text(status), first_line(&stderr)));
    }
    let serial = read_lossy(&out_log);
    if serial != HELLO_OUTPUT {
        return Err(format!("unexpected serial output {serial:?}"));
    }

    let mut samples = Vec::with_capacity(env.runs);
    for i in 0..env.runs {
        let (status, took) = run_with_timeout(&mut make(), Stdio::null(), &err_log, RUN_TIMEOUT)
            .map_err(|e| format!("run {i}: {e}"))?;
        if status.code() != Some(HELLO_STATUS) {
            return Err(format!(
                "run {i}: {}: {}",
                status_text(status),
                first_line(&read_lossy(&err_log))
            ));
        }
        samples.push(took.as_secs_f64() * 1e3);
    }
    Ok(Stats::of(samples).expect("runs > 0"))
}

fn bench_startup(env: &Env) -> String {
    let hello = env.kernel("hello.elf");
    let mut rows: Vec<(String, Row)> = Vec::new();

    eprintln!("[1/3] process start -> guest exit: vmdbg-vmm ...");
    let vmm = || {
        let mut c = Command::new(&env.vmm);
        c.arg("--kernel")
            .arg(&hello)
            .arg("--mem")
            .arg(format!("{GUEST_MIB}M"));
        c
    };
    rows.push((
        "vmdbg-vmm (KVM)".into(),
        time_boots(env, "startup-vmdbg", &vmm),
    ));

    for accel in ["kvm", "tcg"] {
        eprintln!("[1/3] process start -> guest exit: qemu -accel {accel} ...");
        let row = match &env.qemu {
            Ok(q) => {
                let qemu = || {
                    let mut c = Command::new(q);
                    qemu_boot_args(&mut c, accel, &hello);
                    c
                };
                time_boots(env, &format!("startup-qemu-{accel}"), &qemu)
            }
            Err(e) => Err(e.clone()),
        };
        rows.push((format!("qemu -accel {accel} (PVH)"), row));
    }

    let mut t = format!(
        "1. Process start -> guest exit, hello.elf ({} runs each, status {HELLO_STATUS} checked)\n",
        env.runs
    );
    t += &stats_table("ms", "qemu/vmdbg", &rows);
    t += "\n";
    t
}

// ---------------------------------------------------------------------------
// A minimal gdb remote serial protocol client.
// ---------------------------------------------------------------------------

struct Rsp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// Still in '+'/'-' acknowledgment mode (QStartNoAckMode not accepted).
    acks: bool,
}

impl Rsp {
    fn new(stream: TcpStream) -> io::Result<Rsp> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
        Ok(Rsp {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            acks: true,
        })
    }

    fn send(&mut self, data: &str) -> io::Result<()> {
        let sum = data.bytes().fold(0u8, |a, b| a.wrapping_add(b));
        self.writer
            .write_all(format!("${data}#{sum:02x}").as_bytes())
    }

    fn byte(&mut self) -> io::Result<u8> {
        let mut b = [0u8];
        self.reader.read_exact(&mut b)?;
        Ok(b[0])
    }

    /// Next `$…#cs` packet (skipping acks and `%` notifications), with the
    /// `}` escapes and `*` run-length encoding undone.
    fn recv(&mut self) -> io::Result<String> {
        loop {
            let start = self.byte()?;
            if start != b'$' && start != b'%' {
                continue; // '+', '-' or noise between packets
            }
            let mut raw = Vec::new();
            self.reader.read_until(b'#', &mut raw)?;
            raw.pop();
            let mut cs = [0u8; 2];
            self.reader.read_exact(&mut cs)?;
            if start == b'%' {
                continue;
            }
            if self.acks {
                self.writer.write_all(b"+")?;
            }
            return Ok(decode(&raw));
        }
    }

    fn request(&mut self, data: &str) -> io::Result<String> {
        self.send(data)?;
        self.recv()
    }

    /// Waits for a stop reply; console output (`O…`) is skipped, an exited
    /// guest (`W`/`X`) is an error.
    fn recv_stop(&mut self) -> io::Result<String> {
        loop {
            let reply = self.recv()?;
            match reply.as_bytes().first() {
                Some(b'T' | b'S') => return Ok(reply),
                Some(b'O') if reply != "OK" => continue,
                _ => {
                    return Err(io::Error::other(format!(
                        "expected a stop reply, got {reply:?}"
                    )))
                }
            }
        }
    }
}

fn decode(raw: &[u8]) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'}' if i + 1 < raw.len() => {
                out.push(raw[i + 1] ^ 0x20);
                i += 2;
            }
            b'*' if i + 1 < raw.len() && !out.is_empty() => {
                let last = *out.last().unwrap();
                out.extend(std::iter::repeat_n(
                    last,
                    raw[i + 1].saturating_sub(29) as usize,
                ));
                i += 2;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A VMM under gdb control, stopped at `kmain` in calls-O0.elf.
struct Session {
    name: String,
    child: Child,
    rsp: Rsp,
    /// Thread id from the stop reply (`p1.1`, `01`, …), for vCont.
    thread: Option<String>,
    /// What `vCont?` advertised.
    vcont: String,
    /// The stub took QStartNoAckMode.
    no_ack: bool,
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.rsp.send("k");
        kill(self.child.id());
        let _ = self.child.wait();
    }
}

impl Session {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The single-step packet: `vCont;s:<tid>` where the stub supports it,
    /// else the legacy `s`.
    fn step_packet(&self) -> String {
        let has_step = self.vcont.split(';').skip(1).any(|a| a == "s");
        match (&self.thread, has_step) {
            (Some(t), true) => format!("vCont;s:{t}"),
            (None, true) => "vCont;s".into(),
            _ => "s".into(),
        }
    }

    fn continue_packet(&self) -> &'static str {
        if self.vcont.split(';').skip(1).any(|a| a == "c") {
            "vCont;c"
        } else {
            "c"
        }
    }

    /// Starts `cmd` (a gdb server waiting for a debugger on `port`), attaches
    /// and runs the guest to a hardware breakpoint at `kmain`.
    fn start(
        name: &str,
        mut cmd: Command,
        port: u16,
        kmain: u64,
        log: &Path,
    ) -> Result<Session, String> {
        let err = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(err);
        let mut child =
            spawn(&mut cmd).map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
        let died = |child: &mut Child, what: String| -> String {
            kill(child.id());
            let status = child.wait().map(status_text).unwrap_or_default();
            format!("{what} ({status}; {})", first_line(&read_lossy(log)))
        };

        // Connect, retrying while the server comes up.
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let stream = loop {
            if let Ok(Some(_)) = child.try_wait() {
                let status = child.wait().map(status_text).unwrap_or_default();
                return Err(format!(
                    "exited before accepting gdb ({status}): {}",
                    first_line(&read_lossy(log))
                ));
            }
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                Err(e) => {
                    return Err(died(
                        &mut child,
                        format!("cannot connect to 127.0.0.1:{port}: {e}"),
                    ))
                }
            }
        };
        let rsp = Rsp::new(stream).map_err(|e| died(&mut child, format!("socket: {e}")))?;
        let mut s = Session {
            name: name.into(),
            child,
            rsp,
            thread: None,
            vcont: String::new(),
            no_ack: false,
        };
        match s.attach(kmain) {
            Ok(()) => Ok(s),
            Err(e) => {
                let exited = s.child.try_wait().ok().flatten();
                Err(match exited {
                    Some(status) => format!(
                        "gdb handshake: {e}; {} ({})",
                        status_text(status),
                        first_line(&read_lossy(log))
                    ),
                    None => format!("gdb handshake: {e}"),
                })
            }
        }
    }

    fn attach(&mut self, kmain: u64) -> io::Result<()> {
        let bad = |what: &str, reply: &str| io::Error::other(format!("{what}: {reply:?}"));
        self.rsp.writer.write_all(b"+")?; // as gdb does on connect
        self.rsp
            .request("qSupported:multiprocess+;swbreak+;hwbreak+;vContSupported+")?;
        if self.rsp.request("QStartNoAckMode")? == "OK" {
            self.rsp.acks = false;
            self.no_ack = true;
        }
        let stop = self.rsp.request("?")?;
        self.thread = stop
            .split(';')
            .find_map(|f| f.strip_prefix("thread:"))
            .or_else(|| {
                stop.find("thread:")
                    .map(|i| stop[i + 7..].split(';').next().unwrap_or(""))
            })
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        self.vcont = self.rsp.request("vCont?")?;

        let z = format!("Z1,{kmain:x},1");
        let reply = self.rsp.request(&z)?;
        if reply != "OK" {
            return Err(bad(&format!("hardware breakpoint {z}"), &reply));
        }
        let cont = self.continue_packet();
        self.rsp.send(cont)?;
        let stop = self.rsp.recv_stop()?;
        let pc = self.read_pc()?;
        if pc != kmain {
            return Err(bad(
                &format!("expected to stop at kmain {kmain:#x}, pc={pc:#x}, stop"),
                &stop,
            ));
        }
        let reply = self.rsp.request(&format!("z1,{kmain:x},1"))?;
        if reply != "OK" {
            return Err(bad("removing the breakpoint", &reply));
        }
        Ok(())
    }

    /// RIP from a `g` reply: amd64 order is rax..r15 (16 x 8 bytes), then
    /// rip, little endian. (`p` needs the XML target description on QEMU.)
    fn read_pc(&mut self) -> io::Result<u64> {
        let reply = self.rsp.request("g")?;
        let bytes: Option<Vec<u8>> = (16 * 8..17 * 8)
            .map(|i| u8::from_str_radix(reply.get(2 * i..2 * i + 2)?, 16).ok())
            .collect();
        let bytes = bytes
            .ok_or_else(|| io::Error::other(format!("short `g` reply ({} chars)", reply.len())))?;
        Ok(u64::from_le_bytes(bytes.try_into().unwrap()))
    }

    /// Times `n` single steps, each from send to the stop reply, in µs.
    fn time_steps(&mut self, n: usize) -> Result<Vec<f64>, String> {
        let packet = self.step_packet();
        let mut samples = Vec::with_capacity(n);
        for i in 0..n {
            let t = Instant::now();
            self.rsp
                .send(&packet)
                .map_err(|e| format!("step {i}: {e}"))?;
            self.rsp.recv_stop().map_err(|e| format!("step {i}: {e}"))?;
            samples.push(t.elapsed().as_secs_f64() * 1e6);
        }
        Ok(samples)
    }
}

/// A port nobody listens on right now (bind port 0, then release it).
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Address of a symbol in an ELF64 file's `.symtab`.
fn elf_symbol(path: &Path, name: &str) -> Result<u64, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = || {
        format!(
            "{}: not a little-endian ELF64 with a symbol table",
            path.display()
        )
    };
    let u16_at = |o: usize| {
        data.get(o..o + 2)
            .map(|b| u16::from_le_bytes(b.try_into().unwrap()))
    };
    let u32_at = |o: usize| {
        data.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let u64_at = |o: usize| {
        data.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    if data.get(..6) != Some(b"\x7fELF\x02\x01") {
        return Err(bad());
    }
    let shoff = u64_at(0x28).ok_or_else(bad)? as usize;
    let shentsize = u16_at(0x3a).ok_or_else(bad)? as usize;
    let shnum = u16_at(0x3c).ok_or_else(bad)? as usize;
    let section = |i: usize| {
        let h = shoff + i * shentsize;
        Some((
            u32_at(h + 4)?,
            u64_at(h + 0x18)? as usize,
            u64_at(h + 0x20)? as usize,
            u32_at(h + 0x28)? as usize,
        ))
    };
    for i in 0..shnum {
        let (kind, off, size, link) = section(i).ok_or_else(bad)?;
        if kind != 2 {
            continue; // SHT_SYMTAB
        }
        let (_, stroff, _, _) = section(link).ok_or_else(bad)?;
        for sym in (off..off + size).step_by(24) {
            let name_off = stroff + u32_at(sym).ok_or_else(bad)? as usize;
            let end = data[name_off..]
                .iter()
                .position(|&b| b == 0)
                .map(|p| name_off + p);
            if end.map(|e| &data[name_off..e]) == Some(name.as_bytes()) {
                return u64_at(sym + 8).ok_or_else(bad);
            }
        }
    }
    Err(format!("{}: no symbol {name}", path.display()))
}

// ---------------------------------------------------------------------------
// Part 2: RSP single-step round trip.
// ---------------------------------------------------------------------------

/// The gdb-server targets, in table order. Returns the sessions (still
/// stopped in the guest) for the memory part.
fn bench_step(env: &Env, steps: usize) -> (String, Vec<Result<Session, String>>) {
    let kernel = env.kernel("calls-O0.elf");
    let kmain = match elf_symbol(&kernel, "kmain") {
        Ok(a) => a,
        Err(e) => {
            return (
                format!("2. RSP stepi round trip\n  unavailable: {e}\n\n"),
                Vec::new(),
            );
        }
    };

    let mut targets: Vec<(String, CommandForPort<'_>)> = vec![(
        "vmdbg-vmm (KVM)".into(),
        Box::new(|port| {
            let mut c = Command::new(&env.vmm);
            c.arg("--kernel")
                .arg(&kernel)
                .arg("--mem")
                .arg(format!("{GUEST_MIB}M"));
            c.arg("--gdb")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--wait-gdb");
            c
        }),
    )];
    for accel in ["tcg", "kvm"] {
        let kernel = kernel.clone();
        let qemu = env.qemu.clone();
        targets.push((
            format!("qemu -accel {accel}"),
            Box::new(move |port| {
                let mut c = Command::new(
                    qemu.as_ref()
                        .map(|p| p.as_path())
                        .unwrap_or(Path::new("qemu")),
                );
                qemu_boot_args(&mut c, accel, &kernel);
                c.arg("-gdb").arg(format!("tcp:127.0.0.1:{port}")).arg("-S");
                c
            }),
        ));
    }

    let mut sessions = Vec::new();
    let mut rows: Vec<(String, Row)> = Vec::new();
    let mut packets: Vec<String> = Vec::new();
    for (name, make) in &targets {
        eprintln!("[2/3] RSP stepi: {name} ...");
        let session = if name.starts_with("qemu") && env.qemu.is_err() {
            Err(env.qemu.clone().unwrap_err())
        } else {
            let tag = name.replace([' ', '(', ')'], "-");
            free_port()
                .map_err(|e| format!("no free port: {e}"))
                .and_then(|port| {
                    Session::start(
                        name,
                        make(port),
                        port,
                        kmain,
                        &env.scratch.join(format!("gdb-{tag}.err")),
                    )
                })
        };
        let mut session = session;
        let row = match &mut session {
            Ok(s) if steps > 0 => {
                packets.push(format!(
                    "{}: {}, {}",
                    s.name,
                    s.step_packet(),
                    if s.no_ack { "no-ack mode" } else { "ack mode" }
                ));
                s.time_steps(steps)
                    .map(|v| Stats::of(v).expect("steps > 0"))
            }
            Ok(_) => Err("not run".into()),
            Err(e) => Err(e.clone()),
        };
        rows.push((name.clone(), row));
        sessions.push(session);
    }

    let mut t = format!("2. RSP single-step round trip, calls-O0.elf from kmain ({steps} steps, packet -> T05 reply)\n");
    t += &stats_table("us", "x vmdbg", &rows);
    for p in &packets {
        let _ = writeln!(t, "     step packet  {p}");
    }
    t += "     anchor: gdb 13 `stepi` against QEMU's gdbstub ~1 ms (TESTING.md; full gdb, not raw RSP)\n\n";
    (t, sessions)
}

// ---------------------------------------------------------------------------
// Part 3: resident memory beyond guest RAM.
// ---------------------------------------------------------------------------

struct Footprint {
    vm_rss_kib: u64,
    guest_rss_kib: u64,
    other_rss_kib: u64,
    other_private_kib: u64,
}

/// Sums `/proc/PID/smaps` over every mapping except guest RAM: the single
/// anonymous mapping exactly `GUEST_MIB` long.
fn footprint(pid: u32) -> Result<Footprint, String> {
    let smaps =
        std::fs::read_to_string(format!("/proc/{pid}/smaps")).map_err(|e| format!("smaps: {e}"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("status: {e}"))?;
    let kib = |line: &str| -> u64 {
        line.split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let vm_rss_kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .map(kib)
        .ok_or("no VmRSS")?;

    let guest_bytes = GUEST_MIB << 20;
    let mut f = Footprint {
        vm_rss_kib,
        guest_rss_kib: 0,
        other_rss_kib: 0,
        other_private_kib: 0,
    };
    let mut guest_mappings = 0;
    let mut in_guest = false;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if let Some((lo, hi)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            let (Ok(lo), Ok(hi)) = (u64::from_str_radix(lo, 16), u64::from_str_radix(hi, 16))
            else {
                continue;
            };
            let anonymous = fields.nth(4).is_none(); // no pathname after the inode
            in_guest = anonymous && hi - lo == guest_bytes;
            guest_mappings += in_guest as usize;
        } else if first == "Rss:" {
            if in_guest {
                f.guest_rss_kib += kib(line);
            } else {
                f.other_rss_kib += kib(line);
            }
        } else if (first == "Private_Clean:" || first == "Private_Dirty:") && !in_guest {
            f.other_private_kib += kib(line);
        }
    }
    match guest_mappings {
        1 => Ok(f),
        n => Err(format!(
            "found {n} anonymous mappings of exactly {GUEST_MIB} MiB, want 1"
        )),
    }
}

fn bench_memory(sessions: &[Result<Session, String>]) -> String {
    eprintln!("[3/3] memory ...");
    let mib = |k: u64| k as f64 / 1024.0;
    let mut t = format!(
        "3. Resident memory, calls-O0.elf stopped at kmain under gdb, guest RAM {GUEST_MIB} MiB\n"
    );
    let _ = writeln!(
        t,
        "  {:<34} {:>11} {:>11} {:>11} {:>11}  other/Firecracker",
        "", "VmRSS MiB", "guest MiB", "other MiB", "private MiB"
    );
    for (i, s) in sessions.iter().enumerate() {
        let label = match (i, s) {
            (_, Ok(s)) => s.name.clone(),
            (0, _) => "vmdbg-vmm (KVM)".into(),
            (1, _) => "qemu -accel tcg".into(),
            _ => "qemu -accel kvm".into(),
        };
        match s
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|s| footprint(s.pid()))
        {
            Ok(f) => {
                let _ = writeln!(
                    t,
                    "  {:<34} {:>11.1} {:>11.1} {:>11.1} {:>11.1}  {:.2}x",
                    label,
                    mib(f.vm_rss_kib),
                    mib(f.guest_rss_kib),
                    mib(f.other_rss_kib),
                    mib(f.other_private_kib),
                    mib(f.other_rss_kib) / FIRECRACKER_MIB
                );
            }
            Err(e) => {
                let _ = writeln!(t, "  {label:<34} unavailable: {e}");
            }
        }
    }
    let _ = writeln!(
        t,
        "  {:<34} {:>11} {:>11} {:>11.1} {:>11}  1.00x",
        "anchor: Firecracker (published)", "", "", FIRECRACKER_MIB, ""
    );
    t +=
        "     other = RSS of every mapping but guest RAM (incl. shared libraries); private = its\n";
    t += "     Private_Clean + Private_Dirty (what this process alone costs)\n";
    t
}

//! Harness for vmdbg's end-to-end tests: where the binaries and test
//! kernels are, which tiers this machine has, and child processes that are
//! always cleaned up.
//!
//! Skips are loud: a test that needs something this machine lacks panics
//! under `CI=true` (or `VMDBG_REQUIRE_KVM=1`) and elsewhere prints
//! `SKIPPED: <reason>` and returns.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Directory holding the kernels `build.rs` made.
pub fn baremetal_dir() -> &'static Path {
    Path::new(env!("VMDBG_BAREMETAL_DIR"))
}

pub fn kernel(name: &str) -> PathBuf {
    let p = baremetal_dir().join(name);
    assert!(p.exists(), "test kernel {} was not built", p.display());
    p
}

/// Line number of the `/* MARK:name */` comment in a kernel source file.
pub fn marker_line(source: &str, name: &str) -> u32 {
    let path = Path::new(env!("VMDBG_BAREMETAL_SRC")).join(source);
    let text = std::fs::read_to_string(&path).expect("read kernel source");
    let needle = format!("MARK:{name} */");
    let index = text
        .lines()
        .position(|l| l.contains(&needle))
        .unwrap_or_else(|| panic!("no {needle} in {}", path.display()));
    index as u32 + 1
}

fn strict() -> bool {
    let on = |v: &str| std::env::var(v).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    on("CI") || on("VMDBG_REQUIRE_KVM")
}

/// Returns false (after printing why) when a test must be skipped; panics
/// instead under CI, where skipping would hide a missing tier.
pub fn require(available: Result<(), String>, test: &str) -> bool {
    match available {
        Ok(()) => true,
        Err(why) if strict() => panic!("{test}: required but unavailable under CI: {why}"),
        Err(why) => {
            eprintln!("SKIPPED: {test}: {why}");
            false
        }
    }
}

/// The host tier: a /dev/kvm this process can open.
pub fn kvm() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(|_| ())
        .map_err(|e| format!("/dev/kvm cannot be opened ({e})"))
}

/// A program on PATH (gdb, lldb, qemu-system-x86_64).
pub fn tool(name: &str) -> Result<(), String> {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .stdout(Stdio::null())
        .status()
        .ok()
        .filter(ExitStatus::success)
        .map(|_| ())
        .ok_or_else(|| format!("`{name}` is not installed (see .ci/run for the packages)"))
}

pub fn all(checks: impl IntoIterator<Item = Result<(), String>>) -> Result<(), String> {
    checks
        .into_iter()
        .collect::<Result<Vec<()>, String>>()
        .map(|_| ())
}

/// The `vmdbg-vmm` binary, built once per test process with the cargo that
/// runs the tests, in the same target directory and profile.
pub fn vmm_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        // target/<profile>/deps/<test binary>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-q", "-p", "vmdbg-vmm", "--bin", "vmdbg-vmm"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "cargo build -p vmdbg-vmm failed");
        let bin = profile_dir.join("vmdbg-vmm");
        assert!(bin.exists(), "{} missing after build", bin.display());
        bin
    })
}

pub fn vmm() -> Command {
    Command::new(vmm_binary())
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (and reaped) when dropped, so a failing test
/// never leaves a VM or QEMU behind. Its stdout and stderr are collected by
/// threads, so a test can wait for a line on stderr while it runs.
pub struct ChildGuard {
    pub child: Child,
    pub name: String,
    stdout: Collector,
    stderr: Collector,
}

/// Bytes read from a pipe by a background thread.
struct Collector {
    bytes: Arc<Mutex<Vec<u8>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    fn start(pipe: Option<impl Read + Send + 'static>) -> Self {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let sink = bytes.clone();
        let thread = pipe.map(|mut pipe| {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    sink.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            })
        });
        Self { bytes, thread }
    }

    fn snapshot(&self) -> Vec<u8> {
        self.bytes.lock().unwrap().clone()
    }

    fn finish(mut self) -> Vec<u8> {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.bytes.lock().unwrap())
    }
}

impl ChildGuard {
    pub fn spawn(mut cmd: Command, name: &str) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let stdout = Collector::start(child.stdout.take());
        let stderr = Collector::start(child.stderr.take());
        Self {
            child,
            name: name.into(),
            stdout,
            stderr,
        }
    }

    /// Waits until the child has written `needle` on stderr. Connecting to
    /// a port to see whether it is up would itself be taken as a debugger.
    pub fn wait_for_stderr(&mut self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let seen = text(&self.stderr.snapshot());
            if seen.contains(needle) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} ended ({status}) before printing `{needle}`:\n{seen}",
                    self.name
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not print `{needle}` within {limit:?}:\n{seen}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the process to end, at most `limit`; kills it after that.
    pub fn wait_output(mut self, limit: Duration) -> Output {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{} did not end within {limit:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let stdout = std::mem::replace(&mut self.stdout, Collector::start(None::<std::fs::File>));
        let stderr = std::mem::replace(&mut self.stderr, Collector::start(None::<std::fs::File>));
        Output {
            status,
            stdout: stdout.finish(),
            stderr: stderr.finish(),
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs a command to completion with a time limit.
/// A vmdbg-vmm state or recording file (`good`, its 32-byte header as in
/// vmm/src/snapshot/mod.rs's `Framing`: magic, version, reserved, body
/// length, CRC-32, reserved) with its body replaced by `body`, the length
/// and checksum made right again: a crafted file that gets past the
/// checksum, for the checks behind it.
pub fn reframed(good: &[u8], body: &[u8]) -> Vec<u8> {
    const HEADER_LEN: usize = 32;
    let mut out = good[..16].to_vec();
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(&good[28..HEADER_LEN]);
    out.extend_from_slice(body);
    out
}

pub fn run(cmd: Command, name: &str, limit: Duration) -> Output {
    ChildGuard::spawn(cmd, name).wait_output(limit)
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Starts `cmd` (a vmdbg-vmm with its kernel) with its gdb stub on a port
/// the stub picks itself (`--gdb 127.0.0.1:0`: no window in which another
/// process can take a port the test chose), waiting for gdb; returns the
/// guard and the port the stub printed.
pub fn vmm_gdb_on_any_port(mut cmd: Command) -> (ChildGuard, u16) {
    cmd.args(["--gdb", "127.0.0.1:0", "--wait-gdb"]);
    let mut guard = ChildGuard::spawn(cmd, "vmdbg-vmm");
    let port = gdb_port_said(&mut guard, "waiting for gdb: target remote 127.0.0.1:");
    (guard, port)
}

/// The port a stub bound to port 0 names on stderr after `said`.
pub fn gdb_port_said(guard: &mut ChildGuard, said: &str) -> u16 {
    guard.wait_for_stderr(said, Duration::from_secs(10));
    let seen = guard.stderr_text();
    seen.split(said)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in: {seen}"))
}

/// The address of symbol `name` in `elf` (from `nm`).
pub fn elf_symbol(elf: &Path, name: &str) -> u64 {
    let out = Command::new("nm").arg(elf).output().expect("nm");
    text(&out.stdout)
        .lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            let (addr, _, sym) = (w.next()?, w.next()?, w.next()?);
            (sym == name).then(|| u64::from_str_radix(addr, 16).ok())?
        })
        .unwrap_or_else(|| panic!("no symbol {name} in {}", elf.display()))
}

/// QEMU's own record/replay (TCG, `-icount shift=auto,rr=…`) of `elf`:
/// records a run to its end in `dir`, then starts the replay with its
/// gdbstub waiting on a unix socket in `dir` (returned).
pub fn qemu_record_then_replay(elf: &Path, dir: &Path) -> (ChildGuard, PathBuf) {
    let disk = dir.join("rr.qcow2");
    let log = dir.join("rr.replay");
    let status = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&disk)
        .arg("16M")
        .status()
        .expect("qemu-img");
    assert!(status.success(), "qemu-img create failed");
    let qemu = |mode: &str| {
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-accel", "tcg", "-M", "pc", "-m", "128", "-display", "none"])
            .args(["-no-reboot", "-net", "none", "-serial", "null"])
            .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
            .arg("-drive")
            .arg(format!("file={},if=none,id=rr", disk.display()))
            .arg("-icount")
            .arg(format!(
                "shift=auto,rr={mode},rrfile={},rrsnapshot=init",
                log.display()
            ))
            .arg("-kernel")
            .arg(elf);
        cmd
    };
    let recorded = run(qemu("record"), "QEMU rr=record", Duration::from_secs(120));
    assert!(
        recorded.status.code().is_some_and(|c| c != 0),
        "QEMU's recorded run should end through isa-debug-exit: {}",
        text(&recorded.stderr)
    );
    let socket = dir.join("qemu-gdb.sock");
    let mut cmd = qemu("replay");
    cmd.arg("-S")
        .arg("-gdb")
        .arg(format!("unix:{},server=on,wait=off", socket.display()));
    let guard = ChildGuard::spawn(cmd, "QEMU rr=replay");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "QEMU opened no gdb socket");
        std::thread::sleep(Duration::from_millis(10));
    }
    (guard, socket)
}

/// Runs Debian's gdb in batch mode on `elf` with a script.
pub fn gdb_batch(elf: &Path, script: &str, limit: Duration) -> Output {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SCRIPTS: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "vmdbg-gdb-{}-{}.gdb",
        std::process::id(),
        SCRIPTS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, script).unwrap();
    let mut cmd = Command::new("gdb");
    cmd.args(["-nx", "-batch", "-x"]).arg(&path).arg(elf);
    let out = run(cmd, "gdb", limit);
    let _ = std::fs::remove_file(&path);
    out
}

/// QEMU booting the same ELF through PVH, with its gdbstub waiting (-s -S)
/// on the unix socket `socket` (gdb: `target remote <socket>`); returns
/// once the socket is there.
pub fn qemu_with_gdbstub(elf: &Path, socket: &Path) -> ChildGuard {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-accel", "tcg", "-M", "pc", "-m", "128", "-display", "none", "-serial", "null",
    ])
    .args([
        "-no-reboot",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
        "-S",
    ])
    .arg("-gdb")
    .arg(format!("unix:{},server=on,wait=off", socket.display()))
    .arg("-kernel")
    .arg(elf);
    let mut qemu = ChildGuard::spawn(cmd, "qemu-system-x86_64");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        if let Ok(Some(status)) = qemu.child.try_wait() {
            panic!("QEMU ended ({status}): {}", qemu.stderr_text());
        }
        assert!(
            Instant::now() < deadline,
            "QEMU opened no gdb socket at {}",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    qemu
}

// ----- the process debugger (`vmdbg-agent gdbserver`) on this host -----

/// A binary of this workspace, built once per test process with the cargo
/// that runs the tests, in the same target directory and profile.
pub fn workspace_binary(package: &str, bin: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<std::collections::HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    if let Some(path) = built.get(bin) {
        return path.clone();
    }
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "-q", "-p", package, "--bin", bin]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build");
    assert!(
        status.success(),
        "cargo build -p {package} --bin {bin} failed"
    );
    let path = profile_dir.join(bin);
    assert!(path.exists(), "{} missing after build", path.display());
    built.insert(bin.to_string(), path.clone());
    path
}

/// The `vmdbg-agent` binary (the process debugger's `gdbserver` command).
pub fn agent_binary() -> PathBuf {
    workspace_binary("vmdbg-agent", "vmdbg-agent")
}

/// Sources of the programs the process-debugger tests compile.
pub fn programs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/programs")
}

/// Builds `greeter.c` into `dir/greeter`, linked against its own
/// `dir/lib/libgreet.so` (from `greet.c`) through an `$ORIGIN/lib` RUNPATH,
/// so a copy that lives elsewhere must bring the library along. Returns
/// the program's path.
pub fn build_greeter(dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir.join("lib")).map_err(|e| format!("{}: {e}", dir.display()))?;
    let source = |name: &str| programs_dir().join(name).display().to_string();
    let gcc = |args: &[&str]| {
        let out = Command::new("gcc")
            .current_dir(dir)
            .args(args)
            .output()
            .map_err(|e| format!("gcc: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("gcc {args:?}: {}", text(&out.stderr)))
        }
    };
    gcc(&[
        "-shared",
        "-fPIC",
        "-o",
        "lib/libgreet.so",
        &source("greet.c"),
    ])?;
    gcc(&[
        "-o",
        "greeter",
        &source("greeter.c"),
        "-Llib",
        "-lgreet",
        "-Wl,-rpath,$ORIGIN/lib",
    ])?;
    Ok(dir.join("greeter"))
}

/// Line number of the `MARK:name` comment in a file of `programs_dir()`.
pub fn program_marker_line(source: &str, name: &str) -> u32 {
    let path = programs_dir().join(source);
    let text = std::fs::read_to_string(&path).expect("read program source");
    let index = text
        .lines()
        .position(|l| {
            l.split("MARK:").nth(1).is_some_and(|rest| {
                rest.strip_prefix(name).is_some_and(|after| {
                    !after.starts_with(|c: char| c.is_alphanumeric() || c == '_')
                })
            })
        })
        .unwrap_or_else(|| panic!("no MARK:{name} in {}", path.display()));
    index as u32 + 1
}

impl ChildGuard {
    /// What the child wrote on stderr so far.
    pub fn stderr_text(&self) -> String {
        text(&self.stderr.snapshot())
    }
}

/// `vmdbg-agent gdbserver` running `argv` on a free port; returns the
/// guard and the port it printed.
pub fn agent_gdbserver(argv: &[&Path]) -> (ChildGuard, u16) {
    let mut cmd = Command::new(agent_binary());
    cmd.args(["gdbserver", "--listen", "127.0.0.1:0", "--"])
        .args(argv);
    let mut guard = ChildGuard::spawn(cmd, "vmdbg-agent gdbserver");
    guard.wait_for_stderr("listening on 127.0.0.1:", Duration::from_secs(20));
    let seen = guard.stderr_text();
    let port = seen
        .split("listening on 127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in: {seen}"));
    (guard, port)
}
pub mod nested;
pub mod rsp;

// ----- `vmdbg run` and Linux guests on the QEMU engine (issues 3 and 5) -----

/// The `vmdbg` binary.
pub fn vmdbg_binary() -> PathBuf {
    workspace_binary("vmdbg", "vmdbg")
}

/// The image cache the tests' vmdbg uses: one for all test runs of this
/// checkout (the default image is tens of MB from Debian's mirror, built
/// once), apart from the user's own ~/.cache/vmdbg, which a test must not
/// fill, prune or depend on. vmdbg's cache lock serialises builds.
pub fn test_cache_home() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .join("target/test-cache")
}

/// `vmdbg` with the tests' image cache (`XDG_CACHE_HOME`); a test of the
/// cache itself sets its own.
pub fn vmdbg() -> Command {
    let mut cmd = Command::new(vmdbg_binary());
    cmd.env("XDG_CACHE_HOME", test_cache_home());
    cmd
}

/// `std::env::temp_dir()/<prefix><pid>`, fresh, for this test process;
/// first removes those of earlier test processes that are gone (a failed
/// test leaves its files for a look, but not for ever).
pub fn process_temp_dir(prefix: &str) -> PathBuf {
    let tmp = std::env::temp_dir();
    for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(prefix).and_then(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        }) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = tmp.join(format!("{prefix}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// What Linux-guest tests need here: QEMU, and apt-get and dpkg-deb to
/// build the default guest image from Debian's packages.
pub fn linux_guest_tools() -> Result<(), String> {
    all([
        tool("qemu-system-x86_64"),
        tool("apt-get"),
        tool("dpkg-deb"),
    ])
}

/// Builds the default guest image once per test process, so the first
/// test's time limit does not have to cover it (vmdbg's cache lock
/// serialises concurrent builds from several test processes).
pub fn default_image_ready() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut cmd = vmdbg();
        cmd.args(["image", "build"]);
        let out = run(cmd, "vmdbg image build", Duration::from_secs(900));
        assert!(
            out.status.success(),
            "vmdbg image build failed:\n{}",
            text(&out.stderr)
        );
    });
}

/// The default image's kernel as `vmdbg image info` reports it (release,
/// Debian version): the pin in dap-server/src/image/pins.rs, or what stood
/// in for it when the archive had dropped it. Builds the image first.
pub fn default_image_kernel() -> (String, String) {
    default_image_ready();
    let mut cmd = vmdbg();
    cmd.args(["image", "info"]);
    let out = run(cmd, "vmdbg image info", Duration::from_secs(60));
    let info = text(&out.stdout);
    assert!(out.status.success(), "{info}{}", text(&out.stderr));
    let field = |label: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(label))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("`vmdbg image info` printed no `{label}` line:\n{info}"))
    };
    (field("kernel release:"), field("kernel version:"))
}

/// The start of the line `uname -a` prints in a guest booted from the
/// default image.
pub fn default_image_uname_prefix() -> String {
    let (release, version) = default_image_kernel();
    format!("Linux vmdbg {release} #1 SMP PREEMPT_DYNAMIC Debian {version}")
}

/// Whether the Linux-guest tests can run (`extra` adds the tools a test
/// needs besides QEMU and the image tools); builds the default image once.
/// False (after a printed SKIPPED, or a panic under CI) when they cannot.
pub fn linux_guest_ready(test: &str, extra: &[&str]) -> bool {
    let checks = std::iter::once(linux_guest_tools()).chain(extra.iter().map(|t| tool(t)));
    if !require(all(checks), test) {
        return false;
    }
    default_image_ready();
    true
}

/// A fresh, empty directory for one test's files.
pub fn scratch_dir(test: &str) -> PathBuf {
    process_temp_dir(&format!("vmdbg-e2e-{test}-"))
}

/// QEMU processes started by the vmdbg with this pid (their sockets are in
/// a runtime directory named after it).
pub fn qemus_of(vmdbg_pid: u32) -> Vec<(u32, String)> {
    processes_matching(&format!("/vmdbg-{vmdbg_pid}-"))
        .into_iter()
        .filter(|(_, cmdline)| cmdline.contains("qemu-system"))
        .collect()
}

/// Waits (up to 5 s) for that vmdbg's QEMUs to go; returns those left.
pub fn wait_qemus_gone(vmdbg_pid: u32) -> Vec<(u32, String)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = qemus_of(vmdbg_pid);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The runtime directories (sockets, console log) of the vmdbg with this
/// pid still in the temporary directory.
pub fn runtime_dirs_of(vmdbg_pid: u32) -> Vec<PathBuf> {
    let prefix = format!("vmdbg-{vmdbg_pid}-");
    std::fs::read_dir(std::env::temp_dir())
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts that the vmdbg with this pid, now gone, left no QEMU and no
/// runtime directory (sockets, console log) behind; `how` says how it
/// ended, for the messages.
pub fn assert_vmdbg_left_nothing(vmdbg_pid: u32, how: &str) {
    assert_eq!(
        wait_qemus_gone(vmdbg_pid),
        vec![],
        "QEMU outlived {how} vmdbg"
    );
    let left = runtime_dirs_of(vmdbg_pid);
    assert!(
        left.is_empty(),
        "sockets left behind by {how} vmdbg: {left:?}"
    );
}

/// `vmdbg run ARGS…` (the caller adds `-- CMD`).
pub fn vmdbg_run(args: &[&str]) -> Command {
    let mut cmd = vmdbg();
    cmd.arg("run").args(args);
    cmd
}

impl ChildGuard {
    /// What the child wrote on stdout so far.
    pub fn stdout_text(&self) -> String {
        text(&self.stdout.snapshot())
    }

    /// Waits until the child has written `needle` on stdout.
    pub fn wait_for_stdout(&mut self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.stdout_text().contains(needle) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} ended ({status}) before printing `{needle}`:\n{}",
                    self.name,
                    self.stderr_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not print `{needle}` within {limit:?}; stderr:\n{}",
                self.name,
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Live processes whose command line contains `needle`: (pid, command line).
pub fn processes_matching(needle: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        // A zombie has an empty command line and is already dead.
        if cmdline.contains(needle) {
            found.push((pid, cmdline));
        }
    }
    found
}

//! The nested test tier (TESTING.md): `vmdbg` and a static `vmdbg-vmm` run
//! inside an L1 Linux VM under QEMU TCG with emulated AMD SVM, where KVM is
//! real hardware-virtualization KVM, and boot the real Debian kernel as L2
//! (vmdbg's default image, the same kernel package the image pins).
//!
//! One L1 per test binary: [`session`] builds the images and boots L1 on
//! first use; tests then take turns (a mutex) sending it commands over its
//! serial console. L1's init (tests/nested/l1/init) answers a line
//! `@@RUN <id> <command>` with `@@BEGIN <id>`, the output and
//! `@@END <id> <status>`. Scenario scripts live in tests/nested/l1/.
//!
//! What it needs: QEMU >= 9.1 (tests/nested/fetch-qemu.sh fetches it from
//! bookworm-backports; older TCG cannot stop L2 at breakpoints), gcc (static glibc), busybox-static,
//! cpio, root (for mknod in the images), and apt-get + dpkg-deb to fetch
//! the Debian kernel the default image was made from
//! (tests/nested/fetch-kernel.sh, cached under
//! `$XDG_CACHE_HOME/vmdbg/nested`). Builds under target/nested, holding
//! its lock for the test process's life.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

const L1_BOOT_LIMIT: Duration = Duration::from_secs(300);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn nested_dir() -> PathBuf {
    workspace_root().join("tests/nested")
}

/// target/<profile>/.. : where this test binary's cargo puts things.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .nth(3)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

/// The QEMU L1 runs under: $VMDBG_NESTED_QEMU (a qemu-system-x86_64
/// binary), else the one tests/nested/fetch-qemu.sh unpacked from
/// bookworm-backports into the nested cache. Not the system's: L2 can stop
/// at breakpoints only on QEMU >= 9.1 (see fetch-qemu.sh), and the tier is
/// there to debug L2.
fn l0_qemu() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("VMDBG_NESTED_QEMU").filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("VMDBG_NESTED_QEMU={} is no file", path.display()))
        };
    }
    let cache = std::env::var_os("VMDBG_NESTED_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME").map(|c| PathBuf::from(c).join("vmdbg/nested"))
        })
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/vmdbg/nested")))
        .ok_or("neither XDG_CACHE_HOME nor HOME is set")?;
    let qemu = cache.join("qemu");
    if qemu.join(".complete").is_file() {
        Ok(qemu.join("usr/bin/qemu-system-x86_64"))
    } else {
        Err(format!(
            "the nested tier's QEMU (>= 9.1, from bookworm-backports) is not in {}; run: bash .ci/setup-tests.d/nested.sh",
            qemu.display()
        ))
    }
}

/// Firmware for [`l0_qemu`]: its own option ROMs and SeaBIOS first.
fn l0_firmware(qemu: &Path) -> Vec<std::ffi::OsString> {
    let Some(usr) = qemu.parent().and_then(Path::parent) else {
        return Vec::new();
    };
    ["share/qemu", "share/seabios"]
        .iter()
        .map(|d| usr.join(d))
        .filter(|d| d.is_dir())
        .flat_map(|d| ["-L".into(), d.into_os_string()])
        .collect()
}

/// Whether this machine can run the nested tier; the reason if not.
pub fn available() -> Result<(), String> {
    if std::env::var("VMDBG_SKIP_NESTED").is_ok_and(|v| !v.is_empty() && v != "0") {
        return Err("VMDBG_SKIP_NESTED is set".into());
    }
    crate::all([
        l0_qemu().map(drop),
        crate::tool("gcc"),
        crate::tool("busybox"),
        crate::tool("cpio"),
        crate::tool("xz"),
        crate::tool("strip"),
        // The DAP tests' programs are built by tests/dap/programs.js.
        crate::tool("node"),
        crate::tool("rustc"),
        crate::tool("g++"),
    ])?;
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| crate::text(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if uid != "0" {
        return Err("building the L1/L2 images needs root (mknod /dev/console)".into());
    }
    Ok(())
}

/// What a command run in L1 printed and its exit status.
#[derive(Debug)]
pub struct Outcome {
    pub status: i32,
    pub output: String,
}

impl Outcome {
    /// The rest of the first line that starts with `marker`.
    pub fn marker(&self, marker: &str) -> Option<&str> {
        self.output.lines().find_map(|l| {
            l.trim_start_matches("L2| ")
                .strip_prefix(marker)
                .map(str::trim)
        })
    }

    /// L2's boot-to-init time as run-l2.sh measured it, in ms.
    pub fn boot_to_init_ms(&self) -> Option<u64> {
        self.marker("@@BOOT-TO-INIT-MS")?.parse().ok()
    }
}

/// A running L1 VM.
pub struct L1 {
    qemu: Child,
    stdin: ChildStdin,
    output: Arc<Mutex<String>>,
    next_id: u32,
    /// Kills QEMU when this process ends, however it ends: its stdin is a
    /// pipe only we hold.
    _watchdog: Child,
    pub boot_time: Duration,
    /// The host port QEMU forwards to L1's `vmdbg dap` server (a fresh
    /// `vmdbg dap` per connection).
    pub dap_port: u16,
    /// Where the DAP tests' programs are, on the host and in L1 alike.
    pub dap_programs: PathBuf,
}

impl L1 {
    /// Runs `command` in L1's shell and waits for it, at most `limit`; L1
    /// kills it a little before, so a hung scenario does not block the
    /// next one.
    pub fn run(&mut self, command: &str, limit: Duration) -> Outcome {
        self.next_id += 1;
        let id = self.next_id;
        let start_len = self.output.lock().unwrap().len();
        let l1_limit = limit
            .saturating_sub(Duration::from_secs(15))
            .as_secs()
            .max(5);
        writeln!(self.stdin, "@@RUN {id} {l1_limit} {command}").expect("write to L1's console");
        self.stdin.flush().expect("flush L1's console");
        let begin = format!("@@BEGIN {id}\n");
        let end = format!("@@END {id} ");
        let deadline = Instant::now() + limit;
        loop {
            {
                let all = self.output.lock().unwrap();
                let seen = &all[start_len..];
                if let (Some(b), Some(e)) = (seen.find(&begin), seen.find(&end)) {
                    let after = &seen[e + end.len()..];
                    if let Some(nl) = after.find('\n') {
                        let status = after[..nl].trim().parse().unwrap_or(-1);
                        return Outcome {
                            status,
                            output: seen[b + begin.len()..e].to_string(),
                        };
                    }
                }
                if Instant::now() > deadline {
                    panic!(
                        "L1 did not finish `{command}` within {limit:?}; its console:\n{}",
                        &all[start_len..]
                    );
                }
            }
            if let Ok(Some(status)) = self.qemu.try_wait() {
                panic!(
                    "L1's QEMU ended ({status}) while running `{command}`:\n{}",
                    &self.output.lock().unwrap()[start_len..]
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn run_step(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            crate::text(&out.stdout),
            crate::text(&out.stderr)
        ));
    }
    Ok(crate::text(&out.stdout).trim().to_string())
}

/// What L1 boots, and where the DAP suite's programs are (on the host and
/// in L1 alike).
struct Images {
    kernel: PathBuf,
    initrd: PathBuf,
    dap_programs: PathBuf,
}

/// Builds everything L1 needs.
fn build_images() -> Result<Images, String> {
    let nested = nested_dir();
    let work = target_dir().join("nested");
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    hold_nested_lock(&work)?;

    // A static vmdbg-vmm, in a target dir of its own so the flags do not
    // invalidate the workspace build.
    let static_target = work.join("static-target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run_step(
        Command::new(cargo)
            .current_dir(workspace_root())
            .env("CARGO_TARGET_DIR", &static_target)
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .args([
                "build",
                "-q",
                "--release",
                "--target",
                "x86_64-unknown-linux-gnu",
                "-p",
                "vmdbg-vmm",
                "--bin",
                "vmdbg-vmm",
            ]),
        "building a static vmdbg-vmm",
    )?;
    let vmm = static_target.join("x86_64-unknown-linux-gnu/release/vmdbg-vmm");
    let vmm_stripped = work.join("vmdbg-vmm");
    run_step(
        Command::new("strip").arg("-o").arg(&vmm_stripped).arg(&vmm),
        "strip vmdbg-vmm",
    )?;

    let helper = work.join("vsock-helper");
    run_step(
        Command::new("gcc")
            .args(["-static", "-O2", "-Wall", "-o"])
            .arg(&helper)
            .arg(nested.join("vsock-helper.c")),
        "compiling tests/nested/vsock-helper.c (needs static glibc: libc6-dev)",
    )?;

    // vmdbg itself runs in L1 as the workspace built it, with its shared
    // libraries (build-l1.sh copies what ldd lists); its default image
    // comes from this host's cache, so L1 needs no apt.
    let vmdbg = crate::vmdbg_binary();
    let built = run_step(
        crate::vmdbg().args(["image", "build"]),
        "building vmdbg's default image (vmdbg image build)",
    )?;
    let image_path = |label: &str| {
        built
            .lines()
            .find_map(|l| l.strip_prefix(label))
            .map(|p| PathBuf::from(p.trim()))
            .ok_or_else(|| format!("`vmdbg image build` printed no `{label}` line:\n{built}"))
    };
    let image_kernel = image_path("kernel:")?;
    let image_initrd = image_path("initramfs:")?;
    let image_kernel_dir = image_kernel
        .parent()
        .ok_or("the image's kernel has no directory")?
        .to_path_buf();
    // L1 boots the kernel package the image was made from: the pin, or
    // what stood in for it when the archive had dropped it.
    let image_deb = std::fs::read_to_string(image_kernel_dir.join("deb"))
        .map_err(|e| format!("{}/deb: {e}", image_kernel_dir.display()))?;
    let (package, version) = image_deb.trim().split_once(' ').ok_or_else(|| {
        format!(
            "{}/deb: expected `PACKAGE VERSION`",
            image_kernel_dir.display()
        )
    })?;
    let kernel_dir = PathBuf::from(run_step(
        Command::new("bash")
            .arg(nested.join("fetch-kernel.sh"))
            .args([package, version]),
        "fetching the Debian kernel (tests/nested/fetch-kernel.sh)",
    )?);

    // The programs the scenarios copy into L2: greeter (at /app/greeter
    // in L1) and the DAP suite's.
    let app = work.join("app");
    let _ = std::fs::remove_dir_all(&app);
    crate::build_greeter(&app)?;
    // The restore scenario's libtest binary (tests/nested/l1/restores.sh).
    run_step(
        Command::new("rustc")
            .args(["--edition", "2021", "--test", "-O", "-o"])
            .arg(app.join("restore-tests"))
            .arg(nested.join("restore-tests.rs")),
        "compiling tests/nested/restore-tests.rs",
    )?;
    let dap_programs = app.join("dap");
    run_step(
        Command::new("node")
            .arg(workspace_root().join("tests/dap/programs.js"))
            .arg(&dap_programs),
        "building the DAP tests' programs (tests/dap/programs.js)",
    )?;

    let out = work.join("images");
    let l1_initrd = PathBuf::from(run_step(
        Command::new("bash")
            .arg(nested.join("build-l1.sh"))
            .arg(&vmm_stripped)
            .arg(&vmdbg)
            .arg(&kernel_dir)
            .arg(&image_kernel_dir)
            .arg(&image_initrd)
            .arg(&helper)
            .arg(&app)
            .arg(&out),
        "building the L1/L2 images (tests/nested/build-l1.sh)",
    )?);
    Ok(Images {
        kernel: kernel_dir.join("vmlinuz"),
        initrd: l1_initrd,
        dap_programs,
    })
}

/// Takes target/nested/lock for the rest of this test process: the images
/// and programs there are rebuilt by every run (the app directory deleted
/// first), and L1 reads the programs from there while its tests run, so a
/// second `cargo test` of this checkout waits until the first is done.
fn hold_nested_lock(work: &Path) -> Result<(), String> {
    static HELD: OnceLock<std::fs::File> = OnceLock::new();
    let path = work.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if file.try_lock().is_err() {
        eprintln!(
            "nested: waiting for {} (another test run of this checkout uses the nested tier)",
            path.display()
        );
        file.lock()
            .map_err(|e| format!("lock {}: {e}", path.display()))?;
    }
    let _ = HELD.set(file);
    Ok(())
}

fn host_tsc_khz() -> u64 {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("cpu MHz"))
                .and_then(|l| l.split(':').nth(1))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .map_or(0, |mhz| (mhz * 1000.0) as u64)
}

fn boot_l1() -> Result<L1, String> {
    let images = build_images()?;
    // QEMU's monitor, to read back the host port its user network bound
    // for L1's DAP server (asked for as port 0: no port picked here can be
    // taken by someone else before QEMU binds it).
    let monitor = std::env::temp_dir().join(format!("vmdbg-nested-{}.monitor", std::process::id()));
    let _ = std::fs::remove_file(&monitor);
    let started = Instant::now();
    let qemu_binary = l0_qemu()?;
    let mut qemu = Command::new(&qemu_binary)
        .args(l0_firmware(&qemu_binary))
        .args(["-accel", "tcg", "-cpu", "qemu64,+svm,+npt"])
        .args(["-m", "2048", "-smp", "1", "-nographic", "-no-reboot"])
        .args(["-nic", "user,model=e1000,hostfwd=tcp:127.0.0.1:0-:4711"])
        .arg("-monitor")
        .arg(format!("unix:{},server=on,wait=off", monitor.display()))
        .args(host_cache_share()?)
        .arg("-kernel")
        .arg(&images.kernel)
        .arg("-initrd")
        .arg(&images.initrd)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 quiet panic=-1 tsc_early_khz={}",
            host_tsc_khz()
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", qemu_binary.display()))?;
    let watchdog = Command::new("sh")
        .arg("-c")
        .arg("read _ignored; kill -9 \"$0\" 2>/dev/null")
        .arg(qemu.id().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the QEMU watchdog: {e}"))?;
    let stdin = qemu.stdin.take().expect("piped stdin");
    let stdout = qemu.stdout.take().expect("piped stdout");
    let output = Arc::new(Mutex::new(String::new()));
    let sink = output.clone();
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(stdout);
        let mut line = Vec::new();
        while let Ok(n @ 1..) = reader.read_until(b'\n', &mut line) {
            let text = String::from_utf8_lossy(&line[..n]).replace('\r', "");
            if std::env::var("VMDBG_NESTED_VERBOSE").is_ok() {
                eprint!("L1> {text}");
            }
            sink.lock().unwrap().push_str(&text);
            line.clear();
        }
    });
    let mut l1 = L1 {
        qemu,
        stdin,
        output,
        next_id: 0,
        _watchdog: watchdog,
        boot_time: Duration::ZERO,
        dap_port: 0,
        dap_programs: images.dap_programs,
    };
    let deadline = Instant::now() + L1_BOOT_LIMIT;
    loop {
        let seen = l1.output.lock().unwrap().clone();
        if seen.contains("@@L1-READY kvm") {
            break;
        }
        if seen.contains("@@L1-READY no-kvm") {
            return Err(format!(
                "L1 booted but has no /dev/kvm (kvm-amd did not load on QEMU's emulated SVM):\n{seen}"
            ));
        }
        if let Ok(Some(status)) = l1.qemu.try_wait() {
            return Err(format!("L1's QEMU ended ({status}) during boot:\n{seen}"));
        }
        if Instant::now() > deadline {
            return Err(format!("L1 did not boot within {L1_BOOT_LIMIT:?}:\n{seen}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    l1.boot_time = started.elapsed();
    eprintln!("nested: L1 ready in {:.1} s", l1.boot_time.as_secs_f64());
    l1.dap_port = forwarded_port(&monitor, 4711)?;
    let _ = std::fs::remove_file(&monitor);
    Ok(l1)
}

/// The host port QEMU's user network forwards to `guest_port`, from the
/// monitor's `info usernet` (a `TCP[HOST_FORWARD]` row: fd, source address
/// and port, destination address and port, queues).
fn forwarded_port(monitor: &Path, guest_port: u16) -> Result<u16, String> {
    use std::io::Read;
    let mut sock = std::os::unix::net::UnixStream::connect(monitor)
        .map_err(|e| format!("QEMU's monitor {}: {e}", monitor.display()))?;
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    sock.write_all(b"info usernet\n")
        .map_err(|e| format!("QEMU's monitor: {e}"))?;
    // The banner's prompt, then the answer and the next prompt.
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while seen.matches("(qemu) ").count() < 2 {
        let n = sock
            .read(&mut buf)
            .map_err(|e| format!("QEMU's monitor: {e} after:\n{seen}"))?;
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    seen.lines()
        .filter(|l| l.trim_start().starts_with("TCP[HOST_FORWARD]"))
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(5)?.parse::<u16>().ok()? == guest_port).then(|| f.get(3)?.parse().ok())?
        })
        .ok_or_else(|| format!("no host port forwarded to {guest_port} in `info usernet`:\n{seen}"))
}

/// The L1 of this test binary, booted on first use. Returns None (after
/// printing SKIPPED) when the tier is unavailable outside CI; panics under
/// CI. A failed build or boot fails every test that asks, with the reason.
pub fn session(test: &str) -> Option<MutexGuard<'static, L1>> {
    if !crate::require(available(), test) {
        return None;
    }
    static L1_VM: OnceLock<Result<Mutex<L1>, String>> = OnceLock::new();
    match L1_VM.get_or_init(|| boot_l1().map(Mutex::new)) {
        Ok(m) => Some(m.lock().unwrap_or_else(|p| p.into_inner())),
        Err(why) => panic!("{test}: the nested tier could not start: {why}"),
    }
}

/// QEMU's arguments that share the tests' vmdbg cache on the host with L1,
/// read-only over 9p (tag `vmdbg-cache`): the default kernel's DWARF,
/// module debug files and sources, 2.2 GB that L1's RAM root cannot hold.
/// L1 mounts it when a test asks ([`share_kernel_debug`]).
fn host_cache_share() -> Result<[String; 2], String> {
    let cache = crate::test_cache_home().join("vmdbg");
    std::fs::create_dir_all(&cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    Ok([
        "-virtfs".into(),
        format!(
            "local,path={},mount_tag=vmdbg-cache,security_model=none,readonly=on",
            cache.display()
        ),
    ])
}

/// While alive, the `vmdbg dap` servers L1 starts use the host's vmdbg
/// cache at the host's path (tests/nested/l1/share-kernel-debug.sh), so a
/// kernel session finds the default kernel's DWARF and sources that `vmdbg
/// image symbols` fetched on the host and reports the host's source paths.
pub struct KernelDebugShare<'a> {
    pub l1: &'a mut L1,
}

/// Gives L1's DAP servers the host's kernel debug cache (see
/// [`KernelDebugShare`]); fetches it on the host first if need be.
pub fn share_kernel_debug(l1: &mut L1) -> Result<KernelDebugShare<'_>, String> {
    run_step(
        crate::vmdbg().args(["image", "symbols"]),
        "fetching the default kernel's DWARF and sources (vmdbg image symbols)",
    )?;
    let home = crate::test_cache_home();
    let out = l1.run(
        &format!("share-kernel-debug.sh '{}'", home.display()),
        Duration::from_secs(120),
    );
    if out.status != 0 {
        return Err(format!(
            "L1 could not mount the host's cache (share-kernel-debug.sh):\n{}",
            out.output
        ));
    }
    Ok(KernelDebugShare { l1 })
}

impl Drop for KernelDebugShare<'_> {
    fn drop(&mut self) {
        // Not while a failed test unwinds (a hung L1 would panic again
        // here); the servers then keep the host's cache, which serves them
        // as well.
        if !std::thread::panicking() {
            self.l1.run("rm -f /tmp/dap.env", Duration::from_secs(60));
        }
    }
}

/// Every L2 scenario gets this long (TCG is slow, and a loaded host more so).
pub const SCENARIO_LIMIT: Duration = Duration::from_secs(300);

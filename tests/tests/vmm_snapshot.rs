//! Snapshots on the host tier: vmdbg-vmm's control API (Firecracker's
//! shape) pauses, snapshots, restores and resets a running bare-metal guest
//! (`snapshot.elf`: timer interrupts, a deterministic computation over its
//! memory printed as `n=<step> hash=<hash> ticks=<ticks>`).
//!
//! A restored run must print exactly the lines an untouched run prints for
//! the same steps, continuing from the step the snapshot was taken at, with
//! its timer still ticking; bad snapshot files are refused with one line.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use vmdbg_e2e::*;

const LIMIT: Duration = Duration::from_secs(120);
/// snapshot.elf's last step, and its exit status ((0x11 << 1) | 1).
const STEPS: u64 = 300;
const GUEST_STATUS: i32 = 35;

/// One line of snapshot.elf's output.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Step {
    n: u64,
    hash: String,
    ticks: u64,
}

fn parse_steps(out: &str) -> Vec<Step> {
    out.lines()
        .map(|line| {
            let field = |name: &str| {
                line.split(' ')
                    .find_map(|f| f.strip_prefix(name))
                    .unwrap_or_else(|| panic!("no {name} in line `{line}` of:\n{out}"))
                    .to_string()
            };
            Step {
                n: field("n=").parse().unwrap(),
                hash: field("hash="),
                ticks: field("ticks=").parse().unwrap(),
            }
        })
        .collect()
}

/// n -> hash of an untouched run: the reference every restored run meets.
fn reference() -> &'static HashMap<u64, String> {
    static REF: OnceLock<HashMap<u64, String>> = OnceLock::new();
    REF.get_or_init(|| {
        let mut cmd = vmm();
        cmd.arg("--kernel").arg(kernel("snapshot.elf"));
        let out = run(cmd, "vmdbg-vmm", LIMIT);
        assert_eq!(
            out.status.code(),
            Some(GUEST_STATUS),
            "{}",
            text(&out.stderr)
        );
        let steps = parse_steps(&text(&out.stdout));
        assert_eq!(steps.len() as u64, STEPS);
        steps.into_iter().map(|s| (s.n, s.hash)).collect()
    })
}

/// Checks that `before` (output up to a snapshot) followed by `after`
/// (output of a run from that snapshot) is one whole run: steps 1..=STEPS
/// in order with the reference's hashes, the timer ticking on every step
/// after the snapshot. Returns the step the snapshot was taken after.
fn assert_continues(before: &str, after: &str, what: &str) -> u64 {
    assert_continues_to(before, after, what, Some(STEPS))
}

/// Whole lines of `out` (a paused VM may have stopped mid-line).
fn whole_lines(out: &str) -> &str {
    out.rsplit_once('\n').map_or("", |(whole, _)| whole)
}

/// As [`assert_continues`], up to step `last` (`None`: wherever `after`
/// got to).
fn assert_continues_to(before: &str, after: &str, what: &str, last: Option<u64>) -> u64 {
    let reference = reference();
    let at = parse_steps(whole_lines(before)).last().map_or(0, |s| s.n);
    let joined = format!("{before}{after}");
    let all = parse_steps(if last.is_some() {
        &joined
    } else {
        whole_lines(&joined)
    });
    let ns: Vec<u64> = all.iter().map(|s| s.n).collect();
    let last = last.unwrap_or(ns.last().copied().unwrap_or(0));
    assert_eq!(
        ns,
        (1..=last).collect::<Vec<_>>(),
        "{what}: steps are not one run:\n{before}<<snapshot>>{after}"
    );
    for s in &all {
        assert_eq!(
            &s.hash, &reference[&s.n],
            "{what}: step {} hashes its memory differently from an untouched run",
            s.n
        );
    }
    for pair in all.windows(2).skip(at.saturating_sub(1) as usize) {
        assert!(
            pair[1].ticks > pair[0].ticks,
            "{what}: no timer interrupt between steps {} and {} after the restore",
            pair[0].n,
            pair[1].n
        );
    }
    at
}

/// A minimal HTTP/1.1 client over the API's unix socket.
struct Api {
    stream: UnixStream,
}

impl Api {
    fn connect(sock: &Path) -> Self {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match UnixStream::connect(sock) {
                Ok(stream) => return Self { stream },
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "API socket {}: {e}",
                    sock.display()
                ),
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends one request on the kept-alive connection; returns the status
    /// and body.
    fn call(&mut self, method: &str, path: &str, body: &str) -> (u16, String) {
        write!(
            self.stream,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        read_response(&mut self.stream)
    }

    fn ok(&mut self, method: &str, path: &str, body: &str) {
        let (status, reply) = self.call(method, path, body);
        assert_eq!(status, 204, "{method} {path} {body}: {reply}");
    }

    fn pause(&mut self) {
        self.ok("PATCH", "/vm", r#"{"state": "Paused"}"#);
    }

    fn resume(&mut self) {
        self.ok("PATCH", "/vm", r#"{"state": "Resumed"}"#);
    }
}

fn read_response(stream: &mut UnixStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "connection closed");
        buf.push(byte[0]);
    }
    let head = text(&buf);
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).unwrap();
    (status, text(&body))
}

/// A vmdbg-vmm with its serial port in a file and the API on a socket.
struct Vmm {
    guard: ChildGuard,
    serial: PathBuf,
    sock: PathBuf,
}

impl Vmm {
    fn start(dir: &Path, name: &str, args: &[&str]) -> Self {
        let serial = dir.join(format!("{name}.serial"));
        let sock = dir.join(format!("{name}.sock"));
        let mut cmd = vmm();
        cmd.current_dir(dir)
            .args(args)
            .arg("--serial")
            .arg(format!("file:{}", serial.display()))
            .arg("--api")
            .arg(format!("unix:{}", sock.display()));
        Self {
            guard: ChildGuard::spawn(cmd, name),
            serial,
            sock,
        }
    }

    fn boot(dir: &Path, name: &str) -> Self {
        let k = kernel("snapshot.elf");
        Self::start(dir, name, &["--kernel", k.to_str().unwrap()])
    }

    fn api(&self) -> Api {
        Api::connect(&self.sock)
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.serial).unwrap_or_default()
    }

    /// Waits until the guest has printed `steps` more lines (a liveness
    /// limit, not a timing check).
    fn wait_steps(&mut self, steps: usize) {
        let from = self.output().lines().count();
        let deadline = Instant::now() + LIMIT;
        while self.output().lines().count() < from + steps {
            if let Ok(Some(status)) = self.guard.child.try_wait() {
                panic!("{} ended ({status}):\n{}", self.guard.name, self.output());
            }
            assert!(Instant::now() < deadline, "the guest stopped printing");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the VM to end with snapshot.elf's status; returns its
    /// serial output.
    fn finish(self) -> String {
        let serial = self.output();
        let out = self.guard.wait_output(LIMIT);
        assert_eq!(
            out.status.code(),
            Some(GUEST_STATUS),
            "stderr: {}",
            text(&out.stderr)
        );
        // The file is complete once the process is gone.
        std::fs::read_to_string(&self.serial).unwrap_or(serial)
    }

    fn pid(&self) -> u32 {
        self.guard.child.id()
    }
}

/// Boots snapshot.elf, lets it run a while and snapshots it through the
/// API into `dir/vm.snap` + `dir/vm.mem`. Returns the VM (paused) and its
/// output up to the snapshot.
fn boot_and_snapshot(dir: &Path, name: &str) -> (Vmm, Api, String) {
    boot_and_snapshot_with(dir, name, &[], 20)
}

/// [`boot_and_snapshot`] with more vmdbg-vmm arguments, after `steps`.
fn boot_and_snapshot_with(
    dir: &Path,
    name: &str,
    extra: &[&str],
    steps: usize,
) -> (Vmm, Api, String) {
    let k = kernel("snapshot.elf");
    let mut args = vec!["--kernel", k.to_str().unwrap()];
    args.extend(extra);
    let mut vm = Vmm::start(dir, name, &args);
    vm.wait_steps(steps);
    let mut api = vm.api();
    api.pause();
    let before = vm.output();
    api.ok(
        "PUT",
        "/snapshot/create",
        r#"{"snapshot_path": "vm.snap", "mem_file_path": "vm.mem"}"#,
    );
    (vm, api, before)
}

/// `vmdbg-vmm --restore vm.snap --mem-file vm.mem` in `dir` to the guest's
/// exit; its serial output.
fn restore_from_files(dir: &Path, name: &str) -> String {
    let serial = dir.join(format!("{name}.serial"));
    let mut cmd = vmm();
    cmd.current_dir(dir)
        .args(["--restore", "vm.snap", "--mem-file", "vm.mem", "--serial"])
        .arg(format!("file:{}", serial.display()));
    let out = run(cmd, "vmdbg-vmm --restore", LIMIT);
    assert_eq!(
        out.status.code(),
        Some(GUEST_STATUS),
        "{}",
        text(&out.stderr)
    );
    std::fs::read_to_string(&serial).unwrap()
}

fn test_ready(test: &str) -> Option<PathBuf> {
    if !require(kvm(), test) {
        return None;
    }
    Some(scratch_dir(test))
}

#[test]
fn restored_run_continues_from_the_snapshot_in_a_new_process() {
    let Some(dir) = test_ready("snapshot_new_process") else {
        return;
    };
    let (vm, mut api, before) = boot_and_snapshot(&dir, "a");
    api.resume();
    let a = vm.finish();
    let at = assert_continues(&before, &a[before.len()..], "the snapshotted VM running on");
    assert!((10..STEPS).contains(&at), "snapshot after step {at}");

    // --restore: a new process from the files.
    let b = restore_from_files(&dir, "b");
    assert_eq!(assert_continues(&before, &b, "--restore"), at);

    // An empty VMM (--api only) loading it through the API.
    let vm = Vmm::start(&dir, "c", &[]);
    let mut api = vm.api();
    assert!(api
        .call("GET", "/", "")
        .1
        .contains(r#""state":"Not started""#));
    api.ok(
        "PUT",
        "/snapshot/load",
        r#"{"snapshot_path": "vm.snap", "mem_backend": {"backend_type": "File", "backend_path": "vm.mem"}, "resume_vm": true}"#,
    );
    let c = vm.finish();
    assert_eq!(assert_continues(&before, &c, "PUT /snapshot/load"), at);
}

#[test]
fn reset_goes_back_to_the_snapshot_in_place() {
    let Some(dir) = test_ready("snapshot_reset") else {
        return;
    };
    let (mut vm, mut api, before) = boot_and_snapshot(&dir, "a");
    let mut cut = before.len();
    for round in 0..3 {
        api.resume();
        vm.wait_steps(10 + round);
        api.pause();
        let out = vm.output();
        let reached = assert_continues_to(&before, &out[cut..], "before a reset", None);
        let _ = reached;
        cut = out.len();
        api.ok("PUT", "/vmdbg/reset", "");
    }
    api.resume();
    let out = vm.finish();
    assert_continues(&before, &out[cut..], "after resets");
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Connects to a gdb stub's unix socket, retrying until it listens (a
/// liveness limit, not a timing check).
fn connect_gdb(sock: &Path) -> vmdbg_e2e::rsp::RawRsp<UnixStream> {
    let deadline = Instant::now() + LIMIT;
    loop {
        match UnixStream::connect(sock) {
            Ok(stream) => {
                stream.set_read_timeout(Some(LIMIT)).unwrap();
                return vmdbg_e2e::rsp::RawRsp(stream);
            }
            Err(e) => assert!(Instant::now() < deadline, "{}: {e}", sock.display()),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reads the stub's side of the connection to its end: the session is
/// over, and the VMM serves the API on its own again.
fn wait_closed(gdb: &mut vmdbg_e2e::rsp::RawRsp<UnixStream>) {
    let mut rest = Vec::new();
    let _ = gdb.0.read_to_end(&mut rest);
}

/// Samples every 100 rounds: (round, VmRSS KiB, open descriptors).
type Series = Vec<(u32, u64, usize)>;

/// Memory may settle in the first hundred rounds; after that it may not
/// grow by more than this, and the descriptor count may not change.
const SLACK_KIB: u64 = 2048;

fn assert_flat(series: &Series, what: &str) {
    eprintln!("{what}: round, VmRSS KiB, open fds: {series:?}");
    let (_, rss0, fds0) = series[0];
    for &(round, rss, fds) in series {
        assert_eq!(
            fds, fds0,
            "{what}: {fds0} descriptors open at round {}, {fds} at {round}: {series:?}",
            series[0].0
        );
        assert!(
            rss <= rss0 + SLACK_KIB,
            "{what}: VmRSS grew from {rss0} KiB to {rss} KiB by round {round}: {series:?}"
        );
    }
}

/// Issue 28's soak: 1,000 in-place resets of a running guest, gdb
/// attaching (the VM stops), asking why and detaching (it runs on)
/// between each two; the VMM's memory and descriptors stay flat, and the
/// guest still runs on from the snapshot exactly.
#[test]
fn a_thousand_resets_with_gdb_coming_and_going_keep_memory_and_descriptors_flat() {
    let Some(dir) = test_ready("snapshot_reset_soak") else {
        return;
    };
    let gdb_sock = dir.join("gdb.sock");
    let gdb_arg = format!("unix:{}", gdb_sock.display());
    let (vm, mut api, before) = boot_and_snapshot_with(&dir, "a", &["--gdb", &gdb_arg], 20);
    drop(vm.output());
    // Resets while the guest runs: each drops what it wrote since.
    api.resume();
    let mut series = Series::new();
    for round in 1..=1000 {
        api.ok("PUT", "/vmdbg/reset", "");
        let mut gdb = connect_gdb(&gdb_sock);
        let why = gdb.ask("?");
        assert!(
            why.starts_with('T') || why.starts_with('S'),
            "round {round}: `?` answered {why}"
        );
        assert_eq!(gdb.ask("D"), "OK", "round {round}: detach");
        wait_closed(&mut gdb);
        if round % 100 == 0 {
            series.push((round, vm_rss_kib(vm.pid()), open_fds(vm.pid())));
        }
    }
    assert_flat(
        &series,
        "1,000 in-place resets with gdb attached and detached",
    );
    api.pause();
    let cut = vm.output().len();
    api.ok("PUT", "/vmdbg/reset", "");
    api.resume();
    let out = vm.finish();
    assert_continues(&before, &out[cut..], "after 1001 resets");
}

/// Issue 28's soak: 1,000 new vmdbg-vmm processes restored from one
/// snapshot, each waiting for gdb, attached, checked and killed from gdb.
/// Every restored VMM starts the same (memory, descriptors), and nothing
/// is left behind: no process, no file in the directory.
#[test]
fn a_thousand_new_process_restores_with_gdb_leave_nothing_behind() {
    let Some(dir) = test_ready("snapshot_restore_soak") else {
        return;
    };
    let (vm, _api, _) = boot_and_snapshot_with(&dir, "a", &["--mem", "16M"], 20);
    drop(vm);
    let listing = || {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let files_before = listing();
    let gdb_sock = dir.join("restored-gdb.sock");
    let mut series = Series::new();
    for round in 1..=1000 {
        let mut cmd = vmm();
        cmd.current_dir(&dir)
            .args([
                "--restore",
                "vm.snap",
                "--mem-file",
                "vm.mem",
                "--serial",
                "none",
            ])
            .arg("--gdb")
            .arg(format!("unix:{}", gdb_sock.display()))
            .arg("--wait-gdb");
        let guard = ChildGuard::spawn(cmd, "vmdbg-vmm --restore");
        let mut gdb = connect_gdb(&gdb_sock);
        let why = gdb.ask("?");
        assert!(
            why.starts_with('T') || why.starts_with('S'),
            "round {round}: `?` answered {why}"
        );
        if round == 1 || round % 100 == 0 {
            let pid = guard.child.id();
            series.push((round, vm_rss_kib(pid), open_fds(pid)));
        }
        gdb.send("k");
        wait_closed(&mut gdb);
        let out = guard.wait_output(LIMIT);
        assert!(
            out.status.code().is_some(),
            "round {round}: {}",
            text(&out.stderr)
        );
    }
    // Round 1 is a cold start (the files not yet in the page cache).
    series.remove(0);
    assert_flat(&series, "1,000 new-process restores with gdb");
    assert!(
        processes_matching("restored-gdb.sock").is_empty(),
        "a restored vmdbg-vmm outlived its gdb kill"
    );
    let mut files_after = listing();
    files_after.retain(|f| f != "restored-gdb.sock");
    assert_eq!(
        files_after,
        files_before,
        "files left behind in {}",
        dir.display()
    );
}

fn curl(sock: &Path, method: &str, path: &str, body: Option<&str>) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--unix-socket"])
        .arg(sock)
        .args(["-w", "%{http_code}", "-X", method])
        .arg(format!("http://localhost{path}"))
        .args([
            "-H",
            "Accept: application/json",
            "-H",
            "Content-Type: application/json",
        ]);
    if let Some(b) = body {
        cmd.args(["-d", b]);
    }
    let out = run(cmd, "curl", LIMIT);
    assert!(out.status.success(), "curl: {}", text(&out.stderr));
    text(&out.stdout)
}

/// The commands of Firecracker's docs/snapshotting/snapshot-support.md,
/// with curl, against vmdbg-vmm.
#[test]
fn curl_drives_pause_snapshot_load_and_resume_as_firecrackers_docs_show() {
    if !require(all([kvm(), tool("curl")]), "snapshot_curl") {
        return;
    }
    let dir = scratch_dir("snapshot_curl");
    let mut a = Vmm::boot(&dir, "a");
    a.wait_steps(20);
    let sock = a.sock.clone();
    assert_eq!(
        curl(&sock, "PATCH", "/vm", Some(r#"{"state": "Paused"}"#)),
        "204"
    );
    assert!(curl(&sock, "GET", "/", None).contains(r#""state":"Paused""#));
    let before = a.output();
    assert_eq!(
        curl(
            &sock,
            "PUT",
            "/snapshot/create",
            Some(
                r#"{"snapshot_type": "Full", "snapshot_path": "./snapshot_file", "mem_file_path": "./mem_file"}"#
            )
        ),
        "204"
    );
    drop(a);

    let b = Vmm::start(&dir, "b", &[]);
    let _ = b.api();
    assert_eq!(
        curl(
            &b.sock,
            "PUT",
            "/snapshot/load",
            Some(
                r#"{"snapshot_path": "./snapshot_file", "mem_backend": {"backend_path": "./mem_file", "backend_type": "File"}, "enable_diff_snapshots": true, "resume_vm": false}"#
            )
        ),
        "204"
    );
    assert!(curl(&b.sock, "GET", "/", None).contains(r#""state":"Paused""#));
    assert_eq!(
        curl(&b.sock, "PATCH", "/vm", Some(r#"{"state": "Resumed"}"#)),
        "204"
    );
    let out = b.finish();
    assert_continues(&before, &out, "curl load + resume");
}

#[test]
fn gdb_on_a_restored_vm_sees_the_same_registers_and_breakpoints() {
    if !require(all([kvm(), tool("gdb"), tool("curl")]), "snapshot_gdb") {
        return;
    }
    let dir = scratch_dir("snapshot_gdb");
    let elf = kernel("snapshot.elf");
    let mut a = Vmm::start(
        &dir,
        "a",
        &["--kernel", elf.to_str().unwrap(), "--gdb", "127.0.0.1:0"],
    );
    let port = gdb_port_said(
        &mut a.guard,
        "gdb can attach with: target remote 127.0.0.1:",
    );
    let _ = a.api();
    const SHOW: &str = "echo REGS\\n\ninfo registers rip rsp rdi rsi eflags cr3\necho END\\n\n";
    let script = format!(
        "set pagination off\nset confirm off\ntarget remote 127.0.0.1:{port}\nhbreak report\ncontinue\ncontinue\n{SHOW}shell curl -sS --unix-socket {} -X PUT http://localhost/snapshot/create -d '{{\"snapshot_path\": \"vm.snap\", \"mem_file_path\": \"vm.mem\"}}' -w 'created:%{{http_code}}\\n'\nkill\n",
        a.sock.display()
    );
    let first = gdb_batch(&elf, &script, LIMIT);
    let first_out = text(&first.stdout);
    assert!(
        first_out.contains("created:204"),
        "{first_out}{}",
        text(&first.stderr)
    );
    let regs = |out: &str| -> String {
        out.split("REGS\n")
            .nth(1)
            .and_then(|r| r.split("END\n").next())
            .unwrap_or_else(|| panic!("no registers in:\n{out}"))
            .to_string()
    };
    let at_snapshot = regs(&first_out);
    drop(a);

    let mut cmd = vmm();
    cmd.current_dir(&dir).args([
        "--restore",
        "vm.snap",
        "--mem-file",
        "vm.mem",
        "--serial",
        "none",
    ]);
    let (_b, port) = vmm_gdb_on_any_port(cmd);
    let script = format!(
        "set pagination off\nset confirm off\ntarget remote 127.0.0.1:{port}\n{SHOW}hbreak report\ncontinue\nprint/d $rdi\nkill\n"
    );
    let second = gdb_batch(&elf, &script, LIMIT);
    let second_out = text(&second.stdout);
    assert_eq!(
        regs(&second_out),
        at_snapshot,
        "registers after the restore differ:\n{second_out}"
    );
    // The snapshot stopped in report(n); the breakpoint hits step n + 1.
    let n: u64 = at_snapshot
        .lines()
        .find_map(|l| l.strip_prefix("rdi"))
        .and_then(|v| v.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no rdi in {at_snapshot}"));
    assert!(
        second_out.contains(&format!("Breakpoint 1, report (n={}", n + 1))
            && second_out.contains(&format!("$1 = {}", n + 1)),
        "{second_out}{}",
        text(&second.stderr)
    );
}

fn sha(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// Runs `vmdbg-vmm --restore state --mem-file mem` expecting a refusal:
/// status 2, one line on stderr that names `named` and says `why`.
fn assert_refused(dir: &Path, state: &str, mem: &str, named: &str, why: &str) {
    let before: Vec<_> = [state, mem].iter().map(|f| sha(&dir.join(f))).collect();
    let mut cmd = vmm();
    cmd.current_dir(dir)
        .args(["--restore", state, "--mem-file", mem, "--serial", "none"]);
    let out = run(cmd, "vmdbg-vmm --restore", LIMIT);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{state}/{mem}: {err}");
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(err.contains(named) && err.contains(why), "{err}");
    let after: Vec<_> = [state, mem].iter().map(|f| sha(&dir.join(f))).collect();
    assert!(before == after, "{state} or {mem} changed");
}

#[test]
fn bad_snapshots_are_refused_with_one_line_and_nothing_is_overwritten() {
    let Some(dir) = test_ready("snapshot_bad") else {
        return;
    };
    let (vm, _api, _) = boot_and_snapshot(&dir, "a");
    drop(vm);
    let good = std::fs::read(dir.join("vm.snap")).unwrap();

    std::fs::write(dir.join("truncated.snap"), &good[..good.len() / 2]).unwrap();
    assert_refused(
        &dir,
        "truncated.snap",
        "vm.mem",
        "truncated.snap",
        "truncated",
    );

    let mut flipped = good.clone();
    let i = good.len() - 100;
    flipped[i] ^= 0x20;
    std::fs::write(dir.join("flipped.snap"), &flipped).unwrap();
    assert_refused(
        &dir,
        "flipped.snap",
        "vm.mem",
        "flipped.snap",
        "checksum mismatch",
    );

    // Crafted states with a right checksum: a machine of a million vCPUs,
    // memory of 2^60 bytes, vCPU states that do not match the machine.
    // Each is refused in one line before anything of its size is made.
    let state: serde_json::Value = serde_json::from_slice(&good[32..]).unwrap();
    let crafted = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let mut s = state.clone();
        edit(&mut s);
        let path = format!("{name}.snap");
        std::fs::write(
            dir.join(&path),
            vmdbg_e2e::reframed(&good, &serde_json::to_vec(&s).unwrap()),
        )
        .unwrap();
        path
    };
    let cpus = crafted("cpus", &|s| s["shape"]["vcpus"] = 1_000_000.into());
    assert_refused(&dir, &cpus, "vm.mem", &cpus, "a machine of 1000000 vCPUs");
    let huge = crafted("huge", &|s| s["shape"]["mem_bytes"] = (1u64 << 60).into());
    assert_refused(&dir, &huge, "vm.mem", "vm.mem", "but the snapshot's VM has");
    let no_vcpus = crafted("novcpus", &|s| s["vcpus"] = serde_json::json!([]));
    assert_refused(
        &dir,
        &no_vcpus,
        "vm.mem",
        &no_vcpus,
        "0 vCPU states for a machine of 1",
    );
    let devices = crafted("devices", &|s| {
        let disk = serde_json::json!({"Block": {"path": "disk.img", "read_only": true}});
        s["shape"]["devices"].as_array_mut().unwrap().push(disk);
    });
    assert_refused(
        &dir,
        &devices,
        "vm.mem",
        &devices,
        "0 virtio device states for a machine of 1 virtio devices",
    );

    // A VM with other memory: its memory file does not fit this state, and
    // its state does not fit a running VM of 128 MiB.
    let small = dir.join("small");
    std::fs::create_dir_all(&small).unwrap();
    let (vm, _api, _) = boot_and_snapshot_with(&small, "s", &["--mem", "64M"], 2);
    drop(vm);
    std::fs::copy(small.join("vm.mem"), dir.join("small.mem")).unwrap();
    std::fs::copy(small.join("vm.snap"), dir.join("small.snap")).unwrap();
    assert_refused(
        &dir,
        "vm.snap",
        "small.mem",
        "small.mem",
        "but the snapshot's VM has",
    );

    let mut vm = Vmm::boot(&dir, "b");
    let mut api = vm.api();
    vm.wait_steps(1);
    api.pause();
    let (status, reply) = api.call(
        "PUT",
        "/snapshot/load",
        r#"{"snapshot_path": "small.snap", "mem_backend": {"backend_type": "File", "backend_path": "small.mem"}}"#,
    );
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply.contains("small.snap") && reply.contains("another shape"),
        "{reply}"
    );
    // The API took garbage without harm, and the VM runs on unchanged.
    let mut raw = UnixStream::connect(&vm.sock).unwrap();
    raw.write_all(b"\x00\x01garbage\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut raw).0, 400);
    let (status, reply) = api.call("PUT", "/snapshot/create", "{not json");
    assert_eq!(status, 400, "{reply}");
    assert!(reply.contains("fault_message"), "{reply}");
    let before = vm.output();
    api.resume();
    let out = vm.finish();
    let all = parse_steps(&out);
    assert_eq!(all.len() as u64, STEPS, "{before}");
    for s in &all {
        assert_eq!(&s.hash, &reference()[&s.n]);
    }
    assert_eq!(std::fs::read(dir.join("vm.snap")).unwrap(), good);
}

/// VMs with a virtio-blk disk and with vsock are snapshotted (their
/// transports and queues with them) and restored.
#[test]
fn vms_with_virtio_block_and_vsock_are_snapshotted_and_restored() {
    let Some(dir) = test_ready("snapshot_virtio") else {
        return;
    };
    let disk = dir.join("disk.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let (vm, _api, before) =
        boot_and_snapshot_with(&dir, "a", &["--disk", disk.to_str().unwrap()], 5);
    drop(vm);
    let out = restore_from_files(&dir, "b");
    assert_continues(&before, &out, "with a disk");

    // vsock's host connections do not survive (the guest is told with a
    // transport reset); the VM does.
    let sub = dir.join("vsock");
    std::fs::create_dir_all(&sub).unwrap();
    let uds = sub.join("vm.vsock");
    let (vm, _api, before) =
        boot_and_snapshot_with(&sub, "c", &["--vsock-uds", uds.to_str().unwrap()], 2);
    drop(vm);
    let out = restore_from_files(&sub, "d");
    assert_continues(&before, &out, "with vsock");
}

//! vmdbg-vmm's sandbox on the host tier: every thread of a running VMM
//! (kernel, gdb attached, control API used, virtio devices, serial input,
//! a recordable VM's live ticker) runs under a seccomp filter
//! (`/proc/<pid>/task/*/status` says `Seccomp: 2`); a thread that makes a
//! forbidden system call (the `VMDBG_VMM_TEST_FORBIDDEN_SYSCALL` hook makes
//! it call mount(2)) ends the process with a message naming the call;
//! `--no-seccomp` runs unfiltered, loudly.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use vmdbg_e2e::*;

const LIMIT: Duration = Duration::from_secs(60);
/// spin.elf's status once released: (0x15 << 1) | 1.
const RELEASED_STATUS: i32 = 43;
/// vmdbg-vmm's status when a seccomp filter stopped a call.
const SECCOMP_STATUS: i32 = 18;
const GDB_SAID: &str = "gdb can attach with: target remote 127.0.0.1:";

/// The two machines that between them have a thread of every kind
/// (recording takes no virtio devices).
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// A virtio-vsock device (its poller thread) and a virtio-blk disk.
    Devices,
    /// A recordable VM: its clock's live-ticker thread.
    Recordable,
}

impl Shape {
    /// The threads a VM of this shape runs, as /proc/<pid>/task/*/comm
    /// names them.
    fn threads(self) -> &'static [&'static str] {
        match self {
            Shape::Devices => &["vmdbg-vmm", "vcpu0", "serial-input", "virtio-vsock"],
            Shape::Recordable => &["vmdbg-vmm", "vcpu0", "serial-input", "live-ticker"],
        }
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// spin.elf with its API, gdb stub and serial input on a unix socket the
/// test connects to, and the threads of `shape`.
fn vmm_command(dir: &Path, shape: Shape) -> Command {
    let mut cmd = vmm();
    cmd.arg("--kernel")
        .arg(kernel("spin.elf"))
        .arg("--api")
        .arg(format!("unix:{}", dir.join("api.sock").display()))
        .arg("--serial")
        .arg(format!("unix:{}", dir.join("serial.sock").display()))
        .args(["--gdb", "127.0.0.1:0"]);
    match shape {
        Shape::Devices => {
            let disk = dir.join("disk.img");
            std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
            cmd.arg("--vsock-uds")
                .arg(dir.join("vsock.sock"))
                .arg("--disk")
                .arg(&disk);
        }
        Shape::Recordable => {
            cmd.arg("--recordable");
        }
    }
    cmd
}

/// Starts `cmd` and connects to its serial socket (the VMM waits for that
/// client before it builds the rest of the machine).
fn start(cmd: Command, dir: &Path) -> (ChildGuard, UnixStream) {
    let mut guard = ChildGuard::spawn(cmd, "vmdbg-vmm");
    let serial = dir.join("serial.sock");
    let mut stream = None;
    wait_until("the serial socket", || {
        if let Ok(Some(status)) = guard.child.try_wait() {
            panic!(
                "vmdbg-vmm ended ({status}) before listening on its serial socket:\n{}",
                guard.stderr_text()
            );
        }
        stream = UnixStream::connect(&serial).ok();
        stream.is_some()
    });
    (guard, stream.unwrap())
}

/// One HTTP/1.1 request on the control API; the status line and body.
fn api(sock: &Path, method: &str, path: &str, body: &str) -> String {
    let mut s = UnixStream::connect(sock).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply
}

fn expect_2xx(reply: String, what: &str) {
    assert!(
        reply.starts_with("HTTP/1.1 2"),
        "{what}: the API answered:\n{reply}"
    );
}

/// (thread name, its `Seccomp:` value) for every thread of `pid`.
fn seccomp_modes(pid: u32) -> Vec<(String, String)> {
    let mut modes = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("no {name} in:\n{status}"))
        };
        modes.push((field("Name:"), field("Seccomp:")));
    }
    modes.sort();
    modes
}

fn assert_every_kind_present(modes: &[(String, String)], shape: Shape) {
    for name in shape.threads() {
        assert!(
            modes.iter().any(|(n, _)| n == name),
            "no thread {name} in {modes:?}: the test did not reach every kind of thread"
        );
    }
}

#[test]
fn every_thread_of_a_debugged_vm_runs_under_a_seccomp_filter() {
    if !require(all([kvm(), tool("gdb")]), "vmm_sandbox filters") {
        return;
    }
    every_thread_filtered(Shape::Devices);
    every_thread_filtered(Shape::Recordable);
}

/// A VM of `shape` used through the API, the serial socket, vsock and gdb;
/// every thread's status read while gdb is attached.
fn every_thread_filtered(shape: Shape) {
    let dir = scratch_dir(&format!("vmm-sandbox-modes-{shape:?}"));
    let (mut guard, mut serial) = start(vmm_command(&dir, shape), &dir);
    let port = gdb_port_said(&mut guard, GDB_SAID);
    serial.write_all(b"typed\n").unwrap();
    let sock = dir.join("api.sock");
    assert!(api(&sock, "GET", "/", "").contains("\"state\":\"Running\""));
    expect_2xx(
        api(&sock, "PATCH", "/vm", r#"{"state": "Paused"}"#),
        "pause",
    );
    let vsock = match shape {
        Shape::Devices => {
            let snap = format!(
                r#"{{"snapshot_path": "{}", "mem_file_path": "{}"}}"#,
                dir.join("vm.snap").display(),
                dir.join("vm.mem").display()
            );
            expect_2xx(api(&sock, "PUT", "/snapshot/create", &snap), "snapshot");
            expect_2xx(api(&sock, "PUT", "/vmdbg/reset", ""), "reset");
            // A host client of the vsock device: the poller accepts it.
            let mut s = UnixStream::connect(dir.join("vsock.sock")).unwrap();
            s.write_all(b"CONNECT 1234\n").unwrap();
            Some(s)
        }
        // A recording started and stopped through the API: the live
        // ticker this leaves is a thread started under the main filter.
        Shape::Recordable => {
            let recording = |action: &str| {
                expect_2xx(
                    api(
                        &sock,
                        "PUT",
                        "/vmdbg/recording",
                        &format!(r#"{{"action": "{action}"}}"#),
                    ),
                    action,
                )
            };
            recording("start");
            let save = format!(
                r#"{{"action": "save", "path": "{}"}}"#,
                dir.join("run.rec").display()
            );
            expect_2xx(api(&sock, "PUT", "/vmdbg/recording", &save), "save");
            recording("stop");
            None
        }
    };
    expect_2xx(
        api(&sock, "PATCH", "/vm", r#"{"state": "Resumed"}"#),
        "resume",
    );

    // gdb stays attached (reading registers and memory) until the test has
    // read every thread's status, then releases the guest and detaches.
    let attached = dir.join("gdb-attached");
    let mut gdb = Command::new("gdb");
    gdb.args(["-q", "-batch", "-nx"])
        .arg("-ex")
        .arg(format!("target remote 127.0.0.1:{port}"))
        .args(["-ex", "info registers rip", "-ex", "print spins"])
        .arg("-ex")
        .arg(format!("shell touch {}", attached.display()))
        .arg("-ex")
        .arg(format!(
            "shell while [ -e {} ]; do sleep 0.05; done",
            attached.display()
        ))
        .args(["-ex", "set var released = 1", "-ex", "detach"])
        .arg(kernel("spin.elf"));
    let gdb = ChildGuard::spawn(gdb, "gdb");
    wait_until("gdb to attach", || attached.exists());

    let modes = seccomp_modes(guard.child.id());
    std::fs::remove_file(&attached).unwrap();
    assert_every_kind_present(&modes, shape);
    for (name, mode) in &modes {
        assert_eq!(
            mode, "2",
            "thread {name} of vmdbg-vmm has Seccomp: {mode} (2 is a filter); all: {modes:?}"
        );
    }

    let gdb_out = gdb.wait_output(LIMIT);
    assert!(
        gdb_out.status.success(),
        "gdb: {}{}",
        text(&gdb_out.stdout),
        text(&gdb_out.stderr)
    );
    drop(vsock);
    let out = guard.wait_output(LIMIT);
    assert_eq!(
        out.status.code(),
        Some(RELEASED_STATUS),
        "the released guest did not end cleanly under the filters; stderr:\n{}",
        text(&out.stderr)
    );
}

#[test]
fn a_forbidden_system_call_ends_the_vmm_with_a_message_naming_it() {
    if !require(kvm(), "vmm_sandbox forbidden call") {
        return;
    }
    // (the hook's thread kind, the name the message gives that thread)
    for (kind, thread, shape) in [
        ("main", "main", Shape::Devices),
        ("vcpu", "vcpu0", Shape::Devices),
        ("virtio", "virtio-vsock", Shape::Devices),
        ("serial-input", "serial-input", Shape::Devices),
        ("live-ticker", "live-ticker", Shape::Recordable),
    ] {
        let dir = scratch_dir(&format!("vmm-sandbox-hook-{kind}"));
        let mut cmd = vmm_command(&dir, shape);
        cmd.env("VMDBG_VMM_TEST_FORBIDDEN_SYSCALL", kind);
        let (guard, _serial) = start(cmd, &dir);
        let out = guard.wait_output(LIMIT);
        let stderr = text(&out.stderr);
        let said = format!(
            "vmdbg-vmm: seccomp: thread {thread} made the forbidden system call mount (nr 165)"
        );
        assert!(
            stderr.contains(&said),
            "hook in {kind}: expected `{said}` on stderr, got:\n{stderr}"
        );
        assert_eq!(
            out.status.code(),
            Some(SECCOMP_STATUS),
            "hook in {kind}: {}; stderr:\n{stderr}",
            out.status
        );
    }
}

#[test]
fn no_seccomp_runs_unfiltered_and_says_so() {
    if !require(kvm(), "vmm_sandbox --no-seccomp") {
        return;
    }
    let dir = scratch_dir("vmm-sandbox-off");
    let mut cmd = vmm_command(&dir, Shape::Devices);
    cmd.arg("--no-seccomp");
    let (mut guard, _serial) = start(cmd, &dir);
    guard.wait_for_stderr("WARNING: --no-seccomp", LIMIT);
    gdb_port_said(&mut guard, GDB_SAID);
    let modes = seccomp_modes(guard.child.id());
    assert_every_kind_present(&modes, Shape::Devices);
    for (name, mode) in &modes {
        assert_eq!(mode, "0", "thread {name} under --no-seccomp: {modes:?}");
    }
}

//! vmdbg-vmm's doors on the host tier: its control API, serial, vsock and
//! gdb unix sockets are owner-only (0600), so a second local user (created
//! here with useradd) is refused when connecting while the owner is
//! served; a gdb stub named to listen on a non-loopback TCP address says
//! so with a warning, and the default (`:PORT`) binds loopback silently.

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use vmdbg_e2e::*;

const LIMIT: Duration = Duration::from_secs(60);
const OTHER_USER: &str = "vmdbg-e2e-other";

/// Connects to the unix socket `sock` as `user` (a python that is not
/// root's own: root's pyenv is in a home the other user cannot enter);
/// prints `connected` or the errno.
fn connect_as(user: &str, sock: &Path) -> String {
    let script = "import socket,sys\n\
        s=socket.socket(socket.AF_UNIX)\n\
        try:\n    s.connect(sys.argv[1]); print('connected')\n\
        except OSError as e: print('errno', e.errno)\n";
    let out = Command::new("setpriv")
        .arg(format!("--reuid={user}"))
        .arg(format!("--regid={user}"))
        .args(["--clear-groups", "/usr/bin/python3", "-c", script])
        .arg(sock)
        .output()
        .expect("run setpriv");
    assert!(
        out.status.success(),
        "setpriv/python as {user}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout).trim().to_string()
}

/// A second local user for the test (created once; kept for later runs).
fn other_user() -> Result<(), String> {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| text(&o.stdout));
    if uid.ok().as_deref().map(str::trim) != Some("0") {
        return Err("creating a second local user needs root".into());
    }
    tool("useradd")?;
    tool("setpriv")?;
    if !Path::new("/usr/bin/python3").exists() {
        return Err("/usr/bin/python3 is not installed".into());
    }
    let exists = Command::new("id")
        .arg(OTHER_USER)
        .output()
        .is_ok_and(|o| o.status.success());
    if !exists {
        let out = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg(OTHER_USER)
            .output()
            .map_err(|e| format!("useradd: {e}"))?;
        // 9: created meanwhile by a concurrent test run.
        if !out.status.success() && out.status.code() != Some(9) {
            return Err(format!("useradd {OTHER_USER}: {}", text(&out.stderr)));
        }
    }
    Ok(())
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The file's permission bits in octal, as `ls -l` would say them.
fn mode_of(path: &Path) -> String {
    let meta =
        std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        meta.file_type().is_socket(),
        "{} is not a socket",
        path.display()
    );
    format!("{:o}", meta.permissions().mode() & 0o7777)
}

#[test]
fn every_socket_is_owner_only_and_another_user_cannot_connect() {
    if !require(all([kvm(), other_user()]), "vmm_doors sockets") {
        return;
    }
    let dir = scratch_dir("vmm-doors");
    // The directory itself lets anyone in: only the sockets' modes keep
    // the other user out.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let disk = dir.join("disk.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let sock = |name: &str| dir.join(name);
    let mut cmd = vmm();
    cmd.arg("--kernel")
        .arg(kernel("spin.elf"))
        .arg("--api")
        .arg(format!("unix:{}", sock("api.sock").display()))
        .arg("--serial")
        .arg(format!("unix:{}", sock("serial.sock").display()))
        .arg("--vsock-uds")
        .arg(sock("vsock.sock"))
        .arg("--disk")
        .arg(&disk)
        .arg("--gdb")
        .arg(format!("unix:{}", sock("gdb.sock").display()));
    let mut guard = ChildGuard::spawn(cmd, "vmdbg-vmm");
    wait_until("the serial socket", || sock("serial.sock").exists());
    // Checked before the owner connects: the VMM waits for this client.
    assert_eq!(mode_of(&sock("serial.sock")), "600", "serial socket");
    assert_eq!(
        connect_as(OTHER_USER, &sock("serial.sock")),
        "errno 13",
        "another user connecting to the serial socket"
    );
    let _serial = UnixStream::connect(sock("serial.sock")).unwrap();
    guard.wait_for_stderr("gdb can attach with", LIMIT);
    for name in ["api.sock", "vsock.sock", "gdb.sock"] {
        assert_eq!(mode_of(&sock(name)), "600", "{name}");
    }
    for name in ["api.sock", "vsock.sock"] {
        assert_eq!(
            connect_as(OTHER_USER, &sock(name)),
            "errno 13",
            "another user connecting to {name}"
        );
    }

    // The owner is served.
    let mut api = UnixStream::connect(sock("api.sock")).unwrap();
    api.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    api.read_to_string(&mut reply).unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 200") && reply.contains("\"state\":\"Running\""),
        "{reply}"
    );
    // The same connection as the other user succeeds once the mode lets
    // it: the refusal above was the socket's mode, not the harness.
    std::fs::set_permissions(sock("api.sock"), std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(connect_as(OTHER_USER, &sock("api.sock")), "connected");
}

#[test]
fn a_gdb_stub_on_a_non_loopback_address_warns_and_the_default_is_loopback() {
    if !require(kvm(), "vmm_doors tcp") {
        return;
    }
    let warning = "WARNING: the gdb server listens on";
    for (addr, warns, shown) in [(":0", false, "127.0.0.1:"), ("0.0.0.0:0", true, "0.0.0.0:")] {
        let mut cmd = vmm();
        cmd.arg("--kernel").arg(kernel("hello.elf")).args([
            "--gdb",
            addr,
            "--wait-gdb",
            "--serial",
            "none",
        ]);
        let mut guard = ChildGuard::spawn(cmd, "vmdbg-vmm");
        guard.wait_for_stderr(&format!("target remote {shown}"), LIMIT);
        let said = guard.stderr_text();
        assert_eq!(
            said.contains(warning),
            warns,
            "--gdb {addr}: stderr was:\n{said}"
        );
    }
}

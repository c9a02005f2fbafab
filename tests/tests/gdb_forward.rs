//! `vmdbg gdb-forward`: Debian's gdb, in batch mode, debugs a C program
//! inside a fresh Linux VM (the QEMU engine here) through vmdbg's
//! loopback port: a line breakpoint, `print`, `next`, `info
//! sharedlibrary`, and the program's exit code as vmdbg's; the same
//! with lldb; `kill`, `detach` and `disconnect` from gdb; Ctrl-C on vmdbg;
//! a program that cannot start; bad input. Each VM test boots its
//! own guest (seconds under TCG).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vmdbg_e2e::*;

const BOOT_LIMIT: Duration = Duration::from_secs(240);

fn ready(test: &str) -> bool {
    linux_guest_ready(test, &["gdb", "gcc"])
}

/// locals.c built with -g -O0 in `dir`.
fn build_locals(dir: &Path) -> PathBuf {
    let program = dir.join("locals");
    let out = Command::new("gcc")
        .args(["-g", "-O0", "-o"])
        .arg(&program)
        .arg(programs_dir().join("locals.c"))
        .output()
        .unwrap();
    assert!(out.status.success(), "gcc: {}", text(&out.stderr));
    program
}

/// `vmdbg gdb-forward --port 0 -- PROGRAM`, up and listening; its port.
fn forward(program: &Path, test: &str) -> (ChildGuard, u16) {
    let mut cmd = vmdbg();
    cmd.args(["gdb-forward", "--port", "0", "--"])
        .arg(program)
        .env_remove("XDG_RUNTIME_DIR");
    let mut vmdbg = ChildGuard::spawn(cmd, test);
    vmdbg.wait_for_stderr("in gdb: target remote :", BOOT_LIMIT);
    let seen = vmdbg.stderr_text();
    let line = seen
        .lines()
        .find(|l| l.contains("listening on 127.0.0.1:"))
        .unwrap_or_else(|| panic!("no listening line in: {seen}"));
    let port: u16 = line
        .rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in: {line}"));
    assert_eq!(
        line,
        format!("vmdbg: listening on 127.0.0.1:{port}; in gdb: target remote :{port}")
    );
    (vmdbg, port)
}

/// Nothing of that vmdbg is left: no QEMU, no socket directory, and
/// nobody listens on its port.
fn assert_nothing_left(vmdbg_pid: u32, port: u16) {
    assert_vmdbg_left_nothing(vmdbg_pid, "the");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something still listens on port {port}"
    );
}

#[test]
fn gdb_breaks_prints_steps_lists_libraries_and_runs_to_the_exit_code() {
    if !ready("gdb_forward_session") {
        return;
    }
    let dir = scratch_dir("gdb-forward-session");
    let program = build_locals(&dir);
    let (vmdbg, port) = forward(&program, "vmdbg gdb-forward");
    // A port probe that closes without a word is no debugger: the program
    // waits for the next connection.
    drop(std::net::TcpStream::connect(("127.0.0.1", port)).unwrap());
    let call = program_marker_line("locals.c", "call");
    let after_call = program_marker_line("locals.c", "after_call");
    let script = format!(
        "set pagination off\n\
         target remote :{port}\n\
         break locals.c:{call}\n\
         continue\n\
         print p.x\n\
         print total\n\
         next\n\
         print total\n\
         info sharedlibrary\n\
         bt\n\
         continue\n"
    );
    let out = gdb_batch(&program, &script, Duration::from_secs(120));
    let gdb = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let vmdbg_pid = vmdbg.child.id();
    let vm = vmdbg.wait_output(Duration::from_secs(60));
    let (stdout, stderr) = (text(&vm.stdout), text(&vm.stderr));
    assert!(
        gdb.contains(&format!(
            "Breakpoint 1, main () at {}:{call}",
            program_source()
        )),
        "gdb did not stop at the breakpoint:\n{gdb}"
    );
    assert!(gdb.contains("$1 = 3\n"), "print p.x:\n{gdb}");
    assert!(
        gdb.contains("$2 = 0\n"),
        "print total before the call:\n{gdb}"
    );
    assert!(
        gdb.contains(&format!("\n{after_call}\t")),
        "next did not reach line {after_call}:\n{gdb}"
    );
    assert!(gdb.contains("$3 = 25\n"), "print total after next:\n{gdb}");
    let libraries: Vec<&str> = gdb
        .lines()
        .skip_while(|l| !l.starts_with("From "))
        .take_while(|l| l.starts_with("0x") || l.starts_with("From "))
        .collect();
    assert!(
        libraries.iter().any(|l| l.contains("libc.so.6")),
        "info sharedlibrary does not list libc:\n{gdb}"
    );
    assert!(
        gdb.contains("#0  main () at "),
        "bt does not show main:\n{gdb}"
    );
    assert!(
        gdb.contains("exited with code 07"),
        "gdb did not see the exit:\n{gdb}"
    );
    assert_eq!(stdout, "total=25\n", "the program's stdout on vmdbg's");
    assert_eq!(
        vm.status.code(),
        Some(7),
        "vmdbg exits with the program's status\n{stderr}\ngdb:\n{gdb}"
    );
    assert_nothing_left(vmdbg_pid, port);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The source path gdb prints (the DWARF's, as compiled).
fn program_source() -> String {
    programs_dir().join("locals.c").display().to_string()
}

#[test]
fn lldb_breaks_shows_locals_steps_and_runs_to_the_exit_code() {
    if !ready("gdb_forward_lldb") || !require(tool("lldb"), "gdb_forward_lldb") {
        return;
    }
    let dir = scratch_dir("gdb-forward-lldb");
    let program = build_locals(&dir);
    let (vmdbg, port) = forward(&program, "vmdbg gdb-forward (lldb)");
    let call = program_marker_line("locals.c", "call");
    let mut lldb = Command::new("lldb");
    lldb.arg("--batch")
        .arg(&program)
        .args(["-o", &format!("gdb-remote {port}")])
        .args(["-o", &format!("breakpoint set -f locals.c -l {call}")])
        .args(["-o", "continue", "-o", "frame variable total p"])
        .args(["-o", "next", "-o", "frame variable total", "-o", "continue"]);
    let out = run(lldb, "lldb", Duration::from_secs(120));
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let vmdbg_pid = vmdbg.child.id();
    let vm = vmdbg.wait_output(Duration::from_secs(60));
    assert!(said.contains("(int) total = 0"), "{said}");
    assert!(said.contains("(x = 3, y = 4)"), "{said}");
    assert!(said.contains("(int) total = 25"), "{said}");
    assert!(said.contains("exited with status = 7"), "{said}");
    assert_eq!(text(&vm.stdout), "total=25\n");
    assert_eq!(vm.status.code(), Some(7), "{}", text(&vm.stderr));
    assert_nothing_left(vmdbg_pid, port);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kill_from_gdb_ends_the_vm_with_the_status_of_sigkill() {
    if !ready("gdb_forward_kill") {
        return;
    }
    let dir = scratch_dir("gdb-forward-kill");
    let program = build_locals(&dir);
    let (vmdbg, port) = forward(&program, "vmdbg gdb-forward (killed by gdb)");
    let script = format!("target remote :{port}\nbreak main\ncontinue\nkill\n");
    let out = gdb_batch(&program, &script, Duration::from_secs(120));
    let gdb = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(gdb.contains("Breakpoint 1, main ()"), "{gdb}");
    let vmdbg_pid = vmdbg.child.id();
    let vm = vmdbg.wait_output(Duration::from_secs(60));
    assert_eq!(
        vm.status.code(),
        Some(128 + 9),
        "{}\ngdb:\n{gdb}",
        text(&vm.stderr)
    );
    assert!(text(&vm.stderr).contains("killed by signal 9"));
    assert_eq!(
        text(&vm.stdout),
        "",
        "the program was killed before printing"
    );
    assert_nothing_left(vmdbg_pid, port);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn detach_lets_the_program_run_to_its_end_and_vmdbg_exits_with_its_status() {
    if !ready("gdb_forward_detach") {
        return;
    }
    let dir = scratch_dir("gdb-forward-detach");
    let program = build_locals(&dir);
    let (vmdbg, port) = forward(&program, "vmdbg gdb-forward (detached)");
    let script = format!("target remote :{port}\nbreak main\ncontinue\ndetach\n");
    let out = gdb_batch(&program, &script, Duration::from_secs(120));
    let gdb = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(gdb.contains("Breakpoint 1, main ()"), "{gdb}");
    assert!(
        gdb.contains("(process ") && gdb.contains(" detached]"),
        "{gdb}"
    );
    let vmdbg_pid = vmdbg.child.id();
    let vm = vmdbg.wait_output(Duration::from_secs(60));
    assert_eq!(
        vm.status.code(),
        Some(7),
        "{}\ngdb:\n{gdb}",
        text(&vm.stderr)
    );
    assert_eq!(text(&vm.stdout), "total=25\n");
    assert_nothing_left(vmdbg_pid, port);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_debugger_that_disconnects_without_kill_or_detach_ends_the_program() {
    if !ready("gdb_forward_disconnect") {
        return;
    }
    let dir = scratch_dir("gdb-forward-disconnect");
    let program = build_locals(&dir);
    let (vmdbg, port) = forward(&program, "vmdbg gdb-forward (disconnected)");
    // `disconnect` closes the connection and leaves the program to the
    // server, which serves one debugger only: it kills the program.
    let script = format!("target remote :{port}\nbreak main\ncontinue\ndisconnect\n");
    let out = gdb_batch(&program, &script, Duration::from_secs(120));
    let gdb = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(gdb.contains("Breakpoint 1, main ()"), "{gdb}");
    let vmdbg_pid = vmdbg.child.id();
    let vm = vmdbg.wait_output(Duration::from_secs(60));
    let stderr = text(&vm.stderr);
    assert_eq!(vm.status.code(), Some(128 + 9), "{stderr}\ngdb:\n{gdb}");
    assert!(
        stderr.contains("the debugger's connection failed"),
        "{stderr}"
    );
    assert_nothing_left(vmdbg_pid, port);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ctrl_c_ends_the_vm_and_leaves_nothing_behind() {
    if !ready("gdb_forward_ctrl_c") {
        return;
    }
    let dir = scratch_dir("gdb-forward-ctrl-c");
    let program = build_locals(&dir);
    let (vmdbg, port) = forward(&program, "vmdbg gdb-forward (interrupted)");
    let pid = vmdbg.child.id();
    assert_eq!(
        qemus_of(pid).len(),
        1,
        "exactly one QEMU runs for this vmdbg"
    );
    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = vmdbg.wait_output(Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("interrupted"));
    assert_nothing_left(pid, port);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_program_the_guest_cannot_run_is_a_clear_error() {
    if !ready("gdb_forward_cannot_run") {
        return;
    }
    let dir = scratch_dir("gdb-forward-cannot-run");
    let script = dir.join("not-executable.sh");
    std::fs::write(&script, "#!/bin/sh\necho never\n").unwrap();
    let mut cmd = vmdbg();
    cmd.args(["gdb-forward", "--port", "0", "--"]).arg(&script);
    let vmdbg = ChildGuard::spawn(cmd, "vmdbg gdb-forward (cannot run)");
    let pid = vmdbg.child.id();
    let out = vmdbg.wait_output(BOOT_LIMIT);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the guest could not start {}: launch: cannot run",
            script.display()
        )) && stderr.contains("Permission denied"),
        "{stderr}"
    );
    assert_eq!(qemus_of(pid), vec![], "QEMU outlived vmdbg");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_is_refused_before_any_boot_with_the_field_and_the_fix() {
    let dir = scratch_dir("gdb-forward-bad-input");
    let mut cmd = vmdbg();
    cmd.args(["gdb-forward", "--port", "0", "--"])
        .arg(dir.join("no-such-program"));
    let out = run(
        cmd,
        "vmdbg gdb-forward (no program)",
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no-such-program is not a file on this host"),
        "{stderr}"
    );

    let program = dir.join("prog");
    std::fs::write(&program, "#!/bin/sh\n").unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let mut cmd = vmdbg();
    cmd.args(["gdb-forward", "--port", &port, "--"])
        .arg(&program);
    let out = run(
        cmd,
        "vmdbg gdb-forward (port in use)",
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("--port {port}: cannot listen on 127.0.0.1:{port}"))
            && stderr.contains("give another port"),
        "{stderr}"
    );

    let mut cmd = vmdbg();
    cmd.args(["gdb-forward", "--port", "70000", "--"])
        .arg(&program);
    let out = run(cmd, "vmdbg gdb-forward (bad port)", Duration::from_secs(30));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    // The value and the range, not just the option's name (which the usage
    // line of any error prints).
    assert!(
        stderr.contains("invalid value '70000' for '--port") && stderr.contains("0..=65535"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

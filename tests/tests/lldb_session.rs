//! lldb's gdb-remote client against vmdbg-vmm: connect, read registers,
//! stop at a source-line breakpoint, read a local, and kill the VM.

use std::process::Command;
use std::time::Duration;

use vmdbg_e2e::*;

#[test]
fn lldb_reads_registers_and_hits_a_breakpoint() {
    if !require(
        all([kvm(), tool("lldb")]),
        "lldb_reads_registers_and_hits_a_breakpoint",
    ) {
        return;
    }
    let mut cmd = vmm();
    cmd.arg("--kernel").arg(kernel("calls-O0.elf"));
    let (vmm, port) = vmm_gdb_on_any_port(cmd);
    let leaf = marker_line("calls.c", "leaf");
    let mut lldb = Command::new("lldb");
    lldb.arg("--batch")
        .args(["-o", &format!("gdb-remote 127.0.0.1:{port}")])
        .args(["-o", "register read rip cr3"])
        .args([
            "-o",
            &format!("breakpoint set --hardware --file calls.c --line {leaf}"),
        ])
        .args(["-o", "continue"])
        .args(["-o", "bt"])
        .args(["-o", "frame variable depth"])
        .args(["-o", "process kill"])
        .arg(kernel("calls-O0.elf"));
    let out = run(lldb, "lldb", Duration::from_secs(120));
    let lldb = text(&out.stdout);
    let vmm_out = vmm.wait_output(Duration::from_secs(30));
    assert!(lldb.contains("rip = 0x"), "{lldb}\n{}", text(&out.stderr));
    assert!(lldb.contains("cr3 = 0x"), "{lldb}");
    assert!(lldb.contains("stop reason = breakpoint 1.1"), "{lldb}");
    assert!(
        lldb.contains("leaf(level=3") && lldb.contains(&format!("calls.c:{leaf}")),
        "{lldb}"
    );
    assert!(lldb.contains("accumulate(base=150"), "{lldb}");
    assert!(lldb.contains("depth = 3"), "{lldb}");
    assert_eq!(
        vmm_out.status.code(),
        Some(0),
        "kill ends the VM: {}",
        text(&vmm_out.stderr)
    );
}

//! Debian's gdb against vmdbg-vmm's gdb stub on the bare-metal test
//! kernels: breakpoints on source lines, backtraces, variables, stepping,
//! watchpoints, registers, memory, and the guest's exit code — and stepping
//! compared line by line with gdb on QEMU's gdbstub running the same ELF.

use std::time::Duration;

use vmdbg_e2e::*;

const LIMIT: Duration = Duration::from_secs(120);

/// vmdbg-vmm waiting for gdb on a port it picked; returns the guard and port.
fn vmm_waiting(kernel_name: &str) -> (ChildGuard, u16) {
    let mut cmd = vmm();
    cmd.arg("--kernel").arg(kernel(kernel_name));
    vmm_gdb_on_any_port(cmd)
}

const PRELUDE: &str = "set pagination off\nset confirm off\nset width 0\n";

fn gdb_available(test: &str) -> bool {
    require(all([kvm(), tool("gdb")]), test)
}

#[test]
fn scripted_gdb_session_on_calls_o0() {
    if !gdb_available("scripted_gdb_session_on_calls_o0") {
        return;
    }
    let (vmm, port) = vmm_waiting("calls-O0.elf");
    let leaf = marker_line("calls.c", "leaf");
    let script = format!(
        "{PRELUDE}target remote 127.0.0.1:{port}
hbreak calls.c:{leaf}
continue
bt
print depth
print p.x
print arr[2]
print shade
info registers rip cr3
x/4xg $sp
stepi
delete
continue
"
    );
    let out = gdb_batch(&kernel("calls-O0.elf"), &script, LIMIT);
    let gdb = text(&out.stdout) + &text(&out.stderr);
    let vmm_out = vmm.wait_output(LIMIT);

    assert!(
        gdb.contains("Breakpoint 1, leaf (") && gdb.contains(&format!("calls.c:{leaf}")),
        "{gdb}"
    );
    for frame in [
        "#1  0x",
        "in accumulate (",
        "#2  0x",
        "in compute (",
        "#3  0x",
        "in kmain ()",
    ] {
        assert!(gdb.contains(frame), "missing {frame} in bt:\n{gdb}");
    }
    assert!(gdb.contains("$1 = 3\n"), "local int depth:\n{gdb}");
    assert!(gdb.contains("$2 = 7\n"), "struct member p.x:\n{gdb}");
    assert!(gdb.contains("$3 = 30\n"), "array element arr[2]:\n{gdb}");
    assert!(gdb.contains("$4 = BLUE\n"), "enum local:\n{gdb}");
    assert!(gdb.contains("rip            0x"), "{gdb}");
    let cr3_line = gdb
        .lines()
        .find(|l| l.starts_with("cr3"))
        .expect("cr3 shown");
    assert!(
        !cr3_line.contains(" 0x0 "),
        "cr3 must hold the guest's page tables: {cr3_line}"
    );
    assert!(
        gdb.lines()
            .any(|l| l.starts_with("0x") && l.matches("0x").count() == 3),
        "x/4xg $sp:\n{gdb}"
    );
    assert!(
        gdb.contains("[Inferior 1 (process 1) exited with code 0337]"),
        "{gdb}"
    );
    assert_eq!(
        vmm_out.status.code(),
        Some(223),
        "{}",
        text(&vmm_out.stderr)
    );
    assert!(text(&vmm_out.stdout).ends_with("calls: exit=111\n"));
}

#[test]
fn watchpoint_reports_old_and_new_value() {
    if !gdb_available("watchpoint_reports_old_and_new_value") {
        return;
    }
    let (vmm, port) = vmm_waiting("calls-O0.elf");
    let script = format!(
        "{PRELUDE}target remote 127.0.0.1:{port}
watch counter
continue
bt 1
delete
continue
"
    );
    let out = gdb_batch(&kernel("calls-O0.elf"), &script, LIMIT);
    let gdb = text(&out.stdout);
    let vmm_out = vmm.wait_output(LIMIT);
    assert!(gdb.contains("Hardware watchpoint 1: counter"), "{gdb}");
    assert!(
        gdb.contains("Old value = 0\nNew value = 30\n"),
        "{gdb}\n{}",
        text(&out.stderr)
    );
    assert!(
        gdb.contains("#0  leaf ("),
        "stops in the function that wrote it:\n{gdb}"
    );
    assert_eq!(vmm_out.status.code(), Some(223));
}

#[test]
fn four_hardware_breakpoints_work_and_a_fifth_is_refused_clearly() {
    if !gdb_available("four_hardware_breakpoints_work_and_a_fifth_is_refused_clearly") {
        return;
    }
    let (vmm, port) = vmm_waiting("calls-O0.elf");
    let script = format!(
        "{PRELUDE}target remote 127.0.0.1:{port}
hbreak compute
hbreak accumulate
hbreak leaf
hbreak factorial
continue
continue
continue
continue
hbreak kmain
continue
"
    );
    let out = gdb_batch(&kernel("calls-O0.elf"), &script, LIMIT);
    let gdb = text(&out.stdout) + &text(&out.stderr);
    drop(vmm);
    let hits: Vec<&str> = gdb
        .lines()
        .filter(|l| l.starts_with("Breakpoint "))
        .map(|l| {
            l.split(", ")
                .nth(1)
                .unwrap_or("")
                .split(' ')
                .next()
                .unwrap_or("")
        })
        .collect();
    assert_eq!(
        hits,
        ["compute", "accumulate", "leaf", "factorial"],
        "{gdb}"
    );
    assert!(
        gdb.contains("Could not insert hardware breakpoint")
            || gdb.contains("Cannot insert hardware breakpoint"),
        "the fifth must be refused by gdb with its message:\n{gdb}"
    );
    assert!(gdb.contains("too many hardware breakpoints"), "{gdb}");
}

#[test]
fn unmapped_memory_is_an_error_and_monitor_reads_physical_memory() {
    if !gdb_available("unmapped_memory_is_an_error_and_monitor_reads_physical_memory") {
        return;
    }
    let (vmm, port) = vmm_waiting("calls-O0.elf");
    let leaf = marker_line("calls.c", "leaf");
    let script = format!(
        "{PRELUDE}target remote 127.0.0.1:{port}
hbreak calls.c:{leaf}
continue
monitor gva2gpa 0x100000
monitor xp /8 0x100000
x/2xg 0x100000
monitor info
kill
"
    );
    let script2 = |port: u16| {
        format!(
            "{PRELUDE}target remote 127.0.0.1:{port}
hbreak calls.c:{leaf}
continue
x/2xg 0x7fff00000000
"
        )
    };
    let out = gdb_batch(&kernel("calls-O0.elf"), &script, LIMIT);
    let gdb = text(&out.stdout) + &text(&out.stderr);
    let vmm_out = vmm.wait_output(LIMIT);
    assert!(gdb.contains("gpa: 0x100000"), "{gdb}");
    // The same 8 bytes through the page tables (x) and physically (xp).
    let xp = gdb
        .lines()
        .find(|l| l.starts_with("0x0000000000100000:"))
        .expect("xp output");
    let bytes: Vec<u8> = xp
        .split(": ")
        .nth(1)
        .unwrap()
        .split(' ')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    let first_word = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    assert!(
        gdb.contains(&format!("{first_word:#018x}")),
        "x/2xg and xp disagree:\n{gdb}"
    );
    assert!(gdb.contains("debug registers: DR7="), "{gdb}");
    assert_eq!(vmm_out.status.code(), Some(0), "kill ends the VM");

    let (vmm, port2) = vmm_waiting("calls-O0.elf");
    let out = gdb_batch(&kernel("calls-O0.elf"), &script2(port2), LIMIT);
    let gdb = text(&out.stdout) + &text(&out.stderr);
    assert!(
        gdb.contains("Cannot access memory at address 0x7fff00000000"),
        "{gdb}"
    );
    drop(vmm);
}

/// The stepping script both stubs run (`target`: what `target remote`
/// takes); `at` prints where gdb stopped.
fn stepping_script(target: &str) -> String {
    let call_accumulate = marker_line("calls.c", "call-accumulate");
    format!(
        "{PRELUDE}target remote {target}
define at
python f = gdb.selected_frame(); print('AT %s:%d' % (f.name(), f.find_sal().line))
end
hbreak calls.c:{call_accumulate}
continue
at
step
at
next
at
step
at
finish
at
next
at
next
at
finish
at
next
at
kill
"
    )
}

fn stops(gdb: &str) -> Vec<String> {
    gdb.lines()
        .filter(|l| l.starts_with("AT "))
        .map(str::to_string)
        .collect()
}

#[test]
fn next_step_finish_land_where_gdb_on_qemu_lands() {
    for name in ["calls-O0.elf", "calls-O2.elf"] {
        if !require(
            all([kvm(), tool("gdb"), tool("qemu-system-x86_64")]),
            "next_step_finish_land_where_gdb_on_qemu_lands",
        ) {
            return;
        }
        let elf = kernel(name);
        let dir = scratch_dir("gdb-on-qemu");
        let socket = dir.join("gdb.sock");
        let qemu = qemu_with_gdbstub(&elf, &socket);
        let on_qemu = gdb_batch(&elf, &stepping_script(&socket.display().to_string()), LIMIT);
        drop(qemu);
        let _ = std::fs::remove_dir_all(&dir);

        let (vmm, port) = vmm_waiting(name);
        let on_vmm = gdb_batch(&elf, &stepping_script(&format!("127.0.0.1:{port}")), LIMIT);
        drop(vmm);

        let (q, v) = (stops(&text(&on_qemu.stdout)), stops(&text(&on_vmm.stdout)));
        assert!(
            q.len() >= 9,
            "{name}: gdb on QEMU stopped only {} times:\n{}{}",
            q.len(),
            text(&on_qemu.stdout),
            text(&on_qemu.stderr)
        );
        assert_eq!(v, q, "{name}: vmdbg-vmm vs QEMU\n{}", text(&on_vmm.stderr));
    }
}

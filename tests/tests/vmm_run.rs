//! The VMM runs bare-metal kernels on the host's KVM: serial output on
//! stdout, the guest's exit status, both entry ABIs, timer interrupts, a
//! second vCPU that stays parked, and a clear report when the guest dies.

use std::time::Duration;

use vmdbg_e2e::*;

const LIMIT: Duration = Duration::from_secs(60);

fn run_kernel(name: &str, extra: &[&str]) -> Option<std::process::Output> {
    if !require(kvm(), name) {
        return None;
    }
    let mut cmd = vmm();
    cmd.arg("--kernel").arg(kernel(name)).args(extra);
    Some(run(cmd, "vmdbg-vmm", LIMIT))
}

#[test]
fn hello_prints_and_exits_like_qemu_isa_debug_exit() {
    for entry in ["auto", "pvh", "elf64"] {
        let Some(out) = run_kernel("hello.elf", &["--entry", entry]) else {
            return;
        };
        assert_eq!(
            text(&out.stdout),
            "Hello from a vmdbg bare-metal guest\n",
            "entry {entry}"
        );
        assert_eq!(
            out.status.code(),
            Some((0x2a << 1) | 1),
            "entry {entry}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn kernel_linked_high_runs_with_enough_memory() {
    let Some(out) = run_kernel("hello-64m.elf", &["--mem", "128M"]) else {
        return;
    };
    assert_eq!(out.status.code(), Some(85), "{}", text(&out.stderr));
}

#[test]
fn calls_kernel_computes_the_same_at_o0_and_o2() {
    for name in ["calls-O0.elf", "calls-O2.elf"] {
        let Some(out) = run_kernel(name, &[]) else {
            return;
        };
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains("calls: factorial(5)=120\n") && stdout.ends_with("calls: exit=111\n"),
            "{stdout}"
        );
        assert_eq!(out.status.code(), Some(223));
    }
}

#[test]
fn timer_interrupts_arrive_through_the_in_kernel_pic_and_pit() {
    let Some(out) = run_kernel("interrupts.elf", &[]) else {
        return;
    };
    assert_eq!(text(&out.stdout), "ticks: 10\n", "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(33));
}

#[test]
fn serial_output_to_a_file() {
    let path = std::env::temp_dir().join(format!("vmdbg-serial-{}.log", std::process::id()));
    let target = format!("file:{}", path.display());
    let Some(out) = run_kernel("hello.elf", &["--serial", &target]) else {
        return;
    };
    assert_eq!(out.status.code(), Some(85));
    assert!(out.stdout.is_empty());
    let written = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(written, "Hello from a vmdbg bare-metal guest\n");
}

#[test]
fn triple_fault_ends_with_a_report_and_its_own_status() {
    let Some(out) = run_kernel("fault.elf", &[]) else {
        return;
    };
    assert_eq!(text(&out.stdout), "about to fault\n");
    let report = text(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{report}");
    assert!(
        report.contains("triple fault") && report.contains("RIP=0x") && report.contains("CR3=0x"),
        "{report}"
    );
    // The report's RIP is the faulting ud2 (the guest had no IDT to go to).
    let rip = report
        .split("RIP=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("RIP in report");
    let mut addr2line = std::process::Command::new("addr2line");
    addr2line.arg("-e").arg(kernel("fault.elf")).arg(rip);
    let location = text(&run(addr2line, "addr2line", LIMIT).stdout);
    let expected = format!("fault.c:{}", marker_line("fault.c", "ud2"));
    assert!(
        location.trim().ends_with(&expected),
        "RIP {rip} is {location}, expected {expected}"
    );
}

/// A fresh vCPU 1 is an application processor waiting for the INIT/SIPI
/// that hello.elf never sends: KVM keeps it out of the run (it would
/// otherwise fetch from the reset vector, where nothing is loaded). So when
/// the bootstrap processor has run the whole kernel, the AP is still at its
/// power-on CS:IP f000:fff0, and the line is printed once.
#[test]
fn two_vcpus_boot_with_the_application_processor_parked() {
    if !require(
        all([kvm(), tool("nm")]),
        "two_vcpus_boot_with_the_application_processor_parked",
    ) {
        return;
    }
    let elf = kernel("hello.elf");
    let (vmm, mut rsp, dir) =
        vmdbg_e2e::rsp::vmm_waiting_for_gdb(&elf, &["--cpus", "2"], "ap-parked");
    assert!(rsp.ask("qSupported:hwbreak+").contains("PacketSize="));
    let mut threads = Vec::new();
    let mut reply = rsp.ask("qfThreadInfo");
    while let Some(list) = reply.strip_prefix('m') {
        threads.extend(list.split(',').map(|t| u64::from_str_radix(t, 16).unwrap()));
        reply = rsp.ask("qsThreadInfo");
    }
    assert_eq!(reply, "l");
    assert_eq!(threads, [1, 2], "one gdb thread per vCPU");

    // The BSP about to leave through port 0xf4, its line written.
    let exit = elf_symbol(&elf, "qemu_exit");
    assert_eq!(rsp.ask(&format!("Z1,{exit:x},1")), "OK");
    let stop = rsp.ask("vCont;c");
    assert!(
        stop.starts_with("T05") && stop.contains("thread:01;"),
        "the BSP stops at qemu_exit: {stop}"
    );
    // `g`: 16 64-bit GPRs, then rip (64), eflags (32), cs (32), little-endian hex.
    let word = |regs: &str, at: usize, bytes: usize| -> u64 {
        (0..bytes).rev().fold(0, |v, i| {
            v << 8 | u64::from_str_radix(&regs[2 * (at + i)..2 * (at + i) + 2], 16).unwrap()
        })
    };
    assert_eq!(rsp.ask("Hg1"), "OK");
    let bsp = rsp.ask("g");
    assert_eq!(word(&bsp, 128, 8), exit, "the BSP's rip: {bsp}");
    assert_eq!(rsp.ask("Hg2"), "OK");
    let ap = rsp.ask("g");
    assert_eq!(
        (word(&ap, 128, 8), word(&ap, 140, 4)),
        (0xfff0, 0xf000),
        "the AP left its reset vector (rip, cs): {ap}"
    );

    assert_eq!(rsp.ask(&format!("z1,{exit:x},1")), "OK");
    assert_eq!(rsp.ask("D"), "OK");
    drop(rsp);
    let out = vmm.wait_output(LIMIT);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        text(&out.stdout),
        "Hello from a vmdbg bare-metal guest\n",
        "{}",
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(85), "{}", text(&out.stderr));
}

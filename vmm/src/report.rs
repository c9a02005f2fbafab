//! The report printed when a VM ends abnormally: what happened and the
//! vCPU state a person needs to start debugging it.

use std::fmt::Write;

use kvm_ioctls::VcpuFd;

/// Describes `vcpu`'s registers under a one-line `headline`.
pub fn vcpu_state(headline: &str, index: usize, vcpu: &VcpuFd) -> String {
    let mut out = format!("vmdbg-vmm: {headline} on vCPU {index}\n");
    let (regs, sregs) = match (vcpu.get_regs(), vcpu.get_sregs()) {
        (Ok(r), Ok(s)) => (r, s),
        (Err(e), _) | (_, Err(e)) => {
            let _ = writeln!(out, "  (registers unavailable: {e})");
            return out;
        }
    };
    let _ = writeln!(
        out,
        "  RIP={:#018x} RSP={:#018x} RFLAGS={:#010x}",
        regs.rip, regs.rsp, regs.rflags
    );
    let _ = writeln!(
        out,
        "  CR0={:#010x} CR2={:#018x} CR3={:#018x} CR4={:#010x} EFER={:#x}",
        sregs.cr0, sregs.cr2, sregs.cr3, sregs.cr4, sregs.efer
    );
    let gprs = [
        ("RAX", regs.rax),
        ("RBX", regs.rbx),
        ("RCX", regs.rcx),
        ("RDX", regs.rdx),
        ("RSI", regs.rsi),
        ("RDI", regs.rdi),
        ("RBP", regs.rbp),
        ("R8", regs.r8),
        ("R9", regs.r9),
        ("R10", regs.r10),
        ("R11", regs.r11),
        ("R12", regs.r12),
        ("R13", regs.r13),
        ("R14", regs.r14),
        ("R15", regs.r15),
    ];
    for row in gprs.chunks(4) {
        let line: Vec<String> = row
            .iter()
            .map(|(n, v)| format!("{n:>3}={v:#018x}"))
            .collect();
        let _ = writeln!(out, "  {}", line.join(" "));
    }
    let _ = writeln!(
        out,
        "  CS={:#06x} (base {:#x}, {}) SS={:#06x} GDT={:#x}/{:#x} IDT={:#x}/{:#x}",
        sregs.cs.selector,
        sregs.cs.base,
        match (sregs.cs.l, sregs.cs.db) {
            (1, _) => "64-bit",
            (_, 1) => "32-bit",
            _ => "16-bit",
        },
        sregs.ss.selector,
        sregs.gdt.base,
        sregs.gdt.limit,
        sregs.idt.base,
        sregs.idt.limit
    );
    out
}

//! The execution log: what the guest observed that its own state does not
//! determine, each entry at the instruction position (`icount`, the number
//! of single-steps since the recording began) it happened at, with the
//! instruction pointer and a digest of the registers there so a replay can
//! tell it has left the recorded path.

use kvm_bindings::kvm_regs;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A port read and the value the device answered (replay re-runs the
    /// device and checks it gives the same).
    PortIn { port: u16, value: u64 },
    /// An MMIO read, likewise.
    MmioRead { addr: u64, value: u64 },
    /// Host serial input put into the UART's FIFO before this instruction.
    SerialIn { bytes: Vec<u8> },
    /// RDTSC/RDTSCP/RDRAND/RDSEED: the general registers after it, which a
    /// replay writes back.
    HostValue { regs: [u64; 18] },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub icount: u64,
    pub rip: u64,
    /// CRC-32 of the general registers before the instruction.
    pub digest: u32,
    pub event: Event,
}

/// The general registers and flags, in kvm_regs order.
pub fn gprs(r: &kvm_regs) -> [u64; 18] {
    [
        r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rsp, r.rbp, r.r8, r.r9, r.r10, r.r11, r.r12,
        r.r13, r.r14, r.r15, r.rip, r.rflags,
    ]
}

pub fn set_gprs(r: &mut kvm_regs, v: &[u64; 18]) {
    [
        r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rsp, r.rbp, r.r8, r.r9, r.r10, r.r11, r.r12,
        r.r13, r.r14, r.r15, r.rip, r.rflags,
    ] = *v;
}

pub fn digest(r: &kvm_regs) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for v in gprs(r) {
        h.update(&v.to_le_bytes());
    }
    h.finalize()
}

/// One line naming what a replay expected and what it met.
pub fn describe(e: &Event) -> String {
    match e {
        Event::PortIn { port, value } => format!("in from port {port:#x} = {value:#x}"),
        Event::MmioRead { addr, value } => format!("MMIO read at {addr:#x} = {value:#x}"),
        Event::SerialIn { bytes } => format!("serial input {bytes:?}"),
        Event::HostValue { .. } => "RDTSC/RDRAND result".into(),
    }
}

//! Start-up probes of what this host's KVM really does for a debugger,
//! because nested and paravirtual KVMs differ from hardware:
//! - does it intercept a guest's int3 when asked (KVM_GUESTDBG_USE_SW_BP)?
//! - does a write to an address in DR0 stop the guest (data breakpoints)?
//!   A KVM that emulates ring-0 code instruction by instruction may not
//!   check data breakpoints at all.
//! - does executing the address in DR0 stop the guest (breakpoints)? A KVM
//!   nested under QEMU's TCG before QEMU 9.1 does not: its emulated VMRUN
//!   loads the guest's DR7 without arming the breakpoints (nor does it
//!   deliver a guest's int3 as an intercepted #BP), so only single-step
//!   reaches the VMM.
//!
//! Each probe is a throw-away 64 KiB real-mode VM with no interrupt
//! controller whose code ends in `hlt`, so every outcome ends in a few exits.

use crate::vm::GuestMemoryMmap;
use kvm_bindings::{
    kvm_guest_debug, kvm_userspace_memory_region, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_USE_HW_BP,
    KVM_GUESTDBG_USE_SW_BP,
};
use kvm_ioctls::{Kvm, VcpuExit};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

/// Whether int3 can be used for software breakpoints, and if not, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Int3Support {
    Intercepted,
    NotIntercepted(String),
}

/// What the probes found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostDebugCaps {
    pub int3: Int3Support,
    /// Hardware watchpoints stop the guest; otherwise the VMM single-steps
    /// and compares the watched bytes.
    pub data_breakpoints: bool,
    /// Execute breakpoints in DR0-DR3 stop the guest; otherwise the VMM
    /// refuses breakpoints rather than accept ones that never hit.
    pub exec_breakpoints: bool,
}

impl HostDebugCaps {
    pub fn not_probed() -> Self {
        Self {
            int3: Int3Support::NotIntercepted("not probed".into()),
            data_breakpoints: false,
            exec_breakpoints: true,
        }
    }
}

pub fn probe(kvm: &Kvm) -> HostDebugCaps {
    let int3 = match probe_int3(kvm) {
        Ok(ProbeExit::Debug { exception: 3, .. }) => Int3Support::Intercepted,
        Ok(ProbeExit::Halted) => Int3Support::NotIntercepted(
            "the guest's own #BP handler ran instead of a debug exit".into(),
        ),
        Ok(ProbeExit::InternalError) => {
            Int3Support::NotIntercepted("KVM failed to emulate int3 (internal error)".into())
        }
        Ok(other) => Int3Support::NotIntercepted(format!("unexpected outcome {other:?}")),
        Err(why) => Int3Support::NotIntercepted(why),
    };
    let data_breakpoints =
        matches!(probe_data_breakpoint(kvm), Ok(ProbeExit::Debug { dr6, .. }) if dr6 & 1 != 0);
    let exec_breakpoints =
        matches!(probe_exec_breakpoint(kvm), Ok(ProbeExit::Debug { dr6, .. }) if dr6 & 1 != 0);
    HostDebugCaps {
        int3,
        data_breakpoints,
        exec_breakpoints,
    }
}

const CODE: u64 = 0x1000;
const DATA: u64 = 0x2000;

/// `int3; hlt; hlt` with IVT[3] pointing at the second `hlt`.
fn probe_int3(kvm: &Kvm) -> Result<ProbeExit, String> {
    let debug = kvm_guest_debug {
        control: KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_SW_BP,
        ..Default::default()
    };
    run_probe(kvm, &[0xcc, 0xf4, 0xf4], Some((3 * 4, 0x0000_1002)), debug)
}

/// `mov byte [0x2000], 1; hlt` with a 1-byte write watch on 0x2000 in DR0.
fn probe_data_breakpoint(kvm: &Kvm) -> Result<ProbeExit, String> {
    let mut debug = kvm_guest_debug {
        control: KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP,
        ..Default::default()
    };
    debug.arch.debugreg[0] = DATA;
    debug.arch.debugreg[7] = 0b10 | (0b01 << 16); // G0, RW0 = write, LEN0 = 1
    run_probe(kvm, &[0xc6, 0x06, 0x00, 0x20, 0x01, 0xf4], None, debug)
}

/// `nop; nop; hlt` with an execute breakpoint on the second `nop` in DR0.
fn probe_exec_breakpoint(kvm: &Kvm) -> Result<ProbeExit, String> {
    let mut debug = kvm_guest_debug {
        control: KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP,
        ..Default::default()
    };
    debug.arch.debugreg[0] = CODE + 1;
    debug.arch.debugreg[7] = 0b10; // G0, RW0 = execute, LEN0 = 1
    run_probe(kvm, &[0x90, 0x90, 0xf4], None, debug)
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ProbeExit {
    Debug { exception: u32, dr6: u64 },
    Halted,
    InternalError,
    Other(String),
}

fn run_probe(
    kvm: &Kvm,
    code: &[u8],
    ivt_entry: Option<(u64, u32)>,
    debug: kvm_guest_debug,
) -> Result<ProbeExit, String> {
    let vm = kvm.create_vm().map_err(|e| format!("KVM_CREATE_VM: {e}"))?;
    let mem =
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x1_0000)]).map_err(|e| e.to_string())?;
    if let Some((at, vector)) = ivt_entry {
        mem.write_obj(vector, GuestAddress(at))
            .map_err(|e| e.to_string())?;
    }
    mem.write_slice(code, GuestAddress(CODE))
        .map_err(|e| e.to_string())?;
    let host = mem
        .get_host_address(GuestAddress(0))
        .map_err(|e| e.to_string())?;
    let region = kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: 0,
        memory_size: 0x1_0000,
        userspace_addr: host as u64,
        flags: 0,
    };
    // SAFETY: `mem` outlives `vm` within this function.
    unsafe { vm.set_user_memory_region(region) }.map_err(|e| format!("memory: {e}"))?;
    let mut vcpu = vm
        .create_vcpu(0)
        .map_err(|e| format!("KVM_CREATE_VCPU: {e}"))?;
    let mut sregs = vcpu.get_sregs().map_err(|e| e.to_string())?;
    (
        sregs.cs.base,
        sregs.cs.selector,
        sregs.ds.base,
        sregs.ds.selector,
    ) = (0, 0, 0, 0);
    vcpu.set_sregs(&sregs).map_err(|e| e.to_string())?;
    let mut regs = vcpu.get_regs().map_err(|e| e.to_string())?;
    regs.rip = CODE;
    regs.rflags = 2;
    vcpu.set_regs(&regs).map_err(|e| e.to_string())?;
    vcpu.set_guest_debug(&debug)
        .map_err(|e| format!("KVM_SET_GUEST_DEBUG: {e}"))?;
    for _ in 0..8 {
        return Ok(match vcpu.run() {
            Ok(VcpuExit::Debug(arch)) => ProbeExit::Debug {
                exception: arch.exception,
                dr6: arch.dr6,
            },
            Ok(VcpuExit::Hlt) => ProbeExit::Halted,
            Ok(VcpuExit::InternalError) => ProbeExit::InternalError,
            Ok(VcpuExit::Intr) => continue,
            Ok(other) => ProbeExit::Other(format!("{other:?}")),
            Err(e) if e.errno() == libc::EINTR => continue,
            Err(e) => return Err(format!("KVM_RUN: {e}")),
        });
    }
    Err("the probe guest did not stop".into())
}

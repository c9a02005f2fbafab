//! Start-up probe: does this host's KVM intercept a guest's int3 when asked
//! (KVM_GUESTDBG_USE_SW_BP)? The machines this was written on do not, so
//! software breakpoints must not be assumed.
//!
//! The probe is a throw-away 64 KiB real-mode VM with no interrupt
//! controller: `int3; hlt` at 0x1000 and an IVT entry for vector 3 that
//! points at another `hlt`, so every outcome ends in a few exits.

use kvm_bindings::{
    kvm_guest_debug, kvm_userspace_memory_region, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_USE_SW_BP,
};
use kvm_ioctls::{Kvm, VcpuExit};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

/// Whether int3 can be used for software breakpoints, and if not, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Int3Support {
    Intercepted,
    NotIntercepted(String),
}

pub fn probe_int3(kvm: &Kvm) -> Int3Support {
    match run_probe(kvm) {
        Ok(support) => support,
        Err(why) => Int3Support::NotIntercepted(why),
    }
}

fn run_probe(kvm: &Kvm) -> Result<Int3Support, String> {
    const CODE: u64 = 0x1000;
    let vm = kvm.create_vm().map_err(|e| format!("KVM_CREATE_VM: {e}"))?;
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x1_0000)])
        .map_err(|e| e.to_string())?;
    // IVT[3] = 0000:1002; code: int3; hlt; hlt.
    mem.write_obj(0x0000_1002u32, GuestAddress(3 * 4))
        .map_err(|e| e.to_string())?;
    mem.write_slice(&[0xcc, 0xf4, 0xf4], GuestAddress(CODE))
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
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    vcpu.set_sregs(&sregs).map_err(|e| e.to_string())?;
    let mut regs = vcpu.get_regs().map_err(|e| e.to_string())?;
    regs.rip = CODE;
    regs.rflags = 2;
    vcpu.set_regs(&regs).map_err(|e| e.to_string())?;
    let debug = kvm_guest_debug {
        control: KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_SW_BP,
        ..Default::default()
    };
    vcpu.set_guest_debug(&debug)
        .map_err(|e| format!("KVM_SET_GUEST_DEBUG: {e}"))?;
    for _ in 0..8 {
        match vcpu.run() {
            Ok(VcpuExit::Debug(arch)) if arch.exception == 3 => {
                return Ok(Int3Support::Intercepted)
            }
            Ok(VcpuExit::Hlt) => {
                return Ok(Int3Support::NotIntercepted(
                    "the guest's own #BP handler ran instead of a debug exit".into(),
                ))
            }
            Ok(VcpuExit::InternalError) => {
                return Ok(Int3Support::NotIntercepted(
                    "KVM failed to emulate int3 (internal error)".into(),
                ))
            }
            Ok(VcpuExit::Intr) => continue,
            Ok(other) => {
                return Ok(Int3Support::NotIntercepted(format!(
                    "unexpected exit {other:?}"
                )))
            }
            Err(e) if e.errno() == libc::EINTR => continue,
            Err(e) => return Err(format!("KVM_RUN: {e}")),
        }
    }
    Err("the probe guest did not stop".into())
}

//! A vCPU's complete architectural state, read from and written to KVM in
//! the order KVM needs it: registers, special registers, xsave/FPU, XCRs,
//! debug registers, local APIC, MSRs (TSC before TSC_DEADLINE), pending
//! events and the multiprocessing state.
//!
//! This is the only place that knows the order; snapshots and the gdb
//! layer call it, on the vCPU's own thread (through `VcpuHandle::exec`).

use kvm_bindings::{
    kvm_cpuid_entry2, kvm_debugregs, kvm_lapic_state, kvm_mp_state, kvm_msr_entry, kvm_regs,
    kvm_sregs, kvm_vcpu_events, kvm_xcrs, kvm_xsave, CpuId, Msrs,
};
use kvm_ioctls::VcpuFd;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const MSR_IA32_TSC: u32 = 0x10;
pub const MSR_IA32_TSC_DEADLINE: u32 = 0x6e0;
/// KVM reads at most this many MSRs in one KVM_GET_MSRS.
const MSR_CHUNK: usize = 255;

/// Everything KVM holds for one vCPU.
#[derive(Debug, Serialize, Deserialize)]
pub struct VcpuState {
    pub cpuid: Vec<kvm_cpuid_entry2>,
    pub regs: kvm_regs,
    pub sregs: kvm_sregs,
    pub xsave: kvm_xsave,
    pub xcrs: Option<kvm_xcrs>,
    pub debugregs: kvm_debugregs,
    pub lapic: kvm_lapic_state,
    /// In restore order: TSC first, TSC_DEADLINE last.
    pub msrs: Vec<kvm_msr_entry>,
    pub events: kvm_vcpu_events,
    pub mp_state: kvm_mp_state,
}

// kvm_xsave has a flexible array member and so no derived Clone; the
// legacy area is all of it here.
impl Clone for VcpuState {
    fn clone(&self) -> Self {
        Self {
            cpuid: self.cpuid.clone(),
            regs: self.regs,
            sregs: self.sregs,
            xsave: kvm_xsave {
                region: self.xsave.region,
                ..Default::default()
            },
            xcrs: self.xcrs,
            debugregs: self.debugregs,
            lapic: self.lapic,
            msrs: self.msrs.clone(),
            events: self.events,
            mp_state: self.mp_state,
        }
    }
}

/// Puts MSRs in the order KVM must see them on restore: the TSC before
/// anything computed from it (the TSC deadline).
pub fn order_msrs(msrs: &mut [kvm_msr_entry]) {
    msrs.sort_by_key(|m| match m.index {
        MSR_IA32_TSC => 0,
        MSR_IA32_TSC_DEADLINE => 2,
        _ => 1,
    });
}

/// Reads the MSRs in `indices` that this vCPU lets us read. KVM stops a
/// KVM_GET_MSRS at the first MSR it refuses; that one is skipped (this
/// host's nested KVM refuses some it lists) and the read goes on after it.
fn read_msrs(fd: &VcpuFd, indices: &[u32]) -> Result<Vec<kvm_msr_entry>> {
    let mut out = Vec::with_capacity(indices.len());
    let mut rest = indices;
    while !rest.is_empty() {
        let chunk = &rest[..rest.len().min(MSR_CHUNK)];
        let entries: Vec<kvm_msr_entry> = chunk
            .iter()
            .map(|&index| kvm_msr_entry {
                index,
                ..Default::default()
            })
            .collect();
        let mut msrs = Msrs::from_entries(&entries)
            .map_err(|e| Error::Vcpu(format!("building the MSR list: {e:?}")))?;
        let n = fd.get_msrs(&mut msrs).map_err(Error::kvm("KVM_GET_MSRS"))?;
        out.extend_from_slice(&msrs.as_slice()[..n]);
        if n < chunk.len() {
            tracing::debug!("KVM refuses to read MSR {:#x}; not saved", chunk[n]);
            rest = &rest[n + 1..];
        } else {
            rest = &rest[n..];
        }
    }
    order_msrs(&mut out);
    Ok(out)
}

/// Writes `msrs` in order; an MSR KVM refuses is reported and skipped, as
/// the boot MSRs are: the guest runs on, as on hardware without it.
fn write_msrs(fd: &VcpuFd, msrs: &[kvm_msr_entry]) -> Result<()> {
    let mut rest = msrs;
    while !rest.is_empty() {
        let chunk = &rest[..rest.len().min(MSR_CHUNK)];
        let list = Msrs::from_entries(chunk)
            .map_err(|e| Error::Vcpu(format!("building the MSR list: {e:?}")))?;
        let n = fd.set_msrs(&list).map_err(Error::kvm("KVM_SET_MSRS"))?;
        if n < chunk.len() {
            tracing::warn!("KVM refused to restore MSR {:#x}", chunk[n].index);
            rest = &rest[n + 1..];
        } else {
            rest = &rest[n..];
        }
    }
    Ok(())
}

impl VcpuState {
    /// Reads the whole state. `msr_indices` is KVM_GET_MSR_INDEX_LIST (plus
    /// the emulated MSRs); `cpuid` is what the vCPU was given at creation
    /// (KVM has no call to read it back reliably).
    pub fn save(fd: &VcpuFd, cpuid: &CpuId, msr_indices: &[u32], xcrs: bool) -> Result<Self> {
        // Pending events first: reading the rest does not change them, and
        // mp_state last, as KVM's own save order has it.
        let events = fd
            .get_vcpu_events()
            .map_err(Error::kvm("KVM_GET_VCPU_EVENTS"))?;
        Ok(Self {
            cpuid: cpuid.as_slice().to_vec(),
            regs: fd.get_regs().map_err(Error::kvm("KVM_GET_REGS"))?,
            sregs: fd.get_sregs().map_err(Error::kvm("KVM_GET_SREGS"))?,
            // SAFETY: the legacy 4 KiB KVM_GET_XSAVE; this VMM never
            // enables XSAVE features whose state is larger (no AMX).
            xsave: fd.get_xsave().map_err(Error::kvm("KVM_GET_XSAVE"))?,
            xcrs: if xcrs {
                Some(fd.get_xcrs().map_err(Error::kvm("KVM_GET_XCRS"))?)
            } else {
                None
            },
            debugregs: fd
                .get_debug_regs()
                .map_err(Error::kvm("KVM_GET_DEBUGREGS"))?,
            lapic: fd.get_lapic().map_err(Error::kvm("KVM_GET_LAPIC"))?,
            msrs: read_msrs(fd, msr_indices)?,
            events,
            mp_state: fd.get_mp_state().map_err(Error::kvm("KVM_GET_MP_STATE"))?,
        })
    }

    /// Writes the whole state back, in Firecracker's restore order. The
    /// CPUID is set only on a vCPU that has not run (`fresh`): KVM refuses
    /// to change it afterwards, and a vCPU of this VMM keeps the CPUID it
    /// was created with.
    pub fn restore(&self, fd: &VcpuFd, fresh: bool) -> Result<()> {
        if fresh {
            let cpuid = CpuId::from_entries(&self.cpuid)
                .map_err(|e| Error::Vcpu(format!("building the CPUID list: {e:?}")))?;
            fd.set_cpuid2(&cpuid)
                .map_err(Error::kvm("KVM_SET_CPUID2"))?;
        }
        fd.set_mp_state(self.mp_state)
            .map_err(Error::kvm("KVM_SET_MP_STATE"))?;
        fd.set_regs(&self.regs)
            .map_err(Error::kvm("KVM_SET_REGS"))?;
        fd.set_sregs(&self.sregs)
            .map_err(Error::kvm("KVM_SET_SREGS"))?;
        // SAFETY: a legacy 4 KiB xsave area read by KVM_GET_XSAVE.
        unsafe { fd.set_xsave(&self.xsave) }.map_err(Error::kvm("KVM_SET_XSAVE"))?;
        if let Some(xcrs) = &self.xcrs {
            fd.set_xcrs(xcrs).map_err(Error::kvm("KVM_SET_XCRS"))?;
        }
        fd.set_debug_regs(&self.debugregs)
            .map_err(Error::kvm("KVM_SET_DEBUGREGS"))?;
        fd.set_lapic(&self.lapic)
            .map_err(Error::kvm("KVM_SET_LAPIC"))?;
        write_msrs(fd, &self.msrs)?;
        fd.set_vcpu_events(&self.events)
            .map_err(Error::kvm("KVM_SET_VCPU_EVENTS"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsc_comes_before_its_deadline() {
        let mut msrs: Vec<kvm_msr_entry> = [MSR_IA32_TSC_DEADLINE, 0x174, MSR_IA32_TSC]
            .into_iter()
            .map(|index| kvm_msr_entry {
                index,
                ..Default::default()
            })
            .collect();
        order_msrs(&mut msrs);
        let order: Vec<u32> = msrs.iter().map(|m| m.index).collect();
        assert_eq!(order, [MSR_IA32_TSC, 0x174, MSR_IA32_TSC_DEADLINE]);
    }
}

//! Initial vCPU state: CPUID, MSRs, FPU, local APIC and registers.

use kvm_bindings::{kvm_fpu, kvm_msr_entry, kvm_regs, CpuId, Msrs};
use kvm_ioctls::VcpuFd;

use super::{long_mode, BootEntry, EntryMode};
use crate::error::{Error, Result};

const CPUID_HYPERVISOR: u32 = 1 << 31;
const CPUID_ARCH_PERFMON_LEAF: u32 = 0xa;

const CPUID_TSC_DEADLINE: u32 = 1 << 24;

/// Adapts the host-supported CPUID to one vCPU: its APIC ID, the hypervisor
/// bit, the TSC-deadline timer KVM emulates (KVM_GET_SUPPORTED_CPUID leaves
/// it out; Linux needs it or a calibrated LAPIC timer, and a hardware-
/// reduced ACPI machine has no PIT to calibrate against), and no
/// architectural PMU (these hosts have none to virtualize).
pub fn normalize_cpuid(
    supported: &CpuId,
    vcpu_id: u8,
    vcpu_count: u8,
    tsc_deadline: bool,
) -> CpuId {
    let mut cpuid = supported.clone();
    for entry in cpuid.as_mut_slice() {
        match entry.function {
            1 => {
                entry.ebx = (entry.ebx & 0x0000_ffff)
                    | ((vcpu_id as u32) << 24)
                    | ((vcpu_count as u32) << 16);
                entry.ecx |= CPUID_HYPERVISOR;
                if tsc_deadline {
                    entry.ecx |= CPUID_TSC_DEADLINE;
                }
            }
            0xb | 0x1f => entry.edx = vcpu_id as u32,
            CPUID_ARCH_PERFMON_LEAF => {
                (entry.eax, entry.ebx, entry.ecx, entry.edx) = (0, 0, 0, 0);
            }
            _ => {}
        }
    }
    cpuid
}

const MSR_IA32_SYSENTER_CS: u32 = 0x174;
const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
const MSR_IA32_TSC: u32 = 0x10;
const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
const MISC_ENABLE_FAST_STRING: u64 = 1;

pub fn setup_msrs(vcpu: &VcpuFd) -> Result<()> {
    let entries: Vec<kvm_msr_entry> = [
        (MSR_IA32_SYSENTER_CS, 0),
        (MSR_IA32_SYSENTER_ESP, 0),
        (MSR_IA32_SYSENTER_EIP, 0),
        (MSR_STAR, 0),
        (MSR_CSTAR, 0),
        (MSR_KERNEL_GS_BASE, 0),
        (MSR_SYSCALL_MASK, 0),
        (MSR_LSTAR, 0),
        (MSR_IA32_TSC, 0),
        (MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
    ]
    .into_iter()
    .map(|(index, data)| kvm_msr_entry {
        index,
        data,
        ..Default::default()
    })
    .collect();
    let msrs = Msrs::from_entries(&entries)
        .map_err(|e| Error::Vcpu(format!("building the MSR list: {e:?}")))?;
    let written = vcpu.set_msrs(&msrs).map_err(Error::kvm("KVM_SET_MSRS"))?;
    if written != entries.len() {
        // Which MSR was refused matters to whoever debugs a host; the guest
        // runs without it, as it would on hardware with the feature off.
        tracing::warn!(
            "KVM accepted {written} of {} boot MSRs; MSR {:#x} was refused",
            entries.len(),
            entries[written].index
        );
    }
    Ok(())
}

pub fn setup_fpu(vcpu: &VcpuFd) -> Result<()> {
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(Error::kvm("KVM_SET_FPU"))
}

const APIC_LVT0: usize = 0x350;
const APIC_LVT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 0x4;
const APIC_MODE_EXTINT: u32 = 0x7;

/// Routes the legacy PIC through LINT0 (ExtINT) and NMI through LINT1, as a
/// BIOS does, so a guest that programs the 8259 gets its interrupts.
pub fn setup_lapic(vcpu: &VcpuFd) -> Result<()> {
    let mut lapic = vcpu.get_lapic().map_err(Error::kvm("KVM_GET_LAPIC"))?;
    let set_mode = |regs: &mut [std::os::raw::c_char], offset: usize, mode: u32| {
        let bytes: [u8; 4] = std::array::from_fn(|i| regs[offset + i] as u8);
        let value = (u32::from_le_bytes(bytes) & !0x700 & !(1 << 16)) | (mode << 8);
        for (i, b) in value.to_le_bytes().into_iter().enumerate() {
            regs[offset + i] = b as std::os::raw::c_char;
        }
    };
    set_mode(&mut lapic.regs, APIC_LVT0, APIC_MODE_EXTINT);
    set_mode(&mut lapic.regs, APIC_LVT1, APIC_MODE_NMI);
    vcpu.set_lapic(&lapic).map_err(Error::kvm("KVM_SET_LAPIC"))
}

/// Registers and segments for the boot vCPU at the kernel entry.
pub fn setup_boot_registers(vcpu: &VcpuFd, entry: &BootEntry) -> Result<()> {
    let mut sregs = vcpu.get_sregs().map_err(Error::kvm("KVM_GET_SREGS"))?;
    let mut regs = kvm_regs {
        rflags: 0x2,
        rip: entry.rip,
        ..Default::default()
    };
    match entry.mode {
        EntryMode::Pvh => {
            long_mode::setup_protected_mode(&mut sregs);
            regs.rbx = entry.start_info.map_or(0, |a| a.0);
        }
        _ => {
            long_mode::setup_long_mode(&mut sregs);
            regs.rsp = super::layout::BOOT_STACK_TOP;
            regs.rsi = entry.boot_params.unwrap_or(0);
        }
    }
    vcpu.set_sregs(&sregs)
        .map_err(Error::kvm("KVM_SET_SREGS"))?;
    vcpu.set_regs(&regs).map_err(Error::kvm("KVM_SET_REGS"))
}

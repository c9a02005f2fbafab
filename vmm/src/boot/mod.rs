//! Boot: everything between "a kernel file on disk" and "a vCPU ready to
//! execute its first instruction".
//!
//! Owns the guest-physical memory layout of the boot structures, loading the
//! kernel (ELF, Linux vmlinux or bzImage) and initramfs, Linux's boot_params,
//! the ACPI tables, and the initial CPU state for each entry ABI. It does not run the
//! vCPU and knows nothing about devices or debugging.

pub mod acpi;
pub mod cpu;
pub mod elf;
pub mod layout;
pub mod linux;
pub mod long_mode;
pub mod pvh;

use std::path::Path;

use crate::vm::GuestMemoryMmap;
use vm_memory::GuestAddress;

use crate::error::Result;

/// How the first vCPU enters the kernel.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
pub enum EntryMode {
    /// PVH if the ELF has a XEN_ELFNOTE_PHYS32_ENTRY note, else 64-bit.
    Auto,
    /// 32-bit protected mode at the PVH entry, EBX = start_info (as QEMU -kernel).
    Pvh,
    /// 64-bit long mode at the ELF entry, identity-mapped low memory.
    Elf64,
}

/// The outcome of loading a kernel: where and how the boot vCPU starts.
#[derive(Clone, Copy, Debug)]
pub struct BootEntry {
    pub mode: EntryMode,
    pub rip: u64,
    /// For PVH: guest-physical address of the start_info struct.
    pub start_info: Option<GuestAddress>,
    /// For the 64-bit entry: Linux's boot_params, passed in RSI (bare-metal
    /// kernels ignore it).
    pub boot_params: Option<u64>,
}

/// What to boot.
#[derive(Clone, Copy, Debug)]
pub struct BootSpec<'a> {
    pub kernel: &'a Path,
    pub initrd: Option<&'a Path>,
    pub cmdline: &'a str,
    pub mode: EntryMode,
    /// Where the ACPI RSDP is, if the VM has ACPI tables.
    pub rsdp: Option<u64>,
}

/// Checks the kernel (and initrd) files before any VM exists, so a bad
/// file is reported as such even on a host without KVM.
pub fn validate(kernel: &Path, initrd: Option<&Path>, mem_bytes: u64) -> Result<()> {
    if linux::detect(kernel)? == linux::KernelFormat::Elf {
        elf::validate(kernel, mem_bytes)?;
    }
    if let Some(initrd) = initrd {
        let meta = std::fs::metadata(initrd).map_err(|e| crate::error::Error::Initrd {
            path: initrd.to_path_buf(),
            why: match e.kind() {
                std::io::ErrorKind::NotFound => {
                    "not found. Pass an existing initramfs (cpio archive) with --initrd PATH".into()
                }
                _ => e.to_string(),
            },
        })?;
        if !meta.is_file() || meta.len() == 0 {
            return Err(crate::error::Error::Initrd {
                path: initrd.to_path_buf(),
                why: "not a non-empty regular file; an initramfs is a (possibly compressed) cpio archive".into(),
            });
        }
    }
    Ok(())
}

/// Real-mode code at the reset vector: `mov al, RESET_VALUE; mov dx,
/// RESET_PORT; out dx, al; hlt; jmp $-1`, so a guest that restarts through
/// the BIOS entry gets the VMM's reboot instead of running zeroed memory.
fn write_reset_stub(mem: &GuestMemoryMmap) -> Result<()> {
    use crate::devices::power::{RESET_PORT, RESET_VALUE};
    use vm_memory::Bytes;
    let [port_lo, port_hi] = RESET_PORT.to_le_bytes();
    let stub = [
        0xb0,
        RESET_VALUE,
        0xba,
        port_lo,
        port_hi,
        0xee,
        0xf4,
        0xeb,
        0xfd,
    ];
    mem.write_slice(&stub, GuestAddress(layout::RESET_VECTOR))
        .map_err(|e| crate::error::Error::GuestMemory(format!("writing the reset stub: {e}")))
}

/// Loads the kernel and initrd into `mem` and writes the boot structures
/// the chosen entry ABI needs.
pub fn load(mem: &GuestMemoryMmap, spec: &BootSpec) -> Result<BootEntry> {
    write_reset_stub(mem)?;
    if linux::detect(spec.kernel)? == linux::KernelFormat::BzImage {
        if spec.mode == EntryMode::Pvh {
            return Err(crate::error::Error::NotX86_64Elf {
                path: spec.kernel.to_path_buf(),
                why: "--entry pvh needs an ELF (vmlinux); a bzImage is entered in 64-bit mode"
                    .into(),
            });
        }
        let bz = linux::load_bzimage(mem, spec.kernel)?;
        let initrd = spec
            .initrd
            .map(|p| linux::load_initrd(mem, p, bz.kernel_end, linux::initrd_addr_max(&bz.header)))
            .transpose()?;
        let boot_params =
            linux::write_zero_page(mem, Some(bz.header), spec.cmdline, initrd, spec.rsdp)?;
        long_mode::write_gdt(mem)?;
        long_mode::write_identity_page_tables(mem)?;
        return Ok(BootEntry {
            mode: EntryMode::Elf64,
            rip: bz.entry_64,
            start_info: None,
            boot_params: Some(boot_params),
        });
    }

    let loaded = elf::load(mem, spec.kernel)?;
    let initrd = spec
        .initrd
        .map(|p| linux::load_initrd(mem, p, loaded.load_end, None))
        .transpose()?;
    let use_pvh = match spec.mode {
        EntryMode::Auto => loaded.pvh_entry.is_some(),
        EntryMode::Pvh => true,
        EntryMode::Elf64 => false,
    };
    if use_pvh {
        let entry = loaded
            .pvh_entry
            .ok_or_else(|| crate::error::Error::NotX86_64Elf {
                path: spec.kernel.to_path_buf(),
                why: "--entry pvh was asked for but the ELF has no XEN_ELFNOTE_PHYS32_ENTRY note"
                    .into(),
            })?;
        let start_info = pvh::write_start_info(mem, spec.cmdline, initrd, spec.rsdp)?;
        long_mode::write_gdt(mem)?;
        Ok(BootEntry {
            mode: EntryMode::Pvh,
            rip: entry,
            start_info: Some(start_info),
            boot_params: None,
        })
    } else {
        let boot_params = linux::write_zero_page(mem, None, spec.cmdline, initrd, spec.rsdp)?;
        long_mode::write_gdt(mem)?;
        long_mode::write_identity_page_tables(mem)?;
        Ok(BootEntry {
            mode: EntryMode::Elf64,
            rip: loaded.entry,
            start_info: None,
            boot_params: Some(boot_params),
        })
    }
}

//! Boot: everything between "a kernel file on disk" and "a vCPU ready to
//! execute its first instruction".
//!
//! Owns the guest-physical memory layout of the boot structures, loading the
//! ELF, and the initial CPU state for each entry ABI. It does not run the
//! vCPU and knows nothing about devices or debugging.

pub mod cpu;
pub mod elf;
pub mod layout;
pub mod long_mode;
pub mod pvh;

use std::path::Path;

use vm_memory::{GuestAddress, GuestMemoryMmap};

use crate::error::Result;

/// How the first vCPU enters the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
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
}

/// Loads `kernel` into `mem` and writes the boot structures the chosen entry
/// ABI needs.
pub fn load(
    mem: &GuestMemoryMmap,
    kernel: &Path,
    cmdline: &str,
    mode: EntryMode,
) -> Result<BootEntry> {
    let loaded = elf::load(mem, kernel)?;
    let use_pvh = match mode {
        EntryMode::Auto => loaded.pvh_entry.is_some(),
        EntryMode::Pvh => true,
        EntryMode::Elf64 => false,
    };
    if use_pvh {
        let entry = loaded
            .pvh_entry
            .ok_or_else(|| crate::error::Error::NotX86_64Elf {
                path: kernel.to_path_buf(),
                why: "--entry pvh was asked for but the ELF has no XEN_ELFNOTE_PHYS32_ENTRY note"
                    .into(),
            })?;
        let start_info = pvh::write_start_info(mem, cmdline)?;
        long_mode::write_gdt(mem)?;
        Ok(BootEntry {
            mode: EntryMode::Pvh,
            rip: entry,
            start_info: Some(start_info),
        })
    } else {
        long_mode::write_gdt(mem)?;
        long_mode::write_identity_page_tables(mem)?;
        Ok(BootEntry {
            mode: EntryMode::Elf64,
            rip: loaded.entry,
            start_info: None,
        })
    }
}

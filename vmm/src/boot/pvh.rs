//! The PVH boot ABI's start_info, memory map and command line.

use crate::vm::GuestMemoryMmap;
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

use super::layout::*;
use crate::error::{Error, Result};

const XEN_HVM_START_MAGIC: u32 = 0x336e_c578;
const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;

/// The guest's memory map, as e820 (and PVH) report it.
pub fn memory_map(mem: &GuestMemoryMmap) -> Vec<(u64, u64, u32)> {
    let end = mem.last_addr().0 + 1;
    vec![
        (0, EBDA_START, E820_RAM),
        (EBDA_START, HIGH_MEMORY - EBDA_START, E820_RESERVED),
        (HIGH_MEMORY, end - HIGH_MEMORY, E820_RAM),
    ]
}

/// Writes start_info with the command line, the memory map, the initrd as
/// the one module, and the RSDP address.
pub fn write_start_info(
    mem: &GuestMemoryMmap,
    cmdline: &str,
    initrd: Option<super::linux::LoadedInitrd>,
    rsdp: Option<u64>,
) -> Result<GuestAddress> {
    let err = |what: &str, e: vm_memory::GuestMemoryError| {
        Error::GuestMemory(format!("writing the PVH {what}: {e}"))
    };
    super::linux::write_cmdline(mem, cmdline)?;
    if let Some(initrd) = initrd {
        let module = hvm_modlist_entry {
            paddr: initrd.addr,
            size: initrd.size,
            ..Default::default()
        };
        mem.write_obj(module, GuestAddress(PVH_MODLIST))
            .map_err(|e| err("module list", e))?;
    }

    let map = memory_map(mem);
    for (i, (addr, size, type_)) in map.iter().enumerate() {
        let entry = hvm_memmap_table_entry {
            addr: *addr,
            size: *size,
            type_: *type_,
            reserved: 0,
        };
        let at = PVH_MEMMAP + (i * std::mem::size_of::<hvm_memmap_table_entry>()) as u64;
        mem.write_obj(entry, GuestAddress(at))
            .map_err(|e| err("memory map", e))?;
    }
    let info = hvm_start_info {
        magic: XEN_HVM_START_MAGIC,
        version: 1,
        cmdline_paddr: CMDLINE,
        memmap_paddr: PVH_MEMMAP,
        memmap_entries: map.len() as u32,
        nr_modules: initrd.is_some() as u32,
        modlist_paddr: if initrd.is_some() { PVH_MODLIST } else { 0 },
        rsdp_paddr: rsdp.unwrap_or(0),
        ..Default::default()
    };
    mem.write_obj(info, GuestAddress(PVH_START_INFO))
        .map_err(|e| err("start_info", e))?;
    Ok(GuestAddress(PVH_START_INFO))
}

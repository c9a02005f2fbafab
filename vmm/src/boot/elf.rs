//! ELF kernel validation and loading.
//!
//! The header checks come first so that each way a file can be wrong gets
//! its own message; linux-loader then does the loading itself.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::vm::GuestMemoryMmap;
use linux_loader::loader::elf::{Elf, PvhBootCapability};
use linux_loader::loader::KernelLoader;
use vm_memory::{GuestAddress, GuestMemoryBackend};

use super::layout::HIGH_MEMORY;
use crate::error::{Error, Result};

const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;

pub struct LoadedElf {
    pub entry: u64,
    /// One past the last byte the kernel occupies.
    pub load_end: u64,
    pub pvh_entry: Option<u64>,
}

/// What the header and program headers say, before anything is loaded.
#[derive(Debug, PartialEq, Eq)]
pub struct ElfSummary {
    pub entry: u64,
    /// One past the highest guest-physical byte a PT_LOAD segment occupies.
    pub load_end: u64,
}

/// Checks that `bytes` (the start of the file, at least its program headers)
/// is a little-endian x86-64 ELF with a loadable segment.
pub fn inspect(bytes: &[u8]) -> std::result::Result<Option<ElfSummary>, String> {
    if bytes.len() < 64 || &bytes[0..4] != b"\x7fELF" {
        return Err("no ELF magic number at the start of the file".into());
    }
    if bytes[4] != 2 {
        return Err("it is a 32-bit ELF (ELFCLASS32); a 64-bit ELF is needed".into());
    }
    if bytes[5] != 1 {
        return Err("it is big-endian".into());
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let machine = u16_at(18);
    if machine != EM_X86_64 {
        return Err(format!("e_machine is {machine}, not 62 (EM_X86_64)"));
    }
    let entry = u64::from_le_bytes(bytes[24..32].try_into().unwrap());
    let phoff = u64::from_le_bytes(bytes[32..40].try_into().unwrap()) as usize;
    let phentsize = u16_at(54) as usize;
    let phnum = u16_at(56) as usize;
    if phnum > 0 && phentsize < 56 {
        return Err(format!(
            "e_phentsize is {phentsize}, smaller than an Elf64_Phdr"
        ));
    }
    let mut load_end = None;
    for i in 0..phnum {
        let off = phoff
            .checked_add(i * phentsize)
            .filter(|o| o + 56 <= bytes.len())
            .ok_or("program header table lies outside the file")?;
        let ph = &bytes[off..off + 56];
        let p_type = u32::from_le_bytes(ph[0..4].try_into().unwrap());
        if p_type != PT_LOAD {
            continue;
        }
        let paddr = u64::from_le_bytes(ph[24..32].try_into().unwrap());
        let memsz = u64::from_le_bytes(ph[40..48].try_into().unwrap());
        let end = paddr
            .checked_add(memsz)
            .ok_or("a PT_LOAD segment's address range overflows")?;
        load_end = Some(load_end.map_or(end, |e: u64| e.max(end)));
    }
    Ok(load_end.map(|load_end| ElfSummary { entry, load_end }))
}

/// Checks the kernel file before any VM exists, so a bad file is reported
/// as such even on a host without KVM.
pub fn validate(path: &Path, mem_bytes: u64) -> Result<ElfSummary> {
    let (_, summary) = open_checked(path, mem_bytes)?;
    Ok(summary)
}

fn open_checked(path: &Path, mem_bytes: u64) -> Result<(File, ElfSummary)> {
    let mut file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::KernelNotFound {
            path: path.to_path_buf(),
        },
        _ => Error::KernelRead {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    let mut head = Vec::new();
    (&mut file)
        .take(1 << 20)
        .read_to_end(&mut head)
        .map_err(|source| Error::KernelRead {
            path: path.to_path_buf(),
            source,
        })?;
    let summary = inspect(&head)
        .map_err(|why| Error::NotX86_64Elf {
            path: path.to_path_buf(),
            why,
        })?
        .ok_or_else(|| Error::NoLoadableSegment {
            path: path.to_path_buf(),
        })?;
    let mem_end = mem_bytes;
    if summary.load_end > mem_end {
        let mib = |b: u64| b.div_ceil(1 << 20);
        return Err(Error::MemoryTooSmall {
            path: path.to_path_buf(),
            needed_mib: mib(summary.load_end),
            mem_mib: mib(mem_end),
            suggest: mib(summary.load_end).next_power_of_two().max(16),
        });
    }
    Ok((file, summary))
}

pub fn load(mem: &GuestMemoryMmap, path: &Path) -> Result<LoadedElf> {
    let (mut file, summary) = open_checked(path, mem.last_addr().0 + 1)?;
    let loaded =
        Elf::load(mem, None, &mut file, Some(GuestAddress(HIGH_MEMORY))).map_err(|source| {
            Error::KernelLoad {
                path: path.to_path_buf(),
                source,
            }
        })?;
    let pvh_entry = match loaded.pvh_boot_cap {
        PvhBootCapability::PvhEntryPresent(addr) => Some(addr.0),
        _ => None,
    };
    Ok(LoadedElf {
        entry: summary.entry,
        load_end: summary.load_end,
        pvh_entry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(class: u8, machine: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[0..4].copy_from_slice(b"\x7fELF");
        h[4] = class;
        h[5] = 1;
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h[54..56].copy_from_slice(&56u16.to_le_bytes());
        h
    }

    fn with_load_segment(mut h: Vec<u8>, paddr: u64, memsz: u64) -> Vec<u8> {
        h[32..40].copy_from_slice(&64u64.to_le_bytes());
        h[56..58].copy_from_slice(&1u16.to_le_bytes());
        let mut ph = vec![0u8; 56];
        ph[0..4].copy_from_slice(&PT_LOAD.to_le_bytes());
        ph[24..32].copy_from_slice(&paddr.to_le_bytes());
        ph[40..48].copy_from_slice(&memsz.to_le_bytes());
        h.extend(ph);
        h
    }

    #[test]
    fn rejects_non_elf_and_wrong_machine() {
        assert!(inspect(b"#!/bin/sh\n").unwrap_err().contains("magic"));
        assert!(inspect(&header(1, EM_X86_64))
            .unwrap_err()
            .contains("32-bit"));
        assert!(inspect(&header(2, 183)).unwrap_err().contains("183"));
    }

    #[test]
    fn finds_no_loadable_segment() {
        assert_eq!(inspect(&header(2, EM_X86_64)).unwrap(), None);
    }

    #[test]
    fn computes_load_end() {
        let h = with_load_segment(header(2, EM_X86_64), 0x10_0000, 0x2000);
        assert_eq!(inspect(&h).unwrap().unwrap().load_end, 0x10_2000);
    }

    #[test]
    fn truncated_program_headers_are_an_error() {
        let mut h = with_load_segment(header(2, EM_X86_64), 0x10_0000, 0x2000);
        h.truncate(80);
        assert!(inspect(&h).unwrap_err().contains("outside the file"));
    }
}

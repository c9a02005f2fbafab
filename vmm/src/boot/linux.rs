//! Linux's x86 boot protocol: telling a bzImage from an ELF, loading the
//! bzImage, the initramfs, and the boot_params ("zero page") the 64-bit
//! entry reads (Documentation/arch/x86/boot.rst).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::vm::GuestMemoryMmap;
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};
use linux_loader::loader::bzimage::BzImage;
use linux_loader::loader::KernelLoader;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

use super::layout::*;
use crate::error::{Error, Result};

/// "HdrS" at offset 0x202 marks a kernel with a boot-protocol header.
const HDRS_MAGIC: u32 = 0x5372_6448;
const BOOT_FLAG: u16 = 0xaa55;
/// type_of_loader 0xff: "undefined" loader, which is what VMMs report.
const LOADER_UNDEFINED: u8 = 0xff;
const LOADFLAG_LOADED_HIGH: u8 = 0x01;
const LOADFLAG_CAN_USE_HEAP: u8 = 0x80;
/// The 64-bit entry point sits 0x200 bytes into the protected-mode code.
const STARTUP_64_OFFSET: u64 = 0x200;
/// Boot protocol 2.06+ kernels say how high an initrd may go; older ones
/// (and vmlinux, which has no header to ask) get the historical limit.
const DEFAULT_INITRD_ADDR_MAX: u64 = 0x37ff_ffff;

/// What kind of file `--kernel` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelFormat {
    /// An ELF: a bare-metal kernel or Linux's uncompressed vmlinux.
    Elf,
    /// A bzImage (vmlinuz): a compressed kernel behind a boot-protocol header.
    BzImage,
}

/// Tells the formats apart from the file's first bytes.
pub fn detect(path: &Path) -> Result<KernelFormat> {
    let mut file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::KernelNotFound {
            path: path.to_path_buf(),
        },
        _ => Error::KernelRead {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    let mut head = Vec::with_capacity(0x210);
    (&mut file)
        .take(0x210)
        .read_to_end(&mut head)
        .map_err(|source| Error::KernelRead {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(format_of(&head))
}

/// The format a file's head says; anything that is not a bzImage is handed
/// to the ELF checks, whose messages explain what is wrong with it.
pub fn format_of(head: &[u8]) -> KernelFormat {
    let is_bzimage = head.len() >= 0x206
        && !head.starts_with(b"\x7fELF")
        && u32::from_le_bytes(head[0x202..0x206].try_into().unwrap()) == HDRS_MAGIC;
    if is_bzimage {
        KernelFormat::BzImage
    } else {
        KernelFormat::Elf
    }
}

pub struct LoadedBzImage {
    pub entry_64: u64,
    pub kernel_end: u64,
    pub header: setup_header,
}

pub fn load_bzimage(mem: &GuestMemoryMmap, path: &Path) -> Result<LoadedBzImage> {
    let mut file = File::open(path).map_err(|source| Error::KernelRead {
        path: path.to_path_buf(),
        source,
    })?;
    let loaded =
        BzImage::load(mem, None, &mut file, Some(GuestAddress(HIGH_MEMORY))).map_err(|source| {
            Error::KernelLoad {
                path: path.to_path_buf(),
                source,
            }
        })?;
    let header = loaded.setup_header.ok_or_else(|| Error::NotX86_64Elf {
        path: path.to_path_buf(),
        why: "bzImage without a setup header".into(),
    })?;
    let version = header.version;
    if version < 0x020c {
        return Err(Error::NotX86_64Elf {
            path: path.to_path_buf(),
            why: format!(
                "boot protocol {}.{:02}: the 64-bit entry needs 2.12 or later (Linux 3.8+)",
                version >> 8,
                version & 0xff
            ),
        });
    }
    Ok(LoadedBzImage {
        entry_64: loaded.kernel_load.0 + STARTUP_64_OFFSET,
        kernel_end: loaded.kernel_end,
        header,
    })
}

/// Where an initramfs was put.
#[derive(Clone, Copy, Debug)]
pub struct LoadedInitrd {
    pub addr: u64,
    pub size: u64,
}

/// Places the initramfs as high as the kernel allows (below `addr_max` and
/// the end of memory), page-aligned, above the kernel's last byte.
pub fn load_initrd(
    mem: &GuestMemoryMmap,
    path: &Path,
    kernel_end: u64,
    addr_max: Option<u64>,
) -> Result<LoadedInitrd> {
    let bad = |why: String| Error::Initrd {
        path: path.to_path_buf(),
        why,
    };
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            bad("not found. Pass an existing initramfs (cpio archive) with --initrd PATH".into())
        }
        _ => bad(e.to_string()),
    })?;
    if bytes.is_empty() {
        return Err(bad(
            "the file is empty; an initramfs is a (possibly compressed) cpio archive".into(),
        ));
    }
    let size = bytes.len() as u64;
    let mem_end = mem.last_addr().0 + 1;
    let ceiling = addr_max
        .unwrap_or(DEFAULT_INITRD_ADDR_MAX)
        .saturating_add(1)
        .min(mem_end);
    let addr = ceiling
        .checked_sub(size)
        .map(|a| a & !0xfff)
        .filter(|&a| a >= kernel_end.max(HIGH_MEMORY))
        .ok_or_else(|| {
            let need_mib = (kernel_end.max(HIGH_MEMORY) + size).div_ceil(1 << 20) + 1;
            bad(format!(
                "{} MiB do not fit between the kernel's end ({:#x}) and {:#x}; pass --mem {}M or more",
                size.div_ceil(1 << 20),
                kernel_end,
                ceiling,
                need_mib.next_power_of_two()
            ))
        })?;
    mem.write_slice(&bytes, GuestAddress(addr))
        .map_err(|e| bad(format!("writing it at {addr:#x}: {e}")))?;
    Ok(LoadedInitrd { addr, size })
}

/// Writes the NUL-terminated command line at [`CMDLINE`].
pub fn write_cmdline(mem: &GuestMemoryMmap, cmdline: &str) -> Result<()> {
    if cmdline.len() >= CMDLINE_MAX {
        return Err(Error::GuestMemory(format!(
            "--cmdline is {} bytes; at most {} fit",
            cmdline.len(),
            CMDLINE_MAX - 1
        )));
    }
    let mut bytes = cmdline.as_bytes().to_vec();
    bytes.push(0);
    mem.write_slice(&bytes, GuestAddress(CMDLINE))
        .map_err(|e| Error::GuestMemory(format!("writing the command line: {e}")))
}

/// Fills boot_params at [`ZERO_PAGE`] for the 64-bit boot protocol. A
/// bzImage brings its own setup header; for a vmlinux one is made up with
/// the fields the kernel checks.
pub fn write_zero_page(
    mem: &GuestMemoryMmap,
    header: Option<setup_header>,
    cmdline: &str,
    initrd: Option<LoadedInitrd>,
    rsdp: Option<u64>,
) -> Result<u64> {
    write_cmdline(mem, cmdline)?;
    let mut params = boot_params {
        hdr: header.unwrap_or_else(|| setup_header {
            boot_flag: BOOT_FLAG,
            header: HDRS_MAGIC,
            kernel_alignment: 0x100_0000,
            ..Default::default()
        }),
        ..Default::default()
    };
    params.hdr.type_of_loader = LOADER_UNDEFINED;
    params.hdr.loadflags |= LOADFLAG_LOADED_HIGH | LOADFLAG_CAN_USE_HEAP;
    params.hdr.heap_end_ptr = 0xfe00;
    params.hdr.cmd_line_ptr = CMDLINE as u32;
    params.hdr.cmdline_size = cmdline.len() as u32 + 1;
    if let Some(initrd) = initrd {
        params.hdr.ramdisk_image = initrd.addr as u32;
        params.hdr.ramdisk_size = initrd.size as u32;
    }
    if let Some(rsdp) = rsdp {
        params.acpi_rsdp_addr = rsdp;
    }
    let map = super::pvh::memory_map(mem);
    for (slot, (addr, size, type_)) in params.e820_table.iter_mut().zip(&map) {
        *slot = boot_e820_entry {
            addr: *addr,
            size: *size,
            r#type: *type_,
        };
    }
    params.e820_entries = map.len() as u8;
    mem.write_obj(params, GuestAddress(ZERO_PAGE))
        .map_err(|e| Error::GuestMemory(format!("writing boot_params: {e}")))?;
    Ok(ZERO_PAGE)
}

/// The highest address the kernel accepts an initrd at, from its header.
pub fn initrd_addr_max(header: &setup_header) -> Option<u64> {
    let version = header.version;
    let max = header.initrd_addr_max;
    (version >= 0x0203 && max != 0).then_some(max as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_bzimage_from_elf() {
        let mut head = vec![0u8; 0x210];
        head[0x202..0x206].copy_from_slice(b"HdrS");
        assert_eq!(format_of(&head), KernelFormat::BzImage);
        head[..4].copy_from_slice(b"\x7fELF");
        assert_eq!(format_of(&head), KernelFormat::Elf);
        assert_eq!(format_of(b"#!/bin/sh"), KernelFormat::Elf);
    }

    #[test]
    fn initrd_errors_name_the_file_and_the_fix() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 4 << 20)]).unwrap();
        let missing = load_initrd(&mem, Path::new("/nonexistent/initrd"), 0x20_0000, None)
            .err()
            .unwrap()
            .to_string();
        assert!(missing.contains("/nonexistent/initrd") && missing.contains("--initrd"));

        let big = std::env::temp_dir().join(format!("vmdbg-initrd-{}", std::process::id()));
        std::fs::write(&big, vec![1u8; 3 << 20]).unwrap();
        let too_big = load_initrd(&mem, &big, 0x20_0000, None)
            .err()
            .unwrap()
            .to_string();
        let _ = std::fs::remove_file(&big);
        assert!(too_big.contains("--mem"), "{too_big}");
    }
}

//! Guest-physical addresses of the structures the VMM writes before boot.
//!
//! Everything sits below 1 MiB, where kernels are not loaded, so a kernel
//! linked at 1 MiB or higher never overlaps them.

/// The boot GDT (null, 64-bit code, data, 32-bit code, TSS).
pub const GDT: u64 = 0x500;
/// A stack for kernels entered in 64-bit mode; grows down from here.
pub const BOOT_STACK_TOP: u64 = 0x8000;
/// Identity-mapping page tables for the 64-bit entry: PML4, PDPT, 4 PDs.
pub const PML4: u64 = 0x9000;
pub const PDPT: u64 = 0xa000;
pub const PD0: u64 = 0xb000;
/// Size of the identity map built for the 64-bit entry (2 MiB pages).
pub const IDENTITY_MAP_BYTES: u64 = 4 << 30;
/// Linux's boot_params ("zero page") for the 64-bit boot protocol.
pub const ZERO_PAGE: u64 = 0x1000;
/// PVH start_info, then its memory map and module list (the initrd).
pub const PVH_START_INFO: u64 = 0x6000;
pub const PVH_MEMMAP: u64 = 0x6040;
pub const PVH_MODLIST: u64 = 0x6400;
/// ACPI tables, RSDP first: inside the reserved BIOS area (0xE0000-0xFFFFF)
/// where a kernel that is given no RSDP address scans for it.
pub const ACPI_START: u64 = 0xe_0000;
pub const ACPI_END: u64 = 0xf_0000;
/// Kernel command line (NUL-terminated).
pub const CMDLINE: u64 = 0x20000;
pub const CMDLINE_MAX: usize = 0x10000;
/// Start of the legacy video/BIOS hole, reported as reserved.
pub const EBDA_START: u64 = 0x9fc00;
/// Kernels load at or above this address.
pub const HIGH_MEMORY: u64 = 0x10_0000;
/// Guest memory must end below the 32-bit MMIO hole.
pub const MAX_MEM: u64 = 0xc000_0000;
/// Addresses KVM needs for its own use on Intel hosts (TSS, identity map).
pub const KVM_TSS: u64 = 0xfffb_d000;
/// Where an x86 CPU starts after reset (F000:FFF0). Linux jumps here as
/// its last way to reboot ("BIOS" reboot, which it picks first on a
/// hardware-reduced ACPI machine without EFI), so the VMM puts a stub here
/// that writes the ACPI reset register.
pub const RESET_VECTOR: u64 = 0xf_fff0;

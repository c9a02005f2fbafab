//! Segment descriptors, identity page tables and the special registers for
//! the two entry ABIs (32-bit protected mode for PVH, 64-bit long mode).

use crate::vm::GuestMemoryMmap;
use kvm_bindings::{kvm_segment, kvm_sregs};
use vm_memory::{Bytes, GuestAddress};

use super::layout::*;
use crate::error::{Error, Result};

const CR0_PE: u64 = 1;
const CR0_ET: u64 = 1 << 4;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const PTE_PRESENT_RW: u64 = 0b11;
const PDE_LARGE: u64 = 1 << 7;

/// GDT slots; the selector of slot i is `i * 8`.
const GDT_ENTRIES: [u64; 5] = [
    0,
    descriptor(0xa09b, 0, 0xfffff), // 64-bit code
    descriptor(0xc093, 0, 0xfffff), // data
    descriptor(0xc09b, 0, 0xfffff), // 32-bit code
    descriptor(0x008b, 0, 0x67),    // 32-bit busy TSS
];
const CODE64: usize = 1;
const DATA: usize = 2;
const CODE32: usize = 3;
const TSS: usize = 4;

/// Packs a segment descriptor; `flags` holds the access byte in bits 0-7
/// and the G/D/L/AVL nibble in bits 12-15, as the hardware layout does.
const fn descriptor(flags: u16, base: u32, limit: u32) -> u64 {
    let (flags, base, limit) = (flags as u64, base as u64, limit as u64);
    ((base & 0xff00_0000) << 32)
        | ((flags & 0xf0ff) << 40)
        | ((limit & 0xf_0000) << 32)
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0xffff)
}

/// The `kvm_segment` KVM wants for GDT slot `index`.
fn segment(index: usize) -> kvm_segment {
    let d = GDT_ENTRIES[index];
    let limit = ((d & 0xffff) | ((d >> 32) & 0xf_0000)) as u32;
    let granular = (d >> 55) & 1 == 1;
    kvm_segment {
        base: ((d >> 16) & 0xff_ffff | ((d >> 32) & 0xff00_0000)),
        limit: if granular {
            (limit << 12) | 0xfff
        } else {
            limit
        },
        selector: (index * 8) as u16,
        type_: ((d >> 40) & 0xf) as u8,
        present: ((d >> 47) & 1) as u8,
        dpl: ((d >> 45) & 3) as u8,
        db: ((d >> 54) & 1) as u8,
        s: ((d >> 44) & 1) as u8,
        l: ((d >> 53) & 1) as u8,
        g: granular as u8,
        avl: ((d >> 52) & 1) as u8,
        unusable: 0,
        padding: 0,
    }
}

fn write(mem: &GuestMemoryMmap, addr: u64, what: &'static str, bytes: &[u8]) -> Result<()> {
    mem.write_slice(bytes, GuestAddress(addr))
        .map_err(|e| Error::GuestMemory(format!("writing the {what} at {addr:#x}: {e}")))
}

pub fn write_gdt(mem: &GuestMemoryMmap) -> Result<()> {
    let bytes: Vec<u8> = GDT_ENTRIES.iter().flat_map(|d| d.to_le_bytes()).collect();
    write(mem, GDT, "GDT", &bytes)
}

/// Identity-maps the first 4 GiB with 2 MiB pages (PML4 → PDPT → 4 PDs).
pub fn write_identity_page_tables(mem: &GuestMemoryMmap) -> Result<()> {
    write(mem, PML4, "PML4", &(PDPT | PTE_PRESENT_RW).to_le_bytes())?;
    let pd_count = IDENTITY_MAP_BYTES >> 30;
    let pdpt: Vec<u8> = (0..pd_count)
        .flat_map(|i| ((PD0 + i * 0x1000) | PTE_PRESENT_RW).to_le_bytes())
        .collect();
    write(mem, PDPT, "PDPT", &pdpt)?;
    let pds: Vec<u8> = (0..pd_count * 512)
        .flat_map(|i| ((i << 21) | PTE_PRESENT_RW | PDE_LARGE).to_le_bytes())
        .collect();
    write(mem, PD0, "page directories", &pds)
}

fn set_tables(sregs: &mut kvm_sregs) {
    sregs.gdt.base = GDT;
    sregs.gdt.limit = (GDT_ENTRIES.len() * 8 - 1) as u16;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.tr = segment(TSS);
}

/// 32-bit protected mode, paging off, flat segments: the PVH entry state.
pub fn setup_protected_mode(sregs: &mut kvm_sregs) {
    set_tables(sregs);
    sregs.cs = segment(CODE32);
    let data = segment(DATA);
    (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
    sregs.cr0 = CR0_PE | CR0_ET;
    sregs.cr4 = 0;
    sregs.efer = 0;
}

/// 64-bit long mode on the identity page tables.
pub fn setup_long_mode(sregs: &mut kvm_sregs) {
    set_tables(sregs);
    sregs.cs = segment(CODE64);
    let data = segment(DATA);
    (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
    sregs.cr3 = PML4;
    sregs.cr4 = CR4_PAE;
    sregs.cr0 = CR0_PE | CR0_ET | CR0_PG;
    sregs.efer = EFER_LME | EFER_LMA;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_decode_to_flat_segments() {
        let code = segment(CODE64);
        assert_eq!(
            (code.base, code.limit, code.l, code.db),
            (0, 0xffff_ffff, 1, 0)
        );
        assert_eq!((code.type_, code.s, code.present, code.g), (0xb, 1, 1, 1));
        let code32 = segment(CODE32);
        assert_eq!((code32.l, code32.db), (0, 1));
        let tss = segment(TSS);
        assert_eq!((tss.limit, tss.type_, tss.s, tss.g), (0x67, 0xb, 0, 0));
    }

    #[test]
    fn identity_map_covers_4g() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        write_identity_page_tables(&mem).unwrap();
        let last_pd: u64 = mem.read_obj(GuestAddress(PD0 + 4 * 0x1000 - 8)).unwrap();
        assert_eq!(last_pd, ((4u64 << 30) - (2 << 20)) | 0x83);
    }
}

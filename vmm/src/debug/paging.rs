//! Guest-virtual to guest-physical translation by walking the guest's page
//! tables in guest memory: no paging, 32-bit, PAE, 4-level and 5-level, with
//! 4 KiB, 2/4 MiB and 1 GiB pages.
//!
//! Done by the VMM rather than KVM_TRANSLATE so it also works on a saved
//! snapshot or a recording, where no vCPU exists.

use crate::vm::GuestMemoryMmap;
use vm_memory::{Bytes, GuestAddress};

/// The control registers that decide how the guest translates addresses.
#[derive(Clone, Copy, Debug, Default)]
pub struct PagingMode {
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
}

impl From<&kvm_bindings::kvm_sregs> for PagingMode {
    fn from(s: &kvm_bindings::kvm_sregs) -> Self {
        Self {
            cr0: s.cr0,
            cr3: s.cr3,
            cr4: s.cr4,
            efer: s.efer,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TranslateError {
    /// The walk found an entry without its present bit.
    NotMapped { gva: u64, level: u8 },
    /// A page-table entry points outside guest memory.
    TableOutsideMemory { gpa: u64 },
}

impl std::fmt::Display for TranslateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotMapped { gva, level } => {
                write!(
                    f,
                    "{gva:#x} is not mapped (no present entry at page-table level {level})"
                )
            }
            Self::TableOutsideMemory { gpa } => {
                write!(
                    f,
                    "a page-table entry points at {gpa:#x}, outside guest memory"
                )
            }
        }
    }
}

const CR0_PG: u64 = 1 << 31;
const CR4_PSE: u64 = 1 << 4;
const CR4_PAE: u64 = 1 << 5;
const CR4_LA57: u64 = 1 << 12;
const EFER_LMA: u64 = 1 << 10;
const PRESENT: u64 = 1;
const PAGE_SIZE_BIT: u64 = 1 << 7;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

impl PagingMode {
    pub fn translate(
        &self,
        mem: &GuestMemoryMmap,
        gva: u64,
    ) -> Result<Translation, TranslateError> {
        if self.cr0 & CR0_PG == 0 {
            return Ok(Translation {
                gpa: gva,
                page_size: 1 << 12,
            });
        }
        if self.cr4 & CR4_PAE == 0 {
            return self.translate_32bit(mem, gva);
        }
        let levels: u8 = if self.efer & EFER_LMA == 0 {
            3
        } else if self.cr4 & CR4_LA57 != 0 {
            5
        } else {
            4
        };
        let mut table = self.cr3 & if levels == 3 { 0xffff_ffe0 } else { ADDR_MASK };
        for level in (1..=levels).rev() {
            let (shift, bits) = match (levels, level) {
                (3, 3) => (30, 2),
                _ => (12 + 9 * (level as u32 - 1), 9),
            };
            let index = (gva >> shift) & ((1 << bits) - 1);
            let entry = read_u64(mem, table + index * 8)?;
            if entry & PRESENT == 0 {
                return Err(TranslateError::NotMapped { gva, level });
            }
            let is_leaf = level == 1 || ((level == 2 || level == 3) && entry & PAGE_SIZE_BIT != 0);
            // PAE's top level (PDPTE) has no page-size bit.
            let is_leaf = is_leaf && !(levels == 3 && level == 3);
            if is_leaf {
                let page_size = 1u64 << shift;
                let base = entry & ADDR_MASK & !(page_size - 1);
                return Ok(Translation {
                    gpa: base | (gva & (page_size - 1)),
                    page_size,
                });
            }
            table = entry & ADDR_MASK;
        }
        unreachable!("level 1 entries are always leaves")
    }

    fn translate_32bit(
        &self,
        mem: &GuestMemoryMmap,
        gva: u64,
    ) -> Result<Translation, TranslateError> {
        let gva = gva & 0xffff_ffff;
        let pde = read_u32(mem, (self.cr3 & 0xffff_f000) + ((gva >> 22) * 4))?;
        if pde & 1 == 0 {
            return Err(TranslateError::NotMapped { gva, level: 2 });
        }
        if self.cr4 & CR4_PSE != 0 && pde & (PAGE_SIZE_BIT as u32) != 0 {
            let base = (pde as u64 & 0xffc0_0000) | (((pde as u64 >> 13) & 0xff) << 32);
            return Ok(Translation {
                gpa: base | (gva & 0x3f_ffff),
                page_size: 4 << 20,
            });
        }
        let pte = read_u32(
            mem,
            (pde as u64 & 0xffff_f000) + (((gva >> 12) & 0x3ff) * 4),
        )?;
        if pte & 1 == 0 {
            return Err(TranslateError::NotMapped { gva, level: 1 });
        }
        Ok(Translation {
            gpa: (pte as u64 & 0xffff_f000) | (gva & 0xfff),
            page_size: 1 << 12,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    pub gpa: u64,
    pub page_size: u64,
}

impl Translation {
    /// Bytes from `gpa` to the end of its page.
    pub fn bytes_left_in_page(&self) -> u64 {
        self.page_size - (self.gpa & (self.page_size - 1))
    }
}

fn read_u64(mem: &GuestMemoryMmap, gpa: u64) -> Result<u64, TranslateError> {
    mem.read_obj(GuestAddress(gpa))
        .map_err(|_| TranslateError::TableOutsideMemory { gpa })
}

fn read_u32(mem: &GuestMemoryMmap, gpa: u64) -> Result<u32, TranslateError> {
    mem.read_obj(GuestAddress(gpa))
        .map_err(|_| TranslateError::TableOutsideMemory { gpa })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODE_4LEVEL: PagingMode = PagingMode {
        cr0: CR0_PG | 1,
        cr3: 0x1000,
        cr4: CR4_PAE,
        efer: EFER_LMA | (1 << 8),
    };

    fn memory() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap()
    }

    fn put(mem: &GuestMemoryMmap, gpa: u64, value: u64) {
        mem.write_obj(value, GuestAddress(gpa)).unwrap();
    }

    #[test]
    fn walks_4k_2m_and_1g_pages() {
        let mem = memory();
        // PML4[0] → PDPT at 0x2000; PDPT[0] → PD at 0x3000; PDPT[1] 1 GiB page.
        put(&mem, 0x1000, 0x2000 | 3);
        put(&mem, 0x2000, 0x3000 | 3);
        put(&mem, 0x2008, 0x4000_0000 | 0x83);
        // PD[0] → PT at 0x4000; PD[1] is a 2 MiB page at 6 MiB.
        put(&mem, 0x3000, 0x4000 | 3);
        put(&mem, 0x3008, 0x60_0000 | 0x83);
        // PT[5] → 4 KiB page at 0x9000.
        put(&mem, 0x4000 + 5 * 8, 0x9000 | 3);

        let t = MODE_4LEVEL.translate(&mem, 0x5123).unwrap();
        assert_eq!(
            t,
            Translation {
                gpa: 0x9123,
                page_size: 4096
            }
        );
        let t = MODE_4LEVEL.translate(&mem, 0x20_0042).unwrap();
        assert_eq!(
            t,
            Translation {
                gpa: 0x60_0042,
                page_size: 2 << 20
            }
        );
        let t = MODE_4LEVEL.translate(&mem, 0x4000_1234).unwrap();
        assert_eq!(
            t,
            Translation {
                gpa: 0x4000_1234,
                page_size: 1 << 30
            }
        );
        assert_eq!(t.bytes_left_in_page(), (1 << 30) - 0x1234);
    }

    #[test]
    fn unmapped_addresses_are_errors_not_panics() {
        let mem = memory();
        put(&mem, 0x1000, 0x2000 | 3);
        assert_eq!(
            MODE_4LEVEL.translate(&mem, 0x5000),
            Err(TranslateError::NotMapped {
                gva: 0x5000,
                level: 3
            })
        );
        assert_eq!(
            MODE_4LEVEL.translate(&mem, 0xffff_8000_0000_0000),
            Err(TranslateError::NotMapped {
                gva: 0xffff_8000_0000_0000,
                level: 4
            })
        );
        put(&mem, 0x2000, 0x7fff_0000_0000 | 3);
        assert_eq!(
            MODE_4LEVEL.translate(&mem, 0x5000),
            Err(TranslateError::TableOutsideMemory {
                gpa: 0x7fff_0000_0000
            })
        );
    }

    #[test]
    fn paging_off_is_identity() {
        let mode = PagingMode::default();
        assert_eq!(mode.translate(&memory(), 0x1234).unwrap().gpa, 0x1234);
    }

    #[test]
    fn pae_and_32bit_pse() {
        let mem = memory();
        let pae = PagingMode {
            cr0: CR0_PG,
            cr3: 0x1000,
            cr4: CR4_PAE,
            efer: 0,
        };
        put(&mem, 0x1000, 0x2000 | 1); // PDPTE[0]
        put(&mem, 0x2008, 0x40_0000 | 0x83); // PD[1]: 2 MiB page at 4 MiB
        assert_eq!(pae.translate(&mem, 0x20_0010).unwrap().gpa, 0x40_0010);
        let pse = PagingMode {
            cr0: CR0_PG,
            cr3: 0x5000,
            cr4: CR4_PSE,
            efer: 0,
        };
        mem.write_obj(0x80_0083u32, GuestAddress(0x5000 + 4))
            .unwrap(); // PDE[1]: 4 MiB page at 8 MiB
        assert_eq!(pse.translate(&mem, 0x40_0020).unwrap().gpa, 0x80_0020);
    }
}

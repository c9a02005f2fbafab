//! Relocatable objects loaded where the target put them: a Linux kernel
//! module's `.ko` (its debug file from Debian's `-dbg` package) is an
//! `ET_REL` object whose sections all start at address 0. The kernel lays
//! a module's sections out one by one when it loads it (`.text`,
//! `.init.text`, `.data`, … each at its own address), so no single bias
//! places it; the debug sections' references to code (`DW_AT_low_pc`, the
//! line programs' `DW_LNE_set_address`, range lists) are left as
//! relocations against the sections' symbols.
//!
//! Given each loaded section's address (the kernel publishes them in
//! `struct module`'s `sect_attrs`, what `/sys/module/<name>/sections/`
//! shows and gdb's `lx-symbols` reads), this applies the debug sections'
//! relocations as the module loader applied the code's: `S + A`, with S
//! the symbol's section address plus its value. Debug sections themselves
//! are not loaded (address 0), so references between them stay offsets.

use std::collections::HashMap;

use object::{Object, ObjectSection, ObjectSymbol, RelocationKind, RelocationTarget};

/// Where each loaded section of a relocatable object is (name → address).
#[derive(Clone, Debug, Default)]
pub struct SectionAddresses(pub HashMap<String, u64>);

impl SectionAddresses {
    /// The address of section `index` of `file`: where it was loaded, or 0
    /// for a section the target did not load (debug sections).
    pub fn of(&self, file: &object::File, index: object::SectionIndex) -> u64 {
        file.section_by_index(index)
            .ok()
            .and_then(|s| s.name().ok().and_then(|n| self.0.get(n).copied()))
            .unwrap_or(0)
    }

    /// The runtime address of a symbol: its section's plus its value;
    /// None for undefined symbols and those in sections not loaded.
    pub fn symbol(&self, file: &object::File, sym: &object::Symbol) -> Option<u64> {
        let index = sym.section_index()?;
        let name = file.section_by_index(index).ok()?.name().ok()?.to_string();
        self.0.get(&name).map(|base| base + sym.address())
    }
}

/// `section`'s bytes with its relocations applied. Only the absolute 32-
/// and 64-bit relocations occur in debug sections; any other is left as
/// the assembler wrote it.
pub fn relocated(
    file: &object::File,
    section: &object::Section,
    places: &SectionAddresses,
) -> Vec<u8> {
    let mut bytes = section
        .uncompressed_data()
        .map(|d| d.into_owned())
        .unwrap_or_default();
    for (offset, reloc) in section.relocations() {
        if reloc.kind() != RelocationKind::Absolute {
            continue;
        }
        let target = match reloc.target() {
            RelocationTarget::Symbol(index) => match file.symbol_by_index(index) {
                Ok(sym) => match sym.section_index() {
                    Some(s) => places.of(file, s) + sym.address(),
                    None => continue,
                },
                Err(_) => continue,
            },
            RelocationTarget::Section(index) => places.of(file, index),
            _ => continue,
        };
        let value = target.wrapping_add(reloc.addend() as u64);
        let at = offset as usize;
        match reloc.size() {
            64 => {
                if let Some(b) = bytes.get_mut(at..at + 8) {
                    b.copy_from_slice(&value.to_le_bytes());
                }
            }
            32 => {
                if let Some(b) = bytes.get_mut(at..at + 4) {
                    b.copy_from_slice(&(value as u32).to_le_bytes());
                }
            }
            _ => {}
        }
    }
    bytes
}

//! Code named by the ELF symbol table alone. Assembly such as the kernel's
//! syscall entry (`entry_SYSCALL_64` in arch/x86/entry/entry_64.S) has
//! symbols, often untyped labels (`entry_SYSCALL_64_after_hwframe`), and
//! a line table, but no DWARF subprogram: a frame there is named as gdb's
//! backtrace names it from its minimal symbols (`entry_SYSCALL_64 () at
//! arch/x86/entry/entry_64.S:120`): the sized symbol holding the pc, else
//! the nearest label at or before it; with the offset gdb's `info symbol`
//! shows (`entry_SYSCALL_64 + 166`).

use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};

/// How far back past sized symbols that end before a pc the search goes.
const MAX_STEPS_BACK: usize = 64;

/// The symbols in a file's code sections: (address, size, name), by
/// address.
#[derive(Default)]
pub struct CodeLabels(Vec<(u64, u64, String)>);

impl CodeLabels {
    /// `place` gives a symbol's runtime address (None: not loaded).
    pub fn read(file: &object::File, place: impl Fn(&object::Symbol) -> Option<u64>) -> Self {
        let mut list = Vec::new();
        for sym in file.symbols() {
            if !matches!(sym.kind(), SymbolKind::Text | SymbolKind::Unknown) {
                continue;
            }
            let in_code = sym
                .section_index()
                .and_then(|i| file.section_by_index(i).ok())
                .is_some_and(|s| s.kind() == SectionKind::Text);
            let Ok(name) = sym.name() else { continue };
            if !in_code || name.is_empty() || name.starts_with(".L") {
                continue;
            }
            if let Some(address) = place(&sym) {
                list.push((address, sym.size(), name.to_string()));
            }
        }
        list.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        CodeLabels(list)
    }

    /// The symbol gdb names `pc` by and `pc`'s offset in it: scanning back
    /// from the last symbol at or before `pc`, the first sized one that
    /// holds it, else the nearest zero-sized one (a label).
    pub fn symbol_at(&self, pc: u64) -> Option<(&str, u64)> {
        let after = self.0.partition_point(|(address, _, _)| *address <= pc);
        let mut label = None;
        for (address, size, name) in self.0[..after].iter().rev().take(MAX_STEPS_BACK) {
            if *size == 0 {
                label = label.or(Some((name.as_str(), pc - address)));
            } else if pc < address + size {
                return Some((name.as_str(), pc - address));
            }
        }
        label
    }
}

#[cfg(test)]
mod tests {
    use super::CodeLabels;

    #[test]
    fn names_a_pc_as_gdb_does_by_its_sized_symbol_else_the_label_before_it() {
        let labels = CodeLabels(vec![
            (0x1000, 0x100, "entry_SYSCALL_64".into()),
            (0x1040, 0, "entry_SYSCALL_64_after_hwframe".into()),
            (0x2000, 0x10, "short".into()),
        ]);
        assert_eq!(labels.symbol_at(0x1000), Some(("entry_SYSCALL_64", 0)));
        // A label inside a sized symbol: gdb names the sized one.
        assert_eq!(labels.symbol_at(0x10a6), Some(("entry_SYSCALL_64", 0xa6)));
        // Past every sized symbol's end: the nearest label names it.
        assert_eq!(
            labels.symbol_at(0x2020),
            Some(("entry_SYSCALL_64_after_hwframe", 0xfe0))
        );
        assert_eq!(labels.symbol_at(0xfff), None);
    }
}

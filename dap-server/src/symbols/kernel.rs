//! Globals by name the way a kernel needs them found (and gdb finds them):
//!
//! - a variable defined in one unit and only declared in the others
//!   (`init_task`): the definition, with its location, wins;
//! - a name DWARF only declares, whose address is in the ELF symbol table
//!   alone — a linker-script alias such as `jiffies = jiffies_64`: the
//!   declaration's type at the symbol's address;
//! - a per-CPU variable (`current_task`): its DWARF address is an offset
//!   into the `.data..percpu` section; the variable of a CPU lives at that
//!   offset plus `__per_cpu_offset[cpu]`, which the location expression
//!   now reads (`DW_OP_addr __per_cpu_offset+8*cpu; DW_OP_deref;
//!   DW_OP_addr var; DW_OP_plus`) — from kernel and user mode alike, where
//!   the GS base would be the user's.
//!
//! The name index over every unit's file-scope variables is built once, on
//! the first lookup (a full pass over a kernel's DWARF takes seconds).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use gimli::{Reader as _, Section as _};
use object::{Object, ObjectSection, ObjectSymbol};

use super::scopes::{origin_name, LocationSource, Variable, VariableKind};
use super::{Reader, Symbols};

/// What the ELF file says beyond DWARF, for [`Symbols::global_named`].
#[derive(Default)]
pub struct ElfData {
    /// Data symbols (objects and untyped ones: linker aliases) by name.
    symbols: HashMap<String, u64>,
    /// `.data..percpu`'s link-time range, when the file has per-CPU data.
    percpu: Option<(u64, u64)>,
    /// File-scope variable DIEs by name: (unit index, DIE offset).
    index: OnceLock<HashMap<String, Vec<(usize, gimli::UnitOffset)>>>,
}

impl ElfData {
    pub fn read(file: &object::File) -> Self {
        let mut symbols = HashMap::new();
        for sym in file.symbols() {
            let data = matches!(
                sym.kind(),
                object::SymbolKind::Data | object::SymbolKind::Unknown
            );
            // Per-CPU variables sit at small offsets, the first at 0.
            if data {
                if let Ok(name) = sym.name() {
                    symbols.entry(name.to_string()).or_insert(sym.address());
                }
            }
        }
        let percpu = file
            .section_by_name(".data..percpu")
            .map(|s| (s.address(), s.address() + s.size()));
        ElfData {
            symbols,
            percpu,
            index: OnceLock::new(),
        }
    }
}

impl Symbols {
    fn global_index(&self) -> &HashMap<String, Vec<(usize, gimli::UnitOffset)>> {
        self.elf.index.get_or_init(|| {
            let mut index: HashMap<String, Vec<(usize, gimli::UnitOffset)>> = HashMap::new();
            self.file_scope_variables(
                |_| true,
                |unit_index, entry| {
                    let unit = &self.units[unit_index];
                    if let Some(name) = origin_name(&self.dwarf, unit, entry) {
                        index
                            .entry(name)
                            .or_default()
                            .push((unit_index, entry.offset()));
                    }
                },
            );
            index
        })
    }

    /// A file-scope variable by name (see the module doc); `cpu` picks
    /// the copy of a per-CPU variable.
    pub fn global_named(&self, name: &str, cpu: usize) -> Option<Variable> {
        let candidates = self.global_index().get(name)?;
        let mut declared: Option<Variable> = None;
        for &(unit_index, offset) in candidates {
            let Ok(entry) = self.units[unit_index].entry(offset) else {
                continue;
            };
            let Some(v) = self.variable_of(unit_index, &entry, VariableKind::Global, None) else {
                continue;
            };
            if v.ty.is_none() {
                continue;
            }
            match &v.location {
                LocationSource::Expression(expr) => {
                    let mut v = v.clone();
                    if let Some(addr) = single_addr(expr) {
                        if let Some(e) = self.percpu_expression(addr, cpu) {
                            v.location = LocationSource::Expression(e);
                        }
                    }
                    return Some(v);
                }
                LocationSource::Constant(_) => return Some(v),
                LocationSource::Unavailable(_) => {
                    declared.get_or_insert(v);
                }
            }
        }
        // Only declarations: the symbol table has the address (a linker alias).
        let mut v = declared?;
        let addr = *self.elf.symbols.get(name)?;
        v.location = LocationSource::Expression(self.expression(&addr_op(addr)));
        Some(v)
    }

    fn percpu_expression(&self, addr: u64, cpu: usize) -> Option<gimli::Expression<Reader>> {
        let (start, end) = self.elf.percpu?;
        if !(start..end).contains(&addr) {
            return None;
        }
        let offsets = *self.elf.symbols.get("__per_cpu_offset")?;
        let mut ops = addr_op(offsets + 8 * cpu as u64);
        ops.push(gimli::DW_OP_deref.0);
        ops.extend(addr_op(addr));
        ops.push(gimli::DW_OP_plus.0);
        Some(self.expression(&ops))
    }

    fn expression(&self, ops: &[u8]) -> gimli::Expression<Reader> {
        let endian = self.dwarf.debug_info.reader().endian();
        gimli::Expression(gimli::EndianArcSlice::new(Arc::from(ops), endian))
    }
}

/// `DW_OP_addr <addr>` (64-bit).
fn addr_op(addr: u64) -> Vec<u8> {
    let mut ops = vec![gimli::DW_OP_addr.0];
    ops.extend_from_slice(&addr.to_le_bytes());
    ops
}

/// The address of an expression that is just `DW_OP_addr <addr>`.
fn single_addr(expr: &gimli::Expression<Reader>) -> Option<u64> {
    let bytes = expr.0.to_slice().ok()?;
    if bytes.len() == 9 && bytes[0] == gimli::DW_OP_addr.0 {
        Some(u64::from_le_bytes(bytes[1..9].try_into().ok()?))
    } else {
        None
    }
}

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
//! Types by name for `evaluate`'s casts (`(struct task_struct *)p`) and
//! for reading kernel structures ([`super::modules`]): a definition over a
//! declaration, and for `T *` a pointer type DWARF already has.
//!
//! The name index over every unit's file-scope variables and types is
//! built once, on the first lookup (a full pass over a kernel's DWARF takes
//! seconds).

use std::collections::HashMap;
use std::sync::OnceLock;

use gimli::{Reader as _, Section as _};
use object::{Object, ObjectSection, ObjectSymbol};

use super::scopes::{origin_name, LocationSource, Variable, VariableKind};
use super::{types, Reader, Symbols};

/// What the ELF file says beyond DWARF, for [`Symbols::global_named`].
#[derive(Default)]
pub struct ElfData {
    /// Data symbols (objects and untyped ones: linker aliases) by name.
    symbols: HashMap<String, u64>,
    /// `.data..percpu`'s link-time range, when the file has per-CPU data.
    percpu: Option<(u64, u64)>,
    index: OnceLock<NameIndex>,
    /// How `struct module` and its section list are laid out, once.
    pub(super) module_layout: OnceLock<Option<super::modules::Layout>>,
}

type Dies = Vec<(usize, gimli::UnitOffset)>;

/// File-scope DIEs by name: (unit index, DIE offset).
#[derive(Default)]
struct NameIndex {
    variables: HashMap<String, Dies>,
    /// `struct task_struct`, `union …`, `enum …`, typedef and base type
    /// names; definitions before declarations.
    types: HashMap<String, Dies>,
    /// Pointer types by their target's name, to definitions first.
    pointers: HashMap<String, Dies>,
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
            module_layout: OnceLock::new(),
        }
    }
}

impl Symbols {
    fn name_index(&self) -> &NameIndex {
        self.elf.index.get_or_init(|| {
            let mut index = NameIndex::default();
            let mut declared_types = Vec::new();
            let mut declared_pointers = Vec::new();
            self.file_scope_entries(
                |_| true,
                |unit_index, entry| {
                    let unit = &self.units[unit_index];
                    let at = (unit_index, entry.offset());
                    match entry.tag() {
                        gimli::DW_TAG_variable => {
                            if let Some(name) = origin_name(&self.dwarf, unit, entry) {
                                index.variables.entry(name).or_default().push(at);
                            }
                        }
                        gimli::DW_TAG_pointer_type => {
                            let Ok(Some(gimli::AttributeValue::UnitRef(target))) =
                                entry.attr_value(gimli::DW_AT_type)
                            else {
                                return;
                            };
                            let Ok(target) = unit.entry(target) else {
                                return;
                            };
                            if let Some(name) = type_key(&self.dwarf, unit, &target) {
                                if is_declaration(&target) {
                                    declared_pointers.push((name, at));
                                } else {
                                    index.pointers.entry(name).or_default().push(at);
                                }
                            }
                        }
                        _ => {
                            if let Some(name) = type_key(&self.dwarf, unit, entry) {
                                if is_declaration(entry) {
                                    declared_types.push((name, at));
                                } else {
                                    index.types.entry(name).or_default().push(at);
                                }
                            }
                        }
                    }
                },
            );
            for (name, at) in declared_types {
                index.types.entry(name).or_default().push(at);
            }
            for (name, at) in declared_pointers {
                index.pointers.entry(name).or_default().push(at);
            }
            index
        })
    }

    /// A type by the name C writes it with: `struct module`, `u64`,
    /// `unsigned long`; with a trailing `*`, a pointer type to it that
    /// the DWARF has.
    pub fn type_named(&self, name: &str) -> Option<types::TypeId> {
        let name = name.trim();
        let (map, name) = match name.strip_suffix('*') {
            Some(target) => (&self.name_index().pointers, target.trim_end()),
            None => (&self.name_index().types, name),
        };
        let &(unit, offset) = map.get(name)?.first()?;
        Some(types::TypeId { unit, offset })
    }

    /// A file-scope variable by name (see the module doc); `cpu` picks
    /// the copy of a per-CPU variable.
    pub fn global_named(&self, name: &str, cpu: usize) -> Option<Variable> {
        let candidates = self.name_index().variables.get(name)?;
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

    /// The unit (index) whose code holds `pc`, through addr2line's
    /// address index rather than a walk over every unit.
    pub fn unit_at(&self, pc: u64) -> Option<usize> {
        let unit = self
            .context
            .find_dwarf_and_unit(pc.wrapping_sub(self.bias))
            .skip_all_loads()?;
        let offset = unit.unit.header.offset();
        self.units.iter().position(|u| u.header.offset() == offset)
    }

    /// A type by C name defined in the unit of function `function` (a
    /// structure private to one source file, such as 6.1's `struct
    /// module_sect_attrs` in kernel/module/sysfs.c), else anywhere. One
    /// unit is searched, not all: no full pass over a kernel's DWARF.
    pub fn type_beside(&self, function: &str, name: &str) -> Option<types::TypeId> {
        let found = self
            .function_named(function)
            .and_then(|f| self.unit_at(f.low))
            .and_then(|unit_index| {
                let unit = &self.units[unit_index];
                let mut tree = unit.entries_tree(None).ok()?;
                let root = tree.root().ok()?;
                let mut children = root.children();
                while let Ok(Some(child)) = children.next() {
                    let entry = child.entry();
                    if !is_declaration(entry)
                        && type_key(&self.dwarf, unit, entry).as_deref() == Some(name)
                    {
                        return Some(types::TypeId {
                            unit: unit_index,
                            offset: entry.offset(),
                        });
                    }
                }
                None
            });
        found.or_else(|| self.type_named(name))
    }

    /// A data symbol's address from the ELF symbol table.
    pub fn data_symbol(&self, name: &str) -> Option<u64> {
        self.elf.symbols.get(name).copied()
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
        gimli::Expression(gimli::EndianReader::new(ops.into(), endian))
    }
}

/// The name C gives a type DIE (`struct task_struct`, `u64`), if it is a
/// named type.
fn type_key(
    dwarf: &gimli::Dwarf<Reader>,
    unit: &gimli::Unit<Reader>,
    entry: &gimli::DebuggingInformationEntry<Reader>,
) -> Option<String> {
    let prefix = match entry.tag() {
        gimli::DW_TAG_structure_type => "struct ",
        gimli::DW_TAG_union_type => "union ",
        gimli::DW_TAG_enumeration_type => "enum ",
        gimli::DW_TAG_typedef | gimli::DW_TAG_base_type => "",
        _ => return None,
    };
    let name = entry.attr_value(gimli::DW_AT_name).ok()??;
    let name = dwarf.attr_string(unit, name).ok()?;
    Some(format!("{prefix}{}", name.to_string_lossy().ok()?))
}

fn is_declaration(entry: &gimli::DebuggingInformationEntry<Reader>) -> bool {
    matches!(
        entry.attr_value(gimli::DW_AT_declaration),
        Ok(Some(gimli::AttributeValue::Flag(true)))
    )
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

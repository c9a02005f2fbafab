//! The variables of a frame: which DWARF scope (function, inlined call,
//! lexical block) holds the pc, its parameters and locals, globals, and the
//! evaluation of their location expressions (fbreg, breg, reg, addr,
//! piece, stack_value, location lists) against the frame's registers.

use anyhow::{bail, Result};
use gimli::{AttributeValue, Location, Reader as _, UnitOffset};

use super::types::{Place, TypeId};
use super::unwind::FrameRegs;
use super::{Function, Reader, Symbols, TargetMemory};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VariableKind {
    Argument,
    Local,
    Global,
}

/// Where a variable's value comes from, before it is evaluated.
#[derive(Clone, Debug)]
pub enum LocationSource {
    Expression(gimli::Expression<Reader>),
    Constant(Vec<u8>),
    Unavailable(String),
}

#[derive(Clone, Debug)]
pub struct Variable {
    pub name: String,
    pub ty: Option<TypeId>,
    pub unit: usize,
    pub kind: VariableKind,
    pub location: LocationSource,
}

/// The DIEs from the function down to the innermost inlined call that
/// holds a pc (outermost first).
#[derive(Clone, Debug)]
pub struct ScopeChain {
    pub unit: usize,
    pub chain: Vec<UnitOffset>,
}

pub fn dwarf_functions(
    dwarf: &gimli::Dwarf<Reader>,
    units: &[gimli::Unit<Reader>],
) -> Vec<Function> {
    let mut out = Vec::new();
    for unit in units {
        let mut entries = unit.entries();
        while let Ok(Some((_, entry))) = entries.next_dfs() {
            if entry.tag() != gimli::DW_TAG_subprogram {
                continue;
            }
            let Some(name) = origin_name(dwarf, unit, entry) else {
                continue;
            };
            let Ok(mut ranges) = dwarf.die_ranges(unit, entry) else {
                continue;
            };
            let (mut low, mut high) = (u64::MAX, 0);
            while let Ok(Some(r)) = ranges.next() {
                low = low.min(r.begin);
                high = high.max(r.end);
            }
            if low < high && low != 0 {
                out.push(Function { name, low, high });
            }
        }
    }
    out
}

/// A DIE's name, following DW_AT_abstract_origin / DW_AT_specification.
pub(super) fn origin_name(
    dwarf: &gimli::Dwarf<Reader>,
    unit: &gimli::Unit<Reader>,
    entry: &gimli::DebuggingInformationEntry<Reader>,
) -> Option<String> {
    let mut current = entry.clone();
    for _ in 0..4 {
        if let Ok(Some(v)) = current.attr_value(gimli::DW_AT_name) {
            return dwarf
                .attr_string(unit, v)
                .ok()?
                .to_string_lossy()
                .ok()
                .map(|s| s.into_owned());
        }
        let origin = current
            .attr_value(gimli::DW_AT_abstract_origin)
            .ok()
            .flatten()
            .or_else(|| {
                current
                    .attr_value(gimli::DW_AT_specification)
                    .ok()
                    .flatten()
            });
        match origin {
            Some(AttributeValue::UnitRef(off)) => current = unit.entry(off).ok()?,
            _ => return None,
        }
    }
    None
}

fn die_contains(
    dwarf: &gimli::Dwarf<Reader>,
    unit: &gimli::Unit<Reader>,
    entry: &gimli::DebuggingInformationEntry<Reader>,
    pc: u64,
) -> bool {
    let Ok(mut ranges) = dwarf.die_ranges(unit, entry) else {
        return false;
    };
    while let Ok(Some(r)) = ranges.next() {
        if r.begin <= pc && pc < r.end {
            return true;
        }
    }
    false
}

impl Symbols {
    /// The function and inlined calls holding `probe`.
    pub fn scope_chain(&self, probe: u64) -> Option<ScopeChain> {
        let probe = probe.wrapping_sub(self.bias);
        for (index, unit) in self.units.iter().enumerate() {
            let mut chain = Vec::new();
            let Ok(mut tree) = unit.entries_tree(None) else {
                continue;
            };
            let Ok(root) = tree.root() else { continue };
            if self.walk_chain(unit, root, probe, &mut chain).is_ok() && !chain.is_empty() {
                return Some(ScopeChain { unit: index, chain });
            }
        }
        None
    }

    /// How many of the innermost inlined calls holding `pc` begin at `pc`:
    /// those gdb hides at a stop there (its `skip_inline_frames`), showing
    /// the stop at their call site in the function they were inlined into,
    /// as if the call were yet to be made. A call begins at `pc` when its
    /// first range does (gdb's entry pc), or when `pc` starts one of its
    /// ranges and `pc - 1` is outside it (code entering it from elsewhere).
    pub fn inlined_calls_starting_at(&self, pc: u64) -> usize {
        let Some(scope) = self.scope_chain(pc) else {
            return 0;
        };
        let pc = pc.wrapping_sub(self.bias);
        let unit = &self.units[scope.unit];
        let begins_here = |entry: &gimli::DebuggingInformationEntry<Reader>| {
            let Ok(mut ranges) = self.dwarf.die_ranges(unit, entry) else {
                return false;
            };
            let mut first = true;
            let mut starts_a_range = false;
            while let Ok(Some(r)) = ranges.next() {
                if r.begin == pc {
                    if first {
                        return true;
                    }
                    starts_a_range = true;
                }
                first = false;
            }
            starts_a_range && !die_contains(&self.dwarf, unit, entry, pc.wrapping_sub(1))
        };
        scope
            .chain
            .iter()
            .rev()
            .map_while(|&offset| unit.entry(offset).ok())
            .take_while(|entry| {
                entry.tag() == gimli::DW_TAG_inlined_subroutine && begins_here(entry)
            })
            .count()
    }

    fn walk_chain(
        &self,
        unit: &gimli::Unit<Reader>,
        node: gimli::EntriesTreeNode<Reader>,
        probe: u64,
        chain: &mut Vec<UnitOffset>,
    ) -> Result<()> {
        let mut children = node.children();
        while let Some(child) = children.next()? {
            let entry = child.entry();
            let tag = entry.tag();
            let is_scope =
                tag == gimli::DW_TAG_subprogram || tag == gimli::DW_TAG_inlined_subroutine;
            if is_scope || tag == gimli::DW_TAG_lexical_block {
                if !die_contains(&self.dwarf, unit, entry, probe) {
                    continue;
                }
                if is_scope {
                    chain.push(entry.offset());
                }
                self.walk_chain(unit, child, probe, chain)?;
                return Ok(());
            }
            if tag == gimli::DW_TAG_namespace || tag == gimli::DW_TAG_module {
                self.walk_chain(unit, child, probe, chain)?;
            }
        }
        Ok(())
    }

    /// Parameters and locals of the scope at `inline_depth` (0 = the
    /// innermost inlined call) that are live at `probe`.
    pub fn frame_variables(&self, probe: u64, inline_depth: usize) -> Vec<Variable> {
        let Some(scope) = self.scope_chain(probe) else {
            return Vec::new();
        };
        let Some(&die) = scope
            .chain
            .len()
            .checked_sub(1 + inline_depth)
            .and_then(|i| scope.chain.get(i))
        else {
            return Vec::new();
        };
        let unit = &self.units[scope.unit];
        let mut out = Vec::new();
        if let Ok(mut tree) = unit.entries_tree(Some(die)) {
            if let Ok(root) = tree.root() {
                let _ = self.collect_variables(
                    scope.unit,
                    root,
                    probe.wrapping_sub(self.bias),
                    &mut out,
                );
            }
        }
        out
    }

    fn collect_variables(
        &self,
        unit_index: usize,
        node: gimli::EntriesTreeNode<Reader>,
        probe: u64,
        out: &mut Vec<Variable>,
    ) -> Result<()> {
        let unit = &self.units[unit_index];
        let mut children = node.children();
        while let Some(child) = children.next()? {
            let entry = child.entry();
            match entry.tag() {
                gimli::DW_TAG_formal_parameter | gimli::DW_TAG_variable => {
                    let kind = if entry.tag() == gimli::DW_TAG_formal_parameter {
                        VariableKind::Argument
                    } else {
                        VariableKind::Local
                    };
                    if let Some(v) = self.variable_of(unit_index, entry, kind, Some(probe)) {
                        out.push(v);
                    }
                }
                gimli::DW_TAG_lexical_block if die_contains(&self.dwarf, unit, entry, probe) => {
                    self.collect_variables(unit_index, child, probe, out)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub(super) fn variable_of(
        &self,
        unit_index: usize,
        entry: &gimli::DebuggingInformationEntry<Reader>,
        kind: VariableKind,
        probe: Option<u64>,
    ) -> Option<Variable> {
        let unit = &self.units[unit_index];
        let name = origin_name(&self.dwarf, unit, entry)?;
        let mut ty = self.type_of_die(unit_index, entry);
        // An inlined variable's type is on its abstract origin; a C global
        // defined after its declaration (the kernel's init_task) has it on
        // the declaration its DW_AT_specification names.
        for origin in [gimli::DW_AT_abstract_origin, gimli::DW_AT_specification] {
            if ty.is_some() {
                break;
            }
            if let Ok(Some(AttributeValue::UnitRef(off))) = entry.attr_value(origin) {
                if let Ok(origin) = unit.entry(off) {
                    ty = self.type_of_die(unit_index, &origin);
                }
            }
        }
        let location = match entry.attr_value(gimli::DW_AT_location).ok().flatten() {
            Some(AttributeValue::Exprloc(expr)) => LocationSource::Expression(expr),
            Some(
                value @ (AttributeValue::LocationListsRef(_)
                | AttributeValue::SecOffset(_)
                | AttributeValue::DebugLocListsIndex(_)),
            ) => {
                let pc = probe?;
                let mut found = LocationSource::Unavailable("optimized out".into());
                if let Ok(Some(mut list)) = self.dwarf.attr_locations(unit, value) {
                    while let Ok(Some(loc)) = list.next() {
                        if loc.range.begin <= pc && pc < loc.range.end {
                            found = LocationSource::Expression(loc.data);
                            break;
                        }
                    }
                }
                found
            }
            _ => match entry.attr_value(gimli::DW_AT_const_value).ok().flatten() {
                Some(AttributeValue::Block(b)) => {
                    LocationSource::Constant(b.to_slice().ok()?.into_owned())
                }
                Some(AttributeValue::Sdata(v)) => {
                    LocationSource::Constant(v.to_le_bytes().to_vec())
                }
                Some(v) => match v.udata_value() {
                    Some(u) => LocationSource::Constant(u.to_le_bytes().to_vec()),
                    None => LocationSource::Unavailable("optimized out".into()),
                },
                None => LocationSource::Unavailable("optimized out".into()),
            },
        };
        Some(Variable {
            name,
            ty,
            unit: unit_index,
            kind,
            location,
        })
    }

    /// Variables at file scope with a fixed address (C globals and statics),
    /// of the unit holding `pc`, or of every unit.
    pub fn globals(&self, pc: Option<u64>) -> Vec<Variable> {
        let unit_of_pc = pc.and_then(|pc| self.scope_chain(pc)).map(|s| s.unit);
        let mut out = Vec::new();
        self.file_scope_entries(
            |index| unit_of_pc.is_none_or(|u| u == index),
            |index, entry| {
                if entry.tag() != gimli::DW_TAG_variable {
                    return;
                }
                if let Some(v) = self.variable_of(index, entry, VariableKind::Global, None) {
                    if matches!(v.location, LocationSource::Expression(_))
                        && !out.iter().any(|o: &Variable| o.name == v.name)
                    {
                        out.push(v);
                    }
                }
            },
        );
        out
    }

    /// Calls `f` with each file-scope DIE (variables, types …) of the
    /// units `wanted` takes (by index).
    pub(super) fn file_scope_entries(
        &self,
        wanted: impl Fn(usize) -> bool,
        mut f: impl FnMut(usize, &gimli::DebuggingInformationEntry<Reader>),
    ) {
        for (index, unit) in self.units.iter().enumerate() {
            if !wanted(index) {
                continue;
            }
            let Ok(mut tree) = unit.entries_tree(None) else {
                continue;
            };
            let Ok(root) = tree.root() else { continue };
            let mut children = root.children();
            while let Ok(Some(child)) = children.next() {
                f(index, child.entry());
            }
        }
    }

    /// The frame base (DW_AT_frame_base) of the function holding `probe`.
    pub async fn frame_base<M: TargetMemory>(
        &self,
        probe: u64,
        regs: &FrameRegs,
        mem: &mut M,
    ) -> Option<u64> {
        let scope = self.scope_chain(probe)?;
        let unit = &self.units[scope.unit];
        let entry = unit.entry(*scope.chain.first()?).ok()?;
        let expr = match entry.attr_value(gimli::DW_AT_frame_base).ok()?? {
            AttributeValue::Exprloc(e) => e,
            value => {
                let mut list = self.dwarf.attr_locations(unit, value).ok()??;
                let mut found = None;
                while let Ok(Some(loc)) = list.next() {
                    let file_probe = probe.wrapping_sub(self.bias);
                    if loc.range.begin <= file_probe && file_probe < loc.range.end {
                        found = Some(loc.data);
                        break;
                    }
                }
                found?
            }
        };
        match self
            .evaluate_location(scope.unit, &expr, regs, None, mem)
            .await
            .ok()?
        {
            Place::Memory(addr) => Some(addr),
            Place::Register(_, bytes) | Place::Bytes(bytes) => {
                Some(super::types::int_of(&bytes, false) as u64)
            }
            Place::Unavailable(_) => None,
        }
    }

    /// Evaluates a location expression: memory address, register, or the
    /// bytes of a computed value (pieces joined).
    pub async fn evaluate_location<M: TargetMemory>(
        &self,
        unit_index: usize,
        expr: &gimli::Expression<Reader>,
        regs: &FrameRegs,
        frame_base: Option<u64>,
        mem: &mut M,
    ) -> Result<Place> {
        let unit = &self.units[unit_index];
        let mut eval = expr.clone().evaluation(unit.encoding());
        let mut step = eval.evaluate()?;
        loop {
            use gimli::EvaluationResult as E;
            step = match step {
                E::Complete => break,
                E::RequiresMemory { address, size, .. } => {
                    let bytes = mem.read(address, size as usize).await?;
                    if bytes.len() < size as usize {
                        bail!("memory at {address:#x} is not readable");
                    }
                    eval.resume_with_memory(gimli::Value::Generic(super::types::int_of(
                        &bytes, false,
                    ) as u64))?
                }
                E::RequiresRegister { register, .. } => {
                    let Some(value) = regs.get(register.0) else {
                        return Ok(Place::Unavailable(format!(
                            "register {} is not known in this frame",
                            register.0
                        )));
                    };
                    eval.resume_with_register(gimli::Value::Generic(value))?
                }
                E::RequiresFrameBase => match frame_base {
                    Some(fb) => eval.resume_with_frame_base(fb)?,
                    None => return Ok(Place::Unavailable("the frame base is not known".into())),
                },
                E::RequiresCallFrameCfa => match regs.cfa {
                    Some(cfa) => eval.resume_with_call_frame_cfa(cfa)?,
                    None => return Ok(Place::Unavailable("the frame's CFA is not known".into())),
                },
                E::RequiresRelocatedAddress(addr) => {
                    eval.resume_with_relocated_address(addr.wrapping_add(self.bias))?
                }
                E::RequiresIndexedAddress { index, .. } => {
                    let addr = self.dwarf.address(unit, index)?.wrapping_add(self.bias);
                    eval.resume_with_indexed_address(addr)?
                }
                E::RequiresBaseType(_) => eval.resume_with_base_type(gimli::ValueType::Generic)?,
                E::RequiresEntryValue(_) => return Ok(Place::Unavailable("optimized out".into())),
                other => {
                    return Ok(Place::Unavailable(format!(
                        "unsupported location expression ({other:?})"
                    )))
                }
            };
        }
        let pieces = eval.result();
        if pieces.len() == 1 && pieces[0].size_in_bits.is_none() {
            return Ok(match &pieces[0].location {
                Location::Address { address } => Place::Memory(*address),
                Location::Register { register } => match regs.get(register.0) {
                    Some(v) => Place::Register(register.0, v.to_le_bytes().to_vec()),
                    None => Place::Unavailable(format!(
                        "register {} is not known in this frame",
                        register.0
                    )),
                },
                Location::Value { value } => Place::Bytes(value_bytes(value)),
                Location::Bytes { value } => Place::Bytes(value.to_slice()?.into_owned()),
                Location::Empty => Place::Unavailable("optimized out".into()),
                Location::ImplicitPointer { .. } => Place::Unavailable("implicit pointer".into()),
            });
        }
        // Pieces: assemble the bytes (a variable split across registers).
        let mut bytes = Vec::new();
        for piece in &pieces {
            let size = piece
                .size_in_bits
                .map(|b| b.div_ceil(8) as usize)
                .unwrap_or(8);
            let mut chunk = match &piece.location {
                Location::Address { address } => mem.read(*address, size).await?,
                Location::Register { register } => match regs.get(register.0) {
                    Some(v) => v.to_le_bytes().to_vec(),
                    None => {
                        return Ok(Place::Unavailable(
                            "part of it is in an unknown register".into(),
                        ))
                    }
                },
                Location::Value { value } => value_bytes(value),
                Location::Bytes { value } => value.to_slice()?.into_owned(),
                _ => return Ok(Place::Unavailable("partly optimized out".into())),
            };
            chunk.resize(size, 0);
            bytes.extend(chunk);
        }
        Ok(Place::Bytes(bytes))
    }
}

fn value_bytes(value: &gimli::Value) -> Vec<u8> {
    match *value {
        gimli::Value::Generic(v) | gimli::Value::U64(v) => v.to_le_bytes().to_vec(),
        gimli::Value::I8(v) => v.to_le_bytes().to_vec(),
        gimli::Value::U8(v) => v.to_le_bytes().to_vec(),
        gimli::Value::I16(v) => v.to_le_bytes().to_vec(),
        gimli::Value::U16(v) => v.to_le_bytes().to_vec(),
        gimli::Value::I32(v) => v.to_le_bytes().to_vec(),
        gimli::Value::U32(v) => v.to_le_bytes().to_vec(),
        gimli::Value::I64(v) => v.to_le_bytes().to_vec(),
        gimli::Value::F32(v) => v.to_le_bytes().to_vec(),
        gimli::Value::F64(v) => v.to_le_bytes().to_vec(),
    }
}

//! Types from DWARF (base, enum, pointer, struct/union, array, typedef,
//! qualifiers, bitfields) and how values of them are shown, parsed and
//! expanded. Types are resolved lazily by DIE reference and cached, so a
//! self-referential struct costs nothing until it is expanded.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use gimli::{AttributeValue, Reader as _, UnitOffset};

use super::{Language, Reader, Symbols};

/// A type by its DIE: (unit index, offset in the unit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TypeId {
    pub unit: usize,
    pub offset: UnitOffset,
}

#[derive(Clone, Debug)]
pub struct Member {
    pub name: String,
    pub ty: Option<TypeId>,
    pub offset: u64,
    /// (bit offset from the start of `offset`, bit size) for bitfields.
    pub bits: Option<(u64, u64)>,
    /// A C++ base class (DW_TAG_inheritance), shown as a member named
    /// after its type, as gdb and lldb do.
    pub base: bool,
}

/// A DW_TAG_variant_part: the struct holds one of several variants, chosen
/// by the value of a discriminant member (Rust enums, including the niche
/// layouts where the discriminant is stored inside a variant's payload).
#[derive(Clone, Debug)]
pub struct VariantPart {
    /// Absent when the enum has a single variant.
    pub discriminant: Option<Member>,
    pub variants: Vec<Variant>,
}

#[derive(Clone, Debug)]
pub struct Variant {
    /// None for the default variant: the one that holds for every value
    /// no other variant names (rustc's dataful variant of a niche layout).
    pub discr_value: Option<u64>,
    /// The variant's payload: a member named after the variant whose type
    /// is a struct of the variant's fields.
    pub member: Member,
}

#[derive(Clone, Debug)]
pub enum TypeKind {
    Base {
        encoding: gimli::DwAte,
    },
    Enum {
        enumerators: Vec<(String, i64)>,
        signed: bool,
    },
    /// A pointer, or a C++ reference (a pointer to DWARF, shown as gdb
    /// shows it: `@0x…: value`).
    Pointer {
        target: Option<TypeId>,
        reference: Option<Reference>,
    },
    Struct {
        members: Vec<Member>,
        union: bool,
        variants: Option<VariantPart>,
        /// Template type parameters by name (`T` of `Vec<T>`, `_Tp` of
        /// `std::vector<_Tp>`): the element types of library containers.
        params: Vec<(String, Option<TypeId>)>,
    },
    /// `counts` per dimension, outermost first; None for `[]`.
    Array {
        element: Option<TypeId>,
        counts: Vec<Option<u64>>,
    },
    Typedef {
        target: Option<TypeId>,
    },
    /// const, volatile, restrict, atomic: shown in the name, transparent
    /// for values.
    Qualified {
        target: Option<TypeId>,
    },
    Function,
    Other,
}

/// Which C++ reference a pointer type is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reference {
    /// `T &`
    Lvalue,
    /// `T &&`
    Rvalue,
}

#[derive(Clone, Debug)]
pub struct Type {
    pub name: String,
    pub size: Option<u64>,
    pub kind: TypeKind,
}

/// A value's storage.
#[derive(Clone, Debug)]
pub enum Place {
    Memory(u64),
    /// Bytes computed by the location expression (registers, constants).
    Bytes(Vec<u8>),
    /// In a register of the frame (DWARF number), with its bytes.
    Register(u16, Vec<u8>),
    Unavailable(String),
}

impl Symbols {
    pub fn resolve_type(&self, id: TypeId) -> Arc<Type> {
        if let Some(t) = self
            .type_cache
            .lock()
            .expect("type cache")
            .get(&(id.unit, id.offset))
        {
            return t.clone();
        }
        let ty = Arc::new(self.parse_type(id).unwrap_or_else(|e| Type {
            name: format!("<unreadable type: {e}>"),
            size: None,
            kind: TypeKind::Other,
        }));
        self.type_cache
            .lock()
            .expect("type cache")
            .insert((id.unit, id.offset), ty.clone());
        ty
    }

    fn parse_type(&self, id: TypeId) -> Result<Type> {
        let unit = &self.units[id.unit];
        let entry = unit.entry(id.offset)?;
        let name = self.die_name(id.unit, &entry);
        let size = entry
            .attr_value(gimli::DW_AT_byte_size)?
            .and_then(|v| v.udata_value());
        let target = self.type_of_die(id.unit, &entry);
        let kind = match entry.tag() {
            gimli::DW_TAG_base_type => TypeKind::Base {
                encoding: match entry.attr_value(gimli::DW_AT_encoding)? {
                    Some(AttributeValue::Encoding(e)) => e,
                    _ => gimli::DW_ATE_signed,
                },
            },
            gimli::DW_TAG_pointer_type => TypeKind::Pointer {
                target,
                reference: None,
            },
            gimli::DW_TAG_reference_type => TypeKind::Pointer {
                target,
                reference: Some(Reference::Lvalue),
            },
            gimli::DW_TAG_rvalue_reference_type => TypeKind::Pointer {
                target,
                reference: Some(Reference::Rvalue),
            },
            gimli::DW_TAG_typedef => TypeKind::Typedef { target },
            gimli::DW_TAG_const_type
            | gimli::DW_TAG_volatile_type
            | gimli::DW_TAG_restrict_type
            | gimli::DW_TAG_atomic_type => TypeKind::Qualified { target },
            gimli::DW_TAG_subroutine_type => TypeKind::Function,
            gimli::DW_TAG_enumeration_type => {
                let mut enumerators = Vec::new();
                let mut tree = unit.entries_tree(Some(id.offset))?;
                let mut children = tree.root()?.children();
                while let Some(child) = children.next()? {
                    let e = child.entry();
                    if e.tag() == gimli::DW_TAG_enumerator {
                        let value = match e.attr_value(gimli::DW_AT_const_value)? {
                            Some(AttributeValue::Sdata(v)) => v,
                            Some(v) => v.udata_value().map(|u| u as i64).unwrap_or(0),
                            None => 0,
                        };
                        enumerators.push((self.die_name(id.unit, e), value));
                    }
                }
                let signed = target
                    .map(|t| matches!(self.resolve_type(t).kind, TypeKind::Base { encoding } if encoding == gimli::DW_ATE_signed))
                    .unwrap_or(false);
                TypeKind::Enum {
                    enumerators,
                    signed,
                }
            }
            gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type | gimli::DW_TAG_class_type => {
                let mut members = Vec::new();
                let mut variants = None;
                let mut params = Vec::new();
                let mut tree = unit.entries_tree(Some(id.offset))?;
                let mut children = tree.root()?.children();
                while let Some(child) = children.next()? {
                    let e = child.entry();
                    match e.tag() {
                        gimli::DW_TAG_member | gimli::DW_TAG_inheritance => {
                            members.push(self.parse_member(id.unit, e)?)
                        }
                        gimli::DW_TAG_template_type_parameter => {
                            params.push((self.die_name(id.unit, e), self.type_of_die(id.unit, e)))
                        }
                        gimli::DW_TAG_variant_part => {
                            variants = Some(self.parse_variant_part(id.unit, child)?)
                        }
                        _ => {}
                    }
                }
                TypeKind::Struct {
                    members,
                    union: entry.tag() == gimli::DW_TAG_union_type,
                    variants,
                    params,
                }
            }
            gimli::DW_TAG_array_type => {
                let mut counts = Vec::new();
                let mut tree = unit.entries_tree(Some(id.offset))?;
                let mut children = tree.root()?.children();
                while let Some(child) = children.next()? {
                    let e = child.entry();
                    if e.tag() != gimli::DW_TAG_subrange_type {
                        continue;
                    }
                    let count = e
                        .attr_value(gimli::DW_AT_count)?
                        .and_then(|v| v.udata_value())
                        .or_else(|| {
                            let upper = e
                                .attr_value(gimli::DW_AT_upper_bound)
                                .ok()??
                                .udata_value()?;
                            let lower = e
                                .attr_value(gimli::DW_AT_lower_bound)
                                .ok()?
                                .and_then(|v| v.udata_value())
                                .unwrap_or(0);
                            Some(upper + 1 - lower)
                        });
                    counts.push(count);
                }
                if counts.is_empty() {
                    counts.push(None);
                }
                TypeKind::Array {
                    element: target,
                    counts,
                }
            }
            _ => TypeKind::Other,
        };
        let mut ty = Type { name, size, kind };
        ty.name = self.type_display_name(&ty, self.languages[id.unit], 0);
        if ty.size.is_none() {
            ty.size = self.type_size_of(&ty);
        }
        Ok(ty)
    }

    fn parse_member(
        &self,
        unit: usize,
        e: &gimli::DebuggingInformationEntry<Reader>,
    ) -> Result<Member> {
        let mut offset = e
            .attr_value(gimli::DW_AT_data_member_location)?
            .and_then(|v| v.udata_value())
            .unwrap_or(0);
        let bit_size = e
            .attr_value(gimli::DW_AT_bit_size)?
            .and_then(|v| v.udata_value());
        let mut bits = None;
        if let Some(bit_size) = bit_size {
            if let Some(data_bit) = e
                .attr_value(gimli::DW_AT_data_bit_offset)?
                .and_then(|v| v.udata_value())
            {
                // DWARF 4+: bits from the start of the struct.
                offset = data_bit / 8;
                bits = Some((data_bit % 8, bit_size));
            } else if let Some(old_bit) = e
                .attr_value(gimli::DW_AT_bit_offset)?
                .and_then(|v| v.udata_value())
            {
                // DWARF 2/3: bits from the most significant end of the storage unit.
                let storage = e
                    .attr_value(gimli::DW_AT_byte_size)?
                    .and_then(|v| v.udata_value())
                    .unwrap_or(4);
                bits = Some((storage * 8 - old_bit - bit_size, bit_size));
            } else {
                bits = Some((0, bit_size));
            }
        }
        let ty = self.type_of_die(unit, e);
        let base = e.tag() == gimli::DW_TAG_inheritance;
        let name = if base {
            ty.map(|t| self.scoped_name(t))
                .unwrap_or_default()
                .trim_start_matches("struct ")
                .to_string()
        } else {
            self.die_name(unit, e)
        };
        Ok(Member {
            name,
            ty,
            offset,
            bits,
            base,
        })
    }

    /// A type's name with the namespaces, modules and classes around its
    /// DIE (`shop::Item`), as gdb writes a base class. Walks the unit's
    /// DIEs up to it: for base classes only, which are few.
    fn scoped_name(&self, id: TypeId) -> String {
        let name = self.resolve_type(id).name.clone();
        let unit = &self.units[id.unit];
        let mut scopes: Vec<Option<String>> = Vec::new();
        let mut entries = unit.entries();
        let mut depth = 0isize;
        while let Ok(Some((delta, entry))) = entries.next_dfs() {
            depth += delta;
            let Ok(level) = usize::try_from(depth) else {
                break;
            };
            scopes.truncate(level);
            if entry.offset() == id.offset {
                let mut path: Vec<String> = scopes.iter().flatten().cloned().collect();
                path.push(name);
                return path.join("::");
            }
            let scope = matches!(
                entry.tag(),
                gimli::DW_TAG_namespace
                    | gimli::DW_TAG_module
                    | gimli::DW_TAG_structure_type
                    | gimli::DW_TAG_class_type
                    | gimli::DW_TAG_union_type
            )
            .then(|| self.die_name(id.unit, entry))
            .filter(|n| !n.is_empty());
            scopes.push(scope);
        }
        name
    }

    fn parse_variant_part(
        &self,
        unit_index: usize,
        part: gimli::EntriesTreeNode<Reader>,
    ) -> Result<VariantPart> {
        let unit = &self.units[unit_index];
        let discr_offset = match part.entry().attr_value(gimli::DW_AT_discr)? {
            Some(AttributeValue::UnitRef(o)) => Some(o),
            _ => None,
        };
        let mut discriminant = None;
        let mut variants = Vec::new();
        let mut children = part.children();
        while let Some(child) = children.next()? {
            let e = child.entry();
            match e.tag() {
                gimli::DW_TAG_member if Some(e.offset()) == discr_offset => {
                    discriminant = Some(self.parse_member(unit_index, e)?)
                }
                gimli::DW_TAG_variant => {
                    let discr_value = match e.attr_value(gimli::DW_AT_discr_value)? {
                        Some(AttributeValue::Sdata(v)) => Some(v as u64),
                        Some(v) => v.udata_value(),
                        None => None,
                    };
                    let mut fields = child.children();
                    while let Some(field) = fields.next()? {
                        if field.entry().tag() == gimli::DW_TAG_member {
                            variants.push(Variant {
                                discr_value,
                                member: self.parse_member(unit_index, field.entry())?,
                            });
                            break;
                        }
                    }
                }
                _ => {}
            }
        }
        if discriminant.is_none() {
            if let Some(o) = discr_offset {
                // The discriminant may live outside the variant part.
                discriminant = Some(self.parse_member(unit_index, &unit.entry(o)?)?);
            }
        }
        Ok(VariantPart {
            discriminant,
            variants,
        })
    }

    /// The variant a value of a variant-part struct holds, from its bytes.
    pub fn active_variant<'a>(&self, part: &'a VariantPart, bytes: &[u8]) -> Option<&'a Variant> {
        let Some(discr) = &part.discriminant else {
            return part.variants.first();
        };
        let (_, raw) = self.member_bytes(discr, bytes)?;
        let value = int_of(&raw, false) as u64;
        part.variants
            .iter()
            .find(|v| v.discr_value == Some(value))
            .or_else(|| part.variants.iter().find(|v| v.discr_value.is_none()))
    }

    fn type_display_name(&self, ty: &Type, language: Language, depth: u32) -> String {
        let target_name = |t: &Option<TypeId>| -> String {
            match t {
                Some(t) if depth < 8 => self.resolve_type(*t).name.clone(),
                Some(_) => "…".into(),
                None => "void".into(),
            }
        };
        match &ty.kind {
            // Rust names its pointer types (`&str`, `*mut u8`, `Box<T>`).
            TypeKind::Pointer { .. } if !ty.name.is_empty() => ty.name.clone(),
            TypeKind::Pointer { target, reference } => {
                let sigil = match reference {
                    None => "*",
                    Some(Reference::Lvalue) => "&",
                    Some(Reference::Rvalue) => "&&",
                };
                format!("{} {sigil}", target_name(target))
            }
            TypeKind::Qualified { target } => {
                let qualifier = if ty.name.is_empty() {
                    "const"
                } else {
                    ty.name.as_str()
                };
                let inner = target_name(target);
                // gcc puts a qualifier on both an array and its elements.
                if inner.starts_with(&format!("{qualifier} ")) {
                    inner
                } else {
                    format!("{qualifier} {inner}")
                }
            }
            // C++ and Rust name a struct by its name alone.
            TypeKind::Struct { .. } | TypeKind::Enum { .. }
                if !ty.name.is_empty() && language != Language::C =>
            {
                ty.name.clone()
            }
            TypeKind::Struct { union, .. } => {
                format!(
                    "{} {}",
                    if *union { "union" } else { "struct" },
                    if ty.name.is_empty() {
                        "<anonymous>"
                    } else {
                        &ty.name
                    }
                )
            }
            TypeKind::Enum { .. } => format!(
                "enum {}",
                if ty.name.is_empty() {
                    "<anonymous>"
                } else {
                    &ty.name
                }
            ),
            TypeKind::Array { element, counts } => {
                let dims: String = counts
                    .iter()
                    .map(|c| c.map(|c| format!("[{c}]")).unwrap_or("[]".into()))
                    .collect();
                format!("{}{dims}", target_name(element))
            }
            TypeKind::Function => "function".into(),
            _ if ty.name.is_empty() => "void".into(),
            _ => ty.name.clone(),
        }
    }

    fn type_size_of(&self, ty: &Type) -> Option<u64> {
        match &ty.kind {
            TypeKind::Pointer { .. } => Some(8),
            TypeKind::Typedef { target } | TypeKind::Qualified { target } => {
                target.and_then(|t| self.resolve_type(t).size)
            }
            TypeKind::Array { element, counts } => {
                let elem = self.resolve_type((*element)?).size?;
                counts.iter().try_fold(elem, |acc, c| c.map(|c| acc * c))
            }
            _ => None,
        }
    }

    /// The id of the type with typedefs and qualifiers looked through.
    pub fn strip_id(&self, mut id: TypeId) -> TypeId {
        for _ in 0..16 {
            match self.resolve_type(id).kind {
                TypeKind::Typedef { target: Some(t) } | TypeKind::Qualified { target: Some(t) } => {
                    id = t
                }
                _ => break,
            }
        }
        id
    }

    /// The type with typedefs and qualifiers looked through.
    pub fn strip(&self, id: TypeId) -> Arc<Type> {
        let mut ty = self.resolve_type(id);
        for _ in 0..16 {
            match &ty.kind {
                TypeKind::Typedef { target: Some(t) } | TypeKind::Qualified { target: Some(t) } => {
                    ty = self.resolve_type(*t)
                }
                _ => break,
            }
        }
        ty
    }

    pub fn die_name(
        &self,
        unit_index: usize,
        entry: &gimli::DebuggingInformationEntry<Reader>,
    ) -> String {
        let unit = &self.units[unit_index];
        if let Ok(Some(value)) = entry.attr_value(gimli::DW_AT_name) {
            if let Ok(s) = self.dwarf.attr_string(unit, value) {
                return s
                    .to_string_lossy()
                    .map(|s| s.into_owned())
                    .unwrap_or_default();
            }
        }
        match entry.tag() {
            gimli::DW_TAG_const_type => "const".into(),
            gimli::DW_TAG_volatile_type => "volatile".into(),
            gimli::DW_TAG_restrict_type => "restrict".into(),
            gimli::DW_TAG_atomic_type => "_Atomic".into(),
            _ => String::new(),
        }
    }

    /// Shows a value of `ty` from its bytes (gdb's notation).
    /// Integers in hex when `hex` (gdb's `p/x`).
    pub fn format_value(&self, id: Option<TypeId>, bytes: &[u8], depth: u32, hex: bool) -> String {
        let Some(id) = id else {
            return "<no type>".into();
        };
        let ty = self.strip(id);
        match &ty.kind {
            TypeKind::Base { encoding } => format_base(*encoding, bytes, hex),
            TypeKind::Enum {
                enumerators,
                signed,
            } => {
                let value = int_of(bytes, *signed);
                enumerators
                    .iter()
                    .find(|(_, v)| *v == value)
                    .map(|(n, _)| n.clone())
                    .unwrap_or_else(|| format!("{value}"))
            }
            TypeKind::Pointer { .. } => format!("{:#x}", int_of(bytes, false) as u64),
            TypeKind::Function => "<function>".into(),
            TypeKind::Struct { members, .. } => {
                if depth > 2 {
                    return "{…}".into();
                }
                let parts: Vec<String> = members
                    .iter()
                    .filter_map(|m| {
                        let (mty, mbytes) = self.member_bytes(m, bytes)?;
                        Some(format!(
                            "{} = {}",
                            m.name,
                            self.format_value(mty, &mbytes, depth + 1, hex)
                        ))
                    })
                    .collect();
                format!("{{{}}}", parts.join(", "))
            }
            TypeKind::Array { element, counts } => {
                if depth > 2 {
                    return "[…]".into();
                }
                let Some(elem_size) = self.element_size(*element, &counts[1..]) else {
                    return "[…]".into();
                };
                let count = counts[0].unwrap_or(0).min(16) as usize;
                if elem_size == 1 && self.is_char(*element) {
                    let len = bytes
                        .iter()
                        .take(counts[0].unwrap_or(0) as usize)
                        .position(|&b| b == 0)
                        .unwrap_or(bytes.len());
                    return format!(
                        "{:?}",
                        String::from_utf8_lossy(&bytes[..len.min(bytes.len())])
                    );
                }
                let mut parts = Vec::new();
                for i in 0..count {
                    let start = i * elem_size as usize;
                    let Some(chunk) = bytes.get(start..start + elem_size as usize) else {
                        break;
                    };
                    parts.push(self.format_sub_array(
                        *element,
                        &counts[1..],
                        chunk,
                        depth + 1,
                        hex,
                    ));
                }
                if counts[0].unwrap_or(0) as usize > count {
                    parts.push("…".into());
                }
                format!("[{}]", parts.join(", "))
            }
            TypeKind::Other | TypeKind::Typedef { .. } | TypeKind::Qualified { .. } => {
                hex_le(bytes)
            }
        }
    }

    fn format_sub_array(
        &self,
        element: Option<TypeId>,
        inner: &[Option<u64>],
        bytes: &[u8],
        depth: u32,
        hex: bool,
    ) -> String {
        if inner.is_empty() {
            return self.format_value(element, bytes, depth, hex);
        }
        let Some(size) = self.element_size(element, &inner[1..]) else {
            return "[…]".into();
        };
        let parts: Vec<String> = (0..inner[0].unwrap_or(0) as usize)
            .filter_map(|i| bytes.get(i * size as usize..(i + 1) * size as usize))
            .map(|chunk| self.format_sub_array(element, &inner[1..], chunk, depth + 1, hex))
            .collect();
        format!("[{}]", parts.join(", "))
    }

    /// Size of one element of an array whose remaining dimensions are `inner`.
    pub fn element_size(&self, element: Option<TypeId>, inner: &[Option<u64>]) -> Option<u64> {
        let base = self.resolve_type(element?).size?;
        inner.iter().try_fold(base, |acc, c| c.map(|c| acc * c))
    }

    pub fn is_char(&self, id: Option<TypeId>) -> bool {
        id.is_some_and(|id| {
            let ty = self.strip(id);
            matches!(ty.kind, TypeKind::Base { encoding } if encoding == gimli::DW_ATE_signed_char || encoding == gimli::DW_ATE_unsigned_char)
                && ty.size == Some(1)
        })
    }

    /// A member's type and bytes (bitfields shifted down into their own
    /// bytes), from the bytes of the whole struct.
    pub fn member_bytes(&self, member: &Member, whole: &[u8]) -> Option<(Option<TypeId>, Vec<u8>)> {
        let size = member
            .ty
            .and_then(|t| self.resolve_type(t).size)
            .unwrap_or(0) as usize;
        match member.bits {
            None => Some((
                member.ty,
                whole
                    .get(member.offset as usize..member.offset as usize + size)?
                    .to_vec(),
            )),
            Some((bit_offset, bit_size)) => {
                let start = member.offset as usize;
                let mut raw = [0u8; 16];
                let avail = whole.len().saturating_sub(start).min(16);
                raw[..avail].copy_from_slice(&whole[start..start + avail]);
                let word = u128::from_le_bytes(raw);
                let mask = if bit_size >= 128 {
                    u128::MAX
                } else {
                    (1u128 << bit_size) - 1
                };
                let mut value = (word >> bit_offset) & mask;
                let signed = member
                    .ty
                    .map(|t| matches!(self.strip(t).kind, TypeKind::Base { encoding } if encoding == gimli::DW_ATE_signed) || matches!(self.strip(t).kind, TypeKind::Enum { signed: true, .. }))
                    .unwrap_or(false);
                if signed && bit_size > 0 && bit_size < 128 && (value >> (bit_size - 1)) & 1 == 1 {
                    value |= !mask;
                }
                Some((member.ty, value.to_le_bytes()[..size.max(1)].to_vec()))
            }
        }
    }

    /// Parses what a user typed into bytes of `ty` (setVariable).
    pub fn parse_value(&self, id: Option<TypeId>, text: &str) -> Result<Vec<u8>> {
        let id = id.context("the variable has no type")?;
        let ty = self.strip(id);
        let size = ty.size.context("the variable's size is unknown")? as usize;
        let text = text.trim();
        let bytes = match &ty.kind {
            TypeKind::Base { encoding } if *encoding == gimli::DW_ATE_float => match size {
                4 => text
                    .parse::<f32>()
                    .context("not a number")?
                    .to_le_bytes()
                    .to_vec(),
                8 => text
                    .parse::<f64>()
                    .context("not a number")?
                    .to_le_bytes()
                    .to_vec(),
                _ => bail!("cannot set a {size}-byte float"),
            },
            TypeKind::Enum { enumerators, .. } => {
                let value = match enumerators.iter().find(|(n, _)| n == text) {
                    Some((_, v)) => *v,
                    None => parse_int(text).with_context(|| {
                        format!("{text:?} is neither an enumerator nor a number")
                    })?,
                };
                value.to_le_bytes()[..size].to_vec()
            }
            TypeKind::Base { .. } | TypeKind::Pointer { .. } => {
                let value = if text == "true" {
                    1
                } else if text == "false" {
                    0
                } else if let Some(c) = text
                    .strip_prefix('\'')
                    .and_then(|t| t.strip_suffix('\''))
                    .filter(|c| c.len() == 1)
                {
                    c.as_bytes()[0] as i64
                } else {
                    parse_int(text)?
                };
                value.to_le_bytes()[..size.min(8)].to_vec()
            }
            _ => bail!(
                "only numbers, enums and pointers can be set, not {}",
                ty.name
            ),
        };
        Ok(bytes)
    }
}

pub fn parse_int(text: &str) -> Result<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let value = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        u64::from_str_radix(hex, 16).with_context(|| format!("{text:?} is not a number"))? as i64
    } else {
        digits
            .parse::<u64>()
            .with_context(|| format!("{text:?} is not a number"))? as i64
    };
    Ok(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

impl Symbols {
    /// The type a DIE's DW_AT_type names, in its own unit or (rustc's
    /// optimized builds, DW_FORM_ref_addr) in another.
    pub fn type_of_die(
        &self,
        unit: usize,
        entry: &gimli::DebuggingInformationEntry<Reader>,
    ) -> Option<TypeId> {
        match entry.attr_value(gimli::DW_AT_type).ok()?? {
            AttributeValue::UnitRef(offset) => Some(TypeId { unit, offset }),
            AttributeValue::DebugInfoRef(offset) => {
                // Units are in section order: the last one starting at or
                // before the offset holds it.
                let after = self.units.partition_point(|u| {
                    u.header
                        .offset()
                        .as_debug_info_offset()
                        .is_some_and(|start| start <= offset)
                });
                let unit = after.checked_sub(1)?;
                let offset = offset.to_unit_offset(&self.units[unit].header)?;
                Some(TypeId { unit, offset })
            }
            _ => None,
        }
    }
}

/// A little-endian value of any width in hex, most significant byte first.
pub fn hex_le(bytes: &[u8]) -> String {
    let digits: String = bytes.iter().rev().map(|b| format!("{b:02x}")).collect();
    format!("0x{digits}")
}

pub fn int_of(bytes: &[u8], signed: bool) -> i64 {
    let mut raw = [0u8; 8];
    let n = bytes.len().min(8);
    raw[..n].copy_from_slice(&bytes[..n]);
    let value = u64::from_le_bytes(raw);
    if signed && n > 0 && n < 8 {
        let shift = 64 - 8 * n as u32;
        ((value << shift) as i64) >> shift
    } else {
        value as i64
    }
}

fn format_base(encoding: gimli::DwAte, bytes: &[u8], hex: bool) -> String {
    match encoding {
        // In hex, an integer shows its bits at its own width, as gdb's p/x.
        gimli::DW_ATE_signed | gimli::DW_ATE_unsigned if hex => {
            format!("{:#x}", int_of(bytes, false) as u64)
        }
        gimli::DW_ATE_float => match bytes.len() {
            4 => format!("{}", f32::from_le_bytes(bytes.try_into().expect("4 bytes"))),
            8 => format!("{}", f64::from_le_bytes(bytes.try_into().expect("8 bytes"))),
            n => format!("<{n}-byte float>"),
        },
        gimli::DW_ATE_boolean => (int_of(bytes, false) != 0).to_string(),
        // Rust's char (and C++'s char32_t): a Unicode scalar value.
        gimli::DW_ATE_UTF => match char::from_u32(int_of(bytes, false) as u32) {
            Some(c) => format!("{c:?}"),
            None => format!("{} (not a char)", int_of(bytes, false) as u32),
        },
        gimli::DW_ATE_signed_char | gimli::DW_ATE_unsigned_char if bytes.len() == 1 => {
            let v = if encoding == gimli::DW_ATE_signed_char {
                bytes[0] as i8 as i64
            } else {
                bytes[0] as i64
            };
            let c = bytes[0] as char;
            if c.is_ascii_graphic() || c == ' ' {
                format!("{v} '{c}'")
            } else {
                format!("{v} {:?}", c)
            }
        }
        gimli::DW_ATE_signed | gimli::DW_ATE_signed_char => int_of(bytes, true).to_string(),
        _ => (int_of(bytes, false) as u64).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        assert_eq!(int_of(&[0xff], true), -1);
        assert_eq!(int_of(&[0xff], false), 255);
        assert_eq!(
            format_base(gimli::DW_ATE_signed, &[0xfe, 0xff, 0xff, 0xff], false),
            "-2"
        );
        assert_eq!(
            format_base(gimli::DW_ATE_signed_char, b"A", false),
            "65 'A'"
        );
        assert_eq!(
            format_base(gimli::DW_ATE_signed, &[0xe2, 0xff, 0xff, 0xff], true),
            "0xffffffe2"
        );
        assert_eq!(format_base(gimli::DW_ATE_boolean, &[1], true), "true");
        assert_eq!(parse_int("0x10").unwrap(), 16);
        assert_eq!(parse_int("-3").unwrap(), -3);
        assert!(parse_int("abc").is_err());
    }
}

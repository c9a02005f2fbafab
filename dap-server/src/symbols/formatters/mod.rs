//! How values are shown: a one-line summary and the children a user
//! expands, per language and per library type family — the job of
//! CodeLLDB's formatters and gdb's pretty printers, done from DWARF alone.
//!
//! Owns: the table of type families ([`RULES`]: one row per family, so a
//! new library type is one row and one function), the generic formatting
//! of C, C++ and Rust values (structs, arrays, pointers, enums with
//! variant parts, tuples), and paging of long sequences. `rust` and `cpp`
//! hold the families of each language's standard library.
//! Reads target memory only through [`TargetMemory`], and only what a
//! summary or a page of children shows: a million-element `Vec` costs the
//! same as a three-element one until its elements are listed.

mod cpp;
mod rust;
#[cfg(test)]
mod tests;

use super::types::{int_of, Member, Place, Type, TypeId, TypeKind};
use super::{Language, Symbols, TargetMemory};

/// Elements a summary shows before `…`.
pub(super) const SUMMARY_ELEMENTS: u64 = 10;
/// Nesting a summary descends before `{…}`.
const MAX_DEPTH: u32 = 3;
/// Bytes of a string a summary reads.
const MAX_STRING: u64 = 4096;

/// How deep a summary is nested (nesting beyond [`MAX_DEPTH`] shows as
/// `{…}`), and whether its integers show in hex (the client's
/// `format: {hex: true}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Depth {
    level: u32,
    pub hex: bool,
}

impl Depth {
    /// Map keys shown in a row's name: one level, in decimal.
    const KEY: Depth = Depth {
        level: MAX_DEPTH - 1,
        hex: false,
    };

    /// A value shown on its own row.
    pub fn top(hex: bool) -> Self {
        Depth { level: 0, hex }
    }

    fn nested(self) -> Self {
        Depth {
            level: self.level + 1,
            ..self
        }
    }

    fn at_limit(self) -> bool {
        self.level >= MAX_DEPTH
    }
}

/// A value: its type, where it is, and its bytes (read once).
#[derive(Clone, Debug)]
pub struct Value {
    pub ty: TypeId,
    pub place: Place,
    pub bytes: Vec<u8>,
}

/// A row under an expanded value.
#[derive(Clone, Debug)]
pub struct Child {
    pub name: String,
    pub ty: Option<TypeId>,
    pub place: Place,
}

/// What a value expands to.
#[derive(Clone, Debug)]
pub enum Children {
    /// Elements listed a page at a time (`indexedVariables`).
    Indexed(Sequence),
    Named(Vec<Child>),
}

/// A sequence of `count` elements of `element`, `stride` bytes apart
/// within each of its segments: one segment for a `Vec` or a
/// `std::vector`, two for a `VecDeque` that wraps around its buffer, one
/// per buffer of a `std::deque`.
#[derive(Clone, Debug)]
pub struct Sequence {
    pub count: u64,
    pub element: Option<TypeId>,
    pub stride: u64,
    /// (address of the segment's first element, elements in it), in order.
    pub segments: Vec<(u64, u64)>,
}

impl Sequence {
    /// `count` elements stored one after another from `first`.
    pub fn contiguous(count: u64, element: Option<TypeId>, first: u64, stride: u64) -> Self {
        Sequence {
            count,
            element,
            stride,
            segments: vec![(first, count)],
        }
    }

    /// The address of element `index`, None past the end.
    pub fn address(&self, index: u64) -> Option<u64> {
        if index >= self.count {
            return None;
        }
        let mut rest = index;
        for &(first, len) in &self.segments {
            if rest < len {
                return Some(first + rest * self.stride);
            }
            rest -= len;
        }
        None
    }

    /// The runs of consecutive elements `start..start + count` as
    /// (address, elements), so a page costs one read per segment it spans.
    fn runs(&self, start: u64, count: u64) -> Vec<(u64, u64)> {
        let mut runs = Vec::new();
        let mut skip = start;
        let mut left = count.min(self.count.saturating_sub(start));
        for &(first, len) in &self.segments {
            if left == 0 {
                break;
            }
            if skip >= len {
                skip -= len;
                continue;
            }
            let take = (len - skip).min(left);
            runs.push((first + skip * self.stride, take));
            left -= take;
            skip = 0;
        }
        runs
    }
}

/// The library type families with formatters of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    RustString,
    RustStr,
    RustSlice,
    RustVec,
    RustVecDeque,
    RustBTreeMap,
    RustBTreeSet,
    RustRc,
    RustArc,
    RustHashMap,
    RustHashSet,
    RustCell,
    RustNonZero,
    CppString,
    CppVector,
    CppDeque,
    CppArray,
    CppList,
    CppVariant,
    CppUniquePtr,
    CppSharedPtr,
    CppOptional,
    CppTree,
    CppHashTable,
}

struct Rule {
    language: Language,
    /// Matches the type's name as DWARF gives it (without its namespace).
    name: fn(&str) -> bool,
    family: Family,
}

/// One row per type family: add a library type here and in its
/// language's module.
#[rustfmt::skip]
const RULES: &[Rule] = &[
    Rule { language: Language::Rust, family: Family::RustString, name: |n| ["String", "OsString", "PathBuf"].contains(&n) },
    Rule { language: Language::Rust, family: Family::RustStr, name: |n| n == "&str" || n == "&mut str" },
    Rule { language: Language::Rust, family: Family::RustSlice, name: |n| n.starts_with("&[") || n.starts_with("&mut [") },
    Rule { language: Language::Rust, family: Family::RustVec, name: |n| n.starts_with("Vec<") },
    Rule { language: Language::Rust, family: Family::RustVecDeque, name: |n| n.starts_with("VecDeque<") },
    Rule { language: Language::Rust, family: Family::RustBTreeMap, name: |n| n.starts_with("BTreeMap<") },
    Rule { language: Language::Rust, family: Family::RustBTreeSet, name: |n| n.starts_with("BTreeSet<") },
    Rule { language: Language::Rust, family: Family::RustRc, name: |n| n.starts_with("Rc<") },
    Rule { language: Language::Rust, family: Family::RustArc, name: |n| n.starts_with("Arc<") },
    Rule { language: Language::Rust, family: Family::RustHashMap, name: |n| n.starts_with("HashMap<") },
    Rule { language: Language::Rust, family: Family::RustHashSet, name: |n| n.starts_with("HashSet<") },
    Rule { language: Language::Rust, family: Family::RustCell, name: |n| ["Cell<", "RefCell<", "UnsafeCell<"].iter().any(|p| n.starts_with(p)) },
    // `NonZero<u32>` since Rust 1.79, `NonZeroU32` before.
    Rule { language: Language::Rust, family: Family::RustNonZero, name: |n| n.starts_with("NonZero<") || n.strip_prefix("NonZero").and_then(|t| t.strip_prefix(['U', 'I'])).is_some_and(|bits| bits == "size" || bits.parse::<u8>().is_ok()) },
    Rule { language: Language::Cpp, family: Family::CppString, name: |n| n.starts_with("basic_string<char") || n.starts_with("basic_string_view<char") },
    Rule { language: Language::Cpp, family: Family::CppVector, name: |n| n.starts_with("vector<") },
    Rule { language: Language::Cpp, family: Family::CppDeque, name: |n| n.starts_with("deque<") },
    Rule { language: Language::Cpp, family: Family::CppArray, name: |n| n.starts_with("array<") },
    Rule { language: Language::Cpp, family: Family::CppList, name: |n| n.starts_with("list<") },
    Rule { language: Language::Cpp, family: Family::CppVariant, name: |n| n.starts_with("variant<") },
    Rule { language: Language::Cpp, family: Family::CppUniquePtr, name: |n| n.starts_with("unique_ptr<") },
    Rule { language: Language::Cpp, family: Family::CppSharedPtr, name: |n| n.starts_with("shared_ptr<") },
    Rule { language: Language::Cpp, family: Family::CppOptional, name: |n| n.starts_with("optional<") },
    Rule { language: Language::Cpp, family: Family::CppTree, name: |n| ["map<", "set<", "multimap<", "multiset<"].iter().any(|p| n.starts_with(p)) },
    Rule { language: Language::Cpp, family: Family::CppHashTable, name: |n| ["unordered_map<", "unordered_set<", "unordered_multimap<", "unordered_multiset<"].iter().any(|p| n.starts_with(p)) },
];

impl Symbols {
    fn family(&self, id: TypeId, ty: &Type) -> Option<Family> {
        let language = self.languages[id.unit];
        RULES
            .iter()
            .find(|r| r.language == language && (r.name)(&ty.name))
            .map(|r| r.family)
    }

    /// The one-line value of `value`, as the language's debugger shows it.
    pub async fn summarize<M: TargetMemory>(
        &self,
        value: &Value,
        mem: &mut M,
        depth: Depth,
    ) -> String {
        let ty = self.strip(value.ty);
        let id = self.strip_id(value.ty);
        if let Some(family) = self.family(id, &ty) {
            let shown = match family {
                Family::RustString => rust::string(self, value, mem).await,
                Family::RustStr => rust::str(self, value, mem).await,
                Family::RustSlice
                | Family::RustVec
                | Family::RustVecDeque
                | Family::CppVector
                | Family::CppDeque => match self.family_children(family, value, mem).await {
                    Some(Children::Indexed(sequence)) => {
                        let (items, more) = self.element_summaries(&sequence, mem, depth).await;
                        let count = sequence.count;
                        Some(match family {
                            Family::RustVec => {
                                format!("({count}) vec![{}]", rust_list(&items, more))
                            }
                            Family::RustVecDeque => {
                                format!("({count}) VecDeque[{}]", rust_list(&items, more))
                            }
                            Family::CppVector => {
                                let capacity = cpp::vector_capacity(self, value).unwrap_or(count);
                                format!(
                                    "std::vector of length {count}, capacity {capacity} = {{{}}}",
                                    gdb_list(&items, more)
                                )
                            }
                            Family::CppDeque => format!(
                                "std::deque with {count} {} = {{{}}}",
                                if count == 1 { "element" } else { "elements" },
                                gdb_list(&items, more)
                            ),
                            _ => format!("({count}) [{}]", rust_list(&items, more)),
                        })
                    }
                    _ => None,
                },
                Family::RustRc | Family::RustArc => rust::counted(self, value, mem, depth).await,
                Family::RustHashMap | Family::RustHashSet => {
                    rust::hash_table(self, value, family == Family::RustHashSet, mem, depth).await
                }
                Family::RustBTreeMap | Family::RustBTreeSet => {
                    rust::btree(self, value, mem, depth).await
                }
                Family::RustCell => match rust::cell_contents(self, value) {
                    Some(inner) => Some(Box::pin(self.summarize(&inner, mem, depth)).await),
                    None => None,
                },
                Family::RustNonZero => match self.leaf_value(value) {
                    Some(inner) => Some(Box::pin(self.summarize(&inner, mem, depth)).await),
                    None => None,
                },
                Family::CppString => cpp::string(self, value, mem).await,
                Family::CppUniquePtr => cpp::unique_ptr(self, value),
                Family::CppSharedPtr => cpp::shared_ptr(self, value, mem).await,
                Family::CppOptional => cpp::optional(self, value, mem, depth).await,
                Family::CppVariant => cpp::variant(self, value, mem, depth).await,
                // gdb has no printer for std::array: its raw struct.
                Family::CppArray => None,
                Family::CppTree | Family::CppHashTable | Family::CppList => {
                    cpp::linked(self, cpp::links(family), value, mem, depth).await
                }
            };
            if let Some(shown) = shown {
                return shown;
            }
        }
        let language = self.languages[id.unit];
        match &ty.kind {
            TypeKind::Struct {
                variants: Some(part),
                ..
            } => {
                let Some(variant) = self.active_variant(part, &value.bytes) else {
                    return "<invalid enum value>".into();
                };
                let Some(payload) = self.member_value(value, &variant.member) else {
                    return variant.member.name.clone();
                };
                let fields = Box::pin(self.summarize_fields(&payload, mem, depth)).await;
                format!("{}{fields}", variant.member.name)
            }
            TypeKind::Struct { members, .. } => {
                if depth.at_limit() {
                    return "{…}".into();
                }
                if language == Language::Rust && (members.is_empty() || is_tuple(members)) {
                    let fields = Box::pin(self.summarize_fields(value, mem, depth)).await;
                    return if fields.is_empty() {
                        "()".into()
                    } else {
                        fields
                    };
                }
                let separator = if language == Language::Rust {
                    ": "
                } else {
                    " = "
                };
                let mut parts = Vec::new();
                for m in members {
                    let Some(child) = self.member_value(value, m) else {
                        continue;
                    };
                    let shown = Box::pin(self.summarize(&child, mem, depth.nested())).await;
                    if m.base {
                        // gdb: `{<shop::Item> = {…}, discount = 0.5}`.
                        parts.push(format!("<{}>{separator}{shown}", m.name));
                    } else {
                        parts.push(format!("{}{separator}{shown}", m.name));
                    }
                }
                format!("{{{}}}", parts.join(", "))
            }
            TypeKind::Pointer {
                target: Some(target),
                reference: Some(_),
            } => {
                // gdb: `@0x7ffc…: 1`, the referenced value after its address.
                let addr = int_of(&value.bytes, false) as u64;
                let size = self.resolve_type(*target).size.unwrap_or(0);
                let shown = match mem.read(addr, size as usize).await {
                    Ok(bytes) => {
                        let referenced = Value {
                            ty: *target,
                            place: Place::Memory(addr),
                            bytes,
                        };
                        Box::pin(self.summarize(&referenced, mem, depth)).await
                    }
                    Err(_) => format!("<error: Cannot access memory at address {addr:#x}>"),
                };
                format!("@{addr:#x}: {shown}")
            }
            TypeKind::Pointer { target, .. } => {
                let addr = int_of(&value.bytes, false) as u64;
                let mut text = format!("{addr:#x}");
                // C strings: gdb shows the characters after the address.
                if self.is_char(*target) && addr != 0 {
                    if let Ok(s) = mem.read(addr, 64).await {
                        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
                        text = format!("{text} {:?}", String::from_utf8_lossy(&s[..end]));
                    }
                }
                text
            }
            // gdb writes a C++ array in braces.
            TypeKind::Array { element, counts }
                if language == Language::Cpp && counts.len() == 1 && !self.is_char(*element) =>
            {
                let stride = self.element_size(*element, &[]).unwrap_or(0).max(1);
                let count = counts[0].unwrap_or(0);
                let mut items = Vec::new();
                for i in 0..count.min(SUMMARY_ELEMENTS) {
                    let Some((element, chunk)) = element.zip(
                        value
                            .bytes
                            .get((i * stride) as usize..((i + 1) * stride) as usize),
                    ) else {
                        break;
                    };
                    let item = Value {
                        ty: element,
                        place: match value.place {
                            Place::Memory(a) => Place::Memory(a + i * stride),
                            _ => Place::Bytes(chunk.to_vec()),
                        },
                        bytes: chunk.to_vec(),
                    };
                    items.push(Box::pin(self.summarize(&item, mem, depth.nested())).await);
                }
                let more = count > items.len() as u64;
                format!("{{{}}}", gdb_list(&items, more))
            }
            _ => self.format_value(Some(value.ty), &value.bytes, depth.level, depth.hex),
        }
    }

    /// A variant's or a tuple's fields: `(a, b)` for tuple-like ones (Rust
    /// names their fields `__0`, `__1` …), `{x: a}` for named ones, and
    /// nothing for a unit variant.
    async fn summarize_fields<M: TargetMemory>(
        &self,
        value: &Value,
        mem: &mut M,
        depth: Depth,
    ) -> String {
        let ty = self.strip(value.ty);
        let TypeKind::Struct { members, .. } = &ty.kind else {
            return format!(
                "({})",
                Box::pin(self.summarize(value, mem, depth.nested())).await
            );
        };
        if members.is_empty() {
            return String::new();
        }
        if depth.at_limit() {
            return "(…)".into();
        }
        let tuple = is_tuple(members);
        let mut parts = Vec::new();
        for m in members {
            let Some(child) = self.member_value(value, m) else {
                continue;
            };
            let shown = Box::pin(self.summarize(&child, mem, depth.nested())).await;
            parts.push(if tuple {
                shown
            } else {
                format!("{}: {shown}", m.name)
            });
        }
        if tuple {
            format!("({})", parts.join(", "))
        } else {
            format!("{{{}}}", parts.join(", "))
        }
    }

    /// The summaries of a sequence's first [`SUMMARY_ELEMENTS`] elements,
    /// and whether more follow.
    async fn element_summaries<M: TargetMemory>(
        &self,
        sequence: &Sequence,
        mem: &mut M,
        depth: Depth,
    ) -> (Vec<String>, bool) {
        let Some(element) = sequence.element else {
            return (vec!["…".into()], false);
        };
        let stride = sequence.stride;
        let mut parts = Vec::new();
        for (first, count) in sequence.runs(0, SUMMARY_ELEMENTS) {
            let Ok(bytes) = mem.read(first, (count * stride) as usize).await else {
                return (vec!["<unreadable>".into()], false);
            };
            for i in 0..count {
                let Some(chunk) = bytes.get((i * stride) as usize..((i + 1) * stride) as usize)
                else {
                    break;
                };
                let value = Value {
                    ty: element,
                    place: Place::Memory(first + i * stride),
                    bytes: chunk.to_vec(),
                };
                parts.push(Box::pin(self.summarize(&value, mem, depth.nested())).await);
            }
        }
        let more = sequence.count > parts.len() as u64;
        (parts, more)
    }

    /// The rows a value expands to, or None when it has none beyond what
    /// the generic struct/array/pointer expansion gives.
    pub async fn synthetic_children<M: TargetMemory>(
        &self,
        value: &Value,
        mem: &mut M,
    ) -> Option<Children> {
        let ty = self.strip(value.ty);
        let id = self.strip_id(value.ty);
        if let Some(family) = self.family(id, &ty) {
            return self.family_children(family, value, mem).await;
        }
        match &ty.kind {
            TypeKind::Struct {
                variants: Some(part),
                ..
            } => {
                let variant = self.active_variant(part, &value.bytes)?;
                let payload = self.member_value(value, &variant.member)?;
                Some(Children::Named(self.field_children(&payload)))
            }
            TypeKind::Struct { members, .. }
                if self.languages[id.unit] == Language::Rust && is_tuple(members) =>
            {
                Some(Children::Named(self.field_children(value)))
            }
            _ => None,
        }
    }

    async fn family_children<M: TargetMemory>(
        &self,
        family: Family,
        value: &Value,
        mem: &mut M,
    ) -> Option<Children> {
        match family {
            Family::RustSlice => rust::slice_children(self, value),
            Family::RustVec => rust::vec_children(self, value),
            Family::RustVecDeque => rust::vec_deque_children(self, value),
            Family::RustBTreeMap | Family::RustBTreeSet => {
                rust::btree_children(self, value, mem).await
            }
            Family::RustRc | Family::RustArc => rust::counted_children(self, value, mem).await,
            Family::RustHashMap | Family::RustHashSet => {
                rust::hash_table_children(self, value, family == Family::RustHashSet, mem).await
            }
            Family::RustCell => {
                let inner = rust::cell_contents(self, value)?;
                Box::pin(self.synthetic_children(&inner, mem))
                    .await
                    .or_else(|| Some(Children::Named(self.field_children(&inner))))
            }
            Family::CppVector => cpp::vector_children(self, value),
            Family::CppDeque => cpp::deque_children(self, value, mem).await,
            Family::CppArray => cpp::array_children(self, value),
            Family::CppVariant => cpp::variant_children(self, value),
            Family::CppUniquePtr | Family::CppSharedPtr => cpp::smart_pointer_children(self, value),
            Family::CppOptional => cpp::optional_children(self, value),
            Family::CppTree | Family::CppHashTable | Family::CppList => {
                cpp::linked_children(self, cpp::links(family), value, mem).await
            }
            Family::RustString | Family::RustStr | Family::RustNonZero | Family::CppString => {
                Some(Children::Named(Vec::new()))
            }
        }
    }

    /// A struct's fields as rows; Rust's tuple fields `__0` are shown as `0`.
    fn field_children(&self, value: &Value) -> Vec<Child> {
        let ty = self.strip(value.ty);
        let TypeKind::Struct { members, .. } = &ty.kind else {
            return Vec::new();
        };
        members
            .iter()
            .filter_map(|m| {
                let child = self.member_value(value, m)?;
                Some(Child {
                    name: m
                        .name
                        .strip_prefix("__")
                        .filter(|n| n.parse::<u32>().is_ok())
                        .unwrap_or(&m.name)
                        .to_string(),
                    ty: Some(child.ty),
                    place: child.place,
                })
            })
            .collect()
    }

    /// A member of a struct value, with its own place and bytes.
    pub fn member_value(&self, value: &Value, member: &Member) -> Option<Value> {
        let (ty, bytes) = self.member_bytes(member, &value.bytes)?;
        let place = match (&value.place, member.bits) {
            (Place::Memory(a), None) => Place::Memory(a + member.offset),
            _ => Place::Bytes(bytes.clone()),
        };
        Some(Value {
            ty: ty?,
            place,
            bytes,
        })
    }

    /// The member called `name`, looked for in base classes too.
    fn find_member(&self, value: &Value, name: &str) -> Option<Value> {
        let ty = self.strip(value.ty);
        let TypeKind::Struct { members, .. } = &ty.kind else {
            return None;
        };
        if let Some(m) = members.iter().find(|m| m.name == name) {
            return self.member_value(value, m);
        }
        members
            .iter()
            .filter(|m| m.base)
            .find_map(|m| self.find_member(&self.member_value(value, m)?, name))
    }

    /// The member called `name` anywhere inside a value, depth first
    /// through members and base classes (libstdc++ nests its state a few
    /// implementation structs deep).
    fn find_deep(&self, value: &Value, name: &str) -> Option<Value> {
        self.find_deep_within(value, name, 0)
    }

    fn find_deep_within(&self, value: &Value, name: &str, depth: u32) -> Option<Value> {
        let ty = self.strip(value.ty);
        let TypeKind::Struct { members, .. } = &ty.kind else {
            return None;
        };
        if let Some(m) = members.iter().find(|m| m.name == name) {
            return self.member_value(value, m);
        }
        if depth >= 8 {
            return None;
        }
        members
            .iter()
            .filter_map(|m| self.member_value(value, m))
            .find_map(|child| self.find_deep_within(&child, name, depth + 1))
    }

    /// The value at the end of a path of member names.
    fn member_path(&self, value: &Value, path: &[&str]) -> Option<Value> {
        path.iter()
            .try_fold(value.clone(), |v, name| self.find_member(&v, name))
    }

    /// The pointer a wrapper struct holds (Rust's `Unique`, `NonNull`,
    /// libstdc++'s `_M_p`, a `std::tuple`'s head): the first pointer in
    /// member order, depth first, through members and base classes.
    /// Returns its address and pointee type.
    fn leaf_pointer(&self, value: &Value) -> Option<(u64, Option<TypeId>)> {
        self.leaf_pointer_within(value, 0)
    }

    fn leaf_pointer_within(&self, value: &Value, depth: u32) -> Option<(u64, Option<TypeId>)> {
        match &self.strip(value.ty).kind {
            TypeKind::Pointer { target, .. } => Some((int_of(&value.bytes, false) as u64, *target)),
            TypeKind::Struct { members, .. } if depth < 8 => members
                .iter()
                .filter_map(|m| self.member_value(value, m))
                .find_map(|child| self.leaf_pointer_within(&child, depth + 1)),
            _ => None,
        }
    }

    /// The integer a wrapper struct holds (`Cell<usize>`, `AtomicUsize`).
    fn leaf_int(&self, value: &Value) -> Option<u64> {
        self.leaf_value(value)
            .map(|leaf| int_of(&leaf.bytes, false) as u64)
    }

    /// The number a wrapper struct holds, as a value of its own type
    /// (`NonZero<u32>`'s `u32`, through the newtypes that carry its niche).
    fn leaf_value(&self, value: &Value) -> Option<Value> {
        let mut current = value.clone();
        for _ in 0..8 {
            let ty = self.strip(current.ty);
            match &ty.kind {
                TypeKind::Base { .. } => return Some(current),
                TypeKind::Struct { members, .. } => {
                    let m = members.iter().find(|m| {
                        self.resolve_type_opt(m.ty)
                            .and_then(|t| t.size)
                            .unwrap_or(0)
                            > 0
                    })?;
                    current = self.member_value(&current, m)?;
                }
                _ => return None,
            }
        }
        None
    }

    fn resolve_type_opt(&self, id: Option<TypeId>) -> Option<std::sync::Arc<Type>> {
        id.map(|t| self.resolve_type(t))
    }

    /// The template type parameter `name` of a struct type.
    fn template_param(&self, id: TypeId, name: &str) -> Option<TypeId> {
        match &self.strip(id).kind {
            TypeKind::Struct { params, .. } => {
                params.iter().find(|(n, _)| n == name).and_then(|(_, t)| *t)
            }
            _ => None,
        }
    }

    /// Reads a string of `len` bytes at `addr` (at most [`MAX_STRING`]) and
    /// quotes it as Rust and C++ debuggers do.
    async fn quoted<M: TargetMemory>(&self, addr: u64, len: u64, mem: &mut M) -> Option<String> {
        if len == 0 {
            return Some("\"\"".into());
        }
        let bytes = mem.read(addr, len.min(MAX_STRING) as usize).await.ok()?;
        let mut text = format!("{:?}", String::from_utf8_lossy(&bytes));
        if len > MAX_STRING {
            text.push('…');
        }
        Some(text)
    }
}

fn is_tuple(members: &[Member]) -> bool {
    !members.is_empty()
        && members.iter().all(|m| {
            m.name
                .strip_prefix("__")
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
}

/// The expression `evaluate` takes for the row `child` under the value
/// `parent` evaluates to (DAP's `evaluateName`): `v[3]` for an element,
/// `m[7]` or `m["k"]` for a map's value by its key, `s.f` for a field
/// (`t.0` for a Rust tuple's), `*p` for a smart pointer's or an
/// optional's contents. None for rows no expression reaches (a variant's
/// alternative, a value under a key that is neither a number nor a
/// string).
pub fn child_expression(parent: &str, child: &str) -> Option<String> {
    let base = parenthesized(parent);
    if let Some(key) = child.strip_prefix('[').and_then(|c| c.strip_suffix(']')) {
        if key == "contained value" {
            return Some(format!("*{base}"));
        }
        let quoted = key.len() >= 2 && key.starts_with('"') && key.ends_with('"');
        return if quoted {
            Some(format!("{base}[{key}]"))
        } else {
            key.parse::<i64>().ok().map(|i| format!("{base}[{i}]"))
        };
    }
    if child == "*get()" {
        return Some(format!("*{base}"));
    }
    let field = child
        .chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || c == '_')
        && child.chars().all(|c| c.is_alphanumeric() || c == '_');
    field.then(|| format!("{base}.{child}"))
}

/// `parent` as the operand of a postfix or `*`: a path as it is, anything
/// else in parentheses.
pub fn parenthesized(parent: &str) -> String {
    if parent
        .chars()
        .all(|c| c.is_alphanumeric() || "_.[]$".contains(c))
    {
        parent.to_string()
    } else {
        format!("({parent})")
    }
}

/// A Rust summary's elements: `1, 2, …`.
fn rust_list(items: &[String], more: bool) -> String {
    let mut text = items.join(", ");
    if more {
        text.push_str(", …");
    }
    text
}

/// A gdb summary's elements: `1, 2...`.
fn gdb_list(items: &[String], more: bool) -> String {
    let mut text = items.join(", ");
    if more {
        text.push_str("...");
    }
    text
}

/// The element rows of an indexed sequence from `start`, at most `count`.
pub fn indexed_rows(children: &Children, start: u64, count: u64) -> Vec<Child> {
    match children {
        Children::Indexed(sequence) => (start..sequence.count.min(start.saturating_add(count)))
            .filter_map(|i| {
                Some(Child {
                    name: format!("[{i}]"),
                    ty: sequence.element,
                    place: Place::Memory(sequence.address(i)?),
                })
            })
            .collect(),
        Children::Named(rows) => rows
            .iter()
            .skip(start as usize)
            .take(count as usize)
            .cloned()
            .collect(),
    }
}

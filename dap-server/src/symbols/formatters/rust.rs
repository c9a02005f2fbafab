//! Rust's standard library types: `String` (and `OsString`, `PathBuf`),
//! `&str`, slices, `Vec<T>`, `VecDeque<T>` (its ring buffer as up to two
//! segments), `BTreeMap`/`BTreeSet` (the B-tree's nodes walked in key
//! order), `Rc<T>` and `Arc<T>`, `HashMap` and `HashSet` (hashbrown's
//! table walked), `Cell`/`RefCell`, `NonZero<T>` (its number). Enums,
//! `Option` and
//! `Result` need no formatter of their own: their DWARF variant parts are
//! decoded generically (`super::Symbols::summarize`).
//!
//! Layouts are found by member name and template parameter, not by fixed
//! offsets, and descend through wrappers (`RawVec`, `Unique`, `NonNull`,
//! `Cell`) by shape, so they hold across rustc versions that reshuffle
//! those internals.

use super::{Child, Children, Depth, Sequence, Value};
use crate::symbols::types::{int_of, Place, TypeKind};
use crate::symbols::{Symbols, TargetMemory};

/// The `Vec<u8>` inside a `String`, `OsString` or `PathBuf`.
fn bytes_vec(symbols: &Symbols, value: &Value) -> Option<Value> {
    let mut current = value.clone();
    for _ in 0..4 {
        let ty = symbols.strip(current.ty);
        if ty.name.starts_with("Vec<") {
            return Some(current);
        }
        let TypeKind::Struct { members, .. } = &ty.kind else {
            return None;
        };
        current = symbols.member_value(&current, members.first()?)?;
    }
    None
}

/// A `Vec`'s buffer address and length.
fn vec_parts(symbols: &Symbols, vec: &Value) -> Option<(u64, u64)> {
    let len = symbols.leaf_int(&symbols.find_member(vec, "len")?)?;
    let (ptr, _) = symbols.leaf_pointer(&symbols.find_member(vec, "buf")?)?;
    Some((ptr, len))
}

pub async fn string<M: TargetMemory>(
    symbols: &Symbols,
    value: &Value,
    mem: &mut M,
) -> Option<String> {
    let (ptr, len) = vec_parts(symbols, &bytes_vec(symbols, value)?)?;
    symbols.quoted(ptr, len, mem).await
}

pub async fn str<M: TargetMemory>(symbols: &Symbols, value: &Value, mem: &mut M) -> Option<String> {
    let (ptr, _) = symbols.leaf_pointer(&symbols.find_member(value, "data_ptr")?)?;
    let len = symbols.leaf_int(&symbols.find_member(value, "length")?)?;
    symbols.quoted(ptr, len, mem).await
}

pub fn slice_children(symbols: &Symbols, value: &Value) -> Option<Children> {
    let (first, element) = symbols.leaf_pointer(&symbols.find_member(value, "data_ptr")?)?;
    let count = symbols.leaf_int(&symbols.find_member(value, "length")?)?;
    let stride = symbols.resolve_type(element?).size?;
    Some(Children::Indexed(Sequence::contiguous(
        count, element, first, stride,
    )))
}

pub fn vec_children(symbols: &Symbols, value: &Value) -> Option<Children> {
    let element = symbols.template_param(value.ty, "T")?;
    let (first, count) = vec_parts(symbols, value)?;
    let stride = symbols.resolve_type(element).size?;
    Some(Children::Indexed(Sequence::contiguous(
        count,
        Some(element),
        first,
        stride,
    )))
}

/// A `VecDeque`'s ring buffer: `len` elements from slot `head`, wrapping
/// around to slot 0 after the buffer's last slot (`cap`), so its elements
/// are in at most two segments.
pub fn vec_deque_children(symbols: &Symbols, value: &Value) -> Option<Children> {
    let element = symbols.template_param(value.ty, "T")?;
    let stride = symbols.resolve_type(element).size?;
    let head = symbols.leaf_int(&symbols.find_member(value, "head")?)?;
    let len = symbols.leaf_int(&symbols.find_member(value, "len")?)?;
    let buf = symbols.find_member(value, "buf")?;
    let (ptr, _) = symbols.leaf_pointer(&buf)?;
    let cap = symbols.leaf_int(&symbols.find_deep(&buf, "cap")?)?;
    if stride == 0 || len == 0 {
        return Some(Children::Indexed(Sequence::contiguous(
            len,
            Some(element),
            ptr,
            stride,
        )));
    }
    if head >= cap || len > cap {
        return None;
    }
    let before_wrap = len.min(cap - head);
    let mut segments = vec![(ptr + head * stride, before_wrap)];
    if len > before_wrap {
        segments.push((ptr, len - before_wrap));
    }
    Some(Children::Indexed(Sequence {
        count: len,
        element: Some(element),
        stride,
        segments,
    }))
}

/// The payload of an `Option`'s `Some` (its field `__0`), None for `None`.
fn some(symbols: &Symbols, option: &Value) -> Option<Value> {
    let TypeKind::Struct {
        variants: Some(part),
        ..
    } = &symbols.strip(option.ty).kind
    else {
        return None;
    };
    let variant = symbols.active_variant(part, &option.bytes)?;
    if variant.member.name != "Some" {
        return None;
    }
    let payload = symbols.member_value(option, &variant.member)?;
    symbols.find_member(&payload, "__0")
}

/// Entries looked at, at most, in a summary or a listing of a B-tree.
const MAX_BTREE_ENTRIES: usize = 1000;

/// The entries of a `BTreeMap` (a `BTreeSet` is one over `(T, SetValZST)`)
/// in key order: every node is a `LeafNode` (`len` keys in `keys`, their
/// values in `vals`); a node above height 0 is an `InternalNode`, the leaf
/// followed by `len + 1` child pointers (`edges`), child `i` holding the
/// keys before key `i`. Returns the map's length and (key, value) pairs,
/// the value None for a set.
async fn btree_entries<M: TargetMemory>(
    symbols: &Symbols,
    value: &Value,
    limit: usize,
    mem: &mut M,
) -> Option<(u64, Vec<(Value, Option<Value>)>)> {
    let map = if symbols.strip(value.ty).name.starts_with("BTreeSet<") {
        symbols.find_member(value, "map")?
    } else {
        value.clone()
    };
    let key_ty = symbols.template_param(map.ty, "K")?;
    let val_ty = symbols.template_param(map.ty, "V")?;
    let length = symbols.leaf_int(&symbols.find_member(&map, "length")?)?;
    let Some(root) = some(symbols, &symbols.find_member(&map, "root")?) else {
        return Some((0, Vec::new()));
    };
    let height = symbols.leaf_int(&symbols.find_member(&root, "height")?)?;
    let (node, leaf_ty) = symbols.leaf_pointer(&symbols.find_member(&root, "node")?)?;
    let leaf_ty = leaf_ty?;
    let leaf_size = symbols.resolve_type(leaf_ty).size?;
    let field = |name: &str| match &symbols.strip(leaf_ty).kind {
        TypeKind::Struct { members, .. } => {
            members.iter().find(|m| m.name == name).map(|m| m.offset)
        }
        _ => None,
    };
    let (len_at, keys_at, vals_at) = (field("len")?, field("keys")?, field("vals")?);
    // `InternalNode` is `#[repr(C)]`: the edges follow the leaf, pointer-aligned.
    let edges_at = leaf_size.div_ceil(8) * 8;
    let key_size = symbols.resolve_type(key_ty).size?;
    let val_size = symbols.resolve_type(val_ty).size?;
    let set = val_size == 0;
    // Depth first, in key order: (node, height, position, whether the
    // child before key `position` is done) frames.
    let mut stack = vec![(node, height, 0u64, false)];
    let mut entries = Vec::new();
    while let Some((node, height, position, descended)) = stack.pop() {
        if entries.len() >= limit.min(length as usize) || stack.len() > 64 {
            break;
        }
        let size = if height > 0 {
            edges_at + 12 * 8
        } else {
            leaf_size
        };
        let header = mem.read(node, size as usize).await.ok()?;
        let len = u64::from(u16::from_le_bytes(
            header
                .get(len_at as usize..len_at as usize + 2)?
                .try_into()
                .ok()?,
        ));
        if len > 11 || position > len {
            return None;
        }
        if height > 0 && !descended {
            let at = (edges_at + position * 8) as usize;
            let edge = int_of(header.get(at..at + 8)?, false) as u64;
            stack.push((node, height, position, true));
            stack.push((edge, height - 1, 0, false));
            continue;
        }
        if position == len {
            continue;
        }
        let key_addr = node + keys_at + position * key_size;
        let key = Value {
            ty: key_ty,
            place: Place::Memory(key_addr),
            bytes: mem.read(key_addr, key_size as usize).await.ok()?,
        };
        let item = if set {
            None
        } else {
            let val_addr = node + vals_at + position * val_size;
            Some(Value {
                ty: val_ty,
                place: Place::Memory(val_addr),
                bytes: mem.read(val_addr, val_size as usize).await.ok()?,
            })
        };
        entries.push((key, item));
        stack.push((node, height, position + 1, false));
    }
    Some((length, entries))
}

/// `(2) {"a": 1, "b": 2}` for a `BTreeMap`, `(3) {'a', 'b', 'c'}` for a
/// `BTreeSet`, in key order.
pub async fn btree<M: TargetMemory>(
    symbols: &Symbols,
    value: &Value,
    mem: &mut M,
    depth: Depth,
) -> Option<String> {
    let (length, entries) =
        btree_entries(symbols, value, super::SUMMARY_ELEMENTS as usize, mem).await?;
    Some(map_summary(symbols, length, &entries, mem, depth).await)
}

/// A `BTreeMap`'s values named by their keys (`["a"]`), a set's keys by
/// position, in key order.
pub async fn btree_children<M: TargetMemory>(
    symbols: &Symbols,
    value: &Value,
    mem: &mut M,
) -> Option<Children> {
    let (_, entries) = btree_entries(symbols, value, MAX_BTREE_ENTRIES, mem).await?;
    Some(map_rows(symbols, entries, mem).await)
}

/// A map's or a set's summary from its length and first entries (a set's
/// have no value): `(2) {"a": 1, "b": 2}`, `(3) {'a', 'b', 'c'}`.
async fn map_summary<M: TargetMemory>(
    symbols: &Symbols,
    length: u64,
    entries: &[(Value, Option<Value>)],
    mem: &mut M,
    depth: Depth,
) -> String {
    let mut parts = Vec::new();
    for (key, item) in entries {
        let key = Box::pin(symbols.summarize(key, mem, depth.nested())).await;
        parts.push(match item {
            Some(item) => format!(
                "{key}: {}",
                Box::pin(symbols.summarize(item, mem, depth.nested())).await
            ),
            None => key,
        });
    }
    if length > entries.len() as u64 {
        parts.push("…".into());
    }
    format!("({length}) {{{}}}", parts.join(", "))
}

/// A map's values named by their keys (`["k"]`), a set's keys by position.
async fn map_rows<M: TargetMemory>(
    symbols: &Symbols,
    entries: Vec<(Value, Option<Value>)>,
    mem: &mut M,
) -> Children {
    let mut rows = Vec::new();
    for (i, (key, item)) in entries.into_iter().enumerate() {
        rows.push(match item {
            Some(item) => Child {
                name: format!(
                    "[{}]",
                    Box::pin(symbols.summarize(&key, mem, Depth::KEY)).await
                ),
                ty: Some(item.ty),
                place: item.place,
            },
            None => Child {
                name: format!("[{i}]"),
                ty: Some(key.ty),
                place: key.place,
            },
        });
    }
    Children::Named(rows)
}

/// The shared allocation of an `Rc`/`Arc` (`RcInner`/`ArcInner`: the
/// counts and the value), read from the target.
async fn counted_inner<M: TargetMemory>(
    symbols: &Symbols,
    value: &Value,
    mem: &mut M,
) -> Option<Value> {
    let (addr, inner) = symbols.leaf_pointer(value)?;
    let inner = inner?;
    let size = symbols.resolve_type(inner).size?;
    let bytes = mem.read(addr, size as usize).await.ok()?;
    Some(Value {
        ty: inner,
        place: Place::Memory(addr),
        bytes,
    })
}

/// `Rc(strong=2, weak=0) "rc"`: the counts as rust-gdb gives them (the
/// weak count without the one all strong references hold together).
pub async fn counted<M: TargetMemory>(
    symbols: &Symbols,
    value: &Value,
    mem: &mut M,
    depth: Depth,
) -> Option<String> {
    let inner = counted_inner(symbols, value, mem).await?;
    let strong = symbols.leaf_int(&symbols.find_member(&inner, "strong")?)?;
    let weak = symbols.leaf_int(&symbols.find_member(&inner, "weak")?)?;
    let shared = symbols
        .find_member(&inner, "value")
        .or_else(|| symbols.find_member(&inner, "data"))?;
    let shown = if depth.at_limit() {
        "{…}".to_string()
    } else {
        Box::pin(symbols.summarize(&shared, mem, depth.nested())).await
    };
    let kind = symbols
        .strip(value.ty)
        .name
        .split('<')
        .next()
        .unwrap_or("Rc")
        .to_string();
    Some(format!(
        "{kind}(strong={strong}, weak={}) {shown}",
        weak.saturating_sub(1)
    ))
}

pub async fn counted_children<M: TargetMemory>(
    symbols: &Symbols,
    value: &Value,
    mem: &mut M,
) -> Option<Children> {
    let inner = counted_inner(symbols, value, mem).await?;
    let shared = symbols
        .find_member(&inner, "value")
        .or_else(|| symbols.find_member(&inner, "data"))?;
    Some(Children::Named(vec![Child {
        name: "value".into(),
        ty: Some(shared.ty),
        place: shared.place,
    }]))
}

/// What a `Cell`, `RefCell` or `UnsafeCell` holds.
pub fn cell_contents(symbols: &Symbols, value: &Value) -> Option<Value> {
    let mut current = symbols.find_member(value, "value")?;
    while ["Cell<", "RefCell<", "UnsafeCell<"]
        .iter()
        .any(|p| symbols.strip(current.ty).name.starts_with(p))
    {
        current = symbols.find_member(&current, "value")?;
    }
    Some(current)
}

/// Buckets of a hash table looked at, at most: a summary or a listing of
/// a huge table reads its control bytes only this far.
const MAX_BUCKETS: u64 = 1 << 16;

/// The entries of a `HashMap`/`HashSet`: hashbrown's `RawTable<T>` keeps
/// one control byte per bucket (top bit clear: the bucket is full) and
/// the buckets themselves just below the control bytes, bucket `i` at
/// `ctrl - (i + 1) * size_of::<T>()`. Returns the item count and the full
/// buckets as `(K, V)` tuple values (`(T, ())` for a set).
async fn hash_entries<M: TargetMemory>(
    symbols: &Symbols,
    value: &Value,
    limit: u64,
    mem: &mut M,
) -> Option<(u64, Vec<Value>)> {
    let raw = find_struct(symbols, value, |n| n.starts_with("RawTable<"), 0)?;
    let entry = symbols.template_param(raw.ty, "T")?;
    let stride = symbols.resolve_type(entry).size?;
    let inner = symbols.find_member(&raw, "table")?;
    let (ctrl, _) = symbols.leaf_pointer(&symbols.find_member(&inner, "ctrl")?)?;
    let buckets = symbols
        .leaf_int(&symbols.find_member(&inner, "bucket_mask")?)?
        .checked_add(1)?;
    let items = symbols.leaf_int(&symbols.find_member(&inner, "items")?)?;
    if items == 0 {
        return Some((0, Vec::new()));
    }
    let control = mem
        .read(ctrl, buckets.min(MAX_BUCKETS) as usize)
        .await
        .ok()?;
    let mut entries = Vec::new();
    for (i, byte) in control.iter().enumerate() {
        if entries.len() as u64 >= limit.min(items) {
            break;
        }
        if byte & 0x80 != 0 {
            continue;
        }
        let addr = ctrl.checked_sub((i as u64 + 1) * stride)?;
        let bytes = mem.read(addr, stride as usize).await.ok()?;
        entries.push(Value {
            ty: entry,
            place: Place::Memory(addr),
            bytes,
        });
    }
    Some((items, entries))
}

/// The first struct, depth first through members, whose name `wanted`.
fn find_struct(
    symbols: &Symbols,
    value: &Value,
    wanted: fn(&str) -> bool,
    depth: u32,
) -> Option<Value> {
    let ty = symbols.strip(value.ty);
    if wanted(&ty.name) {
        return Some(value.clone());
    }
    let TypeKind::Struct { members, .. } = &ty.kind else {
        return None;
    };
    if depth >= 6 {
        return None;
    }
    members
        .iter()
        .filter_map(|m| symbols.member_value(value, m))
        .find_map(|child| find_struct(symbols, &child, wanted, depth + 1))
}

/// A hash table's (key, value) pairs, the value None for a set.
async fn hash_pairs<M: TargetMemory>(
    symbols: &Symbols,
    value: &Value,
    set: bool,
    limit: u64,
    mem: &mut M,
) -> Option<(u64, Vec<(Value, Option<Value>)>)> {
    let (items, entries) = hash_entries(symbols, value, limit, mem).await?;
    let mut pairs = Vec::new();
    for entry in &entries {
        let key = symbols.find_member(entry, "__0")?;
        let item = if set {
            None
        } else {
            Some(symbols.find_member(entry, "__1")?)
        };
        pairs.push((key, item));
    }
    Some((items, pairs))
}

/// `(1) {"k": 1}` for a map, `(2) {1, 2}` for a set.
pub async fn hash_table<M: TargetMemory>(
    symbols: &Symbols,
    value: &Value,
    set: bool,
    mem: &mut M,
    depth: Depth,
) -> Option<String> {
    let (items, pairs) = hash_pairs(symbols, value, set, super::SUMMARY_ELEMENTS, mem).await?;
    Some(map_summary(symbols, items, &pairs, mem, depth).await)
}

/// A map's values named by their keys (`["k"]`), a set's keys by position.
pub async fn hash_table_children<M: TargetMemory>(
    symbols: &Symbols,
    value: &Value,
    set: bool,
    mem: &mut M,
) -> Option<Children> {
    let (_, pairs) = hash_pairs(symbols, value, set, 1000, mem).await?;
    Some(map_rows(symbols, pairs, mem).await)
}

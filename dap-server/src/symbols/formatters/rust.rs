//! Rust's standard library types: `String` (and `OsString`, `PathBuf`),
//! `&str`, slices, `Vec<T>`, `Rc<T>` and `Arc<T>`, `HashMap` and `HashSet`
//! (hashbrown's table walked), `Cell`/`RefCell`. Enums, `Option` and
//! `Result` need no formatter of their own: their DWARF variant parts are
//! decoded generically (`super::Symbols::summarize`).
//!
//! Layouts are found by member name and template parameter, not by fixed
//! offsets, and descend through wrappers (`RawVec`, `Unique`, `NonNull`,
//! `Cell`) by shape, so they hold across rustc versions that reshuffle
//! those internals.

use super::{Child, Children, Value, MAX_DEPTH};
use crate::symbols::types::{Place, TypeKind};
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
    Some(Children::Indexed {
        count,
        element,
        first,
        stride,
    })
}

pub fn vec_children(symbols: &Symbols, value: &Value) -> Option<Children> {
    let element = symbols.template_param(value.ty, "T")?;
    let (first, count) = vec_parts(symbols, value)?;
    let stride = symbols.resolve_type(element).size?;
    Some(Children::Indexed {
        count,
        element: Some(element),
        first,
        stride,
    })
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
    depth: u32,
) -> Option<String> {
    let inner = counted_inner(symbols, value, mem).await?;
    let strong = symbols.leaf_int(&symbols.find_member(&inner, "strong")?)?;
    let weak = symbols.leaf_int(&symbols.find_member(&inner, "weak")?)?;
    let shared = symbols
        .find_member(&inner, "value")
        .or_else(|| symbols.find_member(&inner, "data"))?;
    let shown = if depth >= MAX_DEPTH {
        "{…}".to_string()
    } else {
        Box::pin(symbols.summarize(&shared, mem, depth + 1)).await
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

/// `(1) {"k": 1}` for a map, `(2) {1, 2}` for a set.
pub async fn hash_table<M: TargetMemory>(
    symbols: &Symbols,
    value: &Value,
    set: bool,
    mem: &mut M,
    depth: u32,
) -> Option<String> {
    let (items, entries) = hash_entries(symbols, value, super::SUMMARY_ELEMENTS, mem).await?;
    let mut parts = Vec::new();
    for entry in &entries {
        let key = symbols.find_member(entry, "__0")?;
        let key = Box::pin(symbols.summarize(&key, mem, depth + 1)).await;
        if set {
            parts.push(key);
        } else {
            let item = symbols.find_member(entry, "__1")?;
            parts.push(format!(
                "{key}: {}",
                Box::pin(symbols.summarize(&item, mem, depth + 1)).await
            ));
        }
    }
    if items > entries.len() as u64 {
        parts.push("…".into());
    }
    Some(format!("({items}) {{{}}}", parts.join(", ")))
}

/// A map's values named by their keys (`["k"]`), a set's keys by position.
pub async fn hash_table_children<M: TargetMemory>(
    symbols: &Symbols,
    value: &Value,
    set: bool,
    mem: &mut M,
) -> Option<Children> {
    let (_, entries) = hash_entries(symbols, value, 1000, mem).await?;
    let mut rows = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let key = symbols.find_member(entry, "__0")?;
        let row = if set {
            Child {
                name: format!("[{i}]"),
                ty: Some(key.ty),
                place: key.place,
            }
        } else {
            let item = symbols.find_member(entry, "__1")?;
            let name = format!(
                "[{}]",
                Box::pin(symbols.summarize(&key, mem, MAX_DEPTH - 1)).await
            );
            Child {
                name,
                ty: Some(item.ty),
                place: item.place,
            }
        };
        rows.push(row);
    }
    Some(Children::Named(rows))
}

//! Rust's standard library types: `String` (and `OsString`, `PathBuf`),
//! `&str`, slices, `Vec<T>`, `Rc<T>` and `Arc<T>`. Enums, `Option` and
//! `Result` need no formatter of their own: their DWARF variant parts are
//! decoded generically (`super::Symbols::summarize`).
//!
//! Layouts are found by member name and template parameter, not by fixed
//! offsets, and descend through wrappers (`RawVec`, `Unique`, `NonNull`,
//! `Cell`) by shape, so they hold across rustc versions that reshuffle
//! those internals.

use super::{Children, Child, Value, MAX_DEPTH};
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
        let TypeKind::Struct { members, .. } = &ty.kind else { return None };
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

pub async fn string<M: TargetMemory>(symbols: &Symbols, value: &Value, mem: &mut M) -> Option<String> {
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
    Some(Children::Indexed { count, element, first, stride })
}

pub fn vec_children(symbols: &Symbols, value: &Value) -> Option<Children> {
    let element = symbols.template_param(value.ty, "T")?;
    let (first, count) = vec_parts(symbols, value)?;
    let stride = symbols.resolve_type(element).size?;
    Some(Children::Indexed { count, element: Some(element), first, stride })
}

/// The shared allocation of an `Rc`/`Arc` (`RcInner`/`ArcInner`: the
/// counts and the value), read from the target.
async fn counted_inner<M: TargetMemory>(symbols: &Symbols, value: &Value, mem: &mut M) -> Option<Value> {
    let (addr, inner) = symbols.leaf_pointer(value)?;
    let inner = inner?;
    let size = symbols.resolve_type(inner).size?;
    let bytes = mem.read(addr, size as usize).await.ok()?;
    Some(Value { ty: inner, place: Place::Memory(addr), bytes })
}

/// `Rc(strong=2, weak=0) "rc"`: the counts as rust-gdb gives them (the
/// weak count without the one all strong references hold together).
pub async fn counted<M: TargetMemory>(symbols: &Symbols, value: &Value, mem: &mut M, depth: u32) -> Option<String> {
    let inner = counted_inner(symbols, value, mem).await?;
    let strong = symbols.leaf_int(&symbols.find_member(&inner, "strong")?)?;
    let weak = symbols.leaf_int(&symbols.find_member(&inner, "weak")?)?;
    let shared = symbols.find_member(&inner, "value").or_else(|| symbols.find_member(&inner, "data"))?;
    let shown = if depth >= MAX_DEPTH { "{…}".to_string() } else { Box::pin(symbols.summarize(&shared, mem, depth + 1)).await };
    let kind = symbols.strip(value.ty).name.split('<').next().unwrap_or("Rc").to_string();
    Some(format!("{kind}(strong={strong}, weak={}) {shown}", weak.saturating_sub(1)))
}

pub async fn counted_children<M: TargetMemory>(symbols: &Symbols, value: &Value, mem: &mut M) -> Option<Children> {
    let inner = counted_inner(symbols, value, mem).await?;
    let shared = symbols.find_member(&inner, "value").or_else(|| symbols.find_member(&inner, "data"))?;
    Some(Children::Named(vec![Child { name: "value".into(), ty: Some(shared.ty), place: shared.place }]))
}

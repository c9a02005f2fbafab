//! The C++ standard library as Debian's g++ builds it (libstdc++):
//! `std::string`, `std::string_view`, `std::vector`, `std::unique_ptr` and
//! `std::shared_ptr`, shown as gdb's libstdc++ pretty printers show them.
//! Members are found by name through base classes (`_Vector_impl_data`,
//! `_Head_base`), as those printers do.

use super::{Child, Children, Value};
use crate::symbols::types::{int_of, Place};
use crate::symbols::{Symbols, TargetMemory};

pub async fn string<M: TargetMemory>(
    symbols: &Symbols,
    value: &Value,
    mem: &mut M,
) -> Option<String> {
    let (ptr, len) = match symbols.find_member(value, "_M_dataplus") {
        Some(plus) => (
            symbols.leaf_pointer(&plus)?.0,
            symbols.leaf_int(&symbols.find_member(value, "_M_string_length")?)?,
        ),
        None => (
            symbols
                .leaf_pointer(&symbols.find_member(value, "_M_str")?)?
                .0,
            symbols.leaf_int(&symbols.find_member(value, "_M_len")?)?,
        ),
    };
    symbols.quoted(ptr, len, mem).await
}

pub fn vector_children(symbols: &Symbols, value: &Value) -> Option<Children> {
    let (first, element) =
        symbols.leaf_pointer(&symbols.member_path(value, &["_M_impl", "_M_start"])?)?;
    let (finish, _) =
        symbols.leaf_pointer(&symbols.member_path(value, &["_M_impl", "_M_finish"])?)?;
    let stride = symbols.resolve_type(element?).size?.max(1);
    Some(Children::Indexed {
        count: finish.saturating_sub(first) / stride,
        element,
        first,
        stride,
    })
}

pub fn vector_capacity(symbols: &Symbols, value: &Value) -> Option<u64> {
    let (first, element) =
        symbols.leaf_pointer(&symbols.member_path(value, &["_M_impl", "_M_start"])?)?;
    let (end, _) =
        symbols.leaf_pointer(&symbols.member_path(value, &["_M_impl", "_M_end_of_storage"])?)?;
    Some(end.saturating_sub(first) / symbols.resolve_type(element?).size?.max(1))
}

/// `std::unique_ptr<int> = {get() = 0x4172b0}`, as gdb prints it.
pub fn unique_ptr(symbols: &Symbols, value: &Value) -> Option<String> {
    let (addr, _) = symbols.leaf_pointer(value)?;
    Some(format!(
        "{} = {{get() = {addr:#x}}}",
        pointer_type_name(symbols, value)
    ))
}

/// `std::shared_ptr<int> (use count 1, weak count 0) = {get() = 0x…}`.
pub async fn shared_ptr<M: TargetMemory>(
    symbols: &Symbols,
    value: &Value,
    mem: &mut M,
) -> Option<String> {
    let (addr, _) = symbols.leaf_pointer(&symbols.find_member(value, "_M_ptr")?)?;
    let name = pointer_type_name(symbols, value);
    let (counts, counts_type) =
        symbols.leaf_pointer(&symbols.member_path(value, &["_M_refcount", "_M_pi"])?)?;
    if counts == 0 {
        return Some(format!("{name} (empty) = {{get() = {addr:#x}}}"));
    }
    let size = symbols.resolve_type(counts_type?).size?;
    let bytes = mem.read(counts, size as usize).await.ok()?;
    let block = Value {
        ty: counts_type?,
        place: Place::Memory(counts),
        bytes,
    };
    let uses = int_of(&symbols.find_member(&block, "_M_use_count")?.bytes, true);
    let weak = int_of(&symbols.find_member(&block, "_M_weak_count")?.bytes, true);
    // libstdc++ counts the strong references together as one weak one.
    let weak = if uses > 0 { weak - 1 } else { weak };
    Some(format!(
        "{name} (use count {uses}, weak count {weak}) = {{get() = {addr:#x}}}"
    ))
}

pub fn smart_pointer_children(symbols: &Symbols, value: &Value) -> Option<Children> {
    let (addr, pointee) = symbols.leaf_pointer(value)?;
    Some(Children::Named(vec![Child {
        name: "*get()".into(),
        ty: pointee,
        place: Place::Memory(addr),
    }]))
}

/// `std::unique_ptr<int>` from `unique_ptr<int, std::default_delete<int> >`.
fn pointer_type_name(symbols: &Symbols, value: &Value) -> String {
    let name = symbols.strip(value.ty).name.clone();
    let head = name
        .split(',')
        .next()
        .unwrap_or(&name)
        .trim_end_matches(['>', ' ']);
    format!("std::{head}>")
}

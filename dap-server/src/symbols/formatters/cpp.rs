//! The C++ standard library as Debian's g++ builds it (libstdc++):
//! `std::string`, `std::string_view`, `std::vector`, `std::unique_ptr`,
//! `std::shared_ptr`, `std::optional`, `std::variant`, `std::array`,
//! `std::deque` (its buffers as segments of one sequence), `std::list`,
//! the red-black-tree containers (`std::map`, `std::set` and their multi-
//! forms) and the hash tables (`std::unordered_map` …), shown as gdb's
//! libstdc++ pretty printers show them.
//! Members are found by name through base classes (`_Vector_impl_data`,
//! `_Head_base`), as those printers do.

use super::{Child, Children, Depth, Family, Sequence, Value, SUMMARY_ELEMENTS};
use crate::symbols::types::{int_of, Place, TypeKind};
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
    Some(Children::Indexed(Sequence::contiguous(
        finish.saturating_sub(first) / stride,
        element,
        first,
        stride,
    )))
}

/// Buffers of a `std::deque` looked at, at most (a million `int`s fill
/// 7813 of them).
const MAX_DEQUE_BUFFERS: u64 = 1 << 17;

/// A `std::deque`'s elements: fixed-size buffers listed in order by the
/// map (`_M_map`) from the start iterator's node to the finish
/// iterator's; the first buffer is used from the start's `_M_cur`, the
/// last up to the finish's `_M_cur`. The buffer size comes from the start
/// iterator's `_M_first`/`_M_last`.
pub async fn deque_children<M: TargetMemory>(
    symbols: &Symbols,
    value: &Value,
    mem: &mut M,
) -> Option<Children> {
    let iterator = |name: &str| -> Option<[u64; 4]> {
        let it = symbols.member_path(value, &["_M_impl", name])?;
        let mut out = [0; 4];
        for (slot, field) in out
            .iter_mut()
            .zip(["_M_cur", "_M_first", "_M_last", "_M_node"])
        {
            *slot = symbols.leaf_pointer(&symbols.find_member(&it, field)?)?.0;
        }
        Some(out)
    };
    let [start_cur, start_first, start_last, start_node] = iterator("_M_start")?;
    let [finish_cur, finish_first, _, finish_node] = iterator("_M_finish")?;
    let (_, element) =
        symbols.leaf_pointer(&symbols.member_path(value, &["_M_impl", "_M_start", "_M_cur"])?)?;
    let stride = symbols.resolve_type(element?).size?.max(1);
    let per_buffer = start_last.checked_sub(start_first)? / stride;
    let segments = if start_node == finish_node {
        vec![(start_cur, finish_cur.checked_sub(start_cur)? / stride)]
    } else {
        let buffers = finish_node.checked_sub(start_node)? / 8;
        if buffers > MAX_DEQUE_BUFFERS {
            return None;
        }
        let map = mem.read(start_node, (buffers * 8) as usize).await.ok()?;
        let mut segments = vec![(start_cur, start_last.checked_sub(start_cur)? / stride)];
        for i in 1..buffers as usize {
            let buffer = int_of(map.get(i * 8..i * 8 + 8)?, false) as u64;
            segments.push((buffer, per_buffer));
        }
        segments.push((finish_first, finish_cur.checked_sub(finish_first)? / stride));
        segments
    };
    Some(Children::Indexed(Sequence {
        count: segments.iter().map(|(_, n)| n).sum(),
        element,
        stride,
        segments,
    }))
}

/// A `std::array`'s elements (its `_M_elems` C array), indexed.
pub fn array_children(symbols: &Symbols, value: &Value) -> Option<Children> {
    let elems = symbols.find_member(value, "_M_elems")?;
    let Place::Memory(first) = elems.place else {
        return None;
    };
    let TypeKind::Array { element, counts } = &symbols.strip(elems.ty).kind else {
        // `std::array<T, 0>` holds no array.
        return Some(Children::Named(Vec::new()));
    };
    let stride = symbols.element_size(*element, &counts[1..])?;
    Some(Children::Indexed(Sequence::contiguous(
        counts.first().copied().flatten()?,
        *element,
        first,
        stride,
    )))
}

/// The alternative a `std::variant` holds: `_M_index` picks it, and the
/// storage `_M_u` is a recursive union (`_M_first` is alternative 0,
/// `_M_rest` the union of the others) whose members are
/// `_Uninitialized<T>` wrappers; the value sits at the wrapper's start,
/// of the wrapper's `_Type`. Returns the index and the value, None for
/// a variant valueless by exception.
fn variant_value(symbols: &Symbols, value: &Value) -> Option<(u64, Option<Value>)> {
    let index = symbols.find_deep(value, "_M_index")?;
    let index = int_of(&index.bytes, false) as u64;
    let npos = (1u64 << (8 * index_size(&symbols.find_deep(value, "_M_index")?))) - 1;
    if index == npos {
        return Some((index, None));
    }
    let mut union = symbols.find_deep(value, "_M_u")?;
    for _ in 0..index {
        union = symbols.find_member(&union, "_M_rest")?;
    }
    let wrapper = symbols.find_member(&union, "_M_first")?;
    let ty = symbols.template_param(wrapper.ty, "_Type")?;
    let size = symbols.resolve_type(ty).size? as usize;
    Some((
        index,
        Some(Value {
            ty,
            place: wrapper.place.clone(),
            bytes: wrapper.bytes.get(..size)?.to_vec(),
        }),
    ))
}

fn index_size(index: &Value) -> u32 {
    index.bytes.len().clamp(1, 8) as u32
}

/// `std::variant<int, std::string> [index 1] = {"text"}`, as gdb prints it.
pub async fn variant<M: TargetMemory>(
    symbols: &Symbols,
    value: &Value,
    mem: &mut M,
    depth: Depth,
) -> Option<String> {
    let name = gdb_type_name(&template_name(symbols, value));
    match variant_value(symbols, value)? {
        (_, None) => Some(format!("{name} [no contained value]")),
        (index, Some(inner)) => {
            let shown = Box::pin(symbols.summarize(&inner, mem, depth.nested())).await;
            Some(format!("{name} [index {index}] = {{{shown}}}"))
        }
    }
}

pub fn variant_children(symbols: &Symbols, value: &Value) -> Option<Children> {
    let rows = match variant_value(symbols, value)? {
        (_, None) => Vec::new(),
        (index, Some(inner)) => vec![Child {
            name: format!("[index {index}]"),
            ty: Some(inner.ty),
            place: inner.place,
        }],
    };
    Some(Children::Named(rows))
}

/// The abbreviations gdb's libstdc++ type printers apply to type names.
const TYPE_ABBREVIATIONS: &[(&str, &str)] = &[
    (
        "std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >",
        "std::string",
    ),
    (
        "std::__cxx11::basic_string<wchar_t, std::char_traits<wchar_t>, std::allocator<wchar_t> >",
        "std::wstring",
    ),
    (
        "std::basic_string_view<char, std::char_traits<char> >",
        "std::string_view",
    ),
];

/// A type name as gdb prints it: library types abbreviated, `> >` closed up.
fn gdb_type_name(name: &str) -> String {
    let mut name = name.to_string();
    for (long, short) in TYPE_ABBREVIATIONS {
        name = name.replace(long, short);
    }
    name.replace(" >", ">")
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

/// `std::optional<int> = {[contained value] = 5}` or
/// `std::optional<int> [no contained value]`.
pub async fn optional<M: TargetMemory>(
    symbols: &Symbols,
    value: &Value,
    mem: &mut M,
    depth: Depth,
) -> Option<String> {
    let name = template_name(symbols, value);
    match optional_value(symbols, value)? {
        None => Some(format!("{name} [no contained value]")),
        Some(inner) => {
            let shown = Box::pin(symbols.summarize(&inner, mem, depth.nested())).await;
            Some(format!("{name} = {{[contained value] = {shown}}}"))
        }
    }
}

fn optional_value(symbols: &Symbols, value: &Value) -> Option<Option<Value>> {
    let engaged = symbols.find_deep(value, "_M_engaged")?;
    if int_of(&engaged.bytes, false) == 0 {
        return Some(None);
    }
    Some(Some(symbols.find_deep(value, "_M_value")?))
}

pub fn optional_children(symbols: &Symbols, value: &Value) -> Option<Children> {
    let rows = match optional_value(symbols, value)? {
        None => Vec::new(),
        Some(inner) => vec![Child {
            name: "[contained value]".into(),
            ty: Some(inner.ty),
            place: inner.place,
        }],
    };
    Some(Children::Named(rows))
}

/// Nodes looked at, at most, in a summary or a listing.
const MAX_NODES: usize = 1000;

/// How a node-based container links its nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Links {
    /// `std::map`, `std::set` …: a red-black tree walked in order.
    Tree,
    /// `std::unordered_map` …: a singly linked node list.
    HashList,
    /// `std::list`: a doubly linked ring through a sentinel node.
    List,
}

pub fn links(family: Family) -> Links {
    match family {
        Family::CppTree => Links::Tree,
        Family::CppList => Links::List,
        _ => Links::HashList,
    }
}

/// The elements of a tree (`std::map`, `std::set`) in order, or of a hash
/// table (`std::unordered_map` …) in its list order, as values of the
/// container's value type (`std::pair<const K, V>` for maps), with the
/// container's element count.
async fn elements<M: TargetMemory>(
    symbols: &Symbols,
    links: Links,
    value: &Value,
    limit: usize,
    mem: &mut M,
) -> Option<(u64, Vec<Value>)> {
    let (element, count) = match links {
        Links::Tree => (
            symbols.template_param(symbols.find_member(value, "_M_t")?.ty, "_Val")?,
            symbols.leaf_int(&symbols.find_deep(value, "_M_node_count")?)?,
        ),
        Links::HashList => (
            symbols.template_param(symbols.find_member(value, "_M_h")?.ty, "_Value")?,
            symbols.leaf_int(&symbols.find_deep(value, "_M_element_count")?)?,
        ),
        Links::List => (
            symbols.template_param(value.ty, "_Tp")?,
            symbols.leaf_int(&symbols.find_deep(value, "_M_size")?)?,
        ),
    };
    let size = symbols.resolve_type(element).size?;
    let mut addresses = Vec::new();
    if links == Links::List {
        // From the sentinel's `_M_next` round to the sentinel; the element
        // follows each node's two links.
        let sentinel = symbols.find_deep(value, "_M_node")?;
        let Place::Memory(sentinel_addr) = sentinel.place else {
            return None;
        };
        let mut node = symbols
            .leaf_pointer(&symbols.find_member(&sentinel, "_M_next")?)?
            .0;
        while node != sentinel_addr && node != 0 && addresses.len() < limit.min(count as usize) {
            addresses.push(node + 16);
            node = int_of(&mem.read(node, 8).await.ok()?, false) as u64;
        }
    } else if links == Links::Tree {
        // In-order walk from the leftmost node: a node's successor is the
        // leftmost node of its right subtree, or the first ancestor it is
        // left of. Node links sit at the offsets of `_Rb_tree_node_base`,
        // the element right after it.
        let header = symbols.find_deep(value, "_M_header")?;
        let Place::Memory(header_addr) = header.place else {
            return None;
        };
        let link = |name: &str| {
            symbols
                .find_member(&header, name)
                .and_then(|m| match m.place {
                    Place::Memory(a) => Some(a - header_addr),
                    _ => None,
                })
        };
        let (parent_at, left_at, right_at) =
            (link("_M_parent")?, link("_M_left")?, link("_M_right")?);
        let node_size = symbols.resolve_type(header.ty).size?;
        let read_link = |bytes: &[u8], at: u64| {
            bytes
                .get(at as usize..at as usize + 8)
                .map(|b| int_of(b, false) as u64)
        };
        let mut node = read_link(&header.bytes, left_at)?;
        while node != header_addr && node != 0 && addresses.len() < limit.min(count as usize) {
            addresses.push(node + node_size);
            let links = mem.read(node, node_size as usize).await.ok()?;
            let right = read_link(&links, right_at)?;
            if right != 0 {
                node = right;
                loop {
                    let left = read_link(&mem.read(node, node_size as usize).await.ok()?, left_at)?;
                    if left == 0 {
                        break;
                    }
                    node = left;
                }
            } else {
                let mut child = node;
                let mut parent = read_link(&links, parent_at)?;
                while parent != header_addr
                    && read_link(&mem.read(parent, node_size as usize).await.ok()?, right_at)?
                        == child
                {
                    child = parent;
                    parent =
                        read_link(&mem.read(parent, node_size as usize).await.ok()?, parent_at)?;
                }
                node = parent;
            }
        }
    } else {
        // A singly linked list from `_M_before_begin`; the element follows
        // each node's `_M_nxt` link.
        let mut node = symbols
            .leaf_pointer(&symbols.find_deep(value, "_M_before_begin")?)?
            .0;
        while node != 0 && addresses.len() < limit.min(count as usize) {
            addresses.push(node + 8);
            node = int_of(&mem.read(node, 8).await.ok()?, false) as u64;
        }
    }
    let mut out = Vec::new();
    for addr in addresses {
        let bytes = mem.read(addr, size as usize).await.ok()?;
        out.push(Value {
            ty: element,
            place: Place::Memory(addr),
            bytes,
        });
    }
    Some((count, out))
}

/// `std::map with 3 elements = {[1] = "one", …}`, `std::set with 2
/// elements = {[0] = 3, [1] = 5}`, `std::__cxx11::list = {[0] = 4}`, as
/// gdb prints them.
pub async fn linked<M: TargetMemory>(
    symbols: &Symbols,
    links: Links,
    value: &Value,
    mem: &mut M,
    depth: Depth,
) -> Option<String> {
    let (count, items) = elements(symbols, links, value, SUMMARY_ELEMENTS as usize, mem).await?;
    let kind = symbols
        .strip(value.ty)
        .name
        .split('<')
        .next()
        .unwrap_or("")
        .to_string();
    let noun = if count == 1 { "element" } else { "elements" };
    let head = if links == Links::List {
        // The C++11 ABI's list (the one that stores its size) lives in
        // `std::__cxx11`, and gdb names it so.
        format!("std::__cxx11::{kind}")
    } else {
        format!("std::{kind} with {count} {noun}")
    };
    if count == 0 {
        return Some(if links == Links::List {
            format!("empty {head}")
        } else {
            head
        });
    }
    let mut parts = Vec::new();
    for (i, item) in items.iter().enumerate() {
        parts.push(
            match (
                symbols.find_member(item, "first"),
                symbols.find_member(item, "second"),
            ) {
                (Some(k), Some(v)) if kind.contains("map") => {
                    let k = Box::pin(symbols.summarize(&k, mem, depth.nested())).await;
                    let v = Box::pin(symbols.summarize(&v, mem, depth.nested())).await;
                    format!("[{k}] = {v}")
                }
                _ => format!(
                    "[{i}] = {}",
                    Box::pin(symbols.summarize(item, mem, depth.nested())).await
                ),
            },
        );
    }
    Some(format!(
        "{head} = {{{}}}",
        super::gdb_list(&parts, count > items.len() as u64)
    ))
}

/// A map's values named by their keys (`[1]`), a set's elements by position.
pub async fn linked_children<M: TargetMemory>(
    symbols: &Symbols,
    links: Links,
    value: &Value,
    mem: &mut M,
) -> Option<Children> {
    let (_, items) = elements(symbols, links, value, MAX_NODES, mem).await?;
    let map = symbols.strip(value.ty).name.contains("map<");
    let mut rows = Vec::new();
    for (i, item) in items.iter().enumerate() {
        rows.push(
            match (
                map,
                symbols.find_member(item, "first"),
                symbols.find_member(item, "second"),
            ) {
                (true, Some(k), Some(v)) => {
                    let key = Box::pin(symbols.summarize(&k, mem, Depth::KEY)).await;
                    Child {
                        name: format!("[{key}]"),
                        ty: Some(v.ty),
                        place: v.place,
                    }
                }
                _ => Child {
                    name: format!("[{i}]"),
                    ty: Some(item.ty),
                    place: item.place.clone(),
                },
            },
        );
    }
    Some(Children::Named(rows))
}

/// `std::optional<int>` from `optional<int>`.
fn template_name(symbols: &Symbols, value: &Value) -> String {
    format!("std::{}", symbols.strip(value.ty).name)
}

//! Unit tests of the library-type formatters on table layouts built in
//! memory: the types come from the DWARF of small programs rustc and g++
//! compile here with `-g` (the real std and libstdc++ layouts), the
//! tables' memory is laid out by the test, so every shape a walk must
//! handle is reached on purpose — control bytes spanning several of
//! hashbrown's 16-byte groups, tombstones, a full table, an empty one, a
//! small table with its mirrored trailing group, a long node chain.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, Result};

use super::{Children, Depth, Value};
use crate::symbols::types::{Place, TypeId, TypeKind};
use crate::symbols::{Symbols, TargetMemory};

/// hashbrown's control bytes: EMPTY, DELETED (a tombstone), and a full
/// bucket holds the hash's top 7 bits (top bit clear).
const EMPTY: u8 = 0xff;
const DELETED: u8 = 0x80;
/// Bytes in a control group (SSE2): a walk that stops after the first
/// group sees only buckets 0..16.
const GROUP: usize = 16;

const RUST_FIXTURE: &str = r#"
use std::collections::{HashMap, HashSet};
#[inline(never)]
fn show(map: &HashMap<u32, u64>, set: &HashSet<u16>) {
    std::hint::black_box((map, set));
}
fn main() {
    show(&HashMap::new(), &HashSet::new());
}
"#;

const CPP_FIXTURE: &str = r#"
#include <unordered_map>
__attribute__((noinline)) void show(const std::unordered_map<int, long> &map) { asm volatile("" : : "r"(&map)); }
int main() { std::unordered_map<int, long> map; show(map); }
"#;

fn strict() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Compiles `source` once per test process with `compiler` into a
/// temporary directory kept for the process's life; None (after a loud
/// SKIPPED, or a panic under CI) when the compiler is missing.
fn fixture(
    cell: &'static OnceLock<Option<(tempfile::TempDir, PathBuf)>>,
    compiler: &str,
    args: &[&str],
    file: &str,
    source: &str,
) -> Option<&'static Path> {
    let built = cell.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let src = dir.path().join(file);
        std::fs::write(&src, source).expect("write the fixture's source");
        let out = dir.path().join("fixture");
        let run = std::process::Command::new(compiler)
            .args(args)
            .arg("-o")
            .arg(&out)
            .arg(&src)
            .output();
        match run {
            Ok(r) if r.status.success() => Some((dir, out)),
            Ok(r) => panic!(
                "{compiler} failed on the fixture: {}",
                String::from_utf8_lossy(&r.stderr)
            ),
            Err(e) if strict() => panic!("required under CI: `{compiler}` cannot run: {e}"),
            Err(e) => {
                println!("SKIPPED: `{compiler}` cannot run: {e}");
                None
            }
        }
    });
    built.as_ref().map(|(_, p)| p.as_path())
}

/// The Rust fixture's DWARF (compiled once; loaded per test, as
/// `Symbols` is not shared between threads).
fn rust_symbols() -> Option<Symbols> {
    static BUILT: OnceLock<Option<(tempfile::TempDir, PathBuf)>> = OnceLock::new();
    let path = fixture(
        &BUILT,
        "rustc",
        &["-g", "-C", "opt-level=0"],
        "fixture.rs",
        RUST_FIXTURE,
    )?;
    Some(Symbols::load(path).expect("load the Rust fixture's DWARF"))
}

fn cpp_symbols() -> Option<Symbols> {
    static BUILT: OnceLock<Option<(tempfile::TempDir, PathBuf)>> = OnceLock::new();
    let path = fixture(&BUILT, "g++", &["-g", "-O0"], "fixture.cpp", CPP_FIXTURE)?;
    Some(Symbols::load(path).expect("load the C++ fixture's DWARF"))
}

/// The type an argument of `function` points at (the fixtures take their
/// containers by reference).
fn argument_type(symbols: &Symbols, function: &str, name: &str) -> TypeId {
    let f = symbols
        .function_named(function)
        .unwrap_or_else(|| panic!("no function {function} in the fixture"));
    let arg = symbols
        .frame_variables(f.low, 0)
        .into_iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no argument {name} of {function}"));
    match symbols.strip(arg.ty.expect("typed argument")).kind {
        TypeKind::Pointer {
            target: Some(t), ..
        } => t,
        ref other => panic!("{name} is no pointer: {other:?}"),
    }
}

/// Target memory made of the regions a test lays out.
#[derive(Default)]
struct Memory {
    regions: Vec<(u64, Vec<u8>)>,
}

impl Memory {
    fn put(&mut self, addr: u64, bytes: Vec<u8>) {
        self.regions.push((addr, bytes));
    }
}

impl TargetMemory for Memory {
    async fn read(&mut self, addr: u64, len: usize) -> Result<Vec<u8>> {
        for (start, bytes) in &self.regions {
            let Some(from) = addr.checked_sub(*start) else {
                continue;
            };
            if let Some(slice) = bytes.get(from as usize..from as usize + len) {
                return Ok(slice.to_vec());
            }
        }
        Err(anyhow!(
            "no memory at {addr:#x}+{len} (the table was read outside what the test laid out)"
        ))
    }
}

/// A zeroed value of type `ty` at `at`.
fn blank(symbols: &Symbols, ty: TypeId, at: u64) -> Value {
    let size = symbols.resolve_type(ty).size.expect("sized type") as usize;
    Value {
        ty,
        place: Place::Memory(at),
        bytes: vec![0; size],
    }
}

/// Writes `n` into the member `name` found anywhere inside `value` (a
/// pointer wrapper such as `NonNull<u8>` holds its pointer at offset 0).
fn set_deep(symbols: &Symbols, value: &mut Value, name: &str, n: u64) {
    let member = symbols
        .find_deep(value, name)
        .unwrap_or_else(|| panic!("no member {name} in {}", symbols.strip(value.ty).name));
    let (Place::Memory(base), Place::Memory(at)) = (&value.place, &member.place) else {
        panic!("{name} is not in memory");
    };
    let offset = (at - base) as usize;
    let len = member.bytes.len();
    value.bytes[offset..offset + len].copy_from_slice(&n.to_le_bytes()[..len]);
}

/// The offset of a tuple's field (`__0`, `__1`): rustc may reorder them.
fn field_offset(symbols: &Symbols, tuple: TypeId, name: &str) -> usize {
    match &symbols.strip(tuple).kind {
        TypeKind::Struct { members, .. } => {
            members
                .iter()
                .find(|m| m.name == name)
                .unwrap_or_else(|| panic!("no field {name}"))
                .offset as usize
        }
        other => panic!("not a tuple: {other:?}"),
    }
}

/// What a hash table's buckets hold: per bucket its control byte and, for
/// a full one, the key and value written there.
struct Table {
    control: Vec<u8>,
    entries: BTreeMap<usize, (u64, u64)>,
}

impl Table {
    /// `buckets` buckets: the `full` ones (bucket, key, value), the
    /// `tombstones` DELETED, the rest EMPTY.
    fn new(buckets: usize, full: &[(usize, u64, u64)], tombstones: &[usize]) -> Self {
        let mut control = vec![EMPTY; buckets];
        let mut entries = BTreeMap::new();
        for &(bucket, key, value) in full {
            // Any 7-bit hash tag: the walk must look at the top bit only.
            control[bucket] = (key as u8) & 0x7f;
            entries.insert(bucket, (key, value));
        }
        for &bucket in tombstones {
            control[bucket] = DELETED;
        }
        Table { control, entries }
    }
}

/// Where the laid-out tables live: the control bytes at CTRL, the buckets
/// below it (bucket `i` at `CTRL - (i + 1) * stride`), the map at MAP.
const CTRL: u64 = 0x10_0000;
const MAP: u64 = 0x8000;

/// Lays out `table` as hashbrown does for a table of entries of type
/// `entry` (key at field `__0`, value at `__1` when `value_size` > 0), and
/// the `HashMap`/`HashSet` of type `ty` pointing at it; returns the map's
/// value. Control bytes past the buckets: hashbrown's trailing group, a
/// copy of the first group's bytes (for a table smaller than a group,
/// EMPTY up to the group and then the copy).
fn lay_out(
    symbols: &Symbols,
    ty: TypeId,
    table: &Table,
    key_size: usize,
    value_size: usize,
    mem: &mut Memory,
) -> Value {
    let mut map = blank(symbols, ty, MAP);
    let raw = symbols
        .find_deep(&map, "table")
        .expect("hashbrown's RawTable");
    let entry = symbols
        .template_param(raw.ty, "T")
        .expect("RawTable's entry type");
    let stride = symbols.resolve_type(entry).size.expect("sized entry") as usize;
    let buckets = table.control.len();
    let (key_at, value_at) = (
        field_offset(symbols, entry, "__0"),
        (value_size > 0).then(|| field_offset(symbols, entry, "__1")),
    );
    let mut data = vec![0xa5u8; buckets * stride];
    for (&bucket, &(key, value)) in &table.entries {
        let at = (buckets - 1 - bucket) * stride;
        data[at + key_at..at + key_at + key_size].copy_from_slice(&key.to_le_bytes()[..key_size]);
        if let Some(value_at) = value_at {
            data[at + value_at..at + value_at + value_size]
                .copy_from_slice(&value.to_le_bytes()[..value_size]);
        }
    }
    let mut control = table.control.clone();
    if buckets < GROUP {
        control.resize(GROUP, EMPTY);
    }
    control.extend_from_slice(&table.control[..buckets.min(GROUP)]);
    let start = CTRL - (buckets * stride) as u64;
    data.extend_from_slice(&control);
    mem.put(start, data);
    set_deep(symbols, &mut map, "ctrl", CTRL);
    set_deep(symbols, &mut map, "bucket_mask", buckets as u64 - 1);
    set_deep(symbols, &mut map, "items", table.entries.len() as u64);
    let growth_left = (buckets - buckets / 8).saturating_sub(table.entries.len());
    set_deep(symbols, &mut map, "growth_left", growth_left as u64);
    map
}

/// The rows a value expands to, each as `name=value`.
async fn rows(symbols: &Symbols, value: &Value, mem: &mut Memory) -> Vec<String> {
    let Some(Children::Named(children)) = symbols.synthetic_children(value, mem).await else {
        panic!("no named children");
    };
    let mut out = Vec::new();
    for child in children {
        let ty = child.ty.expect("typed row");
        let Place::Memory(addr) = child.place else {
            panic!("row {} is not in memory", child.name);
        };
        let size = symbols.resolve_type(ty).size.unwrap() as usize;
        let bytes = mem.read(addr, size).await.expect("the row's bytes");
        let shown = symbols
            .summarize(
                &Value {
                    ty,
                    place: child.place,
                    bytes,
                },
                mem,
                Depth::top(false),
            )
            .await;
        out.push(format!("{}={shown}", child.name));
    }
    out
}

/// A summary's `(N) {a, b, …}` as N, the entries shown and whether `…` ends them.
fn parse_summary(summary: &str) -> (u64, Vec<String>, bool) {
    let (count, body) = summary
        .strip_prefix('(')
        .and_then(|s| s.split_once(") {"))
        .unwrap_or_else(|| panic!("not a map summary: {summary}"));
    let body = body.strip_suffix('}').expect("closing brace");
    let mut items: Vec<String> = if body.is_empty() {
        Vec::new()
    } else {
        body.split(", ").map(str::to_string).collect()
    };
    let more = items.last().is_some_and(|l| l == "…");
    if more {
        items.pop();
    }
    (count.parse().expect("count"), items, more)
}

/// Checks a HashMap<u32, u64> laid out as `table`: every full bucket is a
/// row, nothing else is; the summary counts them all and shows the first
/// ten (or all) of them.
async fn check_map(table: &Table) {
    let Some(symbols) = rust_symbols() else {
        return;
    };
    let symbols = &symbols;
    let ty = argument_type(symbols, "fixture::show", "map");
    let mut mem = Memory::default();
    let map = lay_out(symbols, ty, table, 4, 8, &mut mem);
    let expected: BTreeSet<String> = table
        .entries
        .values()
        .map(|(k, v)| format!("[{k}]={v}"))
        .collect();
    let shown = rows(symbols, &map, &mut mem).await;
    assert_eq!(
        shown.len(),
        expected.len(),
        "one row per full bucket: {shown:?}"
    );
    assert_eq!(shown.iter().cloned().collect::<BTreeSet<_>>(), expected);

    let summary = symbols.summarize(&map, &mut mem, Depth::top(false)).await;
    let (count, items, more) = parse_summary(&summary);
    assert_eq!(count, table.entries.len() as u64, "{summary}");
    let all: BTreeSet<String> = table
        .entries
        .values()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    assert_eq!(items.len(), all.len().min(10), "{summary}");
    assert_eq!(more, all.len() > 10, "{summary}");
    assert_eq!(
        items.iter().collect::<BTreeSet<_>>().len(),
        items.len(),
        "no entry twice: {summary}"
    );
    for item in &items {
        assert!(
            all.contains(item),
            "{item} of {summary} is no entry of the table"
        );
    }
}

/// 48 entries spread over the four groups of a 64-bucket table, the
/// first bucket and the last one among them, with tombstones between.
#[tokio::test]
async fn hash_map_entries_in_every_group_are_found() {
    let full: Vec<(usize, u64, u64)> = (0..48)
        .map(|i| {
            // Buckets 0, 1, 2, 4, 5, 6, 8 … 62 and 63: three of every four,
            // plus the very last bucket.
            let bucket = if i == 47 { 63 } else { i / 3 * 4 + i % 3 };
            (bucket, 1000 + i as u64, (i * i) as u64)
        })
        .collect();
    let tombstones: Vec<usize> = (0..64)
        .filter(|b| b % 8 == 3 && !full.iter().any(|f| f.0 == *b))
        .collect();
    let table = Table::new(64, &full, &tombstones);
    assert!(table.entries.keys().filter(|&&b| b >= GROUP).count() > 30);
    check_map(&table).await;
}

/// Entries only in the last group: a walk that stops early finds none.
#[tokio::test]
async fn hash_map_entries_only_past_the_first_group() {
    let full: Vec<(usize, u64, u64)> = (0..5).map(|i| (120 + i, 7 * i as u64, i as u64)).collect();
    check_map(&Table::new(128, &full, &[0, 1, 2, 15, 16])).await;
}

/// Every bucket full (64 of 64): no control byte is EMPTY.
#[tokio::test]
async fn hash_map_every_bucket_full() {
    let full: Vec<(usize, u64, u64)> = (0..64).map(|b| (b, b as u64 * 3, b as u64 + 1)).collect();
    check_map(&Table::new(64, &full, &[])).await;
}

/// A map emptied by removals: tombstones and EMPTY only, over several
/// groups, no items: no rows, `(0) {}`.
#[tokio::test]
async fn hash_map_of_tombstones_is_empty() {
    let tombstones: Vec<usize> = (0..64).filter(|b| b % 3 == 0).collect();
    check_map(&Table::new(64, &[], &tombstones)).await;
}

/// A table smaller than a group, with its trailing control bytes as
/// hashbrown lays them out (EMPTY to the group's end, then the copy of
/// its own bytes): its two entries, no copy of them.
#[tokio::test]
async fn hash_map_smaller_than_a_group() {
    check_map(&Table::new(4, &[(0, 5, 50), (3, 6, 60)], &[1])).await;
}

/// A new, never-grown map: hashbrown points it at a static all-EMPTY
/// group with bucket_mask 0 and no items.
#[tokio::test]
async fn hash_map_never_grown() {
    let Some(symbols) = rust_symbols() else {
        return;
    };
    let symbols = &symbols;
    let ty = argument_type(symbols, "fixture::show", "map");
    let mut mem = Memory::default();
    mem.put(CTRL, vec![EMPTY; GROUP]);
    let mut map = blank(symbols, ty, MAP);
    set_deep(symbols, &mut map, "ctrl", CTRL);
    assert_eq!(
        symbols.summarize(&map, &mut mem, Depth::top(false)).await,
        "(0) {}"
    );
    assert!(rows(symbols, &map, &mut mem).await.is_empty());
}

/// A HashSet<u16> over many groups: its keys, by position.
#[tokio::test]
async fn hash_set_entries_in_every_group_are_found() {
    let Some(symbols) = rust_symbols() else {
        return;
    };
    let symbols = &symbols;
    let ty = argument_type(symbols, "fixture::show", "set");
    let full: Vec<(usize, u64, u64)> = (0..40).map(|i| (i * 3 + 1, 500 + i as u64, 0)).collect();
    let table = Table::new(128, &full, &[0, 3, 66]);
    let mut mem = Memory::default();
    let set = lay_out(symbols, ty, &table, 2, 0, &mut mem);
    let shown = rows(symbols, &set, &mut mem).await;
    let mut values: Vec<u64> = shown
        .iter()
        .map(|r| r.split_once('=').unwrap().1.parse().unwrap())
        .collect();
    values.sort();
    assert_eq!(values, (500..540).collect::<Vec<u64>>(), "{shown:?}");
    let names: Vec<String> = shown
        .iter()
        .map(|r| r.split_once('=').unwrap().0.to_string())
        .collect();
    assert_eq!(names, (0..40).map(|i| format!("[{i}]")).collect::<Vec<_>>());
    let (count, items, more) =
        parse_summary(&symbols.summarize(&set, &mut mem, Depth::top(false)).await);
    assert_eq!((count, items.len(), more), (40, 10, true));
}

/// A std::unordered_map<int, long> of 50 nodes: libstdc++ chains every
/// node of every bucket in one singly linked list from `_M_before_begin`,
/// each node's `_M_nxt` first and its `std::pair` after it; all 50 are
/// rows, and the summary counts them.
#[tokio::test]
async fn unordered_map_follows_the_whole_node_chain() {
    let Some(symbols) = cpp_symbols() else { return };
    let symbols = &symbols;
    let ty = argument_type(symbols, "show", "map");
    let mut map = blank(symbols, ty, MAP);
    let pair = symbols
        .template_param(symbols.find_member(&map, "_M_h").unwrap().ty, "_Value")
        .expect("the node's value type");
    let second = match &symbols.strip(pair).kind {
        TypeKind::Struct { members, .. } => {
            members.iter().find(|m| m.name == "second").unwrap().offset as usize
        }
        _ => panic!("pair is no struct"),
    };
    let mut mem = Memory::default();
    const NODES: u64 = 0x20_0000;
    let node_size = 32;
    let keys: Vec<i32> = (0..50).map(|i| (i * 37) % 101 - 20).collect();
    for (i, &key) in keys.iter().enumerate() {
        let at = NODES + i as u64 * node_size;
        let next = if i + 1 < keys.len() {
            at + node_size
        } else {
            0
        };
        let mut node = vec![0u8; node_size as usize];
        node[..8].copy_from_slice(&next.to_le_bytes());
        node[8..12].copy_from_slice(&key.to_le_bytes());
        node[8 + second..16 + second].copy_from_slice(&(i64::from(key) * 100).to_le_bytes());
        mem.put(at, node);
    }
    set_deep(symbols, &mut map, "_M_element_count", keys.len() as u64);
    // `_M_before_begin` is a node base: its `_M_nxt` is the first node.
    set_deep(symbols, &mut map, "_M_before_begin", NODES);
    let shown: BTreeSet<String> = rows(symbols, &map, &mut mem).await.into_iter().collect();
    let expected: BTreeSet<String> = keys
        .iter()
        .map(|k| format!("[{k}]={}", i64::from(*k) * 100))
        .collect();
    assert_eq!(shown, expected);
    let summary = symbols.summarize(&map, &mut mem, Depth::top(false)).await;
    assert!(
        summary.starts_with("std::unordered_map with 50 elements = {"),
        "{summary}"
    );
    assert!(summary.ends_with("...}"), "{summary}");
}

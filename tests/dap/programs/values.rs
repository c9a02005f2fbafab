// Values a Rust developer expects to read in a debugger (issue 15): the
// DAP values test stops at the line marked `values` and compares what vmdbg shows with
// rust-gdb's pretty printers on the same binary at the same line.
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::ffi::OsString;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

struct Account {
    name: String,
    history: Vec<i64>,
    limit: Option<u32>,
}

struct Point {
    x: i32,
    visible: bool,
}

enum Shape {
    Circle { r: f64 },
    Rect(u32, u32),
    Empty,
}

#[inline(never)]
fn total(acct: &Account, label: &str) -> i64 {
    let sum: i64 = acct.history.iter().sum();
    println!("{label}: {sum}"); // MARK:total
    sum
}

fn main() {
    let acct = Account { name: String::from("alice"), history: vec![100, -30, 45], limit: Some(500) };
    let shapes = vec![Shape::Circle { r: 1.5 }, Shape::Rect(2, 3), Shape::Empty];
    let nothing: Option<u32> = None;
    let boxed: Box<i32> = Box::new(7);
    let maybe_ref: Option<&i32> = Some(&*boxed);
    let no_ref: Option<&i32> = None;
    let shared = Rc::new(String::from("rc"));
    let shared2 = Rc::clone(&shared);
    let atomic = Arc::new(5u64);
    let letter = 'λ';
    let pair = (1u8, "two");
    let slice: &[i64] = &acct.history[1..];
    let words: &str = "hello";
    let res: Result<u32, String> = Err(String::from("bad"));
    let ok: Result<u32, String> = Ok(9);
    let big: Vec<u32> = (0..1_000_000).collect();
    // 48 entries each: hashbrown's table grows to 64 buckets, four groups
    // of 16 control bytes, and the entries land in all of them.
    let keys: Vec<String> = (1..48).map(|i| format!("k{i}")).collect();
    let mut map = HashMap::new();
    map.insert("k", 1);
    for (i, key) in keys.iter().enumerate() {
        map.insert(key.as_str(), 100 + i as i32);
    }
    let mut set = HashSet::new();
    for i in 0..48u16 {
        set.insert(42 + 7 * i);
    }
    let counter = Cell::new(3i32);
    let cell = RefCell::new(vec![1u8, 2]);
    // Pushed past its capacity of 4 after two pops: the ring wraps around.
    let mut ring: VecDeque<i32> = VecDeque::with_capacity(4);
    ring.extend([1, 2, 3]);
    ring.pop_front();
    ring.pop_front();
    ring.extend([4, 5, 6]);
    // 20 keys: more than a B-tree leaf holds, so the root is an internal node.
    let squares: BTreeMap<u32, u32> = (0..20).map(|i| (i, i * i)).collect();
    let small = BTreeMap::from([("b", 2), ("a", 1)]);
    let letters = BTreeSet::from(['b', 'a', 'c']);
    let path = PathBuf::from("/tmp/x");
    let os = OsString::from("os");
    let offset = 10;
    let add = move |x: i32| x + offset;
    let flag = true;
    let point = Box::new(Point { x: 1, visible: false });
    let trio = (1i32, 'c', (2.5f64, "s"));
    // Niche layouts: None is the zero that NonZero and Box never hold.
    let nonzero: Option<NonZeroU32> = NonZeroU32::new(8);
    let no_nonzero: Option<NonZeroU32> = None;
    let maybe_box: Option<Box<i32>> = Some(Box::new(9));
    let no_box: Option<Box<i32>> = None;
    let weak = Rc::downgrade(&shared);
    let t = total(&acct, "sum");
    println!("{t} {} {nothing:?} {boxed} {maybe_ref:?} {no_ref:?} {shared2} {atomic} {letter} {pair:?} {slice:?} {words} {res:?} {ok:?} {} {map:?} {set:?} {} {:?} {ring:?} {} {small:?} {letters:?} {path:?} {os:?} {} {flag} {} {} {trio:?} {nonzero:?} {no_nonzero:?} {maybe_box:?} {no_box:?} {}", shapes.len(), big.len(), counter.get(), cell.borrow(), squares.len(), add(1), point.x, point.visible, weak.strong_count()); // MARK:values
    for s in &shapes {
        match s {
            Shape::Circle { r } => println!("circle {r}"),
            Shape::Rect(w, h) => println!("rect {w}x{h}"),
            Shape::Empty => println!("empty"),
        }
    }
}

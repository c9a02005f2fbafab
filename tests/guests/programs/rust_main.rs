// A Rust program for `break main` and a function breakpoint.
#[inline(never)]
fn triple(v: u32) -> u32 {
    v * 3 // MARK:triple
}

fn main() {
    let total = triple(14);
    println!("total={total}");
    std::process::exit(if total == 42 { 0 } else { 1 });
}

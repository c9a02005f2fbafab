//! gdb's range stepping (`vCont;r<start>,<end>`) on vmdbg-vmm's stub,
//! spoken as raw gdb remote protocol on lines-O0.elf and checked against
//! single steps: a range step over a source line stops where a loop of
//! `vCont;s` first leaves the line (the next line's address as gdb reads it
//! from the DWARF), with the same registers; over a line with a call it
//! stops at the callee's first instruction; a breakpoint inside the range
//! stops it there, reported as a continue reports it; and under a recording
//! it records exactly the instructions the single steps take, and replays
//! them after a reverse-continue; a range step around a loop stops for
//! Ctrl-C and leaves when the loop ends. Real gdb range-stepping a `next` is
//! checked against gdb on QEMU's stub (which has no `vCont;r`).

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use vmdbg_e2e::rsp::{vmm_waiting_for_gdb, RawRsp};
use vmdbg_e2e::*;

const LIMIT: Duration = Duration::from_secs(120);

type Rsp = RawRsp<UnixStream>;

/// Where `lines.c:<marker>` starts and where its first line-table row
/// ends, as Debian's gdb reads the line table (an answer that does not
/// come from vmdbg).
fn gdb_line_range(elf: &Path, marker: &str) -> (u64, u64) {
    gdb_line_at(elf, "lines.c", marker_line("lines.c", marker))
}

fn gdb_line_at(elf: &Path, source: &str, line: u32) -> (u64, u64) {
    let out = gdb_batch(elf, &format!("info line {source}:{line}\n"), LIMIT);
    let said = text(&out.stdout);
    let addr = |word: &str| {
        let at = said
            .find(word)
            .unwrap_or_else(|| panic!("gdb: no `{word}` for line {line}: {said}"));
        let hex = said[at + word.len()..]
            .trim_start()
            .trim_start_matches("0x")
            .split(|c: char| !c.is_ascii_hexdigit())
            .next()
            .unwrap();
        u64::from_str_radix(hex, 16).unwrap()
    };
    (addr("starts at address"), addr("and ends at"))
}

/// The long line and the call line, each from its start to the next
/// line's (GCC gives a long line several rows).
fn line_spans(elf: &Path) -> ((u64, u64), (u64, u64)) {
    let long = gdb_line_range(elf, "long-line").0;
    let call = gdb_line_range(elf, "call-line").0;
    let after = gdb_line_range(elf, "loop-line").0;
    ((long, call), (call, after))
}

fn little_endian(hex: &str) -> u64 {
    (0..hex.len() / 2)
        .map(|i| u64::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap() << (8 * i))
        .sum()
}

/// Register `n` of the `g` block (rax … r15 are 0-15, rip 16; 8 bytes
/// each).
fn register(rsp: &mut Rsp, n: usize) -> u64 {
    let regs = rsp.ask("g");
    little_endian(&regs[16 * n..16 * n + 16])
}

fn rip(rsp: &mut Rsp) -> u64 {
    register(rsp, 16)
}

fn stack_top(rsp: &mut Rsp) -> u64 {
    let sp = register(rsp, 7);
    little_endian(&rsp.ask(&format!("m{sp:x},8")))
}

/// A vmdbg-vmm on lines-O0.elf stopped at `addr` by a hardware breakpoint
/// (removed again unless `keep`).
fn stopped_at(addr: u64, extra: &[&str], name: &str, keep: bool) -> (ChildGuard, Rsp) {
    stopped_in("lines-O0.elf", addr, extra, name, keep)
}

fn stopped_in(elf: &str, addr: u64, extra: &[&str], name: &str, keep: bool) -> (ChildGuard, Rsp) {
    let (vmm, mut rsp, dir) = vmm_waiting_for_gdb(&kernel(elf), extra, name);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(rsp.ask(&format!("Z1,{addr:x},1")), "OK");
    let stop = rsp.ask("vCont;c");
    assert!(stop.starts_with("T05"), "{stop}");
    assert_eq!(rip(&mut rsp), addr);
    if !keep {
        assert_eq!(rsp.ask(&format!("z1,{addr:x},1")), "OK");
    }
    (vmm, rsp)
}

/// Single-steps until the pc leaves `[start, end)`: the pcs stepped
/// through (the first is where it started), and the stop outside.
fn stepi_out_of(rsp: &mut Rsp, (start, end): (u64, u64)) -> (Vec<u64>, u64) {
    let mut pcs = vec![rip(rsp)];
    loop {
        let stop = rsp.ask("vCont;s:1");
        assert!(stop.starts_with("T05"), "{stop}");
        let pc = rip(rsp);
        if !(start..end).contains(&pc) {
            return (pcs, pc);
        }
        pcs.push(pc);
        assert!(pcs.len() < 10_000, "the single steps never left the line");
    }
}

fn range_step(rsp: &mut Rsp, (start, end): (u64, u64)) -> String {
    rsp.ask(&format!("vCont;r{start:x},{end:x}:1"))
}

fn ready(test: &str) -> bool {
    require(all([kvm(), tool("gdb")]), test)
}

#[test]
fn a_range_step_stops_where_single_steps_leave_the_line() {
    if !ready("a_range_step_stops_where_single_steps_leave_the_line") {
        return;
    }
    let elf = kernel("lines-O0.elf");
    let (long, call) = line_spans(&elf);
    let twice = elf_symbol(&elf, "twice");

    // The oracle: one VM single-stepped out of each line.
    let (oracle_vmm, mut oracle) = stopped_at(long.0, &[], "range-oracle", false);
    assert!(oracle.ask("vCont?").contains(";r"), "vCont? offers r");
    let (long_pcs, after_long) = stepi_out_of(&mut oracle, long);
    let regs_after_long = oracle.ask("g");
    let (_, in_twice) = stepi_out_of(&mut oracle, call);
    let regs_in_twice = oracle.ask("g");
    drop(oracle_vmm);
    assert!(
        long_pcs.len() >= 20,
        "the long line is {} instructions ({long:x?}: {long_pcs:x?}, then {after_long:#x})",
        long_pcs.len()
    );
    assert_eq!(
        after_long, call.0,
        "single steps leave it for the next line"
    );
    assert_eq!(
        in_twice, twice,
        "single steps leave the call line into twice"
    );

    let (vmm, mut rsp) = stopped_at(long.0, &[], "range-step", false);
    let stop = range_step(&mut rsp, long);
    assert!(stop.starts_with("T05"), "{stop}");
    assert_eq!(rip(&mut rsp), after_long);
    assert_eq!(rsp.ask("g"), regs_after_long, "the same instructions ran");
    // Over a line with a call: the callee's first instruction, its return
    // address (inside the line) on top of the stack.
    let stop = range_step(&mut rsp, call);
    assert!(stop.starts_with("T05"), "{stop}");
    assert_eq!(rip(&mut rsp), twice);
    assert_eq!(rsp.ask("g"), regs_in_twice);
    let ret = stack_top(&mut rsp);
    assert!((call.0..call.1).contains(&ret), "return address {ret:#x}");
    drop(vmm);

    // A breakpoint inside the range stops the range step on it, reported
    // as a continue reports it; the range step from there goes on out.
    let mid = long_pcs[long_pcs.len() / 2];
    let (vmm, mut rsp) = stopped_at(long.0, &[], "range-break", false);
    // gdb's documented edge: a range step steps first, then checks, so an
    // empty range (start == end) is one single step.
    let stop = range_step(&mut rsp, (long.0, long.0));
    assert!(stop.starts_with("T05"), "{stop}");
    assert_eq!(rip(&mut rsp), long_pcs[1]);
    assert_eq!(rsp.ask(&format!("Z1,{mid:x},1")), "OK");
    let stop = range_step(&mut rsp, long);
    assert!(
        stop.starts_with("T05") && stop.contains("hwbreak"),
        "{stop}"
    );
    assert_eq!(rip(&mut rsp), mid);
    assert_eq!(rsp.ask(&format!("z1,{mid:x},1")), "OK");
    let stop = range_step(&mut rsp, long);
    assert!(stop.starts_with("T05") && !stop.contains("break"), "{stop}");
    assert_eq!(rip(&mut rsp), after_long);
    assert_eq!(rsp.ask("g"), regs_after_long);
    drop(vmm);
}

#[test]
fn a_range_step_records_and_replays_the_single_steps() {
    if !ready("a_range_step_records_and_replays_the_single_steps") {
        return;
    }
    let elf = kernel("lines-O0.elf");
    let (long, _) = line_spans(&elf);
    let (oracle_vmm, mut oracle) = stopped_at(long.0, &[], "range-rec-oracle", false);
    let (pcs, after) = stepi_out_of(&mut oracle, long);
    let regs_after = oracle.ask("g");
    drop(oracle_vmm);

    // The breakpoint stays: a recording checks it after every step, and
    // reverse-continue goes back to it.
    let (vmm, mut rsp) = stopped_at(long.0, &["--record"], "range-record", true);
    let at_start = rsp.record_icount();
    let stop = range_step(&mut rsp, long);
    assert!(stop.starts_with("T05"), "{stop}");
    assert_eq!(rip(&mut rsp), after);
    assert_eq!(rsp.ask("g"), regs_after);
    assert_eq!(
        rsp.record_icount() - at_start,
        pcs.len() as u64,
        "recorded one instruction per single step"
    );
    let stop = rsp.ask("bc");
    assert!(stop.starts_with("T05"), "{stop}");
    assert_eq!(rip(&mut rsp), long.0);
    assert_eq!(rsp.record_icount(), at_start);
    // Forward again is a replay of the log.
    let stop = range_step(&mut rsp, long);
    assert!(stop.starts_with("T05"), "{stop}");
    assert_eq!(rip(&mut rsp), after);
    assert_eq!(rsp.ask("g"), regs_after);
    assert_eq!(rsp.record_icount() - at_start, pcs.len() as u64);
    drop(vmm);
}

/// gdb's script for both stubs: `next` through kmain from the line before
/// the long one, printing where each stop is, with the packets it sent.
fn next_script(target: &str) -> String {
    let before = marker_line("lines.c", "before-long");
    format!(
        "set pagination off\nset confirm off\nset width 0
target remote {target}
define at
python f = gdb.selected_frame(); print('AT %s:%d %#x' % (f.name(), f.find_sal().line, f.pc()))
end
hbreak lines.c:{before}
continue
delete
at
set debug remote 1
next
at
next
at
step
at
finish
at
next
at
next
at
set debug remote 0
kill
"
    )
}

#[test]
fn gdb_next_range_steps_on_vmdbg_vmm_and_lands_where_it_lands_on_qemu() {
    if !require(
        all([kvm(), tool("gdb"), tool("qemu-system-x86_64")]),
        "gdb_next_range_steps_on_vmdbg_vmm_and_lands_where_it_lands_on_qemu",
    ) {
        return;
    }
    let elf = kernel("lines-O0.elf");
    let dir = scratch_dir("range-gdb-qemu");
    let socket = dir.join("gdb.sock");
    let qemu = qemu_with_gdbstub(&elf, &socket);
    let on_qemu = gdb_batch(&elf, &next_script(&socket.display().to_string()), LIMIT);
    drop(qemu);
    let _ = std::fs::remove_dir_all(&dir);

    let (vmm, port) = vmm_gdb_on_any_port({
        let mut cmd = vmm();
        cmd.arg("--kernel").arg(&elf);
        cmd
    });
    let on_vmm = gdb_batch(&elf, &next_script(&format!("127.0.0.1:{port}")), LIMIT);
    drop(vmm);

    let stops = |out: &std::process::Output| -> Vec<String> {
        text(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("AT "))
            .map(str::to_string)
            .collect()
    };
    let (q, v) = (stops(&on_qemu), stops(&on_vmm));
    assert_eq!(q.len(), 7, "gdb on QEMU:\n{}", text(&on_qemu.stdout));
    assert_eq!(v, q, "vmdbg-vmm vs QEMU");
    let sent = |out: &std::process::Output, what: &str| {
        text(&out.stderr)
            .lines()
            .filter(|l| l.contains("Sending packet: $") && l.contains(what))
            .count()
    };
    assert!(
        sent(&on_vmm, "vCont;r") >= 3,
        "gdb range-stepped on vmdbg-vmm:\n{}",
        text(&on_vmm.stderr)
    );
    assert_eq!(sent(&on_qemu, "vCont;r"), 0, "QEMU's stub has no vCont;r");
    // The long line is one packet on vmdbg-vmm, one per instruction on QEMU.
    assert!(sent(&on_qemu, "vCont;s") >= 20);
    assert!(sent(&on_vmm, "vCont;s") < sent(&on_qemu, "vCont;s"));
}

#[test]
fn a_range_step_around_a_loop_is_interrupted_and_leaves_when_the_loop_ends() {
    if !ready("a_range_step_around_a_loop_is_interrupted_and_leaves_when_the_loop_ends") {
        return;
    }
    // spin.elf: `while (!released) spins++;` until a debugger sets
    // `released`. The range is both lines of the loop: the guest never
    // leaves it by itself.
    let elf = kernel("spin.elf");
    let body = marker_line("spin.c", "spin-loop");
    let (cond, _) = gdb_line_at(&elf, "spin.c", body - 1);
    let (after, _) = gdb_line_at(&elf, "spin.c", body + 1);
    let (top, _) = gdb_line_at(&elf, "spin.c", body);
    let range = (cond.min(top), after);
    let (vmm, mut rsp) = stopped_in("spin.elf", top, &[], "range-spin", false);
    rsp.send(&format!("vCont;r{:x},{:x}:1", range.0, range.1));
    // A range step that never ends by itself stops for Ctrl-C, as a
    // continue does (whether or not it has stepped yet).
    rsp.send_raw(&[0x03]);
    let stop = rsp.reply();
    assert!(stop.starts_with("T02"), "Ctrl-C stops a range step: {stop}");
    let pc = rip(&mut rsp);
    assert!(
        (range.0..range.1).contains(&pc),
        "stopped in the loop: {pc:#x}"
    );
    let released = elf_symbol(&elf, "released");
    assert_eq!(rsp.ask(&format!("M{released:x},4:01000000")), "OK");
    let stop = range_step(&mut rsp, range);
    assert!(stop.starts_with("T05"), "{stop}");
    assert_eq!(rip(&mut rsp), after, "the first instruction after the loop");
    drop(vmm);
}

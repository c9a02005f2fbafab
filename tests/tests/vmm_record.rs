//! Record and replay in vmdbg-vmm (vmm/src/record), on the host tier:
//! rr.elf takes PIT timer interrupts and serial input interrupts, writes a
//! watched global and faults through a corrupted pointer.
//!
//! - reverse-stepi to 10,000 random positions lands on the registers a
//!   forward single-step trace saw there (raw RSP `bs`, the packet gdb's
//!   `reverse-stepi` sends, for speed), memory at sampled positions too,
//!   and replaying one stretch 100 times observes the same exits;
//! - gdb itself: reverse-stepi, reverse-continue to a breakpoint and to the
//!   last write of a watched global on a recording saved to a file and
//!   replayed in a fresh process, which reaches the same fault;
//! - a forced divergence is reported; corrupt files are refused;
//! - a recording started through the control API (`--recordable`, real
//!   curl) on a VM that ran live: reverse-stepi over a forward trace,
//!   reverse-continue back to where curl started it (also from real gdb),
//!   its file replayed in a fresh process, `stop` going live, and the
//!   API's 400s.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use vmdbg_e2e::rsp::RawRsp;
use vmdbg_e2e::{
    all, elf_symbol, gdb_batch, kernel, kvm, marker_line, qemu_record_then_replay, require, text,
    tool, vmm, ChildGuard,
};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vmdbg-rr-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn symbol(name: &str) -> u64 {
    elf_symbol(&kernel("rr.elf"), name)
}

fn monitor(rsp: &mut RawRsp<UnixStream>, cmd: &str) -> String {
    rsp.monitor(cmd)
}

/// A recording vmdbg-vmm on rr.elf with its gdb stub and its serial port on
/// unix sockets; returns the guard, the RSP client and the serial client.
fn recording_vmm(
    dir: &Path,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> (ChildGuard, RawRsp<UnixStream>, UnixStream) {
    stub_vmm(dir, "--record", extra, envs)
}

/// rr.elf under vmdbg-vmm `mode` (--record or --recordable), waiting for
/// gdb, its stub and serial port on unix sockets.
fn stub_vmm(
    dir: &Path,
    mode: &str,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> (ChildGuard, RawRsp<UnixStream>, UnixStream) {
    let gdb_sock = dir.join("gdb.sock");
    let serial_sock = dir.join("serial.sock");
    let mut cmd = vmm();
    cmd.arg("--kernel")
        .arg(kernel("rr.elf"))
        .args(["--mem", "16M", mode])
        .arg("--gdb")
        .arg(format!("unix:{}", gdb_sock.display()))
        .arg("--wait-gdb")
        .arg("--serial")
        .arg(format!("unix:{}", serial_sock.display()))
        .args(extra)
        .envs(envs.iter().copied());
    let mut guard = ChildGuard::spawn(cmd, "vmdbg-vmm");
    guard.wait_for_stderr(
        "waiting for a client on serial socket",
        Duration::from_secs(10),
    );
    let serial = UnixStream::connect(&serial_sock).expect("connect to the serial socket");
    guard.wait_for_stderr("waiting for gdb", Duration::from_secs(10));
    let stream = UnixStream::connect(&gdb_sock).expect("connect to the stub");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    (guard, RawRsp(stream), serial)
}

/// xorshift64*: a seeded sequence the test prints, so a failure can be
/// replayed with VMDBG_TEST_SEED.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

const TRACE: u64 = 3_000;
const TARGETS: usize = 10_000;
const REPLAYS: usize = 100;
/// Instructions each of the 100 replays executes (from the checkpoint
/// before the typed input to here).
const REPLAY_SPAN: u64 = 1_500;

#[test]
fn reverse_stepi_lands_on_the_forward_trace() {
    if !require(kvm(), "reverse_stepi_lands_on_the_forward_trace") {
        return;
    }
    let dir = scratch("trace");
    let (mut guard, mut rsp, mut serial) =
        recording_vmm(&dir, &["--checkpoint-interval", "50"], &[]);
    let supported = rsp.ask("qSupported:swbreak+;hwbreak+");
    assert!(
        supported.contains("ReverseStep+") && supported.contains("ReverseContinue+"),
        "{supported}"
    );

    // Record up to the wait for input, then type while stepping forward.
    let wait = symbol("wait_ticks");
    assert_eq!(rsp.ask(&format!("Z0,{wait:x},1")), "OK");
    let stop = rsp.ask("vCont;c");
    assert!(stop.starts_with("T05"), "{stop}");
    assert_eq!(rsp.ask(&format!("z0,{wait:x},1")), "OK");
    serial.write_all(b"hi\n").unwrap();

    let start = rsp.record_icount();
    let watched = symbol("watched");
    let mut trace = Vec::new();
    let mut memory = Vec::new();
    let began = Instant::now();
    for i in 0..=TRACE {
        let regs = rsp.ask("g");
        if i % 500 == 1 {
            // rsp is the 8th register of the block, little-endian.
            let sp = u64::from_str_radix(&regs[7 * 16..8 * 16], 16)
                .unwrap()
                .swap_bytes();
            memory.push((
                i,
                rsp.ask(&format!("m{watched:x},40")),
                rsp.ask(&format!("m{:x},80", sp & !0xf)),
                sp & !0xf,
            ));
        }
        trace.push(regs);
        if i < TRACE {
            let stop = rsp.ask("vCont;s:1");
            assert!(stop.starts_with("T05"), "step {i}: {stop}");
        }
    }
    assert_eq!(rsp.record_icount(), start + TRACE);
    eprintln!("forward trace of {TRACE} steps: {:?}", began.elapsed());
    let input = rsp.ask(&format!("m{:x},4", symbol("input_bytes")));
    assert_eq!(
        input, "03000000",
        "the guest's serial interrupt handler took the 3 bytes typed"
    );
    let distinct: std::collections::HashSet<_> = trace.iter().collect();
    assert!(distinct.len() > TRACE as usize / 2, "the trace moves");

    // A new seed each run covers more targets over time; the printed one
    // (also in each failure message) repeats a run. VMDBG_RR_SEED is the
    // old name.
    let fixed = ["VMDBG_TEST_SEED", "VMDBG_RR_SEED"]
        .iter()
        .find_map(|var| Some((var, std::env::var(var).ok()?)));
    let seed = match fixed {
        Some((var, value)) => value
            .parse()
            .unwrap_or_else(|_| panic!("{var}={value} is not a number")),
        None => {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        }
    };
    eprintln!("reverse-stepi targets: seed {seed} (VMDBG_TEST_SEED={seed} repeats them)");
    let mut rng = Rng(seed);
    let began = Instant::now();
    for n in 0..TARGETS {
        let t = rng.next() % TRACE; // lands on start + t, from start + t + 1
        let went = monitor(&mut rsp, &format!("record goto {}", start + t + 1));
        assert!(
            went.contains(&format!("icount: {}", start + t + 1)),
            "target {n} (seed {seed}): {went}"
        );
        let stop = rsp.ask("bs");
        assert!(stop.starts_with("T05"), "target {n} (seed {seed}): {stop}");
        let regs = rsp.ask("g");
        assert!(
            regs == trace[t as usize],
            "target {n} (icount {}, seed {seed}): registers differ from the forward trace\n want {}\n got  {}",
            start + t,
            trace[t as usize],
            regs
        );
    }
    eprintln!(
        "{TARGETS} reverse-stepi targets: {:?} ({:?} each)",
        began.elapsed(),
        began.elapsed() / TARGETS as u32
    );
    for (i, data, stack, sp) in &memory {
        monitor(&mut rsp, &format!("record goto {}", start + i + 1));
        assert!(rsp.ask("bs").starts_with("T05"));
        assert_eq!(
            &rsp.ask(&format!("m{watched:x},40")),
            data,
            "globals at +{i}"
        );
        assert_eq!(&rsp.ask(&format!("m{sp:x},80")), stack, "stack at +{i}");
    }

    // The same stretch replayed 100 times observes the same exits (every
    // read and its value, serial input, interrupt edge), each checked
    // against the log on the way.
    let mut digests = Vec::new();
    let began = Instant::now();
    for _ in 0..REPLAYS {
        monitor(&mut rsp, &format!("record goto {start}"));
        let went = monitor(
            &mut rsp,
            &format!("record replay-to {}", start + REPLAY_SPAN),
        );
        assert!(went.contains("icount:"), "{went}");
        digests.push(monitor(&mut rsp, "record digest"));
    }
    eprintln!(
        "{REPLAYS} replays of {REPLAY_SPAN} instructions: {:?}",
        began.elapsed()
    );
    assert!(
        digests[0].contains(&format!(" to {}", start + REPLAY_SPAN)),
        "{}",
        digests[0]
    );
    assert!(digests[0].contains("digest 0x"), "{}", digests[0]);
    assert!(
        digests.iter().all(|d| d == &digests[0]),
        "replays observed different exits: {:?}",
        digests.iter().collect::<std::collections::BTreeSet<_>>()
    );
    let status = monitor(&mut rsp, "record status");
    assert!(!status.contains("diverged"), "{status}");
    rsp.send("k");
    drop(guard.child.kill());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `print VALUE` lines of a gdb batch run: `$N = VALUE`.
fn printed(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split_once(" = ").filter(|(h, _)| h.starts_with('$')))
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

#[test]
fn saved_recording_replays_in_a_fresh_process_to_the_same_fault() {
    if !require(
        all([kvm(), tool("gdb")]),
        "saved_recording_replays_in_a_fresh_process_to_the_same_fault",
    ) {
        return;
    }
    let dir = scratch("file");
    let file = dir.join("run.rec");
    let mut cmd = vmm();
    cmd.arg("--kernel")
        .arg(kernel("rr.elf"))
        .args(["--mem", "16M", "--serial"])
        .arg(format!("file:{}", dir.join("recorded.txt").display()))
        .arg("--record-to")
        .arg(&file);
    let recorded = vmdbg_e2e::run(cmd, "vmdbg-vmm --record-to", Duration::from_secs(120));
    assert_eq!(
        recorded.status.code(),
        Some(0xff),
        "{}",
        text(&recorded.stderr)
    );
    assert!(
        text(&recorded.stderr).contains("saved to"),
        "{}",
        text(&recorded.stderr)
    );
    let console = std::fs::read_to_string(dir.join("recorded.txt")).unwrap();
    let fault_line = console
        .lines()
        .find(|l| l.starts_with("page fault at "))
        .unwrap_or_else(|| panic!("no fault in: {console}"))
        .to_string();

    // A fresh process replays it to the end with the same console.
    let mut cmd = vmm();
    cmd.arg("--replay")
        .arg(&file)
        .arg("--serial")
        .arg(format!("file:{}", dir.join("replayed.txt").display()));
    let replayed = vmdbg_e2e::run(cmd, "vmdbg-vmm --replay", Duration::from_secs(120));
    assert_eq!(
        replayed.status.code(),
        Some(0),
        "{}",
        text(&replayed.stderr)
    );
    assert!(text(&replayed.stderr).contains("replayed to the end of the recording"));
    assert_eq!(
        std::fs::read_to_string(dir.join("replayed.txt")).unwrap(),
        console
    );

    // And gdb debugs it there: the fault, then backwards.
    let (guard, port) = {
        let mut cmd = vmm();
        cmd.arg("--replay").arg(&file).args(["--serial", "none"]);
        vmdbg_e2e::vmm_gdb_on_any_port(cmd)
    };
    let write_line = marker_line("rr.c", "watched-write");
    let last_write = marker_line("rr.c", "last-write");
    let script = format!(
        "set pagination off\n\
         target remote 127.0.0.1:{port}\n\
         break fault_handler\n\
         continue\n\
         print/x f->rip\n\
         print/x $cr2\n\
         print head->next\n\
         watch watched\n\
         reverse-continue\n\
         bt 2\n\
         delete\n\
         reverse-stepi\n\
         reverse-stepi\n\
         info line *$pc\n\
         break update_watched\n\
         reverse-continue\n\
         print v\n\
         delete\n\
         break kmain\n\
         reverse-continue\n\
         reverse-continue\n\
         kill\n"
    );
    let out = gdb_batch(&kernel("rr.elf"), &script, Duration::from_secs(120));
    let out = text(&out.stdout) + &text(&out.stderr);
    drop(guard);
    let values = printed(&out);
    let rip = fault_line.split("rip=").nth(1).unwrap().trim();
    let cr2 = fault_line
        .strip_prefix("page fault at ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap();
    assert_eq!(values.first().map(String::as_str), Some(rip), "{out}");
    assert_eq!(values.get(1).map(String::as_str), Some(cr2), "{out}");
    assert!(
        values.get(2).is_some_and(|v| v.contains("0x7ead00000000")),
        "{out}"
    );
    // The last write to `watched` before the fault, found backwards.
    assert!(out.contains("Hardware watchpoint 2: watched"), "{out}");
    assert!(out.contains("Old value = "), "{out}");
    assert!(
        out.contains("update_watched (v=")
            && out.contains(&format!("rr.c:{write_line}"))
            && out.contains(&format!("rr.c:{last_write}")),
        "the watchpoint should stop at the write in update_watched called from line {last_write}:\n{out}"
    );
    assert!(out.contains("Breakpoint 3, update_watched"), "{out}");
    assert!(
        out.contains("No more reverse-execution history."),
        "reverse-continue past kmain's start reaches the beginning:\n{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn forced_divergence_is_reported() {
    if !require(kvm(), "forced_divergence_is_reported") {
        return;
    }
    let dir = scratch("diverge");
    let (guard, mut rsp, _serial) = recording_vmm(
        &dir,
        &["--checkpoint-interval", "500"],
        &[("VMDBG_RECORD_TAMPER", "12")],
    );
    let fault = symbol("fault_handler");
    assert_eq!(rsp.ask(&format!("Z0,{fault:x},1")), "OK");
    assert!(rsp.ask("vCont;c").starts_with("T05"));
    monitor(&mut rsp, "record goto 0");
    // Forward from the beginning, replaying every instruction: the read
    // whose logged value was changed stops it.
    assert_eq!(rsp.ask(&format!("z0,{fault:x},1")), "OK");
    let stop = rsp.ask("vCont;c");
    assert!(
        stop.starts_with("T1e"),
        "a divergence stops with SIGUSR1 (gdb signal 30): {stop}"
    );
    let status = monitor(&mut rsp, "record status");
    assert!(
        status.contains("diverged: replay diverged at icount ")
            && status.contains("expected in from port"),
        "{status}"
    );
    // It stays refused: the machine state is not trusted.
    assert!(rsp.ask("bs").starts_with("T1e"));
    let went = monitor(&mut rsp, "record goto 0");
    assert!(went.contains("replay diverged at icount"), "{went}");
    rsp.send("k");
    let out = guard.wait_output(Duration::from_secs(10));
    let err = text(&out.stderr);
    assert!(
        err.lines()
            .any(|l| l.starts_with("vmdbg-vmm: replay diverged at icount ")
                && l.contains("(rip 0x")
                && l.contains("expected in from port 0x3fd")),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn corrupt_recording_files_are_refused() {
    if !require(kvm(), "corrupt_recording_files_are_refused") {
        return;
    }
    let dir = scratch("corrupt");
    let file = dir.join("good.rec");
    let mut cmd = vmm();
    cmd.arg("--kernel")
        .arg(kernel("interrupts.elf"))
        .args(["--mem", "8M", "--serial", "none", "--record-to"])
        .arg(&file);
    let out = vmdbg_e2e::run(cmd, "vmdbg-vmm --record-to", Duration::from_secs(60));
    assert!(
        text(&out.stderr).contains("saved to"),
        "{}",
        text(&out.stderr)
    );
    let good = std::fs::read(&file).unwrap();
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    let mut version = good.clone();
    version[8] = 99;
    let reordered = with_header(&good, |h| {
        let log = h["log"].as_array_mut().expect("a log");
        assert!(
            log.len() >= 2,
            "interrupts.elf's recording logs its port reads"
        );
        let first = log[0]["icount"].clone();
        log[0]["icount"] = log[1]["icount"].clone();
        log[1]["icount"] = first;
        if log[0]["icount"] == log[1]["icount"] {
            log[1]["icount"] = 0.into();
        }
    });
    let past_end = with_header(&good, |h| {
        let end = h["end"].as_u64().expect("end");
        let log = h["log"].as_array_mut().expect("a log");
        let last = log.len() - 1;
        log[last]["icount"] = (end + 1).into();
    });
    let cases: [(&str, Vec<u8>, &str); 6] = [
        ("truncated", good[..good.len() - 100].to_vec(), "truncated"),
        ("flipped", flipped, "checksum mismatch"),
        ("version", version, "format version 99"),
        (
            "magic",
            b"not a recording at all, just text".to_vec(),
            "wrong magic",
        ),
        // A valid checksum over a log no recorder writes.
        ("reordered", reordered, "the log is out of order"),
        ("past-end", past_end, "past the recording's end"),
    ];
    for (name, bytes, why) in cases {
        let path = dir.join(format!("{name}.rec"));
        std::fs::write(&path, bytes).unwrap();
        let mut cmd = vmm();
        cmd.arg("--replay").arg(&path);
        let out = vmdbg_e2e::run(cmd, "vmdbg-vmm --replay", Duration::from_secs(30));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{name}: one line: {err}");
        assert!(
            err.contains(&path.display().to_string()) && err.contains(why),
            "{name}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The recording file `good` with its JSON header changed by `edit`,
/// framed again with a right length and checksum (the layout is in
/// vmm/src/record/file.rs): a hostile file that gets past the checksum.
fn with_header(good: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let body = &good[32..];
    let json_len = u64::from_le_bytes(body[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&body[8..8 + json_len]).unwrap();
    edit(&mut header);
    let json = serde_json::to_vec(&header).unwrap();
    let mut new_body = (json.len() as u64).to_le_bytes().to_vec();
    new_body.extend_from_slice(&json);
    new_body.extend_from_slice(&body[8 + json_len..]);
    vmdbg_e2e::reframed(good, &new_body)
}

/// gdb against vmdbg-vmm: from the corrupting line, one instruction
/// back, then back to the last write of `watched`, and one step forward.
fn reverse_watch_script(port: u16) -> String {
    format!(
        "set pagination off\n\
         target remote 127.0.0.1:{port}\n\
         break rr.c:{corrupt}\n\
         continue\n\
         print watched\n\
         reverse-stepi\n\
         watch watched\n\
         reverse-continue\n\
         info registers rip\n\
         bt 2\n\
         stepi\n\
         info registers rip\n\
         print watched\n\
         kill\n",
        corrupt = marker_line("rr.c", "corrupt")
    )
}

/// gdb against QEMU's replay: forward with the watchpoint from the start
/// to the corrupting line, so the last watchpoint stop before it is the
/// last write. (QEMU 7.2's own reverse-continue with a watchpoint hangs
/// here more often than not, so its forward replay is the reference.)
fn forward_watch_script(socket: &Path) -> String {
    format!(
        "set pagination off\n\
         target remote {}\n\
         break rr.c:{corrupt}\n\
         watch watched\n\
         {continues}\
         print watched\n\
         kill\n",
        socket.display(),
        corrupt = marker_line("rr.c", "corrupt"),
        continues = "continue\ninfo registers rip\n".repeat(6)
    )
}

fn rips(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.starts_with("rip "))
        .filter_map(|l| l.split_whitespace().nth(1).map(String::from))
        .collect()
}

/// The numbers after `Old value = ` and `New value = `, in order.
fn watch_values(out: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = out.lines().collect();
    lines
        .windows(2)
        .filter_map(|w| {
            Some((
                w[0].strip_prefix("Old value = ")?.to_string(),
                w[1].strip_prefix("New value = ")?.to_string(),
            ))
        })
        .collect()
}
#[test]
fn reverse_watchpoint_finds_the_write_qemu_finds() {
    if !require(
        all([
            kvm(),
            tool("gdb"),
            tool("qemu-system-x86_64"),
            tool("qemu-img"),
        ]),
        "reverse_watchpoint_finds_the_write_qemu_finds",
    ) {
        return;
    }
    let dir = scratch("qemu");
    let began = Instant::now();
    let (qemu, socket) = qemu_record_then_replay(&kernel("rr.elf"), &dir);
    eprintln!("QEMU record: {:?}", began.elapsed());
    let began = Instant::now();
    let out = gdb_batch(
        &kernel("rr.elf"),
        &forward_watch_script(&socket),
        Duration::from_secs(120),
    );
    let theirs = text(&out.stdout) + &text(&out.stderr);
    drop(qemu);
    eprintln!("gdb on QEMU's replay: {:?}", began.elapsed());
    let began = Instant::now();

    let (guard, port) = {
        let mut cmd = vmm();
        cmd.arg("--kernel")
            .arg(kernel("rr.elf"))
            .args(["--mem", "16M", "--record", "--serial", "none"]);
        vmdbg_e2e::vmm_gdb_on_any_port(cmd)
    };
    let out = gdb_batch(
        &kernel("rr.elf"),
        &reverse_watch_script(port),
        Duration::from_secs(120),
    );
    let ours = text(&out.stdout) + &text(&out.stderr);
    drop(guard);
    eprintln!("gdb on vmdbg-vmm's recording: {:?}", began.elapsed());

    let both = format!("QEMU:\n{theirs}\nvmdbg-vmm:\n{ours}");
    let corrupt = format!(
        "Breakpoint 1, kmain () at rr.c:{}",
        marker_line("rr.c", "corrupt")
    );
    // QEMU: the watchpoint stops before the breakpoint; the last is the
    // last write (gdb reports it after the writing instruction).
    let before_bp = &theirs[..theirs.find(&corrupt).unwrap_or_else(|| panic!("{both}"))];
    let (q_old, q_new) = watch_values(before_bp)
        .pop()
        .unwrap_or_else(|| panic!("{both}"));
    let q_rip = rips(before_bp).pop().unwrap_or_else(|| panic!("{both}"));
    // vmdbg-vmm, backwards: the same write, stopped at the writing
    // instruction (gdb's reverse watchpoint convention), values reversed;
    // one stepi forward is exactly where QEMU's forward watchpoint stopped.
    let ours_values = watch_values(&ours);
    assert_eq!(
        ours_values,
        [
            (q_new.clone(), q_old.clone()),
            (q_old.clone(), q_new.clone())
        ],
        "backwards onto the write, then forward over it: {both}"
    );
    assert!(
        ours.contains(&format!(
            "update_watched (v={q_new}) at rr.c:{}",
            marker_line("rr.c", "watched-write")
        )) && ours.contains(&format!(
            "in kmain () at rr.c:{}",
            marker_line("rr.c", "last-write")
        )),
        "{both}"
    );
    let v_rips = rips(&ours);
    assert_eq!(v_rips.len(), 2, "{both}");
    assert_eq!(v_rips[1], q_rip, "one step past the write: {both}");
    assert_eq!(printed(&ours).last(), Some(&q_new), "{both}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gdb_reverse_next_step_and_finish() {
    if !require(
        all([kvm(), tool("gdb")]),
        "gdb_reverse_next_step_and_finish",
    ) {
        return;
    }
    let (guard, port) = {
        let mut cmd = vmm();
        cmd.arg("--kernel")
            .arg(kernel("rr.elf"))
            .args(["--mem", "16M", "--record", "--serial", "none"]);
        vmdbg_e2e::vmm_gdb_on_any_port(cmd)
    };
    let last_write = marker_line("rr.c", "last-write");
    let corrupt = marker_line("rr.c", "corrupt");
    let script = format!(
        "set pagination off\n\
         target remote 127.0.0.1:{port}\n\
         break rr.c:{corrupt}\n\
         continue\n\
         delete\n\
         reverse-next\n\
         bt 1\n\
         reverse-step\n\
         bt 1\n\
         reverse-step\n\
         bt 2\n\
         reverse-finish\n\
         bt 1\n\
         next\n\
         bt 1\n\
         kill\n"
    );
    let out = gdb_batch(&kernel("rr.elf"), &script, Duration::from_secs(120));
    let out = text(&out.stdout) + &text(&out.stderr);
    drop(guard);
    let frames: Vec<&str> = out.lines().filter(|l| l.starts_with("#0")).collect();
    assert_eq!(frames.len(), 5, "{out}");
    let work_line = last_write - 1;
    // reverse-next: from the corrupting line back over the call.
    assert!(
        frames[0].ends_with(&format!("kmain () at rr.c:{last_write}")),
        "{out}"
    );
    // reverse-step: back to the line before, then into work() from its end.
    assert!(
        frames[1].ends_with(&format!("kmain () at rr.c:{work_line}")),
        "{out}"
    );
    assert!(frames[2].contains("work (rounds="), "{out}");
    // reverse-finish: out to the call in kmain; next goes over it again.
    assert!(
        frames[3].contains(&format!("in kmain () at rr.c:{work_line}")),
        "{out}"
    );
    assert!(
        frames[4].ends_with(&format!("kmain () at rr.c:{last_write}")),
        "{out}"
    );
}

/// `curl` on a control API socket: the status code and the body.
fn curl(api: &Path, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(["-sS", "--unix-socket"])
        .arg(api)
        .args(["-w", "\n%{http_code}", "-X", method])
        .arg(format!("http://localhost{path}"));
    if let Some(b) = body {
        c.args(["-d", b]);
    }
    let out = vmdbg_e2e::run(c, "curl", Duration::from_secs(60));
    assert!(out.status.success(), "curl: {}", text(&out.stderr));
    let out = text(&out.stdout);
    let (body, code) = out.rsplit_once('\n').expect("curl's status line");
    (code.trim().parse().expect("HTTP status"), body.to_string())
}

fn recording_put(api: &Path, body: &str) -> (u16, String) {
    curl(api, "PUT", "/vmdbg/recording", Some(body))
}

fn recording_get(api: &Path) -> serde_json::Value {
    let (code, body) = curl(api, "GET", "/vmdbg/recording", None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn wait_for_socket(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(Instant::now() < deadline, "no socket at {}", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// vmdbg-vmm on `name` with `args`, serial off, and its control API on
/// `api` (once the socket is there).
fn api_vmm(name: &str, api: &Path, args: &[&str]) -> ChildGuard {
    let mut cmd = vmm();
    cmd.arg("--kernel")
        .arg(kernel(name))
        .args(["--mem", "16M", "--serial", "none"])
        .args(args)
        .arg("--api")
        .arg(format!("unix:{}", api.display()));
    let guard = ChildGuard::spawn(cmd, "vmdbg-vmm --api");
    wait_for_socket(api);
    guard
}

/// The registers of the current position, as `g` gives them.
fn registers(rsp: &mut RawRsp<UnixStream>) -> String {
    rsp.ask("g")
}

#[test]
fn control_api_reports_and_saves_the_recording() {
    if !require(
        all([kvm(), tool("curl")]),
        "control_api_reports_and_saves_the_recording",
    ) {
        return;
    }
    let dir = scratch("api");
    let api = dir.join("api.sock");
    let file = dir.join("api.rec");
    let guard = api_vmm("rr.elf", &api, &["--record"]);
    let (code, body) = curl(&api, "PATCH", "/vm", Some(r#"{"state":"Paused"}"#));
    assert_eq!(code, 204, "{body}");
    let status = recording_get(&api);
    assert_eq!(status["recording"], true, "{status}");
    assert_eq!(status["started"], "boot", "{status}");
    assert_eq!(status["state"], "Stopped", "{status}");
    assert_eq!(status["live"], true, "{status}");
    let body = format!(r#"{{"action":"save","path":"{}"}}"#, file.display());
    assert_eq!(recording_put(&api, &body), (204, String::new()));
    // A recording from boot stops as one started later does.
    assert_eq!(
        recording_put(&api, r#"{"action":"stop"}"#),
        (204, String::new())
    );
    assert_eq!(recording_get(&api)["recording"], false);
    drop(guard);
    let mut cmd = vmm();
    cmd.arg("--replay").arg(&file).args(["--serial", "none"]);
    let out = vmdbg_e2e::run(cmd, "vmdbg-vmm --replay", Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("replayed to the end of the recording"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Forward single-steps traced after a recording started mid-run.
const MID_RUN_TRACE: usize = 1_000;

/// A recording started on a VM that ran live to a breakpoint (gdb
/// attached, `curl` starts it), run on to the next breakpoint: reverse-stepi
/// retraces a forward single-step trace taken there exactly,
/// reverse-continue stops at the start (not at boot), a saved
/// file replays to the same state in a fresh process, and after `stop`
/// the VM runs live to its end.
#[test]
fn recording_started_through_the_api_reverses_to_its_start() {
    if !require(
        all([kvm(), tool("curl")]),
        "recording_started_through_the_api_reverses_to_its_start",
    ) {
        return;
    }
    let dir = scratch("midrun");
    let api = dir.join("api.sock");
    let file = dir.join("midrun.rec");
    let api_arg = format!("unix:{}", api.display());
    let (guard, mut rsp, mut serial) = stub_vmm(
        &dir,
        "--recordable",
        &["--api", &api_arg, "--checkpoint-interval", "50"],
        &[],
    );
    let supported = rsp.ask("qSupported:swbreak+;hwbreak+");
    assert!(supported.contains("ReverseStep+"), "{supported}");
    // Live (no recording) to the wait for input: the PIT interrupts run
    // on host time meanwhile.
    let wait = symbol("wait_ticks");
    assert_eq!(rsp.ask(&format!("Z0,{wait:x},1")), "OK");
    assert!(rsp.ask("vCont;c").starts_with("T05"));
    assert_eq!(rsp.ask(&format!("z0,{wait:x},1")), "OK");
    let status = recording_get(&api);
    assert_eq!(
        (&status["recording"], &status["recordable"]),
        (&false.into(), &true.into()),
        "{status}"
    );
    let stop = rsp.ask("bs");
    assert!(
        stop.contains("replaylog:begin"),
        "no history before a recording starts: {stop}"
    );

    assert_eq!(
        recording_put(&api, r#"{"action":"start"}"#),
        (204, String::new())
    );
    let status = recording_get(&api);
    assert_eq!(status["recording"], true, "{status}");
    assert_eq!(status["started"], "running", "{status}");
    assert_eq!(status["icount"], 0, "{status}");
    let at_start = registers(&mut rsp);
    // Recorded: the typed line ends the wait, then on to the next work().
    serial.write_all(b"hi\n").unwrap();
    let work = symbol("work");
    assert_eq!(rsp.ask(&format!("Z0,{work:x},1")), "OK");
    let stop = rsp.ask("vCont;c");
    assert!(
        stop.starts_with("T05") && stop.contains("swbreak"),
        "{stop}"
    );
    assert_eq!(rsp.ask(&format!("z0,{work:x},1")), "OK");
    let from = rsp.record_icount();
    assert!(from > 0);
    let mut trace = Vec::new();
    for i in 0..=MID_RUN_TRACE {
        trace.push(registers(&mut rsp));
        if i < MID_RUN_TRACE {
            let stop = rsp.ask("vCont;s:1");
            assert!(stop.starts_with("T05"), "step {i}: {stop}");
        }
    }
    let end = from + MID_RUN_TRACE as u64;
    assert_eq!(rsp.record_icount(), end);
    let status = recording_get(&api);
    assert_eq!(status["recorded"], end, "{status}");
    assert!(status["log_entries"].as_u64() > Some(0), "{status}");
    assert!(status["log_bytes"].as_u64() > Some(0), "{status}");

    for i in (0..MID_RUN_TRACE).rev() {
        let stop = rsp.ask("bs");
        assert!(stop.starts_with("T05"), "back to {i}: {stop}");
        assert_eq!(
            registers(&mut rsp),
            trace[i],
            "reverse-stepi to {i} after the start"
        );
    }
    monitor(&mut rsp, &format!("record goto {end}"));
    let stop = rsp.ask("bc");
    assert!(stop.contains("replaylog:begin"), "{stop}");
    assert_eq!(rsp.record_icount(), 0);
    assert_eq!(
        registers(&mut rsp),
        at_start,
        "reverse-continue stops where the recording started"
    );

    let body = format!(r#"{{"action":"save","path":"{}"}}"#, file.display());
    assert_eq!(recording_put(&api, &body), (204, String::new()));
    // Stop at the start: back to live from there, as gdb's `record stop`.
    assert_eq!(
        recording_put(&api, r#"{"action":"stop"}"#),
        (204, String::new())
    );
    assert_eq!(recording_get(&api)["recording"], false);
    let stop = rsp.ask("bs");
    assert!(
        stop.contains("replaylog:begin"),
        "the history is gone: {stop}"
    );
    let fault = symbol("fault_handler");
    assert_eq!(rsp.ask(&format!("Z0,{fault:x},1")), "OK");
    assert!(rsp.ask("vCont;c").starts_with("T05"), "live to the fault");
    assert_eq!(
        rsp.ask(&format!("m{:x},4", symbol("input_bytes"))),
        "03000000",
        "the typed line reached the guest"
    );
    rsp.send("k");
    drop(guard);

    // A fresh process replays the file to the same registers, both ends.
    let sock = dir.join("replay.sock");
    let mut cmd = vmm();
    cmd.arg("--replay")
        .arg(&file)
        .args(["--serial", "none", "--wait-gdb", "--gdb"])
        .arg(format!("unix:{}", sock.display()));
    let mut replay = ChildGuard::spawn(cmd, "vmdbg-vmm --replay");
    replay.wait_for_stderr("waiting for gdb", Duration::from_secs(10));
    let stream = UnixStream::connect(&sock).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut rsp = RawRsp(stream);
    assert_eq!(
        registers(&mut rsp),
        at_start,
        "the file starts at the start"
    );
    let stop = rsp.ask("vCont;c");
    assert!(stop.contains("replaylog:end"), "{stop}");
    assert_eq!(registers(&mut rsp), trace[MID_RUN_TRACE], "the end");
    let stop = rsp.ask("bc");
    assert!(stop.contains("replaylog:begin"), "{stop}");
    assert_eq!(registers(&mut rsp), at_start);
    rsp.send("k");
    drop(replay);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The user's flow in gdb itself: stopped live at a breakpoint, `curl`
/// (from gdb's `shell`) starts the recording, the run goes on to the next
/// breakpoint, and `reverse-continue` comes back to where the recording
/// started — not to boot, and not to the earlier call of the same function
/// that ran before the recording.
#[test]
fn gdb_reverse_continue_stops_where_curl_started_the_recording() {
    if !require(
        all([kvm(), tool("gdb"), tool("curl")]),
        "gdb_reverse_continue_stops_where_curl_started_the_recording",
    ) {
        return;
    }
    let dir = scratch("gdbcurl");
    let api = dir.join("api.sock");
    let (guard, port) = {
        let mut cmd = vmm();
        cmd.arg("--kernel")
            .arg(kernel("rr.elf"))
            .args(["--mem", "16M", "--recordable", "--serial", "none", "--api"])
            .arg(format!("unix:{}", api.display()));
        vmdbg_e2e::vmm_gdb_on_any_port(cmd)
    };
    let script = format!(
        "set pagination off\n\
         target remote 127.0.0.1:{port}\n\
         break wait_ticks\n\
         continue\n\
         shell curl -sS --unix-socket {api} -X PUT http://localhost/vmdbg/recording -d '{{\"action\": \"start\"}}'\n\
         delete\n\
         break work\n\
         continue\n\
         reverse-continue\n\
         bt 1\n\
         kill\n",
        api = api.display()
    );
    let out = gdb_batch(&kernel("rr.elf"), &script, Duration::from_secs(120));
    let out = text(&out.stdout) + &text(&out.stderr);
    drop(guard);
    assert!(
        out.contains("Breakpoint 2, work (rounds=1000)"),
        "the recorded run reaches the next work(): {out}"
    );
    let after = out
        .split("No more reverse-execution history.")
        .nth(1)
        .unwrap_or_else(|| panic!("reverse-continue reaches the recording's start: {out}"));
    assert!(
        after
            .lines()
            .any(|l| l.starts_with("#0") && l.contains("wait_ticks (n=")),
        "the start is where curl started it, in wait_ticks: {out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The API on a VM it let run: start pauses it at an exit and lets it run
/// recorded, save and status work while it runs, bad requests get a 400
/// that says what to do, and a VM not built for recording names the flag.
#[test]
fn curl_starts_saves_and_stops_a_recording_of_a_running_vm() {
    if !require(
        all([kvm(), tool("curl")]),
        "curl_starts_saves_and_stops_a_recording_of_a_running_vm",
    ) {
        return;
    }
    let dir = scratch("curl");
    let api = dir.join("api.sock");
    let file = dir.join("running.rec");
    let gdb_sock = dir.join("gdb.sock");
    let gdb_arg = format!("unix:{}", gdb_sock.display());
    let mut guard = api_vmm("spin.elf", &api, &["--recordable", "--gdb", &gdb_arg]);
    let (code, body) = recording_put(&api, r#"{"action":"stop"}"#);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("no recording is on"), "{body}");

    assert_eq!(
        recording_put(&api, r#"{"action":"start"}"#),
        (204, String::new())
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let s = recording_get(&api);
        if s["recorded"].as_u64() > Some(0) {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the recording does not go on: {s}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status["state"], "Running", "{status}");
    let body = format!(r#"{{"action":"save","path":"{}"}}"#, file.display());
    assert_eq!(recording_put(&api, &body), (204, String::new()));
    assert_eq!(recording_get(&api)["state"], "Running", "save resumed it");

    let refused = [
        (r#"{"action":"start"}"#, "a recording is already on"),
        (r#"{"action":"rewind"}"#, r#"use "start", "stop" or "save""#),
        (r#"{"action":"save"}"#, "needs a `path`"),
        (r#"{"action":"stop","path":"x"}"#, "takes no `path`"),
        (
            r#"{"action":"start","checkpoint_interval":0}"#,
            "at least 1",
        ),
        (r#"{"actoin":"start"}"#, "unknown field `actoin`"),
        ("start", "bad body"),
    ];
    for (body, why) in refused {
        let (code, answer) = recording_put(&api, body);
        assert_eq!(code, 400, "{body}: {answer}");
        let fault: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert!(
            fault["fault_message"]
                .as_str()
                .is_some_and(|m| m.contains(why)),
            "{body}: {answer}"
        );
    }

    // gdb attaches (and stops it): the history begins where curl started.
    let stream = UnixStream::connect(&gdb_sock).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut rsp = RawRsp(stream);
    rsp.ask("qSupported:swbreak+;hwbreak+");
    let stop = rsp.ask("bc");
    assert!(stop.contains("replaylog:begin"), "{stop}");
    assert_eq!(rsp.record_icount(), 0);
    let released = elf_symbol(&kernel("spin.elf"), "released");
    assert_eq!(
        rsp.ask(&format!("M{released:x},4:01000000")),
        "E01",
        "refused while recording"
    );
    assert_eq!(
        recording_put(&api, r#"{"action":"stop"}"#),
        (204, String::new())
    );
    // Live again: gdb may write, and the guest runs to its end.
    assert_eq!(rsp.ask(&format!("M{released:x},4:01000000")), "OK");
    rsp.send("vCont;c");
    let out = guard_wait(&mut guard);
    assert_eq!(
        out,
        Some(0x15 << 1 | 1),
        "spin.elf released exits with 0x15"
    );
    drop(guard);

    // The file of a recording started on a running VM replays alone.
    let mut cmd = vmm();
    cmd.arg("--replay").arg(&file).args(["--serial", "none"]);
    let out = vmdbg_e2e::run(cmd, "vmdbg-vmm --replay", Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("replayed to the end of the recording"));

    // A VM not built for recording says which flag it needs.
    let plain_api = dir.join("plain.sock");
    let plain = api_vmm("spin.elf", &plain_api, &[]);
    let (code, body) = recording_put(&plain_api, r#"{"action":"start"}"#);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("--recordable"), "{body}");
    assert_eq!(recording_get(&plain_api)["recordable"], false);
    drop(plain);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The exit status of a child that is ending.
fn guard_wait(guard: &mut ChildGuard) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = guard.child.try_wait().unwrap() {
            return status.code();
        }
        assert!(Instant::now() < deadline, "the VM did not end");
        std::thread::sleep(Duration::from_millis(10));
    }
}

//! Benchmark (not a test): vmdbg-vmm's record and replay on rr.elf, with
//! QEMU's own record/replay of the same ELF as the anchor, in one run.
//! Prints medians and ratios:
//! - recording overhead: `--record` vs a plain run to the guest's exit;
//! - log bytes per second of recording;
//! - reverse-stepi latency (p50, p99) over raw RSP `bs`, against QEMU's
//!   reverse-stepi (`-icount shift=auto,rr=replay`) from the same line;
//! - reverse-continue back over the whole recording and over its last
//!   10^4 instructions;
//! - reverse-continue over 10^5 and 10^6 instructions (snapshot.elf,
//!   recorded from boot until that many instructions past `pit_init`, then
//!   `bc` back to a breakpoint on `pit_init`): medians of RUNS, against a
//!   forward `vCont;c` over the same span (a replay to the end) and the
//!   recording of it, and against QEMU's reverse-continue over the same
//!   span of the same ELF (time-boxed: QEMU 7.2's reverse often hangs
//!   here). `VMDBG_BENCH_SPANS=100000,1000000` picks the spans.
//!
//! `cargo bench -p vmdbg-e2e --bench record_bench` (needs /dev/kvm; QEMU
//! and qemu-img for the anchor).

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use vmdbg_e2e::rsp::RawRsp;
use vmdbg_e2e::*;

const RUNS: usize = 3;
const REVERSE_STEPS: usize = 100;
const QEMU_REVERSE_STEPS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn monitor(rsp: &mut RawRsp<UnixStream>, cmd: &str) -> String {
    rsp.monitor(cmd)
}

fn connect(sock: &Path) -> RawRsp<UnixStream> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(s) = UnixStream::connect(sock) {
            s.set_read_timeout(Some(Duration::from_secs(600))).unwrap();
            return RawRsp(s);
        }
        assert!(
            Instant::now() < deadline,
            "no gdb socket at {}",
            sock.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `vmdbg-vmm --record` on `elf`, waiting for gdb on `sock`, and a client.
fn recording(elf: &Path, sock: &Path) -> (ChildGuard, RawRsp<UnixStream>) {
    let mut cmd = vmm();
    cmd.arg("--kernel")
        .arg(elf)
        .args(["--mem", "16M", "--serial", "none", "--record", "--wait-gdb"])
        .arg("--gdb")
        .arg(format!("unix:{}", sock.display()));
    let guard = ChildGuard::spawn(cmd, "vmdbg-vmm --record");
    (guard, connect(sock))
}

fn timed(cmd: Command, name: &str) -> (f64, std::process::Output) {
    let began = Instant::now();
    let out = run(cmd, name, Duration::from_secs(600));
    (began.elapsed().as_secs_f64(), out)
}

/// The recorded length and the log's size in a recording file: its JSON
/// header (after the 32-byte file header and its length) ends with the log.
fn log_of(file: &Path) -> (u64, usize, usize) {
    let bytes = std::fs::read(file).unwrap();
    let len = u64::from_le_bytes(bytes[32..40].try_into().unwrap()) as usize;
    let json = text(&bytes[40..40 + len]);
    let end = json
        .split("\"end\":")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .expect("end in the header");
    let log = &json[json.find("\"log\":").expect("log in the header")..];
    (end, log.len(), log.matches("\"icount\"").count())
}

fn main() {
    if let Err(why) = kvm() {
        println!("SKIPPED: record_bench: {why}");
        return;
    }
    let elf = kernel("rr.elf");
    let dir = std::env::temp_dir().join(format!("vmdbg-record-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // Recording overhead and log rate.
    let mut plain = Vec::new();
    let mut recorded = Vec::new();
    let rec = dir.join("rr.rec");
    for _ in 0..RUNS {
        let mut cmd = vmm();
        cmd.arg("--kernel")
            .arg(&elf)
            .args(["--mem", "16M", "--serial", "none"]);
        plain.push(timed(cmd, "vmdbg-vmm").0);
        let mut cmd = vmm();
        cmd.arg("--kernel")
            .arg(&elf)
            .args(["--mem", "16M", "--serial", "none", "--record-to"])
            .arg(&rec);
        let (t, out) = timed(cmd, "vmdbg-vmm --record-to");
        assert!(
            text(&out.stderr).contains("saved to"),
            "{}",
            text(&out.stderr)
        );
        recorded.push(t);
    }
    let (instructions, log_bytes, entries) = log_of(&rec);
    let (p, r) = (median(plain), median(recorded.clone()));
    println!("rr.elf to its exit: {instructions} instructions, {entries} log entries");
    println!("  plain run        median {:8.1} ms", p * 1e3);
    println!(
        "  recorded run     median {:8.1} ms   ratio {:.1}x ({:.1} us per instruction)",
        r * 1e3,
        r / p,
        r / instructions as f64 * 1e6
    );
    println!(
        "  log              {log_bytes} bytes: {:.0} bytes per second of recording",
        log_bytes as f64 / r
    );

    // Reverse execution on a live recording stopped in the fault handler.
    let (guard, mut rsp) = recording(&elf, &dir.join("gdb.sock"));
    let fault = elf_symbol(&elf, "fault_handler");
    rsp.ask(&format!("Z0,{fault:x},1"));
    assert!(rsp.ask("vCont;c").starts_with("T05"));
    rsp.ask(&format!("z0,{fault:x},1"));
    let mut steps = Vec::new();
    for _ in 0..REVERSE_STEPS {
        let began = Instant::now();
        assert!(rsp.ask("bs").starts_with("T05"));
        steps.push(began.elapsed().as_secs_f64() * 1e3);
    }
    let status = monitor(&mut rsp, "record status");
    let end: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("recorded: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("recorded length");
    monitor(&mut rsp, &format!("record goto {end}"));
    let began = Instant::now();
    let stop = rsp.ask("bc");
    let whole = began.elapsed().as_secs_f64();
    assert!(stop.contains("replaylog:begin"), "{stop}");
    let back = 10_000u64.min(end);
    monitor(&mut rsp, &format!("record goto {}", end - back));
    let rip = rsp.ask("g")[16 * 16..17 * 16].to_string();
    let addr = u64::from_str_radix(&rip, 16).unwrap().swap_bytes();
    monitor(&mut rsp, &format!("record goto {end}"));
    rsp.ask(&format!("Z0,{addr:x},1"));
    let began = Instant::now();
    let stop = rsp.ask("bc");
    let last = began.elapsed().as_secs_f64();
    assert!(stop.starts_with("T05"), "{stop}");
    drop(guard);

    let (p50, p99) = (percentile(steps.clone(), 0.5), percentile(steps, 0.99));
    println!(
        "reverse-stepi ({REVERSE_STEPS} in a row from the fault handler, default checkpoint interval)"
    );
    println!("  vmdbg-vmm        p50 {p50:8.1} ms   p99 {p99:8.1} ms");
    match qemu_reverse_steps(&elf, &dir, fault) {
        Ok(q) => {
            let q50 = percentile(q.clone(), 0.5);
            println!(
                "  QEMU rr=replay   p50 {q50:8.1} ms   p99 {:8.1} ms ({} of {QEMU_REVERSE_STEPS} answered)   QEMU/vmdbg-vmm p50 ratio {:.2}",
                percentile(q.clone(), 0.99),
                q.len(),
                q50 / p50
            );
        }
        Err(why) => println!("  QEMU rr=replay   SKIPPED: {why}"),
    }
    println!(
        "reverse-continue to the beginning over {end} instructions: {:.2} s ({:.1} us per instruction)",
        whole,
        whole / end as f64 * 1e6
    );
    println!(
        "reverse-continue to a breakpoint {back} instructions back: {:.2} s",
        last
    );
    let spans: Vec<u64> = std::env::var("VMDBG_BENCH_SPANS")
        .unwrap_or_else(|_| "100000,1000000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    for span in spans {
        reverse_continue_span(&dir, span);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Times `bc` over `span` instructions back to a breakpoint, and the
/// forward run over the same span, on one recording of snapshot.elf.
fn reverse_continue_span(dir: &Path, span: u64) {
    let elf = kernel("snapshot.elf");
    let (pit, report) = (elf_symbol(&elf, "pit_init"), elf_symbol(&elf, "report"));
    let (guard, mut rsp) = recording(&elf, &dir.join(format!("span-{span}.sock")));
    rsp.ask("qSupported:swbreak+;hwbreak+");
    rsp.ask(&format!("Z0,{pit:x},1"));
    assert!(rsp.ask("vCont;c").starts_with("T05"));
    rsp.ask(&format!("z0,{pit:x},1"));
    let start = rsp.record_icount();
    // Record on, one report() at a time, until the span is covered.
    rsp.ask(&format!("Z0,{report:x},1"));
    let mut reports = 0;
    let began = Instant::now();
    while rsp.record_icount() < start + span {
        let stop = rsp.ask("vCont;c");
        assert!(stop.starts_with("T05"), "recording: {stop}");
        reports += 1;
    }
    let recording = began.elapsed().as_secs_f64();
    rsp.ask(&format!("z0,{report:x},1"));
    let end = rsp.record_icount();
    let covered = end - start;
    rsp.ask(&format!("Z0,{pit:x},1"));
    let (mut back, mut forward) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let began = Instant::now();
        let stop = rsp.ask("bc");
        back.push(began.elapsed().as_secs_f64());
        assert!(
            stop.starts_with("T05") && !stop.contains("replaylog"),
            "bc should stop at the breakpoint: {stop}"
        );
        assert_eq!(rsp.record_icount(), start, "bc stops at pit_init");
        let began = Instant::now();
        let stop = rsp.ask("vCont;c");
        forward.push(began.elapsed().as_secs_f64());
        assert!(stop.contains("replaylog:end"), "{stop}");
    }
    let status = monitor(&mut rsp, "record status");
    drop(guard);
    let (b, f) = (median(back.clone()), median(forward.clone()));
    println!(
        "reverse-continue over {covered} instructions (snapshot.elf, {reports} report() calls past pit_init; {RUNS} runs)"
    );
    println!(
        "  recording it       {recording:8.2} s   ({:.1} us per instruction)",
        recording / covered as f64 * 1e6
    );
    println!(
        "  vmdbg-vmm bc       median {b:8.2} s   ({:.1} us per instruction; runs {back:.2?})",
        b / covered as f64 * 1e6
    );
    println!(
        "  forward vCont;c    median {f:8.2} s   (a replay to the end; runs {forward:.2?})   reverse/forward ratio {:.2}",
        b / f
    );
    for line in status
        .lines()
        .filter(|l| l.starts_with("checkpoints") || l.starts_with("replayed"))
    {
        println!("  {line}");
    }
    let qdir = dir.join(format!("qemu-{span}"));
    std::fs::create_dir_all(&qdir).unwrap();
    match qemu_reverse_continue(&elf, &qdir, pit, report, reports) {
        Ok(q) => println!(
            "  QEMU rr=replay bc  {q:8.2} s   QEMU/vmdbg-vmm ratio {:.2}",
            q / b
        ),
        Err(why) => println!("  QEMU rr=replay bc  SKIPPED: {why}"),
    }
}

/// QEMU's replay of `elf` run to the first call of `start`, then handed
/// to `session` on a thread: QEMU 7.2's replay sometimes never answers a
/// reverse command here, so the caller waits for the answers `session`
/// sends (the stop and its time in seconds) with a time limit.
fn qemu_replay_from(
    elf: &Path,
    dir: &Path,
    start: u64,
    session: impl FnOnce(&mut RawRsp<UnixStream>, &Sender<(String, f64)>) + Send + 'static,
) -> Result<(ChildGuard, Receiver<(String, f64)>), String> {
    tool("qemu-system-x86_64")?;
    tool("qemu-img")?;
    let (guard, sock) = qemu_record_then_replay(elf, dir);
    let mut rsp = connect(&sock);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        rsp.ask("qSupported:swbreak+;hwbreak+");
        rsp.ask(&format!("Z0,{start:x},1"));
        rsp.ask("c");
        rsp.ask(&format!("z0,{start:x},1"));
        session(&mut rsp, &tx);
    });
    Ok((guard, rx))
}

/// Sends `packet` and times the answer.
fn timed_ask(rsp: &mut RawRsp<UnixStream>, packet: &str) -> (String, f64) {
    let began = Instant::now();
    let stop = rsp.ask(packet);
    (stop, began.elapsed().as_secs_f64())
}

fn is_stop(reply: &str) -> bool {
    reply.starts_with('T') || reply.starts_with('S')
}

/// QEMU's reverse-continue over the same span: from the `reports`-th
/// report() call back to pit_init, on its replay of the same ELF.
fn qemu_reverse_continue(
    elf: &Path,
    dir: &Path,
    pit: u64,
    report: u64,
    reports: usize,
) -> Result<f64, String> {
    const LIMIT: Duration = Duration::from_secs(180);
    let (guard, rx) = qemu_replay_from(elf, dir, pit, move |rsp, tx| {
        let began = Instant::now();
        rsp.ask(&format!("Z0,{report:x},1"));
        for _ in 0..reports {
            rsp.ask("c");
        }
        let _ = tx.send(("forward".into(), began.elapsed().as_secs_f64()));
        rsp.ask(&format!("z0,{report:x},1"));
        rsp.ask(&format!("Z0,{pit:x},1"));
        let _ = tx.send(timed_ask(rsp, "bc"));
    })?;
    let result = match rx.recv_timeout(LIMIT) {
        Ok((_, forward)) => match rx.recv_timeout(LIMIT) {
            Ok((stop, s)) if is_stop(&stop) => Ok(s),
            Ok((stop, _)) => Err(format!("QEMU answered bc with {stop}")),
            Err(_) => Err(format!(
                "QEMU replayed the span forward in {forward:.2} s, then did not answer bc within {LIMIT:?}"
            )),
        },
        Err(_) => Err(format!(
            "QEMU's replay did not reach the span's end within {LIMIT:?}"
        )),
    };
    drop(guard);
    result
}

/// QEMU's reverse-stepi from the same function on its own replay.
fn qemu_reverse_steps(elf: &Path, dir: &Path, fault: u64) -> Result<Vec<f64>, String> {
    let (guard, rx) = qemu_replay_from(elf, dir, fault, |rsp, tx| {
        for _ in 0..QEMU_REVERSE_STEPS {
            let _ = tx.send(timed_ask(rsp, "bs"));
        }
    })?;
    let mut steps = Vec::new();
    for _ in 0..QEMU_REVERSE_STEPS {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok((stop, s)) if is_stop(&stop) => steps.push(s * 1e3),
            Ok((stop, _)) => return Err(format!("QEMU answered bs with {stop}")),
            Err(_) if steps.is_empty() => {
                return Err("QEMU's replay did not answer a reverse-stepi within 120 s".into())
            }
            Err(_) => break,
        }
    }
    drop(guard);
    Ok(steps)
}

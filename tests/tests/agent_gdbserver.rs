//! The agent's process debugger on this host: Debian's gdb (and lldb)
//! against `vmdbg-agent gdbserver` debugging real programs compiled here
//! from tests/guests/programs — breakpoints, backtraces, locals, stepping,
//! a breakpoint in a shared library, SIGSEGV, threads, watchpoints, exit
//! codes, kill, extended-remote `run`, a Rust program — and a raw RSP
//! client for Ctrl-C and malformed packets.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use vmdbg_e2e::rsp::RawRsp;
use vmdbg_e2e::*;

const LIMIT: Duration = Duration::from_secs(120);
const PRELUDE: &str =
    "set pagination off\nset confirm off\nset width 0\nset breakpoint pending on\n";

/// Compiles every test program once per test process (gcc and rustc, -g
/// -O0) into a fresh directory; returns that directory.
fn programs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = process_temp_dir("vmdbg-agent-programs-");
        let src = programs_dir();
        let compile = |args: &[&str], what: &str| {
            let mut cmd = Command::new(args[0]);
            cmd.args(&args[1..]).current_dir(&out);
            let result = run(cmd, what, LIMIT);
            assert!(
                result.status.success(),
                "{what} failed:\n{}",
                text(&result.stderr)
            );
        };
        let s = |name: &str| src.join(name).display().to_string();
        for name in ["locals", "segv", "spin", "forks", "signals", "env_cwd"] {
            compile(
                &["gcc", "-g", "-O0", "-o", name, &s(&format!("{name}.c"))],
                name,
            );
        }
        compile(
            &[
                "gcc",
                "-g",
                "-O0",
                "-pthread",
                "-o",
                "threads",
                &s("threads.c"),
            ],
            "threads",
        );
        compile(
            &[
                "gcc",
                "-g",
                "-O0",
                "-shared",
                "-fPIC",
                "-o",
                "libshape.so",
                &s("libshape.c"),
            ],
            "libshape.so",
        );
        let rpath = format!("-Wl,-rpath,{}", out.display());
        compile(
            &[
                "gcc",
                "-g",
                "-O0",
                "-o",
                "uses_lib",
                &s("uses_lib.c"),
                "-L.",
                "-lshape",
                &rpath,
            ],
            "uses_lib",
        );
        compile(
            &[
                "rustc",
                "-g",
                "-C",
                "opt-level=0",
                "-o",
                "rust_main",
                &s("rust_main.rs"),
            ],
            "rust_main",
        );
        out
    })
}

fn program(name: &str) -> PathBuf {
    programs().join(name)
}

fn have(test: &str, tools: &[&str]) -> bool {
    require(all(tools.iter().map(|t| tool(t))), test)
}

/// Runs gdb's script against `vmdbg-agent gdbserver PROGRAM`; returns
/// gdb's output and the server's (its stdout carries the program's).
fn gdb_session(name: &str, connect: &str, script: &str) -> (String, std::process::Output) {
    let (server, port) = agent_gdbserver(&[&program(name)]);
    let script = format!("{PRELUDE}target {connect} 127.0.0.1:{port}\n{script}");
    let out = gdb_batch(&program(name), &script, LIMIT);
    let gdb = text(&out.stdout) + &text(&out.stderr);
    let server = server.wait_output(LIMIT);
    (gdb, server)
}

fn line(n: u32) -> String {
    format!("\n{n}\t")
}

#[test]
fn gdb_stops_at_main_shows_locals_and_steps_by_line() {
    if !have(
        "gdb_stops_at_main_shows_locals_and_steps_by_line",
        &["gdb", "gcc"],
    ) {
        return;
    }
    let first = program_marker_line("locals.c", "main_first");
    let call = program_marker_line("locals.c", "call");
    let square = program_marker_line("locals.c", "square");
    let after = program_marker_line("locals.c", "after_call");
    let (gdb, server) = gdb_session(
        "locals",
        "remote",
        "break main\ncontinue\nbt\nnext\nnext\nprint p\nprint p.y\nprint total\nstep\nbt\nfinish\nnext\nprint total\ncontinue\n",
    );
    assert!(gdb.contains("Breakpoint 1, main () at "), "{gdb}");
    assert!(gdb.contains("#0  main () at "), "bt at main:\n{gdb}");
    assert!(
        gdb.contains(&line(first)) && gdb.contains(&line(call)),
        "next by line:\n{gdb}"
    );
    assert!(gdb.contains("$1 = {x = 3, y = 4}"), "struct local:\n{gdb}");
    assert!(gdb.contains("$2 = 4\n"), "struct member:\n{gdb}");
    assert!(gdb.contains("$3 = 0\n"), "int local:\n{gdb}");
    assert!(
        gdb.contains("square (v=3) at ") && gdb.contains(&line(square)),
        "step into:\n{gdb}"
    );
    assert!(
        gdb.contains("#1  0x") && gdb.contains(" in main () at "),
        "bt in square:\n{gdb}"
    );
    assert!(
        gdb.contains("0x") && gdb.contains(" in main () at "),
        "finish returns to main:\n{gdb}"
    );
    assert!(
        gdb.contains("Value returned is $4 = 9"),
        "finish value:\n{gdb}"
    );
    assert!(
        gdb.contains(&line(after)),
        "next over the second call:\n{gdb}"
    );
    assert!(gdb.contains("$5 = 25\n"), "{gdb}");
    assert!(gdb.contains("exited with code 07]"), "exit code:\n{gdb}");
    assert!(
        text(&server.stdout).contains("total=25"),
        "program output: {server:?}"
    );
    assert_eq!(
        server.status.code(),
        Some(7),
        "the server exits with the program's code"
    );
}

#[test]
fn gdb_hardware_watchpoint_reports_the_change() {
    if !have(
        "gdb_hardware_watchpoint_reports_the_change",
        &["gdb", "gcc"],
    ) {
        return;
    }
    // gdb reports a software-visible change only: `total` is a stack slot
    // whose contents before `total = 0` are whatever the stack held, so the
    // script gives it a value of its own first and every write then changes it.
    let (gdb, _) = gdb_session(
        "locals",
        "remote",
        "break main\ncontinue\nset var total = 99\nwatch total\ncontinue\ncontinue\ndelete\ncontinue\n",
    );
    let first = program_marker_line("locals.c", "main_first");
    let call = program_marker_line("locals.c", "call");
    assert!(gdb.contains("Hardware watchpoint 2: total"), "{gdb}");
    // The first write (total = 0) and the second (the sum); gdb shows the
    // line after the writing one.
    assert!(
        gdb.contains("Old value = 99\nNew value = 0\n") && gdb.contains(&line(first + 1)),
        "{gdb}"
    );
    assert!(
        gdb.contains("Old value = 0\nNew value = 25\n") && gdb.contains(&line(call + 1)),
        "{gdb}"
    );
    assert!(gdb.contains("exited with code 07]"), "{gdb}");
}

#[test]
fn gdb_hardware_breakpoint_hits_each_call() {
    if !have("gdb_hardware_breakpoint_hits_each_call", &["gdb", "gcc"]) {
        return;
    }
    let square = program_marker_line("locals.c", "square");
    let (gdb, _) = gdb_session(
        "locals",
        "remote",
        "hbreak square\ncontinue\ncontinue\ndelete\ncontinue\n",
    );
    assert!(gdb.contains("Hardware assisted breakpoint 1 at "), "{gdb}");
    for v in [3, 4] {
        assert!(
            gdb.contains(&format!("Breakpoint 1, square (v={v}) at ")),
            "{gdb}"
        );
    }
    assert!(gdb.contains(&line(square)), "{gdb}");
    assert!(gdb.contains("exited with code 07]"), "{gdb}");
}

#[test]
fn gdb_breakpoint_in_a_shared_library_resolves_and_hits() {
    if !have(
        "gdb_breakpoint_in_a_shared_library_resolves_and_hits",
        &["gdb", "gcc"],
    ) {
        return;
    }
    let area = program_marker_line("libshape.c", "area");
    let (gdb, server) = gdb_session(
        "uses_lib",
        "remote",
        &format!("break libshape.c:{area}\ncontinue\nbt\nprint width * height\ninfo sharedlibrary\ncontinue\n"),
    );
    assert!(
        gdb.contains("Breakpoint 1, shape_area (width=6, height=7) at "),
        "{gdb}"
    );
    assert!(gdb.contains(&format!("libshape.c:{area}")), "{gdb}");
    assert!(
        gdb.contains(" in main () at ") && gdb.contains("uses_lib.c:"),
        "bt into the program:\n{gdb}"
    );
    assert!(gdb.contains("$1 = 42"), "{gdb}");
    let listed = gdb
        .lines()
        .find(|l| l.starts_with("0x") && l.contains("libshape.so"))
        .unwrap_or_else(|| panic!("libshape.so not in info sharedlibrary:\n{gdb}"));
    assert!(
        listed.contains("Yes"),
        "symbols of libshape.so not read: {listed}"
    );
    assert!(gdb.contains("exited normally]"), "{gdb}");
    assert!(text(&server.stdout).contains("area=42"));
}

#[test]
fn gdb_null_dereference_stops_with_sigsegv_at_the_faulting_line() {
    if !have(
        "gdb_null_dereference_stops_with_sigsegv_at_the_faulting_line",
        &["gdb", "gcc"],
    ) {
        return;
    }
    let fault = program_marker_line("segv.c", "fault");
    let (gdb, server) = gdb_session("segv", "remote", "continue\nbt\ncontinue\n");
    assert!(
        gdb.contains("Program received signal SIGSEGV, Segmentation fault."),
        "{gdb}"
    );
    assert!(
        gdb.contains("#0  0x") && gdb.contains("read_through (p=0x0) at "),
        "{gdb}"
    );
    assert!(
        gdb.contains(&format!("segv.c:{fault}")),
        "faulting line {fault}:\n{gdb}"
    );
    assert!(
        gdb.contains(" in outer (p=0x0) at ") && gdb.contains(" in main () at "),
        "{gdb}"
    );
    assert!(
        gdb.contains("Program terminated with signal SIGSEGV"),
        "{gdb}"
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        server.status.code(),
        Some(128 + 11),
        "{:?}",
        server.status.signal()
    );
}

#[test]
fn gdb_reports_signals_and_delivers_them_when_continued() {
    if !have(
        "gdb_reports_signals_and_delivers_them_when_continued",
        &["gdb", "gcc"],
    ) {
        return;
    }
    let abort_line = program_marker_line("signals.c", "abort");
    let (gdb, server) = gdb_session("signals", "remote", "continue\ncontinue\nbt\ncontinue\n");
    assert!(gdb.contains("Program received signal SIGUSR1"), "{gdb}");
    assert!(gdb.contains("Program received signal SIGABRT"), "{gdb}");
    assert!(
        gdb.contains(" in main () at ") && gdb.contains(&format!("signals.c:{abort_line}")),
        "{gdb}"
    );
    assert!(
        gdb.contains("Program terminated with signal SIGABRT"),
        "{gdb}"
    );
    assert!(
        text(&server.stdout).contains("handler got 10"),
        "SIGUSR1 reached the handler: {server:?}"
    );
    assert_eq!(server.status.code(), Some(128 + 6));
}

#[test]
fn gdb_lists_the_threads_of_a_pthread_program() {
    if !have(
        "gdb_lists_the_threads_of_a_pthread_program",
        &["gdb", "gcc"],
    ) {
        return;
    }
    let ready = program_marker_line("threads.c", "ready");
    let (gdb, server) = gdb_session(
        "threads",
        "remote",
        "break worker_ready\ncontinue\ninfo threads\nbt\ncontinue\n",
    );
    assert!(
        gdb.contains("hit Breakpoint 1, worker_ready (id=0) at "),
        "{gdb}"
    );
    assert!(gdb.contains(&format!("threads.c:{ready}")), "{gdb}");
    let threads = gdb
        .lines()
        .filter(|l| {
            let l = l.trim_start_matches('*').trim_start();
            l.split_whitespace()
                .next()
                .is_some_and(|n| n.parse::<u32>().is_ok())
                && l.contains("Thread ")
        })
        .count();
    assert!(
        threads >= 4,
        "main and 3 workers expected in info threads ({threads}):\n{gdb}"
    );
    for name in ["(threads)", "(worker-0)", "(worker-1)", "(worker-2)"] {
        assert!(gdb.contains(name), "thread name {name} missing:\n{gdb}");
    }
    assert!(
        gdb.contains(" in worker (arg=0x0) at "),
        "bt of the worker:\n{gdb}"
    );
    assert!(gdb.contains("exited normally]"), "{gdb}");
    assert!(text(&server.stdout).contains("joined"), "{server:?}");
}

#[test]
fn gdb_breakpoint_does_not_kill_a_forked_child() {
    if !have(
        "gdb_breakpoint_does_not_kill_a_forked_child",
        &["gdb", "gcc"],
    ) {
        return;
    }
    let (gdb, server) = gdb_session("forks", "remote", "break after_fork\ncontinue\ncontinue\n");
    assert!(
        gdb.contains("Breakpoint 1, after_fork (is_child=0) at "),
        "{gdb}"
    );
    assert!(
        !gdb.contains("is_child=1"),
        "the untraced child was reported:\n{gdb}"
    );
    assert!(gdb.contains("exited normally]"), "{gdb}");
    let output = text(&server.stdout);
    assert!(output.contains("after_fork in the child"), "{output}");
    assert!(
        output.contains("child exit 3"),
        "the child died on a breakpoint: {output}"
    );
}

#[test]
fn gdb_kill_ends_the_process() {
    if !have("gdb_kill_ends_the_process", &["gdb", "gcc"]) {
        return;
    }
    let (server, port) = agent_gdbserver(&[&program("locals")]);
    let pid: u32 = server
        .stderr_text()
        .split("process ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .expect("pid in the banner");
    let script = format!(
        "{PRELUDE}target remote 127.0.0.1:{port}\nbreak square\ncontinue\nkill\ninfo threads\n"
    );
    let out = gdb_batch(&program("locals"), &script, LIMIT);
    let gdb = text(&out.stdout) + &text(&out.stderr);
    let server = server.wait_output(LIMIT);
    assert!(gdb.contains("Breakpoint 1, square (v=3)"), "{gdb}");
    assert!(
        gdb.contains(&format!("[Inferior 1 (process {pid}) killed]")),
        "{gdb}"
    );
    assert_eq!(server.status.code(), Some(128 + 9), "killed by SIGKILL");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} still exists"
    );
    assert!(
        !text(&server.stdout).contains("total="),
        "the program ran on after kill"
    );
}

#[test]
fn gdb_kill_ends_a_multithreaded_process() {
    if !have("gdb_kill_ends_a_multithreaded_process", &["gdb", "gcc"]) {
        return;
    }
    let (gdb, server) = gdb_session("threads", "remote", "break worker_ready\ncontinue\nkill\n");
    assert!(
        gdb.contains("hit Breakpoint 1, worker_ready (id=0)"),
        "{gdb}"
    );
    assert!(gdb.contains(") killed]"), "{gdb}");
    assert_eq!(server.status.code(), Some(128 + 9));
    assert!(
        !text(&server.stdout).contains("joined"),
        "the program ran on after kill"
    );
}

#[test]
fn gdb_detach_lets_the_program_run_to_its_end() {
    if !have(
        "gdb_detach_lets_the_program_run_to_its_end",
        &["gdb", "gcc"],
    ) {
        return;
    }
    let (gdb, server) = gdb_session(
        "threads",
        "remote",
        "break worker_ready\ncontinue\ndetach\n",
    );
    assert!(
        gdb.contains("hit Breakpoint 1, worker_ready (id=0)"),
        "{gdb}"
    );
    assert!(gdb.contains(") detached]"), "{gdb}");
    let output = text(&server.stdout);
    assert!(
        output.contains("worker 0 ready") && output.contains("joined"),
        "{output}"
    );
    assert_eq!(
        server.status.code(),
        Some(0),
        "the server reports the program's own end"
    );
}

#[test]
fn gdb_extended_remote_run_starts_the_program_again() {
    if !have(
        "gdb_extended_remote_run_starts_the_program_again",
        &["gdb", "gcc"],
    ) {
        return;
    }
    let (gdb, server) = gdb_session(
        "locals",
        "extended-remote",
        "break square\nrun\nbt\ncontinue\ncontinue\n",
    );
    assert!(gdb.contains("Breakpoint 1, square (v=3)"), "{gdb}");
    assert!(gdb.contains("Breakpoint 1, square (v=4)"), "{gdb}");
    assert!(gdb.contains("exited with code 07]"), "{gdb}");
    assert_eq!(server.status.code(), Some(7));
}

#[test]
fn gdb_extended_remote_run_applies_environment_and_cwd() {
    if !have(
        "gdb_extended_remote_run_applies_environment_and_cwd",
        &["gdb", "gcc"],
    ) {
        return;
    }
    let cwd = std::env::temp_dir().canonicalize().unwrap();
    let (gdb, server) = gdb_session(
        "env_cwd",
        "extended-remote",
        &format!(
            "set environment VMDBG_TEST_VALUE=from-gdb\nset cwd {}\nrun\n",
            cwd.display()
        ),
    );
    assert!(gdb.contains("exited normally]"), "{gdb}");
    let output = text(&server.stdout);
    assert!(
        output.contains(&format!("value=from-gdb cwd={}\n", cwd.display())),
        "{output}"
    );
}

#[test]
fn gdb_rust_program_hits_main_and_a_function_breakpoint() {
    if !have(
        "gdb_rust_program_hits_main_and_a_function_breakpoint",
        &["gdb", "rustc"],
    ) {
        return;
    }
    let triple = program_marker_line("rust_main.rs", "triple");
    let (gdb, server) = gdb_session(
        "rust_main",
        "remote",
        "break main\nbreak rust_main::triple\ncontinue\ncontinue\nbt\nprint v\nfinish\ncontinue\n",
    );
    assert!(
        gdb.contains("Breakpoint 1, ") && gdb.contains(" main ("),
        "break main:\n{gdb}"
    );
    assert!(
        gdb.contains("Breakpoint 2, rust_main::triple (v=14) at "),
        "{gdb}"
    );
    assert!(gdb.contains(&format!("rust_main.rs:{triple}")), "{gdb}");
    assert!(gdb.contains("rust_main::main () at "), "bt:\n{gdb}");
    assert!(gdb.contains("$1 = 14"), "{gdb}");
    assert!(gdb.contains("Value returned is $2 = 42"), "{gdb}");
    assert!(gdb.contains("exited normally]"), "{gdb}");
    assert!(text(&server.stdout).contains("total=42"));
}

#[test]
fn lldb_gdb_remote_breaks_shows_locals_and_kills() {
    if !have(
        "lldb_gdb_remote_breaks_shows_locals_and_kills",
        &["lldb", "gcc"],
    ) {
        return;
    }
    let (server, port) = agent_gdbserver(&[&program("locals")]);
    let mut cmd = Command::new("lldb");
    cmd.arg("--batch")
        .args(["-o", &format!("gdb-remote 127.0.0.1:{port}")])
        .args(["-o", "breakpoint set -n square"])
        .args([
            "-o",
            "continue",
            "-o",
            "bt",
            "-o",
            "frame variable v",
            "-o",
            "kill",
        ])
        .arg(program("locals"));
    let out = run(cmd, "lldb", LIMIT);
    let lldb = text(&out.stdout) + &text(&out.stderr);
    let server = server.wait_output(LIMIT);
    assert!(lldb.contains("stop reason = breakpoint 1.1"), "{lldb}");
    assert!(lldb.contains("locals`square(v=3)"), "{lldb}");
    assert!(lldb.contains("locals`main at locals.c:"), "bt:\n{lldb}");
    assert!(lldb.contains("(int) v = 3"), "{lldb}");
    assert_eq!(
        server.status.code(),
        Some(128 + 9),
        "lldb's kill ends the program:\n{lldb}"
    );
}

/// The thread a stop reply names (`thread:TID` or `thread:pPID.TID`, hex).
fn thread_of(stop: &str) -> u32 {
    let id = stop
        .split("thread:")
        .nth(1)
        .and_then(|t| t.split(';').next())
        .unwrap_or_else(|| panic!("no thread in {stop}"));
    let tid = id.rsplit('.').next().unwrap().trim_start_matches('p');
    u32::from_str_radix(tid, 16).unwrap_or_else(|_| panic!("thread {id} in {stop}"))
}

/// Waits until traced thread `tid` has left its ptrace stop (`t` in
/// /proc): the program runs, so what the test sends next arrives while it
/// does, however late a loaded host lets it start.
fn wait_running(tid: u32) {
    let deadline = Instant::now() + LIMIT;
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{tid}/stat"))
            .unwrap_or_else(|e| panic!("/proc/{tid}/stat: {e}"));
        let state = stat.rsplit(") ").next().and_then(|r| r.chars().next());
        if !matches!(state, Some('t' | 'T')) {
            return;
        }
        assert!(Instant::now() < deadline, "{tid} never ran: {stat}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits until `tid` (the `spin` program) is in its main loop: it sleeps
/// there (`usleep`: nanosleep or clock_nanosleep), and nowhere before
/// main. Until then the dynamic loader may not have mapped libc yet, and
/// the library list is rightly short of it.
fn wait_in_main_loop(tid: u32) {
    const NANOSLEEP: &str = "35";
    const CLOCK_NANOSLEEP: &str = "230";
    let deadline = Instant::now() + LIMIT;
    loop {
        let syscall = std::fs::read_to_string(format!("/proc/{tid}/syscall"))
            .unwrap_or_else(|e| panic!("/proc/{tid}/syscall: {e}"));
        if matches!(syscall.split(' ').next(), Some(NANOSLEEP | CLOCK_NANOSLEEP)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{tid} never reached its main loop's sleep: {syscall}"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[test]
fn raw_rsp_interrupt_errors_and_malformed_packets() {
    if !have("raw_rsp_interrupt_errors_and_malformed_packets", &["gcc"]) {
        return;
    }
    let (server, port) = agent_gdbserver(&[&program("spin")]);
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut rsp = RawRsp(stream);
    assert!(rsp.ask("qSupported:swbreak+").contains("PacketSize="));
    let stop = rsp.ask("?");
    assert!(stop.starts_with("T05"), "stopped at the exec");
    let pid = thread_of(&stop);

    rsp.send_raw(b"$g#00");
    assert_eq!(rsp.reply(), "-", "a bad checksum is NAKed");
    assert!(
        rsp.ask("m0,8").starts_with('E'),
        "unmapped memory is an error reply"
    );
    assert!(rsp.ask("mffffffffffff0000,10").starts_with('E'));
    for junk in [
        "mzz,8",
        "Z0,xyz,1",
        "vCont;q",
        "Hgnothex",
        "qXfer:libraries-svr4:read::zz,1",
        "X1,zz:ab",
        "vCont;s",
        "G00",
    ] {
        // A packet the server knows, with arguments it cannot take: an
        // error reply. (The empty reply means "unknown packet", checked
        // below; accepting it here would pass a server that ignores all.)
        let reply = rsp.ask(junk);
        assert!(reply.starts_with('E'), "{junk} got {reply:?}");
    }
    assert_eq!(rsp.ask("qNoSuchThing"), "", "an unknown packet");
    let regs = rsp.ask("g");
    assert!(
        regs.len() >= 0x218 * 2 && regs.bytes().all(|b| b.is_ascii_hexdigit()),
        "still serving: {regs}"
    );

    // A bad packet while the program runs: an error reply, and the program
    // is stopped so the client gets the stop it waits for.
    rsp.send("vCont;c");
    wait_running(pid);
    assert!(rsp.ask("mzz,8").starts_with('E'));
    let stop = rsp.reply();
    assert!(
        stop.starts_with("T02") && stop.contains("thread:"),
        "stop after the bad packet: {stop}"
    );
    let regs = rsp.ask("g");
    assert!(
        regs.len() >= 0x218 * 2,
        "registers after the resync: {regs}"
    );

    rsp.send("vCont;c");
    wait_running(pid);
    wait_in_main_loop(pid);
    rsp.send_raw(&[0x03]);
    let stop = rsp.reply();
    assert!(
        stop.starts_with("T02") && stop.contains("thread:"),
        "Ctrl-C stop: {stop}"
    );
    let libraries = rsp.ask("qXfer:libraries-svr4:read::0,1000");
    assert!(libraries.contains("libc.so.6"), "{libraries}");

    let exec_file = rsp.ask("qXfer:exec-file:read::0,1000");
    // `m`: data (and maybe more after it), `l`: the last of it.
    assert_eq!(
        exec_file[1..],
        program("spin").display().to_string(),
        "qXfer:exec-file"
    );
    assert!(exec_file.starts_with(['m', 'l']), "{exec_file}");
    let auxv = rsp.ask("qXfer:auxv:read::0,1000");
    assert!(
        auxv.starts_with(['m', 'l']) && auxv.len() > 100,
        "qXfer:auxv: {auxv:?}"
    );

    // Host I/O reads the program's files and refuses to write any.
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let exe = program("spin").display().to_string();
    let opened = rsp.ask(&format!("vFile:open:{},0,0", hex(&exe)));
    assert!(
        opened.starts_with('F') && !opened.starts_with("F-"),
        "{opened}"
    );
    let fd = &opened[1..];
    let head = rsp.ask(&format!("vFile:pread:{fd},4,0"));
    let count = head
        .strip_prefix('F')
        .and_then(|r| r.split_once(';'))
        .map(|(n, _)| n);
    assert!(
        count.is_some_and(|n| u32::from_str_radix(n, 16) == Ok(4)) && head.ends_with("ELF"),
        "{head}"
    );
    assert_eq!(rsp.ask(&format!("vFile:close:{fd}")), "F0");
    let refused = rsp.ask(&format!("vFile:open:{},201,1ff", hex(&exe)));
    assert!(
        refused.starts_with("F-1,"),
        "opening for writing: {refused}"
    );

    rsp.send("vKill;1");
    let _ = rsp.reply();
    drop(rsp);
    let server = server.wait_output(LIMIT);
    assert_eq!(
        server.status.code(),
        Some(128 + 9),
        "{}",
        text(&server.stderr)
    );
}

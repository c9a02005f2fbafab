//! Benchmark (not a test): gdb's `stepi` and `next` round trips against
//! `vmdbg-agent gdbserver` and against Debian's `gdbserver`, on the same
//! program (tests/guests/programs/stepping.c), in the same run. Prints
//! medians, 95th percentiles and the ratio. Needs gdb, gcc and gdbserver
//! (`apt-get install gdbserver`); says SKIPPED without them.
//!
//! `cargo bench -p vmdbg-e2e --bench agent_step_bench`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vmdbg_e2e::*;

/// Per round; the servers take turns for ROUNDS rounds so a change in the
/// machine's load (it is shared) weighs on both alike.
const STEPIS: usize = 200;
const NEXTS: usize = 80;
const ROUNDS: usize = 4;
const LIMIT: Duration = Duration::from_secs(300);

fn compile_program() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vmdbg-agent-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("stepping");
    let mut gcc = Command::new("gcc");
    gcc.args(["-g", "-O0", "-o"])
        .arg(&exe)
        .arg(programs_dir().join("stepping.c"));
    let out = run(gcc, "gcc", LIMIT);
    assert!(out.status.success(), "gcc: {}", text(&out.stderr));
    exe
}

/// Times each command from gdb's Python, so only the round trips count.
fn gdb_script(port: u16, line: u32) -> String {
    format!(
        "set pagination off
set confirm off
target remote 127.0.0.1:{port}
break stepping.c:{line}
continue
python
import time
def measure(command, count):
    times = []
    for _ in range(count):
        start = time.perf_counter()
        gdb.execute(command, to_string=True)
        times.append((time.perf_counter() - start) * 1e6)
    return times
measure('stepi', 20)
print('STEPI ' + ' '.join('%.1f' % t for t in measure('stepi', {STEPIS})))
gdb.execute('delete')
print('NEXT ' + ' '.join('%.1f' % t for t in measure('next', {NEXTS})))
end
kill
"
    )
}

struct Stats {
    median: f64,
    p95: f64,
}

fn stats(mut v: Vec<f64>) -> Stats {
    assert!(!v.is_empty(), "no samples");
    v.sort_by(f64::total_cmp);
    Stats {
        median: v[v.len() / 2],
        p95: v[(v.len() * 95 / 100).min(v.len() - 1)],
    }
}

fn samples(output: &str, tag: &str) -> Vec<f64> {
    output
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{tag} ")))
        .unwrap_or_else(|| panic!("no {tag} line in gdb's output:\n{output}"))
        .split_whitespace()
        .map(|t| t.parse().expect("a number"))
        .collect()
}

fn measure(server: &str, exe: &Path, line: u32) -> (Vec<f64>, Vec<f64>) {
    let (guard, port) = match server {
        "vmdbg-agent" => agent_gdbserver(&[exe]),
        _ => {
            let port = free_port();
            let mut cmd = Command::new("gdbserver");
            cmd.arg(format!("127.0.0.1:{port}")).arg(exe);
            let mut guard = ChildGuard::spawn(cmd, "gdbserver");
            guard.wait_for_stderr("Listening on port", Duration::from_secs(20));
            (guard, port)
        }
    };
    let out = gdb_batch(exe, &gdb_script(port, line), LIMIT);
    let gdb = text(&out.stdout) + &text(&out.stderr);
    drop(guard);
    (samples(&gdb, "STEPI"), samples(&gdb, "NEXT"))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    for t in ["gdb", "gcc", "gdbserver"] {
        if let Err(why) = tool(t) {
            eprintln!("SKIPPED: agent_step_bench: {why}");
            return;
        }
    }
    let exe = compile_program();
    let line = program_marker_line("stepping.c", "loop_body");
    let (mut agent_stepi, mut agent_next, mut gs_stepi, mut gs_next) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let (stepi, next) = measure("vmdbg-agent", &exe, line);
        agent_stepi.extend(stepi);
        agent_next.extend(next);
        let (stepi, next) = measure("gdbserver", &exe, line);
        gs_stepi.extend(stepi);
        gs_next.extend(next);
    }
    let (agent_stepi, agent_next) = (stats(agent_stepi), stats(agent_next));
    let (gs_stepi, gs_next) = (stats(gs_stepi), stats(gs_next));
    println!(
        "gdb round trips on {} ({} stepi, {} next per server in {ROUNDS} alternating rounds), microseconds:",
        exe.display(),
        STEPIS * ROUNDS,
        NEXTS * ROUNDS
    );
    println!(
        "{:<22}{:>12}{:>12}{:>12}{:>12}",
        "", "stepi p50", "stepi p95", "next p50", "next p95"
    );
    for (name, s, n) in [
        ("vmdbg-agent gdbserver", &agent_stepi, &agent_next),
        ("Debian gdbserver", &gs_stepi, &gs_next),
    ] {
        println!(
            "{name:<22}{:>12.0}{:>12.0}{:>12.0}{:>12.0}",
            s.median, s.p95, n.median, n.p95
        );
    }
    println!(
        "ratio (vmdbg-agent / gdbserver): stepi {:.2}x, next {:.2}x",
        agent_stepi.median / gs_stepi.median,
        agent_next.median / gs_next.median
    );
}

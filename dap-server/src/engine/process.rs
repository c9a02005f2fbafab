//! What every engine does with its VMM process: start it so it cannot
//! outlive vmdbg, relay its stderr, and turn its wait status into a
//! [`VmExit`].

use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

use super::VmExit;

/// Lines of a VMM's stderr kept for error messages.
pub type StderrTail = Arc<Mutex<Vec<String>>>;

/// Starts `cmd` (stdin and stdout null, stderr relayed to ours with
/// `prefix` unless a line already starts with it). The child gets
/// PR_SET_PDEATHSIG(SIGKILL) so it cannot outlive vmdbg — the signal
/// follows the *thread* that spawned it: start VMs from a thread that
/// lives as long as they do — and its own process group, so a terminal's
/// ^C reaches vmdbg, which stops the guest command first, then the VM.
/// Stderr lines containing any of `quiet` are not relayed (noise our own
/// shutdown causes) but are kept in the tail.
pub fn spawn_vmm(
    mut cmd: Command,
    prefix: &'static str,
    quiet: &'static [&'static str],
) -> Result<(Child, StderrTail)> {
    let parent = std::process::id() as i32;
    // SAFETY: prctl, getppid, setpgid and _exit are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // vmdbg died before the line above ran.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            libc::setpgid(0, 0);
            Ok(())
        });
    }
    tracing::info!("starting {cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {}", cmd.get_program().to_string_lossy()))?;
    let stderr = child.stderr.take().expect("piped stderr");
    let tail: StderrTail = Default::default();
    let keep = tail.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !quiet.iter().any(|q| line.contains(q)) {
                if line.starts_with(prefix) {
                    eprintln!("{line}");
                } else {
                    eprintln!("{prefix}{line}");
                }
            }
            let mut keep = keep.lock().unwrap();
            keep.push(line);
            let excess = keep.len().saturating_sub(40);
            keep.drain(..excess);
        }
    });
    Ok((child, tail))
}

pub fn to_exit(status: std::process::ExitStatus) -> VmExit {
    match (status.code(), status.signal()) {
        (Some(c), _) => VmExit::Code(c),
        (None, Some(s)) => VmExit::Signal(s),
        _ => VmExit::Code(-1),
    }
}

/// The host's TSC frequency in kHz, from /proc/cpuinfo: given to the guest
/// (`tsc_early_khz=`) because calibrating against the PIT is slow and, on
/// emulated or nested timers, flaky.
pub fn host_tsc_khz() -> Option<u64> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = cpuinfo
        .lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()?;
    Some((mhz * 1000.0) as u64)
}

//! What every engine does with its VMM process: start it so it cannot
//! outlive vmdbg, relay its stderr, learn how it ended (a [`VmExit`]), and
//! end it: politely first (the engine's way), then by force.

use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

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
) -> Result<VmProcess> {
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
    let closed = Arc::new(AtomicBool::new(false));
    let closing = closed.clone();
    let follower: Follower = Default::default();
    let follow = follower.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !quiet.iter().any(|q| line.contains(q)) {
                if line.starts_with(prefix) {
                    eprintln!("{line}");
                } else {
                    eprintln!("{prefix}{line}");
                }
                if let Some(follower) = &*follow.lock().unwrap() {
                    let _ = follower.send(line.clone());
                }
            }
            let mut keep = keep.lock().unwrap();
            keep.push(line);
            let excess = keep.len().saturating_sub(40);
            keep.drain(..excess);
        }
        closing.store(true, Ordering::SeqCst);
    });
    Ok(VmProcess {
        child,
        exit: None,
        stderr_tail: tail,
        stderr_closed: closed,
        follower,
    })
}

/// Where a VMM's stderr lines also go, once someone follows them.
type Follower = Arc<Mutex<Option<std::sync::mpsc::Sender<String>>>>;

/// A running VMM process. Dropping it kills and reaps the process.
pub struct VmProcess {
    child: Child,
    exit: Option<VmExit>,
    /// Its last lines on stderr.
    pub stderr_tail: StderrTail,
    /// Whether its stderr has closed (every line is in the tail).
    stderr_closed: Arc<AtomicBool>,
    follower: Follower,
}

impl VmProcess {
    /// How the process ended, if it has (without waiting).
    pub fn try_exit(&mut self) -> Option<VmExit> {
        if self.exit.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exit = Some(to_exit(status));
            }
        }
        self.exit
    }

    /// Waits up to `grace` for the process to end (after the engine asked
    /// it to), then kills it.
    pub fn wait_or_kill(&mut self, grace: Duration) -> Result<VmExit> {
        let deadline = Instant::now() + grace;
        loop {
            if let Some(exit) = self.try_exit() {
                return Ok(exit);
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let exit = to_exit(self.child.wait()?);
        self.exit = Some(exit);
        Ok(exit)
    }

    /// Its last lines on stderr, once it has ended and they are all read
    /// (waiting up to `limit` for that): a VMM's report of why it ended.
    pub fn last_words(&mut self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        while (self.try_exit().is_none() || !self.stderr_closed.load(Ordering::SeqCst))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.stderr_tail.lock().unwrap().join("\n")
    }

    /// Its stderr lines from now on (those its `quiet` list does not
    /// hold back), until it ends.
    pub fn follow_stderr(&self) -> std::sync::mpsc::Receiver<String> {
        let (tx, rx) = std::sync::mpsc::channel();
        *self.follower.lock().unwrap() = Some(tx);
        rx
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: i32) -> Result<()> {
        // SAFETY: kill(2) on our own child, which is not reaped before
        // `exit` is set (and then this is not called by the engines).
        if unsafe { libc::kill(self.child.id() as i32, signal) } != 0 {
            bail!(
                "signal {signal} to pid {}: {}",
                self.child.id(),
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }
}

impl Drop for VmProcess {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn to_exit(status: std::process::ExitStatus) -> VmExit {
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

//! A ptrace process debugger served as the gdb remote protocol through
//! gdbstub (x86-64 Linux): launched inside the guest by the agent, whose
//! protocol tunnels the RSP stream to the host, or directly on a host like
//! gdbserver (`vmdbg-agent gdbserver --listen HOST:PORT -- PROGRAM ARGS…`).
//!
//! - [`serve`]: launch a program and serve one debugger on a byte stream;
//! - [`Session`]: the same in two steps, to report the process id (or a
//!   launch failure) before waiting for a debugger;
//! - [`gdbserver`]: the command-line server (TCP or unix socket).
//!
//! What this module must not do: reap children it did not launch (waits
//! are per thread id, never `waitpid(-1)`), or touch the agent's protocol.
//!
//! Everything here runs on the thread that launched the process: the
//! kernel binds a tracee to its tracer thread.

mod arch;
pub mod gdbserver;
mod hostio;
mod inferior;
pub mod signals;
mod solib;
mod target;

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;

use gdbstub::stub::{DisconnectReason, MultiThreadStopReason};

use inferior::{Event, Inferior};
use target::{ProcessEventLoop, ProcessTarget};
pub use vmdbg_gdb_common::conn::RspStream;
use vmdbg_gdb_common::session::{self, Resync, SessionError, SharedConn};

/// What to run under the debugger.
#[derive(Debug, Default)]
pub struct Launch {
    /// argv[0] is the program: a path, or a name searched in PATH (the
    /// launched environment's PATH when `env` sets one).
    pub argv: Vec<OsString>,
    /// The whole environment of the program; `None` inherits ours.
    pub env: Option<Vec<(OsString, OsString)>>,
    /// Working directory; `None` keeps ours.
    pub cwd: Option<PathBuf>,
    /// Descriptors the program gets as stdin, stdout and stderr (e.g. pipe
    /// ends the agent streams separately from RSP); `None` inherits ours.
    /// This process keeps them open until the session ends (gdb's `run`
    /// in extended-remote mode starts the program again with them).
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

#[derive(Debug, thiserror::Error)]
pub enum DebugError {
    #[error("launch: {0}")]
    Launch(String),
    #[error("ptrace: {0}")]
    Ptrace(String),
    #[error("memory: {0}")]
    Memory(String),
    #[error("no thread {0}")]
    NoSuchThread(i32),
    #[error("gdb signal {0} has no Linux equivalent")]
    UnknownSignal(u8),
    #[error("the debugger's connection failed: {0}")]
    Connection(String),
    #[error("gdb remote protocol: {0}")]
    Protocol(String),
}

/// A launched program, stopped at its exec, waiting for a debugger.
pub struct Session {
    target: ProcessTarget,
}

impl Session {
    /// Starts the program stopped at its first instruction (the dynamic
    /// linker's, for a dynamic program).
    pub fn launch(launch: Launch) -> Result<Self, DebugError> {
        let inferior = Inferior::launch(&launch, false)?;
        Ok(Self {
            target: ProcessTarget::new(inferior, launch),
        })
    }

    pub fn pid(&self) -> i32 {
        self.target.inferior.pid.as_raw()
    }

    /// Serves one debugger until the program ends, the debugger kills it
    /// (`kill`), or detaches (`detach`: the program runs on untraced and
    /// this waits for its end). Returns how the program ended. If the
    /// connection fails, the program is killed and the error returned.
    pub fn serve<S: RspStream>(mut self, stream: S) -> Result<ExitStatus, DebugError> {
        let conn = SharedConn::new(stream);
        let outcome = session::serve::<ProcessEventLoop<S>, S>(&conn, &mut self.target);
        let inferior = &mut self.target.inferior;
        let end = match outcome {
            Ok(DisconnectReason::TargetExited(_) | DisconnectReason::TargetTerminated(_)) => {
                inferior.ended().unwrap_or_else(|| inferior.kill())
            }
            Ok(DisconnectReason::Kill) => inferior.kill(),
            Ok(DisconnectReason::Disconnect) => inferior.detach_and_wait(),
            Err(e) => {
                inferior.kill();
                return Err(match e {
                    SessionError::Target(e) => e,
                    SessionError::Connection(e) => DebugError::Connection(e.to_string()),
                    SessionError::Stub(e) => DebugError::Protocol(e),
                });
            }
        };
        Ok(exit_status(end))
    }
}

impl Resync for ProcessTarget {
    fn resync(&mut self) -> Result<Option<MultiThreadStopReason<u64>>, DebugError> {
        if !self.inferior.any_running() {
            return Ok(None);
        }
        let event = self.inferior.interrupt()?;
        Ok(Some(self.stop_reason(event)))
    }
}

fn exit_status(end: Event) -> ExitStatus {
    match end {
        Event::Exited(code) => ExitStatus::from_raw((code & 0xff) << 8),
        Event::Killed(signal) => ExitStatus::from_raw(signal & 0x7f),
        Event::Stopped { .. } => ExitStatus::from_raw(libc::SIGKILL),
    }
}

/// Launches `launch` and serves one debugger on `stream` (a TCP or unix
/// socket, a socketpair end, …): see [`Session::serve`]. Call it on the
/// thread that should own the process.
pub fn serve<S: RspStream>(stream: S, launch: Launch) -> Result<ExitStatus, DebugError> {
    Session::launch(launch)?.serve(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    fn packet(body: &str) -> Vec<u8> {
        let sum = body.bytes().fold(0u8, |s, b| s.wrapping_add(b));
        format!("${body}#{sum:02x}").into_bytes()
    }

    /// Reads one reply packet's body, skipping acks.
    fn reply(stream: &mut UnixStream) -> String {
        let mut body = Vec::new();
        let mut byte = [0u8];
        loop {
            stream.read_exact(&mut byte).unwrap();
            if byte[0] == b'$' {
                break;
            }
        }
        loop {
            stream.read_exact(&mut byte).unwrap();
            if byte[0] == b'#' {
                break;
            }
            body.push(byte[0]);
        }
        let mut checksum = [0u8; 2];
        stream.read_exact(&mut checksum).unwrap();
        // After a final reply (W, X) the server has already hung up.
        let _ = stream.write_all(b"+");
        String::from_utf8(body).unwrap()
    }

    #[test]
    fn serve_runs_a_program_with_its_output_on_separate_pipes() {
        let (out_read, out_write) = nix::unistd::pipe().unwrap();
        let (err_read, err_write) = nix::unistd::pipe().unwrap();
        let (server_end, mut client) = UnixStream::pair().unwrap();
        let launch = Launch {
            argv: vec![
                "sh".into(),
                "-c".into(),
                "echo to-stdout; echo to-stderr >&2; exit 5".into(),
            ],
            env: Some(vec![("PATH".into(), "/usr/bin:/bin".into())]),
            cwd: Some("/".into()),
            stdout: Some(out_write),
            stderr: Some(err_write),
            ..Launch::default()
        };
        let debugger = std::thread::spawn(move || {
            client.write_all(&packet("?")).unwrap();
            let stop = reply(&mut client);
            client.write_all(&packet("vCont;c")).unwrap();
            (stop, reply(&mut client))
        });
        let status = serve(server_end, launch).unwrap();
        let (first_stop, end) = debugger.join().unwrap();
        assert!(first_stop.starts_with("T05"), "{first_stop}");
        assert_eq!(end, "W05");
        assert_eq!(status.code(), Some(5));
        let mut out = String::new();
        std::fs::File::from(out_read)
            .read_to_string(&mut out)
            .unwrap();
        let mut err = String::new();
        std::fs::File::from(err_read)
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!((out.as_str(), err.as_str()), ("to-stdout\n", "to-stderr\n"));
    }

    #[test]
    fn a_program_that_cannot_run_is_a_launch_error() {
        let (server_end, _client) = UnixStream::pair().unwrap();
        let launch = Launch {
            argv: vec!["/nonexistent/program".into()],
            ..Launch::default()
        };
        match serve(server_end, launch) {
            Err(DebugError::Launch(why)) => assert!(why.contains("/nonexistent/program"), "{why}"),
            other => panic!("expected a launch error, got {other:?}"),
        }
        let (server_end, _client) = UnixStream::pair().unwrap();
        match serve(server_end, Launch::default()) {
            Err(DebugError::Launch(_)) => {}
            other => panic!("expected a launch error for an empty argv, got {other:?}"),
        }
    }
}

//! The gdb remote-protocol server, one client of the control loop
//! ([`crate::control`], which owns the listener and the VM): a session
//! serves one debugger over a stopped VM, lends the VM's run control to
//! it, and after a detach lets the guest run on.

pub mod arch;
mod monitor;
pub mod target;

use std::os::fd::RawFd;

use gdbstub::common::Signal;
use gdbstub::conn::ConnectionExt;
use gdbstub::stub::state_machine::GdbStubStateMachine;
use gdbstub::stub::{DisconnectReason, GdbStub, GdbStubError};

use vmdbg_gdb_common::listen::Stream;
use vmdbg_gdb_common::session::{self, Resync, SessionError, SharedConn};

use self::target::{tid, StopReason, VmTarget};
use crate::control::poll_readable;
use crate::debug::probe::HostDebugCaps;
use crate::error::{Error, Result};
use crate::vcpu::VmEnd;
use crate::vm::Vm;

/// Where the gdb server listens (shared with the agent's process debugger).
pub use vmdbg_gdb_common::listen::Listen;

/// The connection to one debugger.
type GdbConnection = SharedConn<Stream>;

/// Event sources the control loop lends a gdb session (the control API),
/// served while the session waits for gdb or for a vCPU.
pub trait SideEvents: Send {
    fn fds(&self) -> Vec<RawFd>;
    /// Serves what is ready; the debugger owns the run state.
    fn serve_debugged(&mut self, vm: &mut Vm);
    /// To hand the concrete type back to its owner.
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any>;
}

/// How a debugger session ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// The VM ended (the guest, or a fatal exit) while debugged.
    Ended(VmEnd),
    /// The debugger killed the VM.
    Killed,
    /// The debugger detached (or its connection broke): every vCPU runs on
    /// with no debug state.
    Detached,
}

/// What a session waits for next.
enum Wake {
    /// A byte from gdb.
    Data(u8),
    /// A vCPU stopped (only while gdb lets the VM run).
    Stop(StopReason),
}

/// Waits for gdb's next byte or, while the VM runs, the next stop, and
/// serves the lent event sources (the control API) meanwhile, so they are
/// answered whether gdb has the VM stopped or running.
fn wait(target: &mut VmTarget, conn: &mut GdbConnection, running: bool) -> std::io::Result<Wake> {
    if running {
        if let Some(reason) = target.take_pending_stop() {
            return Ok(Wake::Stop(reason));
        }
        if let Some(event) = target.take_pending() {
            return Ok(Wake::Stop(target.report(event)));
        }
    }
    loop {
        if conn.has_buffered_input() {
            return conn.read().map(Wake::Data);
        }
        if running {
            if let Some(event) = target.vm.poll_event() {
                return Ok(Wake::Stop(target.report(event)));
            }
        }
        let mut fds = vec![conn.raw_fd(), target.vm.events_fd()];
        if let Some(side) = &target.side {
            fds.extend(side.fds());
        }
        let ready = poll_readable(&fds)?;
        if ready[2..].iter().any(|&r| r) {
            if let Some(side) = target.side.as_mut() {
                side.serve_debugged(&mut target.vm);
            }
        }
        if ready[0] {
            return conn.read().map(Wake::Data);
        }
        if !running && ready[1] {
            // A stale wake-up of a vCPU that is not running; drain it.
            while target.vm.poll_event().is_some() {}
        }
    }
}

/// gdb's Ctrl-C: stops every vCPU and reports the first stop.
fn on_interrupt(target: &mut VmTarget) -> StopReason {
    let mut stops = target.vm.pause_all().into_iter();
    match stops.next() {
        Some(first) => {
            let reason = target.report(first);
            stops.for_each(|e| target.keep_pending(e));
            reason
        }
        None => StopReason::SignalWithThread {
            tid: tid(0),
            signal: Signal::SIGINT,
        },
    }
}

/// A packet refused while the vCPUs ran: they stop, and gdb, which waits
/// for a stop, is told why.
impl Resync for VmTarget {
    fn resync(&mut self) -> Result<Option<StopReason>> {
        if !self.vm.any_running() {
            return Ok(None);
        }
        Ok(Some(on_interrupt(self)))
    }
}

/// Why a session's event loop stopped other than by a disconnect.
#[derive(Debug)]
enum DriveError {
    Gdb(GdbStubError<Error, std::io::Error>),
    /// The connection failed while waiting for gdb.
    Io(std::io::Error),
    /// The target failed while the session recovered from a bad packet.
    Target(Error),
    /// gdbstub failed without reading anything: the stub itself is broken.
    Stub(String),
}

impl From<GdbStubError<Error, std::io::Error>> for DriveError {
    fn from(e: GdbStubError<Error, std::io::Error>) -> Self {
        Self::Gdb(e)
    }
}

impl std::fmt::Display for DriveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Gdb(e) => e.fmt(f),
            Self::Io(e) => e.fmt(f),
            Self::Target(e) => e.fmt(f),
            Self::Stub(e) => write!(f, "gdb stub: {e}"),
        }
    }
}

/// Serves the session: runs gdbstub's state machine over the connection
/// and, when gdbstub gives up on a packet it read (malformed, unexpected,
/// too large), answers it with an error and starts a new run where the
/// last one stopped ([`session::recover`], shared with the agent's
/// debugger), so one bad packet never ends a session.
fn drive(
    target: &mut VmTarget,
    conn: GdbConnection,
) -> std::result::Result<DisconnectReason, DriveError> {
    loop {
        let read_before = conn.bytes_read();
        let refused = match drive_run(target, conn.clone()) {
            Ok(reason) => return Ok(reason),
            Err(DriveError::Gdb(e))
                if !e.is_target_error()
                    && !e.is_connection_error()
                    && conn.bytes_read() != read_before =>
            {
                e
            }
            Err(DriveError::Gdb(e)) if !e.is_target_error() && !e.is_connection_error() => {
                return Err(DriveError::Stub(e.to_string()))
            }
            Err(other) => return Err(other),
        };
        match session::recover(&conn, target, &refused) {
            Ok(Some(end)) => return Ok(end),
            Ok(None) => {}
            Err(SessionError::Target(e)) => return Err(DriveError::Target(e)),
            Err(SessionError::Connection(e)) => return Err(DriveError::Io(e)),
            Err(SessionError::Stub(e)) => return Err(DriveError::Stub(e)),
        }
    }
}

/// One gdbstub run: its state machine as the session's own event loop, so
/// no gdbstub call ever blocks the control API.
fn drive_run(
    target: &mut VmTarget,
    conn: GdbConnection,
) -> std::result::Result<DisconnectReason, DriveError> {
    let mut gdb = GdbStub::new(conn).run_state_machine(target)?;
    loop {
        gdb = match gdb {
            GdbStubStateMachine::Idle(mut gdb) => {
                match wait(target, gdb.borrow_conn(), false).map_err(DriveError::Io)? {
                    Wake::Data(byte) => gdb.incoming_data(target, byte)?,
                    Wake::Stop(_) => unreachable!("no stop is taken while idle"),
                }
            }
            GdbStubStateMachine::Running(mut gdb) => {
                match wait(target, gdb.borrow_conn(), true).map_err(DriveError::Io)? {
                    Wake::Data(byte) => gdb.incoming_data(target, byte)?,
                    Wake::Stop(reason) => gdb.report_stop(target, reason)?,
                }
            }
            GdbStubStateMachine::CtrlCInterrupt(gdb) => {
                let reason = on_interrupt(target);
                gdb.interrupt_handled(target, Some(reason))?
            }
            GdbStubStateMachine::Disconnected(gdb) => return Ok(gdb.get_reason()),
        };
    }
}

/// Serves one debugger on `stream` over a stopped VM until it detaches,
/// kills the VM or the VM ends; hands the VM and the lent event sources
/// back either way.
pub fn session(
    vm: Vm,
    host: HostDebugCaps,
    stream: Stream,
    side: Box<dyn SideEvents>,
) -> (Vm, Box<dyn SideEvents>, Result<SessionEnd>) {
    let mut target = VmTarget::new(vm, host);
    target.side = Some(side);
    let result = drive(&mut target, SharedConn::new(stream));
    let outcome = match (target.ended.take(), result) {
        (Some(end), _) => Ok(SessionEnd::Ended(end)),
        (None, Ok(DisconnectReason::Kill)) => Ok(SessionEnd::Killed),
        (None, Ok(DisconnectReason::Disconnect)) => {
            eprintln!("vmdbg-vmm: debugger detached; the guest runs on");
            target.release().map(|()| SessionEnd::Detached)
        }
        (None, Ok(DisconnectReason::TargetExited(_) | DisconnectReason::TargetTerminated(_))) => {
            Err(Error::Gdb("the VM ended without an exit status".into()))
        }
        (None, Err(DriveError::Gdb(e))) if e.is_target_error() => {
            Err(e.into_target_error().expect("checked to be a target error"))
        }
        (None, Err(DriveError::Target(e))) => Err(e),
        (None, Err(e)) => {
            eprintln!("vmdbg-vmm: gdb connection ended ({e}); the guest runs on");
            target.release().map(|()| SessionEnd::Detached)
        }
    };
    let side = target
        .side
        .take()
        .expect("the side events stay lent for the session");
    (target.vm, side, outcome)
}

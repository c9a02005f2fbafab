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
use gdbstub::stub::run_blocking::{BlockingEventLoop, Event, WaitForStopReasonError};
use gdbstub::stub::{DisconnectReason, GdbStub};

use vmdbg_gdb_common::conn::RspConnection;
use vmdbg_gdb_common::listen::Stream;

use self::target::{tid, StopReason, VmTarget};
use crate::debug::probe::HostDebugCaps;
use crate::control::poll_readable;
use crate::error::{Error, Result};
use crate::vcpu::VmEnd;
use crate::vm::Vm;

/// Where the gdb server listens (shared with the agent's process debugger).
pub use vmdbg_gdb_common::listen::Listen;

/// The connection to one debugger.
type GdbConnection = RspConnection<Stream>;

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

struct VmEventLoop;

impl BlockingEventLoop for VmEventLoop {
    type Target = VmTarget;
    type Connection = GdbConnection;
    type StopReason = StopReason;

    fn wait_for_stop_reason(
        target: &mut VmTarget,
        conn: &mut GdbConnection,
    ) -> std::result::Result<Event<StopReason>, WaitForStopReasonError<Error, std::io::Error>> {
        if let Some(event) = target.take_pending() {
            return Ok(Event::TargetStopped(target.report(event)));
        }
        loop {
            if conn.has_buffered_input() {
                return conn
                    .read()
                    .map(Event::IncomingData)
                    .map_err(WaitForStopReasonError::Connection);
            }
            if let Some(event) = target.vm.poll_event() {
                return Ok(Event::TargetStopped(target.report(event)));
            }
            let mut fds = vec![conn.raw_fd(), target.vm.events_fd()];
            if let Some(side) = &target.side {
                fds.extend(side.fds());
            }
            let ready = poll_readable(&fds).map_err(WaitForStopReasonError::Connection)?;
            if ready[2..].iter().any(|&r| r) {
                if let Some(side) = target.side.as_mut() {
                    side.serve_debugged(&mut target.vm);
                }
            }
            if ready[0] {
                return conn
                    .read()
                    .map(Event::IncomingData)
                    .map_err(WaitForStopReasonError::Connection);
            }
        }
    }

    fn on_interrupt(target: &mut VmTarget) -> std::result::Result<Option<StopReason>, Error> {
        let mut stops = target.vm.pause_all().into_iter();
        Ok(Some(match stops.next() {
            Some(first) => {
                let reason = target.report(first);
                stops.for_each(|e| target.keep_pending(e));
                reason
            }
            None => StopReason::SignalWithThread {
                tid: tid(0),
                signal: Signal::SIGINT,
            },
        }))
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
    let result = GdbStub::new(GdbConnection::new(stream)).run_blocking::<VmEventLoop>(&mut target);
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
        (None, Err(e)) if e.is_target_error() => {
            Err(e.into_target_error().expect("checked to be a target error"))
        }
        (None, Err(e)) => {
            eprintln!("vmdbg-vmm: gdb connection ended ({e}); the guest runs on");
            target.release().map(|()| SessionEnd::Detached)
        }
    };
    let side = target.side.take().expect("the side events stay lent for the session");
    (target.vm, side, outcome)
}

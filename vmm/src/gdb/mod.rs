//! The gdb remote-protocol server: listens on TCP or a unix socket, lets a
//! debugger attach at boot (`--wait-gdb`, like QEMU's `-s -S`) or to a
//! running VM, and after a detach lets the guest run on and accepts the
//! next debugger.

pub mod arch;
mod monitor;
pub mod target;

use std::os::fd::{AsRawFd, RawFd};

use gdbstub::common::Signal;
use gdbstub::conn::ConnectionExt;
use gdbstub::stub::run_blocking::{BlockingEventLoop, Event, WaitForStopReasonError};
use gdbstub::stub::DisconnectReason;

use vmdbg_gdb_common::listen::{Listener, Stream};
use vmdbg_gdb_common::session::{self, Resync, SessionError, SharedConn};

use self::target::{tid, StopReason, VmTarget};
use crate::debug::probe::HostDebugCaps;
use crate::error::{Error, Result};
use crate::vcpu::{VcpuEvent, VmEnd};
use crate::vm::Vm;

/// Where the gdb server listens (shared with the agent's process debugger).
pub use vmdbg_gdb_common::listen::Listen;

/// The connection to one debugger.
type GdbConnection = SharedConn<Stream>;

fn bind(listen: &Listen) -> Result<Listener> {
    Listener::bind(listen).map_err(|e| Error::Gdb(e.to_string()))
}

/// Blocks until one of `fds` is readable; returns which are.
fn poll_readable(fds: &[RawFd]) -> std::io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: `pfds` is a valid array of pollfd for its whole length.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, -1) };
        if n >= 0 {
            return Ok(pfds.iter().map(|p| p.revents != 0).collect());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
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
            let ready = poll_readable(&[conn.raw_fd(), target.vm.events_fd()])
                .map_err(WaitForStopReasonError::Connection)?;
            if ready[0] {
                return conn
                    .read()
                    .map(Event::IncomingData)
                    .map_err(WaitForStopReasonError::Connection);
            }
        }
    }

    fn on_interrupt(target: &mut VmTarget) -> std::result::Result<Option<StopReason>, Error> {
        Ok(Some(target.stop_all()))
    }
}

/// A packet refused while the vCPUs ran: they stop, and gdb, which waits
/// for a stop, is told why.
impl Resync for VmTarget {
    fn resync(&mut self) -> Result<Option<StopReason>> {
        if !self.vm.any_running() {
            return Ok(None);
        }
        Ok(Some(self.stop_all()))
    }
}

impl VmTarget {
    /// Stops every vCPU and reports the first stop; the others wait.
    fn stop_all(&mut self) -> StopReason {
        let mut stops = self.vm.pause_all().into_iter();
        match stops.next() {
            Some(first) => {
                let reason = self.report(first);
                stops.for_each(|e| self.keep_pending(e));
                reason
            }
            None => StopReason::SignalWithThread {
                tid: tid(0),
                signal: Signal::SIGINT,
            },
        }
    }
}

/// Runs the VM under the gdb server until the VM ends or a debugger kills it.
pub fn serve(vm: Vm, host: HostDebugCaps, listen: &Listen, wait_for_gdb: bool) -> Result<VmEnd> {
    let listener = bind(listen)?;
    let mut target = VmTarget::new(vm, host);
    let shown = format!("target remote {}", listener.target_remote_address());
    if wait_for_gdb {
        eprintln!("vmdbg-vmm: waiting for gdb: {shown}");
    } else {
        eprintln!("vmdbg-vmm: gdb can attach with: {shown}");
        for vcpu in 0..target.vm.vcpu_count() {
            target.vm.run_vcpu(vcpu)?;
        }
    }
    loop {
        if let Some(end) = wait_for_connection_or_end(&mut target, &listener)? {
            return Ok(end);
        }
        let conn = SharedConn::new(
            listener
                .accept()
                .map_err(|e| Error::Gdb(format!("accepting a connection: {e}")))?,
        );
        for stop in target.vm.pause_all() {
            if let VcpuEvent::VmEnded { end, .. } = stop {
                return Ok(end);
            }
        }
        let result = session::serve::<VmEventLoop, Stream>(&conn, &mut target);
        if let Some(end) = target.ended.take() {
            return Ok(end);
        }
        match result {
            Ok(DisconnectReason::Kill) => {
                eprintln!("vmdbg-vmm: killed by the debugger");
                return Ok(VmEnd::Guest { status: 0 });
            }
            Ok(DisconnectReason::Disconnect) => {
                eprintln!("vmdbg-vmm: debugger detached; the guest runs on");
            }
            Ok(DisconnectReason::TargetExited(_) | DisconnectReason::TargetTerminated(_)) => {
                return Err(Error::Gdb("the VM ended without an exit status".into()));
            }
            Err(SessionError::Target(e)) => return Err(e),
            Err(e) => eprintln!("vmdbg-vmm: gdb connection ended ({e}); the guest runs on"),
        }
        target.release()?;
    }
}

/// While the guest runs with no debugger, waits for either a debugger to
/// connect (`None`) or the VM to end.
fn wait_for_connection_or_end(target: &mut VmTarget, listener: &Listener) -> Result<Option<VmEnd>> {
    while target.vm.any_running() {
        let ready = poll_readable(&[listener.as_raw_fd(), target.vm.events_fd()])
            .map_err(|e| Error::Gdb(format!("poll: {e}")))?;
        while let Some(event) = target.vm.poll_event() {
            match event {
                VcpuEvent::VmEnded { end, .. } => return Ok(Some(end)),
                // A stop nobody asked for (a leftover pause request): go on.
                other => target.vm.run_vcpu(other.vcpu())?,
            }
        }
        if ready[0] {
            return Ok(None);
        }
    }
    Ok(None)
}

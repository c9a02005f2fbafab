//! The gdb remote-protocol server: listens on TCP or a unix socket, lets a
//! debugger attach at boot (`--wait-gdb`, like QEMU's `-s -S`) or to a
//! running VM, and after a detach lets the guest run on and accepts the
//! next debugger.

pub mod arch;
mod conn;
mod monitor;
pub mod target;

use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use gdbstub::common::Signal;
use gdbstub::conn::ConnectionExt;
use gdbstub::stub::run_blocking::{BlockingEventLoop, Event, WaitForStopReasonError};
use gdbstub::stub::{DisconnectReason, GdbStub};

use self::conn::{GdbConnection, Stream};
use self::target::{tid, StopReason, VmTarget};
use crate::debug::probe::HostDebugCaps;
use crate::error::{Error, Result};
use crate::vcpu::{VcpuEvent, VmEnd};
use crate::vm::Vm;

/// Where the gdb server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    Tcp(String),
    Unix(PathBuf),
}

impl std::str::FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            return match path {
                "" => Err("unix: needs a path, e.g. unix:/tmp/vmdbg-gdb.sock".into()),
                p => Ok(Listen::Unix(p.into())),
            };
        }
        let addr = s.strip_prefix("tcp:").unwrap_or(s);
        let addr = if addr.starts_with(':') {
            format!("127.0.0.1{addr}")
        } else {
            addr.to_string()
        };
        match addr.rsplit_once(':') {
            Some((_, port)) if port.parse::<u16>().is_ok() => Ok(Listen::Tcp(addr)),
            _ => Err(format!(
                "`{s}` is not a gdb address: use HOST:PORT (e.g. 127.0.0.1:1234), :PORT or unix:PATH"
            )),
        }
    }
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Listener {
    fn bind(listen: &Listen) -> Result<Self> {
        let fail =
            |what: &str, e: std::io::Error| Error::Gdb(format!("cannot listen on {what}: {e}"));
        match listen {
            Listen::Tcp(addr) => TcpListener::bind(addr)
                .map(Listener::Tcp)
                .map_err(|e| fail(addr, e)),
            Listen::Unix(path) => {
                if std::fs::symlink_metadata(path).is_ok_and(|m| {
                    use std::os::unix::fs::FileTypeExt;
                    m.file_type().is_socket()
                }) {
                    let _ = std::fs::remove_file(path);
                }
                UnixListener::bind(path)
                    .map(|l| Listener::Unix(l, path.clone()))
                    .map_err(|e| fail(&path.display().to_string(), e))
            }
        }
    }

    fn accept(&self) -> Result<GdbConnection> {
        let stream = match self {
            Listener::Tcp(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
            Listener::Unix(l, _) => l.accept().map(|(s, _)| Stream::Unix(s)),
        }
        .map_err(|e| Error::Gdb(format!("accepting a connection: {e}")))?;
        Ok(GdbConnection::new(stream))
    }

    fn raw_fd(&self) -> RawFd {
        match self {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix(l, _) => l.as_raw_fd(),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
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

/// Runs the VM under the gdb server until the VM ends or a debugger kills it.
pub fn serve(vm: Vm, host: HostDebugCaps, listen: &Listen, wait_for_gdb: bool) -> Result<VmEnd> {
    let listener = Listener::bind(listen)?;
    let mut target = VmTarget::new(vm, host);
    let shown = match listen {
        Listen::Tcp(a) => format!("target remote {a}"),
        Listen::Unix(p) => format!("target remote {}", p.display()),
    };
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
        let conn = listener.accept()?;
        for stop in target.vm.pause_all() {
            if let VcpuEvent::VmEnded { end, .. } = stop {
                return Ok(end);
            }
        }
        let result = GdbStub::new(conn).run_blocking::<VmEventLoop>(&mut target);
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
            Err(e) if e.is_target_error() => {
                return Err(e.into_target_error().expect("checked to be a target error"))
            }
            Err(e) => eprintln!("vmdbg-vmm: gdb connection ended ({e}); the guest runs on"),
        }
        target.release()?;
    }
}

/// While the guest runs with no debugger, waits for either a debugger to
/// connect (`None`) or the VM to end.
fn wait_for_connection_or_end(target: &mut VmTarget, listener: &Listener) -> Result<Option<VmEnd>> {
    while target.vm.any_running() {
        let ready = poll_readable(&[listener.raw_fd(), target.vm.events_fd()])
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

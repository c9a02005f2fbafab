//! One debugger's session, served through gdbstub by both stubs: this
//! module owns keeping the session alive across everything that ends a
//! gdbstub run without being the debugger's or the target's fault to the
//! point of ending it — a packet gdbstub cannot parse (`vCont;q`,
//! `M0,4:zz`), a packet it did not expect in its state, a number that does
//! not fit the target (`Z0,<20 hex digits>,1`), an oversized packet. Each
//! gets an `E.<why>` reply and a new gdbstub run picks the connection up
//! where the last one stopped; the target is only touched through
//! [`Resync`], to stop it if it was running.
//!
//! What must not happen here: retrying forever on an error that comes back
//! without the client sending anything (a stub that cannot start), or
//! hiding a target's or the connection's failure.

use std::cell::RefCell;
use std::fmt::Display;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;

use gdbstub::common::Tid;
use gdbstub::conn::{Connection, ConnectionExt};
use gdbstub::stub::run_blocking::BlockingEventLoop;
use gdbstub::stub::{DisconnectReason, GdbStub, MultiThreadStopReason};
use gdbstub::target::ext::breakpoints::WatchKind;
use gdbstub::target::Target;

use crate::conn::{RspConnection, RspStream};

/// The connection, shared between the serve loop and each gdbstub run (a
/// run consumes its connection; the next run needs the same bytes).
pub struct SharedConn<S: RspStream>(Rc<RefCell<RspConnection<S>>>);

impl<S: RspStream> Clone for SharedConn<S> {
    fn clone(&self) -> Self {
        Self(Rc::clone(&self.0))
    }
}

impl<S: RspStream> SharedConn<S> {
    pub fn new(stream: S) -> Self {
        Self(Rc::new(RefCell::new(RspConnection::new(stream))))
    }

    pub fn has_buffered_input(&self) -> bool {
        self.0.borrow().has_buffered_input()
    }

    pub fn raw_fd(&self) -> RawFd {
        self.0.borrow().raw_fd()
    }

    /// Sends a packet of our own (outside gdbstub), e.g. a stop reply.
    pub fn send_packet(&self, body: &str) -> io::Result<()> {
        self.0.borrow_mut().send_packet(body)
    }

    /// Bytes taken from the stream so far: whether a failed gdbstub run
    /// read anything (a packet it refused) or failed on its own.
    pub fn bytes_read(&self) -> u64 {
        self.0.borrow().bytes_read()
    }
}

impl<S: RspStream> Connection for SharedConn<S> {
    type Error = io::Error;

    fn write(&mut self, byte: u8) -> io::Result<()> {
        Connection::write(&mut *self.0.borrow_mut(), byte)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        Connection::write_all(&mut *self.0.borrow_mut(), buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Connection::flush(&mut *self.0.borrow_mut())
    }
}

impl<S: RspStream> ConnectionExt for SharedConn<S> {
    fn read(&mut self) -> io::Result<u8> {
        ConnectionExt::read(&mut *self.0.borrow_mut())
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        ConnectionExt::peek(&mut *self.0.borrow_mut())
    }
}

/// What a target does when its session goes on in a new gdbstub run.
pub trait Resync: Target {
    /// A new run believes the target is stopped. If it runs (the refused
    /// packet came while it ran), stop it and return why it stopped: the
    /// client is waiting for a stop reply.
    fn resync(&mut self) -> Result<Option<MultiThreadStopReason<u64>>, Self::Error>;
}

#[derive(Debug)]
pub enum SessionError<E> {
    Target(E),
    Connection(io::Error),
    /// gdbstub failed without reading anything: the stub itself is broken.
    Stub(String),
}

impl<E: Display> Display for SessionError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Target(e) => write!(f, "{e}"),
            Self::Connection(e) => write!(f, "the debugger's connection failed: {e}"),
            Self::Stub(e) => write!(f, "gdb stub: {e}"),
        }
    }
}

/// Serves the debugger on `conn` until it detaches or kills the target or
/// the target ends; see the module doc for what does not end it.
pub fn serve<L, S>(
    conn: &SharedConn<S>,
    target: &mut L::Target,
) -> Result<DisconnectReason, SessionError<<L::Target as Target>::Error>>
where
    S: RspStream,
    L: BlockingEventLoop<Connection = SharedConn<S>>,
    L::Target: Resync,
    <L::Target as Target>::Error: Display,
{
    loop {
        let read_before = conn.bytes_read();
        let e = match GdbStub::new(conn.clone()).run_blocking::<L>(target) {
            Ok(reason) => return Ok(reason),
            Err(e) => e,
        };
        if e.is_target_error() {
            let e = e.into_target_error().expect("checked to be a target error");
            return Err(SessionError::Target(e));
        }
        if e.is_connection_error() {
            let (e, _) = e
                .into_connection_error()
                .expect("checked to be a connection error");
            return Err(SessionError::Connection(e));
        }
        if conn.bytes_read() == read_before {
            return Err(SessionError::Stub(e.to_string()));
        }
        if let Some(end) = recover(conn, target, &e)? {
            return Ok(end);
        }
    }
}

/// After gdbstub gave up on a packet (having read some input, so the
/// client sent something it could not take): the client gets
/// `E.<why>`; a running target is stopped and the stop sent (the client
/// waits for one); the session's state (qSupported, Hg, Hc) is replayed
/// into the connection for the next gdbstub run. Some(end) when the stop
/// ended the target. For event loops of their own (a state machine) as
/// much as for [`serve`].
pub fn recover<S, T>(
    conn: &SharedConn<S>,
    target: &mut T,
    error: &dyn Display,
) -> Result<Option<DisconnectReason>, SessionError<T::Error>>
where
    S: RspStream,
    T: Resync,
{
    conn.0
        .borrow_mut()
        .reply_error(&format!("malformed or unexpected packet ({error})"))
        .map_err(SessionError::Connection)?;
    if let Some(stop) = target.resync().map_err(SessionError::Target)? {
        let (reply, end) = stop_reply(&stop);
        conn.send_packet(&reply).map_err(SessionError::Connection)?;
        if end.is_some() {
            return Ok(end);
        }
    }
    conn.0.borrow_mut().replay_session_state();
    Ok(None)
}

/// The stop reply a client waits for after a resume, for a stop reported
/// outside gdbstub (see [`Resync`]), and the session's end if it ended.
pub fn stop_reply(reason: &MultiThreadStopReason<u64>) -> (String, Option<DisconnectReason>) {
    use MultiThreadStopReason as R;
    let trap = |tid: Tid, extra: String| format!("T05thread:{tid:x};{extra}");
    let reply = match reason {
        R::Exited(code) => {
            return (
                format!("W{code:02x}"),
                Some(DisconnectReason::TargetExited(*code)),
            )
        }
        R::Terminated(sig) => {
            return (
                format!("X{:02x}", sig.0),
                Some(DisconnectReason::TargetTerminated(*sig)),
            )
        }
        R::SignalWithThread { tid, signal } => format!("T{:02x}thread:{tid:x};", signal.0),
        R::Signal(signal) => format!("S{:02x}", signal.0),
        R::SwBreak(tid) => trap(*tid, "swbreak:;".into()),
        R::HwBreak(tid) => trap(*tid, "hwbreak:;".into()),
        R::Watch { tid, kind, addr } => {
            let name = match kind {
                WatchKind::Write => "watch",
                WatchKind::Read => "rwatch",
                WatchKind::ReadWrite => "awatch",
            };
            trap(*tid, format!("{name}:{addr:x};"))
        }
        // A step's end, or stops these stubs do not report (syscalls,
        // libraries, replay): a plain SIGTRAP.
        _ => "S05".into(),
    };
    (reply, None)
}

//! `vmdbg-agent gdbserver`: launch a program and serve one debugger on a
//! TCP address or a unix socket, like gdbserver. Exits with the program's
//! status.

use std::ffi::OsString;
use std::process::ExitStatus;

use super::{DebugError, Launch, Session};

pub use vmdbg_gdb_common::listen::Listen;
use vmdbg_gdb_common::listen::Listener;

/// Launches `argv`, prints `listening on ADDR` on stderr (with the real
/// port when 0 was asked for), serves the first debugger that connects.
pub fn run(listen: &Listen, argv: Vec<OsString>) -> Result<ExitStatus, DebugError> {
    let session = Session::launch(Launch {
        argv,
        ..Launch::default()
    })?;
    let pid = session.pid();
    let listener = Listener::bind(listen).map_err(|e| DebugError::Connection(e.to_string()))?;
    let shown = match listen {
        Listen::Tcp(_) => listener.target_remote_address(),
        Listen::Unix(_) => format!("unix:{}", listener.target_remote_address()),
    };
    eprintln!("vmdbg-agent gdbserver: process {pid} created; listening on {shown}");
    let stream = listener
        .accept()
        .map_err(|e| DebugError::Connection(format!("accept: {e}")))?;
    // One debugger per run: the socket file goes as soon as it is taken.
    drop(listener);
    session.serve(stream)
}

//! `vmdbg-agent gdbserver`: launch a program and serve one debugger on a
//! TCP address or a unix socket, like gdbserver. Exits with the program's
//! status.

use std::ffi::OsString;
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::ExitStatus;

use super::{DebugError, Launch, Session};

/// Where to wait for the debugger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    Tcp(String),
    Unix(PathBuf),
}

impl std::str::FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            return match path {
                "" => Err("unix: needs a path, e.g. unix:/tmp/vmdbg-agent.sock".into()),
                p => Ok(Listen::Unix(p.into())),
            };
        }
        let addr = if s.starts_with(':') {
            format!("127.0.0.1{s}")
        } else {
            s.to_string()
        };
        match addr.rsplit_once(':') {
            Some((_, port)) if port.parse::<u16>().is_ok() => Ok(Listen::Tcp(addr)),
            _ => Err(format!(
                "`{s}` is not an address: use HOST:PORT, :PORT or unix:PATH"
            )),
        }
    }
}

/// Launches `argv`, prints `listening on ADDR` on stderr (with the real
/// port when 0 was asked for), serves the first debugger that connects.
pub fn run(listen: &Listen, argv: Vec<OsString>) -> Result<ExitStatus, DebugError> {
    let io = |what: String| move |e: std::io::Error| DebugError::Connection(format!("{what}: {e}"));
    let session = Session::launch(Launch {
        argv,
        ..Launch::default()
    })?;
    let pid = session.pid();
    match listen {
        Listen::Tcp(addr) => {
            let listener =
                TcpListener::bind(addr).map_err(io(format!("cannot listen on {addr}")))?;
            let bound = listener.local_addr().map_err(io("local_addr".into()))?;
            eprintln!("vmdbg-agent gdbserver: process {pid} created; listening on {bound}");
            let (stream, _) = listener.accept().map_err(io("accept".into()))?;
            let _ = stream.set_nodelay(true);
            session.serve(stream)
        }
        Listen::Unix(path) => {
            let _ = std::fs::remove_file(path);
            let listener = UnixListener::bind(path)
                .map_err(io(format!("cannot listen on {}", path.display())))?;
            eprintln!(
                "vmdbg-agent gdbserver: process {pid} created; listening on unix:{}",
                path.display()
            );
            let accepted = listener.accept().map_err(io("accept".into()));
            let _ = std::fs::remove_file(path);
            session.serve(accepted?.0)
        }
    }
}

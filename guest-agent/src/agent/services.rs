//! Services reachable through `OpenChannel`: in-guest endpoints that speak
//! a raw byte stream, such as a debugger's gdb remote protocol. Each gets
//! one end of a socket pair; the agent relays the other end to the host as
//! data frames on the channel's stream. A service that wants to serve RSP
//! can hand its `UnixStream` straight to gdbstub (it is a `Connection`).
//!
//! To add one (e.g. the ptrace debugger's `gdbserver`), add a line to
//! [`SERVICES`].

use std::os::unix::net::UnixStream;

use super::{spawn_pipe_writer, Connection, Sink};
use crate::protocol::*;

/// A service: runs on its own thread with its end of the channel and the
/// arguments from `OpenChannel`; returning ends the channel.
pub type Service = fn(UnixStream, Vec<String>) -> anyhow::Result<()>;

pub const SERVICES: &[(&str, Service)] = &[
    ("echo", echo),
    ("gdbserver", super::debug_service::gdbserver),
    ("program-output", super::debug_service::program_output),
];

pub fn names() -> Vec<&'static str> {
    SERVICES.iter().map(|(name, _)| *name).collect()
}

/// Returns every byte it receives: tests the channel path end to end.
fn echo(mut stream: UnixStream, _args: Vec<String>) -> anyhow::Result<()> {
    let mut reader = stream.try_clone()?;
    std::io::copy(&mut reader, &mut stream)?;
    Ok(())
}

pub(super) fn open(
    conn: &Connection,
    stream: u32,
    name: &str,
    args: Vec<String>,
) -> Result<(), AgentError> {
    let Some((_, service)) = SERVICES.iter().find(|(n, _)| *n == name) else {
        return Err(AgentError::new(
            ErrorKind::NotFound,
            format!(
                "no service `{name}` in this agent (it has: {})",
                names().join(", ")
            ),
        ));
    };
    let (ours, theirs) = UnixStream::pair().map_err(|e| AgentError::io("socketpair", &e))?;
    let to_service = ours.try_clone().map_err(|e| AgentError::io("dup", &e))?;
    conn.claim_stream(
        stream,
        Sink::Pipe(spawn_pipe_writer(to_service, |s: UnixStream| {
            let _ = s.shutdown(std::net::Shutdown::Write);
        })),
    )?;
    let service = *service;
    let service_name = name.to_string();
    std::thread::spawn(move || {
        if let Err(e) = service(theirs, args) {
            eprintln!("vmdbg-agent: service {service_name}: {e:#}");
        }
    });
    let conn = conn.clone();
    std::thread::spawn(move || conn.pump(stream, ours));
    Ok(())
}

//! The agent's side of the protocol: serves one connection (any byte
//! stream) by running programs, moving files and opening channels to
//! in-guest services. Transport setup (virtio-serial port, vsock, stdio)
//! lives in [`transport`]; this module must not care which one it is on.
//!
//! Threads, not async: a pump thread per output stream, a writer thread per
//! input stream and a waiter per program, so a program that stops reading
//! its stdin never blocks the connection's reader.

mod debug_service;
mod exec;
mod files;
pub mod services;
pub mod transport;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{mpsc, Arc, Mutex};

use crate::protocol::*;

/// What data frames arriving on a host-opened stream feed.
enum Sink {
    /// A writer thread (program stdin, a channel to a service); `None`
    /// tells it the host closed the stream.
    Pipe(mpsc::Sender<Option<Vec<u8>>>),
    /// A file being written by PutFile.
    File(Box<files::Incoming>),
}

/// A program started by Exec.
struct Program {
    status: Option<ExitStatus>,
    /// Request ids of Wait requests to answer when it ends.
    waiters: Vec<u32>,
}

#[derive(Default)]
struct State {
    sinks: HashMap<u32, Sink>,
    programs: HashMap<u32, Program>,
}

/// One served connection; cloned into the threads that answer for it.
#[derive(Clone)]
pub(crate) struct Connection {
    writer: Arc<FrameWriter>,
    state: Arc<Mutex<State>>,
}

impl Connection {
    fn reply(&self, id: u32, reply: Result<Reply, AgentError>) {
        // A failed send means the host is gone; the reader will see it.
        let _ = self.writer.send_control(id, &Message::Reply(reply));
    }

    fn event(&self, event: Event) {
        let _ = self.writer.send_control(0, &Message::Event(event));
    }

    fn protocol_error(&self, message: String, stream: Option<u32>) {
        eprintln!("vmdbg-agent: protocol error: {message}");
        self.event(Event::ProtocolError { message, stream });
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a sink for a host stream, refusing ids in use.
    fn claim_stream(&self, stream: u32, sink: Sink) -> Result<(), AgentError> {
        if stream == CONTROL_STREAM {
            return Err(AgentError::new(
                ErrorKind::StreamInUse,
                "stream 0 is the control stream",
            ));
        }
        let mut state = self.state();
        if state.sinks.contains_key(&stream) {
            return Err(AgentError::new(
                ErrorKind::StreamInUse,
                format!("stream {stream} is already open"),
            ));
        }
        state.sinks.insert(stream, sink);
        Ok(())
    }

    /// Sends everything `source` produces as data frames on `stream`, then
    /// a close frame. Read errors end the stream (a pty master reports EIO
    /// once the program's side is closed: that is its end of file).
    fn pump(&self, stream: u32, mut source: impl Read) {
        let mut buf = vec![0u8; DATA_CHUNK];
        loop {
            match source.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if self
                        .writer
                        .send(&Frame::data(stream, buf[..n].to_vec()))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let _ = self.writer.send(&Frame::close(stream));
    }
}

/// Starts a thread writing what the host sends on a stream into `target`;
/// `finish` runs when the host closes the stream (e.g. a socket shutdown).
fn spawn_pipe_writer<W: Write + Send + 'static>(
    mut target: W,
    finish: fn(W),
) -> mpsc::Sender<Option<Vec<u8>>> {
    let (tx, rx) = mpsc::channel::<Option<Vec<u8>>>();
    std::thread::spawn(move || {
        let mut broken = false;
        while let Ok(Some(bytes)) = rx.recv() {
            // After EPIPE keep draining so the sender never blocks.
            if !broken
                && target
                    .write_all(&bytes)
                    .and_then(|_| target.flush())
                    .is_err()
            {
                broken = true;
            }
        }
        finish(target);
    });
    tx
}

/// The capabilities this agent reports in its Hello reply.
pub fn capabilities() -> Vec<String> {
    let mut caps: Vec<String> = [
        "exec",
        "exec.pty",
        "signal",
        "wait",
        "file.put",
        "file.get",
        "poweroff",
        "channel",
        "clock.set",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    caps.extend(services::names().iter().map(|s| format!("service.{s}")));
    caps
}

/// Serves one connection until its byte stream ends. Sends `Ready` first.
pub fn serve(reader: impl Read, writer: impl Write + Send + 'static) -> std::io::Result<()> {
    let conn = Connection {
        writer: Arc::new(FrameWriter::new(writer)),
        state: Default::default(),
    };
    conn.event(Event::Ready {
        agent_version: env!("CARGO_PKG_VERSION").into(),
        uptime_ms: uptime_ms(),
    });
    let mut frames = FrameReader::new(reader);
    loop {
        let frame = match frames.read_frame() {
            Ok(Ok(frame)) => frame,
            Ok(Err(bad)) => {
                conn.protocol_error(bad.to_string(), bad.stream());
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        };
        match frame.kind {
            FrameKind::Control if frame.stream == CONTROL_STREAM => {
                match decode_control(&frame.payload) {
                    Ok((id, Message::Request(request))) => handle_request(&conn, id, request),
                    Ok((_, other)) => conn
                        .protocol_error(format!("the agent takes requests, not {other:?}"), None),
                    Err((Some(id), why)) => {
                        conn.reply(id, Err(AgentError::new(ErrorKind::BadRequest, why)))
                    }
                    Err((None, why)) => conn.protocol_error(why, None),
                }
            }
            FrameKind::Control => conn.protocol_error(
                format!(
                    "control frame on stream {} (only 0 carries control)",
                    frame.stream
                ),
                Some(frame.stream),
            ),
            FrameKind::Data | FrameKind::Close if frame.stream == CONTROL_STREAM => {
                conn.protocol_error("data or close frame on the control stream".into(), Some(0))
            }
            FrameKind::Data => stream_data(&conn, frame.stream, frame.payload),
            FrameKind::Close => stream_close(&conn, frame.stream),
        }
    }
    // The host is gone: close what it was feeding so programs see EOF.
    let sinks: Vec<(u32, Sink)> = conn.state().sinks.drain().collect();
    for (_, sink) in sinks {
        match sink {
            Sink::Pipe(tx) => drop(tx.send(None)),
            Sink::File(incoming) => (*incoming).abandon(),
        }
    }
    Ok(())
}

fn stream_data(conn: &Connection, stream: u32, bytes: Vec<u8>) {
    let mut state = conn.state();
    match state.sinks.get_mut(&stream) {
        Some(Sink::Pipe(tx)) => drop(tx.send(Some(bytes))),
        Some(Sink::File(incoming)) => incoming.write(&bytes),
        None => {
            drop(state);
            conn.protocol_error(
                format!("data on stream {stream}, which is not open"),
                Some(stream),
            );
        }
    }
}

fn stream_close(conn: &Connection, stream: u32) {
    let sink = conn.state().sinks.remove(&stream);
    match sink {
        Some(Sink::Pipe(tx)) => drop(tx.send(None)),
        Some(Sink::File(incoming)) => {
            let (id, result) = (*incoming).finish();
            conn.reply(id, result);
        }
        // Closing a stream twice, or one we never knew, harms nothing.
        None => {}
    }
}

fn handle_request(conn: &Connection, id: u32, request: Request) {
    match request {
        Request::Hello {
            versions,
            capabilities: _,
        } => {
            let common = versions
                .iter()
                .copied()
                .filter(|v| PROTOCOL_VERSIONS.contains(v))
                .max();
            conn.reply(
                id,
                match common {
                    Some(version) => Ok(Reply::Hello {
                        version,
                        capabilities: capabilities(),
                        agent_version: env!("CARGO_PKG_VERSION").into(),
                        kernel: kernel_release(),
                    }),
                    None => Err(AgentError::new(
                        ErrorKind::BadRequest,
                        format!("no common protocol version: host offers {versions:?}, agent speaks {PROTOCOL_VERSIONS:?}"),
                    )),
                },
            );
        }
        Request::Exec(exec) => {
            let result = exec::start(conn, exec);
            conn.reply(id, result);
        }
        Request::Signal { pid, signal, group } => {
            let known = conn.state().programs.contains_key(&pid);
            let result = if !known {
                Err(AgentError::new(
                    ErrorKind::NotFound,
                    format!("no program with pid {pid} was started here"),
                ))
            } else {
                let target = if group { -(pid as i32) } else { pid as i32 };
                // SAFETY: kill has no memory-safety preconditions.
                if unsafe { libc::kill(target, signal) } == 0 {
                    Ok(Reply::Done)
                } else {
                    Err(AgentError::io("kill", &std::io::Error::last_os_error()))
                }
            };
            conn.reply(id, result);
        }
        Request::Wait { pid } => {
            let mut state = conn.state();
            match state.programs.get_mut(&pid) {
                None => {
                    drop(state);
                    conn.reply(
                        id,
                        Err(AgentError::new(
                            ErrorKind::NotFound,
                            format!("no program with pid {pid}"),
                        )),
                    );
                }
                Some(Program {
                    status: Some(status),
                    ..
                }) => {
                    let status = *status;
                    drop(state);
                    conn.reply(id, Ok(Reply::Exited(status)));
                }
                Some(program) => program.waiters.push(id),
            }
        }
        Request::PutFile {
            path,
            mode,
            size,
            sha256,
            stream,
        } => {
            match files::Incoming::create(id, &path, mode, size, sha256) {
                Ok(incoming) => {
                    if let Err(e) = conn.claim_stream(stream, Sink::File(Box::new(incoming))) {
                        conn.reply(id, Err(e));
                    }
                }
                Err(e) => {
                    // The host sends the content anyway; swallow it so the
                    // answer comes once, at the close.
                    let tx = spawn_pipe_writer(std::io::sink(), drop);
                    let _ = conn.claim_stream(stream, Sink::Pipe(tx));
                    conn.reply(id, Err(e));
                }
            }
        }
        Request::GetFile { path, stream } => {
            let conn = conn.clone();
            std::thread::spawn(move || {
                let result = files::send(&conn, &path, stream);
                conn.reply(id, result);
            });
        }
        Request::OpenChannel {
            stream,
            service,
            args,
        } => {
            let result = services::open(conn, stream, &service, args);
            conn.reply(id, result.map(|()| Reply::Done));
        }
        Request::Poweroff => {
            conn.reply(id, Ok(Reply::Done));
            power_off();
        }
        Request::SetClock { unix_ns } => conn.reply(id, set_clock(unix_ns).map(|()| Reply::Done)),
    }
}

fn set_clock(unix_ns: u64) -> Result<(), AgentError> {
    let time = libc::timespec {
        tv_sec: (unix_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (unix_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: clock_settime reads the timespec we pass and nothing else.
    if unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &time) } != 0 {
        return Err(AgentError::new(
            ErrorKind::Io,
            format!("set the clock: {}", std::io::Error::last_os_error()),
        ));
    }
    Ok(())
}

fn power_off() {
    // SAFETY: sync and reboot have no memory-safety preconditions; reboot
    // only returns on failure (not root, or in a container).
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    eprintln!(
        "vmdbg-agent: poweroff failed: {}",
        std::io::Error::last_os_error()
    );
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn uptime_ms() -> u64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|f| f.parse::<f64>().ok())
        })
        .map(|secs| (secs * 1000.0) as u64)
        .unwrap_or(0)
}

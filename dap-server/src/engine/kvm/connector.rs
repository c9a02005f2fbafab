//! The agent's connection under the KVM engine, made in the background.
//!
//! The agent listens on vsock only once the guest has booted, and a
//! `CONNECT` the guest refuses ends in a reset (the VMM closes the unix
//! stream), so the connector retries until the guest says `OK`. The
//! [`AgentClient`](vmdbg_agent::client::AgentClient) is created at boot all
//! the same: its reader and writer block until the connection is made, or
//! fail once the connector is stopped (the VM ended or is being shut down).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const RETRY_EVERY: Duration = Duration::from_millis(10);

enum State {
    Waiting,
    Connected(UnixStream),
    Stopped,
}

#[derive(Clone)]
struct Shared(Arc<(Mutex<State>, Condvar)>);

impl Shared {
    fn set(&self, state: State) {
        let (lock, ready) = &*self.0;
        let mut current = lock.lock().unwrap();
        if matches!(*current, State::Waiting) {
            *current = state;
            ready.notify_all();
        }
    }
    fn stopped(&self) -> bool {
        matches!(*self.0 .0.lock().unwrap(), State::Stopped)
    }
    /// The connection (a clone of it), once made.
    fn stream(&self) -> std::io::Result<UnixStream> {
        let (lock, ready) = &*self.0;
        let mut current = lock.lock().unwrap();
        loop {
            match &*current {
                State::Waiting => current = ready.wait(current).unwrap(),
                State::Connected(stream) => return stream.try_clone(),
                State::Stopped => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::NotConnected,
                        "the VM ended before its agent accepted a vsock connection",
                    ))
                }
            }
        }
    }
}

/// Stops the connector; a connection already made is left to its users.
pub struct Handle(Shared);

impl Handle {
    pub fn stop(&self) {
        self.0.set(State::Stopped);
    }
}

/// The read half; blocks until connected.
pub struct Reader(Shared, Option<UnixStream>);
/// The write half; blocks until connected.
pub struct Writer(Shared, Option<UnixStream>);

fn half<'a>(
    shared: &Shared,
    slot: &'a mut Option<UnixStream>,
) -> std::io::Result<&'a mut UnixStream> {
    if slot.is_none() {
        *slot = Some(shared.stream()?);
    }
    Ok(slot.as_mut().expect("set above"))
}

impl Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        half(&self.0, &mut self.1)?.read(buf)
    }
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        half(&self.0, &mut self.1)?.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        half(&self.0, &mut self.1)?.flush()
    }
}

/// Starts connecting to the guest's vsock `port` through the VMM's unix
/// socket `uds` (which appears once the VMM is up).
pub fn connect_agent(uds: PathBuf, port: u32) -> (Reader, Writer, Handle) {
    let shared = Shared(Arc::new((Mutex::new(State::Waiting), Condvar::new())));
    let worker = shared.clone();
    std::thread::Builder::new()
        .name("agent-connector".into())
        .spawn(move || {
            let started = Instant::now();
            let mut attempts = 0u32;
            while !worker.stopped() {
                attempts += 1;
                if let Some(stream) = try_connect(&uds, port) {
                    tracing::debug!(
                        "agent connected over vsock port {port} after {:?} ({attempts} attempts)",
                        started.elapsed()
                    );
                    worker.set(State::Connected(stream));
                    return;
                }
                std::thread::sleep(RETRY_EVERY);
            }
        })
        .expect("spawn the agent connector");
    (
        Reader(shared.clone(), None),
        Writer(shared.clone(), None),
        Handle(shared),
    )
}

/// One attempt: `CONNECT <port>\n`, then `OK <host port>\n` if the guest
/// accepts, or end of stream if it refuses.
fn try_connect(uds: &Path, port: u32) -> Option<UnixStream> {
    let mut stream = UnixStream::connect(uds).ok()?;
    stream
        .write_all(format!("CONNECT {port}\n").as_bytes())
        .ok()?;
    // Byte by byte: what follows the line is the agent's.
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < 64 {
        match stream.read(&mut byte) {
            Ok(1) if byte[0] == b'\n' => break,
            Ok(1) => line.push(byte[0]),
            _ => return None,
        }
    }
    if line.starts_with(b"OK ") {
        Some(stream)
    } else {
        tracing::warn!(
            "the VMM answered CONNECT {port} with {:?}",
            String::from_utf8_lossy(&line)
        );
        None
    }
}

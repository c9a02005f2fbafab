//! The control API's socket: a unix-socket HTTP/1.1 server that never
//! blocks the control loop. Clients are non-blocking; each readable one
//! is read, its complete requests are handed to the caller's handler one
//! at a time and answered in order. A client that sends garbage gets a 400
//! and is closed; the VM is not affected.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use super::http::{self, Parse, Request, Response};
use crate::error::{Error, Result};

/// More open connections than this are refused (closed at once).
const MAX_CLIENTS: usize = 16;

struct Client {
    stream: UnixStream,
    buf: Vec<u8>,
    sent_continue: bool,
    closed: bool,
}

pub struct Server {
    listener: UnixListener,
    path: PathBuf,
    clients: Vec<Client>,
}

impl Server {
    /// Listens on `path` (a stale socket file there is replaced).
    pub fn bind(path: &Path) -> Result<Self> {
        let err = |e: std::io::Error| Error::Api(format!("{}: {e}", path.display()));
        if std::fs::symlink_metadata(path)
            .map(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_socket()
            })
            .unwrap_or(false)
        {
            let _ = std::fs::remove_file(path);
        }
        let listener = vmdbg_gdb_common::listen::bind_unix_owner_only(path).map_err(err)?;
        listener.set_nonblocking(true).map_err(err)?;
        Ok(Self {
            listener,
            path: path.to_path_buf(),
            clients: Vec::new(),
        })
    }

    /// Descriptors to poll: the listener and every client.
    pub fn fds(&self) -> Vec<RawFd> {
        std::iter::once(self.listener.as_raw_fd())
            .chain(self.clients.iter().map(|c| c.stream.as_raw_fd()))
            .collect()
    }

    /// Accepts new clients, reads what they sent and answers every
    /// complete request with `handle`. Never blocks.
    pub fn serve(&mut self, mut handle: impl FnMut(&Request) -> Response) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if self.clients.len() >= MAX_CLIENTS || stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    self.clients.push(Client {
                        stream,
                        buf: Vec::new(),
                        sent_continue: false,
                        closed: false,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::warn!("control API: accept: {e}");
                    break;
                }
            }
        }
        for client in &mut self.clients {
            client.read_and_answer(&mut handle);
        }
        self.clients.retain(|c| !c.closed);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Client {
    fn read_and_answer(&mut self, handle: &mut impl FnMut(&Request) -> Response) {
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.closed = true;
                    break;
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    if self.buf.len() > http::MAX_HEAD + http::MAX_BODY + 4 {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.closed = true;
                    return;
                }
            }
        }
        // Requests already received are answered even if the client has
        // half-closed its side.
        loop {
            match http::parse(&self.buf) {
                Parse::Incomplete { expect_continue } => {
                    if expect_continue && !self.sent_continue {
                        self.sent_continue = true;
                        self.send(http::CONTINUE);
                    }
                    break;
                }
                Parse::Done(request, used) => {
                    self.buf.drain(..used);
                    self.sent_continue = false;
                    let response = handle(&request);
                    self.send(&response.to_bytes(request.close));
                    if request.close {
                        self.closed = true;
                        break;
                    }
                }
                Parse::Bad { status, why } => {
                    self.send(&Response::fault(status, why).to_bytes(true));
                    self.closed = true;
                    break;
                }
            }
        }
    }

    /// Responses are small: a client that does not take one at once is
    /// dropped rather than let stall the VM.
    fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.set_nonblocking(false);
        let _ = self
            .stream
            .set_write_timeout(Some(std::time::Duration::from_secs(1)));
        if self.stream.write_all(bytes).is_err() {
            self.closed = true;
        }
        let _ = self.stream.set_nonblocking(true);
    }
}

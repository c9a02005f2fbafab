//! The byte stream to gdb: TCP or a unix socket, buffered both ways so a
//! packet costs one system call instead of one per byte.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;

use gdbstub::conn::{Connection, ConnectionExt};

pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

pub struct GdbConnection {
    stream: Stream,
    inbox: Vec<u8>,
    read_at: usize,
    outbox: Vec<u8>,
}

impl GdbConnection {
    pub fn new(stream: Stream) -> Self {
        if let Stream::Tcp(s) = &stream {
            let _ = s.set_nodelay(true);
        }
        Self {
            stream,
            inbox: Vec::new(),
            read_at: 0,
            outbox: Vec::new(),
        }
    }

    pub fn raw_fd(&self) -> RawFd {
        match &self.stream {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }

    /// Whether bytes are already buffered, so no poll() is needed.
    pub fn has_buffered_input(&self) -> bool {
        self.read_at < self.inbox.len()
    }

    fn fill(&mut self) -> std::io::Result<()> {
        let mut buf = [0u8; 4096];
        let n = match &mut self.stream {
            Stream::Tcp(s) => Read::read(s, &mut buf)?,
            Stream::Unix(s) => Read::read(s, &mut buf)?,
        };
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.inbox.clear();
        self.inbox.extend_from_slice(&buf[..n]);
        self.read_at = 0;
        Ok(())
    }
}

impl Connection for GdbConnection {
    type Error = std::io::Error;

    fn write(&mut self, byte: u8) -> std::io::Result<()> {
        self.outbox.push(byte);
        Ok(())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.outbox.extend_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.stream {
            Stream::Tcp(s) => Write::write_all(s, &self.outbox)?,
            Stream::Unix(s) => Write::write_all(s, &self.outbox)?,
        }
        self.outbox.clear();
        Ok(())
    }
}

impl ConnectionExt for GdbConnection {
    fn read(&mut self) -> std::io::Result<u8> {
        if !self.has_buffered_input() {
            self.fill()?;
        }
        let b = self.inbox[self.read_at];
        self.read_at += 1;
        Ok(b)
    }

    fn peek(&mut self) -> std::io::Result<Option<u8>> {
        Ok(self.inbox.get(self.read_at).copied())
    }
}

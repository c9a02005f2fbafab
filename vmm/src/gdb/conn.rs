//! The byte stream to gdb: TCP or a unix socket, buffered both ways so a
//! packet costs one system call instead of one per byte.
//!
//! Incoming packets are checked here before gdbstub sees them, because
//! gdbstub ends the whole session on a bad checksum. A corrupt packet is
//! answered the way the protocol asks — a NAK (`-`), so the client sends it
//! again — or, once acks are off, an error reply naming the problem.

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
    framer: PacketFramer,
}

/// Splits the incoming bytes into what passes straight through (acks,
/// Ctrl-C) and whole packets, which pass only with a matching checksum.
#[derive(Default)]
struct PacketFramer {
    /// The packet being received, from `$` on; empty between packets.
    partial: Vec<u8>,
    /// Checksum digits still expected after the `#`.
    checksum_left: Option<u8>,
    /// Set once the client sent `QStartNoAckMode` and it was accepted: a NAK
    /// would be ignored, so a corrupt packet gets an error reply instead.
    no_ack: bool,
}

/// What a corrupt packet gets back.
#[derive(Debug, PartialEq, Eq)]
enum Rejection {
    Nak,
    ErrorReply,
}

impl PacketFramer {
    /// Appends the bytes that may go to gdbstub to `passed` and returns one
    /// rejection per corrupt packet seen.
    fn feed(&mut self, bytes: &[u8], passed: &mut Vec<u8>) -> Vec<Rejection> {
        let mut rejected = Vec::new();
        for &b in bytes {
            if self.partial.is_empty() {
                if b == b'$' {
                    self.partial.push(b);
                } else {
                    passed.push(b);
                }
                continue;
            }
            self.partial.push(b);
            match self.checksum_left {
                None if b == b'#' => self.checksum_left = Some(2),
                None => {}
                Some(2) => self.checksum_left = Some(1),
                Some(_) => {
                    self.checksum_left = None;
                    let packet = std::mem::take(&mut self.partial);
                    if checksum_matches(&packet) {
                        if packet.starts_with(b"$QStartNoAckMode#") {
                            self.no_ack = true;
                        }
                        passed.extend_from_slice(&packet);
                    } else if self.no_ack {
                        rejected.push(Rejection::ErrorReply);
                    } else {
                        rejected.push(Rejection::Nak);
                    }
                }
            }
        }
        rejected
    }
}

/// `$body#hh`: whether hh is the modulo-256 sum of body.
fn checksum_matches(packet: &[u8]) -> bool {
    let body = &packet[1..packet.len() - 3];
    let sum = body.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    let digits = std::str::from_utf8(&packet[packet.len() - 2..]).ok();
    digits.and_then(|d| u8::from_str_radix(d, 16).ok()) == Some(sum)
}

/// `$E.<text>#hh`, gdb's textual error reply.
fn error_packet(text: &str) -> Vec<u8> {
    let body = format!("E.{text}");
    let sum = body.bytes().fold(0u8, |a, b| a.wrapping_add(b));
    format!("${body}#{sum:02x}").into_bytes()
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
            framer: PacketFramer::default(),
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
        self.read_at = 0;
        for rejection in self.framer.feed(&buf[..n], &mut self.inbox) {
            tracing::warn!("dropped a packet with a bad checksum from the debugger");
            let reply = match rejection {
                Rejection::Nak => b"-".to_vec(),
                Rejection::ErrorReply => error_packet("packet checksum mismatch; resend it"),
            };
            match &mut self.stream {
                Stream::Tcp(s) => Write::write_all(s, &reply)?,
                Stream::Unix(s) => Write::write_all(s, &reply)?,
            }
        }
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
        // A read may bring only part of a packet, or only a corrupt one.
        while !self.has_buffered_input() {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(framer: &mut PacketFramer, bytes: &[u8]) -> (Vec<u8>, Vec<Rejection>) {
        let mut passed = Vec::new();
        let rejected = framer.feed(bytes, &mut passed);
        (passed, rejected)
    }

    #[test]
    fn good_packets_and_acks_pass_even_when_split() {
        let mut f = PacketFramer::default();
        let (passed, rejected) = feed(&mut f, b"+$m100,8");
        assert_eq!((passed.as_slice(), rejected.len()), (&b"+"[..], 0));
        let (passed, rejected) = feed(&mut f, b"#62\x03");
        assert_eq!(passed, b"$m100,8#62\x03");
        assert!(rejected.is_empty());
    }

    #[test]
    fn a_bad_checksum_is_nacked_then_an_error_once_acks_are_off() {
        let mut f = PacketFramer::default();
        let (passed, rejected) = feed(&mut f, b"$m100,8#00$g#67");
        assert_eq!(passed, b"$g#67");
        assert_eq!(rejected, [Rejection::Nak]);
        feed(&mut f, b"$QStartNoAckMode#b0");
        let (passed, rejected) = feed(&mut f, b"$g#00");
        assert!(passed.is_empty());
        assert_eq!(rejected, [Rejection::ErrorReply]);
        assert!(checksum_matches(&error_packet("x")));
    }

    #[test]
    fn non_hex_checksum_digits_are_a_mismatch_not_a_panic() {
        let mut f = PacketFramer::default();
        let (passed, rejected) = feed(&mut f, b"$g#zz");
        assert!(passed.is_empty());
        assert_eq!(rejected, [Rejection::Nak]);
    }
}

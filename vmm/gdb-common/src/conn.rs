//! The byte stream to the debugger (a gdbstub `Connection`): any
//! `Read + Write` stream with a file descriptor to wait on — TCP, a unix
//! socket, a socketpair end that the agent's multiplexer feeds, a pipe pair.
//! Buffered both ways so a packet costs one system call, not one per byte.
//!
//! Packets are checked here before gdbstub sees them, because gdbstub ends
//! the whole session on a bad checksum: a corrupt packet is answered with a
//! NAK (`-`) so the client resends it, or — once acks are off — with an
//! error reply.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};

use gdbstub::conn::{Connection, ConnectionExt};

/// A readable and writable byte stream with a descriptor to poll.
pub trait RspStream: Read + Write + AsRawFd {}
impl<T: Read + Write + AsRawFd> RspStream for T {}

pub struct RspConnection<S: RspStream> {
    stream: S,
    /// Checked bytes gdbstub has not read yet.
    inbox: Vec<u8>,
    read_at: usize,
    outbox: Vec<u8>,
    /// The packet being received, from `$` up to its checksum.
    partial: Vec<u8>,
    /// Set once `QStartNoAckMode` was sent and answered: a NAK would then
    /// be ignored.
    no_ack: bool,
    /// `QStartNoAckMode` arrived; acks stop after its (acked) reply.
    no_ack_requested: bool,
    /// Where the reply being written started in `outbox` (between its `$`
    /// and its checksum), so a reply cut short by an error can be dropped.
    reply_start: Option<usize>,
    /// Checksum digits still to come in the reply being written.
    reply_checksum_left: u8,
    /// A packet went to gdbstub and gdbstub has not acked it yet.
    packet_unacked: bool,
    /// The last whole reply sent, for a client that NAKs it (gdbstub does
    /// not retransmit; it ends its run on a NAK).
    last_reply: Vec<u8>,
    /// Bytes gdbstub has read, so a run that fails without reading any is
    /// told apart from one a packet ended.
    bytes_read: u64,
    /// The last accepted `qSupported`, `Hg` and `Hc` that gdbstub answered
    /// well: the session state a new gdbstub run must be told again, or
    /// it would read registers of the wrong thread.
    remembered: [Option<Vec<u8>>; 3],
    /// The last packet accepted, if it is one of those, until its reply.
    candidate: Option<(usize, Vec<u8>)>,
    /// Replies to replayed packets still to come; they are not sent.
    replaying: usize,
    /// Where the replayed packets end in `inbox`.
    replay_end: usize,
}

/// Which [`RspConnection::remembered`] slot a packet sets.
fn state_slot(packet: &[u8]) -> Option<usize> {
    [&b"$qSupported:"[..], b"$Hg", b"$Hc"]
        .iter()
        .position(|prefix| packet.starts_with(prefix))
}

impl<S: RspStream> RspConnection<S> {
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            inbox: Vec::new(),
            read_at: 0,
            outbox: Vec::new(),
            partial: Vec::new(),
            no_ack: false,
            no_ack_requested: false,
            reply_start: None,
            reply_checksum_left: 0,
            packet_unacked: false,
            last_reply: Vec::new(),
            bytes_read: 0,
            remembered: Default::default(),
            candidate: None,
            replaying: 0,
            replay_end: 0,
        }
    }

    /// After gdbstub gave up on a packet: drops its unfinished reply and
    /// answers with an error instead, so the client can go on.
    pub fn reply_error(&mut self, why: &str) -> io::Result<()> {
        let error = error_packet(why);
        if let Some(start) = self.reply_start.take() {
            self.outbox.truncate(start);
        }
        self.reply_checksum_left = 0;
        self.candidate = None;
        if self.replaying > 0 {
            // A replayed packet failed (its thread is gone): the client
            // asked nothing, so nothing is sent, and nothing is replayed
            // again.
            self.replaying = 0;
            self.remembered = Default::default();
            let end = self.replay_end.min(self.inbox.len());
            self.read_at = self.read_at.max(end);
            return Connection::flush(self);
        }
        if self.packet_unacked && !self.no_ack {
            self.outbox.push(b'+');
        }
        self.packet_unacked = false;
        self.outbox.extend_from_slice(&error);
        self.last_reply = error;
        Connection::flush(self)
    }

    /// After a new gdbstub run took over: feeds it the remembered session
    /// state (see [`Self::remembered`]) ahead of the client's next bytes,
    /// with its replies withheld.
    pub fn replay_session_state(&mut self) {
        let replay: Vec<u8> = self
            .remembered
            .iter()
            .flatten()
            .flatten()
            .copied()
            .collect();
        self.replaying = self.remembered.iter().flatten().count();
        self.inbox
            .splice(self.read_at..self.read_at, replay.iter().copied());
        self.replay_end = self.read_at + replay.len();
    }

    /// Sends a packet of our own (outside gdbstub).
    pub fn send_packet(&mut self, body: &str) -> io::Result<()> {
        self.last_reply = framed(body);
        self.outbox.extend_from_slice(&self.last_reply);
        Connection::flush(self)
    }

    /// Tracks where replies begin and end in what gdbstub writes, and drops
    /// acks once acks are off: a gdbstub restarted after a malformed packet
    /// no longer knows they are.
    fn queue_output(&mut self, byte: u8) {
        if self.replaying > 0 && self.reply_start.is_none() && byte != b'$' {
            return; // an ack of a replayed packet
        }
        if self.reply_checksum_left > 0 {
            self.reply_checksum_left -= 1;
            if self.reply_checksum_left == 0 {
                if let Some(start) = self.reply_start.take() {
                    self.outbox.push(byte);
                    self.reply_done(start);
                    return;
                }
            }
        } else if self.reply_start.is_some() {
            if byte == b'#' {
                self.reply_checksum_left = 2;
            }
        } else if byte == b'$' {
            self.reply_start = Some(self.outbox.len());
        } else if byte == b'+' {
            self.packet_unacked = false;
            if self.no_ack {
                return;
            }
        }
        self.outbox.push(byte);
    }

    /// A whole reply now ends `outbox` at `start..`.
    fn reply_done(&mut self, start: usize) {
        if self.replaying > 0 {
            self.replaying -= 1;
            self.outbox.truncate(start);
            return;
        }
        let reply = &self.outbox[start..];
        if let Some((slot, packet)) = self.candidate.take() {
            let body = &reply[1..reply.len() - 3];
            if body == b"OK" || body.starts_with(b"PacketSize=") {
                self.remembered[slot] = Some(packet);
            }
        }
        self.last_reply = reply.to_vec();
    }

    pub fn raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    pub fn has_buffered_input(&self) -> bool {
        self.read_at < self.inbox.len()
    }

    /// Reads what the stream has (blocking until at least one byte) and
    /// keeps the acks, interrupts and well-formed packets among it.
    fn fill(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 4096];
        while !self.has_buffered_input() {
            let n = match self.stream.read(&mut buf) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.inbox.drain(..self.read_at);
            self.read_at = 0;
            for &byte in &buf[..n] {
                self.accept_byte(byte)?;
            }
        }
        Ok(())
    }

    fn accept_byte(&mut self, byte: u8) -> io::Result<()> {
        if self.partial.is_empty() {
            match byte {
                b'$' => self.partial.push(byte),
                b'-' if !self.no_ack => {
                    self.outbox.extend_from_slice(&self.last_reply);
                    return Connection::flush(self);
                }
                // Once acks are off a NAK means nothing; gdbstub would
                // take it for a retransmission request it cannot serve.
                b'-' => {}
                _ => self.inbox.push(byte),
            }
            return Ok(());
        }
        self.partial.push(byte);
        let len = self.partial.len();
        let complete = len >= 4 && self.partial[len - 3] == b'#';
        if !complete {
            // A runaway packet with no end: refuse it rather than grow forever.
            if len > MAX_PACKET {
                self.partial.clear();
                return self.reject("packet too long");
            }
            return Ok(());
        }
        let packet = std::mem::take(&mut self.partial);
        if !checksum_matches(&packet) {
            return self.reject("bad checksum");
        }
        if packet.starts_with(b"$QStartNoAckMode#") {
            self.no_ack_requested = true;
        }
        // A bare `qSupported` is valid RSP (the client claims no features)
        // but gdbstub's parser wants a list; `multiprocess-`, the only
        // feature it reads, said "no" explicitly means the same.
        let packet = if packet.starts_with(b"$qSupported#") {
            framed("qSupported:multiprocess-")
        } else {
            packet
        };
        self.candidate = state_slot(&packet).map(|slot| (slot, packet.clone()));
        self.inbox.extend_from_slice(&packet);
        self.packet_unacked = true;
        Ok(())
    }

    fn reject(&mut self, why: &str) -> io::Result<()> {
        if self.no_ack {
            self.outbox.extend_from_slice(&error_packet(why));
        } else {
            self.outbox.push(b'-');
        }
        Connection::flush(self)
    }
}

/// Longer than any packet gdb sends for this target (it is told 4096).
const MAX_PACKET: usize = 64 * 1024;

fn checksum_matches(packet: &[u8]) -> bool {
    let body = &packet[1..packet.len() - 3];
    let sum = body.iter().fold(0u8, |s, b| s.wrapping_add(*b));
    let digits = &packet[packet.len() - 2..];
    std::str::from_utf8(digits)
        .ok()
        .and_then(|d| u8::from_str_radix(d, 16).ok())
        == Some(sum)
}

/// An `E.message` reply (gdb shows the text) with its checksum. The text
/// may quote gdbstub's errors, so RSP's framing characters are replaced.
fn error_packet(text: &str) -> Vec<u8> {
    let text: String = text
        .chars()
        .map(|c| match c {
            '$' | '#' | '}' | '*' => '_',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '?',
        })
        .collect();
    framed(&format!("E.{text}"))
}

fn framed(body: &str) -> Vec<u8> {
    let sum = body.bytes().fold(0u8, |s, b| s.wrapping_add(b));
    format!("${body}#{sum:02x}").into_bytes()
}

impl<S: RspStream> Connection for RspConnection<S> {
    type Error = io::Error;

    fn write(&mut self, byte: u8) -> io::Result<()> {
        self.queue_output(byte);
        Ok(())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        buf.iter().for_each(|b| self.queue_output(*b));
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.no_ack_requested && self.reply_start.is_none() {
            self.no_ack = true;
        }
        if !self.outbox.is_empty() {
            self.stream.write_all(&self.outbox)?;
            self.outbox.clear();
        }
        self.stream.flush()
    }
}

impl<S: RspStream> ConnectionExt for RspConnection<S> {
    fn read(&mut self) -> io::Result<u8> {
        self.fill()?;
        let byte = self.inbox[self.read_at];
        self.read_at += 1;
        self.bytes_read += 1;
        Ok(byte)
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        self.fill()?;
        Ok(self.inbox.get(self.read_at).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    fn framed(body: &str) -> Vec<u8> {
        let sum = body.bytes().fold(0u8, |s, b| s.wrapping_add(b));
        format!("${body}#{sum:02x}").into_bytes()
    }

    #[test]
    fn good_packets_pass_and_bad_checksums_are_nacked() {
        let (mut client, server) = UnixStream::pair().unwrap();
        let mut conn = RspConnection::new(server);
        Write::write_all(&mut client, b"+$g#00").unwrap();
        Write::write_all(&mut client, &framed("g")).unwrap();
        let mut seen = Vec::new();
        for _ in 0..1 + framed("g").len() {
            seen.push(ConnectionExt::read(&mut conn).unwrap());
        }
        assert_eq!(seen[0], b'+');
        assert_eq!(&seen[1..], framed("g").as_slice());
        let mut nak = [0u8; 1];
        Read::read_exact(&mut client, &mut nak).unwrap();
        assert_eq!(&nak, b"-");
    }

    #[test]
    fn acks_stop_after_the_no_ack_reply_and_a_cut_reply_becomes_an_error() {
        let (mut client, server) = UnixStream::pair().unwrap();
        let mut conn = RspConnection::new(server);
        Write::write_all(&mut client, &framed("QStartNoAckMode")).unwrap();
        while ConnectionExt::read(&mut conn).unwrap() != b'#' {}
        ConnectionExt::read(&mut conn).unwrap();
        ConnectionExt::read(&mut conn).unwrap();
        // gdbstub acks the request and answers OK: both still go out.
        Connection::write_all(&mut conn, b"+$OK#9a").unwrap();
        Connection::flush(&mut conn).unwrap();
        // Then an ack and the start of a reply that is abandoned.
        Connection::write_all(&mut conn, b"+$T05thr").unwrap();
        conn.reply_error("bad").unwrap();
        drop(conn);
        let mut seen = Vec::new();
        Read::read_to_end(&mut client, &mut seen).unwrap();
        let expected = [b"+$OK#9a".to_vec(), error_packet("bad")].concat();
        assert_eq!(
            String::from_utf8_lossy(&seen),
            String::from_utf8_lossy(&expected)
        );
    }

    #[test]
    fn a_packet_split_across_reads_passes_whole() {
        let (mut client, server) = UnixStream::pair().unwrap();
        let mut conn = RspConnection::new(server);
        let packet = framed("m1000,4");
        let (head, tail) = packet.split_at(4);
        Write::write_all(&mut client, head).unwrap();
        let writer = std::thread::spawn({
            let tail = tail.to_vec();
            let mut client = client.try_clone().unwrap();
            move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                Write::write_all(&mut client, &tail).unwrap();
            }
        });
        let seen: Vec<u8> = (0..packet.len())
            .map(|_| ConnectionExt::read(&mut conn).unwrap())
            .collect();
        writer.join().unwrap();
        assert_eq!(seen, packet);
    }

    #[test]
    fn non_hex_checksum_digits_are_a_mismatch_not_a_panic() {
        assert!(!checksum_matches(b"$g#zz"));
        assert!(!checksum_matches(b"$g#\xff\xfe"));
    }
}

#[cfg(test)]
mod replay_tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    fn read_packet(conn: &mut RspConnection<UnixStream>) -> Vec<u8> {
        let mut packet = vec![ConnectionExt::read(conn).unwrap()];
        while packet[packet.len().saturating_sub(3)] != b'#' || packet.len() < 4 {
            packet.push(ConnectionExt::read(conn).unwrap());
        }
        packet
    }

    #[test]
    fn a_restart_replays_the_selected_thread_with_its_reply_withheld() {
        let (mut client, server) = UnixStream::pair().unwrap();
        let mut conn = RspConnection::new(server);
        Write::write_all(&mut client, &framed("Hg2")).unwrap();
        assert_eq!(read_packet(&mut conn), framed("Hg2"));
        Connection::write_all(&mut conn, b"+$OK#9a").unwrap();
        Connection::flush(&mut conn).unwrap();
        Write::write_all(&mut client, &framed("vCont;q")).unwrap();
        assert_eq!(read_packet(&mut conn), framed("vCont;q"));
        conn.reply_error("bad").unwrap();

        conn.replay_session_state();
        Write::write_all(&mut client, &framed("g")).unwrap();
        assert_eq!(read_packet(&mut conn), framed("Hg2"), "replayed first");
        Connection::write_all(&mut conn, b"+$OK#9a").unwrap();
        Connection::flush(&mut conn).unwrap();
        assert_eq!(read_packet(&mut conn), framed("g"));
        Connection::write_all(&mut conn, b"+$00#60").unwrap();
        Connection::flush(&mut conn).unwrap();
        drop(conn);
        let mut seen = Vec::new();
        Read::read_to_end(&mut client, &mut seen).unwrap();
        let expected = [
            b"+$OK#9a+".to_vec(),
            error_packet("bad"),
            b"+$00#60".to_vec(),
        ]
        .concat();
        assert_eq!(
            String::from_utf8_lossy(&seen),
            String::from_utf8_lossy(&expected)
        );
    }
}

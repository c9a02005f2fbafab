//! Frames: the unit on the wire. A frame is a 20-byte header and a payload:
//!
//! ```text
//! offset size field
//!  0     2    magic "VD" (0x56 0x44)
//!  2     1    protocol version (1)
//!  3     1    kind: 1 control, 2 data, 3 close
//!  4     4    stream id, little endian (0 is the control stream)
//!  8     4    payload length, little endian, at most MAX_PAYLOAD
//! 12     4    CRC-32 (IEEE) of the payload, little endian
//! 16     4    CRC-32 (IEEE) of bytes 0..16, little endian
//! ```
//!
//! The header has its own checksum so that a corrupted length is caught
//! before it makes the decoder swallow the frames that follow; after any
//! damage the decoder resynchronises on the next magic. The decoder never
//! panics on any input (fuzz/fuzz_targets/frame_decoder.rs checks this).

use std::fmt;

pub const MAGIC: [u8; 2] = *b"VD";
pub const WIRE_VERSION: u8 = 1;
pub const HEADER_LEN: usize = 20;
/// Large enough for 64 KiB data chunks with room to spare; small enough
/// that a corrupt length cannot make either side allocate much.
pub const MAX_PAYLOAD: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A control message (postcard) on stream 0.
    Control,
    /// Raw bytes of a stream (stdin, stdout, stderr, file content, a
    /// debugger's RSP byte stream).
    Data,
    /// The sender will send no more data on this stream.
    Close,
}

impl FrameKind {
    fn to_byte(self) -> u8 {
        match self {
            FrameKind::Control => 1,
            FrameKind::Data => 2,
            FrameKind::Close => 3,
        }
    }
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(FrameKind::Control),
            2 => Some(FrameKind::Data),
            3 => Some(FrameKind::Close),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn data(stream: u32, payload: Vec<u8>) -> Self {
        Frame {
            kind: FrameKind::Data,
            stream,
            payload,
        }
    }
    pub fn close(stream: u32) -> Self {
        Frame {
            kind: FrameKind::Close,
            stream,
            payload: Vec::new(),
        }
    }

    /// The bytes of this frame on the wire.
    pub fn encode(&self) -> Vec<u8> {
        assert!(
            self.payload.len() <= MAX_PAYLOAD,
            "frame payload over MAX_PAYLOAD"
        );
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        out.extend_from_slice(&MAGIC);
        out.push(WIRE_VERSION);
        out.push(self.kind.to_byte());
        out.extend_from_slice(&self.stream.to_le_bytes());
        out.extend_from_slice(&(self.payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&self.payload).to_le_bytes());
        let header_crc = crc32fast::hash(&out[..16]);
        out.extend_from_slice(&header_crc.to_le_bytes());
        out.extend_from_slice(&self.payload);
        out
    }
}

/// Why bytes on the wire were not a frame. The decoder has already skipped
/// them when it reports this; the connection goes on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Bytes that do not start with the magic were skipped.
    Garbage { skipped: usize },
    /// The header checksum did not match (the header was damaged).
    HeaderChecksum,
    /// A frame of a wire version this side does not speak.
    UnsupportedVersion { version: u8, stream: u32 },
    /// A length over MAX_PAYLOAD.
    TooLong { stream: u32, length: u32 },
    /// The payload checksum did not match; the frame was dropped.
    PayloadChecksum { stream: u32 },
    /// A kind byte this side does not know; the frame was dropped.
    UnknownKind { kind: u8, stream: u32 },
}

impl FrameError {
    /// The stream the damaged frame was on, when its header was intact.
    pub fn stream(&self) -> Option<u32> {
        match *self {
            FrameError::UnsupportedVersion { stream, .. }
            | FrameError::TooLong { stream, .. }
            | FrameError::PayloadChecksum { stream }
            | FrameError::UnknownKind { stream, .. } => Some(stream),
            FrameError::Garbage { .. } | FrameError::HeaderChecksum => None,
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Garbage { skipped } => {
                write!(f, "skipped {skipped} bytes that did not start with the frame magic \"VD\"")
            }
            FrameError::HeaderChecksum => write!(f, "frame header checksum mismatch (header dropped)"),
            FrameError::UnsupportedVersion { version, stream } => write!(
                f,
                "frame on stream {stream} has wire version {version}; this side speaks {WIRE_VERSION}"
            ),
            FrameError::TooLong { stream, length } => write!(
                f,
                "frame on stream {stream} declares {length} payload bytes, over the {MAX_PAYLOAD} limit"
            ),
            FrameError::PayloadChecksum { stream } => {
                write!(f, "frame on stream {stream}: payload checksum mismatch (frame dropped)")
            }
            FrameError::UnknownKind { kind, stream } => {
                write!(f, "frame on stream {stream} has unknown kind {kind} (frame dropped)")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// Incremental decoder: push bytes as they arrive, pull frames out.
#[derive(Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes of buf already consumed (compacted lazily, so big transfers
    /// do not move the buffer once per frame).
    start: usize,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// The next frame, an error for bytes that were skipped, or None when
    /// more input is needed.
    pub fn next_frame(&mut self) -> Option<Result<Frame, FrameError>> {
        let pending = self.pending();
        if pending.is_empty() {
            return None;
        }
        // Resynchronise on the magic.
        if !pending.starts_with(&MAGIC) {
            let skip = find_magic(pending).unwrap_or(
                // Keep a trailing first magic byte: its second may be next.
                if pending.last() == Some(&MAGIC[0]) {
                    pending.len() - 1
                } else {
                    pending.len()
                },
            );
            if skip == 0 {
                return None;
            }
            self.start += skip;
            return Some(Err(FrameError::Garbage { skipped: skip }));
        }
        if pending.len() < HEADER_LEN {
            return None;
        }
        let header = &pending[..HEADER_LEN];
        let le32 = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap());
        if crc32fast::hash(&header[..16]) != le32(16) {
            // Skip the magic only, so a real frame starting inside this
            // damaged header is still found.
            self.start += 1;
            return Some(Err(FrameError::HeaderChecksum));
        }
        let (version, kind, stream, length, payload_crc) =
            (header[2], header[3], le32(4), le32(8), le32(12));
        if length as usize > MAX_PAYLOAD {
            self.start += HEADER_LEN;
            return Some(Err(FrameError::TooLong { stream, length }));
        }
        let total = HEADER_LEN + length as usize;
        if pending.len() < total {
            return None;
        }
        let payload = &pending[HEADER_LEN..total];
        let result = if version != WIRE_VERSION {
            Err(FrameError::UnsupportedVersion { version, stream })
        } else if crc32fast::hash(payload) != payload_crc {
            // Bytes lost from this payload make its length swallow the
            // start of the next frame: resume at the first intact header
            // inside the span, if there is one.
            // A magic near the end of what has arrived may be such a
            // header whose bytes are still on their way: wait for them.
            let incomplete = (1..total).any(|at| {
                at + HEADER_LEN > pending.len()
                    && (pending[at..].starts_with(&MAGIC) || pending[at..] == MAGIC[..1])
            });
            if incomplete {
                return None;
            }
            let skip = (1..total)
                .find(|&at| valid_header_at(pending, at))
                .unwrap_or(total);
            self.start += skip;
            return Some(Err(FrameError::PayloadChecksum { stream }));
        } else {
            match FrameKind::from_byte(kind) {
                Some(kind) => Ok(Frame {
                    kind,
                    stream,
                    payload: payload.to_vec(),
                }),
                None => Err(FrameError::UnknownKind { kind, stream }),
            }
        };
        self.start += total;
        Some(result)
    }
}

/// A magic and a matching header checksum at `at`.
fn valid_header_at(bytes: &[u8], at: usize) -> bool {
    let Some(header) = bytes.get(at..at + HEADER_LEN) else {
        return false;
    };
    header.starts_with(&MAGIC) && crc32fast::hash(&header[..16]).to_le_bytes() == header[16..20]
}

fn find_magic(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == MAGIC)
}

/// Reads frames from a blocking byte stream.
pub struct FrameReader<R> {
    inner: R,
    decoder: FrameDecoder,
    chunk: Vec<u8>,
}

impl<R: std::io::Read> FrameReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            decoder: FrameDecoder::new(),
            chunk: vec![0; 256 * 1024],
        }
    }

    /// The next frame or framing error; an io error (or EOF, as
    /// `UnexpectedEof`) means the byte stream itself is gone.
    pub fn read_frame(&mut self) -> std::io::Result<Result<Frame, FrameError>> {
        loop {
            if let Some(result) = self.decoder.next_frame() {
                return Ok(result);
            }
            let n = match self.inner.read(&mut self.chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.decoder.push(&self.chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Vec<Result<Frame, FrameError>> {
        let mut d = FrameDecoder::new();
        d.push(bytes);
        std::iter::from_fn(|| d.next_frame()).collect()
    }

    #[test]
    fn round_trip_byte_by_byte() {
        let frames = [
            Frame {
                kind: FrameKind::Control,
                stream: 0,
                payload: b"hello".to_vec(),
            },
            Frame::data(7, vec![0xAB; 70_000]),
            Frame::close(7),
        ];
        let wire: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
        let mut d = FrameDecoder::new();
        let mut got = Vec::new();
        for b in wire {
            d.push(&[b]);
            while let Some(f) = d.next_frame() {
                got.push(f.unwrap());
            }
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn garbage_between_frames_is_skipped_and_reported() {
        let good = Frame::data(3, b"abc".to_vec()).encode();
        let mut wire = b"xxVxx".to_vec();
        wire.extend(&good);
        let got = decode_all(&wire);
        assert_eq!(
            got,
            vec![
                Err(FrameError::Garbage { skipped: 5 }),
                Ok(Frame::data(3, b"abc".to_vec()))
            ]
        );
    }

    #[test]
    fn corrupt_payload_drops_only_that_frame() {
        let mut bad = Frame::data(5, b"payload".to_vec()).encode();
        bad[HEADER_LEN + 2] ^= 0xff;
        let mut wire = bad;
        wire.extend(Frame::close(5).encode());
        assert_eq!(
            decode_all(&wire),
            vec![
                Err(FrameError::PayloadChecksum { stream: 5 }),
                Ok(Frame::close(5))
            ]
        );
    }

    #[test]
    fn corrupt_length_does_not_swallow_following_frames() {
        let mut bad = Frame::data(1, b"12345".to_vec()).encode();
        bad[9] = 0x40; // length now ~16 KiB: header checksum catches it
        let mut wire = bad;
        wire.extend(Frame::close(9).encode());
        let got = decode_all(&wire);
        assert_eq!(got.first(), Some(&Err(FrameError::HeaderChecksum)));
        assert_eq!(got.last(), Some(&Ok(Frame::close(9))));
    }

    #[test]
    fn oversized_length_with_valid_header_checksum_is_refused() {
        let mut wire = Frame::data(2, vec![]).encode();
        wire[8..12].copy_from_slice(&((MAX_PAYLOAD as u32) + 1).to_le_bytes());
        let crc = crc32fast::hash(&wire[..16]);
        wire[16..20].copy_from_slice(&crc.to_le_bytes());
        wire.extend(Frame::close(2).encode());
        assert_eq!(
            decode_all(&wire),
            vec![
                Err(FrameError::TooLong {
                    stream: 2,
                    length: MAX_PAYLOAD as u32 + 1
                }),
                Ok(Frame::close(2))
            ]
        );
    }

    #[test]
    fn unknown_kind_and_version_are_dropped() {
        for (at, value) in [(3usize, 9u8), (2, 7)] {
            let mut wire = Frame::data(4, b"x".to_vec()).encode();
            wire[at] = value;
            let crc = crc32fast::hash(&wire[..16]);
            wire[16..20].copy_from_slice(&crc.to_le_bytes());
            wire.extend(Frame::close(4).encode());
            let got = decode_all(&wire);
            assert!(got[0].is_err(), "{got:?}");
            assert_eq!(got[1], Ok(Frame::close(4)));
        }
    }

    /// The fuzz target's properties on deterministic pseudo-random input
    /// (runs in every `cargo test`; `cargo fuzz` explores further): damaged
    /// streams of real frames never panic the decoder, every accepted frame
    /// re-encodes to itself, and intact frames after the damage still come
    /// through.
    #[test]
    fn damaged_streams_never_panic_and_later_frames_survive() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..3000 {
            let mut wire = Vec::new();
            for i in 0..(rand() % 4) {
                let len = (rand() % 300) as usize;
                wire.extend(
                    Frame::data(i as u32 + 1, (0..len).map(|_| rand() as u8).collect()).encode(),
                );
            }
            // Damage: flip, insert or delete a few bytes.
            for _ in 0..(rand() % 4) {
                if wire.is_empty() {
                    break;
                }
                let at = (rand() as usize) % wire.len();
                match rand() % 3 {
                    0 => wire[at] ^= 1 << (rand() % 8),
                    1 => wire.insert(at, rand() as u8),
                    _ => drop(wire.remove(at)),
                }
            }
            let sentinel = Frame::data(999, format!("round {round}").into_bytes());
            wire.extend(sentinel.encode());
            let mut d = FrameDecoder::new();
            let piece = 1 + (rand() % 50) as usize;
            let mut got = Vec::new();
            for chunk in wire.chunks(piece) {
                d.push(chunk);
                while let Some(r) = d.next_frame() {
                    if let Ok(f) = &r {
                        let mut again = FrameDecoder::new();
                        again.push(&f.encode());
                        assert_eq!(again.next_frame(), Some(Ok(f.clone())));
                    }
                    got.push(r);
                }
            }
            assert!(
                got.contains(&Ok(sentinel.clone())),
                "round {round}: the intact frame after the damage was lost: {got:?}"
            );
        }
    }
}

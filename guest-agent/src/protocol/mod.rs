//! The host <-> agent wire protocol (PROTOCOL.md beside this crate is its
//! specification): [`frame`] is the framing and multiplexing layer,
//! [`messages`] the control messages. This module does no I/O policy: the
//! agent ([`crate::agent`]) and the host client ([`crate::client`]) decide
//! what to do with frames.

pub mod frame;
pub mod messages;

use std::io::Write;
use std::sync::Mutex;

pub use frame::{Frame, FrameDecoder, FrameError, FrameKind, FrameReader};
pub use messages::*;

/// The sending half of a connection, shared by every thread that sends:
/// each frame is written whole under the lock, so streams interleave only
/// at frame boundaries.
pub struct FrameWriter {
    inner: Mutex<Box<dyn Write + Send>>,
}

impl FrameWriter {
    pub fn new(inner: impl Write + Send + 'static) -> Self {
        Self {
            inner: Mutex::new(Box::new(inner)),
        }
    }

    /// Sends on `inner` from now on (a new connection to the same peer).
    pub fn replace(&self, inner: impl Write + Send + 'static) {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = Box::new(inner);
    }

    pub fn send(&self, frame: &Frame) -> std::io::Result<()> {
        let bytes = frame.encode();
        let mut w = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        w.write_all(&bytes)?;
        w.flush()
    }

    /// Writes bytes that are not a frame: only for tests of how the peer
    /// handles damaged input.
    pub fn send_raw(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut w = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        w.write_all(bytes)?;
        w.flush()
    }

    pub fn send_control(&self, id: u32, message: &Message) -> std::io::Result<()> {
        self.send(&Frame {
            kind: FrameKind::Control,
            stream: CONTROL_STREAM,
            payload: encode_control(id, message),
        })
    }

    /// Sends `bytes` as data frames of at most `DATA_CHUNK` bytes.
    pub fn send_data(&self, stream: u32, bytes: &[u8]) -> std::io::Result<()> {
        for chunk in bytes.chunks(DATA_CHUNK) {
            self.send(&Frame::data(stream, chunk.to_vec()))?;
        }
        Ok(())
    }
}

/// Data frames carry at most this much, so one big transfer does not hold
/// the other streams back for long.
pub const DATA_CHUNK: usize = 64 * 1024;

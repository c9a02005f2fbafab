//! The bytes the DWARF readers read: a section of the ELF file mapped into
//! memory (`mmap`, shared by every reader of the file, paged in by the
//! kernel as the debugger touches it and dropped again under memory
//! pressure), or bytes this process made (a decompressed section, an
//! expression built for a per-CPU variable).
//!
//! A kernel's vmlinux is 631 MB; reading it whole and copying its DWARF
//! sections out made the adapter's memory 3.5× gdb's. Mapped, only the
//! pages a lookup touches are resident.

use std::fmt;
use std::ops::{Deref, Range};
use std::sync::Arc;

/// Shared, immutable bytes behind a [`super::Reader`].
#[derive(Clone)]
pub enum Bytes {
    Owned(Arc<[u8]>),
    Mapped(Arc<memmap2::Mmap>, Range<usize>),
}

impl Bytes {
    /// `range` of a mapped file; an out-of-file range (a malformed section
    /// header) reads as empty rather than past the mapping.
    pub fn mapped(map: &Arc<memmap2::Mmap>, range: Range<usize>) -> Self {
        if range.start <= range.end && range.end <= map.len() {
            Bytes::Mapped(map.clone(), range)
        } else {
            Bytes::Owned(Arc::from(&[][..]))
        }
    }
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Owned(bytes) => bytes,
            Bytes::Mapped(map, range) => &map[range.clone()],
        }
    }
}

impl From<&[u8]> for Bytes {
    fn from(bytes: &[u8]) -> Self {
        Bytes::Owned(Arc::from(bytes))
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.len())
    }
}

// SAFETY: both variants deref to memory owned by an `Arc` (a heap slice or
// a read-only mapping that lives until its last clone drops); moving or
// cloning a `Bytes` never moves those bytes.
unsafe impl gimli::StableDeref for Bytes {}
unsafe impl gimli::CloneStableDeref for Bytes {}

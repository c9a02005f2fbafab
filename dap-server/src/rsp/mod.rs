//! A gdb remote serial protocol (RSP) client, independent of the engine
//! behind the socket: it talks to vmdbg-vmm's stub, QEMU's gdbstub or any
//! other RSP server the same way.
//!
//! Owns: packet framing and acknowledgement (`packet`), the connection and
//! its request/reply discipline (`client`), register numbering read from the
//! stub's target description (`registers`) and stop replies (`stop`). It
//! knows nothing about DWARF, DAP or which VMM it is talking to.

pub mod client;
pub mod packet;
pub mod registers;
pub mod stop;

pub use client::{Endpoint, RspClient};
pub use stop::{ReplayEdge, StopReply, WatchKind};

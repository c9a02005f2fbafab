//! vmdbg-agent: the program vmdbg starts inside a Linux guest.
//!
//! - [`protocol`]: the framed, multiplexed wire protocol between the host
//!   and the agent (PROTOCOL.md beside this crate is its specification);
//! - [`debugger`]: a ptrace process debugger served as the gdb remote
//!   protocol, so one RSP client on the host debugs both kernels and
//!   processes.

pub mod debugger;
pub mod protocol;

//! vmdbg-agent: the program vmdbg starts inside a Linux guest.
//!
//! - [`protocol`]: the framed, multiplexed wire protocol between the host
//!   and the agent (PROTOCOL.md beside this crate is its specification);
//! - [`agent`]: the agent's side of the protocol (exec, files, channels,
//!   poweroff) and its transports (virtio-serial port, vsock, stdio);
//! - [`client`]: the host's side, used by `vmdbg run` and the DAP server;
//! - [`debugger`]: a ptrace process debugger served as the gdb remote
//!   protocol, so one RSP client on the host debugs both kernels and
//!   processes.

pub mod agent;
pub mod client;
pub mod debugger;
pub mod protocol;

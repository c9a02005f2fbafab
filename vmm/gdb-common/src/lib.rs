//! What vmdbg's two gdb remote-protocol servers share: the VMM's stub for
//! a VM's vCPUs (vmdbg-vmm's `gdb/`) and the agent's process debugger
//! (vmdbg-agent's `debugger/`). Both are built on gdbstub; this crate owns
//! the pieces around it that would otherwise be written twice:
//!
//! - [`listen`]: the `HOST:PORT | :PORT | unix:PATH` address users type,
//!   the listener (which removes its unix socket when done) and the stream
//!   it accepts;
//! - [`conn`]: a buffered gdbstub connection that checks packets before
//!   gdbstub sees them, so a corrupt packet gets a NAK instead of ending
//!   the session;
//! - [`session`]: the serve loop both stubs run, which answers a packet
//!   gdbstub gives up on with an error and goes on with the session;
//! - [`hw_slots`]: which watchpoints and breakpoints one x86 debug
//!   register can express;
//! - [`x86_64`]: gdb's x86-64 core and SSE register block followed by
//!   64-bit registers of each server's own, and the target XML that
//!   describes them.

pub mod conn;
pub mod hw_slots;
pub mod listen;
pub mod session;
pub mod x86_64;

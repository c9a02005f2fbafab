//! What an engine's VM may do beyond the core of [`super::Vm`] (boot,
//! console, agent channel, pause, resume, end): one small trait per
//! capability, one file each, reached through the `support_*()` methods of
//! [`super::Vm`] and [`super::VmControl`], which answer `None` where an
//! engine (or this VM of it) lacks the capability — as gdbstub's
//! `target/ext/` does for a stub's optional features. A caller asks once
//! and gets either the capability or the reason it is missing; no engine
//! implements a method only to say it cannot.
//!
//! - [`snapshots`]: named snapshots of a running VM, restored in place;
//! - [`saved_state`]: the whole VM written to a file, for a later process
//!   ([`super::Engine::boot_saved`]);
//! - [`replay`]: a replay of a recording — where it is, and, for engines
//!   whose stub cannot run backwards itself, replaying afresh to a point;
//! - [`console_input`]: typing into the serial console.

pub mod console_input;
pub mod replay;
pub mod saved_state;
pub mod snapshots;

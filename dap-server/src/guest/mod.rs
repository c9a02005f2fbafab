//! What every way of using a guest shares, whatever command or session
//! drives it (house plan item 2): running a command in the guest through
//! its agent with its output captured, and a VM's set-up commands.
//! `vmdbg test` and program debug sessions use it; it knows no engine and
//! no DAP.

mod command;

pub use command::{describe, run_captured, run_ok, run_setup};

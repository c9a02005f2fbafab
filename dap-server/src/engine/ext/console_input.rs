//! Typing into a VM's serial console: what a debug console's input goes to
//! while a kernel alone (with no agent to run commands) is debugged.

use anyhow::Result;

/// A serial console that takes input.
pub trait ConsoleInput {
    /// Sends `bytes` to the guest's serial port, as a terminal would.
    fn type_in(&mut self, bytes: &[u8]) -> Result<()>;
}

/// Why a VM's console takes no input.
pub const NO_CONSOLE_INPUT: &str = "this VM's serial console takes no input (it does for a kernel alone on the KVM engine; a Linux guest takes commands through its agent: `run` in the launch configuration)";

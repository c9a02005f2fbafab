//! What every way of using a guest shares, whatever command or session
//! drives it (house plan item 2): starting its VM ([`start`], with warm
//! starts in [`warm`]), the files copied in ([`copy`]), running a command
//! in it through its agent with its output captured and its set-up
//! commands ([`command`]), and starting a program under the agent's
//! debugger ([`debuggee`]). `vmdbg run`, `vmdbg test`, `vmdbg
//! gdb-forward` and the DAP server's sessions all start their VMs here;
//! it knows no DAP.

mod command;
pub mod copy;
pub mod debuggee;
mod start;
pub(crate) mod warm;

pub use command::{describe, run_captured, run_ok, run_setup};
pub use start::{
    boot, boot_for_debugger, copy_in, engine_choice, guest_env, interrupt_counter, prepare, VmArgs,
    BOOT_LIMIT,
};

//! The debugger core without DAP in it (house plan item 3): what a
//! debugger does with a target over RSP and its symbols, returning plain
//! results that the DAP layer (`dap/`) turns into responses and events.
//!
//! - [`Target`]: what every part of the core needs of a target (its
//!   symbols, pc and stack pointer, memory, temporary breakpoints, and
//!   whether a user breakpoint stops); each part adds what only it needs
//!   ([`stepping::StepTarget`], [`reverse::ReverseTarget`]);
//! - [`stepping`]: forward stepping — by source line over or into calls,
//!   out of a function, by instruction — as gdb's `next`, `step`,
//!   `finish` and `stepi` do;
//! - [`reverse`]: running backwards through a recording — by instruction,
//!   by source line as gdb's `reverse-next` does, and to the previous
//!   breakpoint or write of a watched location.
//!
//! Breakpoints, watches and the run state still live in the DAP session
//! (`dap/session.rs`), which implements these traits.

use std::rc::Rc;

use anyhow::Result;

use crate::symbols::Symbols;

pub mod reverse;
pub mod stepping;

/// What the debugger core needs of any target.
#[allow(async_fn_in_trait)]
pub trait Target {
    fn symbols(&self) -> Rc<Symbols>;
    async fn pc(&mut self) -> Result<u64>;
    async fn sp(&mut self) -> Result<u64>;
    async fn read_memory(&mut self, addr: u64, len: usize) -> Result<Vec<u8>>;
    /// Inserts a temporary breakpoint; false if one is there already (a
    /// user's, which stays).
    async fn insert_temporary(&mut self, addr: u64) -> Result<bool>;
    async fn remove_temporary(&mut self, addr: u64) -> Result<()>;
    /// A user breakpoint is at `pc`.
    fn breakpoint_at(&self, pc: u64) -> bool;
    /// The user breakpoints at `pc` decide to stop (conditions, hit counts).
    async fn breakpoint_stops(&mut self, pc: u64) -> bool;
}

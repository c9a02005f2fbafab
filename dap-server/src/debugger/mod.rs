//! The debugger core without DAP in it (house plan item 3): what a
//! debugger does with a target over RSP and its symbols, returning plain
//! results that the DAP layer (`dap/`) turns into responses and events.
//!
//! - [`reverse`]: running backwards through a recording — by instruction,
//!   by source line as gdb's `reverse-next` does, and to the previous
//!   breakpoint or write of a watched location.
//!
//! Forward stepping still lives in `dap/stepping.rs`, woven into the DAP
//! session's state; it moves here when that state does.

pub mod reverse;

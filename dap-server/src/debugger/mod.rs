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
//! [`Debugger`] is the core's state: the target ([`target`]), its
//! breakpoints ([`breakpoints`]), the expression evaluator ([`eval`]) and
//! the signal policy ([`signals`]). Front ends (the DAP server) own the
//! VMs and talk to their clients; the core reports to them in plain Rust.

use std::collections::BTreeMap;
use std::rc::Rc;

use anyhow::Result;

use crate::symbols::Symbols;

pub mod breakpoints;
pub mod eval;
pub mod reverse;
pub mod run;
pub mod signals;
pub mod stepping;
pub mod target;

use breakpoints::{DataBreakpoint, UserBreakpoint};
use target::TargetState;

/// Where the core reports what happens as it happens, for the front end to
/// tell its client.
pub trait Events {
    /// Text for the user's console; `category` is "console" or "stderr".
    fn output(&mut self, category: &'static str, text: String);
    /// A breakpoint's state changed (its message, where it is).
    fn breakpoint_changed(&mut self, bp: &UserBreakpoint);
    /// The target runs again (all threads; `thread` is the current one).
    fn continued(&mut self, thread: i64);
    /// The stub's threads were `before` and are `now` (by RSP id).
    fn threads_changed(&mut self, before: &[String], now: &[String]);
}

/// The debugger core: the target while there is one, and the breakpoints,
/// which outlive it (a restart puts them in again).
pub struct Debugger {
    pub target: Option<TargetState>,
    /// Line breakpoints by source path.
    pub line_breakpoints: BTreeMap<String, Vec<UserBreakpoint>>,
    pub function_breakpoints: Vec<UserBreakpoint>,
    pub data_breakpoints: Vec<DataBreakpoint>,
    /// Temporary breakpoints of a reverse step, kept across a replay's
    /// fresh start.
    pub temporaries: Vec<u64>,
    pub next_id: i64,
    /// A breakpoint of the debugger's own that the user does not see: a
    /// Linux kernel's module loader, where new modules are heard of.
    pub module_watch: Option<u64>,
    /// A recorded target's replay (None for other targets).
    pub replay: Option<Box<dyn target::Replay>>,
    pub events: Box<dyn Events>,
}

impl Debugger {
    pub fn new(events: Box<dyn Events>) -> Self {
        Self {
            target: None,
            line_breakpoints: BTreeMap::new(),
            function_breakpoints: Vec::new(),
            data_breakpoints: Vec::new(),
            temporaries: Vec::new(),
            next_id: 1,
            module_watch: None,
            replay: None,
            events,
        }
    }
}

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

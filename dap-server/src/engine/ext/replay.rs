//! A replay of a recording (see [`crate::engine::RecordSpec`]): where it
//! stands, and — for an engine whose gdb stub does not run backwards itself
//! (QEMU's replays) — going back by replaying afresh to an instruction
//! count.

use anyhow::Result;

use crate::engine::ReplayPosition;

/// A VM that is a replay.
pub trait Replay {
    /// Where the replay is in its recording.
    fn position(&mut self) -> Result<ReplayPosition>;
    /// Going back by replaying afresh; None where the engine's stub runs
    /// backwards itself (`bs`, `bc`).
    fn support_afresh(&mut self) -> Option<&mut dyn ReplayAfresh> {
        None
    }
}

/// A replay that goes back by starting again and running forward to the
/// instruction it went back to.
pub trait ReplayAfresh {
    /// Makes the next forward run stop at the end of the recording rather
    /// than run past it (the engine's stub does not on its own).
    fn keep_inside(&mut self) -> Result<()>;
    /// The next forward run stops after `icount` instructions.
    fn break_at(&mut self, icount: u64) -> Result<()>;
    /// Puts the replay at `icount` in a new process: the RSP endpoint is
    /// the same path, but connections to it must be made again.
    fn start_at(&mut self, icount: u64) -> Result<()>;
}

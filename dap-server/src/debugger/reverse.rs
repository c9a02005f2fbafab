//! Reverse execution over any gdb stub that replays a recording (`bs`,
//! `bc`; QEMU's record/replay, vmdbg-vmm's recordings):
//!
//! - [`step_instruction`]: one instruction back (`reverse-stepi`);
//! - [`step_line`]: back to the start of the previous source line, calls
//!   skipped (`reverse-next`): reverse-step while the pc stays in the
//!   line's range; a step that lands on a callee's `ret` (the call's return
//!   came just before) runs back to the callee's entry on a temporary
//!   breakpoint (one `bc`, not thousands of steps) and takes one more step
//!   onto the call; the step ends at the first instruction of a line
//!   (from the middle of a line, that is the start of the same line, as
//!   in gdb). The line tables are the ones the forward `next` uses;
//! - [`continue_back`]: `bc` until a breakpoint that decides to stop, a
//!   watchpoint or the start of the recording;
//! - [`onto_writer`]: after a reverse run stopped for a watched location
//!   just after the write (QEMU), the instruction that wrote it, with the
//!   values before and after; [`write_ahead`]: the same where the stub
//!   stops on the writer before it runs (vmdbg-vmm, as gdb expects).
//!
//! Either end of the recording is an outcome, not an error: the stub says
//! so with `replaylog:begin` (or QEMU, which does not, refuses a step at
//! the start with an `E` reply).

use anyhow::Result;
use iced_x86::{Decoder, DecoderOptions, FlowControl};

use super::Target;
use crate::rsp::{ReplayEdge, StopReply};
use crate::symbols::Symbols;

/// Bounds a line step backwards (each step replays from a checkpoint).
const MAX_STEPS: usize = 2_000;

/// What reverse execution needs of a target besides [`Target`].
#[allow(async_fn_in_trait)]
pub trait ReverseTarget: Target {
    /// One instruction backwards; the stop (with its replay edge, if any).
    async fn reverse_step(&mut self) -> Result<StopReply>;
    /// Backwards until something stops it.
    async fn reverse_continue(&mut self) -> Result<StopReply>;
    /// One instruction forwards (replayed).
    async fn step_forward(&mut self) -> Result<StopReply>;
}

/// How a reverse step or continue ended.
#[derive(Debug)]
pub enum Outcome {
    /// Where it was meant to end.
    Arrived,
    /// Something else stopped it first (a breakpoint, a watchpoint, the
    /// end of the recording …): the stop as the stub reported it.
    Stopped(StopReply),
    /// The start of the recording: there is nothing earlier.
    AtStart,
    /// Gave up after this many instructions.
    GaveUp(usize),
}

/// A watched location's write, found going backwards.
#[derive(Debug)]
pub struct Write {
    pub addr: u64,
    pub before: Vec<u8>,
    pub after: Vec<u8>,
}

/// The outcome of a stop that is not a plain step, if it is not.
fn unless_plain(stop: StopReply) -> Option<Outcome> {
    match stop {
        StopReply::Refused(_)
        | StopReply::Signal {
            replay_edge: Some(ReplayEdge::Begin),
            ..
        } => Some(Outcome::AtStart),
        stop if stop.is_plain_step() => None,
        stop => Some(Outcome::Stopped(stop)),
    }
}

/// One instruction backwards.
pub async fn step_instruction(t: &mut impl ReverseTarget) -> Result<Outcome> {
    let stop = t.reverse_step().await?;
    Ok(unless_plain(stop).unwrap_or(Outcome::Arrived))
}

/// Whether the instruction at `pc` is a return.
async fn is_return(t: &mut impl ReverseTarget, pc: u64) -> bool {
    let Ok(bytes) = t.read_memory(pc, 15).await else {
        return false;
    };
    let insn = Decoder::with_ip(64, &bytes, pc, DecoderOptions::NONE).decode();
    !insn.is_invalid() && insn.flow_control() == FlowControl::Return
}

/// Back to the start of the previous source line (see the module doc).
pub async fn step_line(t: &mut impl ReverseTarget) -> Result<Outcome> {
    let symbols = t.symbols();
    let pc = t.pc().await?;
    let Some((start, end, _)) = symbols.lines.line_range(pc).filter(|(_, _, r)| r.line != 0) else {
        // No line information here: one instruction.
        return step_instruction(t).await;
    };
    let mut range = (start, end);
    for _ in 0..MAX_STEPS {
        let sp_before = t.sp().await?;
        let stop = t.reverse_step().await?;
        if let Some(outcome) = unless_plain(stop.clone()) {
            return Ok(outcome);
        }
        let mut pc = t.pc().await?;
        if t.sp().await? < sp_before && is_return(t, pc).await {
            // The step went back into a callee, onto its return: back over
            // the whole call.
            if let Some(outcome) = back_over_call(t, &symbols, pc, sp_before).await? {
                return Ok(outcome);
            }
            pc = t.pc().await?;
        } else if t.breakpoint_at(pc) && t.breakpoint_stops(pc).await {
            return Ok(Outcome::Stopped(stop));
        }
        if (range.0..range.1).contains(&pc) {
            if pc == range.0 {
                return Ok(Outcome::Arrived);
            }
            continue;
        }
        match symbols.lines.line_range(pc) {
            // Code without line information or an explicit "no line": stop.
            None => return Ok(Outcome::Arrived),
            Some((_, _, row)) if row.line == 0 => return Ok(Outcome::Arrived),
            Some((s, e, _)) => {
                range = (s, e);
                if pc == s {
                    return Ok(Outcome::Arrived);
                }
            }
        }
    }
    Ok(Outcome::GaveUp(MAX_STEPS))
}

/// At a callee's `ret` (`pc`), reached by stepping back from just after its
/// call (stack pointer `sp_after_call` there): back onto the call
/// instruction. None when it got there; otherwise what stopped it.
async fn back_over_call(
    t: &mut impl ReverseTarget,
    symbols: &Symbols,
    pc: u64,
    sp_after_call: u64,
) -> Result<Option<Outcome>> {
    // At the callee's entry the return address is on top of the stack.
    let sp_at_entry = sp_after_call.wrapping_sub(8);
    match symbols.function_at(pc).map(|f| f.low) {
        Some(entry) => {
            let temporary = t.insert_temporary(entry).await?;
            let arrived = loop {
                let stop = t.reverse_continue().await?;
                let Some(outcome) = unless_plain(stop.clone()) else {
                    let at = t.pc().await?;
                    if at == entry && t.sp().await? == sp_at_entry {
                        break None;
                    }
                    if t.breakpoint_at(at) && t.breakpoint_stops(at).await {
                        break Some(Outcome::Stopped(stop));
                    }
                    // A deeper activation (recursion) or a breakpoint that
                    // does not stop: on backwards.
                    continue;
                };
                break Some(outcome);
            };
            if temporary {
                t.remove_temporary(entry).await?;
            }
            if arrived.is_some() {
                return Ok(arrived);
            }
        }
        None => {
            // A callee without symbols: step back until its frame is gone.
            for _ in 0..MAX_STEPS {
                if t.sp().await? >= sp_at_entry && t.pc().await? != pc {
                    break;
                }
                if let Some(outcome) = unless_plain(t.reverse_step().await?) {
                    return Ok(Some(outcome));
                }
            }
            if t.sp().await? > sp_at_entry {
                return Ok(None);
            }
        }
    }
    // From the callee's entry, one step back is the call.
    Ok(unless_plain(t.reverse_step().await?))
}

/// Backwards until a breakpoint that decides to stop, a watchpoint, or the
/// start of the recording. A plain stop at no breakpoint is a watchpoint's
/// (QEMU reports those without `watch`): the caller knows what it watches.
pub async fn continue_back(t: &mut impl ReverseTarget) -> Result<Outcome> {
    loop {
        let stop = t.reverse_continue().await?;
        if let Some(outcome) = unless_plain(stop.clone()) {
            return Ok(outcome);
        }
        let pc = t.pc().await?;
        if t.breakpoint_at(pc) && !t.breakpoint_stops(pc).await {
            continue;
        }
        return Ok(Outcome::Stopped(stop));
    }
}

/// The watched locations' bytes now (empty where unreadable).
async fn read_watched(t: &mut impl ReverseTarget, watched: &[(u64, usize)]) -> Vec<Vec<u8>> {
    let mut values = Vec::new();
    for &(addr, len) in watched {
        values.push(t.read_memory(addr, len).await.unwrap_or_default());
    }
    values
}

/// The first watched location whose bytes differ between `before` and
/// `after` (both from [`read_watched`]).
fn first_write(
    watched: &[(u64, usize)],
    before: Vec<Vec<u8>>,
    after: Vec<Vec<u8>>,
) -> Option<Write> {
    watched
        .iter()
        .zip(before.into_iter().zip(after))
        .find(|(_, (before, after))| before != after)
        .map(|(&(addr, _), (before, after))| Write {
            addr,
            before,
            after,
        })
}

/// After a reverse run stopped for one of `watched` (address, length)
/// just after a write (QEMU stops after the writing instruction): one step
/// back onto the writer, and what it wrote. None (and where it is, on the
/// writer or not) when no watched value differs across that step.
pub async fn onto_writer(
    t: &mut impl ReverseTarget,
    watched: &[(u64, usize)],
) -> Result<(Option<Write>, Option<Outcome>)> {
    let after = read_watched(t, watched).await;
    let stop = t.reverse_step().await?;
    if let Some(outcome) = unless_plain(stop) {
        return Ok((None, Some(outcome)));
    }
    let before = read_watched(t, watched).await;
    Ok((first_write(watched, before, after), None))
}

/// After a reverse run stopped on the instruction that writes one of
/// `watched` (address, length), before it runs: what it writes, by one
/// step forwards and one back. None (and where it is) when no watched
/// value changes across it.
pub async fn write_ahead(
    t: &mut impl ReverseTarget,
    watched: &[(u64, usize)],
) -> Result<(Option<Write>, Option<Outcome>)> {
    let before = read_watched(t, watched).await;
    // The step runs the write: a watchpoint's report of it is the step's.
    match t.step_forward().await? {
        StopReply::Signal {
            signal: 5,
            replay_edge: None,
            ..
        } => {}
        stop => return Ok((None, unless_plain(stop).or(Some(Outcome::Arrived)))),
    }
    let after = read_watched(t, watched).await;
    let write = first_write(watched, before, after);
    // Back onto the writer, where the reverse run stopped.
    if let Some(outcome) = unless_plain(t.reverse_step().await?) {
        return Ok((write, Some(outcome)));
    }
    Ok((write, None))
}

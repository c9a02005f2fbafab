//! Forward stepping by source line and by instruction, as gdb does it:
//! step while the pc stays in the current line's range; a call is
//! stepped over with a temporary breakpoint at its return address (one
//! continue, not thousands of steps); stop at the first statement of a
//! different line; after returning into the middle of a caller's line, go
//! on to the start of its next line. stepIn stops after the callee's
//! prologue when the callee has line information.
//!
//! Where the stub range-steps (`vCont;r`: vmdbg-vmm's and the agent's),
//! the line is stepped in the stub, one round trip for all its rows; a
//! stop outside it with the return address of one of the line's calls on
//! top of the stack is that call's entry. Elsewhere (QEMU), and for an
//! instruction that must be stepped alone (a breakpoint or a pending
//! signal at the pc), one instruction at a time.
//!
//! The run to a return address is not waited for here: the target is set
//! running ([`StepTarget::run_to_return`], outcome [`Outcome::Running`])
//! so that a pause can interrupt it, and whoever sees it arrive goes on
//! with [`continue_step`] (or, stepping out, reports the step).

use anyhow::Result;
use iced_x86::{Decoder, DecoderOptions, FlowControl};

use super::Target;
use crate::rsp::StopReply;

/// Bounds a step so a line that loops forever ends with a report.
const MAX_STEPS: usize = 20_000;

/// The longest x86 instruction.
const MAX_INSTRUCTION: usize = 15;

/// How long one range step may run before the target interrupts it
/// ([`StepTarget::range_step`]): no request is read during a step, so a
/// line that loops for ever would hold the session. Where single steps
/// give up after [`MAX_STEPS`] instructions, this is far more of them.
pub const RANGE_STEP_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// gdb's SIGINT: the debugger's own interrupt (never the program's, which
/// the stubs report as the signal it is and the user's pause).
const SIGINT: u8 = 2;

/// What forward stepping needs of a target besides [`Target`].
#[allow(async_fn_in_trait)]
pub trait StepTarget: Target {
    /// One instruction on the current thread; waits for the stop. A signal
    /// the thread stopped with is delivered by it (into its handler).
    async fn single_step(&mut self) -> Result<StopReply>;
    /// Memory straight from the stub, uncached: a step holds the code
    /// bytes it read itself ([`CodeBytes`]), while a cache is dropped at
    /// every instruction.
    async fn read_code(&mut self, addr: u64, len: usize) -> Result<Vec<u8>>;
    /// The CFA of the innermost frame (for telling frames apart).
    async fn frame_cfa(&mut self) -> Result<u64>;
    /// The caller's pc and the innermost frame's CFA; None in the
    /// outermost frame.
    async fn caller(&mut self) -> Result<Option<(u64, u64)>>;
    /// The current thread stopped with a signal that its next step delivers.
    fn signal_pending(&self) -> bool;
    /// Delivers the signal the current thread stopped with, if any, and
    /// runs its handler back to where the thread stopped. None when there
    /// was none or the thread is back; otherwise the stop that ended it.
    async fn run_stopped_signal_handler(&mut self) -> Result<Option<StopReply>>;
    /// gdb's `step` where the stop hides inlined calls that begin at the
    /// pc: shows one call further down, without running. Whether it did.
    async fn enter_hidden_inline_call(&mut self) -> Result<bool>;
    /// Sets the target running, without waiting, to a temporary breakpoint
    /// at `addr` reached by the activation whose stack pointer is at or
    /// above `sp`; `then` is what to do there. False when the breakpoint
    /// could not be set (no free slot).
    async fn run_to_return(&mut self, addr: u64, sp: u64, then: Then) -> Result<bool>;
    /// gdb's range stepping on the current thread: steps while the pc
    /// stays in `[start, end)`, in the stub, and waits for the stop (the
    /// first pc outside, or a breakpoint, watchpoint, signal or exit on
    /// the way). None when not done: the stub cannot, or the pc needs one
    /// instruction stepped on its own first (a breakpoint is there, a
    /// signal is pending). A range step still running after
    /// [`RANGE_STEP_LIMIT`] is interrupted (its stop is SIGINT's).
    async fn range_step(&mut self, start: u64, end: u64) -> Result<Option<StopReply>>;
}

/// How a forward step ended.
#[derive(Debug)]
pub enum Outcome {
    /// Where it was meant to end.
    Arrived,
    /// Something else stopped it first (a breakpoint, a watchpoint, an
    /// exit …): the stop as the stub reported it.
    Stopped(StopReply),
    /// Gave up; why.
    GaveUp(String),
    /// The target runs to a return address ([`StepTarget::run_to_return`]).
    Running,
}

/// What happens when a run to a return address arrives.
pub enum Then {
    /// Go on stepping by line ([`continue_step`]).
    Step(StepState),
    /// The step ends there (stepOut).
    Report,
}

/// Code bytes read during one line step. Code does not change while a line
/// is stepped, so a block is read once rather than once per instruction
/// (the target's memory cache is dropped at every resume).
#[derive(Default)]
struct CodeBytes {
    base: u64,
    bytes: Vec<u8>,
}

impl CodeBytes {
    const BLOCK: usize = 64;

    /// The bytes from `pc` on, if a whole instruction's worth is held.
    fn at(&self, pc: u64) -> Option<&[u8]> {
        let offset = usize::try_from(pc.checked_sub(self.base)?).ok()?;
        let rest = self.bytes.get(offset..)?;
        (rest.len() >= MAX_INSTRUCTION).then_some(rest)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepKind {
    Over,
    In,
}

#[derive(Clone, Debug)]
pub struct StepState {
    pub kind: StepKind,
    pub line: u32,
    pub file: usize,
    pub range: (u64, u64),
    /// CFA of the frame being stepped: rsp above it means it returned.
    pub cfa: u64,
}

/// The instruction at the pc: (length, is a call).
pub async fn instruction_at(t: &mut impl StepTarget, pc: u64) -> Result<(u64, bool)> {
    instruction_in(t, &mut CodeBytes::default(), pc).await
}

/// The instruction at the pc, decoded from `code` when it holds it.
async fn instruction_in(
    t: &mut impl StepTarget,
    code: &mut CodeBytes,
    pc: u64,
) -> Result<(u64, bool)> {
    if code.at(pc).is_none() {
        // A block at a time; near the end of mapped memory, just the
        // longest instruction.
        code.bytes = match t.read_code(pc, CodeBytes::BLOCK).await {
            Ok(bytes) => bytes,
            Err(_) => t.read_code(pc, MAX_INSTRUCTION).await?,
        };
        code.base = pc;
    }
    let bytes = code.at(pc).unwrap_or(&code.bytes);
    let mut decoder = Decoder::with_ip(64, bytes, pc, DecoderOptions::NONE);
    let insn = decoder.decode();
    if insn.is_invalid() {
        return Ok((1, false));
    }
    let call = matches!(
        insn.flow_control(),
        FlowControl::Call | FlowControl::IndirectCall
    );
    Ok((insn.len() as u64, call))
}

/// A user breakpoint at `pc` that decides to stop.
async fn breakpoint_stops_at(t: &mut impl StepTarget, pc: u64) -> bool {
    t.breakpoint_at(pc) && t.breakpoint_stops(pc).await
}

/// `next` (Over) or `step` (In) by source line.
pub async fn start_step(t: &mut impl StepTarget, kind: StepKind) -> Result<Outcome> {
    if kind == StepKind::Over {
        // `next` after a signal stop: the signal's handler runs (it is
        // not stepped into), then the line is stepped as usual. `step`
        // (below) and `stepi` deliver it with their first step, into
        // the handler.
        if let Some(stop) = t.run_stopped_signal_handler().await? {
            if !stop.is_plain_step() {
                return Ok(Outcome::Stopped(stop));
            }
            let at = t.pc().await?;
            if breakpoint_stops_at(t, at).await {
                return Ok(Outcome::Stopped(stop));
            }
        }
    }
    if kind == StepKind::In && t.signal_pending() {
        // `step` after a signal stop: the first step delivers the
        // signal; when that enters a handler with line information, the
        // step ends after the handler's prologue, as gdb steps into it.
        let before = t.pc().await?;
        let stop = t.single_step().await?;
        if !stop.is_plain_step() {
            return Ok(Outcome::Stopped(stop));
        }
        let pc = t.pc().await?;
        let symbols = t.symbols();
        let entered = symbols
            .function_at(pc)
            .filter(|f| pc != before && f.low == pc)
            .filter(|_| symbols.lines.row_at(pc).is_some_and(|r| r.line != 0));
        if let Some(handler) = entered {
            let landing = symbols.lines.after_prologue(handler.low, handler.high);
            return step_until(t, landing).await;
        }
    }
    if kind == StepKind::In && t.enter_hidden_inline_call().await? {
        return Ok(Outcome::Arrived);
    }
    let pc = t.pc().await?;
    let symbols = t.symbols();
    let Some((start, end, row)) = symbols.lines.line_range(pc).filter(|(_, _, r)| r.line != 0)
    else {
        // No line information here: step out to code that has some.
        return step_out(t).await;
    };
    let cfa = t.frame_cfa().await?;
    let state = StepState {
        kind,
        line: row.line,
        file: row.file,
        range: (start, end),
        cfa,
    };
    step_lines(t, state, false).await
}

/// Goes on with a line step after running to a return address: the
/// return address itself may already be where the step ends.
pub async fn continue_step(t: &mut impl StepTarget, state: StepState) -> Result<Outcome> {
    step_lines(t, state, true).await
}

async fn step_lines(
    t: &mut impl StepTarget,
    mut state: StepState,
    check_first: bool,
) -> Result<Outcome> {
    if check_first {
        let pc = t.pc().await?;
        if step_arrived(t, &mut state, pc).await? {
            return Ok(Outcome::Arrived);
        }
    }
    let mut code = CodeBytes::default();
    let mut calls = LineCalls::default();
    for _ in 0..MAX_STEPS {
        let pc = t.pc().await?;
        let span = line_span(t, &state);
        if (span.0..span.1).contains(&pc) {
            if let Some(stop) = t.range_step(span.0, span.1).await? {
                if let Some(outcome) =
                    after_range_step(t, &mut state, span, &mut calls, stop).await?
                {
                    return Ok(outcome);
                }
                continue;
            }
        }
        let rsp_before = t.sp().await?;
        let (len, is_call) = instruction_in(t, &mut code, pc).await?;
        let stop = t.single_step().await?;
        if !stop.is_plain_step() {
            return Ok(Outcome::Stopped(stop));
        }
        let new_pc = t.pc().await?;
        if breakpoint_stops_at(t, new_pc).await {
            return Ok(Outcome::Stopped(stop));
        }
        if is_call && new_pc != pc + len {
            match entered_call(t, &state, pc + len, rsp_before, new_pc).await? {
                Some(outcome) => return Ok(outcome),
                None => continue,
            }
        }
        if step_arrived(t, &mut state, new_pc).await? {
            return Ok(Outcome::Arrived);
        }
    }
    Ok(Outcome::GaveUp(format!(
        "stopped after {MAX_STEPS} instructions without reaching another line"
    )))
}

/// Goes on from the stop of a range step over `span`, as the
/// single-step loop goes on from a step: the step's outcome, or None to
/// step on.
async fn after_range_step(
    t: &mut impl StepTarget,
    state: &mut StepState,
    span: (u64, u64),
    calls: &mut LineCalls,
    stop: StopReply,
) -> Result<Option<Outcome>> {
    if let StopReply::Signal {
        signal: SIGINT,
        watch: None,
        ..
    } = stop
    {
        let pc = t.pc().await?;
        if (span.0..span.1).contains(&pc) {
            return Ok(Some(Outcome::GaveUp(format!(
                "stopped after {} s without reaching another line",
                RANGE_STEP_LIMIT.as_secs()
            ))));
        }
    }
    if !stop.is_plain_step() {
        return Ok(Some(Outcome::Stopped(stop)));
    }
    let new_pc = t.pc().await?;
    if breakpoint_stops_at(t, new_pc).await {
        return Ok(Some(Outcome::Stopped(stop)));
    }
    if (span.0..span.1).contains(&new_pc) {
        // A breakpoint in the line that decided not to stop (or one that
        // is not the user's): the next instruction is stepped off it.
        return Ok(None);
    }
    // The stub stops at the first instruction outside the range; after a
    // call of the line that is the callee's first, with the return
    // address on top of the stack.
    calls.decode(t, span).await?;
    if !calls.calls.is_empty() {
        let sp = t.sp().await?;
        let top = t.read_memory(sp, 8).await?;
        if let Ok(top) = <[u8; 8]>::try_from(top.as_slice()) {
            let return_addr = u64::from_le_bytes(top);
            if sp < state.cfa && calls.entered(return_addr, new_pc) {
                return entered_call(t, state, return_addr, sp + 8, new_pc).await;
            }
        }
    }
    Ok(step_arrived(t, state, new_pc)
        .await?
        .then_some(Outcome::Arrived))
}

/// The stretch of code around the step's range that is all its line: the
/// line table's adjacent rows of the same line and file (GCC starts a
/// statement row for each part of a long expression). A line step never
/// ends at one of them, so one range step covers them all.
fn line_span(t: &impl StepTarget, state: &StepState) -> (u64, u64) {
    const MAX_ROWS: usize = 1024;
    let symbols = t.symbols();
    let same =
        |row: &crate::symbols::lines::LineRow| row.line == state.line && row.file == state.file;
    let (mut start, mut end) = state.range;
    for _ in 0..MAX_ROWS {
        match symbols.lines.line_range(end) {
            Some((_, e, row)) if e > end && same(&row) => end = e,
            _ => break,
        }
    }
    for _ in 0..MAX_ROWS {
        match start
            .checked_sub(1)
            .and_then(|p| symbols.lines.line_range(p))
        {
            Some((s, _, row)) if s < start && same(&row) => start = s,
            _ => break,
        }
    }
    (start, end)
}

/// A call of the stepped line went to `new_pc`, to return to
/// `return_addr` with the stack pointer at `rsp_before`: stepIn stops in
/// a callee with line information (after its prologue); otherwise the
/// call is run to its return. None: the call was stepped through (no slot
/// for the temporary breakpoint) and the line step goes on.
async fn entered_call(
    t: &mut impl StepTarget,
    state: &StepState,
    return_addr: u64,
    rsp_before: u64,
    new_pc: u64,
) -> Result<Option<Outcome>> {
    let symbols = t.symbols();
    let has_lines = symbols.lines.row_at(new_pc).is_some_and(|r| r.line != 0);
    if state.kind == StepKind::In && has_lines {
        let landing = symbols
            .function_at(new_pc)
            .map(|f| symbols.lines.after_prologue(f.low, f.high))
            .unwrap_or(new_pc);
        return step_until(t, landing).await.map(Some);
    }
    if t.run_to_return(return_addr, rsp_before, Then::Step(state.clone()))
        .await?
    {
        return Ok(Some(Outcome::Running));
    }
    // No free slot for the temporary breakpoint: step through.
    loop {
        let stop = t.single_step().await?;
        if !stop.is_plain_step() {
            return Ok(Some(Outcome::Stopped(stop)));
        }
        if t.pc().await? == return_addr && t.sp().await? >= rsp_before {
            return Ok(None);
        }
    }
}

/// Each call instruction that starts in `range` (its code is `bytes`, from
/// `range.0` on): its return address, and its target when it is direct.
fn calls_in(bytes: &[u8], range: (u64, u64)) -> Vec<(u64, Option<u64>)> {
    let mut calls = Vec::new();
    let mut decoder = Decoder::with_ip(64, bytes, range.0, DecoderOptions::NONE);
    while decoder.can_decode() && decoder.ip() < range.1 {
        let insn = decoder.decode();
        if insn.is_invalid() {
            break;
        }
        match insn.flow_control() {
            FlowControl::Call => calls.push((insn.next_ip(), Some(insn.near_branch_target()))),
            FlowControl::IndirectCall => calls.push((insn.next_ip(), None)),
            _ => {}
        }
    }
    calls
}

/// The calls in a line's range, decoded once per range: a range step that
/// stops outside the range tells from them whether it entered a callee.
#[derive(Default)]
struct LineCalls {
    range: Option<(u64, u64)>,
    /// Each call's return address, and its target when it is direct.
    calls: Vec<(u64, Option<u64>)>,
}

impl LineCalls {
    async fn decode(&mut self, t: &mut impl StepTarget, range: (u64, u64)) -> Result<()> {
        if self.range == Some(range) {
            return Ok(());
        }
        self.range = Some(range);
        let len = usize::try_from(range.1 - range.0).unwrap_or(0) + MAX_INSTRUCTION;
        let bytes = t.read_code(range.0, len).await?;
        self.calls = calls_in(&bytes, range);
        Ok(())
    }

    /// Whether a stop at `pc` with `return_addr` on top of the stack is the
    /// entry into one of these calls.
    fn entered(&self, return_addr: u64, pc: u64) -> bool {
        self.calls
            .iter()
            .any(|&(ret, target)| ret == return_addr && target.is_none_or(|to| to == pc))
    }
}

/// Whether a line step ends at `pc`; if not, the step goes on from the
/// line `pc` is in (after a return into the middle of a caller's line,
/// that line is stepped to its end, as gdb does).
async fn step_arrived(t: &mut impl StepTarget, state: &mut StepState, pc: u64) -> Result<bool> {
    if (state.range.0..state.range.1).contains(&pc) {
        return Ok(false);
    }
    let symbols = t.symbols();
    let rsp_now = t.sp().await?;
    let returned = rsp_now >= state.cfa;
    match symbols.lines.row_at(pc) {
        // Code without line information: stop once out of the frame.
        None => Ok(returned),
        // An explicit "no line" entry ends the step (gdb does the same).
        Some(row) if row.line == 0 => Ok(true),
        Some(row) => {
            let new_line = row.line != state.line || row.file != state.file;
            if pc == row.addr && new_line {
                // The start of another line: a statement ends the step;
                // a non-statement entry is passed without taking its line.
                return Ok(row.is_stmt);
            }
            // The middle of a line (or the same line again): step on
            // through this line.
            if returned {
                state.cfa = t.frame_cfa().await?;
            }
            state.line = row.line;
            state.file = row.file;
            state.range = symbols
                .lines
                .line_range(pc)
                .map(|(s, e, _)| (s, e))
                .unwrap_or((pc, pc + 1));
            Ok(false)
        }
    }
}

/// Single-steps until the pc is `landing` (a callee's first line).
async fn step_until(t: &mut impl StepTarget, landing: u64) -> Result<Outcome> {
    for _ in 0..256 {
        if t.pc().await? == landing {
            break;
        }
        let stop = t.single_step().await?;
        if !stop.is_plain_step() {
            return Ok(Outcome::Stopped(stop));
        }
    }
    Ok(Outcome::Arrived)
}

/// `finish`: to the caller's return address.
pub async fn step_out(t: &mut impl StepTarget) -> Result<Outcome> {
    let Some((caller_pc, cfa)) = t.caller().await? else {
        // Outermost frame: nothing to return to; one instruction.
        return step_instruction(t).await;
    };
    if t.run_to_return(caller_pc, cfa, Then::Report).await? {
        return Ok(Outcome::Running);
    }
    for _ in 0..MAX_STEPS {
        let stop = t.single_step().await?;
        if !stop.is_plain_step() {
            return Ok(Outcome::Stopped(stop));
        }
        if t.pc().await? == caller_pc && t.sp().await? >= cfa {
            return Ok(Outcome::Arrived);
        }
    }
    Ok(Outcome::GaveUp(format!(
        "stopped after {MAX_STEPS} instructions without returning"
    )))
}

/// One instruction (`stepi`).
pub async fn step_instruction(t: &mut impl StepTarget) -> Result<Outcome> {
    let stop = t.single_step().await?;
    if stop.is_plain_step() {
        let pc = t.pc().await?;
        if !breakpoint_stops_at(t, pc).await {
            return Ok(Outcome::Arrived);
        }
    }
    Ok(Outcome::Stopped(stop))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_bytes_serve_only_whole_instructions_they_hold() {
        let code = CodeBytes {
            base: 0x1000,
            bytes: vec![0x90; CodeBytes::BLOCK],
        };
        assert_eq!(code.at(0x1000).map(<[u8]>::len), Some(64));
        assert_eq!(code.at(0x1000 + 49).map(<[u8]>::len), Some(15));
        assert!(
            code.at(0x1000 + 50).is_none(),
            "an instruction could run past the block"
        );
        assert!(code.at(0xfff).is_none());
        assert!(CodeBytes::default().at(0).is_none());
    }

    #[test]
    fn a_lines_calls_and_whether_a_stop_entered_one() {
        // lines-O0's call line: mov; mov; call twice; mov; mov; mov;
        // call twice; then an indirect call through rax, and a call that
        // starts past the range (not the line's).
        let code: Vec<u8> = [
            &[0x48, 0x8b, 0x05, 0xe5, 0x1a, 0x00, 0x00][..], // 100514 mov rax, [rip+..]
            &[0x48, 0x89, 0xc7],                             // 10051b mov rdi, rax
            &[0xe8, 0x20, 0xff, 0xff, 0xff],                 // 10051e call 100443
            &[0x48, 0x89, 0xc3],                             // 100523 mov rbx, rax
            &[0xff, 0xd0],                                   // 100526 call rax
            &[0xe8, 0x00, 0x00, 0x00, 0x00],                 // 100528 call (past the range)
        ]
        .concat();
        let range = (0x100514, 0x100528);
        let calls = calls_in(&code, range);
        assert_eq!(calls, [(0x100523, Some(0x100443)), (0x100528, None)]);
        let line = LineCalls {
            range: Some(range),
            calls,
        };
        assert!(line.entered(0x100523, 0x100443));
        assert!(
            !line.entered(0x100523, 0x100444),
            "a direct call goes to its target"
        );
        assert!(
            line.entered(0x100528, 0x200000),
            "an indirect call goes anywhere"
        );
        assert!(!line.entered(0x10052d, 0x10052d), "not a call of this line");
    }
}

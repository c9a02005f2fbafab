//! Stepping by source line and by instruction, as gdb does it: single-step
//! while the pc stays in the current line's range; a call is stepped over
//! with a temporary breakpoint at its return address (one continue, not
//! thousands of steps); stop at the first statement of a different line;
//! after returning into the middle of a caller's line, go on to the start
//! of its next line. stepIn stops after the callee's prologue when the
//! callee has line information.

use anyhow::{Context, Result};
use iced_x86::{Decoder, DecoderOptions, FlowControl};
use serde_json::json;

use super::session::{Session, Target, Then};

/// Bounds a step so a line that loops forever ends with a report.
const MAX_STEPS: usize = 20_000;

/// The longest x86 instruction.
const MAX_INSTRUCTION: usize = 15;

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

impl Session {
    fn target_mut(&mut self) -> Result<&mut Target> {
        self.target.as_mut().context("no target")
    }

    /// The CFA of the innermost frame (for telling frames apart).
    async fn current_cfa(&mut self) -> Result<u64> {
        let target = self.target_mut()?;
        let thread = target.thread.clone();
        let mut regs = target.top_registers(&thread).await?;
        let symbols = target.symbols.clone();
        let _ = symbols
            .unwinder
            .unwind(&mut regs, true, &mut target.memory())
            .await;
        // Without CFI or a frame pointer, the stack pointer is the best guess.
        Ok(regs.cfa.unwrap_or(regs.get(7).unwrap_or(0)))
    }

    /// The instruction at the pc: (length, is a call).
    pub(super) async fn instruction_at(&mut self, pc: u64) -> Result<(u64, bool)> {
        self.instruction_in(&mut CodeBytes::default(), pc).await
    }

    /// The instruction at the pc, decoded from `code` when it holds it.
    async fn instruction_in(&mut self, code: &mut CodeBytes, pc: u64) -> Result<(u64, bool)> {
        if code.at(pc).is_none() {
            let rsp = &mut self.target_mut()?.rsp;
            // A block at a time; near the end of mapped memory, just the
            // longest instruction.
            code.bytes = match rsp.read_memory(pc, CodeBytes::BLOCK).await {
                Ok(bytes) => bytes,
                Err(_) => rsp.read_memory(pc, MAX_INSTRUCTION).await?,
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

    pub(super) fn report_step(&mut self, description: Option<String>) -> Result<()> {
        let thread = Target::thread_id(&self.target_mut()?.thread);
        let mut body = json!({ "reason": "step", "threadId": thread, "allThreadsStopped": true });
        if let Some(d) = description {
            body["description"] = json!(d);
        }
        self.out.event("stopped", body);
        Ok(())
    }

    pub async fn start_step(&mut self, kind: StepKind) -> Result<()> {
        if kind == StepKind::Over {
            // `next` after a signal stop: the signal's handler runs (it is
            // not stepped into), then the line is stepped as usual. `step`
            // (below) and `stepi` deliver it with their first step, into
            // the handler.
            let target = self.target_mut()?;
            let thread = target.thread.clone();
            if let Some(signal) = target.take_signal_for(&thread) {
                if let Some(stop) = self.run_signal_handler(signal).await? {
                    if !stop.is_plain_step() {
                        return self.report_stop_reply(stop).await;
                    }
                    let at = self.target_mut()?.pc().await?;
                    if !self.breakpoint_ids_at(at).is_empty()
                        && !self.decide_breakpoints(at).await.is_empty()
                    {
                        return self.report_stop_reply(stop).await;
                    }
                }
            }
        }
        if kind == StepKind::In {
            // `step` after a signal stop: the first step delivers the
            // signal; when that enters a handler with line information, the
            // step ends after the handler's prologue, as gdb steps into it.
            let target = self.target_mut()?;
            let thread = target.thread.clone();
            if matches!(&target.pending_signal, Some((t, _)) if *t == thread) {
                let before = target.pc().await?;
                let stop = self.single_step().await?;
                if !stop.is_plain_step() {
                    return self.report_stop_reply(stop).await;
                }
                let target = self.target_mut()?;
                let pc = target.pc().await?;
                let symbols = target.symbols.clone();
                let entered = symbols
                    .function_at(pc)
                    .filter(|f| pc != before && f.low == pc)
                    .filter(|_| symbols.lines.row_at(pc).is_some_and(|r| r.line != 0));
                if let Some(handler) = entered {
                    let landing = symbols.lines.after_prologue(handler.low, handler.high);
                    return self.step_until(landing).await;
                }
            }
        }
        if kind == StepKind::In && self.step_into_hidden_inline_call().await? {
            return Ok(());
        }
        let target = self.target_mut()?;
        let pc = target.pc().await?;
        let symbols = target.symbols.clone();
        let Some((start, end, row)) = symbols.lines.line_range(pc).filter(|(_, _, r)| r.line != 0)
        else {
            // No line information here: step out to code that has some.
            return self.step_out().await;
        };
        let cfa = self.current_cfa().await?;
        let state = StepState {
            kind,
            line: row.line,
            file: row.file,
            range: (start, end),
            cfa,
        };
        self.step_lines(state, false).await
    }

    /// Goes on with a line step after running to a return address: the
    /// return address itself may already be where the step ends.
    pub async fn continue_step(&mut self, state: StepState) -> Result<()> {
        self.step_lines(state, true).await
    }

    async fn step_lines(&mut self, mut state: StepState, check_first: bool) -> Result<()> {
        if check_first {
            let pc = self.target_mut()?.pc().await?;
            if self.step_arrived(&mut state, pc).await? {
                return self.report_step(None);
            }
        }
        let mut code = CodeBytes::default();
        for _ in 0..MAX_STEPS {
            let target = self.target_mut()?;
            let pc = target.pc().await?;
            let rsp_before = target.rsp_value().await?;
            let (len, is_call) = self.instruction_in(&mut code, pc).await?;
            let stop = self.single_step().await?;
            if !stop.is_plain_step() {
                return self.report_stop_reply(stop).await;
            }
            let target = self.target_mut()?;
            let new_pc = target.pc().await?;
            let symbols = target.symbols.clone();
            if !self.breakpoint_ids_at(new_pc).is_empty()
                && !self.decide_breakpoints(new_pc).await.is_empty()
            {
                return self.report_stop_reply(stop).await;
            }
            if is_call && new_pc != pc + len {
                let return_addr = pc + len;
                let has_lines = symbols.lines.row_at(new_pc).is_some_and(|r| r.line != 0);
                if state.kind == StepKind::In && has_lines {
                    let landing = symbols
                        .function_at(new_pc)
                        .map(|f| symbols.lines.after_prologue(f.low, f.high))
                        .unwrap_or(new_pc);
                    return self.step_until(landing).await;
                }
                if self
                    .run_to_return(return_addr, rsp_before, Then::Step(state.clone()))
                    .await?
                {
                    return Ok(());
                }
                // No free slot for the temporary breakpoint: step through.
                loop {
                    let stop = self.single_step().await?;
                    if !stop.is_plain_step() {
                        return self.report_stop_reply(stop).await;
                    }
                    let target = self.target_mut()?;
                    if target.pc().await? == return_addr && target.rsp_value().await? >= rsp_before
                    {
                        break;
                    }
                }
                continue;
            }
            if self.step_arrived(&mut state, new_pc).await? {
                return self.report_step(None);
            }
        }
        self.report_step(Some(format!(
            "stopped after {MAX_STEPS} instructions without reaching another line"
        )))
    }

    /// Whether a line step ends at `pc`; if not, the step goes on from the
    /// line `pc` is in (after a return into the middle of a caller's line,
    /// that line is stepped to its end, as gdb does).
    async fn step_arrived(&mut self, state: &mut StepState, pc: u64) -> Result<bool> {
        if (state.range.0..state.range.1).contains(&pc) {
            return Ok(false);
        }
        let symbols = self.target_mut()?.symbols.clone();
        let rsp_now = self.target_mut()?.rsp_value().await?;
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
                    state.cfa = self.current_cfa().await?;
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
    async fn step_until(&mut self, landing: u64) -> Result<()> {
        for _ in 0..256 {
            let target = self.target_mut()?;
            if target.pc().await? == landing {
                break;
            }
            let stop = self.single_step().await?;
            if !stop.is_plain_step() {
                return self.report_stop_reply(stop).await;
            }
        }
        self.report_step(None)
    }

    pub async fn step_out(&mut self) -> Result<()> {
        let frames = self.frames().await?;
        let top_physical = frames.first().map(|f| f.physical).unwrap_or(0);
        let caller = frames
            .iter()
            .find(|f| f.physical == top_physical + 1)
            .cloned();
        let cfa = frames.first().and_then(|f| f.regs.cfa);
        let (Some(caller), Some(cfa)) = (caller, cfa) else {
            // Outermost frame: nothing to return to; one instruction.
            return self.step_instruction().await;
        };
        if self.run_to_return(caller.pc, cfa, Then::Report).await? {
            return Ok(());
        }
        for _ in 0..MAX_STEPS {
            let stop = self.single_step().await?;
            if !stop.is_plain_step() {
                return self.report_stop_reply(stop).await;
            }
            let target = self.target_mut()?;
            if target.pc().await? == caller.pc && target.rsp_value().await? >= cfa {
                return self.report_step(None);
            }
        }
        self.report_step(Some(format!(
            "stopped after {MAX_STEPS} instructions without returning"
        )))
    }

    pub async fn step_instruction(&mut self) -> Result<()> {
        let stop = self.single_step().await?;
        if stop.is_plain_step() {
            let pc = self.target_mut()?.pc().await?;
            if self.breakpoint_ids_at(pc).is_empty() || self.decide_breakpoints(pc).await.is_empty()
            {
                return self.report_step(None);
            }
        }
        self.report_stop_reply(stop).await
    }
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
}

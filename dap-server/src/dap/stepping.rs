//! The DAP side of stepping: the session as the debugger core's target
//! ([`debugger::Target`], and [`StepTarget`] for forward stepping in
//! `debugger::stepping`), and the outcomes of `next`, `stepIn`, `stepOut`
//! and instruction steps as DAP events.

use std::rc::Rc;

use anyhow::{Context, Result};

use super::session::Session;
use crate::debugger;
use crate::debugger::stepping::{self, Outcome, StepKind, StepState, StepTarget, Then};
use crate::debugger::target::TargetState;
use crate::rsp::StopReply;
use crate::symbols::Symbols;

impl debugger::Target for Session {
    fn symbols(&self) -> Rc<Symbols> {
        self.dbg.target.as_ref().expect("a target").symbols.clone()
    }
    async fn pc(&mut self) -> Result<u64> {
        self.dbg.target.as_mut().context("no target")?.pc().await
    }
    async fn sp(&mut self) -> Result<u64> {
        self.dbg
            .target
            .as_mut()
            .context("no target")?
            .rsp_value()
            .await
    }
    async fn read_memory(&mut self, addr: u64, len: usize) -> Result<Vec<u8>> {
        let target = self.dbg.target.as_mut().context("no target")?;
        crate::symbols::TargetMemory::read(&mut target.memory(), addr, len).await
    }
    async fn insert_temporary(&mut self, addr: u64) -> Result<bool> {
        let target = self.dbg.target.as_mut().context("no target")?;
        if target.inserted.contains(&addr) || self.dbg.temporaries.contains(&addr) {
            return Ok(false);
        }
        target.rsp.insert_breakpoint(addr).await?;
        self.dbg.temporaries.push(addr);
        Ok(true)
    }
    async fn remove_temporary(&mut self, addr: u64) -> Result<()> {
        self.dbg.temporaries.retain(|&a| a != addr);
        let target = self.dbg.target.as_mut().context("no target")?;
        target.rsp.remove_breakpoint(addr).await
    }
    fn breakpoint_at(&self, pc: u64) -> bool {
        !self.dbg.breakpoint_ids_at(pc).is_empty()
    }
    async fn breakpoint_stops(&mut self, pc: u64) -> bool {
        !self.dbg.decide_breakpoints(pc).await.is_empty()
    }
}

impl StepTarget for Session {
    async fn single_step(&mut self) -> Result<StopReply> {
        Session::single_step(self).await
    }
    async fn read_code(&mut self, addr: u64, len: usize) -> Result<Vec<u8>> {
        self.target_mut()?.rsp.read_memory(addr, len).await
    }
    async fn frame_cfa(&mut self) -> Result<u64> {
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
    async fn caller(&mut self) -> Result<Option<(u64, u64)>> {
        let frames = self.dbg.frames().await?;
        let top_physical = frames.first().map(|f| f.physical).unwrap_or(0);
        let caller = frames.iter().find(|f| f.physical == top_physical + 1);
        let cfa = frames.first().and_then(|f| f.regs.cfa);
        Ok(caller.zip(cfa).map(|(caller, cfa)| (caller.pc, cfa)))
    }
    fn signal_pending(&self) -> bool {
        self.dbg
            .target
            .as_ref()
            .is_some_and(|t| matches!(&t.pending_signal, Some((thread, _)) if *thread == t.thread))
    }
    async fn run_stopped_signal_handler(&mut self) -> Result<Option<StopReply>> {
        let target = self.target_mut()?;
        let thread = target.thread.clone();
        match target.take_signal_for(&thread) {
            Some(signal) => self.run_signal_handler(signal).await,
            None => Ok(None),
        }
    }
    async fn enter_hidden_inline_call(&mut self) -> Result<bool> {
        self.dbg.step_into_hidden_inline_call().await
    }
    async fn run_to_return(&mut self, addr: u64, sp: u64, then: Then) -> Result<bool> {
        Session::run_to_return(self, addr, sp, then).await
    }
}

impl Session {
    fn target_mut(&mut self) -> Result<&mut TargetState> {
        self.dbg.target.as_mut().context("no target")
    }

    pub(super) fn report_step(&mut self, description: Option<String>) -> Result<()> {
        let thread = TargetState::thread_id(&self.target_mut()?.thread);
        let mut stopped = self.out.stopped("step", thread);
        if let Some(d) = description {
            stopped = stopped.description(d);
        }
        stopped.send();
        Ok(())
    }

    async fn report_step_outcome(&mut self, outcome: Outcome) -> Result<()> {
        match outcome {
            Outcome::Arrived => self.report_step(None),
            Outcome::Stopped(stop) => self.report_stop_reply(stop).await,
            Outcome::GaveUp(why) => self.report_step(Some(why)),
            // The stop is reported when it comes (`arrived_to_return`).
            Outcome::Running => Ok(()),
        }
    }

    pub async fn start_step(&mut self, kind: StepKind) -> Result<()> {
        let outcome = stepping::start_step(self, kind).await?;
        self.report_step_outcome(outcome).await
    }

    /// Goes on with a line step after running to a return address.
    pub async fn continue_step(&mut self, state: StepState) -> Result<()> {
        let outcome = stepping::continue_step(self, state).await?;
        self.report_step_outcome(outcome).await
    }

    pub async fn step_out(&mut self) -> Result<()> {
        let outcome = stepping::step_out(self).await?;
        self.report_step_outcome(outcome).await
    }

    pub async fn step_instruction(&mut self) -> Result<()> {
        let outcome = stepping::step_instruction(self).await?;
        self.report_step_outcome(outcome).await
    }
}

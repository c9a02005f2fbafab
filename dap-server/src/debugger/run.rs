//! Run control: resuming the target (stepping off a breakpoint at the pc
//! first), single steps with breakpoints lifted and signals delivered as
//! gdb does, a signal handler run back to where its thread stopped, runs to
//! a return address for steps, and runs over a recording (forward to its
//! end, backwards by the stub or by replaying afresh). The core implements
//! the stepping and reverse traits ([`Target`], [`StepTarget`],
//! [`ReverseTarget`]) here, over its own state.
//!
//! Nothing is reported from here: a run that stopped before it went on
//! returns the stop (or a step's [`Outcome`]) for the front end to report.

use std::rc::Rc;

use anyhow::{Context, Result};

use super::reverse::{self, ReverseTarget};
use super::signals::{self, SIGINT, SIGTRAP};
use super::stepping::{self, Outcome, StepTarget, Then, RANGE_STEP_LIMIT};
use super::target::{RunMode, TargetState};
use super::{Debugger, Target};
use crate::engine::ReplayPosition;
use crate::rsp::{ReplayEdge, RspClient, StopReply};
use crate::symbols::Symbols;

impl Debugger {
    /// Resumes all threads (a breakpoint at the pc stepped over first);
    /// `announce`: say so ([`super::Events::continued`]; not for a
    /// breakpoint that decided not to stop, which the user never saw).
    /// Returns the stop to report when the target stopped before it ran;
    /// None when it runs (or there is no target).
    pub async fn resume(&mut self, announce: bool) -> Result<Option<StopReply>> {
        if let Some(end) = self.forward_past_end().await? {
            return Ok(Some(end));
        }
        let Some(stop) = self.step_off_breakpoint().await? else {
            return Ok(None);
        };
        if let Some(stop) = stop {
            // The one instruction already stopped (a watchpoint, an exit).
            return Ok(Some(stop));
        }
        let target = self.target.as_mut().context("no target")?;
        target.invalidate();
        target.running = Some(RunMode::Continue);
        match target.pending_signal.take() {
            Some((thread, signal)) => target.rsp.resume_continue_with(&thread, Some(signal))?,
            None => target.rsp.resume_continue()?,
        }
        if announce {
            let thread = TargetState::thread_id(&target.thread);
            self.events.continued(thread);
        }
        Ok(None)
    }

    /// If a breakpoint sits at the pc, steps one instruction with it
    /// removed (a hardware breakpoint would fire again at once). Returns
    /// None when there is no target; Some(None) when the target may go on;
    /// Some(Some(stop)) when that one step stopped for another reason.
    async fn step_off_breakpoint(&mut self) -> Result<Option<Option<StopReply>>> {
        let Some(target) = self.target.as_mut() else {
            return Ok(None);
        };
        let pc = target.pc().await?;
        if !target.inserted.contains(&pc) {
            return Ok(Some(None));
        }
        let stop = self.single_step().await?;
        match stop {
            StopReply::Signal {
                signal: SIGTRAP,
                watch: None,
                ..
            } => Ok(Some(None)),
            other => Ok(Some(Some(other))),
        }
    }

    /// One instruction on the current thread, with any breakpoint at the
    /// pc lifted for it; waits for the stop. A signal the thread stopped
    /// with is delivered by the step (into its handler, if it has one); a
    /// signal the user does not stop for (SIGCHLD …) that arrives instead
    /// runs its handler to completion and the step is made again, as gdb
    /// steps over handlers of `nostop` signals.
    pub async fn single_step(&mut self) -> Result<StopReply> {
        let target = self.target.as_mut().context("no target")?;
        let thread = target.thread.clone();
        let signal = target.take_signal_for(&thread);
        let mut stop = self.step_raw(signal).await?;
        loop {
            let target = self.target.as_mut().context("no target")?;
            let Some(quiet) = target.quiet_signal(&stop) else {
                break;
            };
            stop = match self.run_signal_handler(quiet).await? {
                Some(done) => done,
                None => self.step_raw(None).await?,
            };
        }
        if let Some(target) = self.target.as_mut() {
            target.note_signal(&stop);
        }
        Ok(stop)
    }

    /// Delivers `signal` to the current thread and lets its handler run
    /// until it returns to where the thread stopped (a temporary
    /// breakpoint there). None when the thread is back there, its
    /// instruction not yet run; otherwise the stop that ended it (the
    /// program died, a breakpoint in the handler, or the signal was
    /// ignored and the step made: a plain step stop).
    pub async fn run_signal_handler(&mut self, signal: u8) -> Result<Option<StopReply>> {
        let target = self.target.as_mut().context("no target")?;
        let pc = target.pc().await?;
        let sp = target.rsp_value().await?;
        let (len, _) = stepping::instruction_at(self, pc).await?;
        let stop = self.step_raw(Some(signal)).await?;
        if !matches!(
            stop,
            StopReply::Signal {
                signal: SIGTRAP,
                watch: None,
                ..
            }
        ) {
            return Ok(Some(stop));
        }
        let target = self.target.as_mut().context("no target")?;
        let new_pc = target.pc().await?;
        let new_sp = target.rsp_value().await?;
        // The kernel builds a signal frame (hundreds of bytes) below the
        // red zone; no single instruction that leaves the straight line
        // moves the stack pointer that far.
        let entered = new_pc != pc.wrapping_add(len) && sp.saturating_sub(new_sp) > 256;
        if !entered {
            return Ok(Some(stop));
        }
        let temporary = !target.inserted.contains(&pc);
        if temporary {
            target.rsp.insert_breakpoint(pc).await?;
        }
        target.invalidate();
        target.rsp.resume_continue()?;
        let stop = loop {
            let stop = target.wait_stop().await?;
            match (target.quiet_signal(&stop), &stop) {
                (Some(quiet), StopReply::Signal { thread, .. }) => {
                    let thread = thread.clone().unwrap_or_else(|| target.thread.clone());
                    target.rsp.resume_continue_with(&thread, Some(quiet))?;
                }
                _ => break stop,
            }
        };
        if let StopReply::Signal {
            thread: Some(t), ..
        } = &stop
        {
            target.thread = t.clone();
        }
        target.invalidate();
        if !matches!(stop, StopReply::Signal { .. }) {
            return Ok(Some(stop));
        }
        if temporary {
            target.rsp.remove_breakpoint(pc).await?;
        }
        let back = matches!(
            stop,
            StopReply::Signal {
                signal: SIGTRAP,
                watch: None,
                ..
            }
        ) && target.pc().await? == pc
            && target.rsp_value().await? == sp;
        Ok(if back { None } else { Some(stop) })
    }

    /// One instruction on the current thread, delivering `signal` (if
    /// any), with any breakpoint at the pc lifted for it.
    async fn step_raw(&mut self, signal: Option<u8>) -> Result<StopReply> {
        if let Some(end) = self.forward_past_end().await? {
            return Ok(end);
        }
        let target = self.target.as_mut().context("no target")?;
        let pc = target.pc().await?;
        let lifted = target.inserted.contains(&pc);
        if lifted {
            target.rsp.remove_breakpoint(pc).await?;
        }
        target.invalidate();
        let thread = target.thread.clone();
        target.rsp.resume_step_with(&thread, signal)?;
        let stop = target.wait_stop().await;
        if lifted {
            if let Err(e) = target.rsp.insert_breakpoint(pc).await {
                self.events.output(
                    "stderr",
                    format!("vmdbg: cannot put back the breakpoint at {pc:#x}: {e:#}\n"),
                );
            }
        }
        let stop = stop?;
        if let StopReply::Signal {
            thread: Some(t), ..
        } = &stop
        {
            if let Some(target) = self.target.as_mut() {
                target.thread = t.clone();
            }
        }
        Ok(stop)
    }

    /// Sets the target running towards a temporary breakpoint.
    pub async fn run_to_return(&mut self, addr: u64, rsp: u64, then: Then) -> Result<bool> {
        self.forward_past_end().await?;
        let target = self.target.as_mut().context("no target")?;
        if !target.inserted.contains(&addr) && target.rsp.insert_breakpoint(addr).await.is_err() {
            return Ok(false);
        }
        target.invalidate();
        target.running = Some(RunMode::ToReturn {
            addr,
            rsp,
            then: Box::new(then),
        });
        match target.pending_signal.take() {
            Some((thread, signal)) => target.rsp.resume_continue_with(&thread, Some(signal))?,
            None => target.rsp.resume_continue()?,
        }
        Ok(true)
    }

    /// A run to a return address ([`RunMode::ToReturn`]) stopped. In the
    /// activation it waited for, the step goes on or ends there; a
    /// breakpoint on the way that does not stop lets the run go on;
    /// anything else ends the step with that stop.
    pub async fn arrived_to_return(
        &mut self,
        stop: StopReply,
        addr: u64,
        rsp_wanted: u64,
        then: Then,
    ) -> Result<Outcome> {
        let target = self.target.as_mut().context("no target")?;
        let is_trap = matches!(
            stop,
            StopReply::Signal {
                signal: SIGTRAP,
                watch: None,
                ..
            }
        );
        let pc = if matches!(stop, StopReply::Signal { .. }) {
            target.pc().await?
        } else {
            0
        };
        let here = is_trap && pc == addr;
        let rsp_now = if here { target.rsp_value().await? } else { 0 };
        if here && rsp_now < rsp_wanted {
            // A deeper activation (recursion) reached the address: go on.
            target.invalidate();
            target.running = Some(RunMode::ToReturn {
                addr,
                rsp: rsp_wanted,
                then: Box::new(then),
            });
            // The temporary breakpoint is at the pc: step off it first.
            let temp_is_user = target.inserted.contains(&addr);
            if !temp_is_user {
                target.rsp.remove_breakpoint(addr).await?;
            }
            let stepped = self.single_step().await?;
            let target = self.target.as_mut().context("no target")?;
            if !temp_is_user {
                target.rsp.insert_breakpoint(addr).await?;
            }
            if !matches!(
                stepped,
                StopReply::Signal {
                    signal: SIGTRAP,
                    watch: None,
                    ..
                }
            ) {
                target.running = None;
                if !temp_is_user {
                    let _ = target.rsp.remove_breakpoint(addr).await;
                }
                return Ok(Outcome::Stopped(stepped));
            }
            target.invalidate();
            target.rsp.resume_continue()?;
            return Ok(Outcome::Running);
        }
        if matches!(stop, StopReply::Signal { .. }) && !target.inserted.contains(&addr) {
            target.rsp.remove_breakpoint(addr).await?;
        }
        if !here {
            if is_trap
                && !self.breakpoint_ids_at(pc).is_empty()
                && self.decide_breakpoints(pc).await.is_empty()
            {
                // A breakpoint on the way that does not stop (its condition
                // is false, a logpoint): go on to the return address.
                return self.resume_to_return(addr, rsp_wanted, then).await;
            }
            // Something else stopped it first (a breakpoint, a watchpoint,
            // pause, an exit): that is how the step ended.
            return Ok(Outcome::Stopped(stop));
        }
        if !self.breakpoint_ids_at(pc).is_empty()
            && matches!(then, Then::Step(_))
            && !self.decide_breakpoints(pc).await.is_empty()
        {
            // gdb stops at a user breakpoint on the return address too.
            return Ok(Outcome::Stopped(stop));
        }
        match then {
            Then::Report => Ok(Outcome::Arrived),
            Then::Step(state) => stepping::continue_step(self, state).await,
        }
    }

    /// Goes on running to a return address after a breakpoint on the way
    /// decided not to stop: off the breakpoint, then the run again.
    async fn resume_to_return(&mut self, addr: u64, rsp: u64, then: Then) -> Result<Outcome> {
        match self.step_off_breakpoint().await? {
            None => return Ok(Outcome::Running),
            Some(Some(stop)) => return Ok(Outcome::Stopped(stop)),
            Some(None) => {}
        }
        if self.run_to_return(addr, rsp, then).await? {
            return Ok(Outcome::Running);
        }
        Ok(Outcome::GaveUp(
            "the step could not set its temporary breakpoint".into(),
        ))
    }

    /// Whether the engine goes back by replaying afresh (QEMU: see
    /// `engine::qemu::record`) rather than by the stub's `bs`/`bc`.
    pub fn can_replay_afresh(&self) -> bool {
        self.replay
            .as_ref()
            .is_some_and(|replay| replay.goes_back_afresh())
    }

    /// Puts the replay at `icount` in a fresh engine process and connects
    /// to it again: the same breakpoints, watchpoints and temporaries.
    async fn replay_afresh(&mut self, icount: u64) -> Result<()> {
        let target = self.target.as_mut().context("no target")?;
        let replay = self.replay.as_mut().context("not a recorded session")?;
        replay
            .afresh(icount)
            .context("the engine cannot replay afresh")??;
        let endpoint = replay.rsp_endpoint().context("the VM is gone")?;
        target.rsp = RspClient::connect(&endpoint).await?;
        target.invalidate();
        target.inserted.clear();
        target.watches.clear();
        self.reinsert_breakpoints().await;
        let target = self.target.as_mut().context("no target")?;
        for &addr in &self.temporaries {
            target.rsp.insert_breakpoint(addr).await?;
        }
        Ok(())
    }

    /// The stop where a fresh replay stands (a plain step stop, its edge
    /// marked).
    async fn stop_here(&mut self) -> Result<StopReply> {
        let thread = self.target.as_ref().context("no target")?.thread.clone();
        self.mark_replay_edge(StopReply::Signal {
            signal: SIGTRAP,
            thread: Some(thread),
            watch: None,
            breakpoint: false,
            replay_edge: None,
        })
        .await
    }

    /// Reverse-continue by replaying afresh: from the start forwards to
    /// `now`, noting where each breakpoint and watchpoint stopped it; then
    /// a fresh replay to the last of them (or the start, if none).
    async fn scan_back(&mut self, now: u64) -> Result<StopReply> {
        self.replay_afresh(0).await?;
        let mut last: Option<(u64, StopReply)> = None;
        loop {
            let target = self.target.as_mut().context("no target")?;
            let replay = self.replay.as_mut().context("not a recorded session")?;
            replay.break_at(now)?;
            // Off a breakpoint at the pc first, as any continue.
            let pc = target.pc().await?;
            if target.inserted.contains(&pc) || self.temporaries.contains(&pc) {
                target.rsp.remove_breakpoint(pc).await?;
                let thread = target.thread.clone();
                target.invalidate();
                target.rsp.resume_step_with(&thread, None)?;
                let stepped = target.wait_stop().await?;
                target.rsp.insert_breakpoint(pc).await?;
                if !matches!(
                    stepped,
                    StopReply::Signal {
                        signal: SIGTRAP,
                        ..
                    }
                ) {
                    break;
                }
            }
            let at = self.replay_position().map_or(now, |p| p.at);
            if at >= now {
                break;
            }
            let target = self.target.as_mut().context("no target")?;
            target.invalidate();
            target.rsp.resume_continue()?;
            let stop = target.wait_stop().await?;
            let at = self.replay_position().map_or(now, |p| p.at);
            if at >= now
                || !matches!(
                    stop,
                    StopReply::Signal {
                        signal: SIGTRAP,
                        ..
                    }
                )
            {
                break;
            }
            last = Some((at, stop));
        }
        match last {
            Some((at, stop)) => {
                self.replay_afresh(at).await?;
                Ok(stop)
            }
            None => {
                self.replay_afresh(0).await?;
                self.stop_here().await
            }
        }
    }

    /// `bs` or `bc`, waiting for the stop; an edge of the recording marked.
    async fn run_backwards(&mut self, to_stop: bool) -> Result<StopReply> {
        let target = self.target.as_mut().context("no target")?;
        target.invalidate();
        if to_stop {
            target.rsp.resume_reverse_continue()?;
        } else {
            target.rsp.resume_reverse_step()?;
        }
        let stop = target.wait_stop().await?;
        self.mark_replay_edge(stop).await
    }

    /// Where a recorded kernel session's replay is (None for other targets).
    pub fn replay_position(&mut self) -> Option<ReplayPosition> {
        let replay = self.replay.as_mut()?;
        match replay.position()? {
            Ok(position) => Some(position),
            Err(e) => {
                self.events.output(
                    "stderr",
                    format!("vmdbg: cannot tell where the replay is: {e:#}\n"),
                );
                None
            }
        }
    }

    /// A stop at either end of the recording says so, whether the stub
    /// said it (`replaylog`) or the engine knows where its replay is.
    pub async fn mark_replay_edge(&mut self, stop: StopReply) -> Result<StopReply> {
        let StopReply::Signal {
            signal,
            thread,
            watch,
            breakpoint,
            replay_edge: None,
        } = stop
        else {
            return Ok(stop);
        };
        let replay_edge = self.replay_position().and_then(|p| {
            if p.at == 0 {
                Some(ReplayEdge::Begin)
            } else if p.at >= p.end {
                Some(ReplayEdge::End)
            } else {
                None
            }
        });
        Ok(StopReply::Signal {
            signal,
            thread,
            watch,
            breakpoint,
            replay_edge,
        })
    }

    /// Before a forward run of a replay: at the end of the recording, the
    /// stop that says so (nothing runs); otherwise None, the run stopping
    /// at the end if it gets there.
    pub async fn forward_past_end(&mut self) -> Result<Option<StopReply>> {
        let Some(position) = self.replay_position() else {
            return Ok(None);
        };
        if position.at >= position.end {
            let target = self.target.as_ref().context("no target")?;
            return Ok(Some(StopReply::Signal {
                signal: SIGTRAP,
                thread: Some(target.thread.clone()),
                watch: None,
                breakpoint: false,
                replay_edge: Some(ReplayEdge::End),
            }));
        }
        if let Some(replay) = self.replay.as_mut() {
            replay.keep_inside()?;
        }
        Ok(None)
    }
}

/// How a reverse-continue ended.
pub enum Back {
    /// As the reverse run says (arrived, gave up, the start).
    Outcome(reverse::Outcome),
    /// Stopped by this (a breakpoint, a watchpoint the write of which was
    /// not found …): told as any stop.
    Stop(StopReply),
    /// On the instruction that last wrote a watched location: the data
    /// breakpoints there and the write.
    Wrote {
        ids: Vec<i64>,
        write: reverse::Write,
    },
}

/// Why a signal stop stopped, as the core sees it (the front end tells its
/// client, or lets the run go on).
pub enum Why {
    /// At an edge of the recording.
    ReplayEdge(ReplayEdge),
    /// A watched location was accessed at `addr`: these data breakpoints.
    Watch { addr: u64, ids: Vec<i64> },
    /// The user's interrupt.
    Pause,
    /// A program's signal, which it gets when it resumes (as gdb says it:
    /// "Program received signal SIGUSR1, User defined signal 1.").
    ProgramSignal {
        name: String,
        meaning: &'static str,
        description: String,
    },
    /// A kernel's exception, as the stub reports it.
    Exception {
        name: &'static str,
        description: String,
    },
    /// At the module loader's watch ([`Debugger::module_watch`]): the
    /// front end reads the new module, then asks
    /// [`Debugger::breakpoints_stop`] if user breakpoints are there too.
    ModuleLoader { pc: u64 },
    /// User breakpoints that stop (`function`: one of them is on a function).
    Breakpoints { ids: Vec<i64>, function: bool },
    /// User breakpoints, none of which stops: the run goes on.
    NotStopping,
    /// A plain stop (a step, a stop with nothing at the pc).
    Step,
}

impl Debugger {
    /// Stops the running target for a moment (breakpoints are set while
    /// it runs; the caller resumes it). The stop reply when the target
    /// ended instead (an exit): the run is not over until that is handled.
    pub async fn halt(&mut self) -> Result<Option<StopReply>> {
        let target = self.target.as_mut().context("no target")?;
        target.rsp.interrupt()?;
        let stop = target.wait_stop().await?;
        if !matches!(stop, StopReply::Signal { .. }) {
            return Ok(Some(stop));
        }
        // A signal that came before the interrupt is the program's: it
        // gets it when it goes on.
        target.note_signal(&stop);
        target.invalidate();
        target.running = None;
        Ok(None)
    }

    /// A stop reply that ends a run: the run state it ends, the thread it
    /// is on (a program's new thread listed first), the program's signal
    /// remembered. Returns what the run was doing; None when it goes on
    /// (a signal the user does not stop for, passed on) or there is no
    /// target.
    pub async fn run_ended(&mut self, stop: &StopReply) -> Option<Option<RunMode>> {
        let target = self.target.as_mut()?;
        let mode = target.running.take();
        target.invalidate();
        if let StopReply::Signal {
            thread: Some(t), ..
        } = stop
        {
            target.thread = t.clone();
        }
        if target.program && !target.threads.contains(&target.thread) {
            // A program's threads come and go (libtest runs each test in
            // its own): the stopped one must be listed before editors ask,
            // or VS Code shows no stop (seen with `threads` alone).
            let mut now = match target.rsp.threads().await {
                Ok(listed) if !listed.is_empty() => listed,
                _ => target.threads.clone(),
            };
            if !now.contains(&target.thread) {
                now.push(target.thread.clone());
            }
            self.events.threads_changed(&target.threads, &now);
            target.threads = now;
        }
        if let Some(quiet) = target.quiet_signal(stop) {
            // SIGCHLD, SIGWINCH …: passed on without a stop (gdb's default).
            let thread = target.thread.clone();
            target.running = mode;
            if let Err(e) = target.rsp.resume_continue_with(&thread, Some(quiet)) {
                self.events.output("stderr", format!("vmdbg: {e:#}\n"));
            }
            return None;
        }
        target.note_signal(stop);
        Some(mode)
    }

    /// Reverse-continue: back to a breakpoint that stops, the start of the
    /// recording, or the instruction that last wrote a data breakpoint's
    /// location (found from where the stub stopped for it).
    pub async fn continue_back(&mut self) -> Result<Back> {
        let outcome = reverse::continue_back(self).await?;
        let watched: Vec<(u64, usize)> = self
            .data_breakpoints
            .iter()
            .filter(|d| d.verified)
            .map(|d| (d.addr, d.len))
            .collect();
        let reverse::Outcome::Stopped(stop) = outcome else {
            return Ok(Back::Outcome(outcome));
        };
        // QEMU reports a watchpoint going backwards as a plain stop, and
        // one found by replaying afresh with `watch`: both just after the
        // write. vmdbg-vmm's stub says `watch` and stands on the writer,
        // before it runs.
        let plain = matches!(
            stop,
            StopReply::Signal {
                signal: SIGTRAP,
                replay_edge: None,
                ..
            }
        );
        let on_writer =
            !self.can_replay_afresh() && matches!(stop, StopReply::Signal { watch: Some(_), .. });
        let pc = self.target.as_mut().context("no target")?.pc().await?;
        if !plain || watched.is_empty() || (!on_writer && self.breakpoint_at(pc)) {
            return Ok(Back::Stop(stop));
        }
        let (write, outcome) = if on_writer {
            reverse::write_ahead(self, &watched).await?
        } else {
            // Just after the write: onto the writer.
            reverse::onto_writer(self, &watched).await?
        };
        if let Some(outcome) = outcome {
            return Ok(Back::Outcome(outcome));
        }
        let Some(write) = write else {
            return Ok(Back::Stop(stop));
        };
        let ids: Vec<i64> = self
            .data_breakpoints
            .iter()
            .filter(|d| d.verified && d.addr == write.addr)
            .map(|d| d.id)
            .collect();
        Ok(Back::Wrote { ids, write })
    }

    /// Why a signal stop (`StopReply::Signal`) stopped. A kernel's or
    /// program's signal is remembered as the stop's exception.
    pub async fn why_stopped(&mut self, stop: StopReply) -> Result<Why> {
        let stop = self.mark_replay_edge(stop).await?;
        let StopReply::Signal {
            signal,
            watch,
            replay_edge,
            ..
        } = stop
        else {
            unreachable!("marking keeps a signal stop one")
        };
        if let Some(edge) = replay_edge {
            return Ok(Why::ReplayEdge(edge));
        }
        let target = self.target.as_mut().context("no target")?;
        let pc = target.pc().await.unwrap_or(0);
        if let Some((_, addr)) = watch {
            let ids = self
                .data_breakpoints
                .iter()
                .filter(|d| d.verified && addr >= d.addr && addr < d.addr + d.len as u64)
                .map(|d| d.id)
                .collect();
            return Ok(Why::Watch { addr, ids });
        }
        if signal == SIGINT {
            return Ok(Why::Pause);
        }
        if signal != SIGTRAP && target.program {
            let name = signals::name(signal);
            let meaning = signals::description(signal);
            let description = format!(
                "the program received signal {name} ({meaning}) at {pc:#x}; it gets the signal when it resumes"
            );
            target.stop.exception = Some((name.clone(), description.clone()));
            return Ok(Why::ProgramSignal {
                name,
                meaning,
                description,
            });
        }
        if signal != SIGTRAP {
            let name = signals::signal_name(signal);
            let description = format!("the target stopped with {name} at {pc:#x}");
            target.stop.exception = Some((name.to_string(), description.clone()));
            return Ok(Why::Exception { name, description });
        }
        if self.module_watch == Some(pc) {
            return Ok(Why::ModuleLoader { pc });
        }
        Ok(self.breakpoints_stop(pc).await)
    }

    /// What the user breakpoints at `pc` decide about a stop there.
    pub async fn breakpoints_stop(&mut self, pc: u64) -> Why {
        if self.breakpoint_ids_at(pc).is_empty() {
            return Why::Step;
        }
        let ids = self.decide_breakpoints(pc).await;
        if ids.is_empty() {
            return Why::NotStopping;
        }
        let function = self
            .function_breakpoints
            .iter()
            .any(|b| ids.contains(&b.id));
        Why::Breakpoints { ids, function }
    }
}

impl Target for Debugger {
    fn symbols(&self) -> Rc<Symbols> {
        self.target.as_ref().expect("a target").symbols.clone()
    }
    async fn pc(&mut self) -> Result<u64> {
        self.target.as_mut().context("no target")?.pc().await
    }
    async fn sp(&mut self) -> Result<u64> {
        self.target.as_mut().context("no target")?.rsp_value().await
    }
    async fn read_memory(&mut self, addr: u64, len: usize) -> Result<Vec<u8>> {
        let target = self.target.as_mut().context("no target")?;
        crate::symbols::TargetMemory::read(&mut target.memory(), addr, len).await
    }
    async fn insert_temporary(&mut self, addr: u64) -> Result<bool> {
        let target = self.target.as_mut().context("no target")?;
        if target.inserted.contains(&addr) || self.temporaries.contains(&addr) {
            return Ok(false);
        }
        target.rsp.insert_breakpoint(addr).await?;
        self.temporaries.push(addr);
        Ok(true)
    }
    async fn remove_temporary(&mut self, addr: u64) -> Result<()> {
        self.temporaries.retain(|&a| a != addr);
        let target = self.target.as_mut().context("no target")?;
        target.rsp.remove_breakpoint(addr).await
    }
    fn breakpoint_at(&self, pc: u64) -> bool {
        !self.breakpoint_ids_at(pc).is_empty()
    }
    async fn breakpoint_stops(&mut self, pc: u64) -> bool {
        !self.decide_breakpoints(pc).await.is_empty()
    }
}

impl StepTarget for Debugger {
    async fn single_step(&mut self) -> Result<StopReply> {
        Debugger::single_step(self).await
    }
    async fn read_code(&mut self, addr: u64, len: usize) -> Result<Vec<u8>> {
        self.target_ref()?.rsp.read_memory(addr, len).await
    }
    async fn frame_cfa(&mut self) -> Result<u64> {
        let target = self.target_ref()?;
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
        let frames = self.frames().await?;
        let top_physical = frames.first().map(|f| f.physical).unwrap_or(0);
        let caller = frames.iter().find(|f| f.physical == top_physical + 1);
        let cfa = frames.first().and_then(|f| f.regs.cfa);
        Ok(caller.zip(cfa).map(|(caller, cfa)| (caller.pc, cfa)))
    }
    fn signal_pending(&self) -> bool {
        self.target
            .as_ref()
            .is_some_and(|t| matches!(&t.pending_signal, Some((thread, _)) if *thread == t.thread))
    }
    async fn run_stopped_signal_handler(&mut self) -> Result<Option<StopReply>> {
        let target = self.target_ref()?;
        let thread = target.thread.clone();
        match target.take_signal_for(&thread) {
            Some(signal) => self.run_signal_handler(signal).await,
            None => Ok(None),
        }
    }
    async fn enter_hidden_inline_call(&mut self) -> Result<bool> {
        self.step_into_hidden_inline_call().await
    }
    async fn run_to_return(&mut self, addr: u64, sp: u64, then: Then) -> Result<bool> {
        Debugger::run_to_return(self, addr, sp, then).await
    }
    async fn range_step(&mut self, start: u64, end: u64) -> Result<Option<StopReply>> {
        if let Some(end) = self.forward_past_end().await? {
            return Ok(Some(end));
        }
        let target = self.target_ref()?;
        let thread = target.thread.clone();
        let pc = target.pc().await?;
        // A breakpoint at the pc would fire at once and a pending signal
        // is delivered by a step of its own: one instruction first.
        if !target.rsp.can_range_step()
            || target.inserted.contains(&pc)
            || matches!(&target.pending_signal, Some((t, _)) if *t == thread)
        {
            return Ok(None);
        }
        loop {
            let target = self.target_ref()?;
            target.invalidate();
            target.rsp.range_step(&thread, start, end)?;
            let stop = match tokio::time::timeout(RANGE_STEP_LIMIT, target.wait_stop()).await {
                Ok(stop) => stop?,
                Err(_) => {
                    target.rsp.interrupt()?;
                    target.wait_stop().await?
                }
            };
            if let StopReply::Signal {
                thread: Some(t), ..
            } = &stop
            {
                target.thread = t.clone();
            }
            // A signal the user does not stop for: its handler runs, and
            // the range step goes on where it was, as `single_step` does.
            let Some(quiet) = target.quiet_signal(&stop) else {
                target.note_signal(&stop);
                return Ok(Some(stop));
            };
            if let Some(done) = self.run_signal_handler(quiet).await? {
                self.target_ref()?.note_signal(&done);
                return Ok(Some(done));
            }
        }
    }
}

impl ReverseTarget for Debugger {
    async fn reverse_step(&mut self) -> Result<StopReply> {
        if let Some(position) = self.replay_position() {
            if self.can_replay_afresh() {
                if position.at == 0 {
                    return Ok(StopReply::Refused("at the start of the recording".into()));
                }
                self.replay_afresh(position.at - 1).await?;
                return self.stop_here().await;
            }
        }
        self.run_backwards(false).await
    }
    async fn reverse_continue(&mut self) -> Result<StopReply> {
        if let Some(position) = self.replay_position() {
            if self.can_replay_afresh() {
                return self.scan_back(position.at).await;
            }
        }
        self.run_backwards(true).await
    }
    async fn step_forward(&mut self) -> Result<StopReply> {
        let target = self.target.as_mut().context("no target")?;
        let thread = target.thread.clone();
        target.invalidate();
        target.rsp.resume_step_with(&thread, None)?;
        let stop = target.wait_stop().await?;
        self.mark_replay_edge(stop).await
    }
}

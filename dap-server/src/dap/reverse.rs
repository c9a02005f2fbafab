//! The DAP side of reverse execution (`stepBack`, `reverseContinue`, and
//! the stops at either end of a recording): the session as a
//! [`ReverseTarget`] for the debugger core (`debugger::reverse`), and its
//! outcomes as DAP events.

use anyhow::{bail, Context, Result};
use serde_json::json;

use super::session::Session;
use crate::debugger::reverse::{self, Outcome, ReverseTarget};
use crate::debugger::signals::SIGTRAP;
use crate::debugger::target::TargetState;
use crate::debugger::Target as _;
use crate::engine::{RecordingEnd, ReplayPosition};
use crate::rsp::{ReplayEdge, RspClient, StopReply};

impl ReverseTarget for Session {
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
        let target = self.dbg.target.as_mut().context("no target")?;
        let thread = target.thread.clone();
        target.invalidate();
        target.rsp.resume_step_with(&thread, None)?;
        let stop = target.wait_stop().await?;
        self.mark_replay_edge(stop).await
    }
}

impl Session {
    /// Whether the engine goes back by replaying afresh (QEMU: see
    /// `engine::qemu::record`) rather than by the stub's `bs`/`bc`.
    fn can_replay_afresh(&self) -> bool {
        self.kernel_vm
            .as_ref()
            .is_some_and(|vm| vm.goes_back_afresh())
    }

    /// Puts the replay at `icount` in a fresh engine process and connects
    /// to it again: the same breakpoints, watchpoints and temporaries.
    async fn replay_afresh(&mut self, icount: u64) -> Result<()> {
        let target = self.dbg.target.as_mut().context("no target")?;
        let vm = self.kernel_vm.as_mut().context("not a recorded session")?;
        vm.replay_afresh(icount)
            .context("the engine cannot replay afresh")??;
        let endpoint = vm.rsp_endpoint().context("the VM is gone")?;
        target.rsp = RspClient::connect(&endpoint).await?;
        target.invalidate();
        target.inserted.clear();
        target.watches.clear();
        self.dbg.reinsert_breakpoints().await;
        let target = self.dbg.target.as_mut().context("no target")?;
        for &addr in &self.dbg.temporaries {
            target.rsp.insert_breakpoint(addr).await?;
        }
        Ok(())
    }

    /// The stop where a fresh replay stands (a plain step stop, its edge
    /// marked).
    async fn stop_here(&mut self) -> Result<StopReply> {
        let thread = self
            .dbg
            .target
            .as_ref()
            .context("no target")?
            .thread
            .clone();
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
            let target = self.dbg.target.as_mut().context("no target")?;
            let vm = self.kernel_vm.as_mut().context("not a recorded session")?;
            vm.replay_break(now)?;
            // Off a breakpoint at the pc first, as any continue.
            let pc = target.pc().await?;
            if target.inserted.contains(&pc) || self.dbg.temporaries.contains(&pc) {
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
            let target = self.dbg.target.as_mut().context("no target")?;
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

    /// Refuses reverse requests on a target that cannot run backwards.
    pub(super) fn require_reverse(&self) -> Result<()> {
        self.require_stopped()?;
        if !self.dbg.target.as_ref().is_some_and(|t| t.rsp.reverse) {
            bail!("this target cannot run backwards: its gdb stub offers no reverse execution (launch a kernel with `\"record\": true` to debug a recording)");
        }
        Ok(())
    }

    /// `bs` or `bc`, waiting for the stop; an edge of the recording marked.
    async fn run_backwards(&mut self, to_stop: bool) -> Result<StopReply> {
        let target = self.dbg.target.as_mut().context("no target")?;
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
    fn replay_position(&mut self) -> Option<ReplayPosition> {
        let vm = self.kernel_vm.as_mut()?;
        match vm.replay_position()? {
            Ok(position) => Some(position),
            Err(e) => {
                self.out.output(
                    "stderr",
                    format!("vmdbg: cannot tell where the replay is: {e:#}\n"),
                );
                None
            }
        }
    }

    /// A stop at either end of the recording says so, whether the stub
    /// said it (`replaylog`) or the engine knows where its replay is.
    pub(super) async fn mark_replay_edge(&mut self, stop: StopReply) -> Result<StopReply> {
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
    pub(super) async fn forward_past_end(&mut self) -> Result<Option<StopReply>> {
        let Some(position) = self.replay_position() else {
            return Ok(None);
        };
        if position.at >= position.end {
            let target = self.dbg.target.as_ref().context("no target")?;
            return Ok(Some(StopReply::Signal {
                signal: SIGTRAP,
                thread: Some(target.thread.clone()),
                watch: None,
                breakpoint: false,
                replay_edge: Some(ReplayEdge::End),
            }));
        }
        if let Some(vm) = self.kernel_vm.as_mut() {
            vm.keep_replay_inside()?;
        }
        Ok(None)
    }

    /// Reports a stop at an edge of the recording.
    pub(super) async fn report_replay_edge(&mut self, edge: ReplayEdge) -> Result<()> {
        let target = self.dbg.target.as_mut().context("no target")?;
        let thread = TargetState::thread_id(&target.thread);
        if edge == ReplayEdge::Begin {
            self.out.output(
                "console",
                "vmdbg: the replay is at the start of the recording; there is nothing earlier\n",
            );
            self.out
                .stopped("step", thread)
                .description("start of the recording")
                .text("start of the recording")
                .send();
            return Ok(());
        }
        let pc = target.pc().await.unwrap_or(0);
        let ending = self.replay_position().map(|p| p.ending);
        let target = self.dbg.target.as_mut().context("no target")?;
        if matches!(ending, Some(RecordingEnd::Shutdown { .. })) {
            // The guest stopped the machine here: in a kernel that is a
            // triple fault (an exception it could not deliver), or a
            // power-off. The replay stands just before that instruction;
            // CR2 as the recording ended says where a page fault was.
            let cr2 = match ending {
                Some(RecordingEnd::Shutdown {
                    last_page_fault: Some(address),
                }) => format!("; the recording's last page-fault address (CR2) was {address:#x}"),
                _ => String::new(),
            };
            let description = format!(
                "end of the recording: the instruction at {pc:#x} stopped the machine (a triple fault: an exception the guest could not handle{cr2}). Step back or reverse-continue to see what led here."
            );
            target.stop.exception = Some(("triple fault".to_string(), description.clone()));
            self.out
                .output("console", format!("vmdbg: {description}\n"));
            self.out
                .stopped("exception", thread)
                .description(description)
                .text("triple fault")
                .send();
            return Ok(());
        }
        self.out
            .stopped("step", thread)
            .description("end of the recording")
            .text("end of the recording")
            .send();
        Ok(())
    }

    /// `stepBack`: a source line (reverse-next) or an instruction.
    pub(super) async fn step_back(&mut self, instruction: bool) -> Result<()> {
        if self.replay_position().is_some_and(|p| p.at == 0) {
            return self.report_replay_edge(ReplayEdge::Begin).await;
        }
        let outcome = if instruction {
            reverse::step_instruction(self).await?
        } else {
            reverse::step_line(self).await?
        };
        self.report_outcome(outcome).await
    }

    /// `reverseContinue`: back to a breakpoint, the last write of a data
    /// breakpoint's location, or the start of the recording.
    pub(super) async fn reverse_continue(&mut self) -> Result<()> {
        if self.replay_position().is_some_and(|p| p.at == 0) {
            return self.report_replay_edge(ReplayEdge::Begin).await;
        }
        let thread = TargetState::thread_id(&self.dbg.target.as_ref().context("no target")?.thread);
        self.out.event(
            "continued",
            json!({ "threadId": thread, "allThreadsContinued": true }),
        );
        let outcome = reverse::continue_back(self).await?;
        let watched: Vec<(u64, usize)> = self
            .dbg
            .data_breakpoints
            .iter()
            .filter(|d| d.verified)
            .map(|d| (d.addr, d.len))
            .collect();
        let Outcome::Stopped(stop) = outcome else {
            return self.report_outcome(outcome).await;
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
        let pc = self.dbg.target.as_mut().context("no target")?.pc().await?;
        if !plain || watched.is_empty() || (!on_writer && self.breakpoint_at(pc)) {
            return self.report_stop_reply(stop).await;
        }
        let (write, outcome) = if on_writer {
            reverse::write_ahead(self, &watched).await?
        } else {
            // Just after the write: onto the writer.
            reverse::onto_writer(self, &watched).await?
        };
        if let Some(outcome) = outcome {
            return self.report_outcome(outcome).await;
        }
        let Some(write) = write else {
            return self.report_stop_reply(stop).await;
        };
        let ids: Vec<i64> = self
            .dbg
            .data_breakpoints
            .iter()
            .filter(|d| d.verified && d.addr == write.addr)
            .map(|d| d.id)
            .collect();
        let value = |bytes: &[u8]| -> String {
            let mut v = [0u8; 8];
            let n = bytes.len().min(8);
            v[..n].copy_from_slice(&bytes[..n]);
            format!("{:#x}", u64::from_le_bytes(v))
        };
        let description = format!(
            "data breakpoint: the write to {:#x} here changed it from {} to {}",
            write.addr,
            value(&write.before),
            value(&write.after)
        );
        self.out
            .output("console", format!("vmdbg: {description}\n"));
        self.out
            .stopped("data breakpoint", thread)
            .hit_breakpoints(&ids)
            .description(description)
            .change(value(&write.before), value(&write.after))
            .send();
        Ok(())
    }

    async fn report_outcome(&mut self, outcome: Outcome) -> Result<()> {
        match outcome {
            Outcome::Arrived => self.report_step(None),
            Outcome::Stopped(stop) => self.report_stop_reply(stop).await,
            Outcome::AtStart => self.report_replay_edge(ReplayEdge::Begin).await,
            Outcome::GaveUp(n) => self.report_step(Some(format!(
                "stopped after {n} instructions backwards without reaching another line"
            ))),
        }
    }
}

//! The DAP side of reverse execution (`stepBack`, `reverseContinue`, and
//! the stops at either end of a recording): the debugger core runs them
//! (`debugger::reverse` over `debugger::Debugger`), this reports their
//! outcomes as DAP events.

use anyhow::{bail, Context, Result};
use serde_json::json;

use super::session::Session;
use crate::debugger::reverse::{self, Outcome};
use crate::debugger::run::Back;
use crate::debugger::target::TargetState;
use crate::engine::RecordingEnd;
use crate::rsp::ReplayEdge;

impl Session {
    /// Refuses reverse requests on a target that cannot run backwards.
    pub(super) fn require_reverse(&self) -> Result<()> {
        self.require_stopped()?;
        if !self.dbg.target.as_ref().is_some_and(|t| t.rsp.reverse) {
            bail!("this target cannot run backwards: its gdb stub offers no reverse execution (launch a kernel with `\"record\": true` to debug a recording)");
        }
        Ok(())
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
        let ending = self.dbg.replay_position().map(|p| p.ending);
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
        if self.dbg.replay_position().is_some_and(|p| p.at == 0) {
            return self.report_replay_edge(ReplayEdge::Begin).await;
        }
        let outcome = if instruction {
            reverse::step_instruction(&mut self.dbg).await?
        } else {
            reverse::step_line(&mut self.dbg).await?
        };
        self.report_outcome(outcome).await
    }

    /// `reverseContinue`: back to a breakpoint, the last write of a data
    /// breakpoint's location, or the start of the recording.
    pub(super) async fn reverse_continue(&mut self) -> Result<()> {
        if self.dbg.replay_position().is_some_and(|p| p.at == 0) {
            return self.report_replay_edge(ReplayEdge::Begin).await;
        }
        let thread = TargetState::thread_id(&self.dbg.target.as_ref().context("no target")?.thread);
        self.out.event(
            "continued",
            json!({ "threadId": thread, "allThreadsContinued": true }),
        );
        let (ids, write) = match self.dbg.continue_back().await? {
            Back::Outcome(outcome) => return self.report_outcome(outcome).await,
            Back::Stop(stop) => return self.report_stop_reply(stop).await,
            Back::Wrote { ids, write } => (ids, write),
        };
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

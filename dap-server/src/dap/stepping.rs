//! The DAP side of stepping: `next`, `stepIn`, `stepOut` and instruction
//! steps run by the debugger core (`debugger::stepping` over
//! `debugger::Debugger`), and their outcomes as DAP events.

use anyhow::{Context, Result};

use super::session::Session;
use crate::debugger::stepping::{self, Outcome, StepKind};
use crate::debugger::target::TargetState;

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

    pub(super) async fn report_step_outcome(&mut self, outcome: Outcome) -> Result<()> {
        match outcome {
            Outcome::Arrived => self.report_step(None),
            Outcome::Stopped(stop) => self.report_stop_reply(stop).await,
            Outcome::GaveUp(why) => self.report_step(Some(why)),
            // The stop is reported when it comes (`arrived_to_return`).
            Outcome::Running => Ok(()),
        }
    }

    pub async fn start_step(&mut self, kind: StepKind) -> Result<()> {
        let outcome = stepping::start_step(&mut self.dbg, kind).await?;
        self.report_step_outcome(outcome).await
    }

    pub async fn step_out(&mut self) -> Result<()> {
        let outcome = stepping::step_out(&mut self.dbg).await?;
        self.report_step_outcome(outcome).await
    }

    pub async fn step_instruction(&mut self) -> Result<()> {
        let outcome = stepping::step_instruction(&mut self.dbg).await?;
        self.report_step_outcome(outcome).await
    }
}

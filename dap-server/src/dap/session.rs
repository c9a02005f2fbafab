//! One debug session: the request loop, starting and ending the target
//! and the VMs it runs in (the kernel's, the program's), and stops told to
//! the client as DAP events. The debugger core (`crate::debugger`) holds
//! the target's state and runs it; each request goes through the table in
//! `requests`.
//!
//! The loop waits on three things at once: DAP requests, console output of
//! the engine, and — while the target runs — the stub's stop reply. Every
//! request is answered; a failing one gets `success: false` with the reason
//! and the session goes on.

use std::rc::Rc;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::kernel::KernelVm;
use super::kernel_modules::KernelModules;
use super::launch::{AttachConfig, LaunchConfig, LineSink};
use super::outbox::Outbox;
use super::program::{GuestProgram, ProgramConfig};
use super::protocol::Request;
use super::transport::Incoming;
use crate::debugger::run::Why;
use crate::debugger::signals;
use crate::debugger::target::{RunMode, TargetState};
use crate::debugger::Debugger;
use crate::rsp::{RspClient, StopReply};
use crate::symbols::Symbols;

#[derive(Clone)]
pub enum StartConfig {
    Launch(LaunchConfig),
    Attach(AttachConfig),
    /// A program in a fresh Linux VM (`program`).
    Program(ProgramConfig),
}

pub struct Session {
    pub out: Outbox,
    pub(super) console_tx: LineSink,
    console_rx: mpsc::UnboundedReceiver<(&'static str, String)>,
    /// The debugger core: the target (while there is one) and the
    /// breakpoints.
    pub dbg: Debugger,
    /// Kernel mode: the kernel's VM.
    pub kernel_vm: Option<KernelVm>,
    /// A Linux kernel's loaded modules and the session's breakpoint that
    /// hears of new ones.
    pub kernel_modules: Option<KernelModules>,
    /// Program mode: the VM the program runs in.
    pub program: Option<GuestProgram>,
    /// A launched kernel that died of an unhandled exception, kept for
    /// inspection until the client continues or disconnects.
    pub post_mortem: Option<super::postmortem::PostMortem>,
    pub(super) start: Option<StartConfig>,
    pub(super) configured: bool,
    finished: bool,
}

impl Session {
    pub fn new(tx: mpsc::UnboundedSender<Value>) -> Self {
        let (console_tx, console_rx) = mpsc::unbounded_channel();
        let out = Outbox::new(tx);
        Self {
            dbg: Debugger::new(Box::new(out.clone())),
            out,
            console_tx,
            console_rx,
            kernel_vm: None,
            kernel_modules: None,
            program: None,
            post_mortem: None,
            start: None,
            configured: false,
            finished: false,
        }
    }

    pub async fn run(mut self, mut requests: mpsc::UnboundedReceiver<Incoming>) {
        while !self.finished {
            let running = self
                .dbg
                .target
                .as_ref()
                .is_some_and(TargetState::is_running);
            tokio::select! {
                incoming = requests.recv() => match incoming {
                    Some(Incoming::Message(value)) => self.dispatch(value).await,
                    Some(Incoming::Malformed(why)) => {
                        tracing::warn!("dropped a malformed DAP message: {why}");
                        self.out.output("stderr", format!("vmdbg: dropped a malformed DAP message: {why}\n"));
                    }
                    Some(Incoming::Closed) | None => break,
                },
                Some((category, text)) = self.console_rx.recv() => self.out.output(category, text),
                packet = next_packet(&mut self.dbg.target), if running => self.on_packet(packet).await,
            }
        }
        // The client left: launch ends the VM, attach leaves it running.
        self.end_target(None).await;
    }

    async fn dispatch(&mut self, value: Value) {
        let request: Request = match serde_json::from_value(value.clone()) {
            Ok(r) => r,
            Err(e) => {
                let seq = value.get("seq").and_then(Value::as_i64).unwrap_or(0);
                let command = value
                    .get("command")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                self.out
                    .respond(seq, &command, Err(anyhow!("malformed request: {e}")));
                return;
            }
        };
        if request.kind != "request" {
            self.out.respond(
                request.seq,
                &request.command,
                Err(anyhow!("expected a request, got a {:?}", request.kind)),
            );
            return;
        }
        let seq = request.seq;
        let command = request.command.clone();
        let result = self.handle(request).await;
        match result {
            Ok(Handled::Respond(body)) => self.out.respond(seq, &command, Ok(body)),
            Ok(Handled::RespondThen(body, after)) => {
                self.out.respond(seq, &command, Ok(body));
                if let Err(e) = after(self).await {
                    self.out.output("stderr", format!("vmdbg: {e:#}\n"));
                }
            }
            Err(e) => self.out.respond(seq, &command, Err(e)),
        }
    }

    /// What goes with the target (not the VMs, which each end their own
    /// way): the kernel's modules and their watch, the core's handle on
    /// the replay.
    pub(super) fn forget_target_parts(&mut self) {
        self.kernel_modules = None;
        self.dbg.module_watch = None;
        self.dbg.replay = None;
    }

    /// Ends the request loop after this request.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    pub(super) fn require_stopped(&self) -> Result<()> {
        match &self.dbg.target {
            Some(t) if t.is_running() => bail!("the target is running; pause it first"),
            Some(_) => Ok(()),
            None => bail!("no target"),
        }
    }

    /// Runs `f` with the target stopped: a running target is interrupted
    /// and continued afterwards (breakpoints can be set while it runs).
    pub(super) async fn with_target_stopped<F>(&mut self, f: F) -> Result<Value>
    where
        F: for<'a> FnOnce(
            &'a mut Session,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Value>> + 'a>,
        >,
    {
        let was_running = self
            .dbg
            .target
            .as_ref()
            .is_some_and(TargetState::is_running);
        if was_running {
            if let Some(ended) = self.dbg.halt().await? {
                self.on_stop_reply(ended).await;
                bail!("the target ended");
            }
        }
        let result = f(self).await;
        if was_running {
            if let Some(target) = self.dbg.target.as_mut() {
                if !target.is_running() {
                    self.resume_continue().await?;
                }
            }
        }
        result
    }

    pub(super) async fn start_target(&mut self, config: StartConfig) -> Result<()> {
        let mut modules = Vec::new();
        let mut kernel_vm = None;
        let (mut rsp, symbols, program) = match &config {
            StartConfig::Program(c) => {
                let started =
                    super::program::start(c, &mut self.out, self.console_tx.clone()).await?;
                modules = started.modules;
                (started.rsp, started.symbols, Some(started.program))
            }
            StartConfig::Launch(c) => {
                let started =
                    super::kernel::start(c, &mut self.out, self.console_tx.clone()).await?;
                kernel_vm = Some(started.vm);
                (started.rsp, started.symbols, None)
            }
            StartConfig::Attach(c) => {
                let mut symbols = Symbols::load(&c.symbols)?;
                let map: Vec<(String, String)> = c
                    .source_map
                    .iter()
                    .map(|(a, b)| (a.clone(), b.clone()))
                    .collect();
                symbols.set_source_map(&map);
                let mut rsp = RspClient::connect(&c.gdb_server.parse()?).await?;
                if let StopReply::Signal {
                    thread: Some(thread),
                    ..
                } = rsp.query_stop().await?
                {
                    let block = rsp.read_registers(&thread).await?;
                    let pc = rsp.registers.by_name("rip").and_then(|info| {
                        let bytes = block.get(info.offset..info.offset + 8)?;
                        Some(crate::symbols::types::int_of(bytes, false) as u64)
                    });
                    if let Some(pc) = pc {
                        if super::kernel::attach_past_boot_entry(&mut rsp, &symbols, pc).await? {
                            self.out.output(
                                "console",
                                "vmdbg: the kernel was at its boot entry; it ran to start_kernel (on a hardware breakpoint), where its page tables map the breakpoints\n",
                            );
                        }
                    }
                }
                (rsp, Rc::new(symbols), None)
            }
        };
        let stop = rsp.query_stop().await?;
        let threads = rsp.threads().await.unwrap_or_default();
        let thread = match &stop {
            StopReply::Signal {
                thread: Some(t), ..
            } => t.clone(),
            _ => threads.first().cloned().unwrap_or_else(|| "1".to_string()),
        };
        let threads = if threads.is_empty() {
            vec![thread.clone()]
        } else {
            threads
        };
        let pid = kernel_vm.as_ref().and_then(|k| k.pid);
        let name = match &config {
            StartConfig::Launch(c) => c.kernel.display().to_string(),
            StartConfig::Attach(c) => c.gdb_server.clone(),
            StartConfig::Program(c) => c.program.display().to_string(),
        };
        let launched = program.is_some() || kernel_vm.is_some();
        self.out.event(
            "process",
            json!({
                "name": name,
                "systemProcessId": pid,
                "isLocalProcess": kernel_vm.is_some(),
                "startMethod": if launched { "launch" } else { "attach" },
            }),
        );
        for t in &threads {
            self.out.event(
                "thread",
                json!({ "reason": "started", "threadId": TargetState::thread_id(t) }),
            );
        }
        if rsp.reverse {
            // A replay: the client shows its reverse buttons.
            self.out.event(
                "capabilities",
                json!({ "capabilities": { "supportsStepBack": true } }),
            );
        }
        // Not in a replay: the module watch goes on forward by itself.
        let kernel_modules = match &config {
            StartConfig::Program(_) => None,
            _ if rsp.reverse => None,
            _ => super::kernel_modules::KernelModules::new(&symbols),
        };
        let watch_modules = kernel_modules.is_some();
        self.dbg.module_watch = kernel_modules.as_ref().map(|m| m.watch);
        self.kernel_modules = kernel_modules;
        self.dbg.target = Some(TargetState::new(
            rsp,
            symbols,
            modules,
            program.is_some(),
            threads,
            thread,
            self.console_tx.clone(),
        ));
        self.dbg.replay = kernel_vm.as_ref().map(KernelVm::replay);
        self.kernel_vm = kernel_vm;
        self.program = program;
        self.start = Some(config);
        if watch_modules {
            if let Err(e) = self.refresh_kernel_modules().await {
                self.out.output("console", format!("vmdbg: {e:#}\n"));
            }
            self.dbg.sync_breakpoints().await?;
        }
        Ok(())
    }

    /// Ends the target. `terminate`: None = what the start mode implies
    /// (launch: end the VM; attach: detach and leave it running).
    pub(super) async fn end_target(&mut self, terminate: Option<bool>) {
        if self.end_target_quietly(terminate).await {
            self.out.event("terminated", Value::Null);
        }
    }

    /// Ends the target without telling the client (restart); true if there
    /// was one.
    pub(super) async fn end_target_quietly(&mut self, terminate: Option<bool>) -> bool {
        let Some(mut target) = self.dbg.target.take() else {
            return false;
        };
        self.forget_target_parts();
        let launched = self.program.is_some() || self.kernel_vm.is_some();
        let kill = terminate.unwrap_or(launched);
        if target.is_running() {
            let _ = target.rsp.interrupt();
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(2), target.wait_stop()).await;
        }
        if kill {
            let _ = target.rsp.kill();
        } else {
            for addr in std::mem::take(&mut target.inserted) {
                let _ = target.rsp.remove_breakpoint(addr).await;
            }
            for (kind, addr, len) in std::mem::take(&mut target.watches) {
                let _ = target.rsp.remove_watchpoint(kind, addr, len).await;
            }
            if let Err(e) = target.rsp.detach().await {
                tracing::warn!("detach failed: {e:#}");
            }
        }
        if let Some(mut program) = self.program.take() {
            program.shut_down().await;
        }
        if let Some(mut vm) = self.kernel_vm.take() {
            vm.shut_down().await;
        }
        true
    }

    /// Once configured: the target starts (or stops at its entry, or,
    /// attached, where it was, if the configuration says so).
    pub(super) async fn start_running(&mut self) -> Result<()> {
        if !self.configured {
            return Ok(());
        }
        let stop_on_entry = match &self.start {
            Some(StartConfig::Launch(c)) => c.stop_on_entry,
            Some(StartConfig::Attach(c)) => c.stop_on_entry.unwrap_or(true),
            Some(StartConfig::Program(c)) => c.stop_on_entry,
            None => false,
        };
        let target = self.dbg.target.as_mut().context("no target")?;
        if stop_on_entry {
            let thread = TargetState::thread_id(&target.thread);
            let reason = if matches!(self.start, Some(StartConfig::Attach(_))) {
                "pause"
            } else {
                "entry"
            };
            self.out.stopped(reason, thread).send();
            Ok(())
        } else {
            self.resume_continue().await
        }
    }

    /// Resumes all vCPUs; a breakpoint at the pc is stepped over first.
    pub async fn resume_continue(&mut self) -> Result<()> {
        self.resume(true).await
    }

    /// Resumes all threads ([`Debugger::resume`]); a stop that came before
    /// the run (the end of a replay, the step off a breakpoint) is reported.
    async fn resume(&mut self, announce: bool) -> Result<()> {
        match self.dbg.resume(announce).await? {
            Some(stop) => self.report_stop_reply(stop).await,
            None => Ok(()),
        }
    }

    async fn on_packet(&mut self, packet: Result<Vec<u8>>) {
        let stop = match packet.and_then(|p| StopReply::parse(&p)) {
            Ok(s) => s,
            Err(e) => {
                self.out
                    .output("stderr", format!("vmdbg: lost the target: {e:#}\n"));
                self.target_gone(None).await;
                return;
            }
        };
        if let StopReply::Output(bytes) = stop {
            self.out
                .output("console", String::from_utf8_lossy(&bytes).into_owned());
            return;
        }
        self.on_stop_reply(stop).await;
    }

    /// A stop reply that ends a run.
    async fn on_stop_reply(&mut self, stop: StopReply) {
        let Some(mode) = self.dbg.run_ended(&stop).await else {
            return;
        };
        let result = match mode {
            Some(RunMode::ToReturn { addr, rsp, then }) => {
                match self.dbg.arrived_to_return(stop, addr, rsp, *then).await {
                    Ok(outcome) => self.report_step_outcome(outcome).await,
                    Err(e) => Err(e),
                }
            }
            _ => self.report_stop_reply(stop).await,
        };
        if let Err(e) = result {
            self.out.output("stderr", format!("vmdbg: {e:#}\n"));
            if let Some(target) = self.dbg.target.as_ref() {
                if !target.is_running() {
                    let thread = TargetState::thread_id(&target.thread);
                    self.out
                        .stopped("pause", thread)
                        .description(format!("{e:#}"))
                        .send();
                }
            }
        }
    }

    /// Reports why the target stopped (or ended).
    pub async fn report_stop_reply(&mut self, stop: StopReply) -> Result<()> {
        match stop {
            StopReply::Exited { status } => {
                self.target_gone(Some(status)).await;
                Ok(())
            }
            StopReply::Terminated { signal }
                if self.dbg.target.is_some() && self.program.is_some() =>
            {
                self.program_killed(signal).await;
                Ok(())
            }
            StopReply::Terminated { signal } => {
                if self.enter_post_mortem().await {
                    return Ok(());
                }
                self.out.output(
                    "console",
                    format!("vmdbg: the target was terminated (signal {signal})\n"),
                );
                self.target_gone(None).await;
                Ok(())
            }
            StopReply::Output(_) => Ok(()),
            StopReply::Refused(reply) => {
                let thread =
                    TargetState::thread_id(&self.dbg.target.as_ref().context("no target")?.thread);
                self.out
                    .stopped("pause", thread)
                    .description(format!("the gdb stub refused to go on ({reply})"))
                    .send();
                Ok(())
            }
            StopReply::Signal { .. } => {
                let why = self.dbg.why_stopped(stop).await?;
                self.report_why(why).await
            }
        }
    }

    /// Tells the client why the target stopped, or lets it go on.
    async fn report_why(&mut self, why: Why) -> Result<()> {
        let thread = match &why {
            Why::ReplayEdge(edge) => return self.report_replay_edge(*edge).await,
            _ => TargetState::thread_id(&self.dbg.target.as_ref().context("no target")?.thread),
        };
        match why {
            Why::ReplayEdge(_) => unreachable!("reported above"),
            Why::Watch { addr, ids } => self
                .out
                .stopped("data breakpoint", thread)
                .hit_breakpoints(&ids)
                .description(format!("data breakpoint at {addr:#x}"))
                .send(),
            Why::Pause => self.out.stopped("pause", thread).send(),
            Why::ProgramSignal {
                name,
                meaning,
                description,
            } => {
                self.out.output(
                    "console",
                    format!("Program received signal {name}, {meaning}.\n"),
                );
                self.out
                    .stopped("exception", thread)
                    .description(description)
                    .text(name)
                    .send();
            }
            Why::Exception { name, description } => self
                .out
                .stopped("exception", thread)
                .description(description)
                .text(name)
                .send(),
            Why::ModuleLoader { pc } => {
                // The kernel is about to run a new module's init.
                if let Err(e) = self.refresh_kernel_modules().await {
                    self.out.output("console", format!("vmdbg: {e:#}\n"));
                }
                if self.dbg.breakpoint_ids_at(pc).is_empty() {
                    return Box::pin(self.resume(false)).await;
                }
                let why = self.dbg.breakpoints_stop(pc).await;
                return Box::pin(self.report_why(why)).await;
            }
            // Conditions false, hit counts not reached, logpoints: the run
            // goes on.
            Why::NotStopping => return Box::pin(self.resume(false)).await,
            Why::Breakpoints { ids, function } => {
                let reason = if function {
                    "function breakpoint"
                } else {
                    "breakpoint"
                };
                self.out
                    .stopped(reason, thread)
                    .hit_breakpoints(&ids)
                    .send();
            }
            Why::Step => self.out.stopped("step", thread).send(),
        }
        Ok(())
    }

    /// Program mode: the program died of a signal (`X`). Its last output,
    /// then "program terminated by signal …" in the debug console, `exited`
    /// with the status a shell reports (128 + the signal's number), and
    /// `terminated`.
    async fn program_killed(&mut self, signal: u8) {
        self.program_gone(None, Some(signal)).await;
    }

    /// The target ended: `exited` with the guest's code, then `terminated`.
    pub async fn target_gone(&mut self, status: Option<u8>) {
        if self.dbg.target.is_some() && self.program.is_some() {
            return self.program_gone(status, None).await;
        }
        // Dropped (the stub's connection closed) when this is done, as before.
        let Some(_target) = self.dbg.target.take() else {
            return;
        };
        self.forget_target_parts();
        // The guest's status if the stub said it (`W`), else the engine's.
        let mut code = status.map(i64::from);
        let mut signal = None;
        if let Some(mut vm) = self.kernel_vm.take() {
            // The guest ended the VM (its exit port, a power-off, a panic
            // with panic=-1, a triple fault): the engine's status follows.
            match vm.ended().await {
                Some(crate::engine::VmExit::Code(c)) => code = code.or(Some(c as i64)),
                Some(crate::engine::VmExit::Signal(s)) => signal = Some(s),
                None => {}
            }
        }
        // Give the console reader a moment to pass on the last output.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        while let Ok((category, text)) = self.console_rx.try_recv() {
            self.out.output(category, text);
        }
        match (code, signal) {
            // isa-debug-exit convention, on either engine: the guest wrote
            // V, the VM exits (V << 1) | 1; the VMMs' own statuses are even.
            (Some(code), _) if code & 1 == 1 => {
                let guest = code >> 1;
                self.out.output(
                    "console",
                    format!("vmdbg: the guest exited with code {guest} (VM status {code})\n"),
                );
                self.out.event("exited", json!({ "exitCode": guest }));
            }
            (Some(code), _) => {
                self.out.output(
                    "console",
                    format!("vmdbg: the VM ended with status {code}\n"),
                );
                self.out.event("exited", json!({ "exitCode": code }));
            }
            (None, Some(signal)) => {
                self.out.output(
                    "console",
                    format!("vmdbg: the VM's engine was killed by signal {signal}\n"),
                );
                self.out
                    .event("exited", json!({ "exitCode": 128 + signal as i64 }));
            }
            (None, None) => {}
        }
        self.out.event("terminated", Value::Null);
    }

    /// Program mode: the program exited (`status`) or was killed by a
    /// signal (gdb's number). Output first, then `exited`; then the VM goes.
    async fn program_gone(&mut self, status: Option<u8>, killed_by: Option<u8>) {
        // Dropped (the stub's connection closed) when this is done, as before.
        let Some(_target) = self.dbg.target.take() else {
            return;
        };
        self.forget_target_parts();
        self.kernel_vm = None;
        let Some(mut program) = self.program.take() else {
            return;
        };
        program
            .drain_output(std::time::Duration::from_secs(3))
            .await;
        while let Ok((category, text)) = self.console_rx.try_recv() {
            self.out.output(category, text);
        }
        let code = match (status, killed_by) {
            (Some(code), _) => {
                self.out.output(
                    "console",
                    format!("vmdbg: {} exited with code {code}\n", program.guest_path),
                );
                Some(i64::from(code))
            }
            (None, Some(signal)) => {
                let code = signals::shell_status(signal);
                self.out.output(
                    "console",
                    format!(
                        "vmdbg: {}: program terminated by signal {} ({}), exit code {code}\n",
                        program.guest_path,
                        signals::name(signal),
                        signals::description(signal)
                    ),
                );
                Some(code)
            }
            (None, None) => None,
        };
        if let Some(code) = code {
            self.out.event("exited", json!({ "exitCode": code }));
        }
        program.shut_down().await;
        self.out.event("terminated", Value::Null);
    }
}

pub enum Handled {
    Respond(Value),
    /// Respond, then do something that sends events (the order DAP wants).
    RespondThen(Value, After),
}

/// What a request does once its response is sent.
pub type After = Box<dyn for<'a> FnOnce(&'a mut Session) -> LocalFuture<'a>>;

pub type LocalFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + 'a>>;

/// An [`After`] from a closure (`after(|s| Box::pin(s.resume_continue()))`).
pub fn after<F>(f: F) -> After
where
    F: for<'a> FnOnce(&'a mut Session) -> LocalFuture<'a> + 'static,
{
    Box::new(f)
}

async fn next_packet(target: &mut Option<TargetState>) -> Result<Vec<u8>> {
    match target {
        Some(t) => t.rsp.next_packet().await,
        None => std::future::pending().await,
    }
}

//! The request table: every DAP request the server answers, one line each
//! — its command, what it needs before it runs, and its handler — and the
//! one dispatcher over it (as probe-rs's). A handler takes the request's
//! arguments as their protocol type ([`arguments`]) and returns the
//! response body, or a body and what to do after responding ([`Handled`]).
//!
//! The small handlers live here; the others with their subject (inspect,
//! breakpoints, snapshots).

use std::future::Future;
use std::pin::Pin;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use super::protocol::{self, Request};
use super::session::{After, Handled, Session};
use crate::debugger::target::TargetState;

/// What a request needs before its handler runs; checked in this order:
/// a target, then a stopped one, then one that can run backwards.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// Nothing: answered with or without a target.
    Nothing,
    /// A target, running or stopped.
    Target,
    /// A stopped target.
    Stopped,
    /// A stopped target whose stub runs backwards (a replay).
    Reverse,
}

type Reply<'a> = Pin<Box<dyn Future<Output = Result<Handled>> + 'a>>;

struct Route {
    command: &'static str,
    needs: Needs,
    handler: for<'a> fn(&'a mut Session, Value) -> Reply<'a>,
}

/// `route!(command, needs, method)`: `method` takes the arguments as its
/// protocol type and returns a body (`Value`) or a [`Handled`].
macro_rules! route {
    ($command:literal, $needs:ident, $method:ident) => {
        Route {
            command: $command,
            needs: Needs::$needs,
            handler: |session, args| {
                Box::pin(async move {
                    let args = arguments($command, args)?;
                    session.$method(args).await.map(Handled::from)
                })
            },
        }
    };
}

#[rustfmt::skip]
const REQUESTS: &[Route] = &[
    route!("initialize",              Nothing, initialize),
    route!("launch",                  Nothing, launch),
    route!("attach",                  Nothing, attach),
    route!("disconnect",              Nothing, disconnect),
    route!("threads",                 Nothing, threads),
    route!("vmdbg/snapshot",          Nothing, take_snapshot),
    route!("vmdbg/restore",           Nothing, restore_snapshot),
    route!("vmdbg/snapshots",         Nothing, list_snapshots),
    route!("vmdbg/consoleInput",      Nothing, console_input),
    route!("configurationDone",       Target,  configuration_done),
    route!("setBreakpoints",          Target,  set_breakpoints),
    route!("setFunctionBreakpoints",  Target,  set_function_breakpoints_request),
    route!("setExceptionBreakpoints", Target,  set_exception_breakpoints),
    route!("dataBreakpointInfo",      Target,  data_breakpoint_info),
    route!("setDataBreakpoints",      Target,  set_data_breakpoints_request),
    route!("continue",                Stopped, continue_request),
    route!("pause",                   Target,  pause),
    route!("next",                    Stopped, next_request),
    route!("stepIn",                  Stopped, step_in_request),
    route!("stepOut",                 Stopped, step_out_request),
    route!("stepBack",                Reverse, step_back_request),
    route!("reverseContinue",         Reverse, reverse_continue_request),
    route!("stackTrace",              Stopped, stack_trace),
    route!("scopes",                  Stopped, scopes),
    route!("variables",               Stopped, variables),
    route!("setVariable",             Stopped, set_variable),
    route!("evaluate",                Stopped, evaluate),
    route!("readMemory",              Stopped, read_memory),
    route!("writeMemory",             Stopped, write_memory),
    route!("disassemble",             Stopped, disassemble),
    route!("exceptionInfo",           Target,  exception_info),
    route!("terminate",               Target,  terminate),
    route!("restart",                 Target,  restart),
];

/// A request's arguments as their protocol type, or a one-line error
/// naming the request and what is wrong with them.
fn arguments<T: serde::de::DeserializeOwned>(command: &str, args: Value) -> Result<T> {
    serde_json::from_value(args).map_err(|e| anyhow!("invalid `{command}` arguments: {e}"))
}

impl From<Value> for Handled {
    fn from(body: Value) -> Self {
        Handled::Respond(body)
    }
}

impl Session {
    /// The dispatcher: a dead kernel kept for inspection answers by itself;
    /// otherwise the table's handler, once what it needs holds.
    pub(super) async fn handle(&mut self, request: Request) -> Result<Handled> {
        let command = request.command.as_str();
        let args = request.arguments;
        if self.dbg.target.is_none() && self.post_mortem.is_some() && command != "initialize" {
            return self.handle_post_mortem(command, args).await;
        }
        let Some(route) = REQUESTS.iter().find(|r| r.command == command) else {
            bail!("unsupported request `{command}`");
        };
        if route.needs != Needs::Nothing && self.dbg.target.is_none() {
            bail!("`{command}` needs a running session: launch or attach first");
        }
        match route.needs {
            Needs::Nothing | Needs::Target => {}
            Needs::Stopped => self.require_stopped()?,
            Needs::Reverse => self.require_reverse()?,
        }
        (route.handler)(self, args).await
    }

    async fn initialize(&mut self, _: Value) -> Result<Value> {
        Ok(protocol::capabilities())
    }

    async fn launch(&mut self, args: Value) -> Result<Handled> {
        self.start_target(super::arguments::parse_launch(args)?)
            .await?;
        Ok(Handled::RespondThen(Value::Null, After::Initialized))
    }

    async fn attach(&mut self, args: Value) -> Result<Handled> {
        self.start_target(super::arguments::parse_attach(args)?)
            .await?;
        Ok(Handled::RespondThen(Value::Null, After::Initialized))
    }

    async fn disconnect(&mut self, args: Value) -> Result<Value> {
        // Leaving always works: arguments it cannot read mean the defaults.
        let args: protocol::DisconnectArguments = serde_json::from_value(args).unwrap_or_default();
        self.end_target(args.terminate_debuggee).await;
        self.finish();
        Ok(Value::Null)
    }

    async fn threads(&mut self, _: Value) -> Result<Value> {
        Ok(self.threads_request().await)
    }

    async fn take_snapshot(&mut self, args: Value) -> Result<Value> {
        self.snapshot_request("vmdbg/snapshot", args).await
    }

    async fn restore_snapshot(&mut self, args: Value) -> Result<Value> {
        self.snapshot_request("vmdbg/restore", args).await
    }

    async fn list_snapshots(&mut self, args: Value) -> Result<Value> {
        self.snapshot_request("vmdbg/snapshots", args).await
    }

    async fn console_input(&mut self, args: Value) -> Result<Value> {
        let text = args
            .get("text")
            .and_then(Value::as_str)
            .context("`vmdbg/consoleInput` needs a string `text`")?;
        let vm = self.kernel_vm.as_mut();
        let Some(vm) = vm else {
            bail!("this session has no guest console to type into (kernel launches have one)");
        };
        vm.console_input(text.as_bytes())?;
        Ok(Value::Null)
    }

    async fn configuration_done(&mut self, _: Value) -> Result<Handled> {
        self.configured = true;
        Ok(Handled::RespondThen(Value::Null, After::Start))
    }

    async fn set_breakpoints(&mut self, args: protocol::SetBreakpointsArguments) -> Result<Value> {
        self.with_target_stopped(|s| Box::pin(s.set_line_breakpoints(args)))
            .await
    }

    async fn set_function_breakpoints_request(
        &mut self,
        args: protocol::SetFunctionBreakpointsArguments,
    ) -> Result<Value> {
        self.with_target_stopped(|s| Box::pin(s.set_function_breakpoints(args)))
            .await
    }

    async fn set_exception_breakpoints(&mut self, _: Value) -> Result<Value> {
        Ok(json!({ "breakpoints": [] }))
    }

    async fn set_data_breakpoints_request(
        &mut self,
        args: protocol::SetDataBreakpointsArguments,
    ) -> Result<Value> {
        self.with_target_stopped(|s| Box::pin(s.set_data_breakpoints(args)))
            .await
    }

    async fn continue_request(&mut self, _: Value) -> Result<Handled> {
        Ok(Handled::RespondThen(
            json!({ "allThreadsContinued": true }),
            After::Continue,
        ))
    }

    async fn pause(&mut self, _: Value) -> Result<Value> {
        let target = self.dbg.target.as_mut().context("no target")?;
        if target.is_running() {
            target.rsp.interrupt()?;
        } else {
            // Already stopped: say so again so the client shows it.
            let thread = TargetState::thread_id(&target.thread);
            self.out.stopped("pause", thread).send();
        }
        Ok(Value::Null)
    }

    async fn next_request(&mut self, args: protocol::ThreadArguments) -> Result<Handled> {
        self.step_request(args, After::StepOver)
    }

    async fn step_in_request(&mut self, args: protocol::ThreadArguments) -> Result<Handled> {
        self.step_request(args, After::StepIn)
    }

    async fn step_out_request(&mut self, args: protocol::ThreadArguments) -> Result<Handled> {
        self.step_request(args, After::StepOut)
    }

    /// `next`, `stepIn` and `stepOut` on the thread the client names; by
    /// instruction, the first two step one instruction (`stepOut` has no
    /// instruction form).
    fn step_request(&mut self, args: protocol::ThreadArguments, by_line: After) -> Result<Handled> {
        if let Some(id) = args.thread_id {
            let target = self.dbg.target.as_mut().context("no target")?;
            target.thread = target.rsp_thread(id);
        }
        let instruction = args.granularity.as_deref() == Some("instruction");
        let after = match by_line {
            After::StepOver | After::StepIn if instruction => After::StepInstruction,
            after => after,
        };
        Ok(Handled::RespondThen(Value::Null, after))
    }

    async fn step_back_request(&mut self, args: protocol::ThreadArguments) -> Result<Handled> {
        let instruction = args.granularity.as_deref() == Some("instruction");
        Ok(Handled::RespondThen(
            Value::Null,
            After::StepBack(instruction),
        ))
    }

    async fn reverse_continue_request(&mut self, _: Value) -> Result<Handled> {
        Ok(Handled::RespondThen(Value::Null, After::ReverseContinue))
    }

    async fn exception_info(&mut self, _: Value) -> Result<Value> {
        let target = self.dbg.target.as_ref().context("no target")?;
        let (id, description) = target
            .stop
            .exception
            .clone()
            .context("the target is not stopped at an exception")?;
        Ok(json!({ "exceptionId": id, "description": description, "breakMode": "always" }))
    }

    async fn terminate(&mut self, _: Value) -> Result<Value> {
        self.end_target(Some(true)).await;
        Ok(Value::Null)
    }

    async fn restart(&mut self, _: Value) -> Result<Handled> {
        let config = self.start.clone().context("nothing to restart")?;
        self.end_target_quietly(Some(true)).await;
        // A restart keeps the breakpoints: they are inserted again.
        self.start_target(config).await?;
        self.dbg.reinsert_breakpoints().await;
        Ok(Handled::RespondThen(Value::Null, After::Start))
    }
}

//! The request table: every DAP request the server answers, one line each
//! — its command, what it needs before it runs, its handler, and what it
//! does while a dead kernel is shown (post-mortem) — and the one
//! dispatcher over it (as probe-rs's). A handler takes the request's
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
use super::session::{after, After, Handled, Session};
use crate::debugger::stepping::StepKind;
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

/// What a request does while a launched kernel that died of an
/// unhandled exception is shown (`postmortem`): there is no target then.
enum Dead {
    /// Answered as ever.
    Live,
    /// Answered from the dead kernel's last state, by this handler.
    Shown(Handler),
    /// Ends the inspection: the VM's end is reported, then the answer.
    Ends,
    /// Answered with no breakpoints: none can be set any more.
    NoBreakpoints,
    /// Refused: the VM has ended.
    Refused,
}

type Reply<'a> = Pin<Box<dyn Future<Output = Result<Handled>> + 'a>>;

type Handler = for<'a> fn(&'a mut Session, Value) -> Reply<'a>;

struct Route {
    command: &'static str,
    needs: Needs,
    handler: Handler,
    dead: Dead,
}

/// A [`Handler`] calling `method`, which takes the arguments as their
/// protocol type and returns a body (`Value`) or a [`Handled`].
macro_rules! handler {
    ($command:literal, $method:ident) => {
        |session, args| {
            Box::pin(async move {
                let args = arguments($command, args)?;
                session.$method(args).await.map(Handled::from)
            })
        }
    };
}

/// `route!(command, needs, method, dead)`: one line of the table.
macro_rules! route {
    ($command:literal, $needs:ident, $method:ident, Shown($dead:ident)) => {
        Route {
            command: $command,
            needs: Needs::$needs,
            handler: handler!($command, $method),
            dead: Dead::Shown(handler!($command, $dead)),
        }
    };
    ($command:literal, $needs:ident, $method:ident, $dead:ident) => {
        Route {
            command: $command,
            needs: Needs::$needs,
            handler: handler!($command, $method),
            dead: Dead::$dead,
        }
    };
}

// command, what it needs, its handler, what it does in a post-mortem.
#[rustfmt::skip]
const REQUESTS: &[Route] = &[
    route!("initialize",              Nothing, initialize,                       Live),
    route!("launch",                  Nothing, launch,                           Refused),
    route!("attach",                  Nothing, attach,                           Refused),
    route!("disconnect",              Nothing, disconnect,                       Ends),
    route!("threads",                 Nothing, threads,                          Shown(post_mortem_threads)),
    route!("vmdbg/snapshot",          Nothing, take_snapshot,                    Refused),
    route!("vmdbg/restore",           Nothing, restore_snapshot,                 Refused),
    route!("vmdbg/snapshots",         Nothing, list_snapshots,                   Refused),
    route!("vmdbg/consoleInput",      Nothing, console_input,                    Refused),
    route!("configurationDone",       Target,  configuration_done,               NoBreakpoints),
    route!("setBreakpoints",          Target,  set_breakpoints,                  NoBreakpoints),
    route!("setFunctionBreakpoints",  Target,  set_function_breakpoints_request, NoBreakpoints),
    route!("setExceptionBreakpoints", Target,  set_exception_breakpoints,        NoBreakpoints),
    route!("dataBreakpointInfo",      Target,  data_breakpoint_info,             Refused),
    route!("setDataBreakpoints",      Target,  set_data_breakpoints_request,     NoBreakpoints),
    route!("continue",                Stopped, continue_request,                 Ends),
    route!("pause",                   Target,  pause,                            Ends),
    route!("next",                    Stopped, next_request,                     Ends),
    route!("stepIn",                  Stopped, step_in_request,                  Ends),
    route!("stepOut",                 Stopped, step_out_request,                 Ends),
    route!("stepBack",                Reverse, step_back_request,                Refused),
    route!("reverseContinue",         Reverse, reverse_continue_request,         Refused),
    route!("stackTrace",              Stopped, stack_trace,                      Shown(post_mortem_stack_trace)),
    route!("scopes",                  Stopped, scopes,                           Shown(post_mortem_scopes)),
    route!("variables",               Stopped, variables,                        Shown(post_mortem_variables)),
    route!("setVariable",             Stopped, set_variable,                     Refused),
    route!("evaluate",                Stopped, evaluate,                         Shown(post_mortem_evaluate)),
    route!("readMemory",              Stopped, read_memory,                      Refused),
    route!("writeMemory",             Stopped, write_memory,                     Refused),
    route!("disassemble",             Stopped, disassemble,                      Refused),
    route!("exceptionInfo",           Target,  exception_info,                   Shown(post_mortem_exception_info)),
    route!("terminate",               Target,  terminate,                        Ends),
    route!("restart",                 Target,  restart,                          Ends),
];

/// A request's arguments as their protocol type, or a one-line error
/// naming the request and what is wrong with them.
fn arguments<T: serde::de::DeserializeOwned>(command: &str, args: Value) -> Result<T> {
    serde_json::from_value(args).map_err(|e| anyhow!("invalid `{command}` arguments: {e}"))
}

/// The line steps, by what they do with calls.
enum Line {
    Over,
    In,
    Out,
}

/// After `launch` and `attach`: the client may configure the session now.
fn initialized() -> After {
    after(|s| {
        Box::pin(async move {
            s.out.event("initialized", Value::Null);
            Ok(())
        })
    })
}

impl From<Value> for Handled {
    fn from(body: Value) -> Self {
        Handled::Respond(body)
    }
}

impl Session {
    /// The dispatcher: the table's handler, once what it needs holds;
    /// while a dead kernel is shown, what the table says for that.
    pub(super) async fn handle(&mut self, request: Request) -> Result<Handled> {
        let command = request.command.as_str();
        let args = request.arguments;
        let route = REQUESTS.iter().find(|r| r.command == command);
        if self.dbg.target.is_none() && self.post_mortem.is_some() {
            match route.map_or(&Dead::Refused, |r| &r.dead) {
                Dead::Live => {}
                Dead::Shown(handler) => return handler(self, args).await,
                Dead::Ends => return self.end_post_mortem(command).await,
                Dead::NoBreakpoints => return Ok(Handled::Respond(json!({ "breakpoints": [] }))),
                Dead::Refused => {
                    bail!("`{command}` is not available: the VM ended with an unhandled exception")
                }
            }
        }
        let Some(route) = route else {
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
        Ok(Handled::RespondThen(Value::Null, initialized()))
    }

    async fn attach(&mut self, args: Value) -> Result<Handled> {
        self.start_target(super::arguments::parse_attach(args)?)
            .await?;
        Ok(Handled::RespondThen(Value::Null, initialized()))
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
        Ok(Handled::RespondThen(
            Value::Null,
            after(|s| Box::pin(s.start_running())),
        ))
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
            after(|s| Box::pin(s.resume_continue())),
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
        self.step_request(args, Line::Over)
    }

    async fn step_in_request(&mut self, args: protocol::ThreadArguments) -> Result<Handled> {
        self.step_request(args, Line::In)
    }

    async fn step_out_request(&mut self, args: protocol::ThreadArguments) -> Result<Handled> {
        self.step_request(args, Line::Out)
    }

    /// `next`, `stepIn` and `stepOut` on the thread the client names; by
    /// instruction, the first two step one instruction (`stepOut` has no
    /// instruction form).
    fn step_request(&mut self, args: protocol::ThreadArguments, line: Line) -> Result<Handled> {
        if let Some(id) = args.thread_id {
            let target = self.dbg.target.as_mut().context("no target")?;
            target.thread = target.rsp_thread(id);
        }
        let instruction = args.granularity.as_deref() == Some("instruction");
        let then = match line {
            Line::Over | Line::In if instruction => after(|s| Box::pin(s.step_instruction())),
            Line::Over => after(|s| Box::pin(s.start_step(StepKind::Over))),
            Line::In => after(|s| Box::pin(s.start_step(StepKind::In))),
            Line::Out => after(|s| Box::pin(s.step_out())),
        };
        Ok(Handled::RespondThen(Value::Null, then))
    }

    async fn step_back_request(&mut self, args: protocol::ThreadArguments) -> Result<Handled> {
        let instruction = args.granularity.as_deref() == Some("instruction");
        Ok(Handled::RespondThen(
            Value::Null,
            after(move |s| Box::pin(s.step_back(instruction))),
        ))
    }

    async fn reverse_continue_request(&mut self, _: Value) -> Result<Handled> {
        Ok(Handled::RespondThen(
            Value::Null,
            after(|s| Box::pin(s.reverse_continue())),
        ))
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
        Ok(Handled::RespondThen(
            Value::Null,
            after(|s| Box::pin(s.start_running())),
        ))
    }
}

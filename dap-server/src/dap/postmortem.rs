//! A launched kernel that took an exception it could not handle: the VMM
//! ends the VM (a triple fault) and reports the vCPU's registers. The
//! session shows that as a `stopped` event with reason `exception`, with
//! `exceptionInfo`, the faulting source line (inlined calls included) and
//! the registers, until the client continues or disconnects; then the
//! usual `exited`/`terminated` follow. Guest memory is gone by then, so
//! there are no variables or callers beyond what the registers give.

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::session::{Handled, Session};
use crate::debugger::target::TargetState;

pub struct PostMortem {
    pub target: TargetState,
    /// The dead kernel's VM, kept until the inspection ends.
    pub kernel_vm: Option<super::kernel::KernelVm>,
    /// The VMM's one-line reason (e.g. "guest triple fault …").
    pub reason: String,
    pub report: String,
    pub registers: Vec<(String, u64)>,
    pub rip: u64,
}

/// Registers from the VMM's report (`RIP=0x… RSP=0x…`).
fn parse_registers(report: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for word in report.split_whitespace() {
        if let Some((name, value)) = word.split_once('=') {
            if let Some(hex) = value.strip_prefix("0x") {
                if let Ok(v) = u64::from_str_radix(hex, 16) {
                    if name.chars().all(|c| c.is_ascii_alphanumeric())
                        && !out.iter().any(|(n, _)| n == name)
                    {
                        out.push((name.to_ascii_lowercase(), v));
                    }
                }
            }
        }
    }
    out
}

impl Session {
    /// On `X` from a launched kernel: if the VMM reported why, keep the
    /// target for inspection and report the exception. False otherwise.
    pub async fn enter_post_mortem(&mut self) -> bool {
        // The report comes on stderr while the stop reply comes on the
        // socket: the VM's last words wait (briefly) for stderr to close.
        let Some(text) = self.kernel_vm.as_mut().map(|vm| vm.last_words()) else {
            return false;
        };
        let Some(start) = text.rfind("vmdbg-vmm: ") else {
            return false;
        };
        let report = text[start..].to_string();
        let registers = parse_registers(&report);
        let Some(rip) = registers.iter().find(|(n, _)| n == "rip").map(|(_, v)| *v) else {
            return false;
        };
        let reason = report
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("vmdbg-vmm: ")
            .to_string();
        let Some(mut target) = self.dbg.target.take() else {
            return false;
        };
        target.running = None;
        let thread = TargetState::thread_id(&target.thread);
        let location = target
            .symbols
            .source_frames(rip)
            .first()
            .map(|f| {
                format!(
                    " in {} at {}:{}",
                    f.function,
                    f.file.as_deref().unwrap_or("??"),
                    f.line.unwrap_or(0)
                )
            })
            .unwrap_or_default();
        let description = format!("{reason} — at {rip:#x}{location}");
        self.out
            .stopped("exception", thread)
            .description(description)
            .text("unhandled exception")
            .send();
        self.forget_target_parts();
        self.post_mortem = Some(PostMortem {
            target,
            kernel_vm: self.kernel_vm.take(),
            reason,
            report,
            registers,
            rip,
        });
        true
    }

    fn dead(&self) -> &PostMortem {
        self.post_mortem.as_ref().expect("in post-mortem")
    }

    /// `threads` of the dead kernel: its one vCPU that faulted.
    pub(super) async fn post_mortem_threads(&mut self, _: Value) -> Result<Value> {
        let thread = TargetState::thread_id(&self.dead().target.thread);
        Ok(json!({ "threads": [{ "id": thread, "name": format!("vCPU {}", thread - 1) }] }))
    }

    /// `stackTrace`: the faulting line, inlined calls included (no
    /// callers: memory is gone).
    pub(super) async fn post_mortem_stack_trace(&mut self, _: Value) -> Result<Value> {
        let pm = self.dead();
        let frames: Vec<Value> = pm
            .target
            .symbols
            .source_frames(pm.rip)
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let mut frame = json!({
                    "id": i + 1,
                    "name": if f.inlined { format!("{} [inlined]", f.function) } else { f.function.clone() },
                    "line": f.line.unwrap_or(0),
                    "column": f.column.unwrap_or(1).max(1),
                    "instructionPointerReference": format!("{:#x}", pm.rip),
                });
                if let Some(path) = &f.file {
                    frame["source"] = json!({ "name": std::path::Path::new(path).file_name().map(|n| n.to_string_lossy()), "path": path });
                }
                frame
            })
            .collect();
        let total = frames.len();
        Ok(json!({ "stackFrames": frames, "totalFrames": total }))
    }

    /// `scopes`: the registers only.
    pub(super) async fn post_mortem_scopes(&mut self, _: Value) -> Result<Value> {
        Ok(
            json!({ "scopes": [{ "name": "Registers", "presentationHint": "registers", "variablesReference": 1, "expensive": false }] }),
        )
    }

    /// `variables`: the registers the VMM reported.
    pub(super) async fn post_mortem_variables(&mut self, _: Value) -> Result<Value> {
        let vars: Vec<Value> = self
            .dead()
            .registers
            .iter()
            .map(|(n, v)| json!({ "name": n, "value": format!("{v:#x}"), "variablesReference": 0 }))
            .collect();
        Ok(json!({ "variables": vars }))
    }

    /// `exceptionInfo`: the VMM's reason and report.
    pub(super) async fn post_mortem_exception_info(&mut self, _: Value) -> Result<Value> {
        let pm = self.dead();
        Ok(json!({
            "exceptionId": "unhandled exception",
            "description": pm.reason,
            "breakMode": "always",
            "details": { "message": pm.report, "stackTrace": format!("{:#x}", pm.rip) },
        }))
    }

    pub(super) async fn post_mortem_evaluate(&mut self, _: Value) -> Result<Value> {
        bail!("the VM has ended: only the registers of its last state are known")
    }

    /// A request that ends the inspection (`continue`, `disconnect` …): the
    /// VM's end is reported as usual now, then the request's answer.
    pub(super) async fn end_post_mortem(&mut self, command: &str) -> Result<Handled> {
        let pm = self.post_mortem.take().expect("in post-mortem");
        self.dbg.target = Some(pm.target);
        self.kernel_vm = pm.kernel_vm;
        self.target_gone(None).await;
        if command == "disconnect" {
            self.finish();
        }
        Ok(Handled::Respond(if command == "continue" {
            json!({ "allThreadsContinued": true })
        } else {
            Value::Null
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_vmm_report() {
        let regs = parse_registers("vmdbg-vmm: guest triple fault\n  RIP=0x000000000010046c RSP=0x0000000000114fe0\n  CS=0x0008 (base 0x0, 64-bit)");
        assert_eq!(regs[0], ("rip".to_string(), 0x10046c));
        assert_eq!(regs[1].0, "rsp");
    }
}

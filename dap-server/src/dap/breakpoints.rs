//! Line, function and data breakpoints. Each lives in a stub breakpoint
//! or watchpoint; on vmdbg-vmm those are the four debug registers DR0–DR3,
//! so a fifth is refused by the stub and reported `verified: false` with
//! the reason, never silently dropped.
//!
//! Line and function breakpoints may carry a `condition` (an expression
//! of `evaluate`, true when non-zero), a `hitCondition` (gdb-like: `N` or
//! `>= N` stops from the Nth hit on, `> N`, `== N`, `% N` every Nth; hits
//! are counted when the condition holds) and a `logMessage` (a logpoint:
//! printed with its `{expr}` values, no stop). They are decided when the
//! target stops at the breakpoint's address; when none of the breakpoints
//! there wants a stop, the session goes on with what it was doing
//! (continue, a step) without telling the client. A condition that cannot
//! be evaluated stops, as gdb does ("Error in testing condition"), and the
//! breakpoint's `message` says why.

use std::collections::BTreeSet;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::protocol::{self, Breakpoint, Source};
use super::session::Session;
use crate::debugger::breakpoints::{DataBreakpoint, HitCondition, SourceFile, UserBreakpoint};
use crate::debugger::eval::VarNode;
use crate::rsp::WatchKind;
use crate::symbols::expr;
use crate::symbols::types::Place;
use crate::symbols::{Function, Symbols};

/// The condition fields of a source or function breakpoint, checked: a
/// bad `hitCondition` refuses the breakpoint (the message says why), a
/// condition that does not parse is kept (it stops and says so when hit)
/// with a message.
fn conditions(
    mut bp: UserBreakpoint,
    condition: Option<String>,
    hit_condition: Option<String>,
    log_message: Option<String>,
) -> UserBreakpoint {
    let present = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
    bp.condition = present(condition);
    bp.log_message = present(log_message);
    if let Some(text) = present(hit_condition) {
        match HitCondition::parse(&text) {
            Ok(h) => bp.hit_condition = Some(h),
            Err(why) => {
                bp.verified = false;
                bp.message = Some(why);
                return bp;
            }
        }
    }
    if let Some(condition) = &bp.condition {
        if let Err(e) = expr::parse(condition) {
            bp.message = Some(format!(
                "condition {condition:?} does not parse: {e}; the breakpoint stops and reports this when it is reached"
            ));
        }
    }
    bp
}

const NO_SLOT: &str = "no hardware breakpoint slot: vmdbg-vmm serves breakpoints and watchpoints from the 4 debug registers (DR0–DR3) and refused this one: all are in use (remove another breakpoint or watchpoint), or this host's KVM delivers no breakpoints at all (the debug console says so at launch)";

impl Session {
    fn new_id(&mut self) -> i64 {
        self.dbg.next_id += 1;
        self.dbg.next_id - 1
    }

    pub async fn set_line_breakpoints(
        &mut self,
        args: protocol::SetBreakpointsArguments,
    ) -> Result<Value> {
        let path = args
            .source
            .path
            .clone()
            .context("setBreakpoints needs source.path")?;
        let wanted: Vec<protocol::SourceBreakpoint> = match (args.breakpoints, &args.lines) {
            (Some(bps), _) => bps,
            (None, Some(lines)) => lines
                .iter()
                .map(|&line| protocol::SourceBreakpoint {
                    line,
                    condition: None,
                    hit_condition: None,
                    log_message: None,
                })
                .collect(),
            (None, None) => Vec::new(),
        };
        let symbols = self
            .dbg
            .target
            .as_ref()
            .context("no target")?
            .symbols
            .clone();
        let pending = if self.kernel_modules.is_some() {
            "; pending: it is placed when a kernel module built from this file loads"
        } else {
            ""
        };
        let source = SourceFile {
            name: args.source.name.clone(),
            path: args.source.path.clone(),
        };
        let mut list = Vec::new();
        for wanted in wanted {
            let line = wanted.line;
            let id = self.new_id();
            let bp = match self
                .dbg
                .target
                .as_ref()
                .context("no target")?
                .place_line_breakpoint(&path, line)
            {
                Some(p) => UserBreakpoint {
                    id,
                    addr: Some(p.addr),
                    line: Some(p.line),
                    source: Some(source.clone()),
                    verified: true,
                    message: (p.line != line)
                        .then(|| format!("line {line} has no code; moved to line {}", p.line)),
                    ..Default::default()
                },
                None => UserBreakpoint {
                    id,
                    addr: None,
                    line: Some(line),
                    source: Some(source.clone()),
                    verified: false,
                    message: Some(format!(
                        "no code at or after line {line} of {path} in {}{pending}",
                        symbols.path.display()
                    )),
                    ..Default::default()
                },
            };
            list.push(conditions(
                bp,
                wanted.condition,
                wanted.hit_condition,
                wanted.log_message,
            ));
        }
        self.dbg.line_breakpoints.insert(path.clone(), list);
        self.sync_breakpoints().await?;
        let list = &self.dbg.line_breakpoints[&path];
        Ok(json!({ "breakpoints": list.iter().map(to_dap).collect::<Vec<_>>() }))
    }

    pub async fn set_function_breakpoints(
        &mut self,
        args: protocol::SetFunctionBreakpointsArguments,
    ) -> Result<Value> {
        let symbols = self
            .dbg
            .target
            .as_ref()
            .context("no target")?
            .symbols
            .clone();
        self.forget_module_function_breakpoints();
        let mut list = Vec::new();
        for fb in args.breakpoints {
            let id = self.new_id();
            let bp = match symbols.function_named(&fb.name) {
                Some(f) => at_function(id, &symbols, f),
                None => self
                    .module_function_breakpoint(id, &fb.name)
                    .unwrap_or_else(|| UserBreakpoint {
                        id,
                        addr: None,
                        line: None,
                        source: None,
                        verified: false,
                        message: Some(format!(
                            "no function named {:?} in {}",
                            fb.name,
                            symbols.path.display()
                        )),
                        ..Default::default()
                    }),
            };
            list.push(conditions(bp, fb.condition, fb.hit_condition, None));
        }
        self.dbg.function_breakpoints = list;
        self.sync_breakpoints().await?;
        Ok(
            json!({ "breakpoints": self.dbg.function_breakpoints.iter().map(to_dap).collect::<Vec<_>>() }),
        )
    }

    /// Decides a stop at `pc`, where user breakpoints are: each one's
    /// condition, hit count and log message. Returns the ids of those that
    /// stop the target (empty: the caller goes on). Decided once per stop.
    pub async fn decide_breakpoints(&mut self, pc: u64) -> Vec<i64> {
        if let Some((at, ids)) = self
            .dbg
            .target
            .as_ref()
            .and_then(|t| t.stop.decided.clone())
        {
            if at == pc {
                return ids;
            }
        }
        let mut stopping = Vec::new();
        for id in self.breakpoint_ids_at(pc) {
            let Some(bp) = self.user_breakpoint_mut(id).map(|b| b.clone()) else {
                continue;
            };
            if let Some(condition) = &bp.condition {
                match self.dbg.evaluate_truth(condition).await {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        self.out.output(
                            "console",
                            format!(
                                "Error in testing condition for breakpoint {id}: {e:#}\n(condition: {condition})\n"
                            ),
                        );
                        if let Some(stored) = self.user_breakpoint_mut(id) {
                            stored.message = Some(format!("condition {condition:?} failed: {e:#}"));
                            let changed = to_dap(stored);
                            self.out.event(
                                "breakpoint",
                                json!({ "reason": "changed", "breakpoint": changed }),
                            );
                        }
                        stopping.push(id);
                        continue;
                    }
                }
            }
            let hits = match self.user_breakpoint_mut(id) {
                Some(stored) => {
                    stored.hits += 1;
                    stored.hits
                }
                None => continue,
            };
            if bp.hit_condition.is_some_and(|h| !h.stops(hits)) {
                continue;
            }
            if let Some(message) = &bp.log_message {
                let text = self.interpolate(message).await;
                self.out.output("console", format!("{text}\n"));
                continue;
            }
            stopping.push(id);
        }
        if let Some(target) = self.dbg.target.as_mut() {
            target.stop.decided = Some((pc, stopping.clone()));
        }
        stopping
    }

    fn user_breakpoint_mut(&mut self, id: i64) -> Option<&mut UserBreakpoint> {
        self.dbg
            .line_breakpoints
            .values_mut()
            .flatten()
            .chain(self.dbg.function_breakpoints.iter_mut())
            .find(|b| b.id == id)
    }

    /// A logpoint's message with each `{expression}` replaced by its value
    /// (as `evaluate` shows it, or `<error: …>`); `{{` and `}}` are braces.
    async fn interpolate(&mut self, message: &str) -> String {
        let mut out = String::new();
        let mut rest = message;
        while let Some(at) = rest.find(['{', '}']) {
            out.push_str(&rest[..at]);
            let tail = &rest[at..];
            if tail.starts_with("{{") || tail.starts_with("}}") {
                out.push_str(&tail[..1]);
                rest = &tail[2..];
                continue;
            }
            if let Some(after) = tail.strip_prefix('}') {
                out.push('}');
                rest = after;
                continue;
            }
            let Some(end) = tail.find('}') else {
                out.push_str(tail);
                rest = "";
                break;
            };
            let expression = &tail[1..end];
            match self.dbg.evaluate_text(expression).await {
                Ok(value) => out.push_str(&value),
                Err(e) => out.push_str(&format!("<error: {e:#}>")),
            }
            rest = &tail[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// Makes the stub's breakpoints match the wanted set: removes first
    /// (to free slots), then inserts; a refused insert marks the
    /// breakpoints at that address unverified with the reason.
    pub(super) async fn sync_breakpoints(&mut self) -> Result<()> {
        let module_watch = self.kernel_modules.as_ref().map(|m| m.watch);
        let wanted: BTreeSet<u64> = self
            .dbg
            .line_breakpoints
            .values()
            .flatten()
            .chain(self.dbg.function_breakpoints.iter())
            .filter(|b| b.addr.is_some() && (b.verified || b.message.as_deref() == Some(NO_SLOT)))
            .filter_map(|b| b.addr)
            .chain(module_watch)
            .collect();
        let target = self.dbg.target.as_mut().context("no target")?;
        let stale: Vec<u64> = target.inserted.difference(&wanted).copied().collect();
        for addr in stale {
            target.rsp.remove_breakpoint(addr).await?;
            target.inserted.remove(&addr);
        }
        let mut refused = Vec::new();
        for addr in wanted {
            if target.inserted.contains(&addr) {
                continue;
            }
            match target.rsp.insert_breakpoint(addr).await {
                Ok(()) => {
                    target.inserted.insert(addr);
                }
                Err(e) => {
                    tracing::info!("breakpoint at {addr:#x} refused: {e:#}");
                    refused.push(addr);
                }
            }
        }
        let inserted = target.inserted.clone();
        for bp in self
            .dbg
            .line_breakpoints
            .values_mut()
            .flatten()
            .chain(self.dbg.function_breakpoints.iter_mut())
        {
            let Some(addr) = bp.addr else { continue };
            if refused.contains(&addr) {
                bp.verified = false;
                bp.message = Some(NO_SLOT.to_string());
            } else if inserted.contains(&addr) && bp.message.as_deref() == Some(NO_SLOT) {
                bp.verified = true;
                bp.message = None;
            }
        }
        Ok(())
    }

    pub async fn data_breakpoint_info(
        &mut self,
        args: protocol::DataBreakpointInfoArguments,
    ) -> Result<Value> {
        let found = match args.variables_reference.filter(|&r| r > 0) {
            Some(reference) => {
                let children = self.dbg.children_of(reference).await?;
                children
                    .into_iter()
                    .find(|c| c.name == args.name)
                    .map(|c| (c.place, c.size))
            }
            None => {
                let frame = args.frame_id.map(|f| (f - 1).max(0) as usize).unwrap_or(0);
                match self.dbg.evaluate_to_value(frame, &args.name).await {
                    Ok(VarNode::Value { ty, place, .. }) => {
                        let symbols = self
                            .dbg
                            .target
                            .as_ref()
                            .context("no target")?
                            .symbols
                            .clone();
                        Some((
                            place,
                            ty.and_then(|t| symbols.resolve_type(t).size).unwrap_or(0),
                        ))
                    }
                    _ => None,
                }
            }
        };
        Ok(match found {
            Some((Place::Memory(addr), size)) if matches!(size, 1 | 2 | 4 | 8) => json!({
                "dataId": format!("{addr:#x}/{size}"),
                "description": format!("{} ({size} bytes at {addr:#x})", args.name),
                "accessTypes": ["write", "readWrite"],
                "canPersist": false,
            }),
            Some((Place::Memory(_), size)) => json!({
                "dataId": null,
                "description": format!("{} is {size} bytes; a hardware watchpoint covers 1, 2, 4 or 8", args.name),
            }),
            _ => {
                json!({ "dataId": null, "description": format!("{} is not in memory", args.name) })
            }
        })
    }

    pub async fn set_data_breakpoints(
        &mut self,
        args: protocol::SetDataBreakpointsArguments,
    ) -> Result<Value> {
        let target = self.dbg.target.as_mut().context("no target")?;
        for (kind, addr, len) in std::mem::take(&mut target.watches) {
            target.rsp.remove_watchpoint(kind, addr, len).await?;
        }
        let mut list = Vec::new();
        for d in args.breakpoints {
            self.dbg.next_id += 1;
            let id = self.dbg.next_id - 1;
            let target = self.dbg.target.as_mut().context("no target")?;
            let (addr, len) = parse_data_id(&d.data_id)?;
            let kind = match d.access_type.as_deref() {
                None | Some("write") => WatchKind::Write,
                Some("readWrite") => WatchKind::Access,
                Some("read") => {
                    list.push(DataBreakpoint {
                        id,
                        addr,
                        len,
                        kind: WatchKind::Read,
                        verified: false,
                        message: Some(
                            "x86 debug registers cannot watch reads alone; use readWrite".into(),
                        ),
                    });
                    continue;
                }
                Some(other) => bail!("unknown accessType {other:?}"),
            };
            let (verified, message) = match target.rsp.insert_watchpoint(kind, addr, len).await {
                Ok(()) => {
                    target.watches.push((kind, addr, len));
                    (true, None)
                }
                Err(e) => (false, Some(format!("{NO_SLOT} ({e:#})"))),
            };
            list.push(DataBreakpoint {
                id,
                addr,
                len,
                kind,
                verified,
                message,
            });
        }
        self.dbg.data_breakpoints = list;
        let body: Vec<Value> = self
            .dbg
            .data_breakpoints
            .iter()
            .map(|d| json!({ "id": d.id, "verified": d.verified, "message": d.message }))
            .collect();
        Ok(json!({ "breakpoints": body }))
    }
}

fn parse_data_id(id: &str) -> Result<(u64, usize)> {
    let (addr, len) = id
        .split_once('/')
        .with_context(|| format!("bad dataId {id:?}"))?;
    let addr = u64::from_str_radix(addr.trim_start_matches("0x"), 16)
        .with_context(|| format!("bad dataId {id:?}"))?;
    let len = len
        .parse::<usize>()
        .with_context(|| format!("bad dataId {id:?}"))?;
    Ok((addr, len))
}

/// A breakpoint at function `f` of `symbols`, past its prologue.
pub(super) fn at_function(id: i64, symbols: &Symbols, f: &Function) -> UserBreakpoint {
    let addr = symbols.lines.after_prologue(f.low, f.high);
    let row = symbols.lines.row_at(addr);
    UserBreakpoint {
        id,
        addr: Some(addr),
        line: row.map(|r| r.line),
        source: row.map(|r| {
            let path = symbols.lines.file_name(r.file).to_string();
            SourceFile {
                name: file_name(&path),
                path: Some(path),
            }
        }),
        verified: true,
        message: None,
        ..Default::default()
    }
}

fn file_name(path: &str) -> Option<String> {
    std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
}

pub(super) fn to_dap(bp: &UserBreakpoint) -> Breakpoint {
    Breakpoint {
        id: bp.id,
        verified: bp.verified,
        message: bp.message.clone(),
        source: bp.source.clone().map(|s| Source {
            name: s.name,
            path: s.path,
        }),
        line: bp.line,
        instruction_reference: bp.addr.map(|a| format!("{a:#x}")),
    }
}

//! The DAP side of breakpoints: `setBreakpoints`, `setFunctionBreakpoints`,
//! `dataBreakpointInfo` and `setDataBreakpoints` read into the debugger's
//! breakpoints ([`crate::debugger::breakpoints`], where their conditions,
//! hit counts and logpoints are decided), and those shown as DAP
//! `Breakpoint`s. A hitCondition is gdb-like: `N` or `>= N` stops from the
//! Nth hit on, `> N`, `== N`, `% N` every Nth.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::protocol::{self, Breakpoint, Source};
use super::session::Session;
use crate::debugger::breakpoints::{
    at_function, with_conditions, Access, SourceFile, UserBreakpoint, WantedBreakpoint,
};
use crate::debugger::eval::VarNode;
use crate::symbols::types::Place;

impl Session {
    /// The DWARF of the code the target's current thread stopped in.
    fn target_symbols(&self) -> Result<std::rc::Rc<crate::symbols::Symbols>> {
        Ok(self
            .dbg
            .target
            .as_ref()
            .context("no target")?
            .symbols
            .clone())
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
        let pending = if self.kernel_modules.is_some() {
            "; pending: it is placed when a kernel module built from this file loads"
        } else {
            ""
        };
        let source = SourceFile {
            name: args.source.name.clone(),
            path: args.source.path.clone(),
        };
        let wanted = wanted
            .into_iter()
            .map(|b| WantedBreakpoint {
                line: b.line,
                condition: b.condition,
                hit_condition: b.hit_condition,
                log_message: b.log_message,
            })
            .collect();
        let list = self
            .dbg
            .set_line_breakpoints(&path, source, wanted, pending)
            .await?;
        Ok(json!({ "breakpoints": list.iter().map(to_dap).collect::<Vec<_>>() }))
    }

    pub async fn set_function_breakpoints(
        &mut self,
        args: protocol::SetFunctionBreakpointsArguments,
    ) -> Result<Value> {
        let symbols = self.target_symbols()?;
        self.forget_module_function_breakpoints();
        let mut list = Vec::new();
        for fb in args.breakpoints {
            let id = self.dbg.new_id();
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
            list.push(with_conditions(bp, fb.condition, fb.hit_condition, None));
        }
        self.dbg.function_breakpoints = list;
        self.dbg.sync_breakpoints().await?;
        Ok(
            json!({ "breakpoints": self.dbg.function_breakpoints.iter().map(to_dap).collect::<Vec<_>>() }),
        )
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
                        let symbols = self.target_symbols()?;
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
        // Read in order, as the core sets them: a bad one ends the request
        // where it stands.
        let wanted = args
            .breakpoints
            .iter()
            .map(|d| {
                let (addr, len) = parse_data_id(&d.data_id)?;
                let access = match d.access_type.as_deref() {
                    None | Some("write") => Access::Write,
                    Some("readWrite") => Access::ReadWrite,
                    Some("read") => Access::Read,
                    Some(other) => bail!("unknown accessType {other:?}"),
                };
                Ok((addr, len, access))
            })
            .collect();
        let list = self.dbg.set_data_breakpoints(wanted).await?;
        let body: Vec<Value> = list
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

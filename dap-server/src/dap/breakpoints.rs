//! Line, function and data breakpoints. Each lives in a stub breakpoint
//! or watchpoint; on vmdbg-vmm those are the four debug registers DR0–DR3,
//! so a fifth is refused by the stub and reported `verified: false` with
//! the reason, never silently dropped.

use std::collections::BTreeSet;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::protocol::{self, Breakpoint, Source};
use super::session::{DataBreakpoint, Session, UserBreakpoint, VarNode};
use crate::rsp::WatchKind;
use crate::symbols::types::Place;

const NO_SLOT: &str = "no free hardware breakpoint slot: vmdbg-vmm serves breakpoints and watchpoints from the 4 debug registers (DR0–DR3) and all are in use; remove another breakpoint or watchpoint";

impl Session {
    fn new_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id - 1
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
        let lines: Vec<u32> = match (&args.breakpoints, &args.lines) {
            (Some(bps), _) => bps.iter().map(|b| b.line).collect(),
            (None, Some(lines)) => lines.clone(),
            (None, None) => Vec::new(),
        };
        let symbols = self.target.as_ref().context("no target")?.symbols.clone();
        let mut list = Vec::new();
        for line in lines {
            let id = self.new_id();
            let bp = match self
                .target
                .as_ref()
                .context("no target")?
                .place_line_breakpoint(&path, line)
            {
                Some(p) => UserBreakpoint {
                    id,
                    addr: Some(p.addr),
                    line: Some(p.line),
                    source: Some(args.source.clone()),
                    verified: true,
                    message: (p.line != line)
                        .then(|| format!("line {line} has no code; moved to line {}", p.line)),
                },
                None => UserBreakpoint {
                    id,
                    addr: None,
                    line: Some(line),
                    source: Some(args.source.clone()),
                    verified: false,
                    message: Some(format!(
                        "no code at or after line {line} of {path} in {}",
                        symbols.path.display()
                    )),
                },
            };
            list.push(bp);
        }
        self.line_breakpoints.insert(path.clone(), list);
        self.sync_breakpoints().await?;
        let list = &self.line_breakpoints[&path];
        Ok(json!({ "breakpoints": list.iter().map(to_dap).collect::<Vec<_>>() }))
    }

    pub async fn set_function_breakpoints(
        &mut self,
        args: protocol::SetFunctionBreakpointsArguments,
    ) -> Result<Value> {
        let symbols = self.target.as_ref().context("no target")?.symbols.clone();
        let mut list = Vec::new();
        for fb in args.breakpoints {
            let id = self.new_id();
            let bp = match symbols.function_named(&fb.name) {
                Some(f) => {
                    let addr = symbols.lines.after_prologue(f.low, f.high);
                    let row = symbols.lines.row_at(addr);
                    UserBreakpoint {
                        id,
                        addr: Some(addr),
                        line: row.map(|r| r.line),
                        source: row.map(|r| {
                            let path = symbols.lines.file_name(r.file).to_string();
                            Source {
                                name: file_name(&path),
                                path: Some(path),
                            }
                        }),
                        verified: true,
                        message: None,
                    }
                }
                None => UserBreakpoint {
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
                },
            };
            list.push(bp);
        }
        self.function_breakpoints = list;
        self.sync_breakpoints().await?;
        Ok(
            json!({ "breakpoints": self.function_breakpoints.iter().map(to_dap).collect::<Vec<_>>() }),
        )
    }

    /// Makes the stub's breakpoints match the wanted set: removes first
    /// (to free slots), then inserts; a refused insert marks the
    /// breakpoints at that address unverified with the reason.
    async fn sync_breakpoints(&mut self) -> Result<()> {
        let wanted: BTreeSet<u64> = self
            .line_breakpoints
            .values()
            .flatten()
            .chain(self.function_breakpoints.iter())
            .filter(|b| b.addr.is_some() && (b.verified || b.message.as_deref() == Some(NO_SLOT)))
            .filter_map(|b| b.addr)
            .collect();
        let target = self.target.as_mut().context("no target")?;
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
            .line_breakpoints
            .values_mut()
            .flatten()
            .chain(self.function_breakpoints.iter_mut())
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
                let children = self.children_of(reference).await?;
                children
                    .into_iter()
                    .find(|c| c.name == args.name)
                    .map(|c| (c.place, c.size))
            }
            None => {
                let frame = args.frame_id.map(|f| (f - 1).max(0) as usize).unwrap_or(0);
                match self.evaluate_to_value(frame, &args.name).await {
                    Ok(VarNode::Value { ty, place, .. }) => {
                        let symbols = self.target.as_ref().context("no target")?.symbols.clone();
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
        let target = self.target.as_mut().context("no target")?;
        for (kind, addr, len) in std::mem::take(&mut target.watches) {
            target.rsp.remove_watchpoint(kind, addr, len).await?;
        }
        let mut list = Vec::new();
        for d in args.breakpoints {
            self.next_id += 1;
            let id = self.next_id - 1;
            let target = self.target.as_mut().context("no target")?;
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
        self.data_breakpoints = list;
        let body: Vec<Value> = self
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

fn file_name(path: &str) -> Option<String> {
    std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
}

fn to_dap(bp: &UserBreakpoint) -> Breakpoint {
    Breakpoint {
        id: bp.id,
        verified: bp.verified,
        message: bp.message.clone(),
        source: bp.source.clone(),
        line: bp.line,
        instruction_reference: bp.addr.map(|a| format!("{a:#x}")),
    }
}

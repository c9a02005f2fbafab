//! Breakpoints as the debugger keeps them: user breakpoints on source
//! lines and functions and data breakpoints on watched locations, and
//! what the stub holds of them. Each lives in a stub breakpoint or
//! watchpoint; on vmdbg-vmm those are the four debug registers DR0–DR3,
//! so a fifth is refused by the stub and marked unverified with the
//! reason ([`NO_SLOT`]), never silently dropped.
//!
//! Line and function breakpoints may carry a condition (an expression of
//! [`super::eval`], true when non-zero), a hit condition
//! ([`HitCondition`]; hits are counted when the condition holds) and a
//! log message (a logpoint: printed with its `{expr}` values, no stop).
//! They are decided when the target stops at the breakpoint's address
//! ([`Debugger::decide_breakpoints`]); when none there wants a stop, the
//! run goes on with what it was doing (continue, a step) without a stop
//! being reported. A condition that cannot be evaluated stops, as gdb does
//! ("Error in testing condition"), and the breakpoint's `message` says why.

use std::collections::BTreeSet;

use anyhow::{Context, Result};

use super::Debugger;
use crate::rsp::WatchKind;
use crate::symbols::expr;
use crate::symbols::{Function, Symbols};

/// A source file as a breakpoint names it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceFile {
    pub name: Option<String>,
    pub path: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct UserBreakpoint {
    pub id: i64,
    pub addr: Option<u64>,
    pub line: Option<u32>,
    pub source: Option<SourceFile>,
    pub verified: bool,
    pub message: Option<String>,
    /// Stop only when this expression is true (non-zero).
    pub condition: Option<String>,
    /// Stop only on the hits this allows (counted when the condition holds).
    pub hit_condition: Option<HitCondition>,
    /// A logpoint: print this (with `{expr}` values) and go on.
    pub log_message: Option<String>,
    /// Times the breakpoint was reached with its condition true.
    pub hits: u64,
}

#[derive(Clone, Debug)]
pub struct DataBreakpoint {
    pub id: i64,
    pub addr: u64,
    pub len: usize,
    pub kind: WatchKind,
    pub verified: bool,
    pub message: Option<String>,
}

/// When a breakpoint's hits stop the target (`hitCondition`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HitCondition {
    /// `N`, `>= N` (`> N` is `>= N+1`): from the Nth hit on, as gdb's
    /// `ignore` count of N-1.
    AtLeast(u64),
    /// `== N`: the Nth hit only.
    Exactly(u64),
    /// `% N`: every Nth hit.
    Every(u64),
}

impl HitCondition {
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let (op, number) = [">=", "==", "%", ">", "="]
            .iter()
            .find_map(|op| t.strip_prefix(op).map(|rest| (*op, rest.trim())))
            .unwrap_or(("", t));
        let bad = || {
            format!(
                "hitCondition {text:?} is not understood: give a hit count N (stop from the Nth hit on), `>= N`, `> N`, `== N` or `% N` (every Nth hit)"
            )
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        Ok(match op {
            "" | ">=" => HitCondition::AtLeast(n),
            ">" => HitCondition::AtLeast(n.saturating_add(1)),
            "==" | "=" => HitCondition::Exactly(n),
            "%" if n == 0 => {
                return Err(format!(
                    "hitCondition {text:?}: `% 0` divides by zero; give `% N` with N of 1 or more"
                ))
            }
            "%" => HitCondition::Every(n),
            _ => return Err(bad()),
        })
    }

    pub fn stops(self, hits: u64) -> bool {
        match self {
            HitCondition::AtLeast(n) => hits >= n,
            HitCondition::Exactly(n) => hits == n,
            HitCondition::Every(n) => hits % n == 0,
        }
    }
}

/// The condition fields of a source or function breakpoint, checked: a
/// bad `hitCondition` refuses the breakpoint (the message says why), a
/// condition that does not parse is kept (it stops and says so when hit)
/// with a message.
pub fn with_conditions(
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

/// A source line breakpoint as the user asks for it.
pub struct WantedBreakpoint {
    pub line: u32,
    pub condition: Option<String>,
    pub hit_condition: Option<String>,
    pub log_message: Option<String>,
}

/// What a data breakpoint watches for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Write,
    ReadWrite,
    /// Reads alone, which x86 debug registers cannot watch.
    Read,
}

pub const NO_SLOT: &str = "no hardware breakpoint slot: vmdbg-vmm serves breakpoints and watchpoints from the 4 debug registers (DR0–DR3) and refused this one: all are in use (remove another breakpoint or watchpoint), or this host's KVM delivers no breakpoints at all (the debug console says so at launch)";

impl Debugger {
    pub fn new_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id - 1
    }

    /// Sets the line breakpoints of source `path` anew: each where the
    /// line tables place it (a line without code moves to the next that
    /// has some), or unverified with why (`pending` added to that), then
    /// the stub's breakpoints synced. The breakpoints as set.
    pub async fn set_line_breakpoints(
        &mut self,
        path: &str,
        source: SourceFile,
        wanted: Vec<WantedBreakpoint>,
        pending: &str,
    ) -> Result<&[UserBreakpoint]> {
        let symbols = self.target.as_ref().context("no target")?.symbols.clone();
        let mut list = Vec::new();
        for wanted in wanted {
            let line = wanted.line;
            let id = self.new_id();
            let bp = match self
                .target
                .as_ref()
                .context("no target")?
                .place_line_breakpoint(path, line)
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
            list.push(with_conditions(
                bp,
                wanted.condition,
                wanted.hit_condition,
                wanted.log_message,
            ));
        }
        self.line_breakpoints.insert(path.to_string(), list);
        self.sync_breakpoints().await?;
        Ok(&self.line_breakpoints[path])
    }

    /// Sets the data breakpoints anew, in order (the first that could not
    /// be read, an error, ends it there): each in a stub watchpoint, or
    /// unverified with why. The data breakpoints as set.
    pub async fn set_data_breakpoints(
        &mut self,
        wanted: Vec<Result<(u64, usize, Access)>>,
    ) -> Result<&[DataBreakpoint]> {
        let target = self.target.as_mut().context("no target")?;
        for (kind, addr, len) in std::mem::take(&mut target.watches) {
            target.rsp.remove_watchpoint(kind, addr, len).await?;
        }
        let mut list = Vec::new();
        for d in wanted {
            let id = self.new_id();
            let target = self.target.as_mut().context("no target")?;
            let (addr, len, access) = d?;
            let kind = match access {
                Access::Write => WatchKind::Write,
                Access::ReadWrite => WatchKind::Access,
                Access::Read => {
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
        Ok(&self.data_breakpoints)
    }

    pub fn breakpoint_ids_at(&self, pc: u64) -> Vec<i64> {
        self.line_breakpoints
            .values()
            .flatten()
            .chain(self.function_breakpoints.iter())
            .filter(|b| b.verified && b.addr == Some(pc))
            .map(|b| b.id)
            .collect()
    }

    /// Decides a stop at `pc`, where user breakpoints are: each one's
    /// condition, hit count and log message. Returns the ids of those that
    /// stop the target (empty: the caller goes on). Decided once per stop.
    pub async fn decide_breakpoints(&mut self, pc: u64) -> Vec<i64> {
        if let Some((at, ids)) = self.target.as_ref().and_then(|t| t.stop.decided.clone()) {
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
                match self.evaluate_truth(condition).await {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        self.events.output(
                            "console",
                            format!(
                                "Error in testing condition for breakpoint {id}: {e:#}\n(condition: {condition})\n"
                            ),
                        );
                        if let Some(stored) = self.user_breakpoint_mut(id) {
                            stored.message = Some(format!("condition {condition:?} failed: {e:#}"));
                            let changed = stored.clone();
                            self.events.breakpoint_changed(&changed);
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
                self.events.output("console", format!("{text}\n"));
                continue;
            }
            stopping.push(id);
        }
        if let Some(target) = self.target.as_mut() {
            target.stop.decided = Some((pc, stopping.clone()));
        }
        stopping
    }

    fn user_breakpoint_mut(&mut self, id: i64) -> Option<&mut UserBreakpoint> {
        self.line_breakpoints
            .values_mut()
            .flatten()
            .chain(self.function_breakpoints.iter_mut())
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
            match self.evaluate_text(expression).await {
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
    pub async fn sync_breakpoints(&mut self) -> Result<()> {
        let module_watch = self.module_watch;
        let wanted: BTreeSet<u64> = self
            .line_breakpoints
            .values()
            .flatten()
            .chain(self.function_breakpoints.iter())
            .filter(|b| b.addr.is_some() && (b.verified || b.message.as_deref() == Some(NO_SLOT)))
            .filter_map(|b| b.addr)
            .chain(module_watch)
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

    pub async fn reinsert_breakpoints(&mut self) {
        let Some(target) = self.target.as_mut() else {
            return;
        };
        let addrs: BTreeSet<u64> = self
            .line_breakpoints
            .values()
            .flatten()
            .chain(self.function_breakpoints.iter())
            .filter(|b| b.verified)
            .filter_map(|b| b.addr)
            .chain(self.module_watch)
            .collect();
        for addr in addrs {
            if target.rsp.insert_breakpoint(addr).await.is_ok() {
                target.inserted.insert(addr);
            }
        }
        for d in &self.data_breakpoints {
            if d.verified
                && target
                    .rsp
                    .insert_watchpoint(d.kind, d.addr, d.len)
                    .await
                    .is_ok()
            {
                target.watches.push((d.kind, d.addr, d.len));
            }
        }
    }
}

/// A breakpoint at function `f` of `symbols`, past its prologue.
pub fn at_function(id: i64, symbols: &Symbols, f: &Function) -> UserBreakpoint {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_conditions_read_like_gdb_ignore_counts() {
        let stops = |text: &str| -> Vec<u64> {
            let h = HitCondition::parse(text).unwrap();
            (1..=6).filter(|&n| h.stops(n)).collect()
        };
        assert_eq!(stops("3"), vec![3, 4, 5, 6]);
        assert_eq!(stops(">= 3"), vec![3, 4, 5, 6]);
        assert_eq!(stops("> 3"), vec![4, 5, 6]);
        assert_eq!(stops("== 2"), vec![2]);
        assert_eq!(stops("%2"), vec![2, 4, 6]);
        let bad = HitCondition::parse("often").unwrap_err();
        assert!(
            bad.contains("hitCondition \"often\"") && bad.contains("% N"),
            "{bad}"
        );
        assert!(HitCondition::parse("% 0").unwrap_err().contains("% 0"));
        assert!(HitCondition::parse("-1").is_err());
    }
}

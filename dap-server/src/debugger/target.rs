//! The target's state as the debugger core keeps it: the stub connection
//! and its threads, the run state ([`RunMode`]), what the stub holds (user
//! breakpoints and watchpoints inserted), the program's modules, and
//! everything read at the last stop ([`StopState`]: registers, memory in
//! 64-byte lines, frames, value handles), dropped when the target
//! resumes. VM lifetimes (the engine, booting, the program's VM) are not
//! here: the front end owns them.

use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

use anyhow::{bail, Context, Result};

use super::eval::VarNode;
use super::stepping::Then;
use crate::engine::ReplayPosition;
use crate::rsp::{Endpoint, RspClient, StopReply, WatchKind};
use crate::symbols::unwind::{FrameRegs, MAX_FRAMES};
use crate::symbols::{SourceFrame, Symbols, TargetMemory};

/// The debugger's handle on a recorded target's replay: the controls of
/// the engine that replays it (the front end owns the engine; on a live
/// target the handle says there is no replay).
pub trait Replay {
    /// Where the replay is; None on a live target or once the VM is gone.
    fn position(&mut self) -> Option<Result<ReplayPosition>>;
    /// The next forward run stops at the recording's end, not past it.
    fn keep_inside(&mut self) -> Result<()>;
    /// The next forward run stops after `icount` instructions.
    fn break_at(&mut self, icount: u64) -> Result<()>;
    /// Puts the replay at `icount` in a fresh engine process (its stub
    /// must be connected to again); None where the engine cannot.
    fn afresh(&mut self, icount: u64) -> Option<Result<()>>;
    /// Whether going back replays afresh rather than the stub's `bs`/`bc`.
    fn goes_back_afresh(&self) -> bool;
    /// Where the engine's gdb stub is; None once the VM is gone.
    fn rsp_endpoint(&self) -> Option<Endpoint>;
}

/// Where console output that comes while the debugger waits for a stop
/// goes (category, text): the front end's console.
pub type ConsoleSink = tokio::sync::mpsc::UnboundedSender<(&'static str, String)>;

/// What the target is doing while it runs.
pub enum RunMode {
    Continue,
    /// Running to a temporary breakpoint at a return address, as part of a
    /// step: `cfa` tells the right activation (recursion) apart.
    ToReturn {
        addr: u64,
        rsp: u64,
        then: Box<Then>,
    },
}

/// One frame of the stack as shown to the client.
#[derive(Clone, Debug)]
pub struct FrameInfo {
    /// Registers of the physical frame (with its CFA).
    pub regs: FrameRegs,
    pub pc: u64,
    /// pc for lookups: pc - 1 in caller frames (inside the call).
    pub probe: u64,
    pub source: SourceFrame,
    pub physical: usize,
}

/// Everything valid only until the target resumes.
#[derive(Default)]
pub struct StopState {
    pub frames: Option<Vec<FrameInfo>>,
    pub refs: Vec<VarNode>,
    pub memory: HashMap<u64, Vec<u8>>,
    pub registers: HashMap<String, Vec<u8>>,
    pub exception: Option<(String, String)>,
    /// What the user breakpoints at this stop's pc decided (that pc, the
    /// ids that stop): conditions and hit counts are evaluated once a stop.
    pub decided: Option<(u64, Vec<i64>)>,
    /// How many of the inlined calls that begin at the pc (hidden, as gdb
    /// hides them) `stepIn` has gone down into without running.
    pub inline_entered: usize,
}

/// The target as the debugger sees it through its gdb stub: the
/// connection, its threads, the run state, what the stub holds (user
/// breakpoints, watchpoints) and what was read at the last stop.
pub struct TargetState {
    pub rsp: RspClient,
    /// The DWARF of the code the current thread stopped in.
    pub symbols: Rc<Symbols>,
    /// Program mode: the program's and its shared libraries' DWARF, one of
    /// which `symbols` is (empty for a kernel or an attach).
    pub modules: Vec<Rc<Symbols>>,
    /// A program's signals are its own (passed on, gdb's policy:
    /// [`super::signals`]); a kernel's stops are the debugger's.
    pub program: bool,
    pub threads: Vec<String>,
    /// Program mode: thread names as the guest has them (by RSP id).
    pub thread_names: HashMap<String, String>,
    pub thread: String,
    pub running: Option<RunMode>,
    /// User breakpoint addresses in the stub.
    pub inserted: BTreeSet<u64>,
    pub watches: Vec<(WatchKind, u64, usize)>,
    pub stop: StopState,
    /// Program mode: the signal the last stop reported (gdb's number) and
    /// its thread; that thread gets it when it resumes (gdb's `pass`).
    pub pending_signal: Option<(String, u8)>,
    /// Where the stub's console output (`O` packets) that arrives while a
    /// stop is awaited goes: the session's console.
    pub console: ConsoleSink,
}

/// Target memory through the stub, cached in 64-byte lines until resume.
pub struct CachedMemory<'a> {
    pub rsp: &'a mut RspClient,
    pub cache: &'a mut HashMap<u64, Vec<u8>>,
}

const LINE: u64 = 64;

impl TargetMemory for CachedMemory<'_> {
    async fn read(&mut self, addr: u64, len: usize) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(len);
        let end = addr.saturating_add(len as u64);
        let mut line = addr & !(LINE - 1);
        while line < end {
            if !self.cache.contains_key(&line) {
                let bytes = self.rsp.read_memory(line, LINE as usize).await?;
                self.cache.insert(line, bytes);
            }
            let bytes = &self.cache[&line];
            let from = addr.max(line) - line;
            let to = (end.min(line + LINE) - line).min(bytes.len() as u64);
            if from >= to {
                break;
            }
            out.extend_from_slice(&bytes[from as usize..to as usize]);
            if (bytes.len() as u64) < LINE && to < end.min(line + LINE) - line {
                break;
            }
            line += LINE;
        }
        Ok(out)
    }
}

impl TargetState {
    /// A target stopped on `thread`, nothing inserted in its stub yet.
    pub fn new(
        rsp: RspClient,
        symbols: Rc<Symbols>,
        modules: Vec<Rc<Symbols>>,
        program: bool,
        threads: Vec<String>,
        thread: String,
        console: ConsoleSink,
    ) -> Self {
        TargetState {
            rsp,
            symbols,
            modules,
            program,
            threads,
            thread_names: HashMap::new(),
            thread,
            running: None,
            inserted: BTreeSet::new(),
            watches: Vec::new(),
            stop: StopState::default(),
            pending_signal: None,
            console,
        }
    }

    /// The stop reply that ends a resume (or an interrupt); console output
    /// the stub sends on the way goes to [`Self::console`]. Every wait of
    /// the session for a stop goes through here.
    pub async fn wait_stop(&mut self) -> Result<StopReply> {
        let console = &self.console;
        self.rsp
            .wait_stop(|bytes| {
                let _ = console.send(("console", String::from_utf8_lossy(&bytes).into_owned()));
            })
            .await
    }

    pub fn memory(&mut self) -> CachedMemory<'_> {
        CachedMemory {
            rsp: &mut self.rsp,
            cache: &mut self.stop.memory,
        }
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    pub fn thread_id(rsp_id: &str) -> i64 {
        let tail = rsp_id.rsplit('.').next().unwrap_or(rsp_id);
        i64::from_str_radix(tail, 16).unwrap_or(1)
    }

    pub fn rsp_thread(&self, dap_id: i64) -> String {
        self.threads
            .iter()
            .find(|t| Self::thread_id(t) == dap_id)
            .cloned()
            .unwrap_or_else(|| self.thread.clone())
    }

    /// The `g` block of a thread, cached until resume.
    pub async fn register_block(&mut self, thread: &str) -> Result<Vec<u8>> {
        if let Some(b) = self.stop.registers.get(thread) {
            return Ok(b.clone());
        }
        let block = self.rsp.read_registers(thread).await?;
        self.stop
            .registers
            .insert(thread.to_string(), block.clone());
        Ok(block)
    }

    pub fn register_value(&self, block: &[u8], name: &str) -> Option<u64> {
        let info = self.rsp.registers.by_name(name)?;
        let size = (info.bits as usize).div_ceil(8).min(8);
        let bytes = block.get(info.offset..info.offset + size)?;
        Some(crate::symbols::types::int_of(bytes, false) as u64)
    }

    /// The innermost frame's registers by DWARF number.
    pub async fn top_registers(&mut self, thread: &str) -> Result<FrameRegs> {
        let block = self.register_block(thread).await?;
        let mut regs = FrameRegs::default();
        for (n, name) in crate::rsp::registers::DWARF_X86_64.iter().enumerate() {
            regs.regs[n] = self.register_value(&block, name);
        }
        if regs.regs[16].is_none() {
            bail!("the stub's registers have no rip");
        }
        self.select_module(regs.pc());
        Ok(regs)
    }

    pub async fn pc(&mut self) -> Result<u64> {
        let thread = self.thread.clone();
        Ok(self.top_registers(&thread).await?.pc())
    }

    pub async fn rsp_value(&mut self) -> Result<u64> {
        let thread = self.thread.clone();
        self.top_registers(&thread).await?.get(7).context("no rsp")
    }

    /// Forgets everything read at the last stop.
    pub fn invalidate(&mut self) {
        self.stop = StopState::default();
    }

    /// Program mode: makes the module holding `pc` (the program or a shared
    /// library) the one variables and stepping read: the top frame's after
    /// a stop, a frame's own when its scopes are asked for.
    pub fn select_module(&mut self, pc: u64) {
        self.symbols = self.module_at(pc);
    }

    /// The module whose code holds `pc`; the current one when none does
    /// (and always for a kernel or an attach, which have one).
    pub fn module_at(&self, pc: u64) -> Rc<Symbols> {
        self.modules
            .iter()
            .find(|m| m.in_text(pc))
            .unwrap_or(&self.symbols)
            .clone()
    }

    /// Where a line breakpoint goes: in the current module, or in the first
    /// module (the program, then its libraries) whose line tables have it.
    pub fn place_line_breakpoint(
        &self,
        path: &str,
        line: u32,
    ) -> Option<crate::symbols::lines::LinePlacement> {
        std::iter::once(&self.symbols)
            .chain(self.modules.iter())
            .find_map(|m| m.lines.place_breakpoint(path, line))
    }
}

impl super::Debugger {
    /// The stack of the current thread, computed once per stop.
    pub async fn frames(&mut self) -> Result<Vec<FrameInfo>> {
        let target = self.target_ref()?;
        if let Some(f) = &target.stop.frames {
            return Ok(f.clone());
        }
        let thread = target.thread.clone();
        let mut regs = target.top_registers(&thread).await?;
        let stopped_by_line_breakpoint = self.stopped_by_line_breakpoint(regs.pc());
        let target = self.target_ref()?;
        let entered = target.stop.inline_entered;
        let mut frames = Vec::new();
        for physical in 0..MAX_FRAMES {
            let pc = regs.pc();
            // A program's stack crosses from its shared libraries into it.
            let symbols = target.module_at(pc);
            let probe = if physical == 0 {
                pc
            } else {
                pc.saturating_sub(1)
            };
            let caller = symbols
                .unwinder
                .unwind(&mut regs, physical == 0, &mut target.memory())
                .await
                .ok()
                .flatten();
            // As gdb: the inlined calls that begin at the stop's pc are
            // shown only where a breakpoint on a source line stopped it
            // (the line's own code), or as far as stepIn went into them;
            // elsewhere the stop is at their call site.
            let hidden = if physical == 0 && !stopped_by_line_breakpoint {
                symbols
                    .inlined_calls_starting_at(pc)
                    .saturating_sub(entered)
            } else {
                0
            };
            for source in symbols.source_frames(probe).into_iter().skip(hidden) {
                frames.push(FrameInfo {
                    regs: regs.clone(),
                    pc,
                    probe,
                    source,
                    physical,
                });
            }
            match caller {
                Some(next) if target.module_at(next.pc()).in_text(next.pc()) => regs = next,
                _ => break,
            }
        }
        target.stop.frames = Some(frames.clone());
        Ok(frames)
    }

    /// gdb's `step` where the stop hides inlined calls that begin at the
    /// pc: one call down, without running. Whether it went down (the
    /// caller reports the step).
    pub async fn step_into_hidden_inline_call(&mut self) -> Result<bool> {
        let target = self.target_ref()?;
        let thread = target.thread.clone();
        let pc = target.top_registers(&thread).await?.pc();
        if self.stopped_by_line_breakpoint(pc) {
            return Ok(false);
        }
        let target = self.target_ref()?;
        if target.module_at(pc).inlined_calls_starting_at(pc) <= target.stop.inline_entered {
            return Ok(false);
        }
        target.stop.inline_entered += 1;
        target.stop.frames = None;
        target.stop.refs.clear();
        Ok(true)
    }

    /// Whether a user breakpoint on a source line (not a function) stopped
    /// the current thread at `pc`.
    pub fn stopped_by_line_breakpoint(&self, pc: u64) -> bool {
        let Some((at, ids)) = self.target.as_ref().and_then(|t| t.stop.decided.as_ref()) else {
            return false;
        };
        *at == pc
            && self
                .line_breakpoints
                .values()
                .flatten()
                .any(|b| ids.contains(&b.id))
    }

    pub async fn frame(&mut self, index: usize) -> Result<FrameInfo> {
        let frame = self
            .frames()
            .await?
            .get(index)
            .cloned()
            .with_context(|| format!("no frame {}", index + 1))?;
        // Its variables and types are in its own module's DWARF.
        self.target_ref()?.select_module(frame.pc);
        Ok(frame)
    }

    /// The stub's thread list asked again when the target is stopped (a
    /// program's threads come and go: a libtest test runs on a thread
    /// spawned long after the start), the change told
    /// ([`super::Events::threads_changed`]); a program's threads' names too.
    pub async fn refresh_threads(&mut self) {
        let Some(target) = self.target.as_mut() else {
            return;
        };
        if target.is_running() {
            return;
        }
        if let Ok(now) = target.rsp.threads().await {
            if !now.is_empty() {
                self.events.threads_changed(&target.threads, &now);
                target.threads = now;
            }
        }
        if target.program {
            let mut names = HashMap::new();
            for t in &target.threads {
                if let Ok(Some(name)) = target.rsp.thread_name(t).await {
                    names.insert(t.clone(), name);
                }
            }
            target.thread_names = names;
        }
    }

    /// The restored stub knows the breakpoints of the snapshot's moment:
    /// take each of the session's out (ignoring "not there") and put it
    /// back, so exactly the session's are set, once.
    pub async fn after_restore(&mut self) -> Result<()> {
        let target = self.target.as_mut().context("no target")?;
        target.stop = StopState::default();
        for addr in target.inserted.clone() {
            let _ = target.rsp.remove_breakpoint(addr).await;
            target.rsp.insert_breakpoint(addr).await.with_context(|| {
                format!("re-insert the breakpoint at {addr:#x} after the restore")
            })?;
        }
        for (kind, addr, len) in target.watches.clone() {
            let _ = target.rsp.remove_watchpoint(kind, addr, len).await;
            target
                .rsp
                .insert_watchpoint(kind, addr, len)
                .await
                .with_context(|| {
                    format!("re-insert the watchpoint at {addr:#x} after the restore")
                })?;
        }
        if let Ok(threads) = target.rsp.threads().await {
            if !threads.is_empty() {
                if !threads.contains(&target.thread) {
                    target.thread = threads[0].clone();
                }
                target.threads = threads;
            }
        }
        Ok(())
    }
}

//! The gdbstub `Target` over the VM and the debug layer: vCPUs are threads,
//! breakpoints and watchpoints live in the DR0–DR3 slots, memory is accessed
//! at guest-virtual addresses through the guest's page tables.
//!
//! Range stepping (`vCont;r`, advertised in the `vCont?` reply) runs on the
//! vCPU's thread: it single-steps while the pc stays in the range and
//! reports the stop that leaves it, or an earlier breakpoint, watchpoint,
//! pause or exit as a continue would. Under record/replay it is served by
//! the recorder, which steps every instruction anyway: a range step
//! records and replays the same instructions as the single steps it
//! replaces.

use std::collections::VecDeque;
use std::num::NonZeroUsize;

use gdbstub::common::{Signal, Tid};
use gdbstub::stub::MultiThreadStopReason;
use gdbstub::target::ext::base::multithread::{
    MultiThreadBase, MultiThreadRangeStepping, MultiThreadRangeSteppingOps, MultiThreadResume,
    MultiThreadResumeOps, MultiThreadSchedulerLocking, MultiThreadSchedulerLockingOps,
    MultiThreadSingleStep, MultiThreadSingleStepOps,
};
use gdbstub::target::ext::base::reverse_exec::{
    ReplayLogPosition, ReverseCont, ReverseContOps, ReverseStep, ReverseStepOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, HwBreakpoint, HwBreakpointOps, HwWatchpoint, HwWatchpointOps,
    SwBreakpoint, SwBreakpointOps, WatchKind,
};
use gdbstub::target::ext::monitor_cmd::MonitorCmdOps;
use gdbstub::target::{Target, TargetError, TargetResult};
use kvm_bindings::{kvm_fpu, kvm_regs, kvm_sregs};
use vm_memory::{Bytes, GuestAddress};
use vmdbg_gdb_common::hw_slots::check_watch;

use super::arch::{SystemRegs, VcpuRegs, VmdbgX86_64};
use crate::debug::paging::PagingMode;
use crate::debug::probe::HostDebugCaps;
use crate::debug::{Access, DebugSlots, DebugStop, Origin};
use crate::error::Error;
use crate::record::{Stop, StopAt, Watch};
use crate::vcpu::{RangeStep, RunOptions, SoftWatch, VcpuEvent, VmEnd, WatchedRange};
use crate::vm::Vm;

pub type StopReason = MultiThreadStopReason<u64>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Stay,
    Continue,
    Step,
    /// gdb's range stepping: step while the pc stays in `[start, end)`.
    Range(u64, u64),
}

impl Action {
    fn steps(self) -> bool {
        matches!(self, Action::Step | Action::Range(..))
    }
}

pub struct VmTarget {
    pub vm: Vm,
    pub slots: DebugSlots,
    pub host: HostDebugCaps,
    actions: Vec<Action>,
    /// gdb resumed only the threads it named (a vCont with no wildcard).
    scheduler_locked: bool,
    /// Stops that happened while another was being reported (all-stop mode
    /// reports one at a time); the next resume reports them without running.
    pending: VecDeque<VcpuEvent>,
    /// Set once the VM has ended, so the process exits with its status.
    pub ended: Option<VmEnd>,
    /// The control loop's other event sources, served while gdb waits.
    pub side: Option<Box<dyn super::SideEvents>>,
    /// A stop to report without running anything.
    pending_stop: Option<StopReason>,
}

pub fn tid(vcpu: usize) -> Tid {
    NonZeroUsize::new(vcpu + 1).expect("vcpu + 1 is never zero")
}

fn vcpu_of(tid: Tid) -> usize {
    tid.get() - 1
}

type Snapshot = (kvm_regs, kvm_sregs, kvm_fpu);

impl VmTarget {
    pub fn new(vm: Vm, host: HostDebugCaps) -> Self {
        let n = vm.vcpu_count();
        Self {
            vm,
            slots: DebugSlots::default(),
            host,
            actions: vec![Action::Stay; n],
            scheduler_locked: false,
            pending: VecDeque::new(),
            ended: None,
            side: None,
            pending_stop: None,
        }
    }

    fn state(&self, vcpu: usize) -> Result<Snapshot, TargetError<Error>> {
        let handle = self.vm.vcpu(vcpu).ok_or(TargetError::NonFatal)?;
        let result = handle
            .exec(|fd| -> Result<Snapshot, kvm_ioctls::Error> {
                Ok((fd.get_regs()?, fd.get_sregs()?, fd.get_fpu()?))
            })
            .map_err(TargetError::Fatal)?;
        result.map_err(|e| TargetError::Fatal(Error::kvm("KVM_GET_REGS")(e)))
    }

    pub fn paging_mode(&self, vcpu: usize) -> Result<PagingMode, TargetError<Error>> {
        let handle = self.vm.vcpu(vcpu).ok_or(TargetError::NonFatal)?;
        let sregs = handle
            .exec(|fd| fd.get_sregs())
            .map_err(TargetError::Fatal)?
            .map_err(|e| TargetError::Fatal(Error::kvm("KVM_GET_SREGS")(e)))?;
        Ok(PagingMode::from(&sregs))
    }

    /// Applies the current slots (and single-step where asked) to every
    /// vCPU that is about to run.
    fn apply_debug(&self, vcpu: usize, step: bool) -> Result<(), Error> {
        let dbg = self.slots.guest_debug(step, self.vm.caps.block_irq_on_step);
        let handle = self
            .vm
            .vcpu(vcpu)
            .ok_or_else(|| Error::Vcpu(format!("no vCPU {vcpu}")))?;
        handle
            .exec(move |fd| fd.set_guest_debug(&dbg))?
            .map_err(Error::kvm("KVM_SET_GUEST_DEBUG"))
    }

    /// On a host whose KVM does not deliver data breakpoints, the watched
    /// ranges (as guest-physical addresses) with their current bytes, for
    /// the vCPU thread to compare after every single-step.
    fn soft_watch(&self, vcpu: usize) -> Result<Option<SoftWatch>, Error> {
        if self.host.data_breakpoints {
            return Ok(None);
        }
        let watched = self.watched_ranges(vcpu)?;
        if watched.is_empty() {
            return Ok(None);
        }
        let mut ranges = Vec::new();
        for (slot, w) in watched {
            let mut old = vec![0u8; w.len];
            if self
                .vm
                .mem
                .read_slice(&mut old, GuestAddress(w.gpa))
                .is_ok()
            {
                ranges.push(WatchedRange {
                    slot,
                    gpa: w.gpa,
                    old,
                });
            }
        }
        Ok(Some(SoftWatch {
            mem: self.vm.mem.clone(),
            ranges,
        }))
    }

    /// Each watchpoint slot as a guest-physical range, with the address
    /// gdb asked to watch.
    fn watched_ranges(&self, vcpu: usize) -> Result<Vec<(usize, Watch)>, Error> {
        let watched: Vec<_> = self.slots.watch_slots().collect();
        if watched.is_empty() {
            return Ok(Vec::new());
        }
        let mode = self
            .paging_mode(vcpu)
            .map_err(|_| Error::Vcpu(format!("cannot read vCPU {vcpu}'s paging registers")))?;
        let mut ranges = Vec::new();
        for (slot, s) in watched {
            // An unmapped watch address cannot change until it is mapped;
            // it is skipped rather than failing the resume.
            let Ok(t) = mode.translate(&self.vm.mem, s.addr) else {
                continue;
            };
            let addr = match s.origin {
                Origin::Watchpoint { addr, .. } => addr,
                _ => s.addr,
            };
            ranges.push((
                slot,
                Watch {
                    addr,
                    gpa: t.gpa,
                    len: s.len as usize,
                },
            ));
        }
        Ok(ranges)
    }

    /// Lets every vCPU run freely with no debug state, for detach.
    pub fn release(&mut self) -> Result<(), Error> {
        self.slots.clear();
        self.pending.clear();
        for vcpu in 0..self.vm.vcpu_count() {
            self.apply_debug(vcpu, false)?;
            self.vm.run_vcpu(vcpu)?;
        }
        Ok(())
    }

    /// Turns a vCPU event into what gdb is told; stops the other vCPUs first
    /// (all-stop), keeping any stop they reach meanwhile for later.
    pub fn report(&mut self, event: VcpuEvent) -> StopReason {
        let others = self.vm.pause_all();
        self.pending.extend(others);
        let t = tid(event.vcpu());
        match event {
            VcpuEvent::Debug { exit, .. } => match self.slots.classify(&exit) {
                DebugStop::SingleStep | DebugStop::Unknown { .. } => StopReason::SignalWithThread {
                    tid: t,
                    signal: Signal::SIGTRAP,
                },
                DebugStop::Int3 => StopReason::SwBreak(t),
                DebugStop::Slot(slot) => match slot.origin {
                    Origin::SoftwareBreakpoint => StopReason::SwBreak(t),
                    Origin::HardwareBreakpoint => StopReason::HwBreak(t),
                    Origin::Watchpoint { addr, .. } => StopReason::Watch {
                        tid: t,
                        kind: match slot.access {
                            Access::Write => WatchKind::Write,
                            _ => WatchKind::ReadWrite,
                        },
                        addr,
                    },
                },
            },
            VcpuEvent::Record { stop, .. } => self.record_stop(t, stop),
            VcpuEvent::Paused { .. } => StopReason::SignalWithThread {
                tid: t,
                signal: Signal::SIGINT,
            },
            VcpuEvent::VmEnded { end, .. } => {
                let reason = match &end {
                    VmEnd::Guest { status } => StopReason::Exited(*status as u8),
                    VmEnd::Fatal { report, .. } => {
                        eprint!("{report}");
                        StopReason::Terminated(Signal::SIGSEGV)
                    }
                };
                self.ended = Some(end);
                reason
            }
        }
    }

    pub fn keep_pending(&mut self, event: VcpuEvent) {
        self.pending.push_back(event);
    }

    /// A stop kept from an earlier all-stop, if any.
    pub fn take_pending(&mut self) -> Option<VcpuEvent> {
        self.pending.pop_front()
    }

    fn access_memory(
        &mut self,
        start: u64,
        len: usize,
        tid: Tid,
        mut each: impl FnMut(GuestAddress, usize, usize) -> Result<(), ()>,
    ) -> Result<usize, TargetError<Error>> {
        let mode = self.paging_mode(vcpu_of(tid))?;
        let mut done = 0usize;
        while done < len {
            let gva = start.wrapping_add(done as u64);
            let Ok(t) = mode.translate(&self.vm.mem, gva) else {
                break;
            };
            let chunk = (t.bytes_left_in_page() as usize).min(len - done);
            if each(GuestAddress(t.gpa), done, chunk).is_err() {
                break;
            }
            done += chunk;
        }
        Ok(done)
    }
}

const EFAULT: u8 = 14;

impl Target for VmTarget {
    type Arch = VmdbgX86_64;
    type Error = Error;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::MultiThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }

    fn support_monitor_cmd(&mut self) -> Option<MonitorCmdOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadBase for VmTarget {
    fn read_registers(&mut self, regs: &mut VcpuRegs, tid: Tid) -> TargetResult<(), Self> {
        let (r, s, f) = self.state(vcpu_of(tid))?;
        let core = &mut regs.core;
        core.regs = [
            r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11,
            r.r12, r.r13, r.r14, r.r15,
        ];
        core.rip = r.rip;
        core.eflags = r.rflags as u32;
        core.segments.cs = s.cs.selector as u32;
        core.segments.ss = s.ss.selector as u32;
        core.segments.ds = s.ds.selector as u32;
        core.segments.es = s.es.selector as u32;
        core.segments.fs = s.fs.selector as u32;
        core.segments.gs = s.gs.selector as u32;
        for (st, fpr) in core.st.iter_mut().zip(f.fpr.iter()) {
            st.copy_from_slice(&fpr[..10]);
        }
        core.fpu.fctrl = f.fcw as u32;
        core.fpu.fstat = f.fsw as u32;
        core.fpu.ftag = full_tag_word(f.ftwx);
        core.fpu.fop = f.last_opcode as u32;
        core.fpu.fioff = f.last_ip as u32;
        core.fpu.fooff = f.last_dp as u32;
        for (xmm, bytes) in core.xmm.iter_mut().zip(f.xmm.iter()) {
            *xmm = u128::from_le_bytes(*bytes);
        }
        core.mxcsr = f.mxcsr;
        regs.system = SystemRegs {
            fs_base: s.fs.base,
            gs_base: s.gs.base,
            cr0: s.cr0,
            cr2: s.cr2,
            cr3: s.cr3,
            cr4: s.cr4,
            cr8: s.cr8,
            efer: s.efer,
        };
        Ok(())
    }

    fn write_registers(&mut self, regs: &VcpuRegs, tid: Tid) -> TargetResult<(), Self> {
        self.refuse_while_recording("registers")?;
        let (mut r, mut s, mut f) = self.state(vcpu_of(tid))?;
        let g = &regs.core.regs;
        (r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp) =
            (g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]);
        (r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15) =
            (g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]);
        r.rip = regs.core.rip;
        r.rflags = (r.rflags & !0xffff_ffff) | regs.core.eflags as u64;
        // Selectors are shown, not loaded: changing one would need the
        // descriptor reloaded from the GDT, which the guest itself does.
        for (fpr, st) in f.fpr.iter_mut().zip(regs.core.st.iter()) {
            fpr[..10].copy_from_slice(st);
        }
        f.fcw = regs.core.fpu.fctrl as u16;
        f.fsw = regs.core.fpu.fstat as u16;
        f.ftwx = abridged_tag_word(regs.core.fpu.ftag);
        for (bytes, xmm) in f.xmm.iter_mut().zip(regs.core.xmm.iter()) {
            *bytes = xmm.to_le_bytes();
        }
        f.mxcsr = regs.core.mxcsr;
        let sys = &regs.system;
        s.fs.base = sys.fs_base;
        s.gs.base = sys.gs_base;
        (s.cr0, s.cr2, s.cr3, s.cr4, s.cr8, s.efer) =
            (sys.cr0, sys.cr2, sys.cr3, sys.cr4, sys.cr8, sys.efer);
        let handle = self.vm.vcpu(vcpu_of(tid)).ok_or(TargetError::NonFatal)?;
        let result = handle
            .exec(move |fd| -> Result<(), kvm_ioctls::Error> {
                fd.set_sregs(&s)?;
                fd.set_regs(&r)?;
                fd.set_fpu(&f)
            })
            .map_err(TargetError::Fatal)?;
        // KVM refusing a value (say, a reserved CR4 bit) is the user's
        // input being rejected, not the session failing.
        result.map_err(|e| TargetError::Errno(e.errno() as u8))
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8], tid: Tid) -> TargetResult<usize, Self> {
        let mem = self.vm.mem.clone();
        let len = data.len();
        let n = self.access_memory(start, len, tid, |gpa, at, chunk| {
            mem.read_slice(&mut data[at..at + chunk], gpa)
                .map_err(|_| ())
        })?;
        if n == 0 && len > 0 {
            return Err(TargetError::Errno(EFAULT));
        }
        Ok(n)
    }

    fn write_addrs(&mut self, start: u64, data: &[u8], tid: Tid) -> TargetResult<(), Self> {
        self.refuse_while_recording("memory")?;
        let mem = self.vm.mem.clone();
        let n = self.access_memory(start, data.len(), tid, |gpa, at, chunk| {
            mem.write_slice(&data[at..at + chunk], gpa).map_err(|_| ())
        })?;
        if n < data.len() {
            return Err(TargetError::Errno(EFAULT));
        }
        Ok(())
    }

    fn list_active_threads(&mut self, thread_is_active: &mut dyn FnMut(Tid)) -> Result<(), Error> {
        (0..self.vm.vcpu_count()).for_each(|i| thread_is_active(tid(i)));
        Ok(())
    }

    fn support_resume(&mut self) -> Option<MultiThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

/// KVM keeps the x87 tag word abridged (one "valid" bit per register); gdb
/// shows the full one (two bits each, 0b11 = empty).
fn full_tag_word(abridged: u8) -> u32 {
    (0..8)
        .map(|i| {
            if abridged & (1 << i) != 0 {
                0
            } else {
                0b11 << (2 * i)
            }
        })
        .sum()
}

fn abridged_tag_word(full: u32) -> u8 {
    (0..8)
        .filter(|i| (full >> (2 * i)) & 0b11 != 0b11)
        .map(|i| 1u8 << i)
        .sum()
}

impl MultiThreadResume for VmTarget {
    fn resume(&mut self) -> Result<(), Error> {
        if !self.pending.is_empty() {
            // A stop is already waiting to be reported: run nothing.
            return Ok(());
        }
        if let Some(recorder) = self.vm.recorder.clone() {
            // One vCPU: the recording steps it, and stops where gdb's
            // breakpoints and watchpoints are.
            let (step, range) = match self.actions[0] {
                Action::Step => (true, None),
                Action::Range(start, end) => (true, Some((start, end))),
                _ => (false, None),
            };
            let stops = self.record_stops()?;
            return self.vm.drive(
                0,
                crate::record::Goal::Run { step, range },
                stops,
                &recorder,
            );
        }
        let others_stay = self.scheduler_locked || self.actions.iter().any(|a| a.steps());
        for vcpu in 0..self.vm.vcpu_count() {
            let action = match self.actions[vcpu] {
                // gdb's default action is continue; while one vCPU steps the
                // others stay put, as they do under QEMU's gdbstub.
                Action::Stay if !others_stay => Action::Continue,
                other => other,
            };
            if action == Action::Stay {
                continue;
            }
            let soft_watch = self.soft_watch(vcpu)?;
            self.apply_debug(vcpu, action.steps() || soft_watch.is_some())?;
            let range = match action {
                Action::Range(start, end) => Some(RangeStep {
                    start,
                    end,
                    breakpoints: self
                        .slots
                        .breakpoint_slots()
                        .map(|(slot, s)| (slot, s.addr))
                        .collect(),
                }),
                _ => None,
            };
            self.vm.run_vcpu_with(
                vcpu,
                RunOptions {
                    soft_watch,
                    stop_after_step: action.steps(),
                    range,
                },
            )?;
        }
        Ok(())
    }

    fn clear_resume_actions(&mut self) -> Result<(), Error> {
        self.actions.fill(Action::Stay);
        self.scheduler_locked = false;
        Ok(())
    }

    fn support_scheduler_locking(&mut self) -> Option<MultiThreadSchedulerLockingOps<'_, Self>> {
        Some(self)
    }

    fn set_resume_action_continue(
        &mut self,
        tid: Tid,
        _signal: Option<Signal>,
    ) -> Result<(), Error> {
        if let Some(a) = self.actions.get_mut(vcpu_of(tid)) {
            *a = Action::Continue;
        }
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<MultiThreadSingleStepOps<'_, Self>> {
        Some(self)
    }

    fn support_range_step(&mut self) -> Option<MultiThreadRangeSteppingOps<'_, Self>> {
        Some(self)
    }

    // Only a machine built for recording (`--record`, `--recordable`,
    // `--replay`) offers reverse execution: to gdb, and to the DAP server,
    // which takes a stub that offers it for a replay, any other VM is a
    // live one ("Target does not support this operation", as gdb says of
    // any target without a recording).
    fn support_reverse_step(&mut self) -> Option<ReverseStepOps<'_, Tid, Self>> {
        self.vm.shape.recordable.then_some(self)
    }

    fn support_reverse_cont(&mut self) -> Option<ReverseContOps<'_, Tid, Self>> {
        self.vm.shape.recordable.then_some(self)
    }
}

impl VmTarget {
    /// gdb's breakpoints and watchpoints, as a recording checks them after
    /// every instruction (it steps each one, so no debug register is
    /// needed).
    fn record_stops(&self) -> Result<StopAt, Error> {
        let breakpoints = self.slots.breakpoints().map(|s| s.addr).collect();
        let watches = self
            .watched_ranges(0)?
            .into_iter()
            .map(|(_, w)| w)
            .collect();
        Ok(StopAt {
            breakpoints,
            watches,
            stop_at_end: true,
        })
    }

    fn refuse_while_recording(&self, what: &str) -> TargetResult<(), Self> {
        if self.vm.recorder.is_some() {
            eprintln!(
                "vmdbg-vmm: writing {what} is refused while recording: the change would not be in the log and replays would diverge"
            );
            return Err(TargetError::Errno(1));
        }
        Ok(())
    }

    /// Runs the recording toward `goal` for gdb's reverse commands.
    fn reverse(&mut self, goal: crate::record::Goal) -> Result<(), Error> {
        let Some(recorder) = self.vm.recorder.clone() else {
            // gdb waits for a stop: it gets one that says there is no
            // history to go back through.
            eprintln!(
                "vmdbg-vmm: no recording to reverse through: {}",
                crate::record::HOW_TO_RECORD
            );
            self.pending_stop = Some(StopReason::ReplayLog {
                tid: Some(tid(0)),
                pos: ReplayLogPosition::Begin,
            });
            return Ok(());
        };
        let stops = self.record_stops()?;
        self.vm.drive(0, goal, stops, &recorder)
    }

    /// What gdb is told for a recording's stop.
    fn record_stop(&mut self, t: Tid, stop: Stop) -> StopReason {
        let signal = |signal| StopReason::SignalWithThread { tid: t, signal };
        match stop {
            Stop::Reached => signal(Signal::SIGTRAP),
            Stop::Breakpoint { .. } => StopReason::SwBreak(t),
            Stop::Watch { addr } => StopReason::Watch {
                tid: t,
                kind: WatchKind::Write,
                addr,
            },
            Stop::Begin => StopReason::ReplayLog {
                tid: Some(t),
                pos: ReplayLogPosition::Begin,
            },
            Stop::End => StopReason::ReplayLog {
                tid: Some(t),
                pos: ReplayLogPosition::End,
            },
            Stop::Paused => signal(Signal::SIGINT),
            // Said on the VMM's stderr (and by `monitor record status`);
            // gdb sees a signal that is not the guest's own.
            Stop::Diverged(_) => signal(Signal::SIGUSR1),
            Stop::Failed(why) => {
                eprintln!("vmdbg-vmm: {why}");
                signal(Signal::SIGUSR2)
            }
        }
    }

    /// A stop decided without running (no recording to reverse).
    pub fn take_pending_stop(&mut self) -> Option<StopReason> {
        self.pending_stop.take()
    }
}

impl ReverseStep<Tid> for VmTarget {
    fn reverse_step(&mut self, _tid: Tid) -> Result<(), Error> {
        self.reverse(crate::record::Goal::ReverseStep)
    }
}

impl ReverseCont<Tid> for VmTarget {
    fn reverse_cont(&mut self) -> Result<(), Error> {
        self.reverse(crate::record::Goal::ReverseContinue)
    }
}

impl MultiThreadSchedulerLocking for VmTarget {
    fn set_resume_action_scheduler_lock(&mut self) -> Result<(), Error> {
        self.scheduler_locked = true;
        Ok(())
    }
}

impl MultiThreadSingleStep for VmTarget {
    fn set_resume_action_step(&mut self, tid: Tid, _signal: Option<Signal>) -> Result<(), Error> {
        if let Some(a) = self.actions.get_mut(vcpu_of(tid)) {
            *a = Action::Step;
        }
        Ok(())
    }
}

/// `vCont;r<start>,<end>:<tid>`: the vCPU's own thread single-steps while
/// the pc stays in the range ([`RangeStep`]); under a recording the
/// recorder does the same over its log (`Goal::Run` with a range), so a
/// range step replays and records like the single steps it stands for.
impl MultiThreadRangeStepping for VmTarget {
    fn set_resume_action_range_step(
        &mut self,
        tid: Tid,
        start: u64,
        end: u64,
    ) -> Result<(), Error> {
        if let Some(a) = self.actions.get_mut(vcpu_of(tid)) {
            *a = Action::Range(start, end);
        }
        Ok(())
    }
}

impl Breakpoints for VmTarget {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_breakpoint(&mut self) -> Option<HwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_watchpoint(&mut self) -> Option<HwWatchpointOps<'_, Self>> {
        Some(self)
    }
}

impl VmTarget {
    fn add_breakpoint(&mut self, addr: u64, origin: Origin) -> TargetResult<bool, Self> {
        if !self.host.exec_breakpoints {
            eprintln!("vmdbg-vmm: breakpoint at {addr:#x} refused: {NO_BREAKPOINTS_HERE}");
            return Ok(false);
        }
        match self.slots.insert_breakpoint(addr, origin) {
            Ok(()) => Ok(true),
            Err(e) => {
                eprintln!("vmdbg-vmm: breakpoint at {addr:#x} refused: {e}");
                Ok(false)
            }
        }
    }
}

/// Why this host cannot have breakpoints (see `debug::probe`).
pub const NO_BREAKPOINTS_HERE: &str =
    "this host's KVM does not stop its guests on debug-register breakpoints \
     nor intercept their int3 (a KVM nested under QEMU TCG before 9.1 does neither); \
     single-step, pause and memory access work";

/// gdb's `break` arrives here. Breakpoints are served from the debug
/// registers because int3 cannot be relied on (see `debug::probe`).
impl SwBreakpoint for VmTarget {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        self.add_breakpoint(addr, Origin::SoftwareBreakpoint)
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self
            .slots
            .remove_breakpoint(addr, Origin::SoftwareBreakpoint))
    }
}

impl HwBreakpoint for VmTarget {
    fn add_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        self.add_breakpoint(addr, Origin::HardwareBreakpoint)
    }

    fn remove_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self
            .slots
            .remove_breakpoint(addr, Origin::HardwareBreakpoint))
    }
}

fn watch_access(kind: WatchKind) -> Access {
    match kind {
        WatchKind::Write => Access::Write,
        // x86 debug registers cannot trap reads alone; read/write is the
        // closest, and gdb checks the value to tell reads from writes.
        WatchKind::Read | WatchKind::ReadWrite => Access::ReadWrite,
    }
}

impl HwWatchpoint for VmTarget {
    fn add_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        // The debug layer could split a range over several slots, but the
        // agent's stub cannot, and gdb is told the same in both places.
        if let Err(e) = check_watch(addr, len) {
            eprintln!("vmdbg-vmm: watchpoint at {addr:#x} refused: {e}");
            return Ok(false);
        }
        match self.slots.insert_watchpoint(addr, len, watch_access(kind)) {
            Ok(()) => Ok(true),
            Err(e) => {
                eprintln!("vmdbg-vmm: watchpoint at {addr:#x} ({len} bytes) refused: {e}");
                Ok(false)
            }
        }
    }

    fn remove_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        Ok(self.slots.remove_watchpoint(addr, len, watch_access(kind)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_words_round_trip() {
        assert_eq!(full_tag_word(0), 0xffff);
        assert_eq!(full_tag_word(0b1000_0001), 0x3ffc);
        assert_eq!(abridged_tag_word(full_tag_word(0b1010_0101)), 0b1010_0101);
    }
}

//! The gdbstub `Target` over an [`Inferior`]: threads, registers, memory,
//! resume actions (continue, step, scheduler locking), int3 breakpoints,
//! watchpoints, the executable's path, the auxiliary vector and the SVR4
//! library list — and the blocking event loop that waits for either the
//! process or the debugger.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::time::Duration;

use gdbstub::common::{Pid as GdbPid, Signal, Tid};
use gdbstub::conn::{Connection, ConnectionExt};
use gdbstub::stub::run_blocking::{BlockingEventLoop, Event as LoopEvent, WaitForStopReasonError};
use gdbstub::stub::MultiThreadStopReason;
use gdbstub::target::ext::auxv::{Auxv, AuxvOps};
use gdbstub::target::ext::base::multithread::{
    MultiThreadBase, MultiThreadRangeStepping, MultiThreadRangeSteppingOps, MultiThreadResume,
    MultiThreadResumeOps, MultiThreadSchedulerLocking, MultiThreadSchedulerLockingOps,
    MultiThreadSingleStep, MultiThreadSingleStepOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, HwBreakpoint, HwBreakpointOps, HwWatchpoint, HwWatchpointOps,
    SwBreakpoint, SwBreakpointOps, WatchKind as GdbWatchKind,
};
use gdbstub::target::ext::exec_file::{ExecFile, ExecFileOps};
use gdbstub::target::ext::extended_mode::{
    Args, AttachKind, ConfigureAslr, ConfigureAslrOps, ConfigureEnv, ConfigureEnvOps,
    ConfigureStartupShell, ConfigureStartupShellOps, ConfigureWorkingDir, ConfigureWorkingDirOps,
    CurrentActivePid, CurrentActivePidOps, ExtendedMode, ExtendedModeOps, ShouldTerminate,
};
use gdbstub::target::ext::libraries::{LibrariesSvr4, LibrariesSvr4Ops};
use gdbstub::target::{Target, TargetError, TargetResult};
use nix::unistd::Pid;

use super::arch::{LinuxX86_64, ProcessRegs};
use super::inferior::{
    Event, Inferior, ResumeAction, ResumeMode, StopCause, WatchKind, Watchpoint,
};
use super::signals::{gdb_to_linux, linux_to_gdb};
use super::{solib, DebugError, Launch};
use vmdbg_gdb_common::conn::RspStream;
use vmdbg_gdb_common::session::SharedConn;

/// errno values sent back in `E` replies.
const EFAULT: u8 = 14;
const ESRCH: u8 = 3;
const EINVAL: u8 = 22;
const EPERM: u8 = 1;

pub struct ProcessTarget {
    pub inferior: Inferior,
    actions: BTreeMap<Pid, ResumeAction>,
    /// How threads without an action of their own run; `None` under
    /// scheduler locking.
    others: Option<ResumeAction>,
    /// A stop known at resume time, reported by the next wait.
    queued: Option<Event>,
    /// qXfer documents are read in pieces: made anew at offset 0 and kept
    /// for the following pieces so they stay consistent.
    libraries_document: RefCell<Vec<u8>>,
    auxv_document: RefCell<Vec<u8>>,
    /// What was launched, for gdb's `run` in extended-remote mode.
    template: Launch,
    /// The client sent `!` (extended-remote): a kill leaves the session
    /// open for a `run`.
    extended_client: bool,
    /// gdb's `set disable-randomization off`, for the next `run`.
    randomize_addresses: bool,
    /// Files gdb opened through host I/O (`vFile:open`).
    pub(super) open_files: super::hostio::OpenFiles,
}

fn tid_of(pid: Pid) -> Tid {
    NonZeroUsize::new(pid.as_raw() as usize).expect("Linux thread ids are positive")
}

fn pid_of(tid: Tid) -> Pid {
    Pid::from_raw(i32::try_from(tid.get()).unwrap_or(i32::MAX))
}

impl ProcessTarget {
    pub fn new(inferior: Inferior, template: Launch) -> Self {
        Self {
            inferior,
            template,
            extended_client: false,
            open_files: Default::default(),
            randomize_addresses: false,
            actions: BTreeMap::new(),
            others: Some(ResumeAction {
                mode: ResumeMode::Continue,
                signal: None,
            }),
            queued: None,
            libraries_document: RefCell::new(Vec::new()),
            auxv_document: RefCell::new(Vec::new()),
        }
    }

    /// The thread a register access means: gdbstub's placeholder thread 1
    /// (before the client chose one, e.g. after a restart of gdbstub on a
    /// malformed packet) is the first thread.
    fn thread(&self, tid: Tid) -> Pid {
        let pid = pid_of(tid);
        if tid.get() == 1 && !self.inferior.has_thread(pid) {
            return self.inferior.thread_ids().next().unwrap_or(pid);
        }
        pid
    }

    pub(super) fn stop_reason(&self, event: Event) -> MultiThreadStopReason<u64> {
        let signal = |s: i32| Signal(linux_to_gdb(s));
        match event {
            Event::Exited(code) => MultiThreadStopReason::Exited(code as u8),
            Event::Killed(sig) => MultiThreadStopReason::Terminated(signal(sig)),
            Event::Stopped { tid, cause } => {
                let tid = tid_of(tid);
                match cause {
                    StopCause::Breakpoint => MultiThreadStopReason::SwBreak(tid),
                    StopCause::Watchpoint { slot } => match self.inferior.watchpoint(slot) {
                        Some(w) if w.kind == WatchKind::Execute => {
                            MultiThreadStopReason::HwBreak(tid)
                        }
                        Some(w) => MultiThreadStopReason::Watch {
                            tid,
                            kind: match w.kind {
                                WatchKind::Write => GdbWatchKind::Write,
                                _ => GdbWatchKind::ReadWrite,
                            },
                            addr: w.addr,
                        },
                        None => MultiThreadStopReason::SignalWithThread {
                            tid,
                            signal: Signal::SIGTRAP,
                        },
                    },
                    StopCause::Stepped | StopCause::Exec => {
                        MultiThreadStopReason::SignalWithThread {
                            tid,
                            signal: Signal::SIGTRAP,
                        }
                    }
                    StopCause::Interrupted => MultiThreadStopReason::SignalWithThread {
                        tid,
                        signal: Signal::SIGINT,
                    },
                    StopCause::Signal(sig) => MultiThreadStopReason::SignalWithThread {
                        tid,
                        signal: signal(sig),
                    },
                }
            }
        }
    }

    /// Ends the current process and starts `argv` in its place with the
    /// first launch's environment, directory and stdio.
    fn relaunch(&mut self, argv: Vec<std::ffi::OsString>) -> Result<GdbPid, DebugError> {
        let clone =
            |fd: &Option<std::os::fd::OwnedFd>| fd.as_ref().and_then(|f| f.try_clone().ok());
        let launch = Launch {
            argv,
            env: self.template.env.clone(),
            cwd: self.template.cwd.clone(),
            stdin: clone(&self.template.stdin),
            stdout: clone(&self.template.stdout),
            stderr: clone(&self.template.stderr),
        };
        self.inferior.kill();
        self.inferior = Inferior::launch(&launch, self.randomize_addresses)?;
        self.queued = None;
        self.actions.clear();
        Ok(GdbPid::new(self.inferior.pid.as_raw() as usize).expect("pids are positive"))
    }

    fn set_action(
        &mut self,
        tid: Tid,
        mode: ResumeMode,
        signal: Option<Signal>,
    ) -> Result<(), DebugError> {
        let signal = match signal {
            None | Some(Signal(0)) => None,
            Some(Signal(s)) => Some(gdb_to_linux(s).ok_or(DebugError::UnknownSignal(s))?),
        };
        self.actions
            .insert(pid_of(tid), ResumeAction { mode, signal });
        Ok(())
    }
}

/// Fatal errors end the session; the rest become `E` replies.
fn nonfatal(e: DebugError) -> TargetError<DebugError> {
    match e {
        DebugError::Memory(_) => TargetError::Errno(EFAULT),
        DebugError::NoSuchThread(_) => TargetError::Errno(ESRCH),
        DebugError::UnknownSignal(_) => TargetError::Errno(EINVAL),
        other => TargetError::Fatal(other),
    }
}

impl Target for ProcessTarget {
    type Arch = LinuxX86_64;
    type Error = DebugError;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::MultiThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }

    fn support_exec_file(&mut self) -> Option<ExecFileOps<'_, Self>> {
        Some(self)
    }

    fn support_auxv(&mut self) -> Option<AuxvOps<'_, Self>> {
        Some(self)
    }

    fn support_libraries_svr4(&mut self) -> Option<LibrariesSvr4Ops<'_, Self>> {
        Some(self)
    }

    fn support_extended_mode(&mut self) -> Option<ExtendedModeOps<'_, Self>> {
        Some(self)
    }

    fn support_host_io(&mut self) -> Option<gdbstub::target::ext::host_io::HostIoOps<'_, Self>> {
        Some(self)
    }
}

impl ExtendedMode for ProcessTarget {
    /// gdb's `run`: the program (or the one named) starts again, stopped
    /// at its exec, with the same environment, directory and stdio.
    fn run(&mut self, filename: Option<&[u8]>, args: Args<'_, '_>) -> TargetResult<GdbPid, Self> {
        use std::os::unix::ffi::OsStrExt;
        let program = match filename {
            Some(name) if !name.is_empty() => std::ffi::OsStr::from_bytes(name).to_os_string(),
            _ => self.inferior.exe.clone().into_os_string(),
        };
        let mut argv = vec![program];
        argv.extend(args.map(|a| std::ffi::OsStr::from_bytes(a).to_os_string()));
        match self.relaunch(argv) {
            Ok(pid) => Ok(pid),
            Err(e) => {
                eprintln!("vmdbg-agent: {e}");
                Err(TargetError::Errno(EPERM))
            }
        }
    }

    fn attach(&mut self, _pid: GdbPid) -> TargetResult<(), Self> {
        // This server debugs the program it launched, nothing else.
        Err(TargetError::Errno(EPERM))
    }

    fn query_if_attached(&mut self, _pid: GdbPid) -> TargetResult<AttachKind, Self> {
        Ok(AttachKind::Run)
    }

    fn kill(&mut self, _pid: Option<GdbPid>) -> TargetResult<ShouldTerminate, Self> {
        self.inferior.kill();
        Ok(if self.extended_client {
            ShouldTerminate::No
        } else {
            ShouldTerminate::Yes
        })
    }

    fn restart(&mut self) -> Result<(), Self::Error> {
        let mut argv = self.template.argv.clone();
        if let Some(first) = argv.first_mut() {
            *first = self.inferior.exe.clone().into_os_string();
        }
        self.relaunch(argv).map(|_| ())
    }

    fn on_start(&mut self) -> Result<(), Self::Error> {
        self.extended_client = true;
        Ok(())
    }

    fn support_current_active_pid(&mut self) -> Option<CurrentActivePidOps<'_, Self>> {
        Some(self)
    }

    fn support_configure_aslr(&mut self) -> Option<ConfigureAslrOps<'_, Self>> {
        Some(self)
    }

    fn support_configure_env(&mut self) -> Option<ConfigureEnvOps<'_, Self>> {
        Some(self)
    }

    fn support_configure_working_dir(&mut self) -> Option<ConfigureWorkingDirOps<'_, Self>> {
        Some(self)
    }

    fn support_configure_startup_shell(&mut self) -> Option<ConfigureStartupShellOps<'_, Self>> {
        Some(self)
    }
}

/// gdb's `set disable-randomization`, `set environment`/`unset
/// environment` and `set cwd`, applied at the next `run`.
impl ConfigureAslr for ProcessTarget {
    fn cfg_aslr(&mut self, enabled: bool) -> TargetResult<(), Self> {
        self.randomize_addresses = enabled;
        Ok(())
    }
}

impl ConfigureEnv for ProcessTarget {
    fn set_env(&mut self, key: &[u8], val: Option<&[u8]>) -> TargetResult<(), Self> {
        use std::os::unix::ffi::OsStrExt;
        let key = std::ffi::OsStr::from_bytes(key).to_os_string();
        let val = std::ffi::OsStr::from_bytes(val.unwrap_or_default()).to_os_string();
        let env = self
            .template
            .env
            .get_or_insert_with(|| std::env::vars_os().collect());
        env.retain(|(k, _)| *k != key);
        env.push((key, val));
        Ok(())
    }

    fn remove_env(&mut self, key: &[u8]) -> TargetResult<(), Self> {
        use std::os::unix::ffi::OsStrExt;
        let key = std::ffi::OsStr::from_bytes(key);
        let env = self
            .template
            .env
            .get_or_insert_with(|| std::env::vars_os().collect());
        env.retain(|(k, _)| k != key);
        Ok(())
    }

    fn reset_env(&mut self) -> TargetResult<(), Self> {
        self.template.env = None;
        Ok(())
    }
}

impl ConfigureWorkingDir for ProcessTarget {
    fn cfg_working_dir(&mut self, dir: Option<&[u8]>) -> TargetResult<(), Self> {
        use std::os::unix::ffi::OsStrExt;
        self.template.cwd = dir.map(|d| std::ffi::OsStr::from_bytes(d).into());
        Ok(())
    }
}

/// Programs always start without a shell (no argument globbing): gdb is
/// told yes and the choice has no effect.
impl ConfigureStartupShell for ProcessTarget {
    fn cfg_startup_with_shell(&mut self, _enabled: bool) -> TargetResult<(), Self> {
        Ok(())
    }
}

impl CurrentActivePid for ProcessTarget {
    fn current_active_pid(&mut self) -> Result<GdbPid, Self::Error> {
        Ok(GdbPid::new(self.inferior.pid.as_raw() as usize).expect("pids are positive"))
    }
}

impl MultiThreadBase for ProcessTarget {
    fn read_registers(&mut self, regs: &mut ProcessRegs, tid: Tid) -> TargetResult<(), Self> {
        let (gp, fp) = self
            .inferior
            .read_registers(self.thread(tid))
            .map_err(nonfatal)?;
        *regs = ProcessRegs::from_kernel(&gp, &fp);
        Ok(())
    }

    fn write_registers(&mut self, regs: &ProcessRegs, tid: Tid) -> TargetResult<(), Self> {
        let tid = self.thread(tid);
        let (mut gp, mut fp) = self.inferior.read_registers(tid).map_err(nonfatal)?;
        regs.to_kernel(&mut gp, &mut fp);
        self.inferior
            .write_registers(tid, &gp, &fp)
            .map_err(nonfatal)
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8], _tid: Tid) -> TargetResult<usize, Self> {
        self.inferior.read_memory(start, data).map_err(nonfatal)
    }

    fn write_addrs(&mut self, start: u64, data: &[u8], _tid: Tid) -> TargetResult<(), Self> {
        self.inferior.write_memory(start, data).map_err(nonfatal)
    }

    fn list_active_threads(&mut self, report: &mut dyn FnMut(Tid)) -> Result<(), Self::Error> {
        self.inferior.thread_ids().for_each(|t| report(tid_of(t)));
        Ok(())
    }

    fn is_thread_alive(&mut self, tid: Tid) -> Result<bool, Self::Error> {
        Ok(self.inferior.has_thread(pid_of(tid)))
    }

    fn support_resume(&mut self) -> Option<MultiThreadResumeOps<'_, Self>> {
        Some(self)
    }

    fn support_thread_extra_info(
        &mut self,
    ) -> Option<gdbstub::target::ext::thread_extra_info::ThreadExtraInfoOps<'_, Self>> {
        Some(self)
    }
}

impl gdbstub::target::ext::thread_extra_info::ThreadExtraInfo for ProcessTarget {
    /// The thread's name (what `pthread_setname_np` set, else the
    /// program's), shown by gdb's `info threads`.
    fn thread_extra_info(&self, tid: Tid, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let path = format!("/proc/{}/task/{}/comm", self.inferior.pid, tid.get());
        let name = std::fs::read_to_string(path).unwrap_or_default();
        let name = name.trim_end().as_bytes();
        let n = name.len().min(buf.len());
        buf[..n].copy_from_slice(&name[..n]);
        Ok(n)
    }
}

impl MultiThreadResume for ProcessTarget {
    fn resume(&mut self) -> Result<(), Self::Error> {
        let mut actions = std::mem::take(&mut self.actions);
        // A bare `c`/`s` from a client that never chose a thread (lldb sends
        // no `Hc`) reaches us for gdbstub's placeholder thread 1: it means
        // the first thread, with every other thread continuing.
        let unknown: Vec<Pid> = actions
            .keys()
            .filter(|t| !self.inferior.has_thread(**t))
            .copied()
            .collect();
        for tid in unknown {
            let action = actions.remove(&tid).expect("listed above");
            if let Some(first) = self.inferior.thread_ids().next() {
                actions.entry(first).or_insert(action);
                self.others = Some(ResumeAction {
                    mode: ResumeMode::Continue,
                    signal: None,
                });
            }
        }
        self.queued = self.inferior.resume(&actions, self.others)?;
        Ok(())
    }

    fn clear_resume_actions(&mut self) -> Result<(), Self::Error> {
        self.actions.clear();
        self.others = Some(ResumeAction {
            mode: ResumeMode::Continue,
            signal: None,
        });
        Ok(())
    }

    fn set_resume_action_continue(
        &mut self,
        tid: Tid,
        signal: Option<Signal>,
    ) -> Result<(), Self::Error> {
        self.set_action(tid, ResumeMode::Continue, signal)
    }

    fn support_single_step(&mut self) -> Option<MultiThreadSingleStepOps<'_, Self>> {
        Some(self)
    }

    fn support_scheduler_locking(&mut self) -> Option<MultiThreadSchedulerLockingOps<'_, Self>> {
        Some(self)
    }

    fn support_range_step(&mut self) -> Option<MultiThreadRangeSteppingOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadRangeStepping for ProcessTarget {
    fn set_resume_action_range_step(
        &mut self,
        tid: Tid,
        start: u64,
        end: u64,
    ) -> Result<(), Self::Error> {
        self.set_action(tid, ResumeMode::Range { start, end }, None)
    }
}

impl MultiThreadSingleStep for ProcessTarget {
    fn set_resume_action_step(
        &mut self,
        tid: Tid,
        signal: Option<Signal>,
    ) -> Result<(), Self::Error> {
        self.set_action(tid, ResumeMode::Step, signal)
    }
}

impl MultiThreadSchedulerLocking for ProcessTarget {
    fn set_resume_action_scheduler_lock(&mut self) -> Result<(), Self::Error> {
        self.others = None;
        Ok(())
    }
}

impl Breakpoints for ProcessTarget {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_watchpoint(&mut self) -> Option<HwWatchpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_breakpoint(&mut self) -> Option<HwBreakpointOps<'_, Self>> {
        Some(self)
    }
}

/// `hbreak`: an instruction breakpoint in a debug register (shared with
/// watchpoints, four in all).
impl HwBreakpoint for ProcessTarget {
    fn add_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        let slot = Watchpoint {
            addr,
            len: 1,
            kind: WatchKind::Execute,
        };
        Ok(self.inferior.add_watchpoint(slot))
    }

    fn remove_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        let slot = Watchpoint {
            addr,
            len: 1,
            kind: WatchKind::Execute,
        };
        Ok(self.inferior.remove_watchpoint(slot))
    }
}

impl SwBreakpoint for ProcessTarget {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        self.inferior.add_breakpoint(addr).map_err(nonfatal)?;
        Ok(true)
    }

    /// Removing a breakpoint we do not have is refused: after an exec the
    /// refusal is what tells gdb that the old image's breakpoints are gone
    /// (gdb 13 does not understand exec stops from a remote target).
    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.inferior.remove_breakpoint(addr))
    }
}

fn watchpoint(addr: u64, len: u64, kind: GdbWatchKind) -> Option<Watchpoint> {
    let kind = match kind {
        GdbWatchKind::Write => WatchKind::Write,
        GdbWatchKind::ReadWrite => WatchKind::ReadWrite,
        // x86 debug registers cannot trap reads alone.
        GdbWatchKind::Read => return None,
    };
    Some(Watchpoint { addr, len, kind })
}

impl HwWatchpoint for ProcessTarget {
    fn add_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: GdbWatchKind,
    ) -> TargetResult<bool, Self> {
        Ok(watchpoint(addr, len, kind).is_some_and(|w| self.inferior.add_watchpoint(w)))
    }

    fn remove_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: GdbWatchKind,
    ) -> TargetResult<bool, Self> {
        Ok(watchpoint(addr, len, kind).is_some_and(|w| self.inferior.remove_watchpoint(w)))
    }
}

impl ExecFile for ProcessTarget {
    fn get_exec_file(
        &self,
        _pid: Option<GdbPid>,
        offset: u64,
        length: usize,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        let path = self.inferior.exe.as_os_str().as_encoded_bytes();
        Ok(solib::xfer_slice(path, offset, length, buf))
    }
}

impl Auxv for ProcessTarget {
    fn get_auxv(&self, offset: u64, length: usize, buf: &mut [u8]) -> TargetResult<usize, Self> {
        let mut document = self.auxv_document.borrow_mut();
        if offset == 0 || document.is_empty() {
            *document = solib::auxv(&self.inferior).map_err(|_| TargetError::Errno(EFAULT))?;
        }
        Ok(solib::xfer_slice(&document, offset, length, buf))
    }
}

impl LibrariesSvr4 for ProcessTarget {
    fn get_libraries_svr4(
        &self,
        offset: u64,
        length: usize,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        let mut document = self.libraries_document.borrow_mut();
        if offset == 0 || document.is_empty() {
            *document = solib::libraries_svr4_xml(&self.inferior)
                .map_err(|_| TargetError::Errno(EFAULT))?
                .into_bytes();
        }
        Ok(solib::xfer_slice(&document, offset, length, buf))
    }
}

/// Waits for the process while watching the connection for a Ctrl-C or a
/// packet.
pub struct ProcessEventLoop<S: RspStream>(std::marker::PhantomData<S>);

/// Rounds that only yield the CPU before sleeping: a step ends in
/// microseconds, sooner than the shortest sleep the kernel grants.
const SPIN_ROUNDS: u32 = 50;

/// How long to wait on the connection between looks at the process: not at
/// all at first, longer the longer it runs (up to 5 ms).
fn backoff(round: u32) -> Duration {
    match round.checked_sub(SPIN_ROUNDS) {
        None => Duration::ZERO,
        Some(r) => Duration::from_micros(10u64 << r.min(9)),
    }
}

/// Waits up to `limit` for `fd` to become readable.
fn readable_within(fd: i32, limit: Duration) -> std::io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: limit.as_secs() as libc::time_t,
        tv_nsec: limit.subsec_nanos() as libc::c_long,
    };
    // SAFETY: one valid pollfd, a valid timespec, no signal mask change.
    let n = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
    match n {
        n if n > 0 => Ok(true),
        0 => Ok(false),
        _ => {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

impl<S: RspStream> BlockingEventLoop for ProcessEventLoop<S> {
    type Target = ProcessTarget;
    type Connection = SharedConn<S>;
    type StopReason = MultiThreadStopReason<u64>;

    fn wait_for_stop_reason(
        target: &mut ProcessTarget,
        conn: &mut SharedConn<S>,
    ) -> Result<
        LoopEvent<Self::StopReason>,
        WaitForStopReasonError<DebugError, <SharedConn<S> as Connection>::Error>,
    > {
        if let Some(event) = target.queued.take() {
            return Ok(LoopEvent::TargetStopped(target.stop_reason(event)));
        }
        let mut round = 0;
        loop {
            if conn.has_buffered_input() {
                return conn
                    .read()
                    .map(LoopEvent::IncomingData)
                    .map_err(WaitForStopReasonError::Connection);
            }
            if let Some(event) = target
                .inferior
                .poll_event()
                .map_err(WaitForStopReasonError::Target)?
            {
                return Ok(LoopEvent::TargetStopped(target.stop_reason(event)));
            }
            if target.inferior.take_progress() {
                round = 0;
            }
            if readable_within(conn.raw_fd(), backoff(round))
                .map_err(WaitForStopReasonError::Connection)?
            {
                return conn
                    .read()
                    .map(LoopEvent::IncomingData)
                    .map_err(WaitForStopReasonError::Connection);
            }
            if round < SPIN_ROUNDS {
                std::thread::yield_now();
            }
            round += 1;
        }
    }

    fn on_interrupt(target: &mut ProcessTarget) -> Result<Option<Self::StopReason>, DebugError> {
        let event = target.inferior.interrupt()?;
        Ok(Some(target.stop_reason(event)))
    }
}

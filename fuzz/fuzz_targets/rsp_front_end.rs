//! The RSP front end both stubs run (vmdbg-gdb-common's `session::serve`
//! over its checked `RspConnection`, then gdbstub's parsers and command
//! handlers) on arbitrary client bytes.
//!
//! The target is a small in-memory one implementing the gdbstub traits
//! both stubs implement (multithread base, resume, step, scheduler
//! locking, range step, sw/hw breakpoints, watchpoints through the shared
//! `hw_slots` rule, extended mode, exec-file, auxv, SVR4 libraries,
//! monitor), with the VMM's register layout. The real targets cannot be
//! in-process at fuzzing speed: the VMM's needs a KVM VM and running vCPU
//! threads, the agent's a ptrace'd child. Those are covered by
//! tests/tests/rsp_robust.rs with generated packets.
//!
//! Checked: no panic or hang; the session ends only because the input
//! ended (or the client detached/killed), never because gdbstub gave up;
//! everything written back is well-framed (acks and checksummed packets).
#![no_main]

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::num::NonZeroUsize;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

use gdbstub::common::{Pid, Signal, Tid};
use gdbstub::conn::ConnectionExt;
use gdbstub::outputln;
use gdbstub::stub::run_blocking::{BlockingEventLoop, Event, WaitForStopReasonError};
use gdbstub::stub::{DisconnectReason, MultiThreadStopReason};
use gdbstub::target::ext::auxv::{Auxv, AuxvOps};
use gdbstub::target::ext::base::multithread::{
    MultiThreadBase, MultiThreadRangeStepping, MultiThreadRangeSteppingOps, MultiThreadResume,
    MultiThreadResumeOps, MultiThreadSchedulerLocking, MultiThreadSchedulerLockingOps,
    MultiThreadSingleStep, MultiThreadSingleStepOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, HwBreakpoint, HwBreakpointOps, HwWatchpoint, HwWatchpointOps,
    SwBreakpoint, SwBreakpointOps, WatchKind,
};
use gdbstub::target::ext::exec_file::{ExecFile, ExecFileOps};
use gdbstub::target::ext::extended_mode::{
    Args, AttachKind, ExtendedMode, ExtendedModeOps, ShouldTerminate,
};
use gdbstub::target::ext::libraries::{LibrariesSvr4, LibrariesSvr4Ops};
use gdbstub::target::ext::monitor_cmd::{ConsoleOutput, MonitorCmd, MonitorCmdOps};
use gdbstub::target::{Target, TargetError, TargetResult};
use libfuzzer_sys::fuzz_target;
use vmdbg_gdb_common::hw_slots::{check_watch, SLOT_COUNT};
use vmdbg_gdb_common::session::{self, Resync, SessionError, SharedConn};
use vmdbg_vmm::gdb::arch::{VcpuRegs, VmdbgX86_64};

/// Client bytes in, server bytes out; reads come in pieces of `chunk`.
struct MemStream {
    input: Vec<u8>,
    at: usize,
    chunk: usize,
    output: Rc<RefCell<Vec<u8>>>,
}

impl Read for MemStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.input.len() - self.at).min(buf.len()).min(self.chunk);
        buf[..n].copy_from_slice(&self.input[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Write for MemStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsRawFd for MemStream {
    /// Never polled: the event loop below never waits on it.
    fn as_raw_fd(&self) -> RawFd {
        -1
    }
}

const MEM_BASE: u64 = 0x1000;
const THREADS: usize = 2;

#[derive(Clone, Copy, PartialEq)]
struct Slot {
    addr: u64,
    len: u64,
    watch: Option<WatchKind>,
}

struct MemTarget {
    regs: [VcpuRegs; THREADS],
    mem: Vec<u8>,
    slots: [Option<Slot>; SLOT_COUNT],
    sw_breakpoints: Vec<u64>,
    running: bool,
    stops: u32,
}

fn tid(i: usize) -> Tid {
    NonZeroUsize::new(i + 1).unwrap()
}

fn thread(t: Tid) -> Result<usize, TargetError<&'static str>> {
    let i = t.get() - 1;
    if i < THREADS {
        Ok(i)
    } else {
        Err(TargetError::NonFatal)
    }
}

fn xfer(doc: &[u8], offset: u64, length: usize, buf: &mut [u8]) -> usize {
    let start = (offset as usize).min(doc.len());
    let n = (doc.len() - start).min(length).min(buf.len());
    buf[..n].copy_from_slice(&doc[start..start + n]);
    n
}

impl MemTarget {
    fn new() -> Self {
        Self {
            regs: Default::default(),
            mem: vec![0; 0x4000],
            slots: [None; SLOT_COUNT],
            sw_breakpoints: Vec::new(),
            running: false,
            stops: 0,
        }
    }

    fn range(&self, start: u64, len: usize) -> Option<std::ops::Range<usize>> {
        let from = start.checked_sub(MEM_BASE)? as usize;
        let to = from.checked_add(len)?;
        (to <= self.mem.len()).then_some(from..to)
    }

    /// Each resume ends in the next of the stops both stubs report.
    fn next_stop(&mut self) -> MultiThreadStopReason<u64> {
        self.running = false;
        self.stops += 1;
        let t = tid(self.stops as usize % THREADS);
        match self.stops % 6 {
            0 => MultiThreadStopReason::SwBreak(t),
            1 => MultiThreadStopReason::HwBreak(t),
            2 => MultiThreadStopReason::Watch {
                tid: t,
                kind: WatchKind::Write,
                addr: MEM_BASE,
            },
            3 => MultiThreadStopReason::SignalWithThread {
                tid: t,
                signal: Signal::SIGTRAP,
            },
            4 => MultiThreadStopReason::SignalWithThread {
                tid: t,
                signal: Signal::SIGINT,
            },
            _ if self.stops > 40 => MultiThreadStopReason::Exited(3),
            _ => MultiThreadStopReason::SignalWithThread {
                tid: t,
                signal: Signal::SIGSEGV,
            },
        }
    }

    fn insert(&mut self, slot: Slot) -> bool {
        match self.slots.iter_mut().find(|s| s.is_none()) {
            Some(free) => {
                *free = Some(slot);
                true
            }
            None => false,
        }
    }

    fn remove(&mut self, slot: Slot) -> bool {
        match self.slots.iter_mut().find(|s| **s == Some(slot)) {
            Some(s) => {
                *s = None;
                true
            }
            None => false,
        }
    }
}

impl Target for MemTarget {
    type Arch = VmdbgX86_64;
    type Error = &'static str;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::MultiThread(self)
    }
    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }
    fn support_monitor_cmd(&mut self) -> Option<MonitorCmdOps<'_, Self>> {
        Some(self)
    }
    fn support_extended_mode(&mut self) -> Option<ExtendedModeOps<'_, Self>> {
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
}

impl MultiThreadBase for MemTarget {
    fn read_registers(&mut self, regs: &mut VcpuRegs, t: Tid) -> TargetResult<(), Self> {
        *regs = self.regs[thread(t)?].clone();
        Ok(())
    }
    fn write_registers(&mut self, regs: &VcpuRegs, t: Tid) -> TargetResult<(), Self> {
        self.regs[thread(t)?] = regs.clone();
        Ok(())
    }
    fn read_addrs(&mut self, start: u64, data: &mut [u8], _t: Tid) -> TargetResult<usize, Self> {
        let r = self
            .range(start, data.len())
            .ok_or(TargetError::Errno(14))?;
        data.copy_from_slice(&self.mem[r]);
        Ok(data.len())
    }
    fn write_addrs(&mut self, start: u64, data: &[u8], _t: Tid) -> TargetResult<(), Self> {
        let r = self
            .range(start, data.len())
            .ok_or(TargetError::Errno(14))?;
        self.mem[r].copy_from_slice(data);
        Ok(())
    }
    fn list_active_threads(&mut self, f: &mut dyn FnMut(Tid)) -> Result<(), Self::Error> {
        (0..THREADS).for_each(|i| f(tid(i)));
        Ok(())
    }
    fn support_resume(&mut self) -> Option<MultiThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadResume for MemTarget {
    fn resume(&mut self) -> Result<(), Self::Error> {
        self.running = true;
        Ok(())
    }
    fn clear_resume_actions(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
    fn set_resume_action_continue(
        &mut self,
        t: Tid,
        _s: Option<Signal>,
    ) -> Result<(), Self::Error> {
        // As the VMM's stub does: an unknown thread is no thread to resume.
        let _ = t;
        Ok(())
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

impl MultiThreadSingleStep for MemTarget {
    fn set_resume_action_step(&mut self, t: Tid, _s: Option<Signal>) -> Result<(), Self::Error> {
        let _ = t;
        Ok(())
    }
}

impl MultiThreadSchedulerLocking for MemTarget {
    fn set_resume_action_scheduler_lock(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl MultiThreadRangeStepping for MemTarget {
    fn set_resume_action_range_step(
        &mut self,
        t: Tid,
        _a: u64,
        _b: u64,
    ) -> Result<(), Self::Error> {
        let _ = t;
        Ok(())
    }
}

impl Breakpoints for MemTarget {
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

impl SwBreakpoint for MemTarget {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        self.sw_breakpoints.push(addr);
        Ok(self.sw_breakpoints.len() < 64)
    }
    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        let before = self.sw_breakpoints.len();
        self.sw_breakpoints.retain(|a| *a != addr);
        Ok(before != self.sw_breakpoints.len())
    }
}

impl HwBreakpoint for MemTarget {
    fn add_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.insert(Slot {
            addr,
            len: 1,
            watch: None,
        }))
    }
    fn remove_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.remove(Slot {
            addr,
            len: 1,
            watch: None,
        }))
    }
}

impl HwWatchpoint for MemTarget {
    fn add_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        if check_watch(addr, len).is_err() {
            return Ok(false);
        }
        Ok(self.insert(Slot {
            addr,
            len,
            watch: Some(kind),
        }))
    }
    fn remove_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        Ok(self.remove(Slot {
            addr,
            len,
            watch: Some(kind),
        }))
    }
}

impl ExtendedMode for MemTarget {
    fn run(&mut self, _filename: Option<&[u8]>, args: Args<'_, '_>) -> TargetResult<Pid, Self> {
        let _ = args.count();
        Ok(Pid::new(1).unwrap())
    }
    fn attach(&mut self, _pid: Pid) -> TargetResult<(), Self> {
        Err(TargetError::Errno(1))
    }
    fn query_if_attached(&mut self, _pid: Pid) -> TargetResult<AttachKind, Self> {
        Ok(AttachKind::Run)
    }
    fn kill(&mut self, _pid: Option<Pid>) -> TargetResult<ShouldTerminate, Self> {
        Ok(ShouldTerminate::No)
    }
    fn restart(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl ExecFile for MemTarget {
    fn get_exec_file(
        &self,
        _pid: Option<Pid>,
        offset: u64,
        length: usize,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        Ok(xfer(b"/bin/fuzz", offset, length, buf))
    }
}

impl Auxv for MemTarget {
    fn get_auxv(&self, offset: u64, length: usize, buf: &mut [u8]) -> TargetResult<usize, Self> {
        Ok(xfer(
            &[6, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0],
            offset,
            length,
            buf,
        ))
    }
}

impl LibrariesSvr4 for MemTarget {
    fn get_libraries_svr4(
        &self,
        offset: u64,
        length: usize,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        Ok(xfer(
            b"<library-list-svr4 version=\"1.0\"/>",
            offset,
            length,
            buf,
        ))
    }
}

impl MonitorCmd for MemTarget {
    fn handle_monitor_cmd(
        &mut self,
        cmd: &[u8],
        mut out: ConsoleOutput<'_>,
    ) -> Result<(), Self::Error> {
        outputln!(out, "{}", String::from_utf8_lossy(cmd));
        Ok(())
    }
}

impl Resync for MemTarget {
    fn resync(&mut self) -> Result<Option<MultiThreadStopReason<u64>>, Self::Error> {
        Ok(self.running.then(|| self.next_stop()))
    }
}

struct MemLoop;

impl BlockingEventLoop for MemLoop {
    type Target = MemTarget;
    type Connection = SharedConn<MemStream>;
    type StopReason = MultiThreadStopReason<u64>;

    /// Bytes the client already sent come first, so packets also arrive
    /// while the target "runs"; then it stops.
    fn wait_for_stop_reason(
        target: &mut MemTarget,
        conn: &mut SharedConn<MemStream>,
    ) -> Result<Event<Self::StopReason>, WaitForStopReasonError<&'static str, io::Error>> {
        if conn.has_buffered_input() || !target.running {
            return conn
                .read()
                .map(Event::IncomingData)
                .map_err(WaitForStopReasonError::Connection);
        }
        Ok(Event::TargetStopped(target.next_stop()))
    }

    fn on_interrupt(target: &mut MemTarget) -> Result<Option<Self::StopReason>, &'static str> {
        target.running = false;
        Ok(Some(MultiThreadStopReason::SignalWithThread {
            tid: tid(0),
            signal: Signal::SIGINT,
        }))
    }
}

/// Input: a read size, then pieces split at newlines; a piece starting
/// with 0x01 goes out raw, any other is framed with a correct checksum so
/// it reaches the parsers.
fn client_bytes(data: &[u8]) -> (usize, Vec<u8>) {
    let Some((&chunk, rest)) = data.split_first() else {
        return (1, Vec::new());
    };
    let mut out = Vec::new();
    for piece in rest.split(|b| *b == b'\n') {
        match piece.split_first() {
            Some((0x01, raw)) => out.extend_from_slice(raw),
            _ => {
                let sum = piece.iter().fold(0u8, |s, b| s.wrapping_add(*b));
                out.push(b'$');
                out.extend_from_slice(piece);
                out.extend_from_slice(format!("#{sum:02x}").as_bytes());
            }
        }
    }
    (chunk as usize % 16 + 1, out)
}

/// Everything the server wrote: acks and checksummed packets only.
fn assert_well_framed(out: &[u8]) {
    let mut i = 0;
    while i < out.len() {
        match out[i] {
            b'+' | b'-' => i += 1,
            b'$' => {
                let end = out[i..]
                    .iter()
                    .position(|b| *b == b'#')
                    .map(|p| i + p)
                    .unwrap_or_else(|| {
                        panic!(
                            "unterminated packet at {i}: {:?}",
                            String::from_utf8_lossy(&out[i..])
                        )
                    });
                assert!(end + 2 < out.len(), "checksum cut short");
                let body = &out[i + 1..end];
                assert!(
                    !body.contains(&b'$'),
                    "packet inside a packet: {:?}",
                    String::from_utf8_lossy(body)
                );
                let sum = body.iter().fold(0u8, |s, b| s.wrapping_add(*b));
                let digits = std::str::from_utf8(&out[end + 1..end + 3]).unwrap();
                assert_eq!(
                    u8::from_str_radix(digits, 16).ok(),
                    Some(sum),
                    "bad checksum"
                );
                i = end + 3;
            }
            other => panic!(
                "stray byte {other:#x} at {i} in {:?}",
                String::from_utf8_lossy(out)
            ),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (chunk, input) = client_bytes(data);
    let output = Rc::new(RefCell::new(Vec::new()));
    let conn = SharedConn::new(MemStream {
        input,
        at: 0,
        chunk,
        output: Rc::clone(&output),
    });
    let mut target = MemTarget::new();
    match session::serve::<MemLoop, MemStream>(&conn, &mut target) {
        Ok(DisconnectReason::Disconnect | DisconnectReason::Kill) => {}
        Ok(DisconnectReason::TargetExited(_) | DisconnectReason::TargetTerminated(_)) => {}
        Err(SessionError::Connection(e)) => {
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}")
        }
        Err(SessionError::Target(e)) => panic!("target error: {e}"),
        Err(SessionError::Stub(e)) => panic!("the session ended on the stub: {e}"),
    }
    drop(conn);
    assert_well_framed(&output.borrow());
});

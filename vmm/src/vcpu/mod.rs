//! vCPU threads. Each vCPU is owned by one thread that alone touches its
//! `VcpuFd`; everyone else sends it work through [`VcpuHandle`] while it is
//! parked, and it reports every stop as a [`VcpuEvent`].
//!
//! Interrupting a running vCPU is a flag plus a real-time signal that makes
//! KVM_RUN return EINTR; the flag is re-sent until the vCPU acknowledges,
//! which closes the race with a signal that lands just before KVM_RUN.

pub mod state;

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Once};
use std::thread::JoinHandle;

use crate::vm::GuestMemoryMmap;
use kvm_bindings::kvm_debug_exit_arch;
use kvm_ioctls::{VcpuExit, VcpuFd};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::signal::{register_signal_handler, Killable, SIGRTMIN};

use crate::devices::{IoAction, MmioBus, PioBus};
use crate::error::{exit_status, Error, Result};

/// Why a vCPU stopped running.
#[derive(Clone, Debug)]
pub enum VcpuEvent {
    /// A debug exit (breakpoint, watchpoint, single-step).
    Debug {
        vcpu: usize,
        exit: kvm_debug_exit_arch,
    },
    /// It was asked to pause and did.
    Paused { vcpu: usize },
    /// The VM is over: the guest asked for it, or it failed.
    VmEnded { vcpu: usize, end: VmEnd },
    /// A recording or replay ([`crate::record`]) reached what it was
    /// driven to.
    Record {
        vcpu: usize,
        stop: crate::record::Stop,
    },
}

impl VcpuEvent {
    pub fn vcpu(&self) -> usize {
        match self {
            Self::Debug { vcpu, .. }
            | Self::Paused { vcpu }
            | Self::VmEnded { vcpu, .. }
            | Self::Record { vcpu, .. } => *vcpu,
        }
    }
}

/// How a VM ended, with the process exit status it maps to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmEnd {
    /// The guest ended the VM (exit port, ACPI/PSCI shutdown): its status.
    Guest { status: i32 },
    /// The VM cannot go on; `report` says why, with the vCPU's registers.
    Fatal { status: i32, report: String },
}

impl VmEnd {
    pub fn status(&self) -> i32 {
        match self {
            Self::Guest { status } | Self::Fatal { status, .. } => *status,
        }
    }
}

/// The channel vCPU threads report on, plus an eventfd that becomes readable
/// with every event so a poll() loop can wait on it beside a socket.
#[derive(Clone)]
pub struct EventSink {
    tx: Sender<VcpuEvent>,
    wakeup: Arc<EventFd>,
}

pub struct EventSource {
    rx: Receiver<VcpuEvent>,
    wakeup: Arc<EventFd>,
}

pub fn event_channel() -> Result<(EventSink, EventSource)> {
    let (tx, rx) = mpsc::channel();
    let wakeup = Arc::new(
        EventFd::new(libc::EFD_NONBLOCK).map_err(|e| Error::Vcpu(format!("eventfd: {e}")))?,
    );
    Ok((
        EventSink {
            tx,
            wakeup: wakeup.clone(),
        },
        EventSource { rx, wakeup },
    ))
}

impl EventSink {
    fn send(&self, event: VcpuEvent) {
        // The receiver is gone only while the VMM is shutting down.
        let _ = self.tx.send(event);
        let _ = self.wakeup.write(1);
    }
}

impl EventSource {
    pub fn recv(&self) -> Option<VcpuEvent> {
        self.rx.recv().ok()
    }

    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Option<VcpuEvent> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Returns a pending event without blocking, and resets the eventfd
    /// once none is left.
    pub fn try_recv(&self) -> Option<VcpuEvent> {
        match self.rx.try_recv() {
            Ok(e) => Some(e),
            Err(_) => {
                let _ = self.wakeup.read();
                self.rx.try_recv().ok()
            }
        }
    }

    pub fn wakeup_fd(&self) -> i32 {
        self.wakeup.as_raw_fd()
    }
}

type Job = Box<dyn FnOnce(&mut VcpuFd) + Send>;

/// Work that runs the vCPU itself on its thread (a recording's
/// single-stepping) and ends with the stop it reports.
pub type DriveJob = Box<dyn FnOnce(&mut VcpuIo) -> VcpuEvent + Send>;

enum Command {
    Exec(Job),
    Run(RunOptions),
    Drive(DriveJob),
    Quit,
}

/// What a [`DriveJob`] can do with the vCPU: run it to its next exit with
/// the device buses served, and see whether a pause was asked for.
pub struct VcpuIo<'a> {
    runner: &'a mut VcpuRunner,
}

/// A device read the guest made during [`VcpuIo::run_once`], with the
/// value the device answered.
#[derive(Clone, Copy, Debug)]
pub enum IoRead {
    Port { port: u16, value: u64 },
    Mmio { addr: u64, value: u64 },
}

/// How one KVM_RUN of a [`VcpuIo`] ended.
pub enum RunExit {
    /// An I/O exit was served (or KVM_RUN was interrupted): run again to
    /// finish the instruction.
    Continue,
    Debug(kvm_debug_exit_arch),
    End(VmEnd),
}

impl VcpuIo<'_> {
    pub fn index(&self) -> usize {
        self.runner.index
    }

    pub fn fd(&mut self) -> &mut VcpuFd {
        &mut self.runner.fd
    }

    /// Takes a pending pause request.
    pub fn take_pause(&self) -> bool {
        self.runner.pause.swap(false, Ordering::SeqCst)
    }

    /// Runs the vCPU to its next exit, serving device I/O; each read is
    /// shown to `reads` with the value the device gave.
    pub fn run_once(&mut self, reads: &mut dyn FnMut(IoRead)) -> RunExit {
        match self.runner.step_observed(Some(reads)) {
            Exit::Continue => RunExit::Continue,
            Exit::Debug(e) => RunExit::Debug(e),
            Exit::End(end) => RunExit::End(end),
            Exit::Fatal { status, headline } => {
                let report =
                    crate::report::vcpu_state(&headline, self.runner.index, &self.runner.fd);
                RunExit::End(VmEnd::Fatal { status, report })
            }
        }
    }
}

/// How a vCPU runs until its next stop.
#[derive(Default)]
pub struct RunOptions {
    /// Watchpoints served by comparing memory after every single-step, on
    /// hosts whose KVM does not deliver data breakpoints. The caller turns
    /// single-stepping on in the guest debug state.
    pub soft_watch: Option<SoftWatch>,
    /// The debugger asked for one step: report the first single-step trap.
    pub stop_after_step: bool,
    /// gdb's range stepping (`vCont;r<start>,<end>`).
    pub range: Option<RangeStep>,
}

/// A single-step trap that lands in `[start, end)` is not reported: the
/// vCPU steps on here, on its own thread, with no round trip to the
/// debugger per instruction. The caller turns single-stepping on and sets
/// `stop_after_step`, so the trap that leaves the range is reported.
#[derive(Clone, Debug)]
pub struct RangeStep {
    pub start: u64,
    pub end: u64,
    /// Execution breakpoints as (debug-register slot, address). A step
    /// that lands on one stops and is reported as that slot's hit, as a
    /// continue would report it, rather than left to the breakpoint
    /// firing on the next entry (which some hosts report without DR6
    /// bits).
    pub breakpoints: Vec<(usize, u64)>,
}

pub struct SoftWatch {
    pub mem: GuestMemoryMmap,
    pub ranges: Vec<WatchedRange>,
}

pub struct WatchedRange {
    /// The debug-register slot the watchpoint occupies; a change is reported
    /// as if that slot's DR6 bit were set.
    pub slot: usize,
    pub gpa: u64,
    pub old: Vec<u8>,
}

impl SoftWatch {
    /// The slot of the first watched range whose bytes changed.
    fn changed_slot(&self) -> Option<usize> {
        self.ranges.iter().find_map(|r| {
            let mut now = vec![0u8; r.old.len()];
            let readable = self.mem.read_slice(&mut now, GuestAddress(r.gpa)).is_ok();
            (readable && now != r.old).then_some(r.slot)
        })
    }
}

/// The owner's side of a vCPU thread.
pub struct VcpuHandle {
    pub index: usize,
    commands: Sender<Command>,
    pause: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    running: bool,
}

fn kick_signal() -> i32 {
    SIGRTMIN()
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

impl VcpuHandle {
    pub fn spawn(
        index: usize,
        fd: VcpuFd,
        bus: PioBus,
        mmio: MmioBus,
        events: EventSink,
    ) -> Result<Self> {
        static HANDLER: Once = Once::new();
        let mut registered = Ok(());
        HANDLER.call_once(|| registered = register_signal_handler(kick_signal(), on_kick));
        registered.map_err(|e| Error::Vcpu(format!("registering the kick signal: {e}")))?;

        let (tx, rx) = mpsc::channel();
        let pause = Arc::new(AtomicBool::new(false));
        let runner = VcpuRunner {
            index,
            fd,
            bus,
            mmio,
            events,
            pause: pause.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("vcpu{index}"))
            .spawn(move || {
                crate::seccomp::install(crate::seccomp::Kind::Vcpu);
                runner.serve(rx)
            })
            .map_err(|e| Error::Vcpu(format!("spawning vCPU thread {index}: {e}")))?;
        Ok(Self {
            index,
            commands: tx,
            pause,
            thread: Some(thread),
            running: false,
        })
    }

    /// Runs `f` on the vCPU's thread and returns its result. The vCPU must
    /// not be running.
    pub fn exec<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut VcpuFd) -> R + Send + 'static,
    ) -> Result<R> {
        debug_assert!(
            !self.running,
            "exec on a running vCPU would wait for its next stop"
        );
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |fd| {
            let _ = tx.send(f(fd));
        });
        self.commands
            .send(Command::Exec(job))
            .map_err(|_| self.gone())?;
        rx.recv().map_err(|_| self.gone())
    }

    fn gone(&self) -> Error {
        Error::Vcpu(format!("vCPU {} thread has exited", self.index))
    }

    /// Hands the vCPU to `job` on its thread; its result is reported as
    /// the vCPU's next stop.
    pub fn drive(&mut self, job: DriveJob) -> Result<()> {
        self.commands
            .send(Command::Drive(job))
            .map_err(|_| self.gone())?;
        self.running = true;
        Ok(())
    }

    pub fn run(&mut self, options: RunOptions) -> Result<()> {
        self.commands
            .send(Command::Run(options))
            .map_err(|_| self.gone())?;
        self.running = true;
        Ok(())
    }

    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Records that the vCPU reported a stop and is parked again.
    pub fn mark_stopped(&mut self) {
        self.running = false;
    }

    /// Asks a running vCPU to stop; it answers with [`VcpuEvent::Paused`]
    /// (or whatever stop it reached first).
    pub fn kick(&self) {
        self.pause.store(true, Ordering::SeqCst);
        if let Some(thread) = &self.thread {
            let _ = thread.kill(kick_signal());
        }
    }

    /// Clears a pause request that a stop for another reason overtook.
    pub fn clear_pause(&self) {
        self.pause.store(false, Ordering::SeqCst);
    }
}

impl Drop for VcpuHandle {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Quit);
        if self.running {
            self.kick();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct VcpuRunner {
    index: usize,
    fd: VcpuFd,
    bus: PioBus,
    mmio: MmioBus,
    events: EventSink,
    pause: Arc<AtomicBool>,
}

/// A VM exit, copied out of the borrowed `VcpuExit` so the run loop can use
/// the vCPU again (for a report) before acting on it.
enum Exit {
    Continue,
    Debug(kvm_debug_exit_arch),
    End(VmEnd),
    Fatal { status: i32, headline: String },
}

impl VcpuRunner {
    fn serve(mut self, commands: Receiver<Command>) {
        while let Ok(command) = commands.recv() {
            match command {
                Command::Exec(job) => job(&mut self.fd),
                Command::Run(options) => {
                    let event = self.run_until_stop(&options);
                    if let VcpuEvent::VmEnded {
                        end: VmEnd::Guest { .. },
                        ..
                    } = event
                    {
                        // The exit that ended it may be an I/O KVM has yet
                        // to complete; a snapshot reset would meet it.
                        self.complete_pending_io();
                    }
                    self.events.send(event);
                }
                Command::Drive(job) => {
                    let event = job(&mut VcpuIo { runner: &mut self });
                    self.events.send(event);
                }
                Command::Quit => break,
            }
        }
    }

    fn run_until_stop(&mut self, options: &RunOptions) -> VcpuEvent {
        let vcpu = self.index;
        loop {
            if self.pause.swap(false, Ordering::SeqCst) {
                self.complete_pending_io();
                return VcpuEvent::Paused { vcpu };
            }
            match self.step_once() {
                Exit::Continue => {}
                Exit::Debug(mut exit) => {
                    if let Some(watch) = &options.soft_watch {
                        const DR6_SLOTS: u64 = 0xf;
                        match watch.changed_slot() {
                            Some(slot) => exit.dr6 = (exit.dr6 & !DR6_SLOTS) | (1 << slot),
                            None if exit.dr6 & DR6_SLOTS == 0 && !options.stop_after_step => {
                                continue
                            }
                            None => {}
                        }
                    }
                    if let Some(range) = &options.range {
                        if self.range_steps_on(range, &mut exit) {
                            continue;
                        }
                    }
                    self.pause.store(false, Ordering::SeqCst);
                    return VcpuEvent::Debug { vcpu, exit };
                }
                Exit::End(end) => return VcpuEvent::VmEnded { vcpu, end },
                Exit::Fatal { status, headline } => {
                    let report = crate::report::vcpu_state(&headline, vcpu, &self.fd);
                    return VcpuEvent::VmEnded {
                        vcpu,
                        end: VmEnd::Fatal { status, report },
                    };
                }
            }
        }
    }

    /// Whether a debug exit met while range stepping is a plain
    /// single-step trap that landed inside the range, so the step goes on
    /// unreported. Anything else (a debug-register hit, an int3, a trap
    /// outside the range or on a breakpoint, marked in `exit` as that
    /// slot's hit) is reported as it would be for a continue. The pc is
    /// read with KVM_GET_REGS rather than taken from the exit, which holds
    /// the linear address (CS base added).
    fn range_steps_on(&self, range: &RangeStep, exit: &mut kvm_debug_exit_arch) -> bool {
        const DB_VECTOR: u32 = 1;
        const DR6_SLOTS: u64 = 0xf;
        const DR6_BS: u64 = 1 << 14;
        let plain_step =
            exit.exception == DB_VECTOR && exit.dr6 & DR6_SLOTS == 0 && exit.dr6 & DR6_BS != 0;
        if !plain_step {
            return false;
        }
        // Reported when unreadable: the debugger reads the registers itself.
        let Ok(regs) = self.fd.get_regs() else {
            return false;
        };
        if let Some(&(slot, _)) = range.breakpoints.iter().find(|(_, a)| *a == regs.rip) {
            exit.dr6 |= 1 << slot;
            return false;
        }
        (range.start..range.end).contains(&regs.rip)
    }

    /// Finishes the I/O exit KVM is still completing (an `in` whose value
    /// goes to RAX on the next KVM_RUN) without entering the guest, so the
    /// state read while paused is whole and a state written while paused
    /// is not overwritten by a stale completion on the next run.
    fn complete_pending_io(&mut self) {
        self.fd.set_kvm_immediate_exit(1);
        match self.fd.run() {
            Err(e) if e.errno() == libc::EINTR => {}
            Ok(_) => tracing::debug!("vCPU {}: exit while completing pending I/O", self.index),
            Err(e) => tracing::debug!("vCPU {}: completing pending I/O: {e}", self.index),
        }
        self.fd.set_kvm_immediate_exit(0);
    }

    fn step_once(&mut self) -> Exit {
        self.step_observed(None)
    }

    fn step_observed(&mut self, mut reads: Option<&mut dyn FnMut(IoRead)>) -> Exit {
        let exit = match self.fd.run() {
            Ok(exit) => exit,
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                return Exit::Continue
            }
            Err(e) => {
                return Exit::Fatal {
                    status: exit_status::KVM_INTERNAL,
                    headline: format!("KVM_RUN failed: {e}"),
                }
            }
        };
        match exit {
            VcpuExit::IoOut(port, data) => match self.bus.write(port, data) {
                IoAction::Exit(status) => Exit::End(VmEnd::Guest { status }),
                IoAction::None => Exit::Continue,
            },
            VcpuExit::IoIn(port, data) => {
                self.bus.read(port, data);
                if let Some(seen) = reads.as_mut() {
                    seen(IoRead::Port {
                        port,
                        value: le_value(data),
                    });
                }
                Exit::Continue
            }
            VcpuExit::MmioRead(addr, data) => {
                self.mmio.read(addr, data);
                if let Some(seen) = reads.as_mut() {
                    seen(IoRead::Mmio {
                        addr,
                        value: le_value(data),
                    });
                }
                Exit::Continue
            }
            VcpuExit::MmioWrite(addr, data) => match self.mmio.write(addr, data) {
                IoAction::Exit(status) => Exit::End(VmEnd::Guest { status }),
                IoAction::None => Exit::Continue,
            },
            VcpuExit::Debug(arch) => Exit::Debug(arch),
            VcpuExit::Intr => Exit::Continue,
            VcpuExit::Shutdown => Exit::Fatal {
                status: exit_status::TRIPLE_FAULT,
                headline: "guest triple fault (KVM_EXIT_SHUTDOWN): an exception occurred while the guest could not handle it (no or broken IDT, stack or GDT)".into(),
            },
            VcpuExit::InternalError => {
                // SAFETY: KVM filled the `internal` member of the union for
                // a KVM_EXIT_INTERNAL_ERROR exit.
                let suberror = unsafe { self.fd.get_kvm_run().__bindgen_anon_1.internal.suberror };
                let what = match suberror {
                    1 => "emulation failure: KVM could not emulate an instruction",
                    2 => "simultaneous exceptions",
                    3 => "delivery of an event failed",
                    _ => "unknown suberror",
                };
                Exit::Fatal {
                    status: exit_status::KVM_INTERNAL,
                    headline: format!("KVM internal error (suberror {suberror}: {what})"),
                }
            }
            VcpuExit::FailEntry(reason, cpu) => Exit::Fatal {
                status: exit_status::KVM_INTERNAL,
                headline: format!(
                    "VM entry failed (hardware reason {reason:#x} on host CPU {cpu}): the vCPU state is invalid"
                ),
            },
            VcpuExit::SystemEvent(kind, _) => match kind {
                kvm_bindings::KVM_SYSTEM_EVENT_SHUTDOWN => Exit::End(VmEnd::Guest {
                    status: exit_status::GUEST_POWEROFF,
                }),
                kvm_bindings::KVM_SYSTEM_EVENT_RESET => Exit::End(VmEnd::Guest {
                    status: exit_status::GUEST_REBOOT,
                }),
                _ => Exit::Fatal {
                    status: exit_status::UNHANDLED_EXIT,
                    headline: format!("guest system event {kind} (reset or crash) is not supported"),
                },
            },
            other => Exit::Fatal {
                status: exit_status::UNHANDLED_EXIT,
                headline: format!("unhandled VM exit {other:?}"),
            },
        }
    }
}

/// Up to 8 bytes of an I/O exit's data as a little-endian number.
fn le_value(data: &[u8]) -> u64 {
    data.iter()
        .take(8)
        .enumerate()
        .fold(0, |v, (i, &b)| v | (b as u64) << (8 * i))
}

//! Record and replay: a deterministic execution log of a one-vCPU VM, and
//! reverse execution over it (what gdb's `reverse-stepi` and
//! `reverse-continue` are served from).
//!
//! # Position
//! This host has no PMU (no instruction counter), but single-stepping
//! works (`KVM_GUESTDBG_SINGLESTEP`). While recording, every instruction
//! is one KVM_RUN that ends in a single-step exit, so the position of an
//! event is exact: the number of steps since the recording began
//! (`icount`). An interrupt that KVM delivers on an entry counts as part
//! of the step it was delivered on. One vCPU only: a machine of more is
//! refused ([`check_shape`]).
//!
//! # What the guest can observe that its state does not determine
//! A machine built for recording (`vmdbg-vmm --record`, or `--recordable`
//! to record later) removes the
//! sources that run on host time or arrive on other threads, and the
//! recorder takes each remaining one at an instruction boundary:
//! - **Timer**: no in-kernel PIT (it counts host nanoseconds). The 8254 is
//!   emulated in userspace ([`crate::devices::pit`]) on a virtual clock of
//!   [`NS_PER_INSTRUCTION`] per step; its IRQ 0 edges are raised on the
//!   in-kernel PIC (KVM_IRQ_LINE) at the boundary where they fall due. A
//!   `hlt` with interrupts on and nothing pending moves the clock forward
//!   to the PIT's next edge instead of waiting on the host.
//! - **Interrupt injection**: with no asynchronous line changes left (no
//!   irqfd feeds the PIC in this machine; virtio devices are refused), when
//!   KVM injects a pending PIC interrupt is a function of guest state, so
//!   every step is run the same way and no KVM_GUESTDBG_BLOCKIRQ is needed.
//!   The UART's interrupt is an eventfd the recorder drains after each step
//!   that touched a port (only then can the UART have raised it) and turns
//!   into an IRQ 4 edge. Single-stepping is re-armed (KVM_SET_GUEST_DEBUG,
//!   as costly as the step) only before an entry that can deliver an
//!   interrupt or exception — this host pushes the trap flag into the
//!   frame of an interrupt delivered on the first entry after arming, so
//!   arming must follow guest state, not how the steps were grouped:
//!   interrupts on with an unmasked PIC request, an event waiting for
//!   (re)injection (KVM's synced vCPU events), and always once the guest
//!   enables its local APIC or an IOAPIC pin (checked at checkpoints,
//!   whose states a replay has too). Measured: rr.elf recorded in 0.78 s
//!   against 1.38 s arming every step. Left open: an APIC interrupt
//!   delivered between the guest enabling its APIC and the next checkpoint
//!   goes unarmed in the recording and in its replays alike, except where
//!   a replay's restore or a new drive arms anyway; there it diverges, and
//!   is reported as a divergence.
//! - **Serial input** from the host is queued and put into the UART's FIFO
//!   at a boundary, logged as (icount, bytes); a replay delivers it from
//!   the log.
//! - **Port and MMIO reads** are logged with their values; a replay re-runs
//!   the (deterministic) devices and checks each value against the log.
//! - **RDTSC, RDTSCP, RDRAND, RDSEED** are not trapped by KVM: the
//!   instruction at each new RIP is decoded ([`decode`], cached per RIP)
//!   and after one of these the general registers are logged; a replay
//!   writes them back.
//! - **CPUID** is deterministic: the same VMM gives the same table.
//! - **LAPIC timer / TSC deadline** run in the kernel on host time and
//!   cannot be made deterministic here: a guest that arms one stops the
//!   recording with an error naming it (checked at every checkpoint).
//!
//! # Checkpoints and reverse execution
//! Every `interval` instructions (default [`DEFAULT_INTERVAL`]) the
//! recorder keeps a [`checkpoint`]: the machine's state and the pages
//! written since the previous one. Going to any position restores the
//! nearest checkpoint at or before it and single-steps forward, replaying
//! the log. `reverse-stepi` is going to `icount - 1`; `reverse-continue`
//! searches back in stretches (one checkpoint interval, then doubling up
//! to 64, so a long search restores a checkpoint per stretch, not per
//! interval; each stretch is replayed once, forward) for the last breakpoint
//! address reached or watched write made strictly before now, and stops at
//! it (for a watchpoint: at the writing instruction, before it runs, as gdb
//! expects); with none it stops at the beginning (`replaylog:begin`).
//! Running forward behind the live end replays and stops at the end
//! (`replaylog:end`), as gdb's own `record full` does; a run from the end
//! records on. Serial output is muted while replaying.
//!
//! # Divergence
//! Every log entry carries its icount, RIP and a CRC of the registers; a
//! replay that meets a different read, value, position or register digest,
//! or misses an entry, stops with an error that names them
//! ([`Stop::Diverged`]) instead of going on in a wrong state.
//! `VMDBG_RECORD_TAMPER=N` flips the low bit of the N-th logged read as it
//! is recorded, so tests can force one.
//!
//! # Starting and stopping on a running VM
//! A recording needs a machine whose timer and interrupts it can own, and
//! KVM's in-kernel PIT cannot be taken over mid-run (it counts host time
//! and its state is not the userspace PIT's). So the choice is made when
//! the machine is built: `vmdbg-vmm --recordable` builds it as `--record`
//! does (one vCPU, the userspace PIT, no irqfd behind the UART, no virtio
//! devices) but records nothing: [`live`]'s ticker runs the PIT on host
//! time and raises its interrupts, and the vCPU runs free at full speed.
//! Then, through the control API (Firecracker's shape: JSON bodies, 204,
//! or 400 with `fault_message`):
//! - `PUT /vmdbg/recording {"action":"start"}` (optionally
//!   `"checkpoint_interval": N`) pauses the vCPU at an exit (the API
//!   pauses a VM it let run and resumes it after; under gdb the VM must be
//!   stopped), stops the ticker (raising what is due, freezing the clock),
//!   puts a vCPU halted in KVM back on its `hlt`, and takes checkpoint 0
//!   there: the full machine state and a full copy of memory, as at boot.
//!   Position 0 is this moment: gdb's reverse-continue stops there with
//!   `replaylog:begin`, not at boot.
//! - `{"action":"save","path":FILE}` writes [`file`](mod@file)'s format, which
//!   always carries checkpoint 0 whole, so a recording started mid-run
//!   replays in a fresh process (`--replay FILE`) like one from boot.
//! - `{"action":"stop"}` mirrors gdb's `record stop`: the log and the
//!   checkpoints are dropped and the machine runs live on from the
//!   position it is at (a stop behind the recorded end discards the rest,
//!   as gdb does, except host serial input logged after that position:
//!   it goes back to the input queue, so nothing typed is lost). Keeping the history for reverse debugging while the
//!   machine runs live would be a history with a gap: the live run's
//!   inputs are not logged, so nothing after it could be replayed. Save
//!   first to keep it.
//! - `GET /vmdbg/recording` says whether a recording is on, since when
//!   (`started`: boot or running, `started_unix_ms`), instructions
//!   recorded and log entries and bytes ([`Progress`], readable while the
//!   vCPU runs), and where it is when the VM is stopped.
//!
//! Starting on a machine not built for recording is refused with a
//! message naming `--recordable`. gdb's own `record` command is not
//! involved: gdb's `record full` records locally, by single-stepping the
//! target itself, and has no remote packet to ask a stub to record.
//!
//! Not covered: gdb's writes to registers and memory are refused while a
//! recording is on (they would not be in the log); the VMM's own writes to
//! guest memory are not tracked (this machine has no virtio devices).

pub mod checkpoint;
pub mod decode;
pub mod file;
pub mod live;
pub mod log;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::vm::GuestMemoryMmap;
use kvm_bindings::{kvm_guest_debug, kvm_irqchip, kvm_regs, KVM_GUESTDBG_ENABLE};
use kvm_ioctls::{VcpuFd, VmFd};
use vm_memory::{Bytes, GuestAddress};

use self::checkpoint::{Checkpoint, MachineState, MemoryHistory};
use self::decode::Kind;
use self::log::{Entry, Event};
use crate::devices::pit::{Pit, VirtualClock};
use crate::devices::serial::SerialDevice;
use crate::devices::{lock_device, Persist};
use crate::error::{Error, Result};
use crate::vcpu::state::VcpuState;
use crate::vcpu::{DriveJob, IoRead, RunExit, VcpuEvent, VcpuIo, VmEnd};
use crate::vm::{DeviceKind, KvmVmState, MachineShape, Vm};

/// Virtual time per instruction: a 1 GHz-like machine would be 1 ns; this
/// makes a 1 kHz PIT tick every 1,000 instructions, so timer interrupts
/// are frequent enough to matter in short recordings.
pub const NS_PER_INSTRUCTION: u64 = 1_000;
/// Instructions between checkpoints. A single-step costs ~80–150 µs on
/// this host's nested KVM and a checkpoint about as much as a few dozen
/// steps (~16 KiB each plus the pages written), so 250 keeps a reverse
/// step to ~125 replayed instructions on average for a few per cent of
/// recording time (measured: intervals of 50, 200 and 2,000 recorded
/// rr.elf in 17.2, 15.9 and 15.9 s, 1,000,000 in 13.9 s).
pub const DEFAULT_INTERVAL: u64 = 250;
/// The most checkpoint intervals a reverse-continue replays in one
/// stretch before looking at what it found.
const MAX_SEARCH_INTERVALS: usize = 64;
const COM1_IRQ: u32 = crate::devices::serial::COM1_IRQ;
const KVM_GUESTDBG_SINGLESTEP: u32 = kvm_bindings::KVM_GUESTDBG_SINGLESTEP;
const RFLAGS_IF: u64 = 1 << 9;

pub type Shared = Arc<Mutex<Recorder>>;

/// How a user gets a recording, for messages that find none.
pub const HOW_TO_RECORD: &str = "start vmdbg-vmm with --record (from boot), or with --recordable and then PUT /vmdbg/recording {\"action\": \"start\"} on its control API";

/// Refuses a machine a recording cannot make deterministic.
pub fn check_shape(shape: &MachineShape) -> Result<()> {
    if shape.vcpus != 1 {
        return Err(Error::Record(format!(
            "recording needs exactly one vCPU (this VM has {}); start it with --cpus 1",
            shape.vcpus
        )));
    }
    if let Some(d) = shape
        .devices
        .iter()
        .find(|d| matches!(d, DeviceKind::Block { .. } | DeviceKind::Vsock { .. }))
    {
        return Err(Error::Record(format!(
            "recording does not support virtio devices yet ({d:?}): they write guest memory from host threads; drop --disk/--vsock-uds"
        )));
    }
    Ok(())
}

/// What a drive of the vCPU is to reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Goal {
    /// Forward: one instruction (`step`) or until a breakpoint, watchpoint
    /// or pause. `stop_at_end`: a replay stops at the live end rather than
    /// recording on.
    Run {
        step: bool,
        /// gdb's range stepping: with `step`, steps on while the pc stays
        /// in `[start, end)`.
        range: Option<(u64, u64)>,
    },
    /// To exactly this position.
    Goto(u64),
    /// Forward to this position executing every instruction (no jump to a
    /// later checkpoint): a replay whose observations are all checked.
    ReplayTo(u64),
    ReverseStep,
    ReverseContinue,
}

/// A watched guest range.
#[derive(Clone, Debug)]
pub struct Watch {
    /// As the debugger gave it (reported back on a hit).
    pub addr: u64,
    pub gpa: u64,
    pub len: usize,
}

/// Where a drive stops besides its goal.
#[derive(Clone, Debug, Default)]
pub struct StopAt {
    pub breakpoints: Vec<u64>,
    pub watches: Vec<Watch>,
    /// A replay going forward stops at the live end (gdb); otherwise it
    /// records on (the guest running free).
    pub stop_at_end: bool,
}

/// How a drive ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// A step, a reverse step or a goto reached its position.
    Reached,
    Breakpoint {
        addr: u64,
    },
    Watch {
        addr: u64,
    },
    /// At the first recorded position.
    Begin,
    /// At the last recorded position (a replay of a file, or gdb replaying
    /// forward).
    End,
    Diverged(String),
    /// The recording cannot go on (a LAPIC timer, a KVM error).
    Failed(String),
    /// The owner asked the vCPU to pause.
    Paused,
}

/// Counters for `monitor record status` and the benchmarks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub steps_replayed: u64,
    pub restores: u64,
    pub pages_restored: u64,
}

/// What `GET /vmdbg/recording` shows while the vCPU runs (and holds the
/// recorder): updated as the recording goes.
#[derive(Debug, Default)]
pub struct Progress {
    /// Wall-clock start, milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// Started on a running VM (the API) rather than at boot.
    pub mid_run: bool,
    /// Instructions recorded.
    pub recorded: AtomicU64,
    pub log_entries: AtomicU64,
    /// The log's size as a recording file's JSON keeps it.
    pub log_bytes: AtomicU64,
}

impl Progress {
    fn new(mid_run: bool) -> Self {
        Self {
            started_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            mid_run,
            ..Self::default()
        }
    }
}

pub struct Recorder {
    pub progress: Arc<Progress>,
    /// Instructions since the recording began.
    pub icount: u64,
    /// The furthest position recorded.
    pub end: u64,
    /// The furthest position this process has executed: the guest's
    /// output before it was seen already and is muted on re-execution.
    shown: u64,
    /// Whether positions past `end` can be recorded (a live VM) or not (a
    /// recording read from a file).
    pub live: bool,
    pub log: Vec<Entry>,
    /// The next log entry a replay meets.
    cursor: usize,
    pub interval: u64,
    checkpoints: Vec<Checkpoint>,
    /// The checkpoint the machine was last at.
    at_checkpoint: usize,
    memory: MemoryHistory,
    vm_fd: VmFd,
    mem: GuestMemoryMmap,
    serial: Arc<Mutex<SerialDevice>>,
    pit: Arc<Mutex<Pit>>,
    clock: VirtualClock,
    serial_irq: vmm_sys_util::eventfd::EventFd,
    serial_input: Arc<Mutex<std::collections::VecDeque<u8>>>,
    serial_muted: Arc<std::sync::atomic::AtomicBool>,
    state_keys: (kvm_bindings::CpuId, Vec<u32>, bool),
    kinds: HashMap<u64, Kind>,
    /// Registers before the next step, when known.
    regs: Option<kvm_regs>,
    /// Set once a replay has diverged: the machine state is not trusted.
    pub diverged: Option<String>,
    /// CRC of what the guest observed (reads, input, interrupt edges) from
    /// `digest_from` to `icount`: equal for equal executions.
    observed: crc32fast::Hasher,
    pub digest_from: u64,
    tamper: Option<usize>,
    pub stats: Stats,
    /// KVM copies the registers into the run structure at every exit
    /// (KVM_CAP_SYNC_REGS): one ioctl per step fewer than KVM_GET_REGS.
    sync_regs: bool,
    /// ... and the pending events, which [`Recorder::must_arm`] reads.
    sync_events: bool,
    /// An interrupt was raised, or the guest touched a port (an unmask or
    /// an EOI may uncover one), and the PIC has not been seen without a
    /// request since.
    irq_outstanding: bool,
    /// Arm before every step: the guest enabled its local APIC or unmasked
    /// an IOAPIC pin, whose interrupts the PIC check does not see. Decided
    /// from checkpoint states, so a replay decides as the recording did.
    arm_always: bool,
}

/// The devices and handles a recorder takes from a machine built for
/// recording.
fn parts(vm: &Vm) -> Result<&crate::vm::RecordableDevices> {
    vm.devices.recordable.as_ref().ok_or_else(|| {
        Error::Record(
            "this VM was not built for recording: start vmdbg-vmm with --recordable (to start recording later through the API) or --record (from boot)".into(),
        )
    })
}

/// Captures the whole machine state of a stopped VM from the owner's side.
fn capture(vm: &Vm, clock_ns: u64) -> Result<MachineState> {
    let p = parts(vm)?;
    Ok(MachineState {
        vcpu: vm
            .save_vcpus()?
            .pop()
            .ok_or_else(|| Error::Record("no vCPU".into()))?,
        kvm: KvmVmState::save(vm.vm_fd(), false)?,
        serial: lock_device(&vm.devices.serial).save(),
        pit: lock_device(&p.pit).save(),
        clock_ns,
    })
}

impl Recorder {
    fn new(
        vm: &Vm,
        memory: MemoryHistory,
        first: MachineState,
        interval: u64,
        progress: Arc<Progress>,
    ) -> Result<Self> {
        let p = parts(vm)?;
        vm.log_dirty_pages(true)?;
        vm.take_dirty_log()?;
        let sync = vm
            .vm_fd()
            .check_extension_raw(kvm_bindings::KVM_CAP_SYNC_REGS.into()) as u32;
        let arm_always = apic_in_use(&first);
        Ok(Self {
            progress,
            icount: 0,
            end: 0,
            shown: 0,
            live: true,
            log: Vec::new(),
            cursor: 0,
            interval: interval.max(1),
            checkpoints: vec![Checkpoint {
                icount: 0,
                state: first,
                log_len: 0,
                written: Vec::new(),
            }],
            at_checkpoint: 0,
            memory,
            vm_fd: vm.vm_fd_dup()?,
            mem: vm.mem.clone(),
            serial: vm.devices.serial.clone(),
            pit: p.pit.clone(),
            clock: p.clock.clone(),
            serial_irq: p
                .serial_irq
                .try_clone()
                .map_err(|e| Error::Record(format!("eventfd: {e}")))?,
            serial_input: p.serial_input.clone(),
            serial_muted: p.serial_muted.clone(),
            state_keys: vm.vcpu_state_keys(),
            kinds: HashMap::new(),
            regs: None,
            diverged: None,
            observed: crc32fast::Hasher::new(),
            digest_from: 0,
            tamper: std::env::var("VMDBG_RECORD_TAMPER")
                .ok()
                .and_then(|v| v.parse().ok()),
            stats: Stats::default(),
            sync_regs: sync & kvm_bindings::KVM_SYNC_X86_REGS != 0,
            sync_events: sync & kvm_bindings::KVM_SYNC_X86_EVENTS != 0,
            irq_outstanding: true,
            arm_always,
        })
    }

    pub fn checkpoint_count(&self) -> usize {
        self.checkpoints.len()
    }

    pub fn memory_kept(&self) -> usize {
        self.memory.bytes_kept
    }

    pub fn digest(&self) -> u32 {
        self.observed.clone().finalize()
    }

    /// The recording's beginning as a file keeps it.
    pub fn first_state(&self) -> &MachineState {
        &self.checkpoints[0].state
    }

    pub fn initial_memory(&self) -> &[u8] {
        self.memory.initial()
    }

    /// Host serial input the log delivers after the current position.
    fn input_after_cursor(&self) -> Vec<u8> {
        self.log[self.cursor.min(self.log.len())..]
            .iter()
            .filter_map(|e| match &e.event {
                Event::SerialIn { bytes } => Some(bytes.as_slice()),
                _ => None,
            })
            .flatten()
            .copied()
            .collect()
    }

    fn observe(&mut self, what: &[u64]) {
        for v in what {
            self.observed.update(&v.to_le_bytes());
        }
    }

    fn regs(&mut self, fd: &VcpuFd) -> Result<kvm_regs> {
        if let Some(r) = self.regs {
            return Ok(r);
        }
        let r = fd.get_regs().map_err(Error::kvm("KVM_GET_REGS"))?;
        self.regs = Some(r);
        Ok(r)
    }

    fn kind_at(&mut self, fd: &VcpuFd, rip: u64) -> Result<Kind> {
        if let Some(k) = self.kinds.get(&rip) {
            return Ok(*k);
        }
        let s = fd.get_sregs().map_err(Error::kvm("KVM_GET_SREGS"))?;
        let mode = crate::debug::paging::PagingMode::from(&s);
        let mut bytes = [0u8; 15];
        let mut got = 0;
        while got < bytes.len() {
            let Ok(t) = mode.translate(&self.mem, rip + got as u64) else {
                break;
            };
            let n = (t.bytes_left_in_page() as usize).min(bytes.len() - got);
            if self
                .mem
                .read_slice(&mut bytes[got..got + n], GuestAddress(t.gpa))
                .is_err()
            {
                break;
            }
            got += n;
        }
        let kind = decode::classify(&bytes[..got]);
        self.kinds.insert(rip, kind);
        Ok(kind)
    }

    fn pulse(&mut self, irq: u32) -> Result<()> {
        self.vm_fd
            .set_irq_line(irq, true)
            .and_then(|()| self.vm_fd.set_irq_line(irq, false))
            .map_err(Error::kvm("KVM_IRQ_LINE"))?;
        self.irq_outstanding = true;
        self.observe(&[self.icount, 0x1e0 + irq as u64]);
        Ok(())
    }

    /// Raises IRQ 4 if the UART asked for its interrupt since last time.
    fn serial_interrupt(&mut self) -> Result<()> {
        if self.serial_irq.read().is_ok() {
            self.pulse(COM1_IRQ)?;
        }
        Ok(())
    }

    fn master_pic(&self) -> Result<kvm_bindings::kvm_pic_state> {
        let mut chip = kvm_irqchip {
            chip_id: 0,
            ..Default::default()
        };
        self.vm_fd
            .get_irqchip(&mut chip)
            .map_err(Error::kvm("KVM_GET_IRQCHIP"))?;
        // SAFETY: chip 0 is the master PIC, whose state is `pic`.
        Ok(unsafe { chip.chip.pic })
    }

    /// Whether the master PIC has an unmasked request it would deliver,
    /// and its mask.
    fn pic_state(&self) -> Result<(bool, u8)> {
        let pic = self.master_pic()?;
        let requests = pic.irr & !pic.imr;
        if requests == 0 {
            return Ok((false, pic.imr));
        }
        let highest = requests.trailing_zeros();
        Ok((pic.isr == 0 || highest < pic.isr.trailing_zeros(), pic.imr))
    }

    /// Whether the next entry can deliver an interrupt or exception, so
    /// single-stepping must be armed before it: always while the guest
    /// uses its local APIC or IOAPIC ([`apic_in_use`]) or KVM cannot share
    /// the pending events; else when an event waits to be (re)injected,
    /// or interrupts are on and the master PIC has an unmasked request.
    fn must_arm(&mut self, fd: &VcpuFd, regs: &kvm_regs) -> Result<bool> {
        if self.arm_always || !self.sync_events || !self.sync_regs {
            return Ok(true);
        }
        // From the last exit: stale right after a restore or a drive
        // start, which is why those set `irq_outstanding` and arm.
        let e = fd.sync_regs().events;
        let waiting = e.interrupt.injected != 0
            || e.exception.injected != 0
            || e.exception.pending != 0
            || e.nmi.injected != 0
            || e.nmi.pending != 0;
        if waiting || !self.irq_outstanding || regs.rflags & RFLAGS_IF == 0 {
            return Ok(waiting);
        }
        // Any unmasked request, whatever its priority against the one in
        // service: arming once too often costs only time.
        let pic = self.master_pic()?;
        let requests = pic.irr & !pic.imr;
        if requests == 0 {
            self.irq_outstanding = false;
        }
        Ok(requests != 0)
    }

    fn replaying(&self) -> bool {
        self.icount < self.end
    }

    fn diverge(&mut self, why: String) -> Stop {
        let rip = self.regs.map(|r| r.rip).unwrap_or(0);
        let msg = format!(
            "replay diverged at icount {} (rip {rip:#x}): {why}",
            self.icount
        );
        eprintln!("vmdbg-vmm: {msg}");
        self.diverged = Some(msg.clone());
        Stop::Diverged(msg)
    }

    /// Logs `event` (recording) or checks it against the log (replay).
    fn meet(&mut self, event: Event, regs: &kvm_regs) -> std::result::Result<Event, Stop> {
        let entry = Entry {
            icount: self.icount,
            rip: regs.rip,
            digest: log::digest(regs),
            event,
        };
        if !self.replaying() {
            let mut entry = entry;
            if self.tamper == Some(self.log.len()) {
                if let Event::PortIn { value, .. } | Event::MmioRead { value, .. } =
                    &mut entry.event
                {
                    *value ^= 1;
                }
            }
            let bytes = serde_json::to_vec(&entry).map_or(0, |j| j.len() as u64 + 1);
            self.progress.log_bytes.fetch_add(bytes, Ordering::Relaxed);
            self.progress.log_entries.fetch_add(1, Ordering::Relaxed);
            self.log.push(entry.clone());
            self.cursor = self.log.len();
            return Ok(entry.event);
        }
        let Some(want) = self.log.get(self.cursor).cloned() else {
            return Err(self.diverge(format!(
                "the guest made {} where the log has nothing more",
                log::describe(&entry.event)
            )));
        };
        let same_kind = std::mem::discriminant(&want.event) == std::mem::discriminant(&entry.event);
        let matches = want.icount == entry.icount
            && want.rip == entry.rip
            && want.digest == entry.digest
            && (want.event == entry.event
                || matches!(want.event, Event::HostValue { .. }) && same_kind);
        if !matches {
            return Err(self.diverge(format!(
                "expected {} at icount {} rip {:#x} (registers {:#010x}), got {} at rip {:#x} (registers {:#010x})",
                log::describe(&want.event),
                want.icount,
                want.rip,
                want.digest,
                log::describe(&entry.event),
                entry.rip,
                entry.digest
            )));
        }
        self.cursor += 1;
        Ok(want.event)
    }

    /// At a boundary: passes or takes a checkpoint.
    fn checkpoint_boundary(&mut self, fd: &VcpuFd) -> std::result::Result<(), Stop> {
        let next = self.at_checkpoint + 1;
        if let Some(c) = self.checkpoints.get(next) {
            if c.icount == self.icount {
                self.arm_always = apic_in_use(&c.state);
                self.memory
                    .passed(&self.vm_fd, &self.mem)
                    .map_err(|e| Stop::Failed(e.to_string()))?;
                self.at_checkpoint = next;
            }
            return Ok(());
        }
        let last = self.checkpoints.last().expect("checkpoint 0").icount;
        if self.icount == last || self.icount % self.interval != 0 {
            return Ok(());
        }
        let fail = |e: Error| Stop::Failed(e.to_string());
        let (cpuid, msrs, xcrs) = &self.state_keys;
        let vcpu = VcpuState::save(fd, cpuid, msrs, *xcrs).map_err(fail)?;
        if let Some(why) = lapic_timer_armed(&vcpu) {
            let msg = format!(
                "recording stopped at icount {}: {why}; KVM runs it on host time, which a replay cannot reproduce (use the PIT)",
                self.icount
            );
            eprintln!("vmdbg-vmm: {msg}");
            return Err(Stop::Failed(msg));
        }
        let state = MachineState {
            vcpu,
            kvm: KvmVmState::save(&self.vm_fd, false).map_err(fail)?,
            serial: lock_device(&self.serial).save(),
            pit: lock_device(&self.pit).save(),
            clock_ns: self.clock.now_ns(),
        };
        self.arm_always = apic_in_use(&state);
        let index = self.checkpoints.len();
        let written = self
            .memory
            .take(index, &self.vm_fd, &self.mem)
            .map_err(fail)?;
        self.checkpoints.push(Checkpoint {
            icount: self.icount,
            state,
            log_len: self.cursor,
            written,
        });
        self.at_checkpoint = index;
        Ok(())
    }

    /// Puts the machine at checkpoint `index`.
    fn restore(&mut self, fd: &VcpuFd, index: usize) -> Result<()> {
        self.stats.restores += 1;
        self.stats.pages_restored += self.memory.rewind(
            self.at_checkpoint,
            index,
            &self.checkpoints,
            &self.vm_fd,
            &self.mem,
        )? as u64;
        let c = &self.checkpoints[index];
        c.state.kvm.restore(&self.vm_fd)?;
        c.state.vcpu.restore(fd, false)?;
        self.arm_always = apic_in_use(&c.state);
        self.irq_outstanding = true;
        lock_device(&self.serial)
            .restore(&c.state.serial)
            .map_err(Error::Record)?;
        lock_device(&self.pit)
            .restore(&c.state.pit)
            .map_err(Error::Record)?;
        self.clock.set_ns(c.state.clock_ns);
        let _ = self.serial_irq.read();
        self.icount = c.icount;
        self.cursor = c.log_len;
        self.at_checkpoint = index;
        self.regs = None;
        self.observed = crc32fast::Hasher::new();
        self.digest_from = self.icount;
        enable_stepping(fd)?;
        Ok(())
    }

    /// The last checkpoint at or before `icount`.
    fn checkpoint_before(&self, icount: u64) -> usize {
        self.checkpoints
            .partition_point(|c| c.icount <= icount)
            .saturating_sub(1)
    }

    /// Executes one instruction, recording or replaying it. `Ok(Some)`
    /// when the guest ended the VM.
    fn step(&mut self, io: &mut VcpuIo) -> std::result::Result<Option<VmEnd>, Stop> {
        let fail = |e: Error| Stop::Failed(e.to_string());
        self.checkpoint_boundary(io.fd())?;
        let mut regs = self.regs(io.fd()).map_err(fail)?;
        let replaying = self.replaying();
        self.serial_muted
            .store(self.icount < self.shown, Ordering::Relaxed);

        // Input at this boundary: from the log, or from the host queue.
        // Only input and the guest's own port accesses touch the UART
        // (the live ticker is stopped), so its interrupt is looked for
        // only after them.
        let mut input = false;
        if replaying {
            while let Some(Entry {
                icount,
                event: Event::SerialIn { .. },
                ..
            }) = self.log.get(self.cursor)
            {
                if *icount != self.icount {
                    break;
                }
                let Event::SerialIn { bytes } = self.log[self.cursor].event.clone() else {
                    unreachable!()
                };
                self.meet(
                    Event::SerialIn {
                        bytes: bytes.clone(),
                    },
                    &regs,
                )?;
                lock_device(&self.serial).enqueue(&bytes);
                self.observe(&[self.icount, 0x5e, bytes.len() as u64]);
                input = true;
            }
        } else {
            input = self.take_host_input(&regs)?;
        }
        if input {
            self.serial_interrupt().map_err(fail)?;
        }
        if self.irq0_due() {
            self.pulse(0).map_err(fail)?;
        }
        let kind = self.kind_at(io.fd(), regs.rip).map_err(fail)?;
        if kind == Kind::Hlt && regs.rflags & RFLAGS_IF != 0 {
            loop {
                let (pending, masked) = self.pic_state().map_err(fail)?;
                if pending {
                    break;
                }
                let next_tick = lock_device(&self.pit).next_irq0_ns();
                if let (Some(at), false) = (next_tick, masked & 1 != 0) {
                    // Nothing else can wake it first: time jumps to the tick.
                    self.clock.set_ns(at.max(self.clock.now_ns()));
                    if self.irq0_due() {
                        self.pulse(0).map_err(fail)?;
                    }
                    continue;
                }
                if replaying {
                    return Err(self.diverge(
                        "hlt with nothing to wake it, where the recording went on".into(),
                    ));
                }
                // Only the host's serial input can wake it: wait for that.
                if io.take_pause() {
                    return Err(Stop::Paused);
                }
                if self.take_host_input(&regs)? {
                    self.serial_interrupt().map_err(fail)?;
                } else {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
            }
        }

        if kind == Kind::Hlt && regs.rflags & RFLAGS_IF != 0 {
            // An interrupt is pending: the hlt would end at once. It is
            // completed here rather than run, because a vCPU that KVM wakes
            // from a halt gets its interrupt without the single-step flag,
            // and the handler would then run unstepped.
            self.complete_hlt(io.fd(), &mut regs).map_err(fail)?;
            self.icount += 1;
            self.clock.set_ns(self.clock.now_ns() + NS_PER_INSTRUCTION);
            self.regs = Some(regs);
            return self.after_step(replaying, false);
        }
        // On this host an interrupt that KVM delivers on the first entry
        // after arming pushes the trap flag in its frame, and on later
        // entries does not, so live and replayed runs must arm before
        // every entry that can deliver one, whatever drives the steps were
        // grouped in. Arming costs as much as the step itself, so it is
        // done only there (see `must_arm`).
        if self.must_arm(io.fd(), &regs).map_err(fail)? {
            enable_stepping(io.fd()).map_err(fail)?;
        }
        tracing::trace!(
            "step icount {} rip {:#x} {kind:?} if {} clock {}",
            self.icount,
            regs.rip,
            regs.rflags & RFLAGS_IF != 0,
            self.clock.now_ns()
        );
        // The instruction itself, with its reads.
        let mut reads = Vec::new();
        let mut exits = false;
        let end = loop {
            match io.run_once(&mut |r| reads.push(r)) {
                RunExit::Continue => exits = true,
                RunExit::Debug(_) => break None,
                RunExit::End(end) => break Some(end),
            }
        };
        // A port write may have unmasked or acknowledged an interrupt.
        self.irq_outstanding |= exits;
        for r in reads {
            let event = match r {
                IoRead::Port { port, value } => Event::PortIn { port, value },
                IoRead::Mmio { addr, value } => Event::MmioRead { addr, value },
            };
            let (a, b) = match &event {
                Event::PortIn { port, value } => (*port as u64, *value),
                Event::MmioRead { addr, value } => (*addr, *value),
                _ => (0, 0),
            };
            self.observe(&[self.icount, a, b]);
            self.meet(event, &regs)?;
        }
        if end.is_some() {
            return Ok(end);
        }
        let before = regs;
        regs = if self.sync_regs {
            io.fd().sync_regs().regs
        } else {
            io.fd()
                .get_regs()
                .map_err(|e| fail(Error::kvm("KVM_GET_REGS")(e)))?
        };
        if kind == Kind::HostValue {
            let logged = self.meet(
                Event::HostValue {
                    regs: log::gprs(&regs),
                },
                &before,
            )?;
            if let Event::HostValue { regs: values } = logged {
                log::set_gprs(&mut regs, &values);
                io.fd()
                    .set_regs(&regs)
                    .map_err(|e| fail(Error::kvm("KVM_SET_REGS")(e)))?;
                enable_stepping(io.fd()).map_err(fail)?;
            }
        }
        self.icount += 1;
        self.clock.set_ns(self.clock.now_ns() + NS_PER_INSTRUCTION);
        self.regs = Some(regs);
        self.after_step(replaying, exits)
    }

    /// What follows every step: the UART's interrupt (when the step made
    /// an I/O exit), the recorded end, and a replay's check that no logged
    /// entry was skipped.
    fn after_step(
        &mut self,
        replaying: bool,
        io_exits: bool,
    ) -> std::result::Result<Option<VmEnd>, Stop> {
        if io_exits {
            self.serial_interrupt()
                .map_err(|e| Stop::Failed(e.to_string()))?;
        }
        if self.icount > self.end {
            self.end = self.icount;
            self.progress.recorded.store(self.end, Ordering::Relaxed);
        }
        self.shown = self.shown.max(self.icount);
        if replaying {
            self.stats.steps_replayed += 1;
            if let Some(e) = self.log.get(self.cursor) {
                if e.icount < self.icount {
                    let e = e.clone();
                    return Err(self.diverge(format!(
                        "the log has {} at icount {} rip {:#x} that the replay never made",
                        log::describe(&e.event),
                        e.icount,
                        e.rip
                    )));
                }
            }
        }
        Ok(None)
    }

    /// Executes a `hlt` whose wake-up interrupt is already pending: the
    /// instruction pointer moves past it and the interrupt shadow of a
    /// preceding `sti` ends, as the halt would end it.
    fn complete_hlt(&mut self, fd: &VcpuFd, regs: &mut kvm_regs) -> Result<()> {
        let mut events = fd
            .get_vcpu_events()
            .map_err(Error::kvm("KVM_GET_VCPU_EVENTS"))?;
        events.interrupt.shadow = 0;
        events.flags |= kvm_bindings::KVM_VCPUEVENT_VALID_SHADOW;
        fd.set_vcpu_events(&events)
            .map_err(Error::kvm("KVM_SET_VCPU_EVENTS"))?;
        regs.rip += 1;
        fd.set_regs(regs).map_err(Error::kvm("KVM_SET_REGS"))?;
        enable_stepping(fd)
    }

    fn irq0_due(&mut self) -> bool {
        lock_device(&self.pit).irq0_due()
    }

    /// Moves host serial input the UART has room for into it, logged.
    fn take_host_input(&mut self, regs: &kvm_regs) -> std::result::Result<bool, Stop> {
        let bytes: Vec<u8> = {
            let mut queue = lock_device(&self.serial_input);
            if queue.is_empty() {
                return Ok(false);
            }
            let room = lock_device(&self.serial).fifo_room().min(queue.len());
            queue.drain(..room).collect()
        };
        if bytes.is_empty() {
            return Ok(false);
        }
        lock_device(&self.serial).enqueue(&bytes);
        self.observe(&[self.icount, 0x5e, bytes.len() as u64]);
        self.meet(Event::SerialIn { bytes }, regs)?;
        Ok(true)
    }

    /// Steps forward to exactly `target` (replay), no stops on the way.
    fn forward_to(
        &mut self,
        io: &mut VcpuIo,
        target: u64,
    ) -> std::result::Result<Option<VmEnd>, Stop> {
        while self.icount < target {
            if let Some(end) = self.step(io)? {
                return Ok(Some(end));
            }
        }
        Ok(None)
    }

    fn goto(&mut self, io: &mut VcpuIo, target: u64) -> std::result::Result<Option<VmEnd>, Stop> {
        if target > self.end {
            return Err(Stop::Failed(format!(
                "icount {target} is past the end of the recording ({})",
                self.end
            )));
        }
        let nearest = self.checkpoint_before(target);
        if target < self.icount || nearest > self.at_checkpoint {
            self.restore(io.fd(), nearest)
                .map_err(|e| Stop::Failed(e.to_string()))?;
        }
        self.forward_to(io, target)
    }

    fn watched(&self, stops: &StopAt) -> Vec<Vec<u8>> {
        stops
            .watches
            .iter()
            .map(|w| {
                let mut b = vec![0u8; w.len];
                let _ = self.mem.read_slice(&mut b, GuestAddress(w.gpa));
                b
            })
            .collect()
    }

    fn run(
        &mut self,
        io: &mut VcpuIo,
        step: bool,
        range: Option<(u64, u64)>,
        stops: &StopAt,
    ) -> std::result::Result<Option<VmEnd>, Stop> {
        let mut values = self.watched(stops);
        let from_replay = self.replaying();
        let in_range = |rip: u64| range.is_some_and(|(start, end)| (start..end).contains(&rip));
        loop {
            // A range step can loop for ever inside its range: it is
            // paused like a run.
            if (!step || range.is_some()) && io.take_pause() {
                return Err(Stop::Paused);
            }
            if self.icount == self.end && (stops.stop_at_end && from_replay || !self.live) {
                return Err(Stop::End);
            }
            if let Some(end) = self.step(io)? {
                return Ok(Some(end));
            }
            let now = self.watched(stops);
            if let Some(i) = (0..now.len()).find(|&i| now[i] != values[i]) {
                return Err(Stop::Watch {
                    addr: stops.watches[i].addr,
                });
            }
            values = now;
            let rip = self.regs.map(|r| r.rip).unwrap_or(0);
            if stops.breakpoints.contains(&rip) {
                return Err(Stop::Breakpoint { addr: rip });
            }
            if step && !in_range(rip) {
                return Err(Stop::Reached);
            }
        }
    }

    /// The last breakpoint reached or watched write made before now.
    fn reverse_continue(
        &mut self,
        io: &mut VcpuIo,
        stops: &StopAt,
    ) -> std::result::Result<Option<VmEnd>, Stop> {
        let fail = |e: Error| Stop::Failed(e.to_string());
        let mut until = self.icount;
        // Back one checkpoint interval first (a stop close behind is the
        // common case), then twice as many each time, up to
        // MAX_SEARCH_INTERVALS: a long search restores a checkpoint per
        // stretch, not per interval.
        let mut intervals = 1;
        while until > 0 {
            let index = self
                .checkpoint_before(until - 1)
                .saturating_sub(intervals - 1);
            intervals = (intervals * 2).min(MAX_SEARCH_INTERVALS);
            self.restore(io.fd(), index).map_err(fail)?;
            let mut values = self.watched(stops);
            let mut found = None;
            while self.icount < until {
                if io.take_pause() {
                    return Err(Stop::Paused);
                }
                let rip = self.regs(io.fd()).map_err(fail)?.rip;
                if stops.breakpoints.contains(&rip) {
                    found = Some((self.icount, Stop::Breakpoint { addr: rip }));
                }
                if let Some(end) = self.step(io)? {
                    return Ok(Some(end));
                }
                let now = self.watched(stops);
                if let Some(i) = (0..now.len()).find(|&i| now[i] != values[i]) {
                    found = Some((
                        self.icount - 1,
                        Stop::Watch {
                            addr: stops.watches[i].addr,
                        },
                    ));
                }
                values = now;
            }
            if let Some((at, stop)) = found {
                self.goto(io, at)?;
                return Err(stop);
            }
            until = self.checkpoints[index].icount;
        }
        self.goto(io, 0)?;
        Err(Stop::Begin)
    }

    /// Runs the vCPU toward `goal`; the stop it reached.
    fn drive(&mut self, io: &mut VcpuIo, goal: Goal, stops: &StopAt) -> DriveEnd {
        if let Some(why) = &self.diverged {
            return DriveEnd::Stop(Stop::Diverged(why.clone()));
        }
        if let Err(e) = enable_stepping(io.fd()) {
            return DriveEnd::Stop(Stop::Failed(e.to_string()));
        }
        if self.sync_regs {
            io.fd().set_sync_valid_reg(kvm_ioctls::SyncReg::Register);
        }
        if self.sync_events {
            io.fd().set_sync_valid_reg(kvm_ioctls::SyncReg::VcpuEvents);
        }
        // Whatever ran the vCPU since (gdb, a restore) may have left
        // events the synced copy does not show.
        self.irq_outstanding = true;
        let result = match goal {
            Goal::Run { step, range } => self.run(io, step, range, stops),
            Goal::Goto(target) => reached(self.goto(io, target)),
            Goal::ReplayTo(target) if target < self.icount || target > self.end => {
                Err(Stop::Failed(format!(
                    "replay-to {target}: not between the current position {} and the end {}",
                    self.icount, self.end
                )))
            }
            Goal::ReplayTo(target) => reached(self.forward_to(io, target)),
            Goal::ReverseStep if self.icount == 0 => Err(Stop::Begin),
            Goal::ReverseStep => {
                let target = self.icount - 1;
                reached(self.goto(io, target))
            }
            Goal::ReverseContinue => self.reverse_continue(io, stops),
        };
        match result {
            Ok(Some(end)) => DriveEnd::Ended(end),
            Ok(None) => DriveEnd::Stop(Stop::Reached),
            Err(Stop::Paused) => DriveEnd::Paused,
            Err(stop) => DriveEnd::Stop(stop),
        }
    }
}

/// A goto that got there is a stop of its own.
fn reached(
    r: std::result::Result<Option<VmEnd>, Stop>,
) -> std::result::Result<Option<VmEnd>, Stop> {
    match r {
        Ok(None) => Err(Stop::Reached),
        other => other,
    }
}

enum DriveEnd {
    Stop(Stop),
    Paused,
    Ended(VmEnd),
}

/// Arms single-stepping at the current instruction. Needed again after
/// every KVM_SET_REGS: KVM keeps the trap flag only for the RIP it was
/// armed at.
fn enable_stepping(fd: &VcpuFd) -> Result<()> {
    let dbg = kvm_guest_debug {
        control: KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP,
        ..Default::default()
    };
    fd.set_guest_debug(&dbg)
        .map_err(Error::kvm("KVM_SET_GUEST_DEBUG"))
}

/// Whether the guest has software-enabled its local APIC or unmasked an
/// IOAPIC pin: interrupts can then reach the vCPU through the APIC, which
/// [`Recorder::must_arm`]'s PIC check does not see.
fn apic_in_use(state: &MachineState) -> bool {
    const SVR: usize = 0xf0;
    const APIC_SW_ENABLE: u8 = 1 << 0; // bit 8 of SVR, in its second byte
    const REDIR_MASKED: u64 = 1 << 16;
    let svr_high = state.vcpu.lapic.regs[SVR + 1] as u8;
    // SAFETY: chip 2 of the saved irqchips is the IOAPIC.
    let ioapic = unsafe { state.kvm.ioapic.chip.ioapic };
    let pins_unmasked = ioapic.redirtbl.iter().any(|r| {
        // SAFETY: every redirection entry is a plain 64-bit value.
        let bits = unsafe { r.bits };
        bits & REDIR_MASKED == 0
    });
    svr_high & APIC_SW_ENABLE != 0 || pins_unmasked
}

/// Why the guest's local APIC timer makes the recording impossible, if it
/// is armed.
fn lapic_timer_armed(vcpu: &VcpuState) -> Option<String> {
    let reg = |offset: usize| {
        let r = &vcpu.lapic.regs[offset..offset + 4];
        u32::from_le_bytes([r[0] as u8, r[1] as u8, r[2] as u8, r[3] as u8])
    };
    let lvt = reg(0x320);
    if lvt & (1 << 16) != 0 {
        return None;
    }
    let mode = (lvt >> 17) & 3;
    let deadline = vcpu
        .msrs
        .iter()
        .find(|m| m.index == crate::vcpu::state::MSR_IA32_TSC_DEADLINE)
        .map_or(0, |m| m.data);
    match mode {
        2 if deadline != 0 => Some(format!(
            "the guest armed the local APIC timer in TSC-deadline mode (deadline {deadline:#x})"
        )),
        0 | 1 if reg(0x380) != 0 => Some(format!(
            "the guest armed the local APIC timer (LVT timer {lvt:#x}, initial count {})",
            reg(0x380)
        )),
        _ => None,
    }
}

/// Starts recording a stopped VM built for recording, from where it is:
/// at boot (`--record`) or on a VM that has run live (`mid_run`, the
/// control API). The live ticker stops first, so the first checkpoint
/// holds every interrupt edge the guest was owed at this moment.
pub fn start(vm: &mut Vm, interval: u64, mid_run: bool) -> Result<()> {
    if let Some(r) = &vm.recorder {
        let r = lock(r);
        return Err(Error::Record(format!(
            "a recording is already on ({} instructions recorded)",
            r.end
        )));
    }
    parts(vm)?;
    if let Some(ticker) = vm.live.take() {
        ticker.stop();
    }
    let started = (|| {
        leave_halt(vm)?;
        let clock_ns = parts(vm)?.clock.now_ns();
        let first = capture(vm, clock_ns)?;
        if let Some(why) = lapic_timer_armed(&first.vcpu) {
            return Err(Error::Record(format!(
                "cannot record: {why}; KVM runs it on host time, which a replay cannot reproduce (use the PIT)"
            )));
        }
        let memory = MemoryHistory::new(&vm.mem)?;
        let progress = Arc::new(Progress::new(mid_run));
        let recorder = Recorder::new(vm, memory, first, interval, progress.clone())?;
        vm.record_progress = Some(progress);
        vm.recorder = Some(Arc::new(Mutex::new(recorder)));
        Ok(())
    })();
    if started.is_err() && mid_run {
        vm.live = Some(live::Ticker::start(vm)?);
    }
    started
}

/// A vCPU halted in KVM (`hlt` ran live, waiting for an interrupt) is put
/// back on its `hlt`, runnable: the recorder executes halts itself
/// (moving virtual time to the next timer edge), and a vCPU KVM wakes from
/// a halt would take its interrupt unstepped.
fn leave_halt(vm: &Vm) -> Result<()> {
    use kvm_bindings::{KVM_MP_STATE_HALTED, KVM_MP_STATE_RUNNABLE};
    let mem = vm.mem.clone();
    let vcpu = vm.vcpu(0).ok_or_else(|| Error::Record("no vCPU".into()))?;
    vcpu.exec(move |fd| -> Result<()> {
        let mut mp = fd.get_mp_state().map_err(Error::kvm("KVM_GET_MP_STATE"))?;
        if mp.mp_state != KVM_MP_STATE_HALTED {
            return Ok(());
        }
        let mut regs = fd.get_regs().map_err(Error::kvm("KVM_GET_REGS"))?;
        let s = fd.get_sregs().map_err(Error::kvm("KVM_GET_SREGS"))?;
        let mode = crate::debug::paging::PagingMode::from(&s);
        let before = regs.rip.wrapping_sub(1);
        let is_hlt = mode
            .translate(&mem, before)
            .ok()
            .and_then(|t| mem.read_obj::<u8>(GuestAddress(t.gpa)).ok())
            == Some(0xf4);
        if is_hlt {
            regs.rip = before;
            fd.set_regs(&regs).map_err(Error::kvm("KVM_SET_REGS"))?;
        }
        mp.mp_state = KVM_MP_STATE_RUNNABLE;
        fd.set_mp_state(mp).map_err(Error::kvm("KVM_SET_MP_STATE"))
    })?
}

/// Ends the recording of a stopped VM, as gdb's `record stop` does: the
/// log and checkpoints are dropped and the machine goes on live from the
/// position it is at (behind the recorded end, the rest is discarded).
/// Returns how many instructions had been recorded.
pub fn stop(vm: &mut Vm) -> Result<u64> {
    let shared = vm
        .recorder
        .clone()
        .ok_or_else(|| Error::Record("no recording is on".into()))?;
    let (recorded, unread) = {
        let r = lock(&shared);
        if !r.live {
            return Err(Error::Record(
                "this VM replays a recording file: there is no live run to go back to; end it instead".into(),
            ));
        }
        (r.end, r.input_after_cursor())
    };
    let p = parts(vm)?;
    // What the host typed is not the recording's to discard: input logged
    // past this position goes back to the front of the queue.
    {
        let mut queue = lock_device(&p.serial_input);
        for b in unread.into_iter().rev() {
            queue.push_front(b);
        }
    }
    p.serial_muted.store(false, Ordering::Relaxed);
    vm.recorder = None;
    vm.record_progress = None;
    vm.log_dirty_pages(false)?;
    let vcpu = vm.vcpu(0).ok_or_else(|| Error::Record("no vCPU".into()))?;
    vcpu.exec(|fd| {
        fd.clear_sync_valid_reg(kvm_ioctls::SyncReg::Register);
        fd.clear_sync_valid_reg(kvm_ioctls::SyncReg::VcpuEvents);
        fd.set_guest_debug(&kvm_guest_debug::default())
    })?
    .map_err(Error::kvm("KVM_SET_GUEST_DEBUG"))?;
    vm.live = Some(live::Ticker::start(vm)?);
    Ok(recorded)
}

/// The vCPU work that reaches `goal`, reported as the vCPU's next stop.
pub fn job(shared: Shared, goal: Goal, stops: StopAt) -> DriveJob {
    Box::new(move |io: &mut VcpuIo| {
        let vcpu = io.index();
        let mut recorder = shared.lock().unwrap_or_else(|p| p.into_inner());
        match recorder.drive(io, goal, &stops) {
            DriveEnd::Stop(stop) => VcpuEvent::Record { vcpu, stop },
            DriveEnd::Paused => VcpuEvent::Paused { vcpu },
            DriveEnd::Ended(end) => VcpuEvent::VmEnded { vcpu, end },
        }
    })
}

/// Locks the recorder for the owner's side (the vCPU is stopped).
pub fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Recorder> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `goal` on a stopped VM's vCPU and waits for its stop (for monitor
/// commands and tests, which need the result before answering).
pub fn drive_and_wait(vm: &mut Vm, goal: Goal) -> Result<VcpuEvent> {
    let recorder = vm
        .recorder
        .clone()
        .ok_or_else(|| Error::Record("no recording is on".into()))?;
    vm.drive(0, goal, StopAt::default(), &recorder)?;
    vm.wait_event()
        .ok_or_else(|| Error::Record("the vCPU thread has gone".into()))
}

/// Puts a stopped machine built for recording into `state`; `fresh` for
/// vCPUs that have never run.
fn apply_state(vm: &Vm, state: &MachineState, fresh: bool) -> Result<()> {
    let p = parts(vm)?;
    state.kvm.restore(vm.vm_fd())?;
    vm.restore_vcpus(std::slice::from_ref(&state.vcpu), fresh)?;
    lock_device(&vm.devices.serial)
        .restore(&state.serial)
        .map_err(Error::Record)?;
    lock_device(&p.pit)
        .restore(&state.pit)
        .map_err(Error::Record)?;
    p.clock.set_ns(state.clock_ns);
    Ok(())
}

/// `--replay FILE`: a machine at the beginning of a saved recording, with
/// the recording loaded to replay (and nothing past its end).
pub fn open_file(
    path: &std::path::Path,
    serial: &crate::devices::serial::SerialTarget,
) -> Result<Vm> {
    let f = file::load(path)?;
    let mem = crate::vm::anonymous_memory(f.header.shape.mem_bytes)?;
    mem.write_slice(&f.memory, GuestAddress(0))
        .map_err(|e| Error::GuestMemory(format!("loading the recording's memory: {e}")))?;
    let mut vm = Vm::build(&f.header.shape, mem, serial)?;
    vm.boot.mode = f.header.boot_mode;
    vm.boot.rip = f.header.boot_rip;
    apply_state(&vm, &f.header.first, true)?;
    let progress = Arc::new(Progress::new(false));
    progress.recorded.store(f.header.end, Ordering::Relaxed);
    progress
        .log_entries
        .store(f.header.log.len() as u64, Ordering::Relaxed);
    progress.log_bytes.store(
        serde_json::to_vec(&f.header.log).map_or(0, |j| j.len() as u64),
        Ordering::Relaxed,
    );
    let mut r = Recorder::new(
        &vm,
        MemoryHistory::from_image(f.memory),
        f.header.first,
        f.header.interval,
        progress.clone(),
    )?;
    r.log = f.header.log;
    r.end = f.header.end;
    r.live = false;
    vm.record_progress = Some(progress);
    vm.recorder = Some(Arc::new(Mutex::new(r)));
    Ok(vm)
}

/// Saves the VM's recording to `path` (see [`file`](mod@file)).
pub fn save(vm: &Vm, path: &std::path::Path) -> Result<()> {
    let shared = vm
        .recorder
        .as_ref()
        .ok_or_else(|| Error::Record("no recording to save".into()))?;
    file::save(path, &lock(shared), &vm.shape, &vm.boot)
}

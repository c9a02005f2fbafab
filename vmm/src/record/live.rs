//! A machine built for recording while no recording is on: its devices
//! run on host time, as any VM's do, so it can be recorded from any moment
//! ([`super::start`]) without a timer KVM owns.
//!
//! The machine has no in-kernel PIT and no irqfd behind the UART (a
//! recording raises both interrupts itself, at instruction boundaries).
//! Live, one thread ([`Ticker`]) does what the recorder would, on host
//! time: the PIT's clock follows the host's, IRQ 0 is raised when the PIT
//! is due, IRQ 4 when the UART asks for it, and host serial input is moved
//! into the UART as it has room. The vCPU runs free (no single-step); the
//! interrupts arrive asynchronously, which is fine when nothing is logged.
//!
//! Stopping the ticker ([`Ticker::stop`]) raises what is due at that
//! moment and freezes the clock, so the interrupt controller's state then
//! — the first checkpoint of a recording — holds every edge the guest was
//! owed.

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use kvm_ioctls::VmFd;
use vmm_sys_util::eventfd::EventFd;

use crate::devices::lock_device;
use crate::devices::pit::{Pit, VirtualClock};
use crate::devices::serial::SerialDevice;
use crate::error::{Error, Result};
use crate::vm::Vm;

/// How long the ticker sleeps at most when no timer edge is due sooner:
/// the latency of host serial input on a live recordable machine.
const IDLE_WAIT_MS: i32 = 5;
const PIT_IRQ: u32 = 0;

/// What the ticker drives: the devices a recording would.
struct Live {
    vm_fd: VmFd,
    pit: Arc<Mutex<Pit>>,
    clock: VirtualClock,
    serial: Arc<Mutex<SerialDevice>>,
    serial_irq: EventFd,
    serial_input: Arc<Mutex<std::collections::VecDeque<u8>>>,
}

impl Live {
    fn of(vm: &Vm) -> Result<Self> {
        let p = vm.devices.recordable.as_ref().ok_or_else(|| {
            Error::Record("live ticker on a machine not built for recording".into())
        })?;
        Ok(Self {
            vm_fd: vm.vm_fd_dup()?,
            pit: p.pit.clone(),
            clock: p.clock.clone(),
            serial: vm.devices.serial.clone(),
            serial_irq: p
                .serial_irq
                .try_clone()
                .map_err(|e| Error::Record(format!("eventfd: {e}")))?,
            serial_input: p.serial_input.clone(),
        })
    }

    fn pulse(&self, irq: u32) {
        let raised = self
            .vm_fd
            .set_irq_line(irq, true)
            .and_then(|()| self.vm_fd.set_irq_line(irq, false));
        if let Err(e) = raised {
            tracing::warn!("live ticker: KVM_IRQ_LINE {irq}: {e}");
        }
    }

    /// Everything due now: input the UART has room for, its interrupt,
    /// the timer's.
    fn serve(&self) {
        {
            let mut queue = lock_device(&self.serial_input);
            if !queue.is_empty() {
                let mut uart = lock_device(&self.serial);
                let room = uart.fifo_room().min(queue.len());
                let bytes: Vec<u8> = queue.drain(..room).collect();
                uart.enqueue(&bytes);
            }
        }
        if self.serial_irq.read().is_ok() {
            self.pulse(crate::devices::serial::COM1_IRQ);
        }
        if lock_device(&self.pit).irq0_due() {
            self.pulse(PIT_IRQ);
        }
    }

    /// Milliseconds until the timer's next edge, at most [`IDLE_WAIT_MS`].
    fn wait_ms(&self) -> i32 {
        let next = lock_device(&self.pit).next_irq0_ns();
        match next {
            Some(at) => {
                let ns = at.saturating_sub(self.clock.now_ns());
                (ns.div_ceil(1_000_000) as i32).min(IDLE_WAIT_MS)
            }
            None => IDLE_WAIT_MS,
        }
    }
}

/// The thread that runs a recordable machine's devices on host time.
pub struct Ticker {
    quit: EventFd,
    thread: Option<JoinHandle<Live>>,
}

impl Ticker {
    /// Lets the machine's clock follow the host and starts serving its
    /// interrupts. The vCPU must be stopped.
    pub fn start(vm: &Vm) -> Result<Self> {
        let live = Live::of(vm)?;
        live.clock.follow_host(true);
        let quit =
            EventFd::new(libc::EFD_NONBLOCK).map_err(|e| Error::Record(format!("eventfd: {e}")))?;
        let quit_fd = quit
            .try_clone()
            .map_err(|e| Error::Record(format!("eventfd: {e}")))?;
        let thread = std::thread::Builder::new()
            .name("live-ticker".into())
            .spawn(move || {
                crate::seccomp::install(crate::seccomp::Kind::LiveTicker);
                let fds = [live.serial_irq.as_raw_fd(), quit_fd.as_raw_fd()];
                loop {
                    live.serve();
                    let timeout = std::time::Duration::from_millis(live.wait_ms() as u64);
                    match crate::poll::readable(&fds, Some(timeout)) {
                        Ok(ready) if ready[1] => break,
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!("live ticker: poll: {e}");
                            std::thread::sleep(timeout);
                        }
                    }
                }
                live
            })
            .map_err(|e| Error::Record(format!("spawning the live ticker: {e}")))?;
        Ok(Self {
            quit,
            thread: Some(thread),
        })
    }

    /// Ends the thread, raises what is due at this moment and freezes the
    /// clock there. The vCPU must be stopped.
    pub fn stop(mut self) {
        self.end();
    }

    fn end(&mut self) {
        let _ = self.quit.write(1);
        if let Some(thread) = self.thread.take() {
            if let Ok(live) = thread.join() {
                live.clock.follow_host(false);
                live.serve();
            }
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.end();
    }
}

//! The VM: KVM handles, guest memory, the in-kernel interrupt controllers,
//! devices and vCPU threads, plus the all-stop run control the debugger and
//! the plain run loop share.

use std::ffi::CString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kvm_bindings::{
    kvm_pit_config, kvm_userspace_memory_region, KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY,
};
use kvm_ioctls::{Cap, Kvm, VmFd};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;

use crate::boot::{self, BootEntry, EntryMode};
use crate::devices::virtio::{self, block, vsock, MmioTransport, SharedTransport};
use crate::devices::{debug_exit, power, serial, MmioBus, MmioDeviceAt, PioBus};
use crate::error::{Error, Result};
use crate::vcpu::{event_channel, EventSource, RunOptions, VcpuEvent, VcpuHandle};

pub const MAX_VCPUS: usize = 64;

#[derive(Clone, Debug)]
pub struct VmConfig {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    pub mem_bytes: u64,
    pub cpus: usize,
    pub entry: EntryMode,
    pub serial: serial::SerialTarget,
    /// virtio-blk disks, in the order the guest sees them (vda, vdb, ...).
    pub disks: Vec<block::DiskSpec>,
    pub vsock: Option<VsockConfig>,
}

/// A virtio-vsock device bridged to host unix sockets at `uds_path`.
#[derive(Clone, Debug)]
pub struct VsockConfig {
    pub guest_cid: u64,
    pub uds_path: PathBuf,
}

impl VmConfig {
    /// A VM for `kernel` with everything else at its default.
    pub fn new(kernel: PathBuf) -> Self {
        Self {
            kernel,
            initrd: None,
            cmdline: String::new(),
            mem_bytes: 128 << 20,
            cpus: 1,
            entry: EntryMode::Auto,
            serial: serial::SerialTarget::Stdout,
            disks: Vec::new(),
            vsock: None,
        }
    }
}

/// Host-side device threads, stopped and joined when the VM goes away.
struct DeviceThreads {
    stop: Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for DeviceThreads {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// What this host's KVM can do, found by asking it rather than assuming.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostCaps {
    /// KVM_GUESTDBG_BLOCKIRQ: single-steps do not land in interrupt handlers.
    pub block_irq_on_step: bool,
}

pub fn kvm_device_path() -> String {
    std::env::var("VMDBG_KVM_DEVICE").unwrap_or_else(|_| "/dev/kvm".into())
}

/// Opens the KVM device with a message for each way that commonly fails.
pub fn open_kvm() -> Result<Kvm> {
    let path = kvm_device_path();
    let cpath = CString::new(path.clone()).map_err(|_| Error::NoKvm { path: path.clone() })?;
    let kvm = Kvm::new_with_path(&cpath).map_err(|e| match e.errno() {
        libc::ENOENT | libc::ENXIO | libc::ENODEV => Error::NoKvm { path: path.clone() },
        libc::EACCES | libc::EPERM => Error::KvmPermission { path: path.clone() },
        _ => Error::KvmOpen {
            path: path.clone(),
            source: std::io::Error::from_raw_os_error(e.errno()),
        },
    })?;
    let version = kvm.get_api_version();
    if version != 12 {
        return Err(Error::KvmApiVersion(version));
    }
    for (cap, name) in [
        (Cap::Irqchip, "KVM_CAP_IRQCHIP"),
        (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
        (Cap::SetTssAddr, "KVM_CAP_SET_TSS_ADDR"),
        (Cap::Pit2, "KVM_CAP_PIT2"),
        (Cap::Irqfd, "KVM_CAP_IRQFD"),
        (Cap::SetGuestDebug, "KVM_CAP_SET_GUEST_DEBUG"),
    ] {
        if !kvm.check_extension(cap) {
            return Err(Error::KvmCapability(name));
        }
    }
    Ok(kvm)
}

pub fn parse_mem_size(s: &str) -> Result<u64> {
    let bad = |why| Error::BadMemSize(s.to_string(), why);
    let (digits, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: u64 = digits
        .parse()
        .map_err(|_| bad("expected a size like 128M or 1G"))?;
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "M" | "MB" | "MIB" => 20,
        "K" | "KB" | "KIB" => 10,
        "G" | "GB" | "GIB" => 30,
        _ => return Err(bad("unknown unit; use K, M or G")),
    };
    let bytes = n
        .checked_shl(shift)
        .filter(|b| b >> shift == n)
        .ok_or_else(|| bad("too large"))?;
    if bytes < 2 << 20 {
        return Err(bad(
            "at least 2M is needed (boot structures live below 1 MiB, kernels above)",
        ));
    }
    if bytes > boot::layout::MAX_MEM {
        return Err(bad(
            "at most 3G is supported (memory must end below the 32-bit MMIO hole)",
        ));
    }
    Ok(bytes)
}

pub struct Vm {
    // Field order is drop order: vCPU threads stop before the VM goes away.
    vcpus: Vec<VcpuHandle>,
    _device_threads: DeviceThreads,
    events: EventSource,
    pub mem: GuestMemoryMmap,
    pub boot: BootEntry,
    pub caps: HostCaps,
    _vm: VmFd,
    _kvm: Kvm,
}

impl Vm {
    pub fn create(config: &VmConfig) -> Result<Vm> {
        if config.cpus == 0 || config.cpus > MAX_VCPUS {
            return Err(Error::BadCpuCount(config.cpus, MAX_VCPUS));
        }
        let kvm = open_kvm()?;
        let vm = kvm.create_vm().map_err(Error::kvm("KVM_CREATE_VM"))?;
        vm.set_tss_address(boot::layout::KVM_TSS as usize)
            .map_err(Error::kvm("KVM_SET_TSS_ADDR"))?;
        vm.create_irq_chip()
            .map_err(Error::kvm("KVM_CREATE_IRQCHIP"))?;
        vm.create_pit2(kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        })
        .map_err(Error::kvm("KVM_CREATE_PIT2"))?;

        let mem =
            GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), config.mem_bytes as usize)])
                .map_err(|e| {
                    Error::GuestMemory(format!("allocating {} bytes: {e}", config.mem_bytes))
                })?;
        for (slot, region) in mem.iter().enumerate() {
            let host = mem
                .get_host_address(region.start_addr())
                .map_err(|e| Error::GuestMemory(e.to_string()))?;
            let region = kvm_userspace_memory_region {
                slot: slot as u32,
                guest_phys_addr: region.start_addr().0,
                memory_size: region.len(),
                userspace_addr: host as u64,
                flags: 0,
            };
            // SAFETY: the region is a live mapping owned by `mem`, which
            // outlives the VM (it is dropped after `_vm` in field order only
            // as a value; the mapping itself is reference counted).
            unsafe { vm.set_user_memory_region(region) }
                .map_err(Error::kvm("KVM_SET_USER_MEMORY_REGION"))?;
        }

        // virtio devices first: the ACPI tables describe them.
        let mut transports: Vec<SharedTransport> = Vec::new();
        let mut devices: Vec<Box<dyn virtio::VirtioDevice>> = Vec::new();
        for disk in &config.disks {
            devices.push(Box::new(block::Block::open(disk)?));
        }
        if let Some(v) = &config.vsock {
            devices.push(Box::new(vsock::Vsock::new(v.guest_cid, &v.uds_path)?));
        }
        let mut mmio_devices: Vec<MmioDeviceAt> = Vec::new();
        let mut slots = Vec::new();
        for (index, device) in devices.into_iter().enumerate() {
            let slot = virtio::slot(index);
            let irq = EventFd::new(libc::EFD_NONBLOCK)
                .map_err(|e| Error::Vcpu(format!("eventfd: {e}")))?;
            vm.register_irqfd(&irq, slot.gsi)
                .map_err(Error::kvm("KVM_IRQFD"))?;
            let transport = Arc::new(Mutex::new(MmioTransport::new(device, mem.clone(), irq)));
            mmio_devices.push((slot.base, slot.len, transport.clone()));
            transports.push(transport);
            slots.push(slot);
        }
        let rsdp = boot::acpi::write(&mem, config.cpus, &slots)?;

        let boot = boot::load(
            &mem,
            &boot::BootSpec {
                kernel: &config.kernel,
                initrd: config.initrd.as_deref(),
                cmdline: &config.cmdline,
                mode: config.entry,
                rsdp: Some(rsdp),
            },
        )?;

        let serial_irq =
            EventFd::new(libc::EFD_NONBLOCK).map_err(|e| Error::Vcpu(format!("eventfd: {e}")))?;
        vm.register_irqfd(&serial_irq, serial::COM1_IRQ)
            .map_err(Error::kvm("KVM_IRQFD"))?;
        let (serial_out, serial_in) = config.serial.open()?;
        let uart = Arc::new(Mutex::new(serial::SerialDevice::new(
            serial_irq, serial_out,
        )));
        if let Some(input) = serial_in {
            // Detached: it ends with its input, or with the process.
            serial::spawn_input(uart.clone(), input)
                .map_err(|e| Error::Vcpu(format!("spawning the serial input thread: {e}")))?;
        }
        let bus = PioBus::builder()
            .map(serial::COM1_PORT, serial::COM1_LEN, uart)
            .map(
                debug_exit::PORT,
                debug_exit::LEN,
                Arc::new(Mutex::new(debug_exit::DebugExit)),
            )
            .map(
                power::BASE,
                power::LEN,
                Arc::new(Mutex::new(power::AcpiPower)),
            )
            .map(
                power::I8042_COMMAND_PORT,
                1,
                Arc::new(Mutex::new(power::I8042Reset)),
            )
            .build();
        let mmio_bus = MmioBus::new(mmio_devices);

        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut threads = Vec::new();
        for t in &transports {
            if !virtio::lock(t).host_fds_possible() {
                continue;
            }
            threads.push(
                virtio::spawn_host_poller(t.clone(), stop.clone())
                    .map_err(|e| Error::Vcpu(format!("spawning a device thread: {e}")))?,
            );
        }
        let device_threads = DeviceThreads { stop, threads };
        let tsc_deadline = kvm.check_extension(Cap::TscDeadlineTimer);

        let caps = HostCaps {
            block_irq_on_step: vm.check_extension_raw(kvm_bindings::KVM_CAP_SET_GUEST_DEBUG2.into())
                as u32
                & kvm_bindings::KVM_GUESTDBG_BLOCKIRQ
                != 0,
        };
        let supported_cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(Error::kvm("KVM_GET_SUPPORTED_CPUID"))?;
        let (sink, events) = event_channel()?;
        let mut vcpus = Vec::with_capacity(config.cpus);
        for index in 0..config.cpus {
            let fd = vm
                .create_vcpu(index as u64)
                .map_err(Error::kvm("KVM_CREATE_VCPU"))?;
            let cpuid = boot::cpu::normalize_cpuid(
                &supported_cpuid,
                index as u8,
                config.cpus as u8,
                tsc_deadline,
            );
            fd.set_cpuid2(&cpuid)
                .map_err(Error::kvm("KVM_SET_CPUID2"))?;
            boot::cpu::setup_msrs(&fd)?;
            boot::cpu::setup_fpu(&fd)?;
            boot::cpu::setup_lapic(&fd)?;
            if index == 0 {
                boot::cpu::setup_boot_registers(&fd, &boot)?;
            }
            vcpus.push(VcpuHandle::spawn(
                index,
                fd,
                bus.clone(),
                mmio_bus.clone(),
                sink.clone(),
            )?);
        }
        Ok(Vm {
            vcpus,
            _device_threads: device_threads,
            events,
            mem,
            boot,
            caps,
            _vm: vm,
            _kvm: kvm,
        })
    }

    pub fn vcpu_count(&self) -> usize {
        self.vcpus.len()
    }

    pub fn vcpu(&self, index: usize) -> Option<&VcpuHandle> {
        self.vcpus.get(index)
    }

    pub fn run_vcpu(&mut self, index: usize) -> Result<()> {
        self.run_vcpu_with(index, RunOptions::default())
    }

    pub fn run_vcpu_with(&mut self, index: usize, options: RunOptions) -> Result<()> {
        match self.vcpus.get_mut(index) {
            Some(v) => v.run(options),
            None => Err(Error::Vcpu(format!("no vCPU {index}"))),
        }
    }

    pub fn any_running(&self) -> bool {
        self.vcpus.iter().any(VcpuHandle::is_running)
    }

    pub fn events_fd(&self) -> i32 {
        self.events.wakeup_fd()
    }

    fn note(&mut self, event: &VcpuEvent) {
        if let Some(v) = self.vcpus.get_mut(event.vcpu()) {
            v.mark_stopped();
        }
    }

    /// Waits for the next stop of any vCPU.
    pub fn wait_event(&mut self) -> Option<VcpuEvent> {
        let event = self.events.recv()?;
        self.note(&event);
        Some(event)
    }

    /// A stop that is already reported, without waiting.
    pub fn poll_event(&mut self) -> Option<VcpuEvent> {
        let event = self.events.try_recv()?;
        self.note(&event);
        Some(event)
    }

    /// Stops every running vCPU. Returns the stops that were not just the
    /// pause being acknowledged (a breakpoint hit meanwhile, the VM ending),
    /// so none is lost.
    pub fn pause_all(&mut self) -> Vec<VcpuEvent> {
        let mut other = Vec::new();
        for v in self.vcpus.iter().filter(|v| v.is_running()) {
            v.kick();
        }
        while self.any_running() {
            match self.events.recv_timeout(Duration::from_millis(5)) {
                Some(event) => {
                    self.note(&event);
                    if !matches!(event, VcpuEvent::Paused { .. }) {
                        other.push(event);
                    }
                }
                // The signal may have landed just before KVM_RUN: kick again.
                None => {
                    for v in self.vcpus.iter().filter(|v| v.is_running()) {
                        v.kick();
                    }
                }
            }
        }
        for v in &self.vcpus {
            v.clear_pause();
        }
        other
    }
}

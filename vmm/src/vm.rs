//! The VM: KVM handles, guest memory, the in-kernel interrupt controllers,
//! devices and vCPU threads, plus the all-stop run control the debugger and
//! the plain run loop share.

use std::ffi::CString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kvm_bindings::{
    kvm_clock_data, kvm_irqchip, kvm_pit_config, kvm_pit_state2, kvm_userspace_memory_region,
    CpuId, KVM_MAX_CPUID_ENTRIES, KVM_MEM_LOG_DIRTY_PAGES, KVM_PIT_SPEAKER_DUMMY,
};
use kvm_ioctls::{Cap, Kvm, VmFd};
use vm_memory::bitmap::AtomicBitmap;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;

use crate::boot::{self, BootEntry, EntryMode};
use crate::devices::virtio::{self, block, vsock, MmioTransport, SharedTransport};
use crate::devices::{debug_exit, power, serial, MmioBus, MmioDeviceAt, PioBus};
use crate::error::{Error, Result};
use crate::vcpu::state::VcpuState;
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
    /// Built for recording ([`crate::record`]): a userspace PIT on
    /// virtual time, no in-kernel PIT, serial interrupts raised by the
    /// recorder — or, while no recording is on, by the live ticker on host
    /// time ([`crate::record::live`]).
    pub recordable: bool,
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
            recordable: false,
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

/// The VM-wide state KVM holds: the in-kernel PIC pair and I/O APIC, the
/// PIT, and the KVM clock.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct KvmVmState {
    pub pic_master: kvm_irqchip,
    pub pic_slave: kvm_irqchip,
    pub ioapic: kvm_irqchip,
    /// KVM's in-kernel PIT; a machine built for recording has none.
    pub pit: Option<kvm_pit_state2>,
    pub clock: kvm_clock_data,
}

const IRQCHIP_PIC_MASTER: u32 = 0;
const IRQCHIP_PIC_SLAVE: u32 = 1;
const IRQCHIP_IOAPIC: u32 = 2;

impl KvmVmState {
    pub fn save(vm: &VmFd, in_kernel_pit: bool) -> Result<Self> {
        let chip = |chip_id| -> Result<kvm_irqchip> {
            let mut c = kvm_irqchip {
                chip_id,
                ..Default::default()
            };
            vm.get_irqchip(&mut c)
                .map_err(Error::kvm("KVM_GET_IRQCHIP"))?;
            Ok(c)
        };
        Ok(Self {
            pic_master: chip(IRQCHIP_PIC_MASTER)?,
            pic_slave: chip(IRQCHIP_PIC_SLAVE)?,
            ioapic: chip(IRQCHIP_IOAPIC)?,
            pit: if in_kernel_pit {
                Some(vm.get_pit2().map_err(Error::kvm("KVM_GET_PIT2"))?)
            } else {
                None
            },
            clock: vm.get_clock().map_err(Error::kvm("KVM_GET_CLOCK"))?,
        })
    }

    /// Before the vCPUs: their LAPIC timers and pending interrupts refer to
    /// the clock and the interrupt controllers.
    pub fn restore(&self, vm: &VmFd) -> Result<()> {
        if let Some(pit) = &self.pit {
            vm.set_pit2(pit).map_err(Error::kvm("KVM_SET_PIT2"))?;
        }
        // KVM_SET_CLOCK takes only the value; the flags KVM_GET_CLOCK
        // reports (TSC_STABLE, REALTIME) are not inputs.
        let clock = kvm_clock_data {
            clock: self.clock.clock,
            ..Default::default()
        };
        vm.set_clock(&clock).map_err(Error::kvm("KVM_SET_CLOCK"))?;
        for chip in [&self.pic_master, &self.pic_slave, &self.ioapic] {
            vm.set_irqchip(chip)
                .map_err(Error::kvm("KVM_SET_IRQCHIP"))?;
        }
        Ok(())
    }
}

/// Registers guest memory with KVM, one slot per region, logging dirty
/// pages or not. Calling it again on the same mapping changes the flags.
fn set_memory_slots(vm: &VmFd, mem: &GuestMemoryMmap, log_dirty: bool) -> Result<()> {
    for (slot, region) in mem.iter().enumerate() {
        let host = mem
            .get_host_address(region.start_addr())
            .map_err(|e| Error::GuestMemory(e.to_string()))?;
        let region = kvm_userspace_memory_region {
            slot: slot as u32,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: host as u64,
            flags: if log_dirty {
                KVM_MEM_LOG_DIRTY_PAGES
            } else {
                0
            },
        };
        // SAFETY: the region is a live mapping owned by `mem`, which the
        // `Vm` keeps as long as the VM fd (the mapping itself is reference
        // counted by vm-memory).
        unsafe { vm.set_user_memory_region(region) }
            .map_err(Error::kvm("KVM_SET_USER_MEMORY_REGION"))?;
    }
    Ok(())
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

/// What a machine is made of, independent of how it starts (a kernel
/// boot or a snapshot): memory size, vCPUs and the typed device list. A
/// snapshot records it and is refused by a machine of another shape.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MachineShape {
    pub mem_bytes: u64,
    pub vcpus: usize,
    pub devices: Vec<DeviceKind>,
    /// See [`VmConfig::recordable`].
    #[serde(default)]
    pub recordable: bool,
}

/// One device of a machine, in bus order.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DeviceKind {
    Serial,
    DebugExit,
    AcpiPower,
    I8042Reset,
    Block { path: PathBuf, read_only: bool },
    Vsock { guest_cid: u64, uds_path: PathBuf },
}

impl MachineShape {
    pub fn of(config: &VmConfig) -> Self {
        let mut devices = vec![
            DeviceKind::Serial,
            DeviceKind::DebugExit,
            DeviceKind::AcpiPower,
            DeviceKind::I8042Reset,
        ];
        devices.extend(config.disks.iter().map(|d| DeviceKind::Block {
            path: d.path.clone(),
            read_only: d.read_only,
        }));
        devices.extend(config.vsock.iter().map(|v| DeviceKind::Vsock {
            guest_cid: v.guest_cid,
            uds_path: v.uds_path.clone(),
        }));
        Self {
            mem_bytes: config.mem_bytes,
            vcpus: config.cpus,
            devices,
            recordable: config.recordable,
        }
    }

    /// The virtio devices, in the order of their MMIO slots.
    fn virtio(&self) -> impl Iterator<Item = &DeviceKind> {
        self.devices
            .iter()
            .filter(|d| matches!(d, DeviceKind::Block { .. } | DeviceKind::Vsock { .. }))
    }
}

/// The machine's devices by type, so each can save and restore its state.
pub struct Devices {
    pub serial: Arc<Mutex<serial::SerialDevice>>,
    /// virtio-mmio transports in slot order.
    pub virtio: Vec<SharedTransport>,
    /// What a recording drives, on a machine built for one.
    pub recordable: Option<RecordableDevices>,
}

/// The devices of a machine built for recording that the recorder drives
/// directly: the virtual clock and its PIT, the UART's interrupt (an
/// eventfd no irqfd listens to: the recorder raises IRQ 4 itself, at an
/// instruction boundary), its host input queue and its output mute.
pub struct RecordableDevices {
    pub clock: crate::devices::pit::VirtualClock,
    pub pit: Arc<Mutex<crate::devices::pit::Pit>>,
    pub serial_irq: EventFd,
    pub serial_input: Arc<Mutex<std::collections::VecDeque<u8>>>,
    pub serial_muted: Arc<std::sync::atomic::AtomicBool>,
}

/// Where guest memory comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backing {
    /// Anonymous memory: a VM booted from a kernel.
    Anonymous,
    /// A snapshot's memory file mapped MAP_PRIVATE: the guest's writes stay
    /// in this process, and dropping a page (MADV_DONTNEED) brings the
    /// file's bytes back. KVM logs dirty pages in this mode.
    File(PathBuf),
}

pub struct Vm {
    // Field order is drop order: vCPU threads stop before the VM goes away.
    /// A recordable machine's devices on host time while no recording is
    /// on ([`crate::record::live`]).
    pub live: Option<crate::record::live::Ticker>,
    vcpus: Vec<VcpuHandle>,
    _device_threads: DeviceThreads,
    events: EventSource,
    pub mem: GuestMemoryMmap,
    pub boot: BootEntry,
    pub caps: HostCaps,
    pub shape: MachineShape,
    pub devices: Devices,
    pub backing: Backing,
    /// The recording, while one is on ([`crate::record`]).
    pub recorder: Option<crate::record::Shared>,
    /// The recording's counters, readable while the vCPU holds `recorder`.
    pub record_progress: Option<Arc<crate::record::Progress>>,
    /// The CPUID each vCPU was given (KVM cannot be asked for it back).
    cpuids: Vec<CpuId>,
    /// MSRs a snapshot saves: KVM_GET_MSR_INDEX_LIST.
    msr_indices: Vec<u32>,
    xcrs: bool,
    vm_fd: VmFd,
    _kvm: Kvm,
}

/// Guest memory: vm-memory's mmap backend with a dirty bitmap. Every write
/// the VMM makes through it — virtio devices filling buffers and used
/// rings, the boot loader, a debugger's memory writes — marks its pages,
/// which KVM's dirty log (the guest's own writes) does not see; a reset
/// to a snapshot drops the pages of both.
pub type GuestMemoryMmap = vm_memory::GuestMemoryMmap<AtomicBitmap>;

/// Anonymous guest memory of `bytes`.
pub fn anonymous_memory(bytes: u64) -> Result<GuestMemoryMmap> {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), bytes as usize)])
        .map_err(|e| Error::GuestMemory(format!("allocating {bytes} bytes: {e}")))
}

/// Guest memory mapped MAP_PRIVATE from `file` (not read: pages come in
/// as the guest touches them).
pub fn file_memory(file: &std::fs::File, bytes: u64) -> Result<GuestMemoryMmap> {
    use vm_memory::mmap::{GuestRegionMmap, MmapRegionBuilder};
    use vm_memory::FileOffset;
    let clone = file
        .try_clone()
        .map_err(|e| Error::GuestMemory(format!("memory file: {e}")))?;
    use vm_memory::bitmap::NewBitmap;
    let region =
        MmapRegionBuilder::new_with_bitmap(bytes as usize, AtomicBitmap::with_len(bytes as usize))
            .with_file_offset(FileOffset::new(clone, 0))
            .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
            .with_mmap_flags(libc::MAP_PRIVATE | libc::MAP_NORESERVE)
            .build()
            .map_err(|e| Error::GuestMemory(format!("mapping the memory file: {e}")))?;
    let region = GuestRegionMmap::new(region, GuestAddress(0))
        .ok_or_else(|| Error::GuestMemory("memory file region overflows".into()))?;
    GuestMemoryMmap::from_regions(vec![region])
        .map_err(|e| Error::GuestMemory(format!("memory file: {e}")))
}

impl Vm {
    /// Boots `config`'s kernel: builds the machine, writes the ACPI tables,
    /// loads the kernel and points vCPU 0 at its entry.
    pub fn create(config: &VmConfig) -> Result<Vm> {
        let shape = MachineShape::of(config);
        let mut vm = Vm::build(&shape, anonymous_memory(config.mem_bytes)?, &config.serial)?;
        let slots: Vec<_> = (0..vm.devices.virtio.len()).map(virtio::slot).collect();
        let rsdp = boot::acpi::write(&vm.mem, config.cpus, &slots)?;
        vm.boot = boot::load(
            &vm.mem,
            &boot::BootSpec {
                kernel: &config.kernel,
                initrd: config.initrd.as_deref(),
                cmdline: &config.cmdline,
                mode: config.entry,
                rsdp: Some(rsdp),
            },
        )?;
        let entry = vm.boot;
        vm.vcpus[0].exec(move |fd| boot::cpu::setup_boot_registers(fd, &entry))??;
        if shape.recordable {
            // Live until a recording starts (at once for --record).
            vm.live = Some(crate::record::live::Ticker::start(&vm)?);
        }
        Ok(vm)
    }

    /// Builds a machine of `shape` over `mem`: the KVM VM with its
    /// interrupt controllers, the devices and the vCPU threads, each vCPU
    /// at its power-on defaults. Booting a kernel or restoring a snapshot
    /// goes on from here.
    pub fn build(
        shape: &MachineShape,
        mem: GuestMemoryMmap,
        serial_target: &serial::SerialTarget,
    ) -> Result<Vm> {
        if shape.vcpus == 0 || shape.vcpus > MAX_VCPUS {
            return Err(Error::BadCpuCount(shape.vcpus, MAX_VCPUS));
        }
        if shape.recordable {
            crate::record::check_shape(shape)?;
        }
        let kvm = open_kvm()?;
        let vm = kvm.create_vm().map_err(Error::kvm("KVM_CREATE_VM"))?;
        vm.set_tss_address(boot::layout::KVM_TSS as usize)
            .map_err(Error::kvm("KVM_SET_TSS_ADDR"))?;
        vm.create_irq_chip()
            .map_err(Error::kvm("KVM_CREATE_IRQCHIP"))?;
        if !shape.recordable {
            vm.create_pit2(kvm_pit_config {
                flags: KVM_PIT_SPEAKER_DUMMY,
                ..Default::default()
            })
            .map_err(Error::kvm("KVM_CREATE_PIT2"))?;
        }
        set_memory_slots(&vm, &mem, false)?;

        // virtio devices first: the ACPI tables describe them.
        let mut transports: Vec<SharedTransport> = Vec::new();
        let mut devices: Vec<Box<dyn virtio::VirtioDevice>> = Vec::new();
        for device in shape.virtio() {
            match device {
                DeviceKind::Block { path, read_only } => {
                    devices.push(Box::new(block::Block::open(&block::DiskSpec {
                        path: path.clone(),
                        read_only: *read_only,
                    })?))
                }
                DeviceKind::Vsock {
                    guest_cid,
                    uds_path,
                } => devices.push(Box::new(vsock::Vsock::new(*guest_cid, uds_path)?)),
                _ => {}
            }
        }
        let mut mmio_devices: Vec<MmioDeviceAt> = Vec::new();
        for (index, device) in devices.into_iter().enumerate() {
            let slot = virtio::slot(index);
            let irq = EventFd::new(libc::EFD_NONBLOCK)
                .map_err(|e| Error::Vcpu(format!("eventfd: {e}")))?;
            vm.register_irqfd(&irq, slot.gsi)
                .map_err(Error::kvm("KVM_IRQFD"))?;
            let transport = Arc::new(Mutex::new(MmioTransport::new(device, mem.clone(), irq)));
            mmio_devices.push((slot.base, slot.len, transport.clone()));
            transports.push(transport);
        }

        let serial_irq =
            EventFd::new(libc::EFD_NONBLOCK).map_err(|e| Error::Vcpu(format!("eventfd: {e}")))?;
        if !shape.recordable {
            vm.register_irqfd(&serial_irq, serial::COM1_IRQ)
                .map_err(Error::kvm("KVM_IRQFD"))?;
        }
        let (mut serial_out, serial_in) = serial_target.open()?;
        let mut recordable = None;
        if shape.recordable {
            let clock = crate::devices::pit::VirtualClock::default();
            let muted = Arc::new(std::sync::atomic::AtomicBool::new(false));
            serial_out = Box::new(serial::Mutable {
                out: serial_out,
                muted: muted.clone(),
            });
            recordable = Some(RecordableDevices {
                pit: Arc::new(Mutex::new(crate::devices::pit::Pit::new(clock.clone()))),
                clock,
                serial_irq: serial_irq
                    .try_clone()
                    .map_err(|e| Error::Vcpu(format!("eventfd: {e}")))?,
                serial_input: Default::default(),
                serial_muted: muted,
            });
        }
        let uart = Arc::new(Mutex::new(serial::SerialDevice::new(
            serial_irq, serial_out,
        )));
        if let Some(input) = serial_in {
            let sink = match &recordable {
                Some(r) => serial::InputSink::Queue(r.serial_input.clone()),
                None => serial::InputSink::Uart(uart.clone()),
            };
            // Detached: it ends with its input, or with the process.
            serial::spawn_input(sink, input)
                .map_err(|e| Error::Vcpu(format!("spawning the serial input thread: {e}")))?;
        }
        let mut bus = PioBus::builder();
        if let Some(r) = &recordable {
            use crate::devices::pit;
            bus = bus.map(pit::BASE, pit::LEN, r.pit.clone()).map(
                pit::SPEAKER_PORT,
                1,
                Arc::new(Mutex::new(pit::SpeakerPort(r.pit.clone()))),
            );
        }
        let bus = bus
            .map(serial::COM1_PORT, serial::COM1_LEN, uart.clone())
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
        let mut vcpus = Vec::with_capacity(shape.vcpus);
        let mut cpuids = Vec::with_capacity(shape.vcpus);
        for index in 0..shape.vcpus {
            let fd = vm
                .create_vcpu(index as u64)
                .map_err(Error::kvm("KVM_CREATE_VCPU"))?;
            let cpuid = boot::cpu::normalize_cpuid(
                &supported_cpuid,
                index as u8,
                shape.vcpus as u8,
                tsc_deadline,
            );
            fd.set_cpuid2(&cpuid)
                .map_err(Error::kvm("KVM_SET_CPUID2"))?;
            cpuids.push(cpuid);
            boot::cpu::setup_msrs(&fd)?;
            boot::cpu::setup_fpu(&fd)?;
            boot::cpu::setup_lapic(&fd)?;
            vcpus.push(VcpuHandle::spawn(
                index,
                fd,
                bus.clone(),
                mmio_bus.clone(),
                sink.clone(),
            )?);
        }
        let msr_indices = kvm
            .get_msr_index_list()
            .map_err(Error::kvm("KVM_GET_MSR_INDEX_LIST"))?
            .as_slice()
            .to_vec();
        let xcrs = kvm.check_extension(Cap::Xcrs);
        Ok(Vm {
            live: None,
            vcpus,
            _device_threads: device_threads,
            events,
            mem,
            boot: BootEntry {
                mode: EntryMode::Auto,
                rip: 0,
                start_info: None,
                boot_params: None,
            },
            caps,
            shape: shape.clone(),
            devices: Devices {
                serial: uart,
                virtio: transports,
                recordable,
            },
            backing: Backing::Anonymous,
            recorder: None,
            record_progress: None,
            cpuids,
            msr_indices,
            xcrs,
            vm_fd: vm,
            _kvm: kvm,
        })
    }

    pub fn vm_fd(&self) -> &VmFd {
        &self.vm_fd
    }

    /// A second handle on the KVM VM, for work on a vCPU thread (a
    /// recording raises interrupt lines and reads the dirty log there).
    pub fn vm_fd_dup(&self) -> Result<VmFd> {
        use std::os::fd::AsRawFd;
        // SAFETY: dup of a descriptor this Vm owns; the new one is owned
        // by the VmFd made from it, which closes only the copy.
        let fd = unsafe { libc::dup(self.vm_fd.as_raw_fd()) };
        if fd < 0 {
            return Err(Error::Vcpu(format!(
                "dup of the VM fd: {}",
                std::io::Error::last_os_error()
            )));
        }
        // SAFETY: `fd` is a fresh, valid KVM VM descriptor.
        unsafe { self._kvm.create_vmfd_from_rawfd(fd) }.map_err(Error::kvm("dup VM fd"))
    }

    /// The CPUID, MSR list and XCR support a vCPU state save needs.
    pub fn vcpu_state_keys(&self) -> (CpuId, Vec<u32>, bool) {
        (self.cpuids[0].clone(), self.msr_indices.clone(), self.xcrs)
    }

    /// Reads every vCPU's whole state. The vCPUs must be stopped.
    pub fn save_vcpus(&self) -> Result<Vec<VcpuState>> {
        self.vcpus
            .iter()
            .zip(&self.cpuids)
            .map(|(v, cpuid)| {
                let (cpuid, msrs, xcrs) = (cpuid.clone(), self.msr_indices.clone(), self.xcrs);
                v.exec(move |fd| VcpuState::save(fd, &cpuid, &msrs, xcrs))?
            })
            .collect()
    }

    /// Writes every vCPU's state back. The vCPUs must be stopped; `fresh`
    /// when they have never run (a machine just built for a snapshot).
    pub fn restore_vcpus(&self, states: &[VcpuState], fresh: bool) -> Result<()> {
        if states.len() != self.vcpus.len() {
            return Err(Error::Vcpu(format!(
                "{} vCPU states for {} vCPUs",
                states.len(),
                self.vcpus.len()
            )));
        }
        for (v, state) in self.vcpus.iter().zip(states) {
            let state = state.clone();
            v.exec(move |fd| state.restore(fd, fresh))??;
        }
        Ok(())
    }

    /// Turns KVM's dirty-page logging on or off for guest memory.
    pub fn log_dirty_pages(&self, on: bool) -> Result<()> {
        set_memory_slots(&self.vm_fd, &self.mem, on)
    }

    /// The pages written since the last call, one bit each, for each
    /// memory region (slot) in order: by the guest (KVM's dirty log) or by
    /// the VMM (the memory's own bitmap).
    pub fn take_dirty_log(&self) -> Result<Vec<Vec<u64>>> {
        self.mem
            .iter()
            .enumerate()
            .map(|(slot, region)| {
                let mut log = self
                    .vm_fd
                    .get_dirty_log(slot as u32, region.len() as usize)
                    .map_err(Error::kvm("KVM_GET_DIRTY_LOG"))?;
                for (word, ours) in log.iter_mut().zip((**region).bitmap().get_and_reset()) {
                    *word |= ours;
                }
                Ok(log)
            })
            .collect()
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
        if let Some(recorder) = self.recorder.clone() {
            // Under a recording every instruction is stepped by it.
            return self.drive(
                index,
                crate::record::Goal::Run {
                    step: options.stop_after_step,
                    range: options.range.map(|r| (r.start, r.end)),
                },
                crate::record::StopAt::default(),
                &recorder,
            );
        }
        match self.vcpus.get_mut(index) {
            Some(v) => v.run(options),
            None => Err(Error::Vcpu(format!("no vCPU {index}"))),
        }
    }

    /// Hands vCPU `index` to the recording to reach `goal`.
    pub fn drive(
        &mut self,
        index: usize,
        goal: crate::record::Goal,
        stops: crate::record::StopAt,
        recorder: &crate::record::Shared,
    ) -> Result<()> {
        let job = crate::record::job(recorder.clone(), goal, stops);
        match self.vcpus.get_mut(index) {
            Some(v) => v.drive(job),
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

//! virtio 1.x over MMIO ("virtio-mmio" version 2) and the devices behind it.
//!
//! [`MmioTransport`] owns the register file, feature negotiation, the
//! virtqueues (virtio-queue's split `Queue`) and the interrupt line; a
//! [`VirtioDevice`] owns only its function (block, vsock) and its state.
//!
//! Everything in a virtqueue is written by the guest and trusted by nothing
//! here: descriptor chains are walked with [`read_chain`], which refuses a
//! chain that leaves guest memory, loops or is longer than the queue. A
//! device that meets one returns [`DeviceError`]; the transport then sets
//! DEVICE_NEEDS_RESET, raises a configuration-change interrupt and stops
//! serving that device until the driver resets it. The VM and the other
//! devices go on.

pub mod block;
pub mod vsock;

#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};

use crate::vm::GuestMemoryMmap;
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use vm_memory::{GuestAddress, GuestMemory};
use vmm_sys_util::eventfd::EventFd;

use super::{IoAction, MmioDevice};

/// Where the first virtio-mmio device sits; the next ones follow at
/// [`MMIO_STRIDE`]. Inside the 32-bit hole above guest RAM.
pub const MMIO_BASE: u64 = 0xd000_0000;
pub const MMIO_STRIDE: u64 = 0x1000;
/// The first GSI for virtio-mmio devices (4 is COM1).
pub const FIRST_GSI: u32 = 5;

const MAGIC: u32 = 0x7472_6976; // "virt"
const VERSION_MODERN: u32 = 2;
const VENDOR_ID: u32 = 0x4742_4456; // "VDBG"

pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;

pub mod status {
    pub const ACKNOWLEDGE: u32 = 1;
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
    pub const DEVICE_NEEDS_RESET: u32 = 0x40;
    pub const FAILED: u32 = 0x80;
}

const INT_USED_BUFFER: u32 = 1;
const INT_CONFIG_CHANGE: u32 = 2;

/// Register offsets (virtio 1.2, 4.2.2); public for the virtio fuzz target.
pub mod reg {
    pub const MAGIC: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const VENDOR_ID: u64 = 0x00c;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    pub const QUEUE_READY: u64 = 0x044;
    pub const QUEUE_NOTIFY: u64 = 0x050;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    pub const CONFIG: u64 = 0x100;
}

/// The guest broke the device's contract; the device stops until reset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceError(pub String);

impl std::fmt::Display for DeviceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A virtio device function behind the transport.
pub trait VirtioDevice: Send {
    /// For messages: "block", "vsock".
    fn name(&self) -> &'static str;
    /// The virtio device ID (2 block, 19 vsock).
    fn device_id(&self) -> u32;
    /// Offered features, including [`VIRTIO_F_VERSION_1`].
    fn features(&self) -> u64;
    /// Maximum size of each of the device's queues.
    fn queue_max_sizes(&self) -> &[u16];
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// The driver finished initialization with these features.
    fn activate(&mut self, _driver_features: u64) {}
    /// Serves whatever the queues hold. Returns whether used buffers were
    /// added (so the guest must be interrupted).
    fn process(&mut self, queues: &mut [Queue], mem: &GuestMemoryMmap)
        -> Result<bool, DeviceError>;
    /// Back to the state before the driver found it (status write 0).
    fn reset(&mut self);
    /// File descriptors whose readability means [`process`] has work that
    /// did not come from the guest (host sockets); empty for most devices.
    ///
    /// [`process`]: VirtioDevice::process
    fn host_fds(&self) -> Vec<i32> {
        Vec::new()
    }
    /// Why this device cannot be in a snapshot, if it cannot. A device
    /// whose state is only its registers and queues (the transport saves
    /// those) answers `None`.
    fn snapshot_refusal(&self) -> Option<&'static str> {
        None
    }
    /// Called once a live device's transport and queues are restored from
    /// a snapshot (after [`reset`]): tells the guest what did not survive.
    /// Returns whether used buffers were added.
    ///
    /// [`reset`]: VirtioDevice::reset
    fn restored(
        &mut self,
        _queues: &mut [Queue],
        _mem: &GuestMemoryMmap,
    ) -> Result<bool, DeviceError> {
        Ok(false)
    }
}

/// A virtqueue's position and addresses (virtio-queue's `QueueState`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueSnapshot {
    pub max_size: u16,
    pub next_avail: u16,
    pub next_used: u16,
    pub event_idx_enabled: bool,
    pub size: u16,
    pub ready: bool,
    pub desc_table: u64,
    pub avail_ring: u64,
    pub used_ring: u64,
}

/// What a snapshot keeps of a virtio-mmio device: the transport's
/// registers and each queue's state.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TransportSnapshot {
    pub device_id: u32,
    pub status: u32,
    pub interrupt_status: u32,
    pub device_features_sel: u32,
    pub driver_features_sel: u32,
    pub driver_features: u64,
    pub queue_sel: u32,
    pub config_generation: u32,
    pub error: Option<String>,
    pub queues: Vec<QueueSnapshot>,
}

impl super::Persist for MmioTransport {
    type State = TransportSnapshot;

    fn save(&self) -> TransportSnapshot {
        TransportSnapshot {
            device_id: self.device.device_id(),
            status: self.status,
            interrupt_status: self.interrupt_status,
            device_features_sel: self.device_features_sel,
            driver_features_sel: self.driver_features_sel,
            driver_features: self.driver_features,
            queue_sel: self.queue_sel,
            config_generation: self.config_generation,
            error: self.error.as_ref().map(|e| e.0.clone()),
            queues: self
                .queues
                .iter()
                .map(|q| {
                    let s = q.state();
                    QueueSnapshot {
                        max_size: s.max_size,
                        next_avail: s.next_avail,
                        next_used: s.next_used,
                        event_idx_enabled: s.event_idx_enabled,
                        size: s.size,
                        ready: s.ready,
                        desc_table: s.desc_table,
                        avail_ring: s.avail_ring,
                        used_ring: s.used_ring,
                    }
                })
                .collect(),
        }
    }

    /// Refuses a state of another device type or queue count, or a queue
    /// virtio-queue would not accept, before changing anything.
    fn restore(&mut self, s: &TransportSnapshot) -> Result<(), String> {
        let name = self.device.name();
        if let Some(why) = self.device.snapshot_refusal() {
            return Err(format!("virtio-{name}: {why}"));
        }
        if s.device_id != self.device.device_id() || s.queues.len() != self.queues.len() {
            return Err(format!(
                "virtio-{name}: the snapshot holds device type {} with {} queues, this is type {} with {}",
                s.device_id,
                s.queues.len(),
                self.device.device_id(),
                self.queues.len()
            ));
        }
        let queues = s
            .queues
            .iter()
            .map(|q| {
                Queue::try_from(virtio_queue::QueueState {
                    max_size: q.max_size,
                    next_avail: q.next_avail,
                    next_used: q.next_used,
                    event_idx_enabled: q.event_idx_enabled,
                    size: q.size,
                    ready: q.ready,
                    desc_table: q.desc_table,
                    avail_ring: q.avail_ring,
                    used_ring: q.used_ring,
                })
                .map_err(|e| format!("virtio-{name}: queue state refused: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.device.reset();
        self.queues = queues;
        self.status = s.status;
        self.interrupt_status = s.interrupt_status;
        self.device_features_sel = s.device_features_sel;
        self.driver_features_sel = s.driver_features_sel;
        self.driver_features = s.driver_features;
        self.queue_sel = s.queue_sel;
        self.config_generation = s.config_generation;
        self.error = s.error.clone().map(DeviceError);
        if self.is_live() {
            self.device.activate(self.driver_features);
            match self.device.restored(&mut self.queues, &self.mem) {
                Ok(true) => self.raise(INT_USED_BUFFER),
                Ok(false) => {}
                Err(e) => self.fail(e),
            }
        }
        Ok(())
    }
}

/// Longest chain any device here accepts, whatever the queue size says.
pub const MAX_CHAIN_LEN: usize = 1024;

/// Walks a descriptor chain, refusing one that cannot be trusted: a buffer
/// outside guest memory, a loop, a chain longer than the queue (or than
/// [`MAX_CHAIN_LEN`]), a next index outside the descriptor table, or a
/// broken indirect table. virtio-queue's iterator just stops early on the
/// last four; a last descriptor that still says NEXT tells them apart from
/// a real end.
pub fn read_chain<M>(
    chain: DescriptorChain<M>,
    mem: &GuestMemoryMmap,
) -> Result<Vec<Descriptor>, DeviceError>
where
    M: std::ops::Deref,
    M::Target: GuestMemory,
{
    let head = chain.head_index();
    let mut descriptors = Vec::new();
    for desc in chain {
        if descriptors.len() == MAX_CHAIN_LEN {
            return Err(DeviceError(format!(
                "descriptor chain at head {head} is longer than {MAX_CHAIN_LEN} descriptors"
            )));
        }
        if desc.len() > 0
            && !mem.check_range(
                desc.addr(),
                desc.len() as usize,
                vm_memory::Permissions::ReadWrite,
            )
        {
            return Err(DeviceError(format!(
                "descriptor chain at head {head}: buffer {:#x}+{:#x} lies outside guest memory",
                desc.addr().0,
                desc.len()
            )));
        }
        descriptors.push(desc);
    }
    match descriptors.last() {
        None => Err(DeviceError(format!(
            "descriptor chain at head {head} is unreadable (index or indirect table outside the queue or guest memory)"
        ))),
        Some(last) if last.has_next() => Err(DeviceError(format!(
            "descriptor chain at head {head} loops, is longer than the queue, or points outside the descriptor table"
        ))),
        Some(_) => Ok(descriptors),
    }
}

/// Takes the next available chain, if any; a corrupt available ring is a
/// device error.
pub fn next_chain<'m>(
    queue: &mut Queue,
    mem: &'m GuestMemoryMmap,
) -> Result<Option<DescriptorChain<&'m GuestMemoryMmap>>, DeviceError> {
    let mut iter = queue
        .iter(mem)
        .map_err(|e| DeviceError(format!("available ring: {e}")))?;
    Ok(iter.next())
}

/// Marks a chain used. A used ring outside guest memory was caught when the
/// queue became ready, so a failure here is the guest moving it since.
pub fn add_used(
    queue: &mut Queue,
    mem: &GuestMemoryMmap,
    head: u16,
    len: u32,
) -> Result<(), DeviceError> {
    queue
        .add_used(mem, head, len)
        .map_err(|e| DeviceError(format!("used ring: {e}")))
}

/// One virtio-mmio device: registers, negotiation, queues and interrupt.
pub struct MmioTransport {
    device: Box<dyn VirtioDevice>,
    queues: Vec<Queue>,
    mem: GuestMemoryMmap,
    irq: EventFd,
    status: u32,
    interrupt_status: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    config_generation: u32,
    /// Why the device is in DEVICE_NEEDS_RESET, if it is.
    error: Option<DeviceError>,
}

impl MmioTransport {
    pub fn new(device: Box<dyn VirtioDevice>, mem: GuestMemoryMmap, irq: EventFd) -> Self {
        let queues = device
            .queue_max_sizes()
            .iter()
            // Sizes are powers of two no larger than 32768, which
            // Queue::new accepts; a device with another size is a bug here.
            .map(|&size| Queue::new(size).expect("virtio device declares a valid queue size"))
            .collect();
        Self {
            device,
            queues,
            mem,
            irq,
            status: 0,
            interrupt_status: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            config_generation: 0,
            error: None,
        }
    }

    pub fn device_name(&self) -> &'static str {
        self.device.name()
    }

    pub fn status(&self) -> u32 {
        self.status
    }

    pub fn error(&self) -> Option<&DeviceError> {
        self.error.as_ref()
    }

    /// Why this device cannot be in a snapshot, if it cannot.
    pub fn snapshot_refusal(&self) -> Option<String> {
        self.device
            .snapshot_refusal()
            .map(|why| format!("virtio-{}: {why}", self.device.name()))
    }

    /// Whether the device has a host side to poll at all.
    pub fn host_fds_possible(&self) -> bool {
        !self.device.host_fds().is_empty()
    }

    pub fn host_fds(&self) -> Vec<i32> {
        if self.is_live() {
            self.device.host_fds()
        } else {
            Vec::new()
        }
    }

    fn is_live(&self) -> bool {
        self.status & status::DRIVER_OK != 0 && self.error.is_none()
    }

    fn raise(&mut self, cause: u32) {
        self.interrupt_status |= cause;
        if let Err(e) = self.irq.write(1) {
            tracing::warn!("virtio-{}: raising the interrupt: {e}", self.device.name());
        }
    }

    /// Puts the device in its error state: the driver sees
    /// DEVICE_NEEDS_RESET after a configuration-change interrupt.
    fn fail(&mut self, error: DeviceError) {
        tracing::warn!(
            "virtio-{}: {error}; the device needs a reset by its driver",
            self.device.name()
        );
        self.error = Some(error);
        self.status |= status::DEVICE_NEEDS_RESET;
        self.config_generation = self.config_generation.wrapping_add(1);
        self.raise(INT_CONFIG_CHANGE);
    }

    /// Runs the device over its queues, if it is live.
    pub fn process(&mut self) {
        if !self.is_live() {
            return;
        }
        match self.device.process(&mut self.queues, &self.mem) {
            Ok(true) => self.raise(INT_USED_BUFFER),
            Ok(false) => {}
            Err(e) => self.fail(e),
        }
    }

    fn reset(&mut self) {
        self.device.reset();
        for q in &mut self.queues {
            q.reset();
        }
        self.status = 0;
        self.interrupt_status = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        self.error = None;
    }

    fn selected_queue(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    fn write_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        let newly = value & !self.status;
        if newly & status::FEATURES_OK != 0 {
            let unknown = self.driver_features & !self.device.features();
            if unknown != 0 || self.driver_features & VIRTIO_F_VERSION_1 == 0 {
                // Leaving FEATURES_OK clear is how a device refuses.
                tracing::warn!(
                    "virtio-{}: driver features {:#x} refused (offered {:#x}; VERSION_1 is required)",
                    self.device.name(),
                    self.driver_features,
                    self.device.features()
                );
                self.status =
                    value & !status::FEATURES_OK | (self.status & status::DEVICE_NEEDS_RESET);
                return;
            }
        }
        // DEVICE_NEEDS_RESET is the device's to clear, on reset only.
        self.status = value | (self.status & status::DEVICE_NEEDS_RESET);
        if newly & status::DRIVER_OK != 0 && self.error.is_none() {
            for (i, q) in self.queues.iter().enumerate() {
                if q.ready() && !q.is_valid(&self.mem) {
                    let e = DeviceError(format!(
                        "queue {i}: its rings are misaligned or lie outside guest memory"
                    ));
                    self.fail(e);
                    return;
                }
            }
            self.device.activate(self.driver_features);
            self.process();
        }
    }

    fn read_register(&mut self, offset: u64) -> u32 {
        match offset {
            reg::MAGIC => MAGIC,
            reg::VERSION => VERSION_MODERN,
            reg::DEVICE_ID => self.device.device_id(),
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => match self.device_features_sel {
                0 => self.device.features() as u32,
                1 => (self.device.features() >> 32) as u32,
                _ => 0,
            },
            reg::QUEUE_NUM_MAX => self.selected_queue().map_or(0, |q| q.max_size() as u32),
            reg::QUEUE_READY => self.selected_queue().map_or(0, |q| q.ready() as u32),
            reg::INTERRUPT_STATUS => self.interrupt_status,
            reg::STATUS => self.status,
            reg::CONFIG_GENERATION => self.config_generation,
            _ => 0,
        }
    }

    fn write_register(&mut self, offset: u64, value: u32) {
        let driver_ok = self.status & status::DRIVER_OK != 0;
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = value,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            reg::DRIVER_FEATURES if self.status & status::FEATURES_OK == 0 => {
                match self.driver_features_sel {
                    0 => {
                        self.driver_features = (self.driver_features & !0xffff_ffff) | value as u64
                    }
                    1 => {
                        self.driver_features =
                            (self.driver_features & 0xffff_ffff) | ((value as u64) << 32)
                    }
                    _ => {}
                }
            }
            reg::QUEUE_SEL => self.queue_sel = value,
            reg::QUEUE_NUM if !driver_ok => {
                if let Some(q) = self.selected_queue() {
                    // Queue::set_size ignores sizes that are not a power of
                    // two or exceed the maximum; is_valid() reports them.
                    q.set_size(value as u16);
                }
            }
            reg::QUEUE_READY => {
                if let Some(q) = self.selected_queue() {
                    q.set_ready(value == 1);
                }
            }
            reg::QUEUE_DESC_LOW
            | reg::QUEUE_DESC_HIGH
            | reg::QUEUE_DRIVER_LOW
            | reg::QUEUE_DRIVER_HIGH
            | reg::QUEUE_DEVICE_LOW
            | reg::QUEUE_DEVICE_HIGH
                if !driver_ok =>
            {
                if let Some(q) = self.selected_queue() {
                    let (low, high) = if offset & 4 == 0 {
                        (Some(value), None)
                    } else {
                        (None, Some(value))
                    };
                    match offset & !4 {
                        reg::QUEUE_DESC_LOW => q.set_desc_table_address(low, high),
                        reg::QUEUE_DRIVER_LOW => q.set_avail_ring_address(low, high),
                        _ => q.set_used_ring_address(low, high),
                    }
                }
            }
            reg::QUEUE_NOTIFY => self.process(),
            reg::INTERRUPT_ACK => self.interrupt_status &= !value,
            reg::STATUS => self.write_status(value),
            _ => tracing::debug!(
                "virtio-{}: ignored write {value:#x} to register {offset:#x}",
                self.device.name()
            ),
        }
    }
}

impl MmioDevice for MmioTransport {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= reg::CONFIG {
            self.device.read_config(offset - reg::CONFIG, data);
            return;
        }
        if data.len() != 4 {
            data.fill(0);
            return;
        }
        data.copy_from_slice(&self.read_register(offset).to_le_bytes());
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> IoAction {
        // Device configuration is read-only for the devices here.
        if offset < reg::CONFIG && data.len() == 4 {
            let value = u32::from_le_bytes(data.try_into().unwrap_or([0; 4]));
            self.write_register(offset, value);
        }
        IoAction::None
    }
}

/// Copies `data` into device config space at `offset`, as much as overlaps.
pub fn read_config_bytes(config: &[u8], offset: u64, data: &mut [u8]) {
    data.fill(0);
    let start = offset as usize;
    if start < config.len() {
        let n = data.len().min(config.len() - start);
        data[..n].copy_from_slice(&config[start..start + n]);
    }
}

/// A transport shared between the vCPUs (MMIO exits) and a device's
/// host-side thread.
pub type SharedTransport = Arc<Mutex<MmioTransport>>;

pub fn lock(t: &SharedTransport) -> std::sync::MutexGuard<'_, MmioTransport> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serves a device's host side: waits for its host file descriptors to
/// become readable and lets it process, until `stop` is set.
pub fn spawn_host_poller(
    transport: SharedTransport,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let name = format!("virtio-{}", lock(&transport).device_name());
    std::thread::Builder::new().name(name).spawn(move || {
        crate::seccomp::install(crate::seccomp::Kind::Virtio);
        use std::sync::atomic::Ordering;
        while !stop.load(Ordering::Relaxed) {
            let fds = lock(&transport).host_fds();
            // A descriptor closed meanwhile only causes one extra round.
            let _ = crate::poll::readable(&fds, Some(std::time::Duration::from_millis(50)));
            lock(&transport).process();
        }
    })
}

/// Where the `index`th virtio-mmio device sits and which GSI it raises.
pub fn slot(index: usize) -> crate::boot::acpi::MmioDeviceInfo {
    crate::boot::acpi::MmioDeviceInfo {
        base: MMIO_BASE + index as u64 * MMIO_STRIDE,
        len: MMIO_STRIDE,
        gsi: FIRST_GSI + index as u32,
    }
}

/// Bounds-checked guest-memory access for devices: every failure is the
/// guest's fault (a buffer it described wrongly), so it is a DeviceError.
pub fn guest_read(
    mem: &GuestMemoryMmap,
    addr: GuestAddress,
    buf: &mut [u8],
) -> Result<(), DeviceError> {
    use vm_memory::Bytes;
    mem.read_slice(buf, addr)
        .map_err(|e| DeviceError(format!("reading {} bytes at {:#x}: {e}", buf.len(), addr.0)))
}

pub fn guest_write(
    mem: &GuestMemoryMmap,
    addr: GuestAddress,
    buf: &[u8],
) -> Result<(), DeviceError> {
    use vm_memory::Bytes;
    mem.write_slice(buf, addr)
        .map_err(|e| DeviceError(format!("writing {} bytes at {:#x}: {e}", buf.len(), addr.0)))
}

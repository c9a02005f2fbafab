//! Emulated devices and the port-I/O and MMIO buses that dispatch guest
//! accesses.
//!
//! Each device owns its state and answers reads and writes at offsets from
//! its base address. A device never ends the VM itself: it returns an
//! [`IoAction`] and the run loop decides. A device that a guest feeds
//! garbage (a broken virtqueue) goes into its own error state; it must not
//! panic, and the VM and the other devices keep running.

pub mod debug_exit;
pub mod pit;
pub mod power;
pub mod serial;
pub mod virtio;

use std::sync::{Arc, Mutex};

/// A device's state as a snapshot keeps it: each device saves and
/// restores its own, beside its code. Restoring keeps the device's host
/// side (its output, its interrupt line) and replaces what the guest sees.
pub trait Persist {
    type State: serde::Serialize + serde::de::DeserializeOwned;
    fn save(&self) -> Self::State;
    /// A state that cannot be applied is refused with the reason.
    fn restore(&mut self, state: &Self::State) -> Result<(), String>;
}

/// Locks a device for the VMM's own use (a snapshot); a device that
/// panicked while holding its lock is taken as it was left.
pub fn lock_device<T: ?Sized>(device: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    device
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the run loop must do after a device access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoAction {
    None,
    /// The guest asked to end the VM with this process exit status.
    Exit(i32),
}

pub trait PioDevice: Send {
    fn read(&mut self, offset: u16, data: &mut [u8]);
    fn write(&mut self, offset: u16, data: &[u8]) -> IoAction;
}

struct Mapping {
    base: u16,
    len: u16,
    device: Arc<Mutex<dyn PioDevice>>,
}

/// Port-I/O address space shared by all vCPUs.
#[derive(Clone, Default)]
pub struct PioBus {
    mappings: Arc<Vec<Mapping>>,
}

impl PioBus {
    pub fn builder() -> PioBusBuilder {
        PioBusBuilder::default()
    }

    fn find(&self, port: u16) -> Option<(&Mapping, u16)> {
        self.mappings
            .iter()
            .find(|m| port >= m.base && port - m.base < m.len)
            .map(|m| (m, port - m.base))
    }

    /// Reads from an unmapped port return all ones, as on a PC bus.
    pub fn read(&self, port: u16, data: &mut [u8]) {
        match self.find(port) {
            Some((m, offset)) => lock(&m.device).read(offset, data),
            None => {
                tracing::trace!("read from unmapped port {port:#x}");
                data.fill(0xff)
            }
        }
    }

    pub fn write(&self, port: u16, data: &[u8]) -> IoAction {
        match self.find(port) {
            Some((m, offset)) => lock(&m.device).write(offset, data),
            None => {
                tracing::trace!("write to unmapped port {port:#x}: {data:02x?}");
                IoAction::None
            }
        }
    }
}

/// A device that panicked while holding its lock has its state left as it
/// was; carrying on keeps the rest of the VM alive.
fn lock(device: &Mutex<dyn PioDevice>) -> std::sync::MutexGuard<'_, dyn PioDevice + 'static> {
    device
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Default)]
pub struct PioBusBuilder {
    mappings: Vec<Mapping>,
}

impl PioBusBuilder {
    pub fn map(mut self, base: u16, len: u16, device: Arc<Mutex<dyn PioDevice>>) -> Self {
        self.mappings.push(Mapping { base, len, device });
        self
    }

    pub fn build(self) -> PioBus {
        PioBus {
            mappings: Arc::new(self.mappings),
        }
    }
}

/// A device with its guest-physical base and length, for [`MmioBus::new`].
pub type MmioDeviceAt = (u64, u64, Arc<Mutex<dyn MmioDevice>>);

/// A device in the guest-physical MMIO space.
pub trait MmioDevice: Send {
    fn read(&mut self, offset: u64, data: &mut [u8]);
    fn write(&mut self, offset: u64, data: &[u8]) -> IoAction;
}

struct MmioMapping {
    base: u64,
    len: u64,
    device: Arc<Mutex<dyn MmioDevice>>,
}

/// MMIO address space shared by all vCPUs: accesses that KVM does not back
/// with memory arrive here as MMIO exits.
#[derive(Clone, Default)]
pub struct MmioBus {
    mappings: Arc<Vec<MmioMapping>>,
}

impl MmioBus {
    pub fn new(devices: Vec<MmioDeviceAt>) -> Self {
        let mappings = devices
            .into_iter()
            .map(|(base, len, device)| MmioMapping { base, len, device })
            .collect();
        Self {
            mappings: Arc::new(mappings),
        }
    }

    fn find(&self, addr: u64) -> Option<(&MmioMapping, u64)> {
        self.mappings
            .iter()
            .find(|m| addr >= m.base && addr - m.base < m.len)
            .map(|m| (m, addr - m.base))
    }

    /// Reads of unbacked addresses return all ones, as on real hardware.
    pub fn read(&self, addr: u64, data: &mut [u8]) {
        match self.find(addr) {
            Some((m, offset)) => lock_mmio(&m.device).read(offset, data),
            None => {
                tracing::trace!("MMIO read from unmapped {addr:#x}");
                data.fill(0xff)
            }
        }
    }

    pub fn write(&self, addr: u64, data: &[u8]) -> IoAction {
        match self.find(addr) {
            Some((m, offset)) => lock_mmio(&m.device).write(offset, data),
            None => {
                tracing::trace!("MMIO write to unmapped {addr:#x}: {data:02x?}");
                IoAction::None
            }
        }
    }
}

fn lock_mmio(
    device: &Mutex<dyn MmioDevice>,
) -> std::sync::MutexGuard<'_, dyn MmioDevice + 'static> {
    device
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

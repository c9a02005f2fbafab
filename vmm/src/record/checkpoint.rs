//! Checkpoints: the whole machine state at an instruction position, kept
//! in memory. vCPU, interrupt controllers, UART and PIT are saved whole
//! (a few KiB); guest memory is saved as the pages written since the
//! previous checkpoint (KVM's dirty log), plus one full copy taken when
//! the recording began. Going back to checkpoint `k` rewrites only the
//! pages written since the machine was last at a checkpoint, with their
//! contents as of `k`.

use std::collections::{BTreeSet, HashMap};

use crate::vm::GuestMemoryMmap;
use kvm_ioctls::VmFd;
use serde::{Deserialize, Serialize};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryRegion};

use crate::devices::pit::PitState;
use crate::devices::serial::SerialSnapshot;
use crate::error::{Error, Result};
use crate::vcpu::state::VcpuState;
use crate::vm::KvmVmState;

pub const PAGE: u64 = 4096;

/// Everything but memory, at one instruction position.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MachineState {
    pub vcpu: VcpuState,
    pub kvm: KvmVmState,
    pub serial: SerialSnapshot,
    pub pit: PitState,
    pub clock_ns: u64,
}

#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub icount: u64,
    pub state: MachineState,
    /// The log entries before this position.
    pub log_len: usize,
    /// Pages written between the previous checkpoint and this one.
    pub written: Vec<u64>,
}

/// A page's contents as of a checkpoint (by index).
type PageVersion = (usize, Box<[u8]>);

/// Guest memory's history: the full image at the start and, per page, its
/// contents at each checkpoint that saw it written.
pub struct MemoryHistory {
    initial: Vec<u8>,
    /// page -> its versions, by ascending checkpoint index.
    versions: HashMap<u64, Vec<PageVersion>>,
    /// Pages KVM saw written since the machine was last at a checkpoint.
    dirty: BTreeSet<u64>,
    pub bytes_kept: usize,
}

/// Guest memory as one flat range from 0 (how this VMM lays it out).
fn regions(mem: &GuestMemoryMmap) -> Vec<(u64, u64)> {
    mem.iter().map(|r| (r.start_addr().0, r.len())).collect()
}

impl MemoryHistory {
    pub fn new(mem: &GuestMemoryMmap) -> Result<Self> {
        let mut initial = Vec::new();
        for (start, len) in regions(mem) {
            if start != initial.len() as u64 {
                return Err(Error::GuestMemory(
                    "recording needs guest memory in one range from 0".into(),
                ));
            }
            let at = initial.len();
            initial.resize(at + len as usize, 0);
            mem.read_slice(&mut initial[at..], GuestAddress(start))
                .map_err(|e| Error::GuestMemory(format!("copying guest memory: {e}")))?;
        }
        Ok(Self::from_image(initial))
    }

    pub fn from_image(initial: Vec<u8>) -> Self {
        Self {
            bytes_kept: initial.len(),
            initial,
            versions: HashMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    pub fn initial(&self) -> &[u8] {
        &self.initial
    }

    /// Adds the pages KVM logged as written since the last call.
    pub fn sync(&mut self, vm: &VmFd, mem: &GuestMemoryMmap) -> Result<()> {
        for (slot, (start, len)) in regions(mem).into_iter().enumerate() {
            let bitmap = vm
                .get_dirty_log(slot as u32, len as usize)
                .map_err(Error::kvm("KVM_GET_DIRTY_LOG"))?;
            for (w, word) in bitmap.iter().enumerate() {
                let mut bits = *word;
                while bits != 0 {
                    let b = bits.trailing_zeros() as u64;
                    bits &= bits - 1;
                    self.dirty.insert(start / PAGE + w as u64 * 64 + b);
                }
            }
        }
        Ok(())
    }

    /// The machine is at checkpoint `index` again (replay passed it):
    /// what was written so far is what that checkpoint already holds.
    pub fn passed(&mut self, vm: &VmFd, mem: &GuestMemoryMmap) -> Result<()> {
        self.sync(vm, mem)?;
        self.dirty.clear();
        Ok(())
    }

    /// Takes a new checkpoint's pages: those written since the last one,
    /// with their contents now.
    pub fn take(&mut self, index: usize, vm: &VmFd, mem: &GuestMemoryMmap) -> Result<Vec<u64>> {
        self.sync(vm, mem)?;
        let written: Vec<u64> = std::mem::take(&mut self.dirty).into_iter().collect();
        for &page in &written {
            let mut buf = vec![0u8; PAGE as usize].into_boxed_slice();
            mem.read_slice(&mut buf, GuestAddress(page * PAGE))
                .map_err(|e| Error::GuestMemory(format!("checkpoint page {page:#x}: {e}")))?;
            self.bytes_kept += buf.len();
            self.versions.entry(page).or_default().push((index, buf));
        }
        Ok(written)
    }

    fn contents_at(&self, page: u64, index: usize) -> &[u8] {
        self.versions
            .get(&page)
            .and_then(|v| v.iter().rev().find(|(i, _)| *i <= index))
            .map(|(_, b)| &b[..])
            .unwrap_or_else(|| {
                let at = (page * PAGE) as usize;
                &self.initial[at..at + PAGE as usize]
            })
    }

    /// Puts memory back to checkpoint `to` from a machine that was last at
    /// checkpoint `from` (plus the pages written since). `written` are the
    /// checkpoints' page lists. Returns how many pages were rewritten.
    pub fn rewind(
        &mut self,
        from: usize,
        to: usize,
        checkpoints: &[Checkpoint],
        vm: &VmFd,
        mem: &GuestMemoryMmap,
    ) -> Result<usize> {
        self.sync(vm, mem)?;
        let mut pages = std::mem::take(&mut self.dirty);
        let (lo, hi) = (from.min(to), from.max(to));
        for c in &checkpoints[lo + 1..=hi] {
            pages.extend(&c.written);
        }
        for &page in &pages {
            mem.write_slice(self.contents_at(page, to), GuestAddress(page * PAGE))
                .map_err(|e| Error::GuestMemory(format!("restoring page {page:#x}: {e}")))?;
        }
        Ok(pages.len())
    }
}

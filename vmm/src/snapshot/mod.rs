//! Snapshots of a whole VM: a state file and a memory file.
//!
//! Owns the file format (magic, format version, length, CRC-32 of the
//! body, then a JSON body), the order state is saved and restored in, and
//! what makes a file unusable: each refusal is one line naming the file and
//! the reason. It does not own the state itself: vCPUs ([`crate::vcpu::state`]),
//! the VM's KVM state ([`crate::vm::KvmVmState`]) and each device
//! ([`crate::devices::Persist`]) save and restore their own; this module
//! only puts the pieces in order.
//!
//! Files are written to a temporary name beside the target and renamed
//! into place, so a failed or interrupted snapshot never replaces a good
//! one. The memory file is written whole and mapped MAP_PRIVATE on restore
//! (never read): the guest's writes stay private to the process, and a
//! reset drops exactly the pages written since (KVM's dirty log) to bring
//! the file's bytes back.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vm_memory::io::WriteVolatile;
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

use crate::boot::EntryMode;
use crate::devices::serial::{SerialSnapshot, SerialTarget};
use std::sync::MutexGuard;

use crate::devices::virtio::{self, MmioTransport, SharedTransport, TransportSnapshot};
use crate::devices::Persist;
use crate::error::{Error, Result};
use crate::vcpu::state::VcpuState;
use crate::vm::{Backing, KvmVmState, MachineShape, Vm};

/// The first bytes of every state file.
pub const MAGIC: &[u8; 8] = b"VMDBGSNP";
/// Bumped whenever the body's meaning changes; older files are refused.
pub const FORMAT_VERSION: u32 = 1;
/// magic, version, reserved, body length, CRC-32, reserved.
pub const HEADER_LEN: usize = 32;
/// A state file is a few hundred KiB at most; more is not one of ours.
const MAX_BODY: u64 = 64 << 20;
const PAGE: usize = 4096;

/// Everything but guest memory, in restore order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VmSnapshot {
    pub shape: MachineShape,
    pub boot_mode: EntryMode,
    pub boot_rip: u64,
    pub kvm: KvmVmState,
    pub vcpus: Vec<VcpuState>,
    pub serial: SerialSnapshot,
    /// Each virtio-mmio transport with its queues, in slot order.
    pub virtio: Vec<TransportSnapshot>,
}

fn bad(path: &Path, why: impl Into<String>) -> Error {
    Error::Snapshot {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

fn bad_mem(path: &Path, why: impl Into<String>) -> Error {
    Error::MemFile {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

/// Every virtio transport of a VM, locked: their host-side threads (vsock's
/// poller) can neither use the queues nor write guest memory while it is
/// saved, swapped or put back, so device state and memory stay one moment.
pub struct DevicesHeld<'a>(Vec<MutexGuard<'a, MmioTransport>>);

/// The transports to lock with [`hold`]: their handles, so the locks do not
/// borrow the VM.
pub fn transports(vm: &Vm) -> Vec<SharedTransport> {
    vm.devices.virtio.clone()
}

pub fn hold(transports: &[SharedTransport]) -> DevicesHeld<'_> {
    DevicesHeld(transports.iter().map(virtio::lock).collect())
}

/// Reads the state of a stopped VM.
pub fn capture(vm: &Vm, held: &DevicesHeld) -> Result<VmSnapshot> {
    if vm.shape.recordable {
        return Err(Error::Api(
            "this VM is built for recording (its PIT and serial interrupts live in the recorder); snapshot files of it are not supported: save the recording instead (--record-to)".into(),
        ));
    }
    for t in &held.0 {
        if let Some(why) = t.snapshot_refusal() {
            return Err(Error::Api(format!("this VM cannot be snapshotted: {why}")));
        }
    }
    let serial = crate::devices::lock_device(&vm.devices.serial).save();
    Ok(VmSnapshot {
        shape: vm.shape.clone(),
        boot_mode: vm.boot.mode,
        boot_rip: vm.boot.rip,
        kvm: KvmVmState::save(vm.vm_fd(), true)?,
        vcpus: vm.save_vcpus()?,
        serial,
        virtio: held.0.iter().map(|t| t.save()).collect(),
    })
}

/// Puts a stopped VM of the same shape into `snap`'s state (memory aside);
/// `fresh` for a machine whose vCPUs have never run.
pub fn apply(vm: &mut Vm, snap: &VmSnapshot, fresh: bool, held: &mut DevicesHeld) -> Result<()> {
    snap.kvm.restore(vm.vm_fd())?;
    vm.restore_vcpus(&snap.vcpus, fresh)?;
    crate::devices::lock_device(&vm.devices.serial)
        .restore(&snap.serial)
        .map_err(Error::Api)?;
    if snap.virtio.len() != held.0.len() {
        return Err(Error::Api(format!(
            "the snapshot has {} virtio devices, this VM {}",
            snap.virtio.len(),
            held.0.len()
        )));
    }
    for (t, state) in held.0.iter_mut().zip(&snap.virtio) {
        t.restore(state).map_err(Error::Api)?;
    }
    vm.boot.mode = snap.boot_mode;
    vm.boot.rip = snap.boot_rip;
    Ok(())
}

/// A temporary name beside `path`, unique to this process.
fn temporary(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}

/// Writes `fill`'s output to a temporary name, syncs it and renames it to
/// `path`; on any failure the temporary file is removed and `path` is
/// untouched.
fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let tmp = temporary(path);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        fill(&mut f)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The frame around every file this VMM persists (snapshots here,
/// recordings in [`crate::record::file`]): magic, format version, reserved,
/// body length, CRC-32 of the body, reserved, then the body.
pub struct Framing {
    pub magic: &'static [u8; 8],
    pub version: u32,
    /// "snapshot", "recording": for the wrong-magic message.
    pub kind: &'static str,
    /// What the body holds ("state"), for the length message.
    pub body: &'static str,
    pub max_body: u64,
}

pub const SNAPSHOT_FRAMING: Framing = Framing {
    magic: MAGIC,
    version: FORMAT_VERSION,
    kind: "snapshot",
    body: "state",
    max_body: MAX_BODY,
};

impl Framing {
    /// The header for `body`.
    pub fn header(&self, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN);
        out.extend_from_slice(self.magic);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out
    }

    /// The checked body of a framed file, or why the file is refused.
    pub fn body<'a>(&self, bytes: &'a [u8]) -> std::result::Result<&'a [u8], String> {
        if bytes.len() < HEADER_LEN {
            return Err(format!(
                "truncated: {} bytes, shorter than the {HEADER_LEN}-byte header",
                bytes.len()
            ));
        }
        if &bytes[..8] != self.magic {
            return Err(format!("not a vmdbg-vmm {} (wrong magic)", self.kind));
        }
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let version = u32_at(8);
        if version != self.version {
            return Err(format!(
                "format version {version}, this vmdbg-vmm reads version {}",
                self.version
            ));
        }
        let len = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
        let body = &bytes[HEADER_LEN..];
        if len > self.max_body || body.len() as u64 != len {
            return Err(format!(
                "truncated or padded: the header says {len} bytes of {}, the file has {}",
                self.body,
                body.len()
            ));
        }
        let want = u32_at(24);
        let got = crc32fast::hash(body);
        if want != got {
            return Err(format!(
                "checksum mismatch (stored {want:#010x}, computed {got:#010x}): the file is corrupt"
            ));
        }
        Ok(body)
    }
}

pub fn encode(snap: &VmSnapshot) -> Vec<u8> {
    let body = serde_json::to_vec(snap).expect("snapshot state is plain data");
    let mut out = SNAPSHOT_FRAMING.header(&body);
    out.extend_from_slice(&body);
    out
}

/// Checks and decodes a state file's bytes; `path` is for the message.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<VmSnapshot> {
    let body = SNAPSHOT_FRAMING.body(bytes).map_err(|why| bad(path, why))?;
    let snap: VmSnapshot =
        serde_json::from_slice(body).map_err(|e| bad(path, format!("unreadable state: {e}")))?;
    snap.check().map_err(|why| bad(path, why))?;
    Ok(snap)
}

impl VmSnapshot {
    /// A state this VMM could have written: its parts agree with its
    /// machine. Checked before anything is built from it, so a crafted
    /// file with a right checksum is refused here with the file named,
    /// not halfway through a restore.
    fn check(&self) -> std::result::Result<(), String> {
        let shape = &self.shape;
        if shape.vcpus == 0 || shape.vcpus > crate::vm::MAX_VCPUS {
            return Err(format!(
                "a machine of {} vCPUs; vmdbg-vmm builds 1 to {}",
                shape.vcpus,
                crate::vm::MAX_VCPUS
            ));
        }
        if self.vcpus.len() != shape.vcpus {
            return Err(format!(
                "{} vCPU states for a machine of {} vCPUs",
                self.vcpus.len(),
                shape.vcpus
            ));
        }
        let virtio = shape
            .devices
            .iter()
            .filter(|d| {
                matches!(
                    d,
                    crate::vm::DeviceKind::Block { .. } | crate::vm::DeviceKind::Vsock { .. }
                )
            })
            .count();
        if self.virtio.len() != virtio {
            return Err(format!(
                "{} virtio device states for a machine of {virtio} virtio devices",
                self.virtio.len()
            ));
        }
        Ok(())
    }
}

pub fn write_state(path: &Path, snap: &VmSnapshot) -> Result<()> {
    let bytes = encode(snap);
    write_atomically(path, |f| f.write_all(&bytes)).map_err(|e| bad(path, format!("writing: {e}")))
}

pub fn read_state(path: &Path) -> Result<VmSnapshot> {
    let mut f = File::open(path).map_err(|e| bad(path, format!("cannot open: {e}")))?;
    let mut bytes = Vec::new();
    Read::by_ref(&mut f)
        .take(MAX_BODY + HEADER_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(path, format!("reading: {e}")))?;
    decode(path, &bytes)
}

/// Writes guest memory, region after region, as a sparse file: pages of
/// zeros are left as holes (they read back as zeros, and on tmpfs or a
/// filesystem with holes they take no space), so a guest that touched a
/// tenth of its RAM makes a file that occupies about a tenth of it.
pub fn write_memory(path: &Path, vm: &Vm) -> Result<()> {
    use std::io::{Seek, SeekFrom};
    write_atomically(path, |f| {
        let mut offset = 0u64;
        for region in vm.mem.iter() {
            let slice = region
                .as_volatile_slice()
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let len = region.len() as usize;
            let mut page = 0usize;
            while page < len {
                let zero = |at: usize| -> bool {
                    let mut words = [0u64; PAGE / 8];
                    slice
                        .subslice(at, PAGE.min(len - at))
                        .map(|p| p.copy_to(&mut words[..]))
                        .is_ok()
                        && words.iter().all(|&w| w == 0)
                };
                if zero(page) {
                    page += PAGE;
                    continue;
                }
                let start = page;
                while page < len && !zero(page) {
                    page += PAGE;
                }
                let end = page.min(len);
                f.seek(SeekFrom::Start(offset + start as u64))?;
                let run = slice
                    .subslice(start, end - start)
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                f.write_all_volatile(&run)
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
            }
            offset += len as u64;
        }
        f.set_len(offset)
    })
    .map_err(|e| bad_mem(path, format!("writing: {e}")))
}

/// Opens a memory file and checks it holds exactly `shape`'s memory.
fn open_memory(path: &Path, shape: &MachineShape) -> Result<File> {
    let f = File::open(path).map_err(|e| bad_mem(path, format!("cannot open: {e}")))?;
    let len = f
        .metadata()
        .map_err(|e| bad_mem(path, format!("cannot stat: {e}")))?
        .len();
    if len != shape.mem_bytes {
        return Err(bad_mem(
            path,
            format!(
                "{len} bytes, but the snapshot's VM has {} bytes ({} MiB) of memory",
                shape.mem_bytes,
                shape.mem_bytes >> 20
            ),
        ));
    }
    Ok(f)
}

/// Replaces the VM's guest memory, at the same host addresses (so KVM's
/// slots stay valid), with a MAP_PRIVATE mapping of `file`.
fn remap_private(vm: &mut Vm, file: &File, path: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let mut offset = 0u64;
    for region in vm.mem.iter() {
        let host = vm
            .mem
            .get_host_address(region.start_addr())
            .map_err(|e| Error::GuestMemory(e.to_string()))?;
        // SAFETY: `host` .. `host + len` is exactly the region vm-memory
        // mapped and still owns (it unmaps the same range on drop); the
        // vCPUs are stopped, and MAP_FIXED replaces the mapping atomically.
        let p = unsafe {
            libc::mmap(
                host.cast(),
                region.len() as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_FIXED | libc::MAP_NORESERVE,
                file.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(bad_mem(
                path,
                format!("mapping: {}", std::io::Error::last_os_error()),
            ));
        }
        offset += region.len();
    }
    vm.backing = Backing::File(path.to_path_buf());
    // Dirty pages count from here: the file is what a reset goes back to.
    vm.log_dirty_pages(true)?;
    vm.take_dirty_log()?;
    Ok(())
}

/// `PUT /snapshot/create`: writes the memory file, then the state file,
/// and keeps running on the new memory file (MAP_PRIVATE) so that a reset
/// can go back to it. The VM must be stopped.
pub fn create(vm: &mut Vm, state_path: &Path, mem_path: &Path) -> Result<VmSnapshot> {
    if state_path == mem_path {
        return Err(bad(
            state_path,
            "the state and the memory need two files; give mem_file_path another name",
        ));
    }
    let transports = transports(vm);
    let held = hold(&transports);
    let snap = capture(vm, &held)?;
    write_memory(mem_path, vm)?;
    write_state(state_path, &snap)?;
    let file = File::open(mem_path).map_err(|e| bad_mem(mem_path, format!("reopening: {e}")))?;
    remap_private(vm, &file, mem_path)?;
    drop(held);
    Ok(snap)
}

/// A VM started from a snapshot in this process: `vmdbg-vmm --restore`,
/// or `PUT /snapshot/load` on a VMM that has no VM yet. `vsock_uds`, if
/// given, is where the restored vsock device listens instead of the
/// snapshot's path (the process that took the snapshot may have removed
/// it), as Firecracker's restore lets the vsock path be overridden.
pub fn restore_new(
    state_path: &Path,
    mem_path: &Path,
    serial: &SerialTarget,
    vsock_uds: Option<&Path>,
) -> Result<(Vm, VmSnapshot)> {
    let mut snap = read_state(state_path)?;
    if let Some(path) = vsock_uds {
        let vsock = snap.shape.devices.iter_mut().find_map(|d| match d {
            crate::vm::DeviceKind::Vsock { uds_path, .. } => Some(uds_path),
            _ => None,
        });
        match vsock {
            Some(uds_path) => *uds_path = path.to_path_buf(),
            None => {
                return Err(bad(
                    state_path,
                    "--vsock-uds given, but the snapshot's VM has no vsock device",
                ))
            }
        }
    }
    let file = open_memory(mem_path, &snap.shape)?;
    let mem = crate::vm::file_memory(&file, snap.shape.mem_bytes)?;
    let mut vm = Vm::build(&snap.shape, mem, serial)?;
    vm.backing = Backing::File(mem_path.to_path_buf());
    vm.log_dirty_pages(true)?;
    let transports = transports(&vm);
    apply(&mut vm, &snap, true, &mut hold(&transports))?;
    Ok((vm, snap))
}

/// `PUT /snapshot/load` on a VMM whose VM has the same shape: swaps in the
/// snapshot's memory and state without a new process. The VM must be
/// stopped; a snapshot of another shape is refused before anything changes.
pub fn load_in_place(vm: &mut Vm, state_path: &Path, mem_path: &Path) -> Result<VmSnapshot> {
    let snap = read_state(state_path)?;
    if snap.shape != vm.shape {
        return Err(bad(
            state_path,
            format!(
                "taken from a machine of another shape ({}); this VM is {}",
                describe(&snap.shape),
                describe(&vm.shape)
            ),
        ));
    }
    let file = open_memory(mem_path, &snap.shape)?;
    let transports = transports(vm);
    let mut held = hold(&transports);
    remap_private(vm, &file, mem_path)?;
    apply(vm, &snap, false, &mut held)?;
    Ok(snap)
}

pub fn describe(shape: &MachineShape) -> String {
    format!(
        "{} MiB, {} vCPU{}, {} device{}",
        shape.mem_bytes >> 20,
        shape.vcpus,
        if shape.vcpus == 1 { "" } else { "s" },
        shape.devices.len(),
        if shape.devices.len() == 1 { "" } else { "s" },
    )
}

/// What a reset did.
#[derive(Clone, Copy, Debug, Default)]
pub struct ResetStats {
    pub pages_dropped: usize,
}

/// Back to `snap` in place: the pages written since the snapshot (or the
/// last reset) — by the guest, in KVM's dirty log, or by the VMM's devices
/// and debugger, in guest memory's own bitmap — are dropped from the
/// private mapping, so the next access reads the memory file again; then
/// the VM, vCPU and device state.
/// The VM must be stopped and backed by the snapshot's memory file.
pub fn reset(vm: &mut Vm, snap: &VmSnapshot) -> Result<ResetStats> {
    if !matches!(vm.backing, Backing::File(_)) {
        return Err(Error::Api(
            "no snapshot to reset to: create or load one first".into(),
        ));
    }
    let mut stats = ResetStats::default();
    let transports = transports(vm);
    let mut held = hold(&transports);
    let logs = vm.take_dirty_log()?;
    for (region, bitmap) in vm.mem.iter().zip(&logs) {
        let host = vm
            .mem
            .get_host_address(region.start_addr())
            .map_err(|e| Error::GuestMemory(e.to_string()))? as usize;
        let pages = region.len() as usize / PAGE;
        for (first, count) in dirty_runs(bitmap) {
            // A bitmap's last word may reach past the region.
            let count = count.min(pages.saturating_sub(first));
            if count == 0 {
                continue;
            }
            // SAFETY: the range lies inside the region's private file
            // mapping (the dirty log has one bit per page of the slot);
            // dropping private pages only makes them read the file again.
            let rc = unsafe {
                libc::madvise(
                    (host + first * PAGE) as *mut libc::c_void,
                    count * PAGE,
                    libc::MADV_DONTNEED,
                )
            };
            if rc != 0 {
                return Err(Error::GuestMemory(format!(
                    "dropping written pages: {}",
                    std::io::Error::last_os_error()
                )));
            }
            stats.pages_dropped += count;
        }
    }
    apply(vm, snap, false, &mut held)?;
    Ok(stats)
}

/// Runs of set bits in a dirty bitmap, as (first page, page count).
pub fn dirty_runs(bitmap: &[u64]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start: Option<usize> = None;
    let total = bitmap.len() * 64;
    for page in 0..=total {
        let set = page < total && bitmap[page / 64] & (1 << (page % 64)) != 0;
        match (set, start) {
            (true, None) => start = Some(page),
            (false, Some(s)) => {
                runs.push((s, page - s));
                start = None;
            }
            _ => {}
        }
    }
    runs
}

#[cfg(test)]
mod tests;

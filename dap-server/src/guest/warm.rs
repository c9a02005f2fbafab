//! Warm starts for `vmdbg run`: the first boot of an image on an engine
//! that can save a VM's state saves it at agent-ready into the cache
//! (`warm/<key>.state`, written whole then renamed); later runs start from
//! it instead of booting. The key covers everything the state depends on:
//! the engine's own key (its binary and version), the kernel and initramfs
//! (path, size, first and last MiB), the command line, memory, vCPUs and
//! this vmdbg's version. A state that fails to start is removed and the
//! guest boots cold. The guest's wall clock is set from the host's after a
//! warm start (the state holds the moment it was saved). A state is a file
//! (the QEMU engine's migration stream) or a directory (the KVM engine's
//! snapshot: vmdbg-vmm's state and memory files).

use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::engine::{Engine, Vm, VmSpec};

/// Boots `spec`, from the saved state where there is one, saving one after
/// a cold boot where the engine can.
pub fn boot(
    engine: &dyn Engine,
    spec: &VmSpec,
    interrupts: &AtomicUsize,
) -> Result<Option<Box<dyn Vm>>> {
    let Some(path) = state_path(engine, spec) else {
        return super::start::boot(engine, spec, interrupts);
    };
    if path.exists() {
        let started = Instant::now();
        match start_or_discard(engine, spec, &path) {
            Ok(vm) => {
                eprintln!(
                    "vmdbg: started from the saved VM state {} in {} ms (--cold boots instead)",
                    path.display(),
                    started.elapsed().as_millis()
                );
                return Ok(Some(vm));
            }
            Err(e) => {
                eprintln!(
                    "vmdbg: the saved VM state {} did not start ({e:#}); booting instead",
                    path.display()
                );
            }
        }
    }
    let Some(mut vm) = super::start::boot(engine, spec, interrupts)? else {
        return Ok(None);
    };
    let started = Instant::now();
    match save_state(vm.as_mut(), &path, KEPT_STATES) {
        Ok(()) => {
            eprintln!(
                "vmdbg: saved the booted VM for the next runs as {} in {} ms",
                path.display(),
                started.elapsed().as_millis()
            );
        }
        Err(e) => eprintln!("vmdbg: could not save the booted VM for the next runs: {e:#}"),
    }
    // The save paused the guest (its clock too, under QEMU).
    super::start::set_guest_clock(vm.as_ref());
    Ok(Some(vm))
}

/// Starts a VM from the saved state at `path`; a state that does not
/// start is removed, so the boot that follows saves a good one.
pub(crate) fn start_or_discard(
    engine: &dyn Engine,
    spec: &VmSpec,
    path: &std::path::Path,
) -> Result<Box<dyn Vm>> {
    start_saved(engine, spec, path).inspect_err(|_| remove_state(path))
}

/// Saves `vm` as the state at `path` (the engine writes it whole under a
/// temporary name and renames it into place) and keeps only the `kept`
/// newest states of that folder.
pub(crate) fn save_state(vm: &mut dyn Vm, path: &std::path::Path, kept: usize) -> Result<()> {
    let dir = path
        .parent()
        .context("a saved VM state's path needs a folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    vm.support_saved_state()
        .context(crate::engine::NO_SAVED_STATE)?
        .save_to(path)?;
    prune(path, kept);
    Ok(())
}

fn start_saved(engine: &dyn Engine, spec: &VmSpec, path: &std::path::Path) -> Result<Box<dyn Vm>> {
    let vm = engine.boot_saved(spec, path)?;
    // The restored agent is past its start-up (its ready event was sent
    // before the save): ask it instead, bounded, as a stale state may hang.
    let agent = vm.agent().clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(agent.hello());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => anyhow::bail!("its agent did not answer: {e}"),
        Err(_) => anyhow::bail!("its agent did not answer within 20 s"),
    }
    vm.agent()
        .set_clock_from_host()
        .context("set the restored guest's clock")?;
    Ok(vm)
}

/// Where the saved state of `spec` on `engine` lives, or None when the
/// engine cannot save one (or there is no cache directory).
pub(crate) fn state_path(engine: &dyn Engine, spec: &VmSpec) -> Option<PathBuf> {
    let engine_key = engine.saved_state_key(spec)?;
    let mut hash = Sha256::new();
    hash.update(engine_key);
    for file in std::iter::once(&spec.image.kernel).chain(&spec.image.initrd) {
        hash.update(fingerprint(file)?);
    }
    hash.update(format!(
        "{}\n{}\n{} {}\n{}",
        spec.image.cmdline,
        spec.extra_cmdline,
        spec.mem_mib,
        spec.cpus,
        env!("CARGO_PKG_VERSION")
    ));
    keyed_state_path("warm", hash)
}

/// `<cache>/<folder>/<key>.state`, the key being the first 8 bytes of
/// `hash` in hex.
pub(crate) fn keyed_state_path(folder: &str, hash: Sha256) -> Option<PathBuf> {
    let key: String = hash
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(
        crate::image::cache_dir()
            .ok()?
            .join(folder)
            .join(format!("{key}.state")),
    )
}

/// A file's path, size, and its first and last MiB: the image cache
/// refreshes its files' modification times on use, so those cannot say
/// whether a kernel or initramfs changed; reading all of a large kernel
/// for each run would cost more than the warm start saves.
fn fingerprint(file: &std::path::Path) -> Option<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    const EDGE: u64 = 1 << 20;
    let mut f = std::fs::File::open(file).ok()?;
    let len = f.metadata().ok()?.len();
    let mut out = format!("{} {len}\n", file.display()).into_bytes();
    let mut head = Vec::new();
    f.by_ref().take(EDGE).read_to_end(&mut head).ok()?;
    f.seek(SeekFrom::Start(len.saturating_sub(EDGE))).ok()?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).ok()?;
    out.extend(Sha256::digest(&head));
    out.extend(Sha256::digest(&tail));
    Some(out)
}

/// States kept besides the newest: each is the size of the guest's used
/// memory (~90 MB for the default image), and an image or QEMU update
/// leaves the old ones unused for good.
const KEPT_STATES: usize = 2;

/// Removes all but the `kept` most recently written states in the newest
/// one's folder.
pub(crate) fn prune(newest: &std::path::Path, kept: usize) {
    let Some(dir) = newest.parent() else { return };
    let mut states: Vec<(SystemTime, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "state"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    states.sort_by_key(|s| std::cmp::Reverse(s.0));
    for (_, old) in states.into_iter().skip(kept) {
        remove_state(&old);
    }
}

/// A saved state is a file (QEMU's migration stream) or a directory (the
/// KVM engine's snapshot: state and memory files).
fn remove_state(path: &std::path::Path) {
    let _ = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
}

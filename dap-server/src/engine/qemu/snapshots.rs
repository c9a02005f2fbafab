//! Snapshots on the QEMU engine: `savevm`/`loadvm` through the human
//! monitor, into a qcow2 image in the VM's runtime directory that is made
//! and attached on the first snapshot; the whole VM saved for a later
//! QEMU by a migration to a file (`-incoming` reads it back); and reset
//! points: the device state without the RAM (`x-ignore-shared`) and a
//! copy of the RAM file, each reset a new QEMU over that image mapped
//! private, or with `VMDBG_QEMU_RESET=loadvm` `savevm` snapshots
//! (docs/testing-in-vms.md has both measured).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{create_qcow2, shell_quote, QemuControl, Relaunch};
use crate::engine::GUEST_RAM;
use crate::engine::{SaveState, SnapshotStore};

/// In a VM's runtime directory: the qcow2 image QEMU keeps its snapshots
/// in (`savevm` stores the VM's state inside a qcow2 image; the guest never
/// sees this drive).
const SNAPSHOT_STORE: &str = "snapshots.qcow2";

impl QemuControl {
    /// Creates and attaches the snapshot image on first use, so VMs that
    /// never snapshot pay nothing for it.
    fn ensure_snapshot_store(&mut self, dir: &Path) -> Result<()> {
        if self.snapshot_store {
            return Ok(());
        }
        if !self.snapshot_store_made {
            create_qcow2(&dir.join(SNAPSHOT_STORE), "snapshots")?;
            self.snapshot_store_made = true;
        }
        self.attach_snapshot_store(dir)
    }

    /// The snapshot image attached to this QEMU process. It is scratch
    /// (removed with the VM), so QEMU never flushes it to the disk: the
    /// fsyncs cost a `loadvm` more than its reads. Its reads go through
    /// io_uring where this QEMU has it, not through a thread pool (a
    /// `loadvm` reads the RAM in 32 kB requests).
    fn attach_snapshot_store(&mut self, dir: &Path) -> Result<()> {
        let path = dir.join(SNAPSHOT_STORE);
        let node = |aio: Option<&str>| {
            let mut file = serde_json::json!({
                "driver": "file",
                "filename": path.display().to_string(),
                "cache": { "no-flush": true },
            });
            if let Some(aio) = aio {
                file["aio"] = aio.into();
            }
            serde_json::json!({
                "driver": "qcow2",
                "node-name": "vmdbg-snapshots",
                "cache": { "no-flush": true },
                "file": file,
            })
        };
        if self
            .qmp
            .execute_with("blockdev-add", node(Some("io_uring")))
            .is_err()
        {
            self.qmp.execute_with("blockdev-add", node(None))?;
        }
        self.snapshot_store = true;
        Ok(())
    }
}

impl SnapshotStore for QemuControl {
    fn save(&mut self, dir: &Path, name: &str) -> Result<()> {
        self.ensure_snapshot_store(dir)?;
        self.qmp.human(&format!("savevm {name}"))
    }

    fn load(&mut self, dir: &Path, name: &str) -> Result<()> {
        self.ensure_snapshot_store(dir)?;
        self.qmp.human(&format!("loadvm {name}"))
    }

    /// `loadvm` puts the virtio-serial port back as it was; the host's end
    /// of the agent's socket never closes.
    fn restore_ends_agent_channels(&self) -> bool {
        false
    }

    fn save_reset_point(&mut self, dir: &Path, name: &str) -> Result<()> {
        self.save_reset_point_files(dir, name)
    }

    fn load_reset_point(&mut self, dir: &Path, name: &str) -> Result<()> {
        self.load_reset_point_files(dir, name)
    }
}

impl SaveState for QemuControl {
    /// A migration to a file (a temporary one, renamed into place once
    /// complete); QEMU stops the guest when it completes (`postmigrate`),
    /// so it is continued after.
    fn save_to(&mut self, path: &Path) -> Result<()> {
        let dir = path
            .parent()
            .context("a saved state's path needs a directory")?;
        let temp = tempfile::Builder::new()
            .prefix(".saving-")
            .tempfile_in(dir)
            .with_context(|| format!("create a temporary file in {}", dir.display()))?;
        self.migrate_to(temp.path())?;
        temp.persist(path)
            .with_context(|| format!("put the saved VM state in place at {}", path.display()))?;
        Ok(())
    }
}

impl QemuControl {
    fn migrate_to(&mut self, path: &Path) -> Result<()> {
        self.migrate_to_file(path)?;
        self.qmp.execute("cont")
    }

    /// A migration to `path`, waited for; the guest is then stopped
    /// (`postmigrate`).
    fn migrate_to_file(&mut self, path: &Path) -> Result<()> {
        self.qmp.execute_with(
            "migrate",
            serde_json::json!({ "uri": format!("exec:cat > {}", shell_quote(path)?) }),
        )?;
        self.wait_for_migration(path, "save the VM to")
    }

    /// Polls the migration (out or in) to its end.
    fn wait_for_migration(&mut self, path: &Path, what: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let status = self
                .qmp
                .execute_with("query-migrate", serde_json::json!({}))?;
            match status.get("status").and_then(|s| s.as_str()) {
                Some("completed") => return Ok(()),
                Some("failed") | Some("cancelled") => bail!(
                    "QEMU could not {what} {}: {}",
                    path.display(),
                    status
                        .get("error-desc")
                        .and_then(|e| e.as_str())
                        .unwrap_or("no reason given")
                ),
                _ if Instant::now() > deadline => {
                    bail!("QEMU took over 2 minutes to {what} {}", path.display())
                }
                _ => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    }
}

/// Whether reset points are the device state and a RAM image, and each
/// reset a new QEMU over them (with the next one started while a test
/// runs): the default, 240 ms per trivial test against 280 ms for `loadvm`
/// in place, interleaved on this 2-core host (docs/testing-in-vms.md).
/// VMDBG_QEMU_RESET=loadvm makes them `savevm` snapshots reset in place.
pub(super) fn resets_by_relaunch() -> bool {
    std::env::var("VMDBG_QEMU_RESET").map_or(true, |v| v != "loadvm")
}

/// A reset point `name`: the device state (vCPUs, devices; a migration
/// with `x-ignore-shared`, so without the RAM, some 60 kB) in the runtime
/// directory, and the RAM image (a sparse copy of the RAM file, taken
/// while the guest is stopped) in the in-memory directory.
fn reset_point_files(relaunch: &Relaunch, name: &str) -> Option<(PathBuf, PathBuf)> {
    let ram_dir = relaunch.ram_dir.as_ref()?;
    Some((
        relaunch.dir.join(format!("reset-{name}.dev")),
        ram_dir.path().join(format!("reset-{name}.ram")),
    ))
}

impl QemuControl {
    /// With the guest's RAM in a shared file: the device state migrated
    /// without it, and the RAM file copied while the guest stands still.
    /// Otherwise (no `/dev/shm`, or this QEMU maps an image private after
    /// a reset) a `savevm`.
    fn save_reset_point_files(&mut self, dir: &Path, name: &str) -> Result<()> {
        let files = self
            .relaunch
            .as_ref()
            .and_then(|r| reset_point_files(r, name));
        let (true, Some((dev, ram))) = (self.ram_shared, files) else {
            return self.save(dir, name);
        };
        // A spare maps the image this replaces.
        if let Some((_, spare)) = self.relaunch.as_mut().and_then(|r| r.spare.take()) {
            let _ = spare.join();
        }
        let was_running = self.running()?;
        if was_running {
            self.qmp.execute("stop")?;
        }
        let saved = (|| -> Result<()> {
            self.set_ignore_shared(true)?;
            let migrated = self.migrate_to_file(&dev);
            self.set_ignore_shared(false)?;
            migrated?;
            let from = self
                .relaunch
                .as_ref()
                .and_then(|r| r.ram_dir.as_ref())
                .map(|d| d.path().join(GUEST_RAM))
                .context("the guest's RAM file")?;
            // Under another name, then renamed: a QEMU that maps an
            // earlier image keeps that one.
            let temp = ram.with_extension("ram-new");
            copy_sparse(&from, &temp)?;
            std::fs::rename(&temp, &ram).with_context(|| format!("rename to {}", ram.display()))
        })();
        if was_running {
            self.qmp.execute("cont")?;
        }
        saved?;
        let relaunch = self.relaunch.as_mut().context("a relaunchable QEMU")?;
        relaunch.spare = Some((name.to_string(), start_spare(relaunch, &ram)?));
        Ok(())
    }

    /// A new QEMU over the reset point's RAM image (mapped private: its
    /// pages are read in as the guest touches them, its writes stay in
    /// this process), started from the device state alone; the old QEMU
    /// ends first. The agent client goes on over the new connection.
    fn load_reset_point_files(&mut self, dir: &Path, name: &str) -> Result<()> {
        let files = self
            .relaunch
            .as_ref()
            .and_then(|r| reset_point_files(r, name));
        let Some((dev, ram)) = files.filter(|(dev, ram)| dev.exists() && ram.exists()) else {
            return self.load(dir, name);
        };
        let relaunch = self.relaunch.as_mut().context("a relaunchable QEMU")?;
        let spare = relaunch
            .spare
            .take()
            .filter(|(point, _)| point == name)
            .map(|(_, spare)| spare);
        let _ = self.qmp.execute("quit");
        self.process.wait_or_kill(Duration::from_secs(2))?;
        let (process, qmp, agent_stream) = match spare.map(|s| s.join()) {
            Some(Ok(Ok(launched))) => launched,
            // A spare that failed to start: start one now, reporting why.
            _ => start_spare(relaunch, &ram)?
                .join()
                .map_err(|_| anyhow::anyhow!("the QEMU start panicked"))??,
        };
        self.process = process;
        self.qmp = qmp;
        self.ram_shared = false;
        self.snapshot_store = false;
        relaunch
            .agent
            .reconnect(agent_stream.try_clone()?, agent_stream);
        self.set_ignore_shared(true)?;
        self.qmp.execute_with(
            "migrate-incoming",
            serde_json::json!({ "uri": format!("exec:cat {}", shell_quote(&dev)?) }),
        )?;
        self.wait_for_migration(&dev, "load the reset point from")?;
        // The state was saved with the guest stopped, and arrives so.
        self.qmp.execute("cont")?;
        let relaunch = self.relaunch.as_mut().context("a relaunchable QEMU")?;
        let next = start_spare(relaunch, &ram)?;
        relaunch.spare = Some((name.to_string(), next));
        if self.snapshot_store_made {
            self.attach_snapshot_store(dir)?;
        }
        Ok(())
    }

    fn running(&mut self) -> Result<bool> {
        let status = self
            .qmp
            .execute_with("query-status", serde_json::json!({}))?;
        Ok(status.get("running").and_then(|r| r.as_bool()) == Some(true))
    }

    fn set_ignore_shared(&mut self, on: bool) -> Result<()> {
        self.qmp
            .execute_with(
                "migrate-set-capabilities",
                serde_json::json!({ "capabilities": [
                    { "capability": "x-ignore-shared", "state": on }
                ] }),
            )
            .map(drop)
    }
}

/// Starts a QEMU for the next reset to the RAM image `ram`, in a thread:
/// it waits for its migration (`-incoming defer`). Its gdb stub takes over
/// the socket's path now (a debugger's connection ends with a reset
/// anyway).
fn start_spare(
    relaunch: &Relaunch,
    ram: &Path,
) -> Result<std::thread::JoinHandle<Result<super::Launched>>> {
    let image = super::Ram {
        path: ram.to_path_buf(),
        shared: false,
    };
    let _ = std::fs::remove_file(relaunch.dir.join(crate::engine::RSP_SOCKET));
    let process =
        relaunch
            .engine
            .spawn(&relaunch.spec, &relaunch.dir, Some(&image), Some("defer"))?;
    let engine = relaunch.engine.clone();
    let listeners = relaunch.listeners.clone();
    Ok(std::thread::spawn(move || {
        engine.connect(process, &listeners)
    }))
}

/// Copies the data of `from` (a file in memory, mostly holes) to `to`,
/// leaving holes where `from` has them or holds only zeros, so the copy
/// costs what the guest used, not its RAM size.
fn copy_sparse(from: &Path, to: &Path) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::os::fd::AsRawFd;
    let mut src = std::fs::File::open(from).with_context(|| format!("open {}", from.display()))?;
    let len = src.metadata()?.len();
    let mut dst = std::fs::File::create(to).with_context(|| format!("create {}", to.display()))?;
    dst.set_len(len)?;
    let fd = src.as_raw_fd();
    let mut buf = vec![0u8; 1 << 20];
    let mut at: i64 = 0;
    while (at as u64) < len {
        // SAFETY: lseek on an open file descriptor.
        let data = unsafe { libc::lseek(fd, at, libc::SEEK_DATA) };
        if data < 0 {
            break; // ENXIO: no data after `at`
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        let end = if hole < 0 { len as i64 } else { hole };
        src.seek(SeekFrom::Start(data as u64))?;
        let mut pos = data;
        while pos < end {
            let n = buf.len().min((end - pos) as usize);
            src.read_exact(&mut buf[..n])?;
            if buf[..n].iter().any(|&b| b != 0) {
                dst.seek(SeekFrom::Start(pos as u64))?;
                dst.write_all(&buf[..n])?;
            }
            pos += n as i64;
        }
        at = end;
    }
    Ok(())
}

//! Snapshots on the QEMU engine: `savevm`/`loadvm` through the human
//! monitor, into a qcow2 image in the VM's runtime directory that is made
//! and attached on the first snapshot; and the whole VM saved for a later
//! QEMU by a migration to a file (`-incoming` reads it back).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{create_qcow2, shell_quote, QemuControl};
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
        let path = dir.join(SNAPSHOT_STORE);
        create_qcow2(&path, "snapshots")?;
        self.qmp.execute_with(
            "blockdev-add",
            serde_json::json!({
                "driver": "qcow2",
                "node-name": "vmdbg-snapshots",
                "file": { "driver": "file", "filename": path.display().to_string() },
            }),
        )?;
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
        self.qmp.execute_with(
            "migrate",
            serde_json::json!({ "uri": format!("exec:cat > {}", shell_quote(path)?) }),
        )?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let status = self
                .qmp
                .execute_with("query-migrate", serde_json::json!({}))?;
            match status.get("status").and_then(|s| s.as_str()) {
                Some("completed") => break,
                Some("failed") | Some("cancelled") => bail!(
                    "QEMU could not save the VM to {}: {}",
                    path.display(),
                    status
                        .get("error-desc")
                        .and_then(|e| e.as_str())
                        .unwrap_or("no reason given")
                ),
                _ if Instant::now() > deadline => {
                    bail!("saving the VM to {} took over 2 minutes", path.display())
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        self.qmp.execute("cont")
    }
}

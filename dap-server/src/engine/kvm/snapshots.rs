//! Snapshots on the KVM engine: vmdbg-vmm's control API writes a state
//! file and a memory file per snapshot (`PUT /snapshot/create`), loads
//! them in place (`PUT /snapshot/load`), or — for the snapshot it last
//! took or loaded — resets to it without reading anything
//! (`PUT /vmdbg/reset`, the memory file being mapped private). The same
//! files, in a directory of their own, are the saved state a later
//! vmdbg-vmm starts from.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{KvmControl, SNAPSHOT_MEM, SNAPSHOT_STATE};
use crate::engine::{SaveState, SnapshotStore};

fn snapshot_dir(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("snapshot-{name}"))
}

impl SnapshotStore for KvmControl {
    /// The VMM resets the vsock transport on a restore, as Firecracker
    /// does: the guest's end of every connection is gone.
    fn restore_ends_agent_channels(&self) -> bool {
        true
    }

    fn save(&mut self, dir: &Path, name: &str) -> Result<()> {
        let at = snapshot_dir(dir, name);
        std::fs::create_dir_all(&at).with_context(|| format!("create {}", at.display()))?;
        self.stopped(|api| api.create(&at.join(SNAPSHOT_STATE), &at.join(SNAPSHOT_MEM)))?;
        self.current = Some(name.to_string());
        Ok(())
    }

    fn load(&mut self, dir: &Path, name: &str) -> Result<()> {
        let at = snapshot_dir(dir, name);
        let in_place = self.current.as_deref() == Some(name);
        self.stopped(|api| {
            if in_place {
                api.reset()
            } else {
                api.load(&at.join(SNAPSHOT_STATE), &at.join(SNAPSHOT_MEM))
            }
        })?;
        self.current = Some(name.to_string());
        self.reconnect_agent();
        Ok(())
    }
}

impl SaveState for KvmControl {
    /// A snapshot in a directory of its own, put in place by one rename:
    /// a state file never pairs with another snapshot's memory.
    fn save_to(&mut self, path: &Path) -> Result<()> {
        let parent = path
            .parent()
            .context("a saved state's path needs a directory")?;
        let temp = tempfile::Builder::new()
            .prefix(".saving-")
            .tempdir_in(parent)
            .with_context(|| format!("create a temporary directory in {}", parent.display()))?;
        self.stopped(|api| {
            api.create(
                &temp.path().join(SNAPSHOT_STATE),
                &temp.path().join(SNAPSHOT_MEM),
            )
        })?;
        // The VMM now runs on the saved memory file (MAP_PRIVATE): its
        // reset goes back to the saved state.
        self.current = None;
        if path.is_dir() {
            std::fs::remove_dir_all(path)
                .with_context(|| format!("remove the old saved state {}", path.display()))?;
        }
        let temp = temp.keep();
        std::fs::rename(&temp, path)
            .with_context(|| format!("put the saved VM state in place at {}", path.display()))
            .inspect_err(|_| drop(std::fs::remove_dir_all(&temp)))
    }
}

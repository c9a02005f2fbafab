//! Named snapshots of a running VM, restored in place (the same process,
//! sockets and agent client): the DAP server's `vmdbg/snapshot` and
//! `vmdbg/restore`. An engine stores and loads them ([`SnapshotStore`]);
//! [`Snapshots`] keeps the names taken and checks them, the same for every
//! engine.

use std::path::Path;

use anyhow::{bail, Result};

/// How an engine keeps snapshots of its VM.
pub trait SnapshotStore {
    /// Saves the VM under `name`, replacing a snapshot of that name; `dir`
    /// is the VM's runtime directory, for whatever files the engine keeps
    /// snapshots in. The VM runs on as it was.
    fn save(&mut self, dir: &Path, name: &str) -> Result<()>;
    /// Puts the VM back to the snapshot `name`, in place.
    fn load(&mut self, dir: &Path, name: &str) -> Result<()>;
    /// Whether a restore ends the agent's connection (the client then
    /// reconnects) and with it every channel over it, such as a program
    /// session's debugger.
    fn restore_ends_agent_channels(&self) -> bool;
    /// Saves the VM under `name` as a reset point ([`Snapshots::take_reset_point`]):
    /// the engine may keep it in whatever form comes back fastest, with
    /// the VM then free to come back as a new process. Default: [`save`](Self::save).
    fn save_reset_point(&mut self, dir: &Path, name: &str) -> Result<()> {
        self.save(dir, name)
    }
    /// Puts the VM back to the reset point `name` ([`Snapshots::reset`]).
    /// Default: [`load`](Self::load).
    fn load_reset_point(&mut self, dir: &Path, name: &str) -> Result<()> {
        self.load(dir, name)
    }
}

/// A VM's snapshots, as [`crate::engine::Vm::support_snapshots`] hands
/// them out.
pub struct Snapshots<'a> {
    pub(in crate::engine) store: &'a mut dyn SnapshotStore,
    pub(in crate::engine) dir: &'a Path,
    /// Oldest first.
    pub(in crate::engine) names: &'a mut Vec<String>,
}

impl Snapshots<'_> {
    /// Saves the whole VM (memory, vCPUs, devices) under `name`, replacing
    /// a snapshot of that name; the VM runs on as it was.
    pub fn take(&mut self, name: &str) -> Result<()> {
        check_name(name)?;
        self.store.save(self.dir, name)?;
        self.names.retain(|n| n != name);
        self.names.push(name.to_string());
        Ok(())
    }

    /// Puts the VM back to the snapshot `name`, in place.
    pub fn restore(&mut self, name: &str) -> Result<()> {
        if !self.names.iter().any(|n| n == name) {
            bail!(
                "no snapshot named {name:?} (taken: {})",
                if self.names.is_empty() {
                    "none".to_string()
                } else {
                    self.names.join(", ")
                }
            );
        }
        self.store.load(self.dir, name)
    }

    /// Saves the VM as a reset point `name`, for a VM that comes back to
    /// it again and again with nothing attached but its agent (`vmdbg
    /// test`'s set-up state): [`reset`](Self::reset) may then start the VM
    /// anew from it (the QEMU engine does: a new QEMU process over the
    /// saved RAM image, which ends a debugger's connection to its stub and
    /// every channel over the agent; the agent client itself goes on). A
    /// reset point is not among [`names`](Self::names).
    pub fn take_reset_point(&mut self, name: &str) -> Result<()> {
        check_name(name)?;
        self.store.save_reset_point(self.dir, name)
    }

    /// Puts the VM back to the reset point `name` (see
    /// [`take_reset_point`](Self::take_reset_point)).
    pub fn reset(&mut self, name: &str) -> Result<()> {
        self.store.load_reset_point(self.dir, name)
    }

    /// The snapshots taken, oldest first.
    pub fn names(&self) -> Vec<String> {
        self.names.clone()
    }

    /// See [`SnapshotStore::restore_ends_agent_channels`].
    pub fn restore_ends_agent_channels(&self) -> bool {
        self.store.restore_ends_agent_channels()
    }
}

/// Snapshot names travel through engines' command languages (QEMU's
/// monitor): letters, digits, `-`, `_` and `.` only.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        bail!("snapshot name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names_that_a_monitor_command_could_misread_are_refused() {
        for good in ["snapshot-1", "a", "v1.2_x", &"x".repeat(64)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "x;quit", "é", &"x".repeat(65)] {
            let e = check_name(bad).unwrap_err().to_string();
            assert!(e.contains("use 1 to 64 letters"), "{bad}: {e}");
        }
    }
}

//! The whole running VM (memory, vCPUs, devices) written to a file that a
//! later process starts from ([`crate::engine::Engine::boot_saved`]): what
//! warm starts and `vmdbg test`'s set-up state stand on.

use std::path::Path;

use anyhow::Result;

/// A VM whose state can be saved for a later process.
pub trait SaveState {
    /// Writes the running VM's state to `path`: whole or not at all (a
    /// temporary name, then a rename). The VM runs on.
    fn save_to(&mut self, path: &Path) -> Result<()>;
}

/// Why a VM cannot be saved.
pub const NO_SAVED_STATE: &str =
    "this engine cannot save a VM's state to a file (a replay's state is its recording)";

//! Launch and attach configurations of kernel sessions. A launch starts
//! its VM through the engine interface ([`super::kernel`]); an attach
//! connects to any RSP endpoint.

use std::path::PathBuf;

use serde::Deserialize;

/// A kernel launch (see schema/launch.schema.json).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaunchConfig {
    /// A vmlinux ELF, a bzImage, or "default" (the default image's kernel).
    pub kernel: PathBuf,
    /// An initramfs. Without one (and without `run`, and not `"default"`)
    /// the kernel boots alone: a bare-metal kernel, no agent.
    #[serde(default)]
    pub initrd: Option<PathBuf>,
    /// auto, kvm or qemu; default $VMDBG_ENGINE, else auto.
    #[serde(default)]
    pub engine: Option<crate::engine::EngineChoice>,
    /// Shell commands the agent runs in the guest once it is up.
    #[serde(default)]
    pub run: Vec<String>,
    /// DWARF path prefix → where those files are on this host.
    #[serde(default)]
    pub source_map: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub symbols: Option<PathBuf>,
    #[serde(default)]
    pub cmdline: Option<String>,
    #[serde(default)]
    pub mem: Option<String>,
    #[serde(default)]
    pub cpus: Option<u32>,
    #[serde(default)]
    pub stop_on_entry: bool,
    /// Record the kernel's run first, then debug its replay, backwards too
    /// (QEMU's record/replay, or vmdbg-vmm's own recorder for a kernel
    /// alone; see [`crate::engine::RecordSpec`]).
    #[serde(default)]
    pub record: bool,
    /// Seconds the recording may run at most; default 60.
    #[serde(default)]
    pub record_limit: Option<u32>,
    /// Path of vmdbg-vmm; else $VMDBG_VMM, next to `vmdbg`, then PATH.
    #[serde(default)]
    pub vmm: Option<PathBuf>,
}

impl LaunchConfig {
    pub fn is_default_kernel(&self) -> bool {
        self.kernel.as_os_str() == "default"
    }

    /// A kernel that boots alone, without an initramfs or an agent (a
    /// bare-metal kernel): no `initrd`, no `run`, not `"default"`.
    pub fn is_kernel_alone(&self) -> bool {
        !self.is_default_kernel() && self.initrd.is_none() && self.run.is_empty()
    }

    /// A `record` session's time limit.
    pub fn record_limit(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.record_limit.unwrap_or(60).into())
    }
}

/// An attach to any RSP endpoint.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachConfig {
    pub gdb_server: String,
    pub symbols: PathBuf,
    /// DWARF path prefix → where those files are on this host.
    #[serde(default)]
    pub source_map: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub stop_on_entry: Option<bool>,
}

/// Where the engine's console lines go.
pub type LineSink = tokio::sync::mpsc::UnboundedSender<(&'static str, String)>;

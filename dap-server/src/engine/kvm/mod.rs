//! The embedded KVM engine: the guest runs under `vmdbg-vmm`, vmdbg's own
//! VMM (vmm/), as a child process.
//!
//! Files, all in the VM's private runtime directory:
//! - `vsock.sock`: the VMM's virtio-vsock bridge (Firecracker's style). The
//!   agent listens on vsock port [`AGENT_VSOCK_PORT`] (the engine puts
//!   `vmdbg.agent=vsock:<port>` on the kernel command line); vmdbg
//!   connects with `CONNECT <port>\n` and, once the guest accepts,
//!   reads `OK <host port>\n`. See [`connector`].
//! - `gdb.sock`: the VMM's gdb stub, the RSP endpoint (the VMM listens);
//! - `console.log`: COM1.
//!
//! vmdbg-vmm has no control socket: pause and resume stop and continue
//! the whole process (SIGSTOP/SIGCONT), which freezes the vCPUs and the
//! devices together; shutdown is SIGTERM (the guest is disposable), then
//! SIGKILL.

mod connector;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use vmdbg_agent::client::AgentClient;

use super::process::{host_tsc_khz, spawn_vmm, VmProcess};
use super::{Engine, EngineVm, RuntimeDir, Vm, VmControl, VmExit, VmSpec, CONSOLE_LOG, RSP_SOCKET};

/// The vsock port the agent listens on under this engine.
pub const AGENT_VSOCK_PORT: u32 = 1024;

pub struct KvmEngine {
    pub vmm: PathBuf,
}

impl KvmEngine {
    pub fn new() -> Result<Self> {
        Ok(KvmEngine {
            vmm: find_vmm(None)?,
        })
    }

    fn command(&self, spec: &VmSpec, dir: &Path) -> Command {
        let mut cmdline = format!(
            "{} pci=off vmdbg.agent=vsock:{AGENT_VSOCK_PORT}",
            spec.image.cmdline
        );
        if let Some(khz) = host_tsc_khz() {
            cmdline.push_str(&format!(" tsc_early_khz={khz}"));
        }
        if !spec.extra_cmdline.is_empty() {
            cmdline.push(' ');
            cmdline.push_str(&spec.extra_cmdline);
        }
        let mut cmd = Command::new(&self.vmm);
        cmd.arg("--kernel").arg(&spec.image.kernel);
        if let Some(initrd) = &spec.image.initrd {
            cmd.arg("--initrd").arg(initrd);
        }
        cmd.args(["--mem", &format!("{}M", spec.mem_mib)])
            .args(["--cpus", &spec.cpus.to_string()])
            .args(["--cmdline", &cmdline])
            .arg("--serial")
            .arg(format!("file:{}", dir.join(CONSOLE_LOG).display()))
            .arg("--vsock-uds")
            .arg(dir.join("vsock.sock"))
            .arg("--gdb")
            .arg(format!("unix:{}", dir.join(RSP_SOCKET).display()));
        if spec.start_paused {
            cmd.arg("--wait-gdb");
        }
        cmd
    }
}

/// Finds the vmdbg-vmm binary: `explicit` (a launch argument), $VMDBG_VMM,
/// the directory of this executable, then PATH.
pub fn find_vmm(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        bail!(
            "launch argument `vmm` names {}, which is not a file",
            p.display()
        );
    }
    if let Some(p) = std::env::var_os("VMDBG_VMM").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!("VMDBG_VMM names {}, which is not a file", p.display());
    }
    let beside_me = std::env::current_exe()
        .ok()
        .and_then(|me| Some(me.parent()?.join("vmdbg-vmm")));
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("vmdbg-vmm"));
    beside_me
        .into_iter()
        .chain(on_path)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "cannot find vmdbg-vmm: set the launch argument `vmm` or VMDBG_VMM, put it next to vmdbg, or on PATH \
                 (`cargo build --release` builds it beside vmdbg)"
            )
        })
}

impl Engine for KvmEngine {
    fn describe(&self) -> String {
        "kvm (vmdbg-vmm)".into()
    }

    fn boot(&self, spec: &VmSpec) -> Result<Box<dyn Vm>> {
        if spec.record.is_some() {
            bail!("recording on the KVM engine (vmdbg-vmm) is not here yet: use `engine: \"qemu\"` to record with QEMU's record/replay");
        }
        let dir = RuntimeDir::create()?;
        let cmd = self.command(spec, dir.path());
        // vmdbg hands the RSP endpoint to whoever needs it (Vm::rsp_endpoint).
        let process = spawn_vmm(cmd, "vmdbg-vmm: ", &["gdb can attach with"])?;
        let (reader, writer, connector) =
            connector::connect_agent(dir.path().join("vsock.sock"), AGENT_VSOCK_PORT);
        let agent = Arc::new(AgentClient::new(reader, writer));
        let control = KvmControl {
            process,
            connector,
            ended_by_us: false,
            reported: false,
        };
        Ok(Box::new(EngineVm::new(
            self.describe(),
            dir,
            agent,
            Box::new(control),
        )))
    }
}

struct KvmControl {
    process: VmProcess,
    connector: connector::Handle,
    /// Whether the warning about a failed VMM was given.
    reported: bool,
    /// We sent the signal that ended the VMM.
    ended_by_us: bool,
}

impl VmControl for KvmControl {
    fn pause(&mut self) -> Result<()> {
        self.process.signal(libc::SIGSTOP)
    }
    fn resume(&mut self) -> Result<()> {
        self.process.signal(libc::SIGCONT)
    }

    fn shutdown(&mut self, grace: Duration) -> Result<VmExit> {
        if let Some(exit) = self.try_exit() {
            return Ok(exit);
        }
        self.ended_by_us = true;
        self.connector.stop();
        // A paused VMM would not act on SIGTERM until continued.
        let _ = self.process.signal(libc::SIGCONT);
        let _ = self.process.signal(libc::SIGTERM);
        self.process.wait_or_kill(grace)?;
        Ok(self.try_exit().expect("the VMM has ended"))
    }

    fn try_exit(&mut self) -> Option<VmExit> {
        let exit = self.process.try_exit()?;
        self.connector.stop();
        if let (VmExit::Code(code @ 1..), false) = (exit, self.reported) {
            self.reported = true;
            tracing::warn!(
                "vmdbg-vmm ended with status {code}: {}",
                self.process.stderr_tail.lock().unwrap().join("\n")
            );
        }
        // Ended at our request, like QEMU's `quit`: a clean end.
        match exit {
            VmExit::Signal(libc::SIGTERM | libc::SIGKILL) if self.ended_by_us => {
                Some(VmExit::Code(0))
            }
            other => Some(other),
        }
    }
}

impl Drop for KvmControl {
    fn drop(&mut self) {
        // The process is killed as it drops; the connector must not retry.
        self.connector.stop();
    }
}

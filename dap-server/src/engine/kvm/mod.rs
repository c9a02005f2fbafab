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
//! - `api.sock`: the VMM's control API (Firecracker's HTTP shape, see
//!   [`api`]): pause and resume (`PATCH /vm`), snapshots (`PUT
//!   /snapshot/create`, `/snapshot/load`, and `/vmdbg/reset` back to the
//!   last one in place);
//! - `snapshot-NAME/{state,mem}`: the VM's snapshots;
//! - `console.log`: COM1.
//!
//! A kernel alone (no initramfs, so no agent: a bare-metal kernel) gets no
//! vsock device; COM1 is then a unix socket, `serial.sock`, whose output
//! the engine copies into `console.log` and whose input is the user's
//! typing ([`serial`]). A recorded session records such a kernel with
//! `--record-to`, then debugs the recording's replay ([`record`]).
//!
//! A restore drops the guest's vsock connections (the VMM resets the
//! transport, as Firecracker does); the agent keeps listening and the
//! engine connects again, under the same [`AgentClient`]. Shutdown is
//! SIGTERM (the guest is disposable), then SIGKILL.
//!
//! Saved VM states for warm starts ([`Engine::boot_saved`]) are
//! directories holding a snapshot's two files, put in place by one rename.

mod api;
mod connector;
mod record;
mod serial;
mod snapshots;

pub use record::RECORD_NEEDS_KERNEL_ALONE;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use vmdbg_agent::client::AgentClient;

use super::process::{host_tsc_khz, spawn_vmm, VmProcess};
use super::{
    ConsoleInput, Engine, EngineVm, Replay, RuntimeDir, SaveState, SnapshotStore, Vm, VmControl,
    VmExit, VmSpec, CONSOLE_LOG, RSP_SOCKET,
};

/// The vsock port the agent listens on under this engine.
pub const AGENT_VSOCK_PORT: u32 = 1024;

pub struct KvmEngine {
    pub vmm: PathBuf,
}

impl KvmEngine {
    /// With vmdbg-vmm at `vmm`, else where [`find_vmm`] finds it.
    pub fn with_vmm(vmm: Option<&Path>) -> Result<Self> {
        Ok(KvmEngine {
            vmm: find_vmm(vmm)?,
        })
    }

    /// The kernel, memory, vCPUs and command line of a boot.
    fn boot_arguments(&self, cmd: &mut Command, spec: &VmSpec) {
        let mut cmdline = spec.image.cmdline.clone();
        if !kernel_alone(spec) {
            cmdline.push_str(&format!(" pci=off vmdbg.agent=vsock:{AGENT_VSOCK_PORT}"));
            if let Some(khz) = host_tsc_khz() {
                cmdline.push_str(&format!(" tsc_early_khz={khz}"));
            }
        }
        if !spec.extra_cmdline.is_empty() {
            cmdline.push(' ');
            cmdline.push_str(&spec.extra_cmdline);
        }
        cmd.arg("--kernel").arg(&spec.image.kernel);
        if let Some(initrd) = &spec.image.initrd {
            cmd.arg("--initrd").arg(initrd);
        }
        cmd.args(["--mem", &format!("{}M", spec.mem_mib)])
            .args(["--cpus", &spec.cpus.to_string()])
            .args(["--cmdline", cmdline.trim()]);
    }

    /// The VMM with its devices and sockets in `dir`: booting `spec`, or
    /// (`saved`) restoring a state [`crate::engine::SaveState::save_to`] wrote.
    fn command(&self, spec: &VmSpec, dir: &Path, saved: Option<&Path>) -> Command {
        let mut cmd = Command::new(&self.vmm);
        match saved {
            None => self.boot_arguments(&mut cmd, spec),
            Some(state) => {
                cmd.arg("--restore")
                    .arg(state.join(SNAPSHOT_STATE))
                    .arg("--mem-file")
                    .arg(state.join(SNAPSHOT_MEM));
            }
        };
        cmd.arg("--api")
            .arg(format!("unix:{}", dir.join(API_SOCKET).display()));
        if kernel_alone(spec) {
            cmd.arg("--serial")
                .arg(format!("unix:{}", dir.join(SERIAL_SOCKET).display()));
        } else {
            cmd.arg("--serial")
                .arg(format!("file:{}", dir.join(CONSOLE_LOG).display()))
                .arg("--vsock-uds")
                .arg(dir.join("vsock.sock"));
        }
        cmd.arg("--gdb")
            .arg(format!("unix:{}", dir.join(RSP_SOCKET).display()));
        if spec.start_paused {
            cmd.arg("--wait-gdb");
        }
        cmd
    }
}

/// A kernel without an initramfs has no agent (see [`VmSpec`]).
fn kernel_alone(spec: &VmSpec) -> bool {
    spec.image.initrd.is_none()
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
        match &spec.record {
            Some(record) => record::record_then_replay(self, spec, record),
            None => self.start(spec, None),
        }
    }

    /// The VMM binary, its size and modification time: another vmdbg-vmm
    /// may not read the state (its format version says so too, but a
    /// refused state costs a boot attempt).
    fn saved_state_key(&self, _spec: &VmSpec) -> Option<String> {
        Some(format!("{} kvm", super::binary_key(&self.vmm)?))
    }

    fn boot_saved(&self, spec: &VmSpec, state: &Path) -> Result<Box<dyn Vm>> {
        self.start(spec, Some(state))
    }
}

impl KvmEngine {
    fn start(&self, spec: &VmSpec, saved: Option<&Path>) -> Result<Box<dyn Vm>> {
        let dir = RuntimeDir::create()?;
        let cmd = self.command(spec, dir.path(), saved);
        // vmdbg hands the RSP endpoint to whoever needs it (Vm::rsp_endpoint).
        let mut process = spawn_vmm(cmd, "vmdbg-vmm: ", QUIET)?;
        let vsock = dir.path().join("vsock.sock");
        let (agent, connector, serial) = if kernel_alone(spec) {
            let serial = serial::SerialPump::connect(
                &dir.path().join(SERIAL_SOCKET),
                &dir.path().join(CONSOLE_LOG),
                &mut process,
            )?;
            (super::no_agent()?, None, Some(serial))
        } else {
            let (reader, writer, connector) =
                connector::connect_agent(vsock.clone(), AGENT_VSOCK_PORT);
            let agent = Arc::new(AgentClient::new(reader, writer));
            (agent, Some(connector), None)
        };
        let control = KvmControl {
            process,
            connector,
            serial,
            api: api::ApiClient::new(dir.path().join(API_SOCKET)),
            agent: agent.clone(),
            vsock,
            current: None,
            replay: None,
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

/// vmdbg-vmm's stderr lines that are not news to the user.
const QUIET: &[&str] = &[
    "gdb can attach with",
    "waiting for gdb",
    "waiting for a client on serial socket",
    "killed by the debugger",
];

/// In a VM's runtime directory: the VMM's control API socket.
const API_SOCKET: &str = "api.sock";
/// In a VM's runtime directory: a kernel alone's serial console.
const SERIAL_SOCKET: &str = "serial.sock";
/// In a snapshot's directory: the VMM's state file and memory file.
const SNAPSHOT_STATE: &str = "state";
const SNAPSHOT_MEM: &str = "mem";

struct KvmControl {
    process: VmProcess,
    /// None for a VM without an agent.
    connector: Option<connector::Handle>,
    /// A kernel alone's serial console.
    serial: Option<serial::SerialPump>,
    api: api::ApiClient,
    /// The same client the VM hands out, reconnected after a restore.
    agent: Arc<AgentClient>,
    vsock: PathBuf,
    /// The snapshot the VMM's reset goes back to (the last one taken or
    /// loaded).
    current: Option<String>,
    /// A replay of a recording: how the recording ended.
    replay: Option<super::RecordingEnd>,
    /// Whether the warning about a failed VMM was given.
    reported: bool,
    /// We sent the signal that ended the VMM.
    ended_by_us: bool,
}

impl KvmControl {
    /// Runs `f` with the VM stopped: a running VM is paused for it and
    /// resumed after; one a debugger stopped stays stopped. (While a
    /// debugger lets the vCPUs run, the VMM refuses the pause: stop it in
    /// the debugger first.)
    fn stopped<T>(&mut self, f: impl FnOnce(&api::ApiClient) -> Result<T>) -> Result<T> {
        let running = self.api.state()? == "Running";
        if running {
            self.api.set_state("Paused")?;
        }
        let result = f(&self.api);
        if running {
            self.api.set_state("Resumed")?;
        }
        result
    }

    /// After a restore the guest's end of the agent's connection is gone:
    /// connect again, under the same client.
    fn reconnect_agent(&mut self) {
        let Some(old) = &self.connector else {
            return;
        };
        old.stop();
        let (reader, writer, connector) =
            connector::connect_agent(self.vsock.clone(), AGENT_VSOCK_PORT);
        self.agent.reconnect(reader, writer);
        self.connector = Some(connector);
    }

    fn stop_connector(&self) {
        if let Some(connector) = &self.connector {
            connector.stop();
        }
    }
}

impl VmControl for KvmControl {
    fn pid(&self) -> Option<u32> {
        Some(self.process.pid())
    }

    fn engine_messages(&mut self) -> Option<std::sync::mpsc::Receiver<String>> {
        Some(self.process.follow_stderr())
    }

    fn support_snapshots(&mut self) -> Option<&mut dyn SnapshotStore> {
        Some(self)
    }

    fn support_saved_state(&mut self) -> Option<&mut dyn SaveState> {
        Some(self)
    }

    fn support_replay(&mut self) -> Option<&mut dyn Replay> {
        self.replay.is_some().then_some(self as &mut dyn Replay)
    }

    fn support_console_input(&mut self) -> Option<&mut dyn ConsoleInput> {
        self.serial.as_mut().map(|s| s as &mut dyn ConsoleInput)
    }

    fn last_words(&mut self) -> String {
        self.process.last_words(Duration::from_millis(500))
    }

    fn shutdown(&mut self, grace: Duration) -> Result<VmExit> {
        if let Some(exit) = self.try_exit() {
            return Ok(exit);
        }
        self.ended_by_us = true;
        self.stop_connector();
        let _ = self.process.signal(libc::SIGTERM);
        self.process.wait_or_kill(grace)?;
        Ok(self.try_exit().expect("the VMM has ended"))
    }

    fn try_exit(&mut self) -> Option<VmExit> {
        let exit = self.process.try_exit()?;
        self.stop_connector();
        if let Some(serial) = &mut self.serial {
            serial.finish();
        }
        // A kernel alone ends the VM with its own status (QEMU's
        // isa-debug-exit convention): not a failure of the VMM.
        let guest_status = self.serial.is_some() || self.replay.is_some();
        if let (VmExit::Code(code @ 1..), false, false) = (exit, self.reported, guest_status) {
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
        self.stop_connector();
    }
}

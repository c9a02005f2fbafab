//! The QEMU engine: the guest runs under `qemu-system-x86_64 -M microvm`
//! (ACPI on, so Debian's kernel finds the virtio-mmio devices), with TCG
//! or, where the probe passed, KVM acceleration.
//!
//! Sockets, all in the VM's private runtime directory:
//! - `agent.sock`: the agent's virtio-serial port (`virtserialport`);
//! - `qmp.sock`: QMP, for pause, resume and shutdown;
//! - `gdb.sock`: QEMU's gdbstub, the RSP endpoint (QEMU listens);
//! - `snapshots.qcow2`: where `savevm` keeps snapshots, made and attached
//!   (as a block node the guest does not see) on the first snapshot.
//!
//! A recorded session ([`VmSpec::record`]) runs QEMU twice, recording and
//! then replaying ([`record`]).
//!
//! vmdbg listens on the agent and QMP sockets and QEMU connects to them at
//! start-up, so there is no polling for sockets to appear. QEMU's stderr is
//! relayed line by line (prefixed `qemu:`), never swallowed; the process is
//! started by [`super::process::spawn_vmm`], so it cannot outlive vmdbg.

mod qmp;
mod record;
mod snapshots;

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use vmdbg_agent::client::AgentClient;

use super::process::{host_tsc_khz, spawn_vmm, VmProcess};
use super::{
    Engine, EngineVm, RuntimeDir, SaveState, SnapshotStore, Vm, VmControl, VmExit, VmSpec,
    CONSOLE_LOG, RSP_SOCKET,
};
use crate::image::AGENT_PORT_NAME;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Tcg,
    Kvm,
}

pub struct QemuEngine {
    pub binary: PathBuf,
    pub accel: Accel,
}

/// What a QEMU process is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    /// A VM to debug as it runs, with the agent.
    Live,
    /// Recording a run ([`record`]): no gdb stub, no agent.
    Record,
    /// Replaying a recording under the gdb stub, no agent.
    Replay,
}

/// Finds qemu-system-x86_64 (or $VMDBG_QEMU), with a clear error.
pub fn find_qemu() -> Result<PathBuf> {
    if let Some(explicit) = std::env::var_os("VMDBG_QEMU") {
        let path = PathBuf::from(explicit);
        if !path.is_file() {
            bail!("VMDBG_QEMU={} is not a file", path.display());
        }
        return Ok(path);
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("qemu-system-x86_64")).find(|p| p.is_file()))
        .context(
            "the QEMU engine needs qemu-system-x86_64, which is not on PATH: install the Debian/Ubuntu package \
             `qemu-system-x86` (sudo apt-get install qemu-system-x86), or set VMDBG_QEMU to its path",
        )
}

impl QemuEngine {
    pub fn new(accel: Accel) -> Result<Self> {
        Ok(QemuEngine {
            binary: find_qemu()?,
            accel,
        })
    }

    fn command(&self, spec: &VmSpec, dir: &Path, run: Run) -> Command {
        let mut cmd = Command::new(&self.binary);
        // Record/replay counts instructions: TCG only.
        let tcg = self.accel == Accel::Tcg || run != Run::Live;
        let accel = if tcg {
            ["-accel", "tcg", "-cpu", "max"]
        } else {
            ["-accel", "kvm", "-cpu", "host"]
        };
        let mut cmdline = format!("{} pci=off", spec.image.cmdline);
        if tcg {
            // TCG's TSC calibration against the PIT is flaky (it can hang
            // the boot); give the kernel the host's frequency instead.
            if let Some(khz) = host_tsc_khz() {
                cmdline.push_str(&format!(" tsc_early_khz={khz}"));
            }
        }
        if !spec.extra_cmdline.is_empty() {
            cmdline.push(' ');
            cmdline.push_str(&spec.extra_cmdline);
        }
        let sock = |name: &str| dir.join(name).display().to_string();
        cmd.args(["-M", "microvm,acpi=on"])
            .args(accel)
            .args([
                "-m",
                &format!("{}M", spec.mem_mib),
                "-smp",
                &spec.cpus.to_string(),
            ])
            .args([
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-no-reboot",
            ])
            .arg("-kernel")
            .arg(&spec.image.kernel);
        match &spec.image.initrd {
            Some(initrd) => {
                cmd.arg("-initrd").arg(initrd);
            }
            // A kernel alone ends the VM through QEMU's exit port, as it
            // does under vmdbg-vmm: status (V << 1) | 1.
            None => {
                cmd.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
            }
        }
        // A replay prints the console again: the recording's goes aside.
        let console = match run {
            Run::Record => record::RECORD_CONSOLE_LOG,
            Run::Live | Run::Replay => CONSOLE_LOG,
        };
        cmd.args(["-append", &cmdline])
            .args([
                "-chardev",
                &format!("file,id=console,path={}", sock(console)),
                "-serial",
                "chardev:console",
            ])
            .args([
                "-chardev",
                &format!("socket,id=qmp,path={}", sock("qmp.sock")),
                "-mon",
                "chardev=qmp,mode=control",
            ]);
        if run != Run::Record {
            cmd.args([
                "-chardev",
                &format!("socket,id=gdb,path={},server=on,wait=off", sock(RSP_SOCKET)),
                "-gdb",
                "chardev:gdb",
            ]);
        }
        if run == Run::Live {
            cmd.args(["-device", "virtio-serial-device,max_ports=2"])
                .args([
                    "-chardev",
                    &format!("socket,id=agent,path={}", sock("agent.sock")),
                ])
                .args([
                    "-device",
                    &format!("virtserialport,chardev=agent,name={AGENT_PORT_NAME}"),
                ]);
        } else {
            record::add_arguments(&mut cmd, dir, run == Run::Record);
        }
        if (spec.start_paused && run == Run::Live) || run == Run::Replay {
            cmd.arg("-S");
        }
        cmd
    }
}

impl Engine for QemuEngine {
    fn describe(&self) -> String {
        format!(
            "qemu ({})",
            if self.accel == Accel::Kvm {
                "kvm"
            } else {
                "tcg"
            }
        )
    }

    fn boot(&self, spec: &VmSpec) -> Result<Box<dyn Vm>> {
        match &spec.record {
            Some(record) => record::record_then_replay(self, spec, record),
            None => self.start(spec, None),
        }
    }

    /// The binary, its size and modification time, and the accelerator: a
    /// QEMU update or another accelerator makes a saved state stale.
    fn saved_state_key(&self, _spec: &VmSpec) -> Option<String> {
        Some(format!(
            "{} {:?}",
            super::binary_key(&self.binary)?,
            self.accel
        ))
    }

    fn boot_saved(&self, spec: &VmSpec, state: &Path) -> Result<Box<dyn Vm>> {
        self.start(spec, Some(state))
    }
}

impl QemuEngine {
    /// Starts QEMU: booting `spec`, or loading a state `save_to` wrote
    /// (an incoming migration from the file; QEMU runs the guest once it
    /// is in).
    fn start(&self, spec: &VmSpec, saved: Option<&Path>) -> Result<Box<dyn Vm>> {
        let dir = RuntimeDir::create().context("create the VM's runtime directory")?;
        let agent_listener = UnixListener::bind(dir.path().join("agent.sock"))?;
        let qmp_listener = UnixListener::bind(dir.path().join("qmp.sock"))?;
        let mut cmd = self.command(spec, dir.path(), Run::Live);
        if let Some(state) = saved {
            cmd.args(["-incoming", &format!("exec:cat {}", shell_quote(state)?)]);
        }
        // Our own shutdown makes QEMU say "terminating on signal"; not news.
        let mut process = spawn_vmm(cmd, "qemu: ", &["terminating on signal"])?;
        let connect =
            |listener: &UnixListener, process: &mut VmProcess, what: &str| -> Result<UnixStream> {
                accept_while_alive(listener, process, Duration::from_secs(30)).map_err(|e| {
                    let status = process
                        .wait_or_kill(Duration::ZERO)
                        .map(|x| x.to_string())
                        .unwrap_or_default();
                    std::thread::sleep(Duration::from_millis(50)); // let the relay print QEMU's last words
                    anyhow::anyhow!(
                    "QEMU ({}) did not connect its {what} socket: {e} ({status}); its stderr:\n{}",
                    self.binary.display(),
                    process.stderr_tail.lock().unwrap().join("\n")
                )
                })
            };
        let qmp_stream = connect(&qmp_listener, &mut process, "QMP")?;
        let agent_stream = connect(&agent_listener, &mut process, "agent")?;
        let qmp = qmp::Qmp::handshake(qmp_stream).context("QMP handshake with QEMU")?;
        let agent = Arc::new(AgentClient::new(agent_stream.try_clone()?, agent_stream));
        Ok(Box::new(EngineVm::new(
            self.describe(),
            dir,
            agent,
            Box::new(QemuControl {
                process,
                qmp,
                snapshot_store: false,
            }),
        )))
    }
}

/// Accepts one connection, giving up if QEMU exits or time runs out.
fn accept_while_alive(
    listener: &UnixListener,
    process: &mut VmProcess,
    limit: Duration,
) -> Result<UnixStream> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + limit;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                return Ok(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(exit) = process.try_exit() {
            bail!("QEMU exited ({exit})");
        }
        if Instant::now() > deadline {
            bail!("timed out after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

struct QemuControl {
    process: VmProcess,
    qmp: qmp::Qmp,
    /// Whether the qcow2 image that holds snapshots is attached yet.
    snapshot_store: bool,
}

impl VmControl for QemuControl {
    fn shutdown(&mut self, grace: Duration) -> Result<VmExit> {
        if let Some(exit) = self.try_exit() {
            return Ok(exit);
        }
        // `quit` ends QEMU at once; the guest is disposable. The reply may
        // not come (QEMU closes the socket as it exits).
        let _ = self.qmp.execute("quit");
        self.process.wait_or_kill(grace)
    }

    fn try_exit(&mut self) -> Option<VmExit> {
        self.process.try_exit()
    }

    fn last_words(&mut self) -> String {
        self.process.last_words(Duration::from_millis(500))
    }

    fn pid(&self) -> Option<u32> {
        Some(self.process.pid())
    }

    fn support_snapshots(&mut self) -> Option<&mut dyn SnapshotStore> {
        Some(self)
    }

    fn support_saved_state(&mut self) -> Option<&mut dyn SaveState> {
        Some(self)
    }
}

/// An empty qcow2 image for QEMU to keep VM states in (`savevm`, and
/// record/replay's starting snapshot); `what` needs it, for the message.
fn create_qcow2(path: &Path, what: &str) -> Result<()> {
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(path)
        .arg("1M")
        .output()
        .with_context(|| {
            format!(
                "{what} on the QEMU engine need qemu-img, which is not on PATH: \
                 install the Debian/Ubuntu package `qemu-utils` (sudo apt-get install qemu-utils)"
            )
        })?;
    if !out.status.success() {
        bail!(
            "qemu-img create {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A path for QEMU's `exec:` (run by /bin/sh), single-quoted.
fn shell_quote(path: &Path) -> Result<String> {
    let text = path
        .to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))?;
    if text.contains('\'') {
        bail!("a saved VM state's path cannot contain a quote: {text}");
    }
    Ok(format!("'{text}'"))
}

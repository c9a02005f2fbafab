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
    CONSOLE_LOG, GUEST_RAM, RSP_SOCKET,
};
use crate::image::AGENT_PORT_NAME;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Tcg,
    Kvm,
}

#[derive(Clone)]
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
                // Appended to: a reset's new QEMU goes on in the same log.
                &format!("file,id=console,path={},append=on", sock(console)),
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
    /// QEMU update or another accelerator makes a saved state stale. (The
    /// RAM's layout is not in it: in a file or not, the RAM block has the
    /// machine's own name, so a state loads either way.)
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
    /// is in). For a VM that [`VmSpec::resets`] (unless
    /// `VMDBG_QEMU_RESET=loadvm`), the guest's RAM is a file in memory
    /// where there is a `/dev/shm` (shared with QEMU, so a reset point can
    /// copy it out).
    fn start(&self, spec: &VmSpec, saved: Option<&Path>) -> Result<Box<dyn Vm>> {
        let dir = RuntimeDir::create().context("create the VM's runtime directory")?;
        let ram_dir = (spec.resets && snapshots::resets_by_relaunch())
            .then(RuntimeDir::create_in_memory)
            .flatten();
        let listeners = Arc::new(Listeners {
            agent: UnixListener::bind(dir.path().join("agent.sock"))?,
            qmp: UnixListener::bind(dir.path().join("qmp.sock"))?,
        });
        let ram = ram_dir.as_ref().map(|d| Ram {
            path: d.path().join(GUEST_RAM),
            shared: true,
        });
        let incoming = saved
            .map(|state| Ok::<_, anyhow::Error>(format!("exec:cat {}", shell_quote(state)?)))
            .transpose()?;
        let (process, qmp, agent_stream) = self.launch(
            spec,
            dir.path(),
            &listeners,
            ram.as_ref(),
            incoming.as_deref(),
        )?;
        let agent = Arc::new(AgentClient::new(agent_stream.try_clone()?, agent_stream));
        let relaunch = Relaunch {
            engine: QemuEngine {
                binary: self.binary.clone(),
                accel: self.accel,
            },
            spec: spec.clone(),
            dir: dir.path().to_path_buf(),
            listeners,
            ram_dir,
            agent: agent.clone(),
            spare: None,
        };
        Ok(Box::new(EngineVm::new(
            self.describe(),
            dir,
            agent,
            Box::new(QemuControl {
                process,
                qmp,
                snapshot_store: false,
                snapshot_store_made: false,
                relaunch: Some(relaunch),
                ram_shared: ram.is_some(),
            }),
        )))
    }

    /// Spawns QEMU for a live VM in `dir` and takes its QMP and agent
    /// connections; `incoming`: a migration URI to start from (`defer`:
    /// the caller starts the migration over QMP).
    fn launch(
        &self,
        spec: &VmSpec,
        dir: &Path,
        listeners: &Listeners,
        ram: Option<&Ram>,
        incoming: Option<&str>,
    ) -> Result<Launched> {
        let process = self.spawn(spec, dir, ram, incoming)?;
        self.connect(process, listeners)
    }

    /// Spawns QEMU for a live VM in `dir` (see [`launch`](Self::launch)).
    fn spawn(
        &self,
        spec: &VmSpec,
        dir: &Path,
        ram: Option<&Ram>,
        incoming: Option<&str>,
    ) -> Result<VmProcess> {
        let mut cmd = self.command(spec, dir, Run::Live);
        if let Some(ram) = ram {
            let path = ram
                .path
                .to_str()
                .filter(|p| !p.contains(','))
                .with_context(|| format!("guest RAM path {}", ram.path.display()))?;
            cmd.args([
                "-object",
                &format!(
                    "memory-backend-file,id={RAM_ID},size={}M,mem-path={path},share={}",
                    spec.mem_mib,
                    if ram.shared { "on" } else { "off" }
                ),
                "-M",
                &format!("memory-backend={RAM_ID}"),
            ]);
        }
        if let Some(uri) = incoming {
            cmd.args(["-incoming", uri]);
        }
        // Our own shutdown makes QEMU say "terminating on signal"; not news.
        spawn_vmm(cmd, "qemu: ", &["terminating on signal"])
    }

    /// Takes a spawned QEMU's QMP and agent connections. (A separate step:
    /// the process must be spawned by a thread that lives as long as the
    /// VM, as it dies with the thread that spawned it, while this may
    /// wait in another.)
    fn connect(&self, mut process: VmProcess, listeners: &Listeners) -> Result<Launched> {
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
        let qmp_stream = connect(&listeners.qmp, &mut process, "QMP")?;
        let agent_stream = connect(&listeners.agent, &mut process, "agent")?;
        let qmp = qmp::Qmp::handshake(qmp_stream).context("QMP handshake with QEMU")?;
        Ok((process, qmp, agent_stream))
    }
}

/// The RAM backend's id, which names the RAM block in a migration: the
/// machine's own default (`microvm.ram`), so a state saved with the RAM
/// in a file loads into a VM without, and the other way round.
const RAM_ID: &str = "microvm.ram";

/// The sockets vmdbg listens on and QEMU connects to; kept for the life
/// of the VM, as a reset starts another QEMU on them.
struct Listeners {
    agent: UnixListener,
    qmp: UnixListener,
}

/// The guest's RAM as a file: `shared`, QEMU writes the guest's memory to
/// the file (and a migration with `x-ignore-shared` leaves it out);
/// otherwise the file is mapped private, copy-on-write, and stays as it
/// was (a reset point's RAM image).
struct Ram {
    path: PathBuf,
    shared: bool,
}

/// A QEMU process, connected, as [`QemuEngine::launch`] returns it.
type Launched = (VmProcess, qmp::Qmp, UnixStream);

/// What a reset needs to start the VM's QEMU again.
struct Relaunch {
    engine: QemuEngine,
    spec: VmSpec,
    dir: PathBuf,
    listeners: Arc<Listeners>,
    /// The next reset's QEMU, started (`-incoming defer`, over the reset
    /// point's RAM image) while the current test runs, so a reset waits
    /// for no process start: the reset point's name, and the thread that
    /// starts it.
    spare: Option<(String, std::thread::JoinHandle<Result<Launched>>)>,
    /// Where the guest's RAM file and the reset points' RAM images are;
    /// None without a `/dev/shm` (resets are then `loadvm`s).
    ram_dir: Option<RuntimeDir>,
    /// The VM's agent client, reconnected to each new QEMU.
    agent: Arc<AgentClient>,
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
    /// Whether the qcow2 image that holds snapshots is attached (to this
    /// QEMU process) yet.
    snapshot_store: bool,
    /// Whether it was made (it outlives a reset's QEMU process).
    snapshot_store_made: bool,
    /// None for a replay (its QEMU is never started again by a reset).
    relaunch: Option<Relaunch>,
    /// Whether this QEMU writes the guest's RAM to the RAM file (false
    /// after a reset: the RAM is then a private mapping of an image).
    ram_shared: bool,
}

impl VmControl for QemuControl {
    fn shutdown(&mut self, grace: Duration) -> Result<VmExit> {
        if let Some(exit) = self.try_exit() {
            return Ok(exit);
        }
        // `quit` ends QEMU at once; the guest is disposable. The reply may
        // not come (QEMU closes the socket as it exits).
        let _ = self.qmp.execute("quit");
        let exit = self.process.wait_or_kill(grace);
        // A spare QEMU ends as its process handle drops.
        if let Some((_, spare)) = self.relaunch.as_mut().and_then(|r| r.spare.take()) {
            let _ = spare.join();
        }
        exit
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

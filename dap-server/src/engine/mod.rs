//! Engines: what runs a guest VM for vmdbg. The rest of vmdbg (`vmdbg run`,
//! the DAP server) sees a running VM only as a [`Vm`]: an RSP endpoint (a
//! unix socket speaking the gdb remote protocol for the vCPUs), a control
//! API (pause, resume, shutdown), a console stream (the serial console's
//! log file) and an agent channel (an [`AgentClient`]). It never branches
//! on which engine it got.
//!
//! - [`kvm`]: vmdbg's own VMM (vmdbg-vmm), where the host's KVM passes
//!   the probe; the agent over vsock;
//! - [`qemu`]: qemu-system-x86_64 (microvm; TCG, or KVM acceleration); the
//!   agent over a virtio-serial port;
//! - [`probe`]: the start-up capability probe of /dev/kvm that `auto` uses;
//! - [`ext`]: what only some engines' VMs can do (snapshots, a saved
//!   state, replays, console input), one trait per capability;
//! - [`select`]: `auto | kvm | qemu`, and the reason for the choice;
//! - [`process`]: starting a VMM process so it cannot outlive vmdbg.
//!
//! This module owns engine choice and VM lifetimes; it does not know about
//! images' contents or what runs in the guest.

pub mod ext;
pub mod kvm;
pub mod probe;
mod process;
pub mod qemu;
pub mod select;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use vmdbg_agent::client::AgentClient;

use crate::image::GuestImage;

pub use ext::console_input::{ConsoleInput, NO_CONSOLE_INPUT};
pub use ext::replay::{Replay, ReplayAfresh};
pub use ext::saved_state::{SaveState, NO_SAVED_STATE};
pub use ext::snapshots::{SnapshotStore, Snapshots};
pub use select::{choose_engine, choose_engine_for, EngineChoice};

/// What to boot, independent of the engine. An image without an initramfs
/// is a kernel alone (a bare-metal kernel): it has no agent, so the engine
/// starts no agent channel (the VM's [`AgentClient`] never connects), and
/// the serial console is the only device besides the gdb stub.
#[derive(Clone, Debug)]
pub struct VmSpec {
    pub image: GuestImage,
    pub mem_mib: u64,
    pub cpus: u32,
    /// Start with the vCPUs stopped until a debugger (or `resume`) starts them.
    pub start_paused: bool,
    /// More kernel command line, after the image's and the engine's.
    pub extra_cmdline: String,
    /// Record the run first, then serve its replay (see [`RecordSpec`]).
    pub record: Option<RecordSpec>,
    /// The VM will go back to a reset point again and again
    /// ([`Snapshots::take_reset_point`], `vmdbg test`): the engine may lay
    /// it out for that (QEMU keeps the guest's RAM in a file in memory).
    pub resets: bool,
}

/// A recorded session: the engine runs the guest once, recording it, until
/// the guest stops the machine (a triple fault, a power-off) or `limit`
/// passes; then the VM it returns is a replay of that recording, stopped
/// at its start, whose gdb stub steps and continues backwards too. The
/// agent is not connected in a replay (nothing it would do could be
/// replayed). QEMU records any guest; vmdbg-vmm records a kernel alone
/// (it refuses virtio devices, the agent's vsock among them, while
/// recording).
#[derive(Clone, Debug)]
pub struct RecordSpec {
    pub limit: Duration,
    /// Progress lines while the recording runs.
    pub progress: Option<std::sync::mpsc::Sender<String>>,
}

/// How a recording ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordingEnd {
    /// The guest stopped the machine: a triple fault (an exception it
    /// could not handle) or a power-off; CR2 then, if not zero (the address
    /// of the last page fault).
    Shutdown { last_page_fault: Option<u64> },
    /// The time limit ended it while the guest still ran.
    Limit,
}

/// Where a replay is in its recording, in instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayPosition {
    pub at: u64,
    pub end: u64,
    pub ending: RecordingEnd,
}

/// How a VM ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmExit {
    /// The engine process exited with this status (0: guest powered off).
    Code(i32),
    /// The engine process was killed by this signal.
    Signal(i32),
}

impl std::fmt::Display for VmExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VmExit::Code(c) => write!(f, "exit status {c}"),
            VmExit::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

/// Starts VMs.
pub trait Engine {
    /// For messages, e.g. "qemu (tcg)".
    fn describe(&self) -> String;
    /// Boots a VM. Returns once the engine is up (its sockets connected),
    /// not when the guest has booted: see [`wait_for_agent`].
    fn boot(&self, spec: &VmSpec) -> Result<Box<dyn Vm>>;
    /// What a saved VM state (see [`SaveState`]) of `spec` depends on
    /// beyond the spec itself (the engine's binary and version), or None
    /// when this engine cannot start from one.
    fn saved_state_key(&self, _spec: &VmSpec) -> Option<String> {
        None
    }
    /// Starts `spec`'s VM from a state [`SaveState::save_to`] wrote, instead of
    /// booting it.
    fn boot_saved(&self, _spec: &VmSpec, _state: &Path) -> Result<Box<dyn Vm>> {
        bail!("this engine cannot start from a saved VM state")
    }
}

/// A running VM. Dropping it ends the VM and removes its sockets.
///
/// The core every engine's VM has; what only some have (snapshots, a saved
/// state, a replay, console input) is reached through the `support_*()`
/// methods (see [`ext`]).
pub trait Vm: Send {
    /// For messages, e.g. "qemu (tcg)".
    fn describe(&self) -> String;
    /// A unix socket serving the vCPUs over the gdb remote protocol.
    fn rsp_endpoint(&self) -> &Path;
    /// The serial console's output so far is in this file (it grows while
    /// the VM runs).
    fn console_log(&self) -> &Path;
    /// The agent channel. Requests wait for the guest until its agent is up.
    fn agent(&self) -> &Arc<AgentClient>;
    /// Ends the VM: politely, then by force after `grace`.
    fn shutdown(&mut self, grace: Duration) -> Result<VmExit>;
    /// How the VM ended, if it has.
    fn try_exit(&mut self) -> Option<VmExit>;
    /// The engine process's id (the DAP `process` event's).
    fn pid(&self) -> Option<u32>;
    /// The engine process's messages (its stderr lines) from now on, for a
    /// debug console; None where the engine has none to give.
    fn engine_messages(&mut self) -> Option<std::sync::mpsc::Receiver<String>>;
    /// Once the VM has ended: the engine process's last words (vmdbg-vmm's
    /// report of a fatal exit, with the vCPU's registers), waiting a moment
    /// for them.
    fn last_words(&mut self) -> String;
    /// Named snapshots, restored in place.
    fn support_snapshots(&mut self) -> Option<Snapshots<'_>>;
    /// Saving the whole VM for a later process ([`Engine::boot_saved`]).
    fn support_saved_state(&mut self) -> Option<&mut dyn SaveState>;
    /// This VM is a replay of a recording.
    fn support_replay(&mut self) -> Option<&mut dyn Replay>;
    /// Typing into the serial console.
    fn support_console_input(&mut self) -> Option<&mut dyn ConsoleInput>;
}

/// What each engine does its own way with its VM: the core, and the
/// capabilities it has (each `None` unless the engine implements it, in a
/// file of its own).
pub trait VmControl: Send {
    /// Ends the VM: politely, then by force after `grace`.
    fn shutdown(&mut self, grace: Duration) -> Result<VmExit>;
    /// How the VM ended, if it has.
    fn try_exit(&mut self) -> Option<VmExit>;
    fn pid(&self) -> Option<u32>;
    /// See [`Vm::engine_messages`].
    fn engine_messages(&mut self) -> Option<std::sync::mpsc::Receiver<String>> {
        None
    }
    /// See [`Vm::last_words`].
    fn last_words(&mut self) -> String;
    fn support_snapshots(&mut self) -> Option<&mut dyn SnapshotStore> {
        None
    }
    fn support_saved_state(&mut self) -> Option<&mut dyn SaveState> {
        None
    }
    fn support_replay(&mut self) -> Option<&mut dyn Replay> {
        None
    }
    fn support_console_input(&mut self) -> Option<&mut dyn ConsoleInput> {
        None
    }
}

/// The one [`Vm`] every engine returns: its runtime directory (where every
/// engine puts the RSP socket `gdb.sock` and the console log
/// `console.log`), the agent, the snapshots taken, and the engine's own
/// [`VmControl`].
pub struct EngineVm {
    /// First: the VM ends (its control is dropped) before its directory goes.
    control: Box<dyn VmControl>,
    describe: String,
    agent: Arc<AgentClient>,
    rsp: PathBuf,
    console: PathBuf,
    snapshots: Vec<String>,
    dir: RuntimeDir,
}

impl EngineVm {
    pub fn new(
        describe: String,
        dir: RuntimeDir,
        agent: Arc<AgentClient>,
        control: Box<dyn VmControl>,
    ) -> Self {
        EngineVm {
            control,
            describe,
            agent,
            rsp: dir.path().join(RSP_SOCKET),
            console: dir.path().join(CONSOLE_LOG),
            snapshots: Vec::new(),
            dir,
        }
    }
}

/// In a VM's runtime directory: the engine's gdb remote-protocol socket.
pub const RSP_SOCKET: &str = "gdb.sock";
/// In a VM's in-memory directory ([`RuntimeDir::create_in_memory`]): the
/// guest's RAM, where the engine keeps it in a file.
pub const GUEST_RAM: &str = "ram";
/// In a VM's runtime directory: the serial console's log.
pub const CONSOLE_LOG: &str = "console.log";

impl Vm for EngineVm {
    fn describe(&self) -> String {
        self.describe.clone()
    }
    fn rsp_endpoint(&self) -> &Path {
        &self.rsp
    }
    fn console_log(&self) -> &Path {
        &self.console
    }
    fn agent(&self) -> &Arc<AgentClient> {
        &self.agent
    }
    fn shutdown(&mut self, grace: Duration) -> Result<VmExit> {
        self.control.shutdown(grace)
    }
    fn try_exit(&mut self) -> Option<VmExit> {
        self.control.try_exit()
    }
    fn pid(&self) -> Option<u32> {
        self.control.pid()
    }
    fn engine_messages(&mut self) -> Option<std::sync::mpsc::Receiver<String>> {
        self.control.engine_messages()
    }
    fn last_words(&mut self) -> String {
        self.control.last_words()
    }
    fn support_snapshots(&mut self) -> Option<Snapshots<'_>> {
        Some(Snapshots {
            store: self.control.support_snapshots()?,
            dir: self.dir.path(),
            names: &mut self.snapshots,
        })
    }
    fn support_saved_state(&mut self) -> Option<&mut dyn SaveState> {
        self.control.support_saved_state()
    }
    fn support_replay(&mut self) -> Option<&mut dyn Replay> {
        self.control.support_replay()
    }
    fn support_console_input(&mut self) -> Option<&mut dyn ConsoleInput> {
        self.control.support_console_input()
    }
}

/// An engine binary's path, size and modification time: what a saved VM
/// state depends on of the program that wrote it (an update makes it
/// stale).
fn binary_key(binary: &Path) -> Option<String> {
    let meta = std::fs::metadata(binary).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(format!("{} {} {mtime}", binary.display(), meta.len()))
}

/// A register's value in an engine's register dump (`CR2=0x…` in
/// vmdbg-vmm's fatal-exit report, `CR2=…` in QEMU's `info registers`);
/// None if zero or not there.
pub fn register_in_dump(text: &str, name: &str) -> Option<u64> {
    let at = text.find(&format!("{name}="))? + name.len() + 1;
    let digits = text[at..].strip_prefix("0x").unwrap_or(&text[at..]);
    let hex: String = digits.chars().take_while(char::is_ascii_hexdigit).collect();
    u64::from_str_radix(&hex, 16).ok().filter(|&v| v != 0)
}

/// The agent channel of a VM that has no agent (a kernel alone, a
/// replay): its other end is gone, so every request fails at once.
pub fn no_agent() -> Result<Arc<AgentClient>> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    drop(theirs);
    Ok(Arc::new(AgentClient::new(ours.try_clone()?, ours)))
}

/// Waits for the agent's ready event, watching the VM: if it ends first,
/// the error carries the tail of its console.
pub fn wait_for_agent(vm: &mut dyn Vm, limit: Duration) -> Result<Duration> {
    let deadline = Instant::now() + limit;
    loop {
        match vm.agent().wait_ready(Duration::from_millis(100)) {
            Ok(uptime) => return Ok(uptime),
            Err(vmdbg_agent::client::ClientError::Timeout(_)) => {}
            Err(e) => {
                // The channel closed: most likely the VM ended.
                std::thread::sleep(Duration::from_millis(100));
                let ended = vm
                    .try_exit()
                    .map(|x| format!(" (the VM ended: {x})"))
                    .unwrap_or_default();
                bail!(
                    "the agent channel closed before the agent was ready: {e}{ended}{}",
                    console_tail(vm.console_log())
                );
            }
        }
        if let Some(exit) = vm.try_exit() {
            bail!(
                "the VM ended ({exit}) before its agent was ready{}",
                console_tail(vm.console_log())
            );
        }
        if Instant::now() > deadline {
            bail!(
                "no agent answered within {limit:?}. A custom --initrd must start `vmdbg-agent serve`{}",
                console_tail(vm.console_log())
            );
        }
    }
}

/// The last lines of a console log, formatted for an error message.
pub fn console_tail(path: &Path) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return String::from("\n(the guest console printed nothing)");
    }
    let tail = &lines[lines.len().saturating_sub(25)..];
    format!(
        "\nlast lines of the guest console ({}):\n{}",
        path.display(),
        tail.join("\n")
    )
}

/// A private directory for a VM's sockets and logs, removed on drop.
pub struct RuntimeDir(PathBuf);

impl RuntimeDir {
    pub fn create() -> Result<Self> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|d| d.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        Self::create_in(&base)
    }

    /// A directory in memory (`/dev/shm`), for files that are guest RAM:
    /// on a disk's file system the guest's writes would be written back
    /// to the disk. None where there is no such file system.
    pub fn create_in_memory() -> Option<Self> {
        Self::create_in(Self::in_memory_base()?).ok()
    }

    /// Where [`create_in_memory`](Self::create_in_memory) makes its
    /// directories, if there is such a place.
    pub fn in_memory_base() -> Option<&'static Path> {
        Some(Path::new("/dev/shm")).filter(|d| d.is_dir())
    }

    fn create_in(base: &Path) -> Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        sweep_stale(base);
        let dir = base.join(format!(
            "vmdbg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(RuntimeDir(dir))
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

/// Removes the runtime directories of vmdbg processes that are gone (a
/// SIGKILLed vmdbg cannot clean up after itself; its VMM died with it).
fn sweep_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("vmdbg-"))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, n)| n.parse::<u32>().ok().and(pid.parse::<i32>().ok()))
        else {
            continue;
        };
        // SAFETY: kill with signal 0 only checks whether the pid exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        let ours = entry
            .metadata()
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == unsafe { libc::getuid() })
            .unwrap_or(false);
        let a_vms = ["qmp.sock", "vsock.sock", "api.sock", GUEST_RAM]
            .iter()
            .any(|sock| entry.path().join(sock).exists());
        if !alive && ours && a_vms {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::register_in_dump;

    #[test]
    fn reads_a_register_from_either_engines_dump() {
        let vmm =
            "vmdbg-vmm: guest triple fault\n  CR0=0x80000011 CR2=0x0000004000000004 CR3=0x103000";
        assert_eq!(register_in_dump(vmm, "CR2"), Some(0x40_0000_0004));
        let qemu = "CR0=80000011 CR2=0000004000000004 CR3=0000000000103000";
        assert_eq!(register_in_dump(qemu, "CR2"), Some(0x40_0000_0004));
        assert_eq!(register_in_dump("CR2=0x0000000000000000", "CR2"), None);
        assert_eq!(register_in_dump("no registers", "CR2"), None);
    }
}

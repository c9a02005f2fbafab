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
//! - [`select`]: `auto | kvm | qemu`, and the reason for the choice;
//! - [`process`]: starting a VMM process so it cannot outlive vmdbg.
//!
//! This module owns engine choice and VM lifetimes; it does not know about
//! images' contents or what runs in the guest.

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
    /// What a saved VM state (see [`Vm::save_to`]) of `spec` depends on
    /// beyond the spec itself (the engine's binary and version), or None
    /// when this engine cannot start from one.
    fn saved_state_key(&self, _spec: &VmSpec) -> Option<String> {
        None
    }
    /// Starts `spec`'s VM from a state [`Vm::save_to`] wrote, instead of
    /// booting it.
    fn boot_saved(&self, _spec: &VmSpec, _state: &Path) -> Result<Box<dyn Vm>> {
        bail!("this engine cannot start from a saved VM state")
    }
}

/// A running VM. Dropping it ends the VM and removes its sockets.
// `vmdbg run` uses part of this; the DAP server (kernel and program
// sessions) the rest: the RSP endpoint, pause and resume.
#[allow(dead_code)]
pub trait Vm: Send {
    fn describe(&self) -> String;
    /// A unix socket serving the vCPUs over the gdb remote protocol.
    fn rsp_endpoint(&self) -> &Path;
    /// The serial console's output so far is in this file (it grows while
    /// the VM runs).
    fn console_log(&self) -> &Path;
    /// The agent channel. Requests wait for the guest until its agent is up.
    fn agent(&self) -> &Arc<AgentClient>;
    fn pause(&mut self) -> Result<()>;
    fn resume(&mut self) -> Result<()>;
    /// Ends the VM: politely, then by force after `grace`.
    fn shutdown(&mut self, grace: Duration) -> Result<VmExit>;
    /// How the VM ended, if it has.
    fn try_exit(&mut self) -> Option<VmExit>;
    /// Saves the whole VM (memory, vCPUs, devices) under `name`, replacing
    /// a snapshot of that name; the VM runs on as it was.
    fn snapshot(&mut self, name: &str) -> Result<()>;
    /// Puts the VM back to the snapshot `name`, in place: the same process,
    /// sockets and agent connection.
    fn restore(&mut self, name: &str) -> Result<()>;
    /// The snapshots taken of this VM, oldest first.
    fn snapshots(&self) -> Vec<String>;
    /// Whether a restore ends the agent's connection (the client then
    /// reconnects) and with it every channel over it, such as a program
    /// session's debugger.
    fn restore_ends_agent_channels(&self) -> bool;
    /// Writes the whole running VM to `path` (written whole, then renamed
    /// into place), for [`Engine::boot_saved`]; the VM runs on.
    fn save_to(&mut self, path: &Path) -> Result<()>;
    /// A replay (see [`RecordSpec`]): where it is. None for a live VM.
    fn replay_position(&mut self) -> Option<Result<ReplayPosition>>;
    /// A replay: makes the next forward run stop at the end of the
    /// recording rather than run past it (the engine's stub does not on its
    /// own). A no-op for a live VM.
    fn keep_replay_inside(&mut self) -> Result<()>;
    /// A replay: the next forward run stops after `icount` instructions.
    fn replay_break(&mut self, icount: u64) -> Result<()>;
    /// A replay whose engine goes back by replaying afresh: puts the replay
    /// at `icount` in a new process (the RSP endpoint is the same path;
    /// connections to it must be made again). None where the engine's stub
    /// runs backwards itself.
    fn replay_afresh(&mut self, icount: u64) -> Option<Result<()>>;
    /// Whether this replay goes back by [`Vm::replay_afresh`] rather than
    /// by its stub's reverse packets (`bs`, `bc`).
    fn replays_afresh(&self) -> bool;
    /// Types `bytes` into the guest's serial console.
    fn console_input(&mut self, bytes: &[u8]) -> Result<()>;
    /// The engine process's id (the DAP `process` event's).
    fn pid(&self) -> Option<u32>;
    /// The engine process's messages (its stderr lines) from now on, for a
    /// debug console; None where the engine has none to give.
    fn engine_messages(&mut self) -> Option<std::sync::mpsc::Receiver<String>>;
    /// Once the VM has ended: the engine process's last words (vmdbg-vmm's
    /// report of a fatal exit, with the vCPU's registers), waiting a moment
    /// for them.
    fn last_words(&mut self) -> String;
}

/// What each engine does its own way with its VM.
pub trait VmControl: Send {
    fn pause(&mut self) -> Result<()>;
    fn resume(&mut self) -> Result<()>;
    /// Ends the VM: politely, then by force after `grace`.
    fn shutdown(&mut self, grace: Duration) -> Result<VmExit>;
    /// How the VM ended, if it has.
    fn try_exit(&mut self) -> Option<VmExit>;
    /// Saves the VM under `name`; `dir` is the VM's runtime directory, for
    /// whatever files the engine keeps snapshots in.
    fn snapshot(&mut self, _dir: &Path, _name: &str) -> Result<()> {
        bail!("this engine cannot take snapshots yet")
    }
    /// Puts the VM back to the snapshot `name`, in place.
    fn restore(&mut self, _dir: &Path, _name: &str) -> Result<()> {
        bail!("this engine cannot restore snapshots yet")
    }
    /// See [`Vm::restore_ends_agent_channels`].
    fn restore_ends_agent_channels(&self) -> bool {
        false
    }
    /// Writes the running VM's state to `path` for a later process: whole
    /// or not at all (a temporary name, then a rename).
    fn save_to(&mut self, _path: &Path) -> Result<()> {
        bail!("this engine cannot save a VM's state to a file yet")
    }
    fn replay_position(&mut self) -> Option<Result<ReplayPosition>> {
        None
    }
    fn keep_replay_inside(&mut self) -> Result<()> {
        Ok(())
    }
    fn replay_break(&mut self, _icount: u64) -> Result<()> {
        bail!("this VM is not a replay")
    }
    fn replay_afresh(&mut self, _icount: u64) -> Option<Result<()>> {
        None
    }
    fn replays_afresh(&self) -> bool {
        false
    }
    fn pid(&self) -> Option<u32> {
        None
    }
    fn engine_messages(&mut self) -> Option<std::sync::mpsc::Receiver<String>> {
        None
    }
    fn console_input(&mut self, _bytes: &[u8]) -> Result<()> {
        bail!("this VM's serial console takes no input (it does for a kernel alone on the KVM engine)")
    }
    fn last_words(&mut self) -> String {
        String::new()
    }
}

/// The one [`Vm`] every engine returns: its runtime directory (where every
/// engine puts the RSP socket `gdb.sock` and the console log
/// `console.log`), the agent, and the engine's own [`VmControl`].
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
    fn pause(&mut self) -> Result<()> {
        self.control.pause()
    }
    fn resume(&mut self) -> Result<()> {
        self.control.resume()
    }
    fn shutdown(&mut self, grace: Duration) -> Result<VmExit> {
        self.control.shutdown(grace)
    }
    fn try_exit(&mut self) -> Option<VmExit> {
        self.control.try_exit()
    }
    fn snapshot(&mut self, name: &str) -> Result<()> {
        check_snapshot_name(name)?;
        self.control.snapshot(self.dir.path(), name)?;
        self.snapshots.retain(|n| n != name);
        self.snapshots.push(name.to_string());
        Ok(())
    }
    fn restore(&mut self, name: &str) -> Result<()> {
        if !self.snapshots.iter().any(|n| n == name) {
            bail!(
                "no snapshot named {name:?} (taken: {})",
                if self.snapshots.is_empty() {
                    "none".to_string()
                } else {
                    self.snapshots.join(", ")
                }
            );
        }
        self.control.restore(self.dir.path(), name)
    }
    fn snapshots(&self) -> Vec<String> {
        self.snapshots.clone()
    }
    fn restore_ends_agent_channels(&self) -> bool {
        self.control.restore_ends_agent_channels()
    }
    fn replay_position(&mut self) -> Option<Result<ReplayPosition>> {
        self.control.replay_position()
    }
    fn keep_replay_inside(&mut self) -> Result<()> {
        self.control.keep_replay_inside()
    }
    fn replay_break(&mut self, icount: u64) -> Result<()> {
        self.control.replay_break(icount)
    }
    fn replay_afresh(&mut self, icount: u64) -> Option<Result<()>> {
        self.control.replay_afresh(icount)
    }
    fn replays_afresh(&self) -> bool {
        self.control.replays_afresh()
    }
    fn console_input(&mut self, bytes: &[u8]) -> Result<()> {
        self.control.console_input(bytes)
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
    fn save_to(&mut self, path: &Path) -> Result<()> {
        self.control.save_to(path)
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

/// Snapshot names travel through engines' command languages (QEMU's
/// monitor): letters, digits, `-`, `_` and `.` only.
fn check_snapshot_name(name: &str) -> Result<()> {
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
        use std::os::unix::fs::DirBuilderExt;
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|d| d.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        sweep_stale(&base);
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
        let a_vms = ["qmp.sock", "vsock.sock", "api.sock"]
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

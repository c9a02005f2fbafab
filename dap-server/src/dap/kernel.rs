//! Kernel mode through the engine interface: a `launch` with `kernel`
//! (`"default"`, a vmlinux ELF or a bzImage) boots a fresh VM on whichever
//! engine this host runs (`engine`), stopped until the debugger lets it go,
//! and the session debugs the kernel over the engine's gdb socket.
//!
//! - A kernel alone (no `initrd`, no `run`, not `"default"`: a bare-metal
//!   kernel) boots without an initramfs or agent; any KVM that opens runs
//!   it, so `auto` picks vmdbg-vmm wherever /dev/kvm does. Its serial
//!   console takes the user's typing ([`KernelVm::console_input`]), and a
//!   fatal end is reported with the VMM's last words
//!   ([`KernelVm::last_words`]).
//! - `record`: the engine records the run first and the session debugs its
//!   replay, backwards too: QEMU's record/replay (any guest; going back
//!   replays afresh) or vmdbg-vmm's recorder (a kernel alone; its stub goes
//!   back itself).
//!
//! - `kernel: "default"` is the default image's Debian kernel and its
//!   initramfs (the agent inside); its DWARF and sources are Debian's, fetched
//!   once ([`crate::image::kernel_debug`]) and mapped (`sourceMap`).
//! - `nokaslr` goes on the command line unless the user's says `kaslr`:
//!   DWARF's addresses are the link-time ones.
//! - Before `initialized`, the kernel runs to `start_kernel` on a hardware
//!   breakpoint: a software breakpoint written at a kernel virtual address
//!   while the vCPU still runs at the physical boot entry never hits and,
//!   under QEMU's TCG, leaves the boot stuck (kernel developers use
//!   `hbreak start_kernel` for the same reason). From there on the kernel's
//!   page tables map its text and any breakpoint works. Where the VM
//!   refuses that breakpoint (vmdbg-vmm on a KVM that delivers none), the
//!   session says so ([`NO_BREAKPOINTS`]) and the kernel starts from its
//!   entry: pause, stepping and inspection still work.
//! - `run`: shell commands the agent runs in the guest once it is up, their
//!   output in the debug console.
//!
//! This module owns the VM of a kernel session and its console and `run`
//! relays; the session owns stops, stepping and inspection, as for any
//! target.

use std::cell::RefCell;
use std::io::{Read, Seek};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::launch::{LaunchConfig, LineSink};
use super::outbox::Outbox;
use super::program::Progress;
use crate::debugger::target::Replay;
use crate::engine::{self, EngineChoice, Vm, VmExit, VmSpec};
use crate::image::{kernel_debug, GuestImage};
use crate::rsp::{Endpoint, RspClient, StopReply};
use crate::symbols::Symbols;

/// What a session says where the VM refuses the first stop's hardware
/// breakpoint (vmdbg-vmm on a KVM that delivers no debug-register
/// breakpoints: one nested under QEMU TCG before 9.1).
pub const NO_BREAKPOINTS: &str = "this VM cannot stop the kernel at breakpoints (its KVM delivers \
     no debug-register breakpoints to guests, e.g. a KVM nested under QEMU TCG before 9.1; \
     `engine: \"qemu\"` can): the kernel starts from its entry, breakpoints stay unverified; \
     pause, stepping and inspection work";

/// Where the kernel has its page tables and its text mapped.
const FIRST_STOP: &str = "start_kernel";

/// The VM of a kernel session and its relays.
pub struct KernelVm {
    /// Shared with the debugger core's handle on the replay
    /// ([`KernelVm::replay`]); the VM's life is this struct's.
    vm: SharedVm,
    /// A recording whose engine goes back by replaying afresh.
    afresh: bool,
    stop_relays: Arc<AtomicBool>,
    /// Ends after the VM, once the console's last output is passed on.
    console_relay: Option<std::thread::JoinHandle<()>>,
    pub pid: Option<u32>,
    /// Dropped after `vm`: ends the thread that started the VM, whose life
    /// bounds the VM's (PR_SET_PDEATHSIG follows the spawning thread).
    _keeper: std::sync::mpsc::Sender<()>,
}

type SharedVm = Rc<RefCell<Option<Box<dyn Vm>>>>;

/// The debugger core's handle on a kernel session's replay: the engine's
/// replay controls (see [`engine::Replay`]), while the VM lives.
struct ReplayHandle {
    vm: SharedVm,
    afresh: bool,
}

impl ReplayHandle {
    /// `f` on the engine's controls for replaying afresh, when the VM lives
    /// and its replay goes back that way.
    fn with_afresh<T>(&self, f: impl FnOnce(&mut dyn engine::ReplayAfresh) -> T) -> Option<T> {
        let mut vm = self.vm.borrow_mut();
        Some(f(vm.as_mut()?.support_replay()?.support_afresh()?))
    }
}

impl Replay for ReplayHandle {
    fn position(&mut self) -> Option<Result<engine::ReplayPosition>> {
        Some(self.vm.borrow_mut().as_mut()?.support_replay()?.position())
    }

    /// A stub that runs backwards itself stops at the recording's end
    /// already.
    fn keep_inside(&mut self) -> Result<()> {
        self.with_afresh(|replay| replay.keep_inside())
            .unwrap_or(Ok(()))
    }

    fn break_at(&mut self, icount: u64) -> Result<()> {
        self.with_afresh(|replay| replay.break_at(icount))
            .context("this session's stub runs backwards itself: it takes no replay break")?
    }

    fn afresh(&mut self, icount: u64) -> Option<Result<()>> {
        self.with_afresh(|replay| replay.start_at(icount))
    }

    fn goes_back_afresh(&self) -> bool {
        self.afresh
    }

    fn rsp_endpoint(&self) -> Option<Endpoint> {
        Some(Endpoint::Unix(
            self.vm.borrow().as_ref()?.rsp_endpoint().to_path_buf(),
        ))
    }
}

impl KernelVm {
    /// The debugger core's handle on this VM's replay (a recorded session;
    /// on a live VM it says there is none).
    pub fn replay(&self) -> Box<dyn Replay> {
        Box::new(ReplayHandle {
            vm: self.vm.clone(),
            afresh: self.afresh,
        })
    }

    /// Types into the guest's serial console.
    pub fn console_input(&mut self, bytes: &[u8]) -> Result<()> {
        self.vm
            .borrow_mut()
            .as_mut()
            .context("the VM has ended")?
            .support_console_input()
            .context(engine::NO_CONSOLE_INPUT)?
            .type_in(bytes)
    }

    /// Once the VM has ended: the engine's last words (see
    /// [`engine::Vm::last_words`]).
    pub fn last_words(&mut self) -> String {
        self.vm
            .borrow_mut()
            .as_mut()
            .map(|vm| vm.last_words())
            .unwrap_or_default()
    }

    /// After the guest ended the VM (the stub said so): how the engine
    /// process ended, waiting a moment for it before ending it.
    pub async fn ended(&mut self) -> Option<VmExit> {
        for _ in 0..300 {
            let exit = self.vm.borrow_mut().as_mut().map(|vm| vm.try_exit());
            match exit {
                Some(Some(exit)) => {
                    self.shut_down().await;
                    return Some(exit);
                }
                Some(None) => tokio::time::sleep(Duration::from_millis(10)).await,
                None => return None,
            }
        }
        self.shut_down().await
    }

    /// Ends the VM; how it ended, if it had already.
    pub async fn shut_down(&mut self) -> Option<VmExit> {
        let mut vm = self.vm.borrow_mut().take()?;
        let stop = self.stop_relays.clone();
        let relay = self.console_relay.take();
        tokio::task::spawn_blocking(move || {
            let exit = vm.shutdown(Duration::from_secs(2)).ok();
            stop.store(true, Ordering::SeqCst);
            if let Some(relay) = relay {
                let _ = relay.join();
            }
            exit
        })
        .await
        .ok()
        .flatten()
    }
}

impl Drop for KernelVm {
    fn drop(&mut self) {
        self.stop_relays.store(true, Ordering::SeqCst);
        self.vm.borrow_mut().take();
    }
}

pub struct StartedKernel {
    pub rsp: RspClient,
    pub symbols: Rc<Symbols>,
    pub vm: KernelVm,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("a background task failed")?
}

pub async fn start(
    config: &LaunchConfig,
    out: &mut Outbox,
    console: LineSink,
) -> Result<StartedKernel> {
    let title = if config.record {
        "Recording the kernel's run, then replaying it"
    } else {
        "Starting the kernel in a fresh VM"
    };
    let mut progress = Progress::start(out, title);
    let result = boot(config, &mut progress, console).await;
    match &result {
        Ok(_) if config.record => progress.end("the replay is ready at the start of the recording"),
        Ok(_) => progress.end("the kernel is running its start_kernel"),
        Err(e) => progress.end(&format!("failed: {e:#}")),
    }
    result
}

async fn boot(
    config: &LaunchConfig,
    progress: &mut Progress<'_>,
    console: LineSink,
) -> Result<StartedKernel> {
    progress.update("preparing the guest image", 2);
    let default = config.is_default_kernel();
    let (kernel, initrd) = (config.kernel.clone(), config.initrd.clone());
    if config.record && !config.run.is_empty() {
        bail!("launch configuration: `run` needs the agent, which a `record` session does not have (its replay cannot run new commands); leave out one of them");
    }
    let kernel_only = config.is_kernel_alone();
    let image = blocking(move || {
        if kernel_only {
            if !kernel.is_file() {
                bail!(
                    "launch configuration: `kernel` {} does not exist",
                    kernel.display()
                );
            }
            return GuestImage::kernel_only(&kernel);
        }
        if default {
            let image = crate::image::default_image()?;
            return Ok(match initrd {
                Some(initrd) => GuestImage::custom(&image.kernel, &initrd)?,
                None => image,
            });
        }
        if !kernel.is_file() {
            bail!(
                "launch configuration: `kernel` {} does not exist (give a vmlinux or bzImage, or \"default\" for the default image's kernel)",
                kernel.display()
            );
        }
        // The default image's initramfs brings the agent; its modules are
        // the default kernel's and simply fail to load in another one.
        let initrd = match initrd {
            Some(i) => i,
            None => crate::image::default_image()?
                .initrd
                .context("the default image has no initramfs")?,
        };
        GuestImage::custom(&kernel, &initrd).context("launch configuration: `initrd`")
    })
    .await?;

    // Symbols: the user's, else the default kernel's DWARF (fetched once),
    // else the kernel ELF itself.
    let (symbols_path, mut source_map) = match (&config.symbols, default) {
        (Some(path), _) => (path.clone(), Vec::new()),
        (None, true) => {
            let (tx, rx) = std::sync::mpsc::channel::<String>();
            let fetch = tokio::task::spawn_blocking(move || -> Result<(PathBuf, PathBuf)> {
                let mut step = |m: &str| {
                    let _ = tx.send(m.to_string());
                };
                let vmlinux = kernel_debug::ensure_vmlinux(&mut step)?;
                let sources = kernel_debug::ensure_sources(&mut step)?;
                // Beside vmlinux-dbg, where the session's module support finds them.
                kernel_debug::ensure_module_debug(&mut step)?;
                Ok((vmlinux, sources))
            });
            // Relay the fetch's steps as progress while it runs.
            let mut fetch = fetch;
            let fetched = loop {
                tokio::select! {
                    done = &mut fetch => break done.context("the symbol fetch failed")?,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {
                        while let Ok(step) = rx.try_recv() {
                            progress.update(&step, 10);
                        }
                    }
                }
            };
            let (vmlinux, sources) = fetched?;
            (vmlinux, kernel_debug::source_map(&sources))
        }
        (None, false) => (config.kernel.clone(), Vec::new()),
    };
    source_map.extend(
        config
            .source_map
            .iter()
            .map(|(a, b)| (a.clone(), b.clone())),
    );

    let mut cmdline = String::new();
    let user_cmdline = config.cmdline.clone().unwrap_or_default();
    // KASLR is Linux's; a kernel alone gets the user's command line only.
    if !kernel_only
        && !user_cmdline
            .split_whitespace()
            .any(|w| w == "kaslr" || w == "nokaslr")
    {
        cmdline.push_str("nokaslr");
    }
    if !user_cmdline.is_empty() {
        cmdline.push(' ');
        cmdline.push_str(&user_cmdline);
    }
    let spec = VmSpec {
        image,
        mem_mib: match &config.mem {
            Some(m) => parse_mib(m)?,
            // vmdbg-vmm's default for a kernel alone; Linux wants more.
            None if kernel_only => 128,
            None => 512,
        },
        cpus: config.cpus.unwrap_or(1),
        start_paused: true,
        extra_cmdline: cmdline.trim().to_string(),
        record: None,
        resets: false,
    };
    let (record_tx, record_rx) = std::sync::mpsc::channel::<String>();
    let spec = VmSpec {
        record: config.record.then(|| engine::RecordSpec {
            limit: config.record_limit(),
            progress: Some(record_tx),
        }),
        ..spec
    };
    progress.update(
        if config.record {
            "recording the kernel's run"
        } else {
            "booting the VM (stopped)"
        },
        40,
    );
    let choice = match crate::guest::engine_choice(config.engine)? {
        // vmdbg-vmm records a kernel alone; QEMU records any guest.
        EngineChoice::Auto if config.record && !kernel_only => EngineChoice::Qemu,
        EngineChoice::Kvm if config.record && !kernel_only => {
            bail!(engine::kvm::RECORD_NEEDS_KERNEL_ALONE)
        }
        choice => choice,
    };
    let vmm = config.vmm.clone();
    let (booted_tx, booted_rx) = tokio::sync::oneshot::channel();
    let (keeper, keeper_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let chosen = engine::choose_engine_for(choice, kernel_only, vmm.as_deref());
        let booted = chosen.and_then(|(engine, why)| {
            let vm = crate::guest::boot_for_debugger(engine.as_ref(), &spec)?;
            Ok((vm, why))
        });
        let _ = booted_tx.send(booted);
        // Lives until the session lets the VM go (see KernelVm::_keeper).
        let _ = keeper_rx.recv();
    });
    // Relay the recording's progress while the engine boots.
    let mut booted_rx = booted_rx;
    let booted = loop {
        tokio::select! {
            booted = &mut booted_rx => break booted,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                while let Ok(step) = record_rx.try_recv() {
                    progress.update(&step, 45);
                }
            }
        }
    };
    while let Ok(step) = record_rx.try_recv() {
        progress.update(&step, 45);
    }
    let (mut vm, why) = booted.context("the VM's thread ended")??;
    let _ = console.send(("console", format!("vmdbg: {why}\n")));
    if let Some(messages) = vm.engine_messages() {
        // What the VMM says (a fatal exit's report, a replay's divergence)
        // belongs in the debug console, beside the guest's.
        let console = console.clone();
        std::thread::spawn(move || {
            for line in messages {
                if console.send(("stderr", format!("{line}\n"))).is_err() {
                    return;
                }
            }
        });
    }
    let stop_relays = Arc::new(AtomicBool::new(false));
    let console_relay = relay_console(
        vm.console_log().to_path_buf(),
        console.clone(),
        stop_relays.clone(),
    );
    if !config.run.is_empty() {
        run_commands(
            vm.agent().clone(),
            config.run.clone(),
            console.clone(),
            stop_relays.clone(),
        );
    }
    let endpoint = Endpoint::Unix(vm.rsp_endpoint().to_path_buf());
    let mut kernel_vm = KernelVm {
        afresh: vm
            .support_replay()
            .is_some_and(|replay| replay.support_afresh().is_some()),
        pid: vm.pid(),
        vm: Rc::new(RefCell::new(Some(vm))),
        stop_relays,
        console_relay: Some(console_relay),
        _keeper: keeper,
    };

    progress.update(
        &format!("reading the kernel's DWARF ({})", symbols_path.display()),
        50,
    );
    let connect = async {
        // vmdbg-vmm creates its socket a moment after it starts.
        let mut tries = 0;
        loop {
            match RspClient::connect(&endpoint).await {
                Ok(rsp) => return Ok(rsp),
                Err(e) if tries > 100 => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
            tries += 1;
        }
    };
    let load = blocking(move || {
        let mut symbols = Symbols::load(&symbols_path)?;
        symbols.set_source_map(&source_map);
        Ok(symbols)
    });
    let (rsp, symbols) = tokio::join!(connect, load);
    let mut rsp = match rsp {
        Ok(rsp) => rsp,
        Err(e) => {
            let said = kernel_vm.last_words();
            kernel_vm.shut_down().await;
            return Err(e.context(format!(
                "cannot connect to the VM's gdb stub; the engine said:\n{said}"
            )));
        }
    };
    let symbols = symbols?;

    progress.update(&format!("running the kernel to {FIRST_STOP}"), 80);
    match run_to_first_stop(&mut rsp, &symbols).await {
        Ok(FirstStop::Reached | FirstStop::NoSuchFunction) => {}
        Ok(FirstStop::Refused) => {
            let _ = console.send(("console", format!("vmdbg: {NO_BREAKPOINTS}\n")));
        }
        Err(e) => {
            kernel_vm.shut_down().await;
            return Err(e);
        }
    }
    Ok(StartedKernel {
        rsp,
        symbols: Rc::new(symbols),
        vm: kernel_vm,
    })
}

/// Where [`run_to_first_stop`] left the kernel.
#[derive(Debug, PartialEq, Eq)]
pub enum FirstStop {
    Reached,
    /// A kernel without [`FIRST_STOP`] (a bare-metal one) stays at its entry.
    NoSuchFunction,
    /// The VM refused the hardware breakpoint: the kernel stays at its entry.
    Refused,
}

/// Runs the kernel to [`FIRST_STOP`] on a hardware breakpoint (see the
/// module doc).
pub async fn run_to_first_stop(rsp: &mut RspClient, symbols: &Symbols) -> Result<FirstStop> {
    let Some(addr) = symbols.function_named(FIRST_STOP).map(|f| f.low) else {
        return Ok(FirstStop::NoSuchFunction);
    };
    // No other breakpoint holds a debug register yet: a refusal is the
    // host's (vmdbg-vmm refuses breakpoints where its KVM would never
    // deliver them; its `monitor info` says so).
    if let Err(e) = rsp.insert_hw_breakpoint(addr).await {
        tracing::info!("hardware breakpoint on {FIRST_STOP} refused: {e:#}");
        return Ok(FirstStop::Refused);
    }
    rsp.resume_continue()?;
    let stop = tokio::time::timeout(Duration::from_secs(120), rsp.wait_stop(|_| {})).await;
    match stop {
        Ok(Ok(StopReply::Signal { .. })) => {}
        Ok(Ok(other)) => {
            bail!("the kernel ended before {FIRST_STOP}: {other:?}; its console is in the debug console")
        }
        Ok(Err(e)) => return Err(e.context(format!("while the kernel ran to {FIRST_STOP}"))),
        Err(_) => bail!("the kernel did not reach {FIRST_STOP} within 120 s (its console is in the debug console)"),
    }
    rsp.remove_hw_breakpoint(addr).await?;
    Ok(FirstStop::Reached)
}

/// Attached to a Linux kernel whose vCPU is still at its boot entry (a
/// QEMU started with `-S`: the pc is in the physical copy of the kernel's
/// text, where the kernel runs before its page tables map it at
/// `__START_KERNEL_map`), runs it to [`FIRST_STOP`] first, as a launch
/// does. True if it did.
pub async fn attach_past_boot_entry(
    rsp: &mut RspClient,
    symbols: &Symbols,
    pc: u64,
) -> Result<bool> {
    const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
    let Some(first) = symbols.function_named(FIRST_STOP) else {
        return Ok(false);
    };
    let (low, high) = symbols.text_range();
    if first.low < START_KERNEL_MAP || low < START_KERNEL_MAP {
        return Ok(false);
    }
    let physical = (low - START_KERNEL_MAP)..(high - START_KERNEL_MAP);
    if !physical.contains(&pc) {
        return Ok(false);
    }
    Ok(run_to_first_stop(rsp, symbols).await? == FirstStop::Reached)
}

/// "512M", "1G", "768" (MiB).
fn parse_mib(text: &str) -> Result<u64> {
    let t = text.trim();
    let (num, mul) = match t.chars().last() {
        Some('M' | 'm') => (&t[..t.len() - 1], 1),
        Some('G' | 'g') => (&t[..t.len() - 1], 1024),
        _ => (t, 1),
    };
    num.parse::<u64>()
        .map(|n| n * mul)
        .ok()
        .filter(|&n| n >= 64)
        .with_context(|| {
            format!("launch configuration: `mem` {text:?} is not a size such as \"512M\" or \"1G\" (64M at least)")
        })
}

/// Passes what the guest writes to its serial console (a file the engine
/// fills) on as `console` output, until told to stop.
fn relay_console(
    path: PathBuf,
    console: LineSink,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut offset = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // Once told to stop: one last pass for what came meanwhile.
            let stopping = stop.load(Ordering::SeqCst);
            let mut read_any = false;
            if let Ok(mut f) = std::fs::File::open(&path) {
                if f.seek(std::io::SeekFrom::Start(offset)).is_ok() {
                    while let Ok(n @ 1..) = f.read(&mut buf) {
                        offset += n as u64;
                        read_any = true;
                        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                        if console.send(("console", text)).is_err() {
                            return;
                        }
                    }
                }
            }
            if stopping {
                return;
            }
            if !read_any {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    })
}

/// Runs each `run` command with `sh -c` once the agent is up, one after
/// the other, their output in the debug console.
fn run_commands(
    agent: Arc<vmdbg_agent::client::AgentClient>,
    commands: Vec<String>,
    console: LineSink,
    stop: Arc<AtomicBool>,
) {
    use vmdbg_agent::client::{Chunk, ExecOptions};
    std::thread::spawn(move || {
        // The kernel may sit at breakpoints for as long as the user likes.
        loop {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            match agent.wait_ready(Duration::from_millis(500)) {
                Ok(_) => break,
                Err(vmdbg_agent::client::ClientError::Timeout(_)) => {}
                Err(_) => return,
            }
        }
        for command in commands {
            let _ = console.send(("console", format!("vmdbg: run: {command}\n")));
            let program = match agent.exec(&ExecOptions::new(["/bin/sh", "-c", command.as_str()])) {
                Ok(p) => p,
                Err(e) => {
                    let _ =
                        console.send(("stderr", format!("vmdbg: cannot run {command:?}: {e}\n")));
                    return;
                }
            };
            let relays: Vec<_> = [(program.stdout, "stdout"), (program.stderr, "stderr")]
                .into_iter()
                .map(|(chunks, category)| {
                    let console = console.clone();
                    std::thread::spawn(move || {
                        while let Ok(Chunk::Data(bytes)) = chunks.recv() {
                            let _ = console
                                .send((category, String::from_utf8_lossy(&bytes).into_owned()));
                        }
                    })
                })
                .collect();
            let status = agent.wait(program.pid);
            for r in relays {
                let _ = r.join();
            }
            let _ = console.send((
                "console",
                format!(
                    "vmdbg: run: {command:?} ended: {}\n",
                    match status {
                        Ok(s) => format!("{s:?}"),
                        Err(e) => e.to_string(),
                    }
                ),
            ));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_mib("512M").unwrap(), 512);
        assert_eq!(parse_mib("1G").unwrap(), 1024);
        assert_eq!(parse_mib("768").unwrap(), 768);
        assert!(parse_mib("lots").unwrap_err().to_string().contains("`mem`"));
    }
}

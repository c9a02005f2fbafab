//! `vmdbg run`: boots a fresh VM (default image or `--kernel/--initrd`),
//! copies files in, runs a command through the agent, streams its output
//! and exits with its status (128 + N when a signal N ended it).
//!
//! Ctrl-C (or SIGTERM/SIGHUP) first interrupts the guest command (SIGINT
//! to its process group, SIGKILL if it is still there after 2 s), then ends
//! the VM; nothing is left behind (the engine removes its sockets).
//!
//! This module drives an [`engine::Vm`](crate::engine::Vm) and never
//! branches on which engine it is. The pieces other commands that boot a
//! guest share are here too: the VM options ([`VmArgs`]), the engine
//! choice, booting with Ctrl-C watched, copying files in, the guest's base
//! environment, and (`debuggee`) starting a program under the agent's
//! debugger.

pub mod copy;
pub mod debuggee;
pub(crate) mod warm;

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use vmdbg_agent::client::{Chunk, ClientError, ExecOptions};
use vmdbg_agent::protocol::{ExitStatus, Reply, StdioMode};

use crate::engine::{self, EngineChoice, VmExit, VmSpec};
use crate::image::GuestImage;

/// The VM a command boots: engine, image, size, and files copied in.
#[derive(clap::Args, Debug)]
pub struct VmArgs {
    /// auto: vmdbg's VMM where the host's KVM passes the start-up probe,
    /// QEMU otherwise; kvm; qemu. Default: $VMDBG_ENGINE, else auto.
    #[arg(long, value_enum)]
    pub engine: Option<EngineChoice>,
    /// Boot this kernel (bzImage, or a vmlinux with a PVH note) instead of
    /// the default image's. Needs --initrd.
    #[arg(long, requires = "initrd")]
    pub kernel: Option<PathBuf>,
    /// The initramfs for --kernel; its init must start `vmdbg-agent serve`.
    #[arg(long, requires = "kernel")]
    pub initrd: Option<PathBuf>,
    /// Guest memory, e.g. 512M or 2G.
    #[arg(long, default_value = "512M", value_parser = parse_mem_mib)]
    pub mem: u64,
    /// Number of vCPUs.
    #[arg(long, default_value_t = 1)]
    pub cpus: u32,
    /// Copy a host file into the guest (default: /<name>); an ELF program
    /// brings its shared libraries and loader. Repeatable.
    #[arg(long = "copy", value_name = "HOSTPATH[:GUESTPATH]")]
    pub copies: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub vm: VmArgs,
    /// After the command ends, copy a guest file to the host (default:
    /// ./<name>), verified by SHA-256. Repeatable.
    #[arg(long = "copy-out", value_name = "GUESTPATH[:HOSTPATH]")]
    pub copy_outs: Vec<String>,
    /// Run the command on a pseudo-terminal (stdout and stderr merged).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Working directory of the command in the guest.
    #[arg(long, default_value = "/root")]
    pub cwd: String,
    /// Print how long each phase took (boot, copy, command) on stderr.
    #[arg(long)]
    pub timings: bool,
    /// Boot the guest instead of starting it from the saved state of an
    /// earlier boot of the same image (engines that can save one).
    #[arg(long)]
    pub cold: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

fn parse_mem_mib(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 512M or 2G"))?;
    let mib = match unit.to_ascii_uppercase().as_str() {
        "" | "M" | "MB" | "MIB" => n,
        "G" | "GB" | "GIB" => n * 1024,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (use M or G)")),
    };
    if mib < 128 {
        return Err(format!(
            "{text} is too little memory for the guest (at least 128M)"
        ));
    }
    Ok(mib)
}

/// Counts SIGINT/SIGTERM/SIGHUP.
pub fn interrupt_counter() -> Result<Arc<AtomicUsize>> {
    let count = Arc::new(AtomicUsize::new(0));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        let c = count.clone();
        // SAFETY: the handler only does an atomic increment.
        unsafe {
            signal_hook::low_level::register(signal, move || {
                c.fetch_add(1, Ordering::SeqCst);
            })
        }
        .context("install the signal handler")?;
    }
    Ok(count)
}

/// The engine `--engine` names, else `$VMDBG_ENGINE`, else auto.
pub fn engine_choice(flag: Option<EngineChoice>) -> Result<EngineChoice> {
    Ok(match flag {
        Some(c) => c,
        None => match std::env::var("VMDBG_ENGINE") {
            Ok(v) if !v.is_empty() => <EngineChoice as clap::ValueEnum>::from_str(&v, true)
                .map_err(|_| anyhow::anyhow!("VMDBG_ENGINE={v}: expected auto, kvm or qemu"))?,
            _ => EngineChoice::Auto,
        },
    })
}

/// The engine, image and copy plan of `vm`, and the spec to boot it with
/// (`extra_copies` are planned after `--copy`'s). The auto engine's
/// choice is printed with its reason.
pub fn prepare(
    vm: &VmArgs,
    extra_copies: &[String],
) -> Result<(Box<dyn engine::Engine>, VmSpec, copy::CopyPlan)> {
    let choice = engine_choice(vm.engine)?;
    let (engine, why) = engine::choose_engine(choice)?;
    if choice == EngineChoice::Auto {
        eprintln!("vmdbg: {why}");
    } else {
        tracing::info!("{why}");
    }
    let image = match (&vm.kernel, &vm.initrd) {
        (Some(k), Some(i)) => GuestImage::custom(k, i)?,
        _ => crate::image::default_image()?,
    };
    let specs: Vec<String> = vm.copies.iter().chain(extra_copies).cloned().collect();
    let copies = copy::plan(&specs)?;
    let spec = VmSpec {
        image,
        mem_mib: vm.mem,
        cpus: vm.cpus,
        start_paused: false,
        extra_cmdline: String::new(),
        record: None,
    };
    Ok((engine, spec, copies))
}

/// Boots `spec` and waits for the agent, watching for ^C while the guest
/// comes up: None when interrupted (the VM is already shut down).
pub fn boot(
    engine: &dyn engine::Engine,
    spec: &VmSpec,
    interrupts: &AtomicUsize,
) -> Result<Option<Box<dyn engine::Vm>>> {
    let mut vm = engine.boot(spec)?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        match engine::wait_for_agent(vm.as_mut(), Duration::from_millis(200)) {
            Ok(_) => {
                set_guest_clock(vm.as_ref());
                return Ok(Some(vm));
            }
            Err(e) if vm.try_exit().is_some() || Instant::now() > deadline => return Err(e),
            Err(e) if !e.to_string().starts_with("no agent answered") => return Err(e),
            Err(_) => {}
        }
        if interrupts.load(Ordering::SeqCst) > 0 {
            vm.shutdown(Duration::from_secs(2))?;
            eprintln!("vmdbg: interrupted while the guest was booting");
            return Ok(None);
        }
    }
}

/// Sets the guest's wall clock from the host's: a booted guest reads its
/// clock from the VM's (an emulated RTC, KVM's wall clock), which can be
/// seconds off on a loaded or nested host, and a restored or saved one
/// stood still meanwhile. An agent that cannot (a custom initramfs with
/// an older one) leaves the guest's clock as it is.
pub fn set_guest_clock(vm: &dyn engine::Vm) {
    if let Err(e) = vm.agent().set_clock_from_host() {
        tracing::warn!("could not set the guest's clock from the host's: {e}");
    }
}

/// Copies the planned files into the guest.
pub fn copy_in(agent: &vmdbg_agent::client::AgentClient, copies: &copy::CopyPlan) -> Result<()> {
    for (host, guest) in &copies.files {
        agent
            .put_file(host, guest)
            .with_context(|| format!("copy {} to the guest's {guest}", host.display()))?;
    }
    Ok(())
}

/// The environment a guest command starts with: PATH, HOME, and
/// LD_LIBRARY_PATH for copied libraries the guest's loader would not find.
pub fn guest_env(copies: &copy::CopyPlan) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "PATH".to_string(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        ),
        ("HOME".to_string(), "/root".to_string()),
    ];
    if !copies.library_dirs.is_empty() {
        env.push(("LD_LIBRARY_PATH".to_string(), copies.library_dirs.join(":")));
    }
    env
}

pub fn main(args: RunArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let interrupts = interrupt_counter()?;
    let (engine, spec, copies) = prepare(&args.vm, &[])?;
    let t_boot = Instant::now();
    let booted = if args.cold {
        boot(engine.as_ref(), &spec, &interrupts)?
    } else {
        warm::boot(engine.as_ref(), &spec, &interrupts)?
    };
    let Some(mut vm) = booted else {
        return Ok(ExitCode::from(130));
    };
    let agent = vm.agent().clone();
    let info = agent.hello().context("agent hello")?;
    let t_ready = Instant::now();
    tracing::info!(
        "agent {} (protocol {}) on kernel {}",
        info.agent_version,
        info.version,
        info.kernel
    );

    copy_in(&agent, &copies)?;
    let t_copied = Instant::now();

    let mut options = ExecOptions::new(args.command.iter().cloned());
    options.cwd = Some(args.cwd.clone());
    options.stdin = true;
    options.env.extend(guest_env(&copies));
    if args.tty {
        let (rows, cols) = terminal_size();
        options.stdio = StdioMode::Pty { rows, cols };
        options.env.push((
            "TERM".into(),
            std::env::var("TERM").unwrap_or_else(|_| "xterm".into()),
        ));
    }
    let program = match agent.exec(&options) {
        Ok(p) => p,
        Err(ClientError::Agent(e)) => {
            vm.shutdown(Duration::from_secs(2))?;
            bail!("the guest cannot run {}: {}", args.command[0], e.message);
        }
        Err(e) => return Err(e.into()),
    };
    let out_thread = relay(program.stdout, std::io::stdout());
    let err_thread = relay(program.stderr, std::io::stderr());
    if let Some(stdin) = program.stdin {
        // Host stdin to the program; a thread that may stay blocked in
        // read() until the process exits, which is harmless.
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 32 * 1024];
            let mut input = std::io::stdin();
            while let Ok(n @ 1..) = input.read(&mut buf) {
                if stdin.send(&buf[..n]).is_err() {
                    return;
                }
            }
            let _ = stdin.close();
        });
    }

    let pending = agent.wait_request(program.pid)?;
    let mut interrupted_at: Option<Instant> = None;
    let mut killed = false;
    let outcome: Result<ExitStatus, String> = loop {
        if let Some(reply) = pending.wait_timeout(Duration::from_millis(50)) {
            break match reply {
                Ok(Reply::Exited(status)) => Ok(status),
                Ok(other) => Err(format!("unexpected reply {other:?}")),
                Err(e) => Err(e.to_string()),
            };
        }
        if interrupts.load(Ordering::SeqCst) > 0 {
            match interrupted_at {
                None => {
                    interrupted_at = Some(Instant::now());
                    let _ = agent.signal(program.pid, libc::SIGINT, true);
                }
                Some(at)
                    if !killed
                        && (at.elapsed() > Duration::from_secs(2)
                            || interrupts.load(Ordering::SeqCst) > 1) =>
                {
                    killed = true;
                    let _ = agent.signal(program.pid, libc::SIGKILL, true);
                }
                Some(at) if at.elapsed() > Duration::from_secs(5) => {
                    break Err("the guest command did not end after SIGKILL".into())
                }
                _ => {}
            }
        }
        if let Some(exit) = vm.try_exit() {
            break Err(format!("the VM ended ({exit})"));
        }
    };
    let t_done = Instant::now();
    // Output before the status: the agent sends it first; wait for the
    // relays to write it out (bounded, in case the VM went away).
    for relay in [out_thread, err_thread] {
        let _ = relay.recv_timeout(Duration::from_secs(5));
    }
    let copied_out = if outcome.is_ok() {
        copy_out(&agent, &args.copy_outs)
    } else {
        Ok(())
    };
    let t_copied_out = Instant::now();
    let vm_exit = vm.shutdown(Duration::from_secs(3))?;
    copied_out?;
    if args.timings {
        eprintln!(
            "vmdbg: timings ({}, {}): engine+image {:.3}s, boot to agent ready {:.3}s, copy {:.3}s, command {:.3}s, copy-out {:.3}s, shutdown {:.3}s, total {:.3}s",
            vm.describe(),
            spec.image.describe,
            (t_boot - started).as_secs_f64(),
            (t_ready - t_boot).as_secs_f64(),
            (t_copied - t_ready).as_secs_f64(),
            (t_done - t_copied).as_secs_f64(),
            (t_copied_out - t_done).as_secs_f64(),
            t_copied_out.elapsed().as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
    }
    match outcome {
        Ok(status) => {
            if let ExitStatus::Signal(sig) = status {
                eprintln!("vmdbg: the guest command was killed by signal {sig}");
            }
            Ok(ExitCode::from(status.shell_code().clamp(0, 255) as u8))
        }
        // The command powered the guest off (or rebooted it): the VM's
        // own status tells whether that was clean.
        Err(why) if vm_exit == VmExit::Code(0) && interrupted_at.is_none() => {
            eprintln!("vmdbg: the guest powered off before the command's status came ({why})");
            Ok(ExitCode::SUCCESS)
        }
        Err(why) if interrupted_at.is_some() => {
            eprintln!("vmdbg: interrupted ({why})");
            Ok(ExitCode::from(130))
        }
        Err(why) => bail!(
            "lost the guest command: {why} (VM {vm_exit}){}",
            engine::console_tail(vm.console_log())
        ),
    }
}

fn copy_out(agent: &vmdbg_agent::client::AgentClient, specs: &[String]) -> Result<()> {
    for spec in specs {
        let (guest, host) = match spec.split_once(':') {
            Some((g, h)) => (g.to_string(), PathBuf::from(h)),
            None => {
                let name = std::path::Path::new(spec)
                    .file_name()
                    .with_context(|| format!("--copy-out {spec}: names no file"))?;
                (spec.clone(), PathBuf::from(name))
            }
        };
        agent.get_file(&guest, &host).with_context(|| {
            format!(
                "--copy-out {spec}: copy the guest's {guest} to {}",
                host.display()
            )
        })?;
    }
    Ok(())
}

/// Writes a stream's chunks to `out`; the receiver fires when it is done.
fn relay(
    chunks: mpsc::Receiver<Chunk>,
    mut out: impl Write + Send + 'static,
) -> mpsc::Receiver<()> {
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        while let Ok(Chunk::Data(bytes)) = chunks.recv() {
            if out.write_all(&bytes).and_then(|_| out.flush()).is_err() {
                break;
            }
        }
        let _ = done_tx.send(());
    });
    done_rx
}

fn terminal_size() -> (u16, u16) {
    if std::io::stdout().is_terminal() {
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ fills the winsize we pass.
        if unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_row > 0 {
            return (ws.ws_row, ws.ws_col);
        }
    }
    (24, 80)
}

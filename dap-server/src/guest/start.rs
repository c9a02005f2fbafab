//! Starting a VM for any command or session (house plan item 2): the VM
//! options commands share ([`VmArgs`]), the engine choice, the image and
//! copy plan ([`prepare`]), and the three kinds of start — a boot that
//! waits for the agent ([`boot`], with Ctrl-C watched), a boot stopped for
//! a debugger ([`boot_for_debugger`]), and a start from a saved state
//! ([`warm`]) — then copying files in and the guest's base environment.
//! Every engine boot of vmdbg goes through here.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::copy;
use crate::engine::{self, EngineChoice, Vm, VmSpec};
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
        resets: false,
    };
    Ok((engine, spec, copies))
}

/// How long a guest may take to boot to its agent.
pub const BOOT_LIMIT: Duration = Duration::from_secs(300);

/// Boots `spec` and waits for the agent, watching for ^C while the guest
/// comes up: None when interrupted (the VM is already shut down).
pub fn boot(
    engine: &dyn engine::Engine,
    spec: &VmSpec,
    interrupts: &AtomicUsize,
) -> Result<Option<Box<dyn Vm>>> {
    let mut vm = engine.boot(spec)?;
    let deadline = Instant::now() + BOOT_LIMIT;
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

/// Boots `spec` for a debugger (a kernel session): the engine is up, its
/// gdb stub listening, and nothing waits for the guest (a kernel alone
/// has no agent; with `start_paused` it has not run an instruction).
pub fn boot_for_debugger(engine: &dyn engine::Engine, spec: &VmSpec) -> Result<Box<dyn Vm>> {
    engine.boot(spec)
}

/// Sets the guest's wall clock from the host's: a booted guest reads its
/// clock from the VM's (an emulated RTC, KVM's wall clock), which can be
/// seconds off on a loaded or nested host, and a restored or saved one
/// stood still meanwhile. An agent that cannot (a custom initramfs with
/// an older one) leaves the guest's clock as it is.
pub fn set_guest_clock(vm: &dyn Vm) {
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

//! The default guest image: Debian's kernel and busybox (pinned, verified
//! by SHA-256), the kernel modules the guest needs, the static vmdbg agent
//! (embedded in this binary at build time) and an init, packed as a newc
//! initramfs. Built on first use (or by `vmdbg image build`) and cached
//! under `$XDG_CACHE_HOME/vmdbg/` (default `~/.cache/vmdbg/`):
//!
//! ```text
//! debs/<package>_<version>.deb           downloaded packages
//! fallback-<package>                     the package used in place of a pin
//!                                        the archive no longer has
//! kernel-<version>-<sha12>/              per kernel package:
//!     vmlinuz, vmlinux (if it has a PVH note), release, deb, modules/*.ko, modules.order
//! initramfs-<key>.cpio                   key: hash of every input
//! ```
//!
//! Every entry is written under a temporary name and renamed into place,
//! and builds hold a lock, so concurrent first uses never see a
//! half-written image. This module does not boot anything: engines take a
//! [`GuestImage`].

mod cpio;
mod debian;
pub mod kernel;
pub mod kernel_debug;
pub mod pins;

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// The static agent, built by build.rs.
static AGENT: &[u8] = include_bytes!(env!("VMDBG_AGENT_STATIC"));

/// Bump when the layout of what is built changes, so old caches are not
/// mistaken for new ones.
const FORMAT: &str = "vmdbg-image-1";

/// The name of the agent's virtio-serial port; engines and the agent's
/// default agree on it.
pub const AGENT_PORT_NAME: &str = "org.vmdbg.agent.0";

/// A kernel and initramfs to boot.
#[derive(Clone, Debug)]
pub struct GuestImage {
    /// An uncompressed vmlinux with a PVH note, or a bzImage.
    pub kernel: PathBuf,
    /// None: a kernel that needs no initramfs (a bare-metal test kernel).
    pub initrd: Option<PathBuf>,
    /// Kernel command line the image needs (console, init behaviour);
    /// engines append their own.
    pub cmdline: String,
    /// A description for messages.
    pub describe: String,
}

impl GuestImage {
    /// A kernel alone, without an initramfs (a bare-metal kernel).
    pub fn kernel_only(kernel: &Path) -> Result<Self> {
        if !kernel.is_file() {
            bail!("--kernel {}: no such file", kernel.display());
        }
        Ok(GuestImage {
            kernel: kernel.to_path_buf(),
            initrd: None,
            cmdline: String::new(),
            describe: kernel.display().to_string(),
        })
    }

    /// A user's own kernel and initramfs.
    pub fn custom(kernel: &Path, initrd: &Path) -> Result<Self> {
        for (what, path) in [("--kernel", kernel), ("--initrd", initrd)] {
            if !path.is_file() {
                bail!("{what} {}: no such file", path.display());
            }
        }
        Ok(GuestImage {
            kernel: kernel.to_path_buf(),
            initrd: Some(initrd.to_path_buf()),
            cmdline: "console=ttyS0 quiet panic=-1".into(),
            describe: format!("{} + {}", kernel.display(), initrd.display()),
        })
    }
}

#[derive(clap::Args, Debug)]
pub struct ImageArgs {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(clap::Subcommand, Debug)]
enum ImageCommand {
    /// Build the default guest image now (it is also built on first use).
    Build {
        /// Rebuild even when a cached image matches.
        #[arg(long)]
        force: bool,
    },
    /// Show what is cached and which image the current build uses.
    Info,
    /// Fetch the default kernel's DWARF (Debian's linux-image-<abi>-dbg) and
    /// its sources (linux-source) now; kernel sessions fetch them on first use.
    Symbols,
}

pub fn main(args: ImageArgs) -> Result<ExitCode> {
    match args.command {
        ImageCommand::Build { force } => {
            let image = ensure_default_image(force)?;
            println!("kernel:    {}", image.kernel.display());
            if let Some(initrd) = &image.initrd {
                println!("initramfs: {}", initrd.display());
            }
        }
        ImageCommand::Info => info()?,
        ImageCommand::Symbols => {
            let (vmlinux, sources) = kernel_debug::fetch_all()?;
            println!("vmlinux: {}", vmlinux.display());
            println!("sources: {}", sources.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn cache_dir() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(
            std::env::var_os("HOME").context("neither XDG_CACHE_HOME nor HOME is set")?,
        )
        .join(".cache"),
    };
    Ok(base.join("vmdbg"))
}

pub(crate) fn kernel_dir_name(deb: &debian::Deb) -> String {
    format!(
        "kernel-{}-{}",
        deb.version.replace(':', "_"),
        &deb.sha256[..12]
    )
}

const INITTAB: &str = "\
::sysinit:/etc/vmdbg/rc
::respawn:/sbin/vmdbg-agent serve
::shutdown:/bin/busybox sync
";

/// Runs once per boot before the agent starts (busybox init's sysinit).
const RC: &str = r#"#!/bin/busybox sh
# vmdbg guest init: filesystems, modules (in the order vmdbg computed from
# their depends=), then busybox init starts the agent (see /etc/inittab).
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
hostname vmdbg
for m in $(cat /lib/modules/vmdbg.order); do
    insmod /lib/modules/$m.ko || echo "vmdbg init: insmod $m failed" >&2
done
"#;

/// The key of the initramfs: every input that changes its bytes.
fn initramfs_key(kernel_dir: &str, busybox: &debian::Deb, modules: &str) -> String {
    let mut h = Sha256::new();
    for part in [FORMAT, kernel_dir, &busybox.sha256, INITTAB, RC, modules] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.update(Sha256::digest(AGENT));
    debian::hex(&h.finalize()[..8])
}

/// An exclusive lock on the cache, released when the file closes on drop.
pub(crate) struct CacheLock(#[allow(dead_code)] std::fs::File);

impl CacheLock {
    pub(crate) fn take(cache: &Path) -> Result<Self> {
        std::fs::create_dir_all(cache)
            .with_context(|| format!("create the cache directory {}", cache.display()))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(cache.join("lock"))
            .with_context(|| format!("open {}/lock", cache.display()))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            bail!(
                "lock {}/lock: {}",
                cache.display(),
                std::io::Error::last_os_error()
            );
        }
        Ok(CacheLock(file))
    }
}

/// Progress of a build: a bar on a terminal, one line elsewhere.
pub(crate) struct Progress(indicatif::ProgressBar);

impl Progress {
    pub(crate) fn new(steps: u64, what: &str) -> Self {
        use std::io::IsTerminal;
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(steps);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {prefix} [{bar:30}] {pos}/{len} {msg}",
                )
                .unwrap()
                .progress_chars("=> "),
            );
            bar.set_prefix(what.to_string());
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            Progress(bar)
        } else {
            eprintln!("vmdbg: {what} (once; cached afterwards)");
            Progress(indicatif::ProgressBar::hidden())
        }
    }
    pub(crate) fn step(&self, msg: &str) {
        self.0.set_message(msg.to_string());
        self.0.inc(1);
    }
    pub(crate) fn done(&self) {
        self.0.finish_and_clear();
    }
}

/// The default image, built if it is not cached yet.
pub fn default_image() -> Result<GuestImage> {
    ensure_default_image(false)
}

fn ensure_default_image(force: bool) -> Result<GuestImage> {
    let cache = cache_dir()?;
    let _lock = CacheLock::take(&cache)?;
    if force {
        for pin in [&pins::KERNEL, &pins::BUSYBOX] {
            // A forced build asks apt again whether the pin is back.
            std::fs::remove_file(cache.join(format!("fallback-{}", pin.package))).ok();
        }
    }
    let mut kernel_deb = debian::current(&pins::KERNEL, &cache);
    let mut kernel_dir = cache.join(kernel_dir_name(&kernel_deb));
    if force && kernel_dir.exists() {
        std::fs::remove_dir_all(&kernel_dir)?;
    }
    if !kernel_dir.join("release").exists() {
        kernel_deb = build_kernel_dir(&cache)?;
        kernel_dir = cache.join(kernel_dir_name(&kernel_deb));
    }
    if !kernel_dir.join("deb").exists() {
        // Made by a vmdbg from before the file was written.
        std::fs::write(
            kernel_dir.join("deb"),
            format!("{} {}\n", kernel_deb.package, kernel_deb.version),
        )?;
    }
    let modules = std::fs::read_to_string(kernel_dir.join("modules.order"))?;
    let kernel_name = kernel_dir_name(&kernel_deb);
    let initrd_for = |busybox: &debian::Deb| {
        cache.join(format!(
            "initramfs-{}.cpio",
            initramfs_key(&kernel_name, busybox, &modules)
        ))
    };
    let mut initrd = initrd_for(&debian::current(&pins::BUSYBOX, &cache));
    if force || !initrd.exists() {
        let (busybox, deb) = debian::fetch(&pins::BUSYBOX, &cache)?;
        initrd = initrd_for(&busybox);
        build_initramfs(&cache, &deb, &kernel_dir, &modules, &initrd)?;
        prune_initramfs(&cache, KEEP_INITRAMFS);
    } else {
        // Recently used images survive pruning by other vmdbg builds.
        let _ = std::fs::File::options()
            .append(true)
            .open(&initrd)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
    }
    let vmlinux = kernel_dir.join("vmlinux");
    let kernel = if vmlinux.exists() {
        vmlinux
    } else {
        kernel_dir.join("vmlinuz")
    };
    let release = std::fs::read_to_string(kernel_dir.join("release"))?
        .trim()
        .to_string();
    Ok(GuestImage {
        kernel,
        initrd: Some(initrd),
        cmdline: "console=ttyS0 quiet panic=-1".into(),
        describe: format!(
            "default image (Debian kernel {release}, {})",
            kernel_deb.version
        ),
    })
}

/// Fetches the kernel package (the pin, or its stand-in) and unpacks what
/// the image needs into its kernel directory; returns which package.
fn build_kernel_dir(cache: &Path) -> Result<debian::Deb> {
    let progress = Progress::new(5, "building the default guest image: kernel");
    progress.step(&format!("apt-get download {}", pins::KERNEL.package));
    let (kernel_deb, deb) = debian::fetch(&pins::KERNEL, cache)?;
    let final_dir = cache.join(kernel_dir_name(&kernel_deb));
    let work = debian::tempdir_in(cache, "kernel")?;
    let result = (|| {
        progress.step("dpkg-deb -x");
        let pkg = work.join("pkg");
        debian::extract(&deb, &pkg)?;
        let vmlinuz = std::fs::read_dir(pkg.join("boot"))?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("vmlinuz-"))
            })
            .context("the kernel package has no boot/vmlinuz-*")?;
        let release = vmlinuz
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_start_matches("vmlinuz-")
            .to_string();
        let out = work.join("out");
        std::fs::create_dir_all(out.join("modules"))?;
        std::fs::copy(&vmlinuz, out.join("vmlinuz"))?;

        progress.step("module dependencies");
        let index = kernel::index_modules(&pkg.join("lib/modules").join(&release))?;
        let order = kernel::load_order(&index, pins::GUEST_MODULES)?;
        let mut names = String::new();
        for module in &order {
            std::fs::copy(
                &module.path,
                out.join("modules").join(format!("{}.ko", module.name)),
            )?;
            names.push_str(&module.name);
            names.push('\n');
        }
        std::fs::write(out.join("modules.order"), &names)?;

        progress.step("extracting vmlinux from the bzImage");
        let bz = std::fs::read(&vmlinuz)?;
        match kernel::extract_vmlinux(&bz) {
            Ok(elf) if kernel::has_pvh_note(&elf) => std::fs::write(out.join("vmlinux"), elf)?,
            Ok(_) => eprintln!("vmdbg: the kernel has no PVH note; booting the bzImage (slower)"),
            Err(e) => {
                eprintln!("vmdbg: cannot extract vmlinux ({e:#}); booting the bzImage (slower)")
            }
        }
        std::fs::write(out.join("release"), format!("{release}\n"))?;
        std::fs::write(
            out.join("deb"),
            format!("{} {}\n", kernel_deb.package, kernel_deb.version),
        )?;
        progress.step("done");
        if final_dir.exists() {
            // A forced rebuild replaces it.
            std::fs::remove_dir_all(&final_dir).ok();
        }
        std::fs::rename(&out, &final_dir)
            .with_context(|| format!("rename into {}", final_dir.display()))?;
        Ok(())
    })();
    std::fs::remove_dir_all(&work).ok();
    progress.done();
    result.map(|()| kernel_deb)
}

fn build_initramfs(
    cache: &Path,
    deb: &Path,
    kernel_dir: &Path,
    modules: &str,
    final_path: &Path,
) -> Result<()> {
    let progress = Progress::new(2, "building the default guest image: initramfs");
    let work = debian::tempdir_in(cache, "busybox")?;
    let result = (|| {
        debian::extract(deb, &work)?;
        let busybox =
            std::fs::read(work.join("bin/busybox")).context("busybox-static has no bin/busybox")?;
        progress.step("writing the initramfs");
        let temp = work.join("initramfs.cpio");
        let file = std::io::BufWriter::new(std::fs::File::create(&temp)?);
        let mut cpio = cpio::CpioWriter::new(file);
        for dir in [
            "/bin",
            "/sbin",
            "/usr",
            "/usr/bin",
            "/usr/sbin",
            "/etc",
            "/etc/vmdbg",
            "/proc",
            "/sys",
            "/dev",
            "/tmp",
            "/run",
            "/root",
            "/var",
            "/lib",
            "/lib/modules",
        ] {
            cpio.dir(dir)?;
        }
        cpio.char_device("/dev/console", 0o600, 5, 1)?;
        cpio.char_device("/dev/null", 0o666, 1, 3)?;
        cpio.file("/bin/busybox", 0o755, &busybox)?;
        cpio.symlink("/bin/sh", "busybox")?;
        cpio.symlink("/init", "bin/busybox")?;
        cpio.file("/etc/inittab", 0o644, INITTAB.as_bytes())?;
        cpio.file("/etc/vmdbg/rc", 0o755, RC.as_bytes())?;
        cpio.file("/sbin/vmdbg-agent", 0o755, AGENT)?;
        cpio.file("/lib/modules/vmdbg.order", 0o644, modules.as_bytes())?;
        for name in modules.lines().filter(|l| !l.is_empty()) {
            let ko = std::fs::read(kernel_dir.join("modules").join(format!("{name}.ko")))?;
            cpio.file(&format!("/lib/modules/{name}.ko"), 0o644, &ko)?;
        }
        let mut file = cpio.finish()?;
        file.flush()?;
        file.get_ref().sync_all()?;
        drop(file);
        progress.step("done");
        std::fs::rename(&temp, final_path)
            .with_context(|| format!("rename into {}", final_path.display()))?;
        Ok(())
    })();
    std::fs::remove_dir_all(&work).ok();
    progress.done();
    result
}

/// How many initramfs images the cache keeps: each vmdbg build embeds its
/// own agent and so keys its own image; a few builds may be in use at once.
const KEEP_INITRAMFS: usize = 4;

/// Removes all but the `keep` most recently used initramfs images. Runs
/// under the cache lock, right after a build. A VM already booting from a
/// removed image is unaffected (its VMM holds the file open).
fn prune_initramfs(cache: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    let mut images: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("initramfs-") && name.ends_with(".cpio")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    images.sort_by_key(|(used, _)| std::cmp::Reverse(*used));
    for (_, stale) in images.into_iter().skip(keep) {
        match std::fs::remove_file(&stale) {
            Ok(()) => tracing::info!("removed the unused image {}", stale.display()),
            Err(e) => tracing::warn!("cannot remove the unused image {}: {e}", stale.display()),
        }
    }
}

fn info() -> Result<()> {
    let cache = cache_dir()?;
    println!("cache:   {}", cache.display());
    println!(
        "pinned:  {} {} (sha256 {})",
        pins::KERNEL.package,
        pins::KERNEL.version,
        pins::KERNEL.sha256
    );
    println!(
        "         {} {} (sha256 {})",
        pins::BUSYBOX.package,
        pins::BUSYBOX.version,
        pins::BUSYBOX.sha256
    );
    println!(
        "agent:   embedded, {} bytes, sha256 {}",
        AGENT.len(),
        debian::hex(&Sha256::digest(AGENT))
    );
    // What the image is made of (the pins, or what stands in for a pin
    // the archive dropped): tests take the kernel they expect from here.
    let kernel_deb = debian::current(&pins::KERNEL, &cache);
    let busybox_deb = debian::current(&pins::BUSYBOX, &cache);
    for (deb, pin) in [(&kernel_deb, &pins::KERNEL), (&busybox_deb, &pins::BUSYBOX)] {
        let how = if deb.package == pin.package && deb.version == pin.version {
            "the pin".to_string()
        } else {
            format!(
                "in place of the pinned {} {}, gone from the archive",
                pin.package, pin.version
            )
        };
        println!("uses:    {} {} ({how})", deb.package, deb.version);
    }
    let kernel_name = kernel_dir_name(&kernel_deb);
    let kernel_dir = cache.join(&kernel_name);
    if let Ok(release) = std::fs::read_to_string(kernel_dir.join("release")) {
        println!("kernel release: {}", release.trim());
        println!("kernel version: {}", kernel_deb.version);
    }
    let current = std::fs::read_to_string(kernel_dir.join("modules.order"))
        .ok()
        .map(|m| {
            format!(
                "initramfs-{}.cpio",
                initramfs_key(&kernel_name, &busybox_deb, &m)
            )
        });
    let Ok(entries) = std::fs::read_dir(&cache) else {
        println!("nothing cached yet (`vmdbg image build` builds it)");
        return Ok(());
    };
    let mut names: Vec<_> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names.iter().filter(|n| !n.starts_with('.') && *n != "lock") {
        let path = cache.join(name);
        if name.starts_with("kernel-") {
            let release = std::fs::read_to_string(path.join("release")).unwrap_or_default();
            let pvh = if path.join("vmlinux").exists() {
                "vmlinux (PVH)"
            } else {
                "bzImage only"
            };
            let modules = std::fs::read_to_string(path.join("modules.order")).unwrap_or_default();
            println!(
                "{name}: release {}, {pvh}, modules: {}",
                release.trim(),
                modules.split_whitespace().collect::<Vec<_>>().join(" ")
            );
        } else if name.starts_with("initramfs-") {
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let mark = if current.as_deref() == Some(name.as_str()) {
                " (current)"
            } else {
                ""
            };
            println!("{name}: {:.1} MiB{mark}", size as f64 / (1 << 20) as f64);
        } else if name == "debs" {
            for deb in std::fs::read_dir(&path)?.flatten() {
                println!("debs/{}", deb.file_name().to_string_lossy());
            }
        }
    }
    if current.as_ref().is_none_or(|c| !cache.join(c).exists()) {
        println!("the current image is not built yet (`vmdbg image build`, or any `vmdbg run`)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn pruning_keeps_the_most_recently_used_images_and_nothing_else_is_touched() {
        let dir = std::env::temp_dir().join(format!("vmdbg-prune-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("kernel-x")).unwrap();
        std::fs::write(dir.join("lock"), b"").unwrap();
        let base = SystemTime::now() - Duration::from_secs(3600);
        for age in 0..6u64 {
            let file = std::fs::File::create(dir.join(format!("initramfs-{age}.cpio"))).unwrap();
            file.set_modified(base - Duration::from_secs(60 * age))
                .unwrap();
        }
        prune_initramfs(&dir, 4);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "initramfs-0.cpio",
                "initramfs-1.cpio",
                "initramfs-2.cpio",
                "initramfs-3.cpio",
                "kernel-x",
                "lock"
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

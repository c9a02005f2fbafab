//! The default kernel's debug information and sources, fetched once and
//! cached beside the image:
//!
//! ```text
//! debs/linux-image-<abi>-dbg_<version>.deb     855 MB, kept (modules' DWARF is in it too)
//! kernel-<version>-<sha12>/vmlinux-dbg         its full-DWARF vmlinux (631 MB)
//! kernel-<version>-<sha12>/modules-dbg/<name>.ko  the image's modules with their DWARF
//! linux-source-<version>/                      the source tree DWARF's paths point into
//! ```
//!
//! Both packages come from Debian at the versions pinned in [`super::pins`]
//! and are checked against pinned SHA-256s (apt-get has already checked
//! them against its signed index). The vmlinux sits near the front of the
//! dbg package's archive, so it is streamed out with `tar --occurrence=1`
//! instead of unpacking 5.6 GB. Every entry is written under a temporary
//! name and renamed into place under the cache lock.
//!
//! DWARF names the kernel's files relative to Debian's build directory
//! ([`DEBIAN_BUILD_DIR`]); [`source_map`] maps that prefix to the tree.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::{cache_dir, debian, kernel_dir_name, pins, CacheLock};

/// The directory Debian builds the amd64 kernel in; DWARF's file names
/// start with it.
pub const DEBIAN_BUILD_DIR: &str = "debian/build/build_amd64_none_amd64";

/// The default kernel's release name (`6.1.0-50-amd64`), from its package.
fn abi() -> &'static str {
    pins::KERNEL
        .package
        .strip_prefix("linux-image-")
        .expect("the kernel pin names a linux-image package")
}

/// The source package's tree name (`linux-source-6.1`).
fn source_tree_name() -> &'static str {
    pins::KERNEL_SOURCE.package
}

/// The default kernel's full-DWARF vmlinux, fetched and extracted on first
/// use. `step` hears what is being done (for a progress display).
pub fn ensure_vmlinux(step: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let cache = cache_dir()?;
    let kernel = debian::current(&pins::KERNEL, &cache);
    let final_path = cache.join(kernel_dir_name(&kernel)).join("vmlinux-dbg");
    if final_path.is_file() {
        return Ok(final_path);
    }
    let _lock = CacheLock::take(&cache)?;
    if final_path.is_file() {
        return Ok(final_path);
    }
    step(&format!(
        "downloading {}={} (855 MB, once)",
        pins::KERNEL_DBG.package,
        pins::KERNEL_DBG.version
    ));
    let (dbg, deb) = debian::fetch(&pins::KERNEL_DBG, &cache).with_context(fix_hint)?;
    if dbg.version != kernel.version {
        bail!(
            "the default image's kernel is {} {} but the debug package found is {} {}; \
             update the pins in dap-server/src/image/pins.rs to one Debian version of both",
            kernel.package,
            kernel.version,
            dbg.package,
            dbg.version
        );
    }
    step("extracting vmlinux with its DWARF (631 MB, once)");
    let dir = final_path.parent().expect("a file in the kernel directory");
    std::fs::create_dir_all(dir)?;
    let member = format!("./usr/lib/debug/boot/vmlinux-{}", abi());
    let tmp = dir.join(format!(".tmp-vmlinux-dbg-{}", std::process::id()));
    let result = stream_member(&deb, &member, &tmp);
    if let Err(e) = result {
        std::fs::remove_file(&tmp).ok();
        return Err(e);
    }
    std::fs::rename(&tmp, &final_path)?;
    Ok(final_path)
}

/// The debug files (`.ko` with DWARF and relocations) of the modules the
/// default image loads, extracted on first use into `modules-dbg/`, named
/// by module name (`virtio_blk.ko`). The members' paths come from the
/// kernel package's listing; the modules sit at the back of the 5.6 GB
/// archive, so all are taken in one pass (~1.5 min here), once.
pub fn ensure_module_debug(step: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let cache = cache_dir()?;
    let kernel = debian::current(&pins::KERNEL, &cache);
    let kernel_dir = cache.join(kernel_dir_name(&kernel));
    let dir = kernel_dir.join("modules-dbg");
    if !kernel_dir.join("modules.order").is_file() {
        // Which modules the image loads is decided when it is built.
        super::default_image()?;
    }
    let wanted: Vec<String> = std::fs::read_to_string(kernel_dir.join("modules.order"))
        .with_context(|| {
            format!(
                "{} has no modules.order; build the default image first (vmdbg image build)",
                kernel_dir.display()
            )
        })?
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let missing = |dir: &Path| -> Vec<String> {
        wanted
            .iter()
            .filter(|m| !dir.join(format!("{m}.ko")).is_file())
            .cloned()
            .collect()
    };
    if missing(&dir).is_empty() {
        return Ok(dir);
    }
    let _lock = CacheLock::take(&cache)?;
    let names = missing(&dir);
    if names.is_empty() {
        return Ok(dir);
    }
    step("listing the kernel package's modules (once)");
    let (_, image_deb) = debian::fetch(&pins::KERNEL, &cache).with_context(fix_hint)?;
    let listing = capture_listing(&image_deb)?;
    let mut members = Vec::new();
    for name in &names {
        let file = listing
            .lines()
            .find(|path| {
                path.ends_with(".ko")
                    && Path::new(path)
                        .file_stem()
                        .is_some_and(|s| s.to_string_lossy().replace('-', "_") == *name)
            })
            .with_context(|| format!("{} lists no module {name}", image_deb.display()))?;
        // ./lib/modules/<abi>/kernel/… → ./usr/lib/debug/lib/modules/<abi>/kernel/…
        members.push((
            name.clone(),
            format!("./usr/lib/debug/{}", file.trim_start_matches("./")),
        ));
    }
    step(&format!(
        "extracting the debug files of {} modules from {} (once)",
        members.len(),
        pins::KERNEL_DBG.package
    ));
    let (_, dbg_deb) = debian::fetch(&pins::KERNEL_DBG, &cache).with_context(fix_hint)?;
    let scratch = debian::tempdir_in(&cache, "modules-dbg")?;
    let result = extract_members(&dbg_deb, members.iter().map(|(_, m)| m.as_str()), &scratch)
        .and_then(|()| {
            std::fs::create_dir_all(&dir)?;
            for (name, member) in &members {
                let from = scratch.join(member.trim_start_matches("./"));
                std::fs::rename(&from, dir.join(format!("{name}.ko")))
                    .with_context(|| format!("{} holds no {member}", dbg_deb.display()))?;
            }
            Ok(())
        });
    std::fs::remove_dir_all(&scratch).ok();
    result?;
    Ok(dir)
}

/// The paths in a .deb's data archive.
fn capture_listing(deb: &Path) -> Result<String> {
    let out = tar_data_archive(deb, |tar| tar.arg("t"), Stdio::piped())?;
    if !out.status.success() {
        bail!(
            "cannot list {}: {}",
            deb.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Extracts `members` of a .deb's data archive under `dir` in one pass,
/// stopping once each has been seen.
fn extract_members<'a>(
    deb: &Path,
    members: impl Iterator<Item = &'a str>,
    dir: &Path,
) -> Result<()> {
    let tar = tar_data_archive(
        deb,
        |tar| {
            tar.args(["x", "--occurrence=1", "-C"])
                .arg(dir)
                .args(members)
        },
        Stdio::null(),
    )?;
    if !tar.status.success() {
        bail!(
            "could not extract the modules' debug files from {}: {}",
            deb.display(),
            String::from_utf8_lossy(&tar.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `tar` (its arguments from `args`) over a .deb's data archive
/// (`dpkg-deb --fsys-tarfile`), tar's output to `stdout`. tar may stop
/// before the archive's end (`--occurrence`) and dpkg-deb then die of
/// SIGPIPE: tar's status decides.
fn tar_data_archive(
    deb: &Path,
    args: impl FnOnce(&mut Command) -> &mut Command,
    stdout: Stdio,
) -> Result<std::process::Output> {
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("run dpkg-deb (Debian package dpkg)")?;
    let mut tar = Command::new("tar");
    args(&mut tar);
    let out = tar
        .stdin(dpkg.stdout.take().expect("piped"))
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .context("run tar");
    let _ = dpkg.kill();
    let _ = dpkg.wait();
    out
}

/// The default kernel's source tree, fetched and unpacked on first use.
pub fn ensure_sources(step: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let cache = cache_dir()?;
    let final_dir = cache.join(format!(
        "{}-{}",
        source_tree_name(),
        pins::KERNEL_SOURCE.version.replace(':', "_")
    ));
    if final_dir.join("Makefile").is_file() {
        return Ok(final_dir);
    }
    let _lock = CacheLock::take(&cache)?;
    if final_dir.join("Makefile").is_file() {
        return Ok(final_dir);
    }
    step(&format!(
        "downloading {}={} (139 MB, once)",
        pins::KERNEL_SOURCE.package,
        pins::KERNEL_SOURCE.version
    ));
    let (_, deb) = debian::fetch(&pins::KERNEL_SOURCE, &cache).with_context(fix_hint)?;
    step("unpacking the kernel's sources (once)");
    let scratch = debian::tempdir_in(&cache, "linux-source")?;
    let tarball = scratch.join("linux-source.tar.xz");
    let member = format!("./usr/src/{}.tar.xz", source_tree_name());
    let unpacked = stream_member(&deb, &member, &tarball).and_then(|()| {
        run(Command::new("tar")
            .arg("xJf")
            .arg(&tarball)
            .arg("-C")
            .arg(&scratch))
    });
    if let Err(e) = unpacked {
        std::fs::remove_dir_all(&scratch).ok();
        return Err(e);
    }
    if final_dir.exists() {
        // A tree without its Makefile: an interrupted unpack of an older vmdbg.
        std::fs::remove_dir_all(&final_dir)?;
    }
    std::fs::rename(scratch.join(source_tree_name()), &final_dir).with_context(|| {
        format!(
            "{} holds no {}/ directory",
            deb.display(),
            source_tree_name()
        )
    })?;
    std::fs::remove_dir_all(&scratch).ok();
    Ok(final_dir)
}

/// How the default kernel's DWARF paths map to the unpacked tree: C
/// units name files under the build directory; assembly units (the
/// syscall entry, `arch/x86/entry/entry_64.S`) by the absolute path of
/// Debian's reproducible build (`/build/reproducible-path/linux-6.1.176`).
pub fn source_map(tree: &Path) -> Vec<(String, String)> {
    let tree = tree.to_string_lossy().into_owned();
    let upstream = pins::KERNEL_SOURCE
        .version
        .split('-')
        .next()
        .unwrap_or(pins::KERNEL_SOURCE.version);
    let build = format!("/build/reproducible-path/linux-{upstream}");
    vec![
        (DEBIAN_BUILD_DIR.to_string(), tree.clone()),
        (format!("{build}/{DEBIAN_BUILD_DIR}"), tree.clone()),
        (build, tree),
    ]
}

fn fix_hint() -> String {
    "the default kernel's debug information comes from Debian's archive through apt-get \
     (run `apt-get update` if the package is not found); or give your own vmlinux with DWARF \
     as `symbols` in the launch configuration"
        .to_string()
}

/// Writes one member of a .deb's data archive to `dest`, stopping at its
/// first occurrence (the rest of the archive is never decompressed).
fn stream_member(deb: &Path, member: &str, dest: &Path) -> Result<()> {
    for (tool, package) in [("dpkg-deb", "dpkg"), ("tar", "tar")] {
        if Command::new(tool).arg("--version").output().is_err() {
            bail!("extracting {member} from {} needs `{tool}` (Debian package `{package}`), which is not on PATH", deb.display());
        }
    }
    let out = std::fs::File::create(dest).with_context(|| format!("create {}", dest.display()))?;
    let tar = tar_data_archive(
        deb,
        |tar| tar.args(["x", "--occurrence=1", "-O", member]),
        out.into(),
    )?;
    let size = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
    if !tar.status.success() || size == 0 {
        bail!(
            "could not extract {member} from {}: {}",
            deb.display(),
            String::from_utf8_lossy(&tar.stderr).trim()
        );
    }
    Ok(())
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("run {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{:?} failed: {}",
            cmd,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `vmdbg image symbols`: fetches both now, with a progress bar.
pub fn fetch_all() -> Result<(PathBuf, PathBuf)> {
    let progress = super::Progress::new(3, "the default kernel's symbols and sources");
    let mut step = |msg: &str| progress.step(msg);
    let vmlinux = ensure_vmlinux(&mut step)?;
    let sources = ensure_sources(&mut step)?;
    ensure_module_debug(&mut step)?;
    progress.done();
    Ok((vmlinux, sources))
}

//! Fetching and unpacking pinned Debian packages with the system's own
//! tools (`apt-get download`, `dpkg-deb -x`), verified by SHA-256.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use super::pins::PinnedDeb;

pub fn sha256_hex(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).with_context(|| format!("read {}", path.display()))?;
    Ok(hex(&hasher.finalize()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn require_tool(tool: &str, package: &str) -> Result<()> {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false);
    if !found {
        bail!(
            "building the default guest image needs `{tool}` (Debian package `{package}`), which is not on PATH. \
             Install it, or boot your own kernel and initramfs with `--kernel <bzImage|vmlinux> --initrd <initramfs>` \
             (the initramfs must start `vmdbg-agent serve`)"
        );
    }
    Ok(())
}

/// The package's .deb in `debs_dir`, downloaded if missing, verified.
pub fn fetch(pin: &PinnedDeb, debs_dir: &Path) -> Result<PathBuf> {
    let final_path = debs_dir.join(format!(
        "{}_{}.deb",
        pin.package,
        pin.version.replace(':', "%3a")
    ));
    if final_path.exists() {
        if sha256_hex(&final_path)? == pin.sha256 {
            return Ok(final_path);
        }
        // A damaged cache entry: fetch it again.
        std::fs::remove_file(&final_path).ok();
    }
    require_tool("apt-get", "apt")?;
    // apt-get download writes into the current directory; use a private
    // one so a failed download leaves nothing under the final name.
    let scratch = tempdir_in(debs_dir, "download")?;
    let spec = format!("{}={}", pin.package, pin.version);
    let out = Command::new("apt-get")
        .args(["download", "-q", &spec])
        .current_dir(&scratch)
        .output()
        .context("run apt-get download")?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        std::fs::remove_dir_all(&scratch).ok();
        let hint = if stderr.contains("Can't find a source")
            || stderr.contains("Unable to locate")
            || stderr.contains("not found")
        {
            format!(
                "\nThe pinned version {spec} is not on this machine's Debian mirror (it may have been superseded, or `apt-get update` was never run). \
                 Run `apt-get update`; if it is still missing, update the pin in dap-server/src/image/pins.rs \
                 (`apt-cache policy {}` lists what the mirror has), or pass --kernel/--initrd.",
                pin.package
            )
        } else {
            String::new()
        };
        bail!("apt-get download {spec} failed:\n{}{hint}", stderr.trim());
    }
    let downloaded = std::fs::read_dir(&scratch)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("apt-get download {spec} produced no .deb"))?;
    let got = sha256_hex(&downloaded)?;
    if got != pin.sha256 {
        std::fs::remove_dir_all(&scratch).ok();
        bail!(
            "{spec}: SHA-256 of the downloaded package is {got}, the pin says {}. The mirror serves a different build; \
             check `apt-cache show {spec}` and update dap-server/src/image/pins.rs",
            pin.sha256
        );
    }
    std::fs::rename(&downloaded, &final_path)?;
    std::fs::remove_dir_all(&scratch).ok();
    Ok(final_path)
}

/// Unpacks a .deb's files into `dest`.
pub fn extract(deb: &Path, dest: &Path) -> Result<()> {
    require_tool("dpkg-deb", "dpkg")?;
    let out = Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(dest)
        .output()
        .context("run dpkg-deb")?;
    if !out.status.success() {
        bail!(
            "dpkg-deb -x {} failed: {}",
            deb.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A fresh directory under `parent` named for `what` and this process.
pub fn tempdir_in(parent: &Path, what: &str) -> Result<PathBuf> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = parent.join(format!(
        ".tmp-{what}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}

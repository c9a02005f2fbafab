//! Fetching and unpacking pinned Debian packages with the system's own
//! tools (`apt-get download`, `dpkg-deb -x`), verified by SHA-256.
//!
//! Debian's archive keeps only the current version of a package in a
//! suite, so a pin goes stale at the next point release. When the pinned
//! version is gone, [`fetch`] takes the newest package of the pin's family
//! (the same package, or, when the kernel's ABI changed too, the newest
//! `linux-image-<abi>-amd64`), checked against the SHA-256 of apt's signed
//! index instead of the pin's, says so in one line, and records the choice
//! in the cache (`fallback-<package>`) so later runs need no apt.

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

/// A Debian package at one version: the pin, or what replaced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deb {
    pub package: String,
    pub version: String,
    pub sha256: String,
}

impl Deb {
    fn of(pin: &PinnedDeb) -> Self {
        Deb {
            package: pin.package.into(),
            version: pin.version.into(),
            sha256: pin.sha256.into(),
        }
    }

    fn spec(&self) -> String {
        format!("{}={}", self.package, self.version)
    }

    fn file_name(&self) -> String {
        format!("{}_{}.deb", self.package, self.version.replace(':', "%3a"))
    }
}

fn fallback_record(pin: &PinnedDeb, cache: &Path) -> PathBuf {
    cache.join(format!("fallback-{}", pin.package))
}

/// What the image uses for `pin` without asking apt: the pin, or the
/// package an earlier build fell back to.
pub fn current(pin: &PinnedDeb, cache: &Path) -> Deb {
    std::fs::read_to_string(fallback_record(pin, cache))
        .ok()
        .and_then(|text| {
            let mut lines = text.lines().map(str::to_string);
            Some(Deb {
                package: lines.next()?,
                version: lines.next()?,
                sha256: lines.next().filter(|h| h.len() == 64)?,
            })
        })
        .unwrap_or_else(|| Deb::of(pin))
}

/// The SHA-256 apt's index gives for `package=version`; None when apt does
/// not know that version.
fn index_sha256(package: &str, version: &str) -> Option<String> {
    let out = Command::new("apt-cache")
        .args(["show", "--no-all-versions", &format!("{package}={version}")])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    index_field(&String::from_utf8_lossy(&out.stdout), "SHA256")
}

fn index_field(stanza: &str, field: &str) -> Option<String> {
    stanza
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

/// `a` is a newer Debian version than `b` (dpkg's own comparison).
fn newer(a: &str, b: &str) -> bool {
    Command::new("dpkg")
        .args(["--compare-versions", a, "gt", b])
        .status()
        .is_ok_and(|s| s.success())
}

/// The version apt would install of `package` (its candidate), with the
/// index's SHA-256; None when the index has no version of it.
fn candidate(package: &str) -> Option<Deb> {
    let out = Command::new("apt-cache")
        .args(["show", "--no-all-versions", package])
        .output()
        .ok()?;
    let stanza = String::from_utf8_lossy(&out.stdout);
    Some(Deb {
        package: package.to_string(),
        version: index_field(&stanza, "Version")?,
        sha256: index_field(&stanza, "SHA256")?,
    })
}

/// What stands in for a pin the archive dropped, with the index's SHA-256:
/// the newest version of the pinned package (same kernel ABI), else the
/// newest package of its family (the ABI changed too).
fn newest_in_family(pin: &PinnedDeb) -> Result<Deb> {
    if let Some(same) = candidate(pin.package) {
        return Ok(same);
    }
    let names = Command::new("apt-cache")
        .args(["pkgnames", pin.family_prefix])
        .output()
        .context("run apt-cache pkgnames")?;
    let mut best: Option<Deb> = None;
    // Names apt only saw mentioned have no version: candidate() skips them.
    for deb in String::from_utf8_lossy(&names.stdout)
        .lines()
        .filter(|n| (pin.in_family)(n))
        .filter_map(candidate)
    {
        if best
            .as_ref()
            .is_none_or(|b| newer(&deb.version, &b.version))
        {
            best = Some(deb);
        }
    }
    best.with_context(|| {
        format!(
            "the pinned {}={} is not in this machine's package lists, and neither is any other {} package. \
             Run `apt-get update` (bookworm and bookworm-security must be sources), or pass --kernel/--initrd",
            pin.package, pin.version, pin.family_prefix
        )
    })
}

/// The package's .deb in `cache`/debs, downloaded if missing, verified;
/// the pinned version, or the newest of its family when the archive no
/// longer has the pin.
pub fn fetch(pin: &PinnedDeb, cache: &Path) -> Result<(Deb, PathBuf)> {
    let debs_dir = cache.join("debs");
    std::fs::create_dir_all(&debs_dir).with_context(|| format!("create {}", debs_dir.display()))?;
    let want = current(pin, cache);
    let cached = debs_dir.join(want.file_name());
    if cached.exists() {
        if sha256_hex(&cached)? == want.sha256 {
            return Ok((want, cached));
        }
        // A damaged cache entry: fetch it again.
        std::fs::remove_file(&cached).ok();
    }
    require_tool("apt-get", "apt")?;
    require_tool("apt-cache", "apt")?;
    let deb = if index_sha256(&want.package, &want.version).is_some() {
        want
    } else {
        let newest = newest_in_family(pin)?;
        eprintln!(
            "vmdbg: {} is no longer in the Debian archive; using {} instead, the newest the package lists offer (checked against apt's signed index)",
            want.spec(),
            newest.spec()
        );
        newest
    };
    let path = download(&deb, &debs_dir)?;
    let record = fallback_record(pin, cache);
    if deb == Deb::of(pin) {
        std::fs::remove_file(&record).ok();
    } else {
        let temp = record.with_extension("tmp");
        std::fs::write(
            &temp,
            format!("{}\n{}\n{}\n", deb.package, deb.version, deb.sha256),
        )
        .and_then(|_| std::fs::rename(&temp, &record))
        .with_context(|| format!("write {}", record.display()))?;
    }
    Ok((deb, path))
}

/// `apt-get download` of `deb` into `debs_dir`, checked against its SHA-256.
fn download(deb: &Deb, debs_dir: &Path) -> Result<PathBuf> {
    let final_path = debs_dir.join(deb.file_name());
    // apt-get download writes into the current directory; use a private
    // one so a failed download leaves nothing under the final name.
    let scratch = tempdir_in(debs_dir, "download")?;
    let spec = deb.spec();
    let out = Command::new("apt-get")
        .args(["download", "-q", &spec])
        .current_dir(&scratch)
        .output()
        .context("run apt-get download")?;
    if !out.status.success() {
        std::fs::remove_dir_all(&scratch).ok();
        bail!(
            "apt-get download {spec} failed:\n{}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let downloaded = std::fs::read_dir(&scratch)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("apt-get download {spec} produced no .deb"))?;
    let got = sha256_hex(&downloaded)?;
    if got != deb.sha256 {
        std::fs::remove_dir_all(&scratch).ok();
        bail!(
            "{spec}: SHA-256 of the downloaded package is {got}, expected {}. The mirror serves a different build; \
             check `apt-cache show {spec}` and update dap-server/src/image/pins.rs",
            deb.sha256
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A pin the archive never had falls back to the newest package of its
    /// family that this machine's apt index lists — asked of the real apt.
    #[test]
    fn a_vanished_kernel_pin_falls_back_to_the_newest_kernel_apt_lists() {
        if !Path::new("/usr/bin/apt-cache").exists() {
            let why = "apt-cache is not installed (not a Debian host)";
            if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false") {
                panic!("{why}");
            }
            eprintln!("SKIPPED: {why}");
            return;
        }
        let gone = PinnedDeb {
            package: "linux-image-6.1.0-9999-amd64",
            version: "6.1.9999-1",
            sha256: "0000000000000000000000000000000000000000000000000000000000000000",
            ..super::super::pins::KERNEL
        };
        assert_eq!(index_sha256(gone.package, gone.version), None);
        let newest = newest_in_family(&gone).unwrap();
        assert!((gone.in_family)(&newest.package), "{newest:?}");
        assert_eq!(
            index_sha256(&newest.package, &newest.version).as_deref(),
            Some(newest.sha256.as_str())
        );
        // Nothing the index offers in the family is newer.
        let pinned = super::super::pins::KERNEL;
        if index_sha256(pinned.package, pinned.version).is_some() {
            assert!(!newer(pinned.version, &newest.version), "{newest:?}");
        }
        // A pin whose package is still there at another version falls back
        // to that package (same ABI, same module set).
        let same = PinnedDeb {
            version: "6.1.0-0",
            ..super::super::pins::KERNEL
        };
        if let Some(current) = candidate(same.package) {
            assert_eq!(newest_in_family(&same).unwrap(), current);
        }
    }

    #[test]
    fn the_kernel_family_is_the_plain_amd64_flavour() {
        let family = super::super::pins::KERNEL.in_family;
        assert!(family("linux-image-6.1.0-56-amd64"));
        assert!(family("linux-image-6.12.9-1-amd64"));
        for other in [
            "linux-image-amd64",
            "linux-image-6.1.0-56-amd64-dbg",
            "linux-image-6.1.0-56-cloud-amd64",
            "linux-image-6.1.0-56-rt-amd64",
            "linux-image-6.1.0-56-amd64-unsigned",
        ] {
            assert!(!family(other), "{other}");
        }
    }
}

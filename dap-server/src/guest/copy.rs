//! `--copy HOSTPATH[:GUESTPATH]`: what to copy into the guest. A
//! dynamically linked ELF brings its shared-library closure and its loader
//! (PT_INTERP), resolved the way ld.so does: DT_RPATH (when there is no
//! DT_RUNPATH, also the executable's), LD_LIBRARY_PATH, DT_RUNPATH,
//! the ld.so.conf directories, then the default directories. Libraries go
//! to the same path in the guest as on the host.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The default library directories of Debian's x86_64 glibc, searched
/// after everything else (and by the guest's loader without any cache).
const DEFAULT_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

#[derive(Clone, Debug, Default)]
pub struct CopyPlan {
    /// Host file and where it goes in the guest.
    pub files: Vec<(PathBuf, String)>,
    /// Directories of copied libraries that the guest's loader would not
    /// search by itself (it has no ld.so.cache): for LD_LIBRARY_PATH.
    pub library_dirs: Vec<String>,
}

pub fn plan(specs: &[String]) -> Result<CopyPlan> {
    let mut plan = CopyPlan::default();
    let mut seen_guest = HashSet::new();
    let mut dirs = BTreeSet::new();
    for spec in specs {
        let (host, guest) = match spec.split_once(':') {
            Some((h, g)) => (PathBuf::from(h), g.to_string()),
            None => {
                let host = PathBuf::from(spec);
                let name = host
                    .file_name()
                    .with_context(|| format!("--copy {spec}: names no file"))?;
                let guest = format!("/{}", name.to_string_lossy());
                (host, guest)
            }
        };
        if !host.is_file() {
            bail!(
                "--copy {spec}: {} is not a file on this host",
                host.display()
            );
        }
        if !guest.starts_with('/') {
            bail!("--copy {spec}: the guest path {guest} must be absolute");
        }
        if seen_guest.insert(guest.clone()) {
            plan.files.push((host.clone(), guest));
        }
        for lib in closure(&host)
            .with_context(|| format!("--copy {spec}: resolving its shared libraries"))?
        {
            let guest = lib.to_string_lossy().into_owned();
            if let Some(dir) = lib.parent() {
                let dir = dir.to_string_lossy().into_owned();
                if !DEFAULT_DIRS.contains(&dir.as_str()) {
                    dirs.insert(dir);
                }
            }
            if seen_guest.insert(guest.clone()) {
                plan.files.push((lib, guest));
            }
        }
    }
    plan.library_dirs = dirs.into_iter().collect();
    Ok(plan)
}

struct ElfInfo {
    is_64: bool,
    machine: u16,
    interpreter: Option<String>,
    needed: Vec<String>,
    rpath: Vec<String>,
    runpath: Vec<String>,
}

fn read_elf(path: &Path) -> Result<Option<ElfInfo>> {
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    if !bytes.starts_with(b"\x7fELF") {
        return Ok(None);
    }
    let elf = goblin::elf::Elf::parse(&bytes)
        .with_context(|| format!("{} is a damaged ELF file", path.display()))?;
    let split = |list: &[&str]| -> Vec<String> {
        list.iter()
            .flat_map(|s| s.split(':'))
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    Ok(Some(ElfInfo {
        is_64: elf.is_64,
        machine: elf.header.e_machine,
        interpreter: elf.interpreter.map(String::from),
        needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
        rpath: split(&elf.rpaths),
        runpath: split(&elf.runpaths),
    }))
}

/// Every library `program` needs, transitively, and its loader.
fn closure(program: &Path) -> Result<Vec<PathBuf>> {
    let Some(exe) = read_elf(program)? else {
        return Ok(Vec::new());
    };
    let exe_dir = program
        .canonicalize()?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let expand = |dirs: &[String], origin: &Path| -> Vec<PathBuf> {
        dirs.iter()
            .map(|d| {
                PathBuf::from(
                    d.replace("${ORIGIN}", &origin.to_string_lossy())
                        .replace("$ORIGIN", &origin.to_string_lossy()),
                )
            })
            .collect()
    };
    let exe_rpath = expand(&exe.rpath, &exe_dir);
    let ld_library_path: Vec<PathBuf> = std::env::var("LD_LIBRARY_PATH")
        .map(|v| {
            v.split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default();
    let conf_dirs = ld_so_conf_dirs(Path::new("/etc/ld.so.conf"), 0);

    let mut out = Vec::new();
    if let Some(interp) = &exe.interpreter {
        out.push(PathBuf::from(interp));
    }
    let mut done: HashSet<String> = HashSet::new();
    let mut queue: VecDeque<(ElfInfo, PathBuf)> = VecDeque::from([(exe, exe_dir.clone())]);
    while let Some((object, origin)) = queue.pop_front() {
        let mut search: Vec<PathBuf> = Vec::new();
        if object.runpath.is_empty() {
            search.extend(expand(&object.rpath, &origin));
            search.extend(exe_rpath.iter().cloned());
        }
        search.extend(ld_library_path.iter().cloned());
        search.extend(expand(&object.runpath, &origin));
        search.extend(conf_dirs.iter().cloned());
        search.extend(DEFAULT_DIRS.iter().map(PathBuf::from));
        for name in &object.needed {
            if !done.insert(name.clone()) {
                continue;
            }
            let found = if name.contains('/') {
                Some(PathBuf::from(name))
            } else {
                search.iter().map(|dir| dir.join(name)).find(|candidate| {
                    matches!(read_elf(candidate), Ok(Some(lib)) if lib.is_64 == object.is_64 && lib.machine == object.machine)
                })
            };
            let Some(path) = found else {
                bail!(
                    "{name} (needed by {}) was not found in: {}",
                    program.display(),
                    search
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(":")
                );
            };
            let lib = read_elf(&path)?
                .with_context(|| format!("{} is not an ELF library", path.display()))?;
            let lib_origin = path
                .canonicalize()?
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            queue.push_back((lib, lib_origin));
            out.push(path);
        }
    }
    Ok(out)
}

/// Directories named by ld.so.conf and the files it includes.
fn ld_so_conf_dirs(conf: &Path, depth: u32) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(conf) else {
        return Vec::new();
    };
    let mut dirs = Vec::new();
    for line in text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
    {
        if let Some(pattern) = line.strip_prefix("include").map(str::trim) {
            if depth < 8 {
                for file in glob_simple(pattern, conf.parent().unwrap_or(Path::new("/"))) {
                    dirs.extend(ld_so_conf_dirs(&file, depth + 1));
                }
            }
        } else {
            dirs.push(PathBuf::from(line));
        }
    }
    dirs
}

/// `dir/*.conf`-style patterns (a `*` in the file name only), sorted.
fn glob_simple(pattern: &str, relative_to: &Path) -> Vec<PathBuf> {
    let path = relative_to.join(pattern);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let Some((prefix, suffix)) = name.split_once('*') else {
        return vec![path.clone()];
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
        })
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_host_program_brings_libc_and_its_loader() {
        let plan = plan(&["/bin/ls:/ls".to_string()]).unwrap();
        let guests: Vec<&str> = plan.files.iter().map(|(_, g)| g.as_str()).collect();
        assert_eq!(guests[0], "/ls");
        assert!(
            guests.iter().any(|g| g.ends_with("/libc.so.6")),
            "{guests:?}"
        );
        assert!(
            guests.iter().any(|g| g.contains("ld-linux-x86-64.so.2")),
            "{guests:?}"
        );
    }

    #[test]
    fn a_missing_file_and_a_relative_guest_path_are_refused() {
        assert!(plan(&["/no/such/file".into()])
            .unwrap_err()
            .to_string()
            .contains("not a file"));
        assert!(plan(&["/bin/ls:relative".into()])
            .unwrap_err()
            .to_string()
            .contains("absolute"));
    }
}

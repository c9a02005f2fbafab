//! What the image takes from Debian's kernel package: the uncompressed
//! vmlinux (so the guest skips its own decompression, ~2.9 s under TCG),
//! whether it has a PVH entry note, and the modules the guest needs in an
//! order `insmod` accepts.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Decompresses the kernel inside a bzImage. Debian's kernel is XZ; the
/// setup header's payload_offset (0x248) points at it, relative to the
/// protected-mode code after the setup sectors.
pub fn extract_vmlinux(bzimage: &[u8]) -> Result<Vec<u8>> {
    if bzimage.len() < 0x250 || &bzimage[0x202..0x206] != b"HdrS" {
        bail!("not a bzImage (no HdrS setup header)");
    }
    let setup_sects = match bzimage[0x1f1] {
        0 => 4,
        n => n as usize,
    };
    let payload_offset = u32::from_le_bytes(bzimage[0x248..0x24c].try_into().unwrap()) as usize;
    let start = (setup_sects + 1) * 512 + payload_offset;
    let payload = bzimage
        .get(start..)
        .context("bzImage payload offset beyond the file")?;
    if !payload.starts_with(b"\xfd7zXZ\0") {
        bail!(
            "the bzImage payload is not XZ (magic {:02x?}); only XZ kernels are extracted",
            &payload[..6.min(payload.len())]
        );
    }
    // Decode one XZ stream and stop there: the bzImage's payload_length
    // does not cover the whole stream in Debian's signed kernels, and
    // bytes after the stream are not part of it.
    let mut stream = xz2::stream::Stream::new_stream_decoder(u64::MAX, 0).context("xz decoder")?;
    let mut out = Vec::with_capacity(80 << 20);
    let mut input = payload;
    loop {
        if out.capacity() - out.len() < (1 << 20) {
            out.reserve(16 << 20);
        }
        let before_in = stream.total_in();
        let status = stream
            .process_vec(input, &mut out, xz2::stream::Action::Run)
            .context("xz decoding of the kernel")?;
        input = &input[(stream.total_in() - before_in) as usize..];
        if status == xz2::stream::Status::StreamEnd {
            break;
        }
        if input.is_empty() && status != xz2::stream::Status::Ok {
            bail!("the kernel's XZ stream ended early");
        }
    }
    if !out.starts_with(b"\x7fELF") {
        bail!("the decompressed kernel is not an ELF file");
    }
    Ok(out)
}

/// Whether an ELF kernel has the Xen PVH entry note
/// (XEN_ELFNOTE_PHYS32_ENTRY, type 18), which QEMU's -kernel needs to boot
/// an uncompressed vmlinux.
pub fn has_pvh_note(elf: &[u8]) -> bool {
    let Ok(parsed) = goblin::elf::Elf::parse(elf) else {
        return false;
    };
    parsed
        .iter_note_headers(elf)
        .into_iter()
        .flatten()
        .flatten()
        .any(|note| note.name == "Xen" && note.n_type == 18)
}

/// A kernel module found in the package.
#[derive(Debug, Clone)]
pub struct Module {
    pub name: String,
    pub path: PathBuf,
    #[allow(dead_code)] // kept for messages and `image info` detail
    pub depends: Vec<String>,
}

/// Module names use `_` where file names may use `-`.
fn normal_name(name: &str) -> String {
    name.replace('-', "_")
}

/// Every module under `modules_dir` (…/lib/modules/<release>), by name.
pub fn index_modules(modules_dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut index = BTreeMap::new();
    let mut stack = vec![modules_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".ko"))
            {
                index.insert(normal_name(name), path);
            }
        }
    }
    Ok(index)
}

/// The `depends=` field of a module's .modinfo section.
pub fn module_depends(ko: &[u8]) -> Result<Vec<String>> {
    let elf = goblin::elf::Elf::parse(ko).context("not an ELF module")?;
    let section = elf
        .section_headers
        .iter()
        .find(|sh| elf.shdr_strtab.get_at(sh.sh_name) == Some(".modinfo"))
        .context("module has no .modinfo section")?;
    let start = section.sh_offset as usize;
    let bytes = ko
        .get(start..start + section.sh_size as usize)
        .context(".modinfo beyond the file")?;
    Ok(bytes
        .split(|&b| b == 0)
        .filter_map(|field| field.strip_prefix(b"depends="))
        .flat_map(|deps| {
            String::from_utf8_lossy(deps)
                .split(',')
                .map(normal_name)
                .collect::<Vec<_>>()
        })
        .filter(|d| !d.is_empty())
        .collect())
}

/// `wanted` and everything they depend on, dependencies first.
pub fn load_order(index: &BTreeMap<String, PathBuf>, wanted: &[&str]) -> Result<Vec<Module>> {
    fn visit(
        name: &str,
        index: &BTreeMap<String, PathBuf>,
        done: &mut HashSet<String>,
        visiting: &mut Vec<String>,
        order: &mut Vec<Module>,
    ) -> Result<()> {
        if done.contains(name) {
            return Ok(());
        }
        if visiting.iter().any(|v| v == name) {
            bail!(
                "module dependency cycle: {} -> {name}",
                visiting.join(" -> ")
            );
        }
        let path = index
            .get(name)
            .with_context(|| format!("module {name} is not in the kernel package"))?;
        let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        let depends =
            module_depends(&bytes).with_context(|| format!("modinfo of {}", path.display()))?;
        visiting.push(name.to_string());
        for dep in &depends {
            visit(dep, index, done, visiting, order)?;
        }
        visiting.pop();
        done.insert(name.to_string());
        order.push(Module {
            name: name.to_string(),
            path: path.clone(),
            depends,
        });
        Ok(())
    }
    let (mut done, mut order) = (HashSet::new(), Vec::new());
    for name in wanted {
        visit(
            &normal_name(name),
            index,
            &mut done,
            &mut Vec::new(),
            &mut order,
        )?;
    }
    Ok(order)
}

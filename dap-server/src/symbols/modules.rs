//! The Linux kernel's loaded modules, read from its memory at a stop, the
//! way gdb's `lx-symbols` reads them: the `modules` list of `struct
//! module`s (`list`), each one's `name` and `sect_attrs` — the address of
//! every section the kernel loaded (`/sys/module/<name>/sections/*`).
//! With those addresses a module's debug file is loaded relocated
//! ([`super::relocate`], [`Symbols::load_relocated`]).
//!
//! The layout of `struct module`, `struct module_sect_attrs` and `struct
//! module_sect_attr` comes from the vmlinux's own DWARF (6.1's
//! `attrs[].battr.attr.name` and `attrs[].address`), found once; a kernel
//! whose DWARF lacks them (or a bare-metal kernel) has no module list.

use anyhow::{bail, Context, Result};

use super::relocate::SectionAddresses;
use super::types::{TypeId, TypeKind};
use super::{Symbols, TargetMemory};

/// Bounds against a list a bad pointer made endless.
const MAX_MODULES: usize = 4096;
const MAX_SECTIONS: u64 = 512;
/// The function the kernel calls once a module is laid out, relocated and
/// on the list, before its init runs: where a debugger learns of a new
/// module (gdb's lx-symbols breaks on it too).
pub const MODULE_LOADER: &str = "do_init_module";
/// A function of the file that defines the section-attribute structures
/// (kernel/module/sysfs.c in 6.1).
const SECTIONS_IN_SYSFS: &str = "mod_sysfs_setup";
/// `MODULE_NAME_LEN` on 64-bit.
const NAME_LEN: usize = 56;

/// Offsets into the kernel's module structures.
#[derive(Clone, Debug)]
pub struct Layout {
    modules: u64,
    list: u64,
    name: u64,
    sect_attrs: u64,
    nsections: u64,
    attrs: u64,
    attr_size: u64,
    attr_name: u64,
    attr_address: u64,
    state: u64,
}

/// A module in the kernel's list.
#[derive(Clone, Debug)]
pub struct LoadedModule {
    /// The kernel's name for it (`virtio_blk`; a file `kvm-amd.ko` is
    /// `kvm_amd`).
    pub name: String,
    /// Where its `struct module` is: tells two loads of one name apart.
    pub address: u64,
    pub sections: SectionAddresses,
    /// Its init has run (`MODULE_STATE_LIVE`): the kernel frees its
    /// `.init.text` (asynchronously) and may put a later module's code
    /// there.
    pub live: bool,
}

impl Symbols {
    /// The member at `path` (`core_layout.base`) of struct `ty`: its offset
    /// from the start and its type.
    pub fn member_offset(&self, ty: TypeId, path: &str) -> Option<(u64, Option<TypeId>)> {
        let mut offset = 0;
        let mut ty = Some(ty);
        for field in path.split('.') {
            let stripped = self.strip(ty?);
            let TypeKind::Struct { members, .. } = &stripped.kind else {
                return None;
            };
            let member = members.iter().find(|m| m.name == field)?;
            offset += member.offset;
            ty = member.ty;
        }
        Some((offset, ty))
    }

    fn module_layout(&self) -> Option<&Layout> {
        self.elf
            .module_layout
            .get_or_init(|| {
                let modules = self.data_symbol("modules")?;
                let module = self.type_beside(MODULE_LOADER, "struct module")?;
                let attrs = self.type_beside(SECTIONS_IN_SYSFS, "struct module_sect_attrs")?;
                let attr = self.type_beside(SECTIONS_IN_SYSFS, "struct module_sect_attr")?;
                Some(Layout {
                    modules,
                    list: self.member_offset(module, "list")?.0,
                    name: self.member_offset(module, "name")?.0,
                    sect_attrs: self.member_offset(module, "sect_attrs")?.0,
                    nsections: self.member_offset(attrs, "nsections")?.0,
                    attrs: self.member_offset(attrs, "attrs")?.0,
                    attr_size: self.resolve_type(attr).size?,
                    attr_name: self.member_offset(attr, "battr.attr.name")?.0,
                    attr_address: self.member_offset(attr, "address")?.0,
                    state: self.member_offset(module, "state")?.0,
                })
            })
            .as_ref()
    }

    /// The kernel's modules now, with their sections' addresses.
    pub async fn loaded_modules<M: TargetMemory>(&self, mem: &mut M) -> Result<Vec<LoadedModule>> {
        let layout = self
            .module_layout()
            .context("this kernel's DWARF has no struct module or modules list")?
            .clone();
        let mut out = Vec::new();
        let mut next = read_u64(mem, layout.modules).await?;
        while next != layout.modules {
            if out.len() == MAX_MODULES {
                bail!("the kernel's module list has more than {MAX_MODULES} entries; it looks corrupt");
            }
            let module = next.wrapping_sub(layout.list);
            let name = c_string(&mem.read(module + layout.name, NAME_LEN).await?);
            let mut sections = SectionAddresses::default();
            let attrs = read_u64(mem, module + layout.sect_attrs).await?;
            if attrs != 0 {
                let count = read_u64(mem, attrs + layout.nsections).await? as u32 as u64;
                for i in 0..count.min(MAX_SECTIONS) {
                    let attr = attrs + layout.attrs + i * layout.attr_size;
                    let name_ptr = read_u64(mem, attr + layout.attr_name).await?;
                    let address = read_u64(mem, attr + layout.attr_address).await?;
                    let section = c_string(&mem.read(name_ptr, 64).await?);
                    sections.0.insert(section, address);
                }
            }
            // enum module_state: MODULE_STATE_LIVE is 0.
            let state = mem.read(module + layout.state, 4).await?;
            let live = state.get(..4).is_some_and(|b| b == [0, 0, 0, 0]);
            out.push(LoadedModule {
                name,
                address: module,
                sections,
                live,
            });
            next = read_u64(mem, next).await?;
        }
        Ok(out)
    }
}

async fn read_u64<M: TargetMemory>(mem: &mut M, addr: u64) -> Result<u64> {
    let bytes = mem.read(addr, 8).await?;
    Ok(u64::from_le_bytes(
        bytes
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .with_context(|| format!("short read at {addr:#x}"))?,
    ))
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

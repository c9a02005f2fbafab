//! Linux kernel modules in a kernel session: their DWARF is loaded where
//! the kernel put them, so a breakpoint in a module's source is pending
//! (`verified: false`) until the module loads, then verified (a DAP
//! `breakpoint` event, reason `changed`) and hit — its init function's too.
//!
//! The session keeps a breakpoint of its own on the kernel's
//! `do_init_module` ([`MODULE_LOADER`]): the module is on the kernel's
//! list, laid out and relocated, and its init has not run. There (and
//! once when the session starts, for modules already loaded) it reads the
//! module list with each module's section addresses
//! ([`crate::symbols::modules`]), loads the debug file of every new module
//! (`<name>.ko` in `modules-dbg/` beside the vmlinux's debug file: what
//! `vmdbg image symbols` extracts from Debian's `-dbg` package) relocated
//! to those addresses ([`crate::symbols::relocate`]), drops modules that
//! are gone, places the line breakpoints no module had placed yet and goes
//! on without telling the client of the stop.
//!
//! A function breakpoint naming a function the vmlinux lacks is looked for
//! in the loaded modules, then in the modules' debug files: found in
//! `virtio_blk.ko`, it is pending ("pending: in module virtio_blk, not
//! loaded yet", what gdb asks about as "Make breakpoint pending on future
//! shared library load?"), placed when that module loads and placed again
//! when it loads anew.

use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

use anyhow::{Context, Result};
use serde_json::json;

use object::{Object, ObjectSymbol};

use super::session::Session;
use crate::debugger::breakpoints::at_function;
use crate::debugger::breakpoints::UserBreakpoint;
use crate::debugger::target::CachedMemory;
use crate::symbols::modules::MODULE_LOADER;
use crate::symbols::relocate::SectionAddresses;
use crate::symbols::Symbols;

/// The modules of a kernel session.
pub struct KernelModules {
    /// The vmlinux's DWARF (the session's `symbols` follows the stop).
    kernel: Rc<Symbols>,
    /// The modules' debug files, `<name>.ko`.
    dir: PathBuf,
    /// `do_init_module`'s address: the session's own breakpoint.
    pub watch: u64,
    /// Modules whose DWARF is loaded, by their `struct module`'s address
    /// (a module loaded again may get the same one, its sections not).
    loaded: HashMap<u64, Loaded>,
    /// Counts loads: the newest module wins where ranges overlap.
    loads: u64,
    /// Function breakpoints in modules, by breakpoint id: the function's
    /// name and the module whose debug file defines it.
    functions: HashMap<i64, (String, String)>,
}

struct Loaded {
    name: String,
    sections: SectionAddresses,
    symbols: Rc<Symbols>,
    /// When it was loaded ([`KernelModules::loads`]). A module's
    /// `.init.text` is freed once its init ran and the kernel may put a
    /// later module's code there, while `sect_attrs` still lists it.
    order: u64,
    /// Its init has run: breakpoints in its `.init.text` are taken out
    /// (they would stop in whatever module the kernel puts there next).
    live: bool,
}

impl KernelModules {
    /// Module support for a kernel whose DWARF describes its module list
    /// and whose modules' debug files are beside its own.
    pub fn new(kernel: &Rc<Symbols>) -> Option<Self> {
        let dir = kernel.path.parent()?.join("modules-dbg");
        if !dir.is_dir() || kernel.data_symbol("modules").is_none() {
            return None;
        }
        let watch = kernel.function_named(MODULE_LOADER)?.low;
        Some(KernelModules {
            kernel: kernel.clone(),
            dir,
            watch,
            loaded: HashMap::new(),
            loads: 0,
            functions: HashMap::new(),
        })
    }

    /// The loaded module with a function `name` (the newest load first):
    /// the module's name and the breakpoint's place in it.
    fn loaded_function(&self, id: i64, name: &str) -> Option<(&Loaded, UserBreakpoint)> {
        let mut newest_first: Vec<&Loaded> = self.loaded.values().collect();
        newest_first.sort_by_key(|m| std::cmp::Reverse(m.order));
        newest_first.into_iter().find_map(|m| {
            let f = m.symbols.function_named(name)?;
            Some((m, at_function(id, &m.symbols, f)))
        })
    }

    /// Whether a breakpoint at `addr`, placed in module `owner`'s code,
    /// is in that module's `.init.text` after its init has run: code the
    /// kernel frees, where a later module may load. (Another module's
    /// freed init range may cover a new load's code; only the owner's
    /// counts.)
    fn init_ran(owner: &Loaded, addr: u64) -> bool {
        owner.live && owner.symbols.in_init_text(addr)
    }

    /// The newest loaded module that places a breakpoint on `line` of
    /// `path` (as the target does), with that placement's address.
    fn line_owner(&self, path: &str, line: u32) -> Option<(&Loaded, u64)> {
        let mut newest_first: Vec<&Loaded> = self.loaded.values().collect();
        newest_first.sort_by_key(|m| std::cmp::Reverse(m.order));
        newest_first
            .into_iter()
            .find_map(|m| Some((m, m.symbols.lines.place_breakpoint(path, line)?.addr)))
    }

    /// The module whose debug file defines a function `name`, by the
    /// files' symbol tables.
    fn module_defining(&self, name: &str) -> Option<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "ko"))
            .collect();
        files.sort();
        files.into_iter().find_map(|path| {
            let bytes = std::fs::read(&path).ok()?;
            let file = object::File::parse(&bytes[..]).ok()?;
            let defines = file.symbols().any(|sym| {
                sym.kind() == object::SymbolKind::Text
                    && sym.section_index().is_some()
                    && sym.name().is_ok_and(|n| n == name)
            });
            defines.then(|| path.file_stem()?.to_str().map(str::to_string))?
        })
    }
}

impl Session {
    /// A function breakpoint on `name`, which the vmlinux has no function
    /// of: in the loaded module that has it, or pending on the module
    /// whose debug file defines it. None when no module defines it (or
    /// this is no kernel session with modules).
    pub(super) fn module_function_breakpoint(
        &mut self,
        id: i64,
        name: &str,
    ) -> Option<UserBreakpoint> {
        let modules = self.kernel_modules.as_mut()?;
        if let Some((module, bp)) = modules.loaded_function(id, name) {
            let init_ran = bp
                .addr
                .is_some_and(|at| KernelModules::init_ran(module, at));
            let module = module.name.clone();
            let bp = if init_ran {
                UserBreakpoint {
                    id,
                    verified: false,
                    message: Some(init_ran_message(name, &module)),
                    ..Default::default()
                }
            } else {
                bp
            };
            modules.functions.insert(id, (name.to_string(), module));
            return Some(bp);
        }
        let module = modules.module_defining(name)?;
        let bp = UserBreakpoint {
            id,
            verified: false,
            message: Some(format!("pending: in module {module}, not loaded yet")),
            ..Default::default()
        };
        modules.functions.insert(id, (name.to_string(), module));
        Some(bp)
    }

    /// The client sets all function breakpoints anew.
    pub(super) fn forget_module_function_breakpoints(&mut self) {
        if let Some(modules) = self.kernel_modules.as_mut() {
            modules.functions.clear();
        }
    }

    /// Brings the session's modules up to date with the kernel's list and
    /// places the breakpoints that waited for them.
    pub async fn refresh_kernel_modules(&mut self) -> Result<()> {
        let target = self.dbg.target.as_mut().context("no target")?;
        let Some(mut modules) = self.kernel_modules.take() else {
            return Ok(());
        };
        let mut mem = CachedMemory {
            rsp: &mut target.rsp,
            cache: &mut target.stop.memory,
        };
        let listed = modules.kernel.loaded_modules(&mut mem).await;
        let listed = match listed {
            Ok(listed) => listed,
            Err(e) => {
                self.kernel_modules = Some(modules);
                return Err(e.context("cannot read the kernel's module list"));
            }
        };
        let mut gone: Vec<String> = Vec::new();
        let mut inits_done = false;
        modules.loaded.retain(|address, loaded| {
            let now = listed
                .iter()
                .find(|m| m.address == *address && m.sections.0 == loaded.sections.0);
            match now {
                Some(m) => {
                    inits_done |= m.live && !loaded.live;
                    loaded.live = m.live;
                }
                None => gone.push(loaded.name.clone()),
            }
            now.is_some()
        });
        let mut added = Vec::new();
        for module in listed {
            if modules.loaded.contains_key(&module.address) {
                continue;
            }
            let file = modules.dir.join(format!("{}.ko", module.name));
            if !file.is_file() {
                tracing::info!("module {}: no debug file {}", module.name, file.display());
                continue;
            }
            let map = modules.kernel.source_map().to_vec();
            let loaded = Symbols::load_relocated(&file, module.sections.clone()).map(|mut s| {
                s.set_source_map(&map);
                Rc::new(s)
            });
            match loaded {
                Ok(symbols) => {
                    let at = |section: &str| module.sections.0.get(section).copied().unwrap_or(0);
                    added.push(format!(
                        "{} (.text {:#x}, .init.text {:#x})",
                        module.name,
                        at(".text"),
                        at(".init.text")
                    ));
                    modules.loads += 1;
                    modules.loaded.insert(
                        module.address,
                        Loaded {
                            name: module.name,
                            sections: module.sections,
                            symbols,
                            order: modules.loads,
                            live: module.live,
                        },
                    );
                }
                Err(e) => self
                    .out
                    .output("console", format!("vmdbg: module {}: {e:#}\n", module.name)),
            }
        }
        let target = self.dbg.target.as_mut().context("no target")?;
        let mut newest_first: Vec<&Loaded> = modules.loaded.values().collect();
        newest_first.sort_by_key(|m| std::cmp::Reverse(m.order));
        target.modules = std::iter::once(modules.kernel.clone())
            .chain(newest_first.into_iter().map(|m| m.symbols.clone()))
            .collect();
        self.kernel_modules = Some(modules);
        if !added.is_empty() {
            self.out.output(
                "console",
                format!("vmdbg: kernel module DWARF loaded: {}\n", added.join(", ")),
            );
        }
        if !gone.is_empty() {
            self.out.output(
                "console",
                format!("vmdbg: kernel modules unloaded: {}\n", gone.join(", ")),
            );
        }
        if added.is_empty() && gone.is_empty() && !inits_done {
            return Ok(());
        }
        self.place_pending_breakpoints().await
    }

    /// Line breakpoints outside the vmlinux (and function breakpoints on
    /// modules' functions) are placed again in the
    /// modules as they are now: those that had no code may have some, and
    /// those in a module that is gone wait again (or follow it to where it
    /// loaded again — its old address may be another module's by now).
    /// Each change is a `breakpoint` event.
    async fn place_pending_breakpoints(&mut self) -> Result<()> {
        let target = self.dbg.target.as_ref().context("no target")?;
        let Some(kernel) = self.kernel_modules.as_ref().map(|m| m.kernel.clone()) else {
            return Ok(());
        };
        let modules = self.kernel_modules.as_ref();
        let mut changed = Vec::new();
        for (path, list) in self.dbg.line_breakpoints.iter_mut() {
            for bp in list.iter_mut() {
                let Some(line) = bp.line else { continue };
                if bp.addr.is_some_and(|addr| kernel.in_text(addr)) {
                    continue;
                }
                let found = target.place_line_breakpoint(path, line);
                let init_ran = found.as_ref().is_some_and(|p| {
                    modules
                        .and_then(|m| m.line_owner(path, line))
                        .is_some_and(|(owner, at)| {
                            at == p.addr && KernelModules::init_ran(owner, at)
                        })
                });
                let placed = found.filter(|_| !init_ran).map(|p| UserBreakpoint {
                    addr: Some(p.addr),
                    line: Some(p.line),
                    message: (p.line != line)
                        .then(|| format!("line {line} has no code; moved to line {}", p.line)),
                    ..Default::default()
                });
                let unloaded = || {
                    if init_ran {
                        format!("line {line} of {path} is in a module's init, which has run (the kernel frees that code); the breakpoint waits for the module to load again")
                    } else {
                        format!(
                    "the module holding line {line} of {path} was unloaded; the breakpoint waits for it to load again"
                )
                    }
                };
                if follow(bp, placed, unloaded) {
                    changed.push(bp.id);
                }
            }
        }
        if let Some(modules) = modules {
            for bp in self.dbg.function_breakpoints.iter_mut() {
                let Some((name, module)) = modules.functions.get(&bp.id) else {
                    continue;
                };
                let found = modules.loaded_function(bp.id, name);
                let init_ran = found.as_ref().is_some_and(|(owner, p)| {
                    p.addr.is_some_and(|at| KernelModules::init_ran(owner, at))
                });
                let placed = found.map(|(_, p)| p).filter(|_| !init_ran);
                let unloaded = || {
                    if init_ran {
                        init_ran_message(name, module)
                    } else {
                        format!(
                    "pending: in module {module}, unloaded; the breakpoint waits for it to load again"
                )
                    }
                };
                if follow(bp, placed, unloaded) {
                    changed.push(bp.id);
                }
            }
        }
        self.dbg.sync_breakpoints().await?;
        for bp in self
            .dbg
            .line_breakpoints
            .values()
            .flatten()
            .chain(self.dbg.function_breakpoints.iter())
        {
            if changed.contains(&bp.id) {
                self.out.event(
                    "breakpoint",
                    json!({ "reason": "changed", "breakpoint": super::breakpoints::to_dap(bp) }),
                );
            }
        }
        Ok(())
    }
}

/// Why a breakpoint on a module's init function is not placed.
fn init_ran_message(function: &str, module: &str) -> String {
    format!("pending: {function} is init code of module {module}, which has run (the kernel frees it); the breakpoint waits for the module to load again")
}

/// Moves a module's breakpoint to where it is placed now (`placed`; None:
/// nowhere, its module is gone, and `unloaded` says so); true when that
/// changed it.
fn follow(
    bp: &mut UserBreakpoint,
    placed: Option<UserBreakpoint>,
    unloaded: impl FnOnce() -> String,
) -> bool {
    match placed {
        Some(p) if p.addr == bp.addr => false,
        Some(p) => {
            bp.addr = p.addr;
            bp.line = p.line;
            bp.source = p.source.or(bp.source.take());
            bp.verified = true;
            bp.message = p.message;
            true
        }
        None if bp.addr.is_some() => {
            bp.addr = None;
            bp.verified = false;
            bp.message = Some(unloaded());
            true
        }
        None => false,
    }
}

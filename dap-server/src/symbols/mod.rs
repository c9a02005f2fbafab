//! The DWARF engine: everything the debugger knows from an ELF file, in
//! process, with gimli, addr2line and object.
//!
//! Owns: loading an ELF and its debug sections (this file; the file is
//! mapped, its sections read in place: `bytes`), relocatable objects placed
//! where a kernel loaded their sections (`relocate`), a kernel's globals,
//! per-CPU variables and types by name (`kernel`) and its module list
//! (`modules`), line tables and breakpoint placement (`lines`), stack
//! unwinding by CFI with a frame pointer fallback (`unwind`), code the
//! symbol table alone names (`labels`), types and
//! value formatting (`types`),
//! variables of a frame and their DWARF location expressions (`scopes`),
//! the small expression language of `evaluate` (`expr`), how values of
//! each language's library types are shown (`formatters`) and symbol
//! names as the source language writes them (`names`).
//! It reads target memory only through [`TargetMemory`]; it knows nothing
//! about RSP or DAP.

pub mod bytes;
pub mod expr;
pub mod formatters;
pub mod kernel;
pub mod labels;
pub mod lines;
pub mod modules;
pub mod names;
pub mod relocate;
pub mod scopes;
pub mod types;
pub mod unwind;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context, Result};
use gimli::{Reader as _, Section as _};
use object::{Object, ObjectSection, ObjectSymbol};

use bytes::Bytes;

pub type Reader = gimli::EndianReader<gimli::RunTimeEndian, bytes::Bytes>;

/// How the engine reads the stopped target's memory.
#[allow(async_fn_in_trait)]
pub trait TargetMemory {
    async fn read(&mut self, addr: u64, len: usize) -> Result<Vec<u8>>;
}

/// A function by name and address range, from DWARF or the symbol table.
#[derive(Clone, Debug)]
pub struct Function {
    pub name: String,
    pub low: u64,
    pub high: u64,
}

/// A frame of the source-level call stack: one physical frame may hold
/// several, one for each inlined call.
#[derive(Clone, Debug)]
pub struct SourceFrame {
    pub function: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// 0 for the function the pc is in, 1 for the function it was inlined
    /// into, and so on.
    pub inline_depth: usize,
    pub inlined: bool,
}

/// The source language of a compilation unit, for the conventions of
/// showing its values and names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    C,
    Cpp,
    Rust,
}

impl Language {
    fn of_unit(dwarf: &gimli::Dwarf<Reader>, unit: &gimli::Unit<Reader>) -> Self {
        let mut entries = unit.entries();
        let lang = match entries.next_dfs() {
            Ok(Some((_, root))) => root.attr_value(gimli::DW_AT_language).ok().flatten(),
            _ => None,
        };
        let _ = dwarf;
        match lang {
            Some(gimli::AttributeValue::Language(gimli::DW_LANG_Rust)) => Self::Rust,
            Some(gimli::AttributeValue::Language(
                gimli::DW_LANG_C_plus_plus
                | gimli::DW_LANG_C_plus_plus_03
                | gimli::DW_LANG_C_plus_plus_11
                | gimli::DW_LANG_C_plus_plus_14
                | gimli::DW_LANG_C_plus_plus_17
                | gimli::DW_LANG_C_plus_plus_20,
            )) => Self::Cpp,
            _ => Self::C,
        }
    }
}

pub struct Symbols {
    pub path: PathBuf,
    /// The language of each unit, by index into `units`.
    pub languages: Vec<Language>,
    pub dwarf: gimli::Dwarf<Reader>,
    pub units: Vec<gimli::Unit<Reader>>,
    context: addr2line::Context<Reader>,
    pub lines: lines::LineIndex,
    /// Functions from the ELF symbol table, by address.
    functions: Vec<Function>,
    /// Functions from DWARF, by address: a walk over every DIE (seconds on
    /// a kernel), made on the first lookup the symbol table cannot answer.
    dwarf_functions: OnceLock<Vec<Function>>,
    pub unwinder: unwind::Unwinder,
    pub(crate) type_cache: Mutex<HashMap<(usize, gimli::UnitOffset), Arc<types::Type>>>,
    text_range: (u64, u64),
    /// The runtime range of `.init.text` ((0, 0) without one): a kernel
    /// module's init code, freed once its init has run.
    init_text_range: (u64, u64),
    /// Where the file was loaded: runtime address minus file address (0
    /// for a kernel or a fixed-address program; a PIE's or a shared
    /// library's load bias in a process). Every address this type takes or
    /// gives is a runtime address; DWARF lookups subtract the bias.
    pub bias: u64,
    /// Build-directory prefixes and where their files are on this host
    /// (`sourceMap`), applied to every source path this type gives.
    source_map: Vec<(String, String)>,
    /// The ELF's data symbols and per-CPU section, for globals DWARF
    /// alone cannot place ([`kernel`]).
    elf: kernel::ElfData,
    /// Names for code without a DWARF subprogram ([`labels`]).
    labels: labels::CodeLabels,
}

impl Symbols {
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_at(path, 0)
    }

    /// Loads an ELF mapped `bias` bytes above its file addresses.
    pub fn load_at(path: &Path, bias: u64) -> Result<Self> {
        Self::load_placed(path, Placement::Bias(bias))
    }

    /// Loads a relocatable object (a kernel module) whose sections the
    /// target loaded at `places` ([`relocate`]).
    pub fn load_relocated(path: &Path, places: relocate::SectionAddresses) -> Result<Self> {
        Self::load_placed(path, Placement::Sections(places))
    }

    fn load_placed(path: &Path, placement: Placement) -> Result<Self> {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot read symbols file {}", path.display()))?;
        // SAFETY: the map is read-only; vmdbg's cache replaces files by
        // rename, never in place, so a mapped file does not change under us.
        let map = Arc::new(
            unsafe { memmap2::Mmap::map(&file) }
                .with_context(|| format!("cannot map symbols file {}", path.display()))?,
        );
        let file = object::File::parse(&map[..]).with_context(|| {
            format!(
                "{} is not an ELF file this debugger can read",
                path.display()
            )
        })?;
        let endian = if file.is_little_endian() {
            gimli::RunTimeEndian::Little
        } else {
            gimli::RunTimeEndian::Big
        };
        let bias = match &placement {
            Placement::Bias(bias) => *bias,
            Placement::Sections(_) => 0,
        };
        // A section is read in place from the mapping; a compressed or a
        // relocated one is made in memory, once.
        let made: std::cell::RefCell<HashMap<String, Reader>> = Default::default();
        let section = |name: &str| -> Reader {
            if let Some(r) = made.borrow().get(name) {
                return r.clone();
            }
            let bytes = match (file.section_by_name(name), &placement) {
                (None, _) => Bytes::from(&[][..]),
                (Some(s), Placement::Sections(places)) => {
                    Bytes::from(&relocate::relocated(&file, &s, places)[..])
                }
                (Some(s), Placement::Bias(_)) => match s.compressed_file_range() {
                    Ok(r) if r.format == object::CompressionFormat::None => Bytes::mapped(
                        &map,
                        r.offset as usize..(r.offset + r.compressed_size) as usize,
                    ),
                    _ => s
                        .uncompressed_data()
                        .map(|d| Bytes::from(&*d))
                        .unwrap_or_else(|_| Bytes::from(&[][..])),
                },
            };
            let keep = !matches!(bytes, Bytes::Mapped(..));
            let reader = gimli::EndianReader::new(bytes, endian);
            if keep {
                made.borrow_mut().insert(name.to_string(), reader.clone());
            }
            reader
        };
        let load_dwarf = || -> Result<gimli::Dwarf<Reader>> {
            Ok(gimli::Dwarf::load(|id| -> Result<Reader, gimli::Error> {
                Ok(section(id.name()))
            })?)
        };
        let dwarf = load_dwarf()?;
        if dwarf.debug_info.reader().is_empty() {
            anyhow::bail!(
                "{} has no DWARF debug information (.debug_info); build it with -g or give `symbols`",
                path.display()
            );
        }
        let context = addr2line::Context::from_dwarf(load_dwarf()?)
            .with_context(|| format!("cannot index the DWARF of {}", path.display()))?;
        let mut units = Vec::new();
        let mut headers = dwarf.units();
        while let Some(header) = headers.next()? {
            units.push(dwarf.unit(header)?);
        }
        let languages = units.iter().map(|u| Language::of_unit(&dwarf, u)).collect();
        let mut lines = lines::LineIndex::build(&dwarf, &units)?;
        lines.shift(bias);
        // The symbol table: functions built without -g too and, demangled,
        // the qualified names of Rust and C++ functions, whose DWARF names
        // are bare (`total`, `method`).
        let mut functions = Vec::new();
        let mut named = std::collections::HashSet::new();
        for sym in file.symbols() {
            if sym.kind() != object::SymbolKind::Text {
                continue;
            }
            let low = match &placement {
                Placement::Sections(places) => match places.symbol(&file, &sym) {
                    Some(addr) => addr,
                    None => continue,
                },
                Placement::Bias(_) if sym.address() == 0 => continue,
                Placement::Bias(bias) => sym.address().wrapping_add(*bias),
            };
            if let Ok(name) = sym.name() {
                let name = names::demangle(name);
                if named.insert(name.clone()) {
                    functions.push(Function {
                        name,
                        low,
                        high: low + sym.size().max(1),
                    });
                }
            }
        }
        functions.sort_by_key(|f| f.low);
        let labels = labels::CodeLabels::read(&file, |sym| match &placement {
            Placement::Sections(places) => places.symbol(&file, sym),
            Placement::Bias(_) if sym.address() == 0 => None,
            Placement::Bias(bias) => Some(sym.address().wrapping_add(*bias)),
        });
        // .eh_frame encodes its pcs relative to its own address: based at
        // its runtime address, its FDEs come out in runtime addresses.
        let eh_frame = match &placement {
            Placement::Bias(bias) => file
                .section_by_name(".eh_frame")
                .map(|s| (section(".eh_frame"), s.address().wrapping_add(*bias))),
            Placement::Sections(_) => None,
        };
        let runtime_range = |name: &str| {
            file.section_by_name(name)
                .map(|s| {
                    let start = match &placement {
                        Placement::Bias(bias) => s.address().wrapping_add(*bias),
                        Placement::Sections(places) => places.0.get(name).copied().unwrap_or(0),
                    };
                    (start, start + s.size())
                })
                .unwrap_or((0, 0))
        };
        let text_range = runtime_range(".text");
        let init_text_range = runtime_range(".init.text");
        let unwinder = unwind::Unwinder::new(eh_frame, section(".debug_frame"), text_range.0);
        Ok(Self {
            path: path.to_path_buf(),
            languages,
            dwarf,
            units,
            context,
            lines,
            functions,
            dwarf_functions: OnceLock::new(),
            unwinder,
            type_cache: Mutex::new(HashMap::new()),
            text_range,
            init_text_range,
            bias,
            source_map: Vec::new(),
            elf: kernel::ElfData::read(&file),
            labels,
        })
    }

    /// Maps source paths under a build directory to where they are on this
    /// host (`sourceMap`: DWARF prefix → local prefix; the longest prefix
    /// wins). Breakpoints are then set by, and frames report, local paths.
    pub fn set_source_map(&mut self, map: &[(String, String)]) {
        let mut map: Vec<(String, String)> = map
            .iter()
            .map(|(from, to)| {
                (
                    from.trim_end_matches('/').to_string(),
                    to.trim_end_matches('/').to_string(),
                )
            })
            .collect();
        map.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        self.lines.map_files(|f| map_source_path(&map, f));
        self.source_map = map;
    }

    /// The source map [`Self::set_source_map`] applies.
    pub fn source_map(&self) -> &[(String, String)] {
        &self.source_map
    }

    /// The innermost function whose range holds `pc`.
    pub fn function_at(&self, pc: u64) -> Option<&Function> {
        let innermost = |list: &'_ [Function]| -> Option<usize> {
            (0..list.len())
                .filter(|&i| list[i].low <= pc && pc < list[i].high)
                .min_by_key(|&i| list[i].high - list[i].low)
        };
        if let Some(i) = innermost(&self.functions) {
            return Some(&self.functions[i]);
        }
        let dwarf = self.dwarf_functions();
        innermost(dwarf).map(|i| &dwarf[i])
    }

    /// The function a user means by `name`: an exact name first (C's
    /// `main`, or a Rust or C++ path as written), else a qualified name
    /// that ends in it (`total` for `main::total`); the symbol table's
    /// before DWARF's.
    pub fn function_named(&self, name: &str) -> Option<&Function> {
        let find = |list: &'_ [Function]| -> Option<usize> {
            list.iter().position(|f| f.name == name).or_else(|| {
                list.iter()
                    .position(|f| names::names_function(&f.name, name))
            })
        };
        if let Some(i) = find(&self.functions) {
            return Some(&self.functions[i]);
        }
        let dwarf = self.dwarf_functions();
        find(dwarf).map(|i| &dwarf[i])
    }

    fn dwarf_functions(&self) -> &[Function] {
        self.dwarf_functions.get_or_init(|| {
            let mut list = scopes::dwarf_functions(&self.dwarf, &self.units);
            for f in &mut list {
                f.low = f.low.wrapping_add(self.bias);
                f.high = f.high.wrapping_add(self.bias);
            }
            list.sort_by_key(|f| f.low);
            list
        })
    }

    /// Source frames at a pc, innermost (deepest inlined) first. `probe` is
    /// the pc, or pc - 1 for a return address so the call's line is found.
    pub fn source_frames(&self, probe: u64) -> Vec<SourceFrame> {
        let mut out = Vec::new();
        if let Ok(mut frames) = self
            .context
            .find_frames(probe.wrapping_sub(self.bias))
            .skip_all_loads()
        {
            while let Ok(Some(frame)) = frames.next() {
                let function = frame
                    .function
                    .as_ref()
                    .and_then(|f| f.raw_name().ok().map(|n| names::demangle(&n)))
                    .or_else(|| {
                        self.labels
                            .symbol_at(probe)
                            .map(|(name, _)| name.to_string())
                    })
                    .unwrap_or_else(|| "??".to_string());
                let (file, line, column) = frame
                    .location
                    .as_ref()
                    .map(|l| {
                        let file = l.file.map(|f| map_source_path(&self.source_map, f));
                        (file, l.line, l.column)
                    })
                    .unwrap_or((None, None, None));
                let depth = out.len();
                out.push(SourceFrame {
                    function,
                    file,
                    line,
                    column,
                    inline_depth: depth,
                    inlined: false,
                });
            }
        }
        let count = out.len();
        for (i, frame) in out.iter_mut().enumerate() {
            // Every frame but the outermost was inlined into the next one.
            frame.inlined = i + 1 < count;
        }
        if out.is_empty() {
            let function = self
                .function_at(probe)
                .map(|f| f.name.clone())
                .or_else(|| {
                    self.labels
                        .symbol_at(probe)
                        .map(|(name, _)| name.to_string())
                })
                .unwrap_or_else(|| format!("{probe:#x}"));
            let loc = self.lines.row_at(probe);
            out.push(SourceFrame {
                function,
                file: loc.map(|r| self.lines.file_name(r.file).to_string()),
                line: loc.map(|r| r.line),
                column: None,
                inline_depth: 0,
                inlined: false,
            });
        }
        out
    }

    /// The runtime range of `.text`.
    pub fn text_range(&self) -> (u64, u64) {
        self.text_range
    }

    /// Whether `addr` is in `.init.text` (a kernel module's init code).
    pub fn in_init_text(&self, addr: u64) -> bool {
        (self.init_text_range.0..self.init_text_range.1).contains(&addr)
    }

    pub fn in_text(&self, pc: u64) -> bool {
        // The symbol table only: a pc elsewhere (another module's) must not
        // cost a walk over all of this file's DWARF.
        (self.text_range.0..self.text_range.1).contains(&pc)
            || self.functions.iter().any(|f| f.low <= pc && pc < f.high)
            || (self.functions.is_empty() && self.function_at(pc).is_some())
    }
}

/// Where a file's code is in the target.
enum Placement {
    /// Every address moved by one bias (an executable, a shared library).
    Bias(u64),
    /// Each section where it was loaded (a relocatable object).
    Sections(relocate::SectionAddresses),
}

/// `path` with the first matching prefix of `map` replaced (prefixes match
/// whole path components).
fn map_source_path(map: &[(String, String)], path: &str) -> String {
    for (from, to) in map {
        if let Some(rest) = path.strip_prefix(from.as_str()) {
            if rest.is_empty() || rest.starts_with('/') {
                return format!("{to}{rest}");
            }
        }
    }
    path.to_string()
}

#[cfg(test)]
mod source_map_tests {
    use super::map_source_path;

    #[test]
    fn prefixes_match_whole_components() {
        let map = vec![
            (
                "debian/build/build_amd64_none_amd64".to_string(),
                "/src/linux".to_string(),
            ),
            ("/build".to_string(), "/home/me".to_string()),
        ];
        assert_eq!(
            map_source_path(&map, "debian/build/build_amd64_none_amd64/fs/open.c"),
            "/src/linux/fs/open.c"
        );
        assert_eq!(map_source_path(&map, "/build/x.c"), "/home/me/x.c");
        assert_eq!(map_source_path(&map, "/buildroot/x.c"), "/buildroot/x.c");
        assert_eq!(map_source_path(&map, "lib/x.c"), "lib/x.c");
    }
}

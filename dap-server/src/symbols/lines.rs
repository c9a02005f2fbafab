//! Line tables: which source line an address belongs to, where a line's
//! code starts (breakpoints), and the address ranges stepping uses.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use anyhow::Result;
use gimli::Reader as _;

use super::Reader;

/// One line-table row, with the end of the address range it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineRow {
    pub addr: u64,
    pub end: u64,
    pub file: usize,
    pub line: u32,
    pub is_stmt: bool,
}

#[derive(Default)]
pub struct LineIndex {
    /// Rows with a non-empty range, sorted by address.
    rows: Vec<LineRow>,
    files: Vec<String>,
}

/// Where a line breakpoint goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinePlacement {
    pub addr: u64,
    /// The line that has the code: the asked line or the next with code.
    pub line: u32,
}

/// The normalized path of a line-table row's file ("??" when it names none).
fn row_file(
    dwarf: &gimli::Dwarf<Reader>,
    unit: &gimli::Unit<Reader>,
    header: &gimli::LineProgramHeader<Reader>,
    row: &gimli::LineRow,
    comp_dir: &str,
) -> String {
    let Some(entry) = row.file(header) else {
        return String::from("??");
    };
    let mut path = PathBuf::new();
    if let Some(dir) = entry.directory(header) {
        if let Ok(dir) = dwarf.attr_string(unit, dir) {
            path.push(dir.to_string_lossy().unwrap_or_default().as_ref());
        }
    }
    if let Ok(name) = dwarf.attr_string(unit, entry.path_name()) {
        path.push(name.to_string_lossy().unwrap_or_default().as_ref());
    }
    let full = if path.is_relative() {
        Path::new(comp_dir).join(path)
    } else {
        path
    };
    normalize(&full)
}

impl LineIndex {
    pub fn build(dwarf: &gimli::Dwarf<Reader>, units: &[gimli::Unit<Reader>]) -> Result<Self> {
        let mut index = Self::default();
        let mut file_ids: HashMap<String, usize> = HashMap::new();
        for unit in units {
            let Some(program) = unit.line_program.clone() else {
                continue;
            };
            let comp_dir = unit
                .comp_dir
                .as_ref()
                .and_then(|d| d.to_string_lossy().ok().map(|s| s.into_owned()))
                .unwrap_or_default();
            let mut rows = program.rows();
            let mut sequence: Vec<LineRow> = Vec::new();
            // The unit's file table index → the index's file id: a path is
            // built once per file of a unit, not once per row (a kernel has
            // millions of rows).
            let mut unit_files: HashMap<u64, usize> = HashMap::new();
            while let Some((header, row)) = rows.next_row()? {
                if row.end_sequence() {
                    let end = row.address();
                    finish_sequence(&mut sequence, end, &mut index.rows);
                    continue;
                }
                let id = match unit_files.get(&row.file_index()) {
                    Some(&id) => id,
                    None => {
                        let file = row_file(dwarf, unit, header, row, &comp_dir);
                        let id = *file_ids.entry(file.clone()).or_insert_with(|| {
                            index.files.push(file);
                            index.files.len() - 1
                        });
                        unit_files.insert(row.file_index(), id);
                        id
                    }
                };
                sequence.push(LineRow {
                    addr: row.address(),
                    end: row.address(),
                    file: id,
                    line: row.line().map(|l| l.get() as u32).unwrap_or(0),
                    is_stmt: row.is_stmt(),
                });
            }
        }
        index.rows.sort_by_key(|r| r.addr);
        Ok(index)
    }

    /// Moves every row by a load bias (a PIE or a shared library).
    pub fn shift(&mut self, bias: u64) {
        for row in &mut self.rows {
            row.addr = row.addr.wrapping_add(bias);
            row.end = row.end.wrapping_add(bias);
        }
    }

    /// Rewrites every file path (a source map); paths stay normalized.
    pub fn map_files(&mut self, mut f: impl FnMut(&str) -> String) {
        for file in &mut self.files {
            *file = normalize(Path::new(&f(file)));
        }
    }

    pub fn file_name(&self, id: usize) -> &str {
        self.files.get(id).map(String::as_str).unwrap_or("??")
    }

    /// The files whose path matches the client's (exactly, or by file name
    /// when the build directory differs from the client's checkout).
    fn matching_files(&self, path: &str) -> Vec<usize> {
        let wanted = normalize(Path::new(path));
        let exact: Vec<usize> = (0..self.files.len())
            .filter(|&i| self.files[i] == wanted)
            .collect();
        if !exact.is_empty() {
            return exact;
        }
        let name = Path::new(path).file_name();
        (0..self.files.len())
            .filter(|&i| Path::new(&self.files[i]).file_name() == name)
            .collect()
    }

    /// The row whose range holds `pc`.
    pub fn row_at(&self, pc: u64) -> Option<LineRow> {
        let i = self.rows.partition_point(|r| r.addr <= pc);
        let row = self.rows.get(i.checked_sub(1)?)?;
        (pc < row.end).then_some(*row)
    }

    /// Where a breakpoint on `line` of `path` goes: the lowest statement
    /// address of that line, or of the next line that has code.
    pub fn place_breakpoint(&self, path: &str, line: u32) -> Option<LinePlacement> {
        let files = self.matching_files(path);
        let best_line = self
            .rows
            .iter()
            .filter(|r| r.is_stmt && r.line >= line && files.contains(&r.file))
            .map(|r| r.line)
            .min()?;
        // Nothing more than a screenful away: a line past the end of a
        // function must not jump into an unrelated one far below.
        if best_line > line + 50 {
            return None;
        }
        let addr = self
            .rows
            .iter()
            .filter(|r| r.is_stmt && r.line == best_line && files.contains(&r.file))
            .map(|r| r.addr)
            .min()?;
        Some(LinePlacement {
            addr,
            line: best_line,
        })
    }

    /// The address after a function's prologue, as gdb finds it: the end
    /// of the function's first line entry, extended while the following
    /// entries go back to earlier lines (still prologue).
    pub fn after_prologue(&self, low: u64, high: u64) -> u64 {
        let Some(first) = self.row_at(low).filter(|r| r.line != 0) else {
            return low;
        };
        let mut addr = first.end;
        for _ in 0..16 {
            match self.row_at(addr) {
                Some(r) if r.line != 0 && r.line < first.line && r.end < high => addr = r.end,
                _ => break,
            }
        }
        if addr < high && self.row_at(addr).is_some() {
            addr
        } else {
            low
        }
    }

    /// True when `pc` is the first address of a statement row.
    #[cfg(test)]
    pub fn is_statement_start(&self, pc: u64) -> bool {
        self.row_at(pc)
            .is_some_and(|r| r.addr == pc && r.is_stmt && r.line != 0)
    }

    /// The contiguous address range around `pc` that belongs to the same
    /// source line (what one `next` steps over).
    pub fn line_range(&self, pc: u64) -> Option<(u64, u64, LineRow)> {
        let i = self.rows.partition_point(|r| r.addr <= pc).checked_sub(1)?;
        let row = self.rows[i];
        if pc >= row.end {
            return None;
        }
        let (mut start, mut end) = (row.addr, row.end);
        let mut j = i;
        while j > 0
            && self.rows[j - 1].end == start
            && self.rows[j - 1].line == row.line
            && self.rows[j - 1].file == row.file
        {
            j -= 1;
            start = self.rows[j].addr;
        }
        let mut k = i + 1;
        while k < self.rows.len()
            && self.rows[k].addr == end
            && self.rows[k].line == row.line
            && self.rows[k].file == row.file
            && !self.rows[k].is_stmt
        {
            end = self.rows[k].end;
            k += 1;
        }
        Some((start, end, row))
    }
}

/// Closes a sequence: each row ends where the next one starts. Of several
/// rows at one address the last is kept, but with the line of the last
/// statement row among them when it is not one itself (what gdb shows).
fn finish_sequence(sequence: &mut Vec<LineRow>, end: u64, out: &mut Vec<LineRow>) {
    for i in 0..sequence.len() {
        let next = sequence.get(i + 1).map(|r| r.addr).unwrap_or(end);
        sequence[i].end = next;
    }
    let mut last_stmt_here: Option<LineRow> = None;
    for row in sequence.drain(..) {
        if last_stmt_here.is_some_and(|r| r.addr != row.addr) {
            last_stmt_here = None;
        }
        if row.is_stmt {
            last_stmt_here = Some(row);
        }
        if row.end > row.addr {
            let mut kept = row;
            if let Some(stmt) = last_stmt_here.filter(|_| !row.is_stmt) {
                kept.line = stmt.line;
                kept.file = stmt.file;
                kept.is_stmt = true;
            }
            out.push(kept);
        }
    }
}

fn normalize(path: &Path) -> String {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_paths() {
        assert_eq!(normalize(Path::new("/a/b/../c/./d.c")), "/a/c/d.c");
    }

    #[test]
    fn finds_rows_and_ranges() {
        let mut index = LineIndex {
            rows: Vec::new(),
            files: vec!["/src/x.c".into()],
        };
        let mut seq = vec![
            LineRow {
                addr: 0x10,
                end: 0,
                file: 0,
                line: 5,
                is_stmt: true,
            },
            LineRow {
                addr: 0x14,
                end: 0,
                file: 0,
                line: 7,
                is_stmt: true,
            },
            LineRow {
                addr: 0x14,
                end: 0,
                file: 0,
                line: 8,
                is_stmt: true,
            },
            LineRow {
                addr: 0x20,
                end: 0,
                file: 0,
                line: 8,
                is_stmt: false,
            },
        ];
        finish_sequence(&mut seq, 0x30, &mut index.rows);
        assert_eq!(index.row_at(0x15).unwrap().line, 8);
        assert_eq!(index.after_prologue(0x10, 0x30), 0x14);
        assert_eq!(
            index.place_breakpoint("/src/x.c", 6),
            Some(LinePlacement {
                addr: 0x14,
                line: 8
            })
        );
        assert_eq!(index.place_breakpoint("x.c", 5).unwrap().addr, 0x10);
        assert_eq!(index.place_breakpoint("/src/x.c", 9), None);
        assert_eq!(
            index.line_range(0x22).map(|r| (r.0, r.1)),
            Some((0x14, 0x30))
        );
        assert!(index.is_statement_start(0x14));
        assert!(!index.is_statement_start(0x20));
    }
}

//! Register numbering, as the stub describes it in its target description
//! (`target.xml` and the files it includes), with the standard amd64 order
//! as the fallback for stubs that send none.

use anyhow::{bail, Result};

#[derive(Clone, Debug)]
pub struct RegisterInfo {
    pub name: String,
    pub bits: u32,
    /// The number `p`/`P` packets use.
    pub regnum: u32,
    /// Byte offset in the `g` packet's block.
    pub offset: usize,
}

#[derive(Clone, Debug, Default)]
pub struct RegisterMap {
    pub registers: Vec<RegisterInfo>,
}

/// gdb's amd64 order for a stub without a target description.
const AMD64_FALLBACK: &[(&str, u32)] = &[
    ("rax", 64),
    ("rbx", 64),
    ("rcx", 64),
    ("rdx", 64),
    ("rsi", 64),
    ("rdi", 64),
    ("rbp", 64),
    ("rsp", 64),
    ("r8", 64),
    ("r9", 64),
    ("r10", 64),
    ("r11", 64),
    ("r12", 64),
    ("r13", 64),
    ("r14", 64),
    ("r15", 64),
    ("rip", 64),
    ("eflags", 32),
    ("cs", 32),
    ("ss", 32),
    ("ds", 32),
    ("es", 32),
    ("fs", 32),
    ("gs", 32),
];

/// DWARF register numbers of x86-64 (System V psABI) by name.
pub const DWARF_X86_64: &[&str] = &[
    "rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15", "rip",
];

impl RegisterMap {
    pub fn amd64_fallback() -> Self {
        Self::from_list(
            AMD64_FALLBACK
                .iter()
                .map(|&(n, b)| (n.to_string(), b, None)),
        )
    }

    fn from_list(list: impl Iterator<Item = (String, u32, Option<u32>)>) -> Self {
        let mut registers = Vec::new();
        let mut next_num = 0u32;
        let mut offset = 0usize;
        for (name, bits, regnum) in list {
            let regnum = regnum.unwrap_or(next_num);
            next_num = regnum + 1;
            registers.push(RegisterInfo {
                name,
                bits,
                regnum,
                offset,
            });
            offset += bits.div_ceil(8) as usize;
        }
        Self { registers }
    }

    /// Builds the map from target description documents: `fetch` returns
    /// the text of an annex (the top one is `target.xml`).
    pub fn from_target_xml(
        top: &str,
        fetch: &mut dyn FnMut(&str) -> Result<String>,
    ) -> Result<Self> {
        let mut list = Vec::new();
        collect_regs(top, fetch, &mut list, 0)?;
        if list.is_empty() {
            bail!("the target description names no registers");
        }
        // The `g` block is in register-number order.
        list.sort_by_key(|(_, _, n)| n.unwrap_or(u32::MAX));
        let mut map = Self::from_list(list.into_iter());
        map.registers.sort_by_key(|r| r.regnum);
        Ok(map)
    }

    pub fn by_name(&self, name: &str) -> Option<&RegisterInfo> {
        self.registers
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
    }

    #[cfg(test)]
    pub fn by_dwarf(&self, dwarf: u16) -> Option<&RegisterInfo> {
        DWARF_X86_64
            .get(dwarf as usize)
            .and_then(|n| self.by_name(n))
    }
}

/// Registers in document order; an `<xi:include>` is expanded in place.
fn collect_regs(
    text: &str,
    fetch: &mut dyn FnMut(&str) -> Result<String>,
    out: &mut Vec<(String, u32, Option<u32>)>,
    depth: u32,
) -> Result<()> {
    if depth > 8 {
        bail!("target description includes nest too deeply");
    }
    let mut rest = text;
    let mut next_num = out
        .iter()
        .filter_map(|(_, _, n)| *n)
        .max()
        .map_or(0, |n| n + 1);
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let end = after.find('>').unwrap_or(after.len());
        let tag = &after[..end];
        rest = &after[end.min(after.len())..];
        if let Some(attrs) = tag
            .strip_prefix("reg ")
            .or_else(|| tag.strip_prefix("reg\t"))
        {
            let name = attr(attrs, "name").unwrap_or_default();
            let bits = attr(attrs, "bitsize")
                .and_then(|b| b.parse().ok())
                .unwrap_or(64);
            let regnum = attr(attrs, "regnum")
                .and_then(|b| b.parse().ok())
                .unwrap_or(next_num);
            next_num = regnum + 1;
            out.push((name, bits, Some(regnum)));
        } else if tag.starts_with("xi:include") {
            if let Some(href) = attr(tag, "href") {
                let included = fetch(&href)?;
                collect_regs(&included, fetch, out, depth + 1)?;
                next_num = out
                    .iter()
                    .filter_map(|(_, _, n)| *n)
                    .max()
                    .map_or(0, |n| n + 1);
            }
        }
    }
    Ok(())
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let mut search = tag;
    loop {
        let pos = search.find(name)?;
        let before_ok = pos == 0 || search.as_bytes()[pos - 1].is_ascii_whitespace();
        let rest = search[pos + name.len()..].trim_start();
        if before_ok {
            if let Some(rest) = rest.strip_prefix('=') {
                let rest = rest.trim_start();
                let quote = rest.chars().next()?;
                if quote == '"' || quote == '\'' {
                    let value = &rest[1..];
                    let end = value.find(quote)?;
                    return Some(value[..end].to_string());
                }
            }
        }
        search = &search[pos + name.len()..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_includes_and_offsets() {
        let top = r#"<?xml version="1.0"?><target><architecture>i386:x86-64</architecture>
            <xi:include href="core.xml"/><feature name="x"><reg name="fs_base" bitsize="64" type="int"/></feature></target>"#;
        let core = r#"<feature><reg name="rax" bitsize="64"/><reg name="eflags" bitsize="32" regnum="1"/></feature>"#;
        let map = RegisterMap::from_target_xml(top, &mut |name| {
            assert_eq!(name, "core.xml");
            Ok(core.to_string())
        })
        .unwrap();
        let names: Vec<_> = map
            .registers
            .iter()
            .map(|r| (r.name.as_str(), r.regnum, r.offset))
            .collect();
        assert_eq!(
            names,
            vec![("rax", 0, 0), ("eflags", 1, 8), ("fs_base", 2, 12)]
        );
    }

    #[test]
    fn fallback_has_rip() {
        let map = RegisterMap::amd64_fallback();
        assert_eq!(map.by_name("rip").unwrap().offset, 16 * 8);
        assert_eq!(map.by_dwarf(7).unwrap().name, "rsp");
    }
}

//! What gdb needs to find the program's shared libraries: the auxiliary
//! vector (/proc/PID/auxv; gdb takes the entry point and the dynamic
//! linker's base from it) and the SVR4 library list, read from the dynamic
//! linker's `r_debug`/`link_map` chain in the process's memory — found
//! through the program headers (AT_PHDR) → PT_DYNAMIC → DT_DEBUG.

use super::inferior::Inferior;
use super::DebugError;

const AT_NULL: u64 = 0;
const AT_PHDR: u64 = 3;
const AT_PHNUM: u64 = 5;
const PT_DYNAMIC: u32 = 2;
const PT_PHDR: u32 = 6;
const DT_NULL: u64 = 0;
const DT_DEBUG: u64 = 21;
/// sizeof(Elf64_Phdr)
const PHDR_SIZE: u64 = 56;
/// Guards against a corrupt (or hostile) link_map chain that loops.
const MAX_LIBRARIES: usize = 4096;
const MAX_DYNAMIC_ENTRIES: u64 = 4096;

pub fn auxv(inferior: &Inferior) -> Result<Vec<u8>, DebugError> {
    std::fs::read(format!("/proc/{}/auxv", inferior.pid))
        .map_err(|e| DebugError::Ptrace(format!("reading the auxiliary vector: {e}")))
}

fn auxv_entry(auxv: &[u8], wanted: u64) -> Option<u64> {
    auxv.chunks_exact(16)
        .map(|e| {
            (
                u64::from_le_bytes(e[..8].try_into().expect("8 bytes")),
                u64::from_le_bytes(e[8..].try_into().expect("8 bytes")),
            )
        })
        .take_while(|(key, _)| *key != AT_NULL)
        .find(|(key, _)| *key == wanted)
        .map(|(_, value)| value)
}

/// Address of the dynamic linker's `r_debug`, or `None` while the dynamic
/// linker has not filled DT_DEBUG in yet (or for a static program).
fn r_debug_address(inferior: &Inferior) -> Result<Option<u64>, DebugError> {
    let auxv = auxv(inferior)?;
    let (Some(phdr), Some(phnum)) = (auxv_entry(&auxv, AT_PHDR), auxv_entry(&auxv, AT_PHNUM))
    else {
        return Ok(None);
    };
    let mut headers = Vec::new();
    for i in 0..phnum.min(256) {
        let mut h = [0u8; PHDR_SIZE as usize];
        if inferior.read_memory(phdr + i * PHDR_SIZE, &mut h)? != h.len() {
            return Ok(None);
        }
        let p_type = u32::from_le_bytes(h[0..4].try_into().expect("4 bytes"));
        let p_vaddr = u64::from_le_bytes(h[16..24].try_into().expect("8 bytes"));
        headers.push((p_type, p_vaddr));
    }
    // The load bias of a position-independent program: where its program
    // headers are minus where the file says they are.
    let bias = headers
        .iter()
        .find(|(t, _)| *t == PT_PHDR)
        .map_or(0, |(_, vaddr)| phdr.wrapping_sub(*vaddr));
    let Some(dynamic) = headers
        .iter()
        .find(|(t, _)| *t == PT_DYNAMIC)
        .map(|(_, vaddr)| vaddr.wrapping_add(bias))
    else {
        return Ok(None);
    };
    for i in 0..MAX_DYNAMIC_ENTRIES {
        let tag = inferior.read_u64(dynamic + i * 16)?;
        if tag == DT_NULL {
            break;
        }
        if tag == DT_DEBUG {
            let value = inferior.read_u64(dynamic + i * 16 + 8)?;
            return Ok((value != 0).then_some(value));
        }
    }
    Ok(None)
}

fn read_c_string(inferior: &Inferior, addr: u64) -> String {
    let mut out = Vec::new();
    let mut chunk = [0u8; 256];
    while out.len() < 4096 {
        let Ok(n) = inferior.read_memory(addr + out.len() as u64, &mut chunk) else {
            break;
        };
        match chunk[..n].iter().position(|b| *b == 0) {
            Some(end) => {
                out.extend_from_slice(&chunk[..end]);
                break;
            }
            None => out.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The `qXfer:libraries-svr4:read` document: every link_map entry after
/// the main program's (gdb knows the program itself), or an empty list
/// before the dynamic linker ran.
pub fn libraries_svr4_xml(inferior: &Inferior) -> Result<String, DebugError> {
    let Some(r_debug) = r_debug_address(inferior)? else {
        return Ok("<library-list-svr4 version=\"1.0\"/>".into());
    };
    // struct r_debug { int r_version; struct link_map *r_map; ... }
    let first = inferior.read_u64(r_debug + 8)?;
    let mut xml = format!("<library-list-svr4 version=\"1.0\" main-lm=\"{first:#x}\">");
    // struct link_map { l_addr; char *l_name; l_ld; l_next; l_prev }
    let mut lm = if first == 0 {
        0
    } else {
        inferior.read_u64(first + 24)?
    };
    let mut count = 0;
    while lm != 0 && count < MAX_LIBRARIES {
        let l_addr = inferior.read_u64(lm)?;
        let l_name = inferior.read_u64(lm + 8)?;
        let l_ld = inferior.read_u64(lm + 16)?;
        let name = if l_name == 0 {
            String::new()
        } else {
            read_c_string(inferior, l_name)
        };
        xml.push_str(&format!(
            "<library name=\"{}\" lm=\"{lm:#x}\" l_addr=\"{l_addr:#x}\" l_ld=\"{l_ld:#x}\" lmid=\"0x0\"/>",
            xml_escape(&name)
        ));
        lm = inferior.read_u64(lm + 24)?;
        count += 1;
    }
    xml.push_str("</library-list-svr4>");
    Ok(xml)
}

/// Copies the part of `document` a qXfer read asks for into `buf`.
pub fn xfer_slice(document: &[u8], offset: u64, length: usize, buf: &mut [u8]) -> usize {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(document.len());
    let n = (document.len() - start).min(length).min(buf.len());
    buf[..n].copy_from_slice(&document[start..start + n]);
    n
}

//! Recording files: what `--record-to FILE` writes and `--replay FILE`
//! reads — the machine's shape, its state and memory when the recording
//! began, the log and the recorded length.
//!
//! Layout: magic `VMDBGREC`, format version (u32), reserved (u32), body
//! length (u64), CRC-32 of the body (u32), reserved (u32), then the body:
//! the JSON header's length (u64), the JSON header, the memory image. The
//! file is written to a temporary name and renamed into place; a file
//! with another magic, version, length or checksum is refused with one
//! line naming it.

use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::checkpoint::MachineState;
use super::log::Entry;
use super::Recorder;
use crate::boot::EntryMode;
use crate::error::{Error, Result};
use crate::snapshot::Framing;
use crate::vm::MachineShape;

pub const MAGIC: &[u8; 8] = b"VMDBGREC";
pub const FORMAT_VERSION: u32 = 1;

pub const FRAMING: Framing = Framing {
    magic: MAGIC,
    version: FORMAT_VERSION,
    kind: "recording",
    body: "body",
    max_body: u64::MAX,
};

#[derive(Serialize, Deserialize)]
pub struct Header {
    pub shape: MachineShape,
    pub boot_mode: EntryMode,
    pub boot_rip: u64,
    pub interval: u64,
    /// Instructions recorded.
    pub end: u64,
    pub first: MachineState,
    pub log: Vec<Entry>,
}

pub struct RecordingFile {
    pub header: Header,
    pub memory: Vec<u8>,
}

fn bad(path: &Path, why: impl Into<String>) -> Error {
    Error::RecordFile {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

/// Writes the recording `r` of a machine of `shape` to `path`, atomically.
pub fn save(
    path: &Path,
    r: &Recorder,
    shape: &MachineShape,
    boot: &crate::boot::BootEntry,
) -> Result<()> {
    let header = Header {
        shape: shape.clone(),
        boot_mode: boot.mode,
        boot_rip: boot.rip,
        interval: r.interval,
        end: r.end,
        first: r.first_state().clone(),
        log: r.log.clone(),
    };
    let json = serde_json::to_vec(&header).expect("recording header is plain data");
    let memory = r.initial_memory();
    let mut body = Vec::with_capacity(8 + json.len() + memory.len());
    body.extend_from_slice(&(json.len() as u64).to_le_bytes());
    body.extend_from_slice(&json);
    body.extend_from_slice(memory);
    let out = FRAMING.header(&body);
    let tmp = path.with_file_name(format!(
        "{}.tmp{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&out)?;
        f.write_all(&body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(bad(path, format!("writing: {e}")));
    }
    Ok(())
}

/// Reads and checks a recording file.
pub fn load(path: &Path) -> Result<RecordingFile> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| bad(path, format!("cannot read: {e}")))?;
    decode(path, bytes)
}

pub fn decode(path: &Path, bytes: Vec<u8>) -> Result<RecordingFile> {
    let body = FRAMING.body(&bytes).map_err(|why| bad(path, why))?;
    if body.len() < 8 {
        return Err(bad(path, "body too short for its header length"));
    }
    let json_len = u64::from_le_bytes(body[..8].try_into().expect("8"));
    if json_len > body.len() as u64 - 8 {
        return Err(bad(path, "header length runs past the end of the file"));
    }
    let json_end = 8 + json_len as usize;
    let header: Header = serde_json::from_slice(&body[8..json_end])
        .map_err(|e| bad(path, format!("unreadable header: {e}")))?;
    let memory = body[json_end..].to_vec();
    if memory.len() as u64 != header.shape.mem_bytes {
        return Err(bad(
            path,
            format!(
                "memory image of {} bytes for a machine of {} bytes",
                memory.len(),
                header.shape.mem_bytes
            ),
        ));
    }
    if !header.shape.recordable {
        return Err(bad(path, "its machine was not built for recording"));
    }
    check_log(&header).map_err(|why| bad(path, why))?;
    Ok(RecordingFile { header, memory })
}

/// A replay walks the log in step with the instruction count: entries out
/// of order or past the recorded end are not a log this VMM wrote.
fn check_log(header: &Header) -> std::result::Result<(), String> {
    let mut previous = 0;
    for (i, entry) in header.log.iter().enumerate() {
        if entry.icount < previous {
            return Err(format!(
                "log entry {i} is at instruction {}, before entry {}'s {previous}: the log is out of order",
                entry.icount,
                i - 1
            ));
        }
        if entry.icount > header.end {
            return Err(format!(
                "log entry {i} is at instruction {}, past the recording's end ({})",
                entry.icount, header.end
            ));
        }
        previous = entry.icount;
    }
    Ok(())
}

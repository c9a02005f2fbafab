//! Files in and out of the guest. Incoming files are written to a
//! temporary name beside the target and renamed into place only after
//! their size and SHA-256 match, so a broken transfer never leaves a
//! half-written file under the real name.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::Connection;
use crate::protocol::*;

/// A PutFile in progress.
pub(super) struct Incoming {
    request_id: u32,
    path: PathBuf,
    temp: PathBuf,
    file: Option<std::fs::File>,
    mode: u32,
    expected_size: u64,
    expected_sha256: [u8; 32],
    written: u64,
    hasher: Sha256,
    /// The first write error; reported at the close.
    failed: Option<AgentError>,
}

impl Incoming {
    pub(super) fn create(
        request_id: u32,
        path: &str,
        mode: u32,
        size: u64,
        sha256: [u8; 32],
    ) -> Result<Self, AgentError> {
        let path = PathBuf::from(path);
        if !path.is_absolute() {
            return Err(AgentError::new(
                ErrorKind::BadRequest,
                format!("put: {} is not an absolute path", path.display()),
            ));
        }
        let name = path.file_name().ok_or_else(|| {
            AgentError::new(
                ErrorKind::BadRequest,
                format!("put: {} names no file", path.display()),
            )
        })?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| AgentError::io(&format!("put: mkdir {}", parent.display()), &e))?;
        }
        let temp = path.with_file_name(format!(".{}.vmdbg-part", name.to_string_lossy()));
        let file = std::fs::File::create(&temp)
            .map_err(|e| AgentError::io(&format!("put: create {}", temp.display()), &e))?;
        Ok(Incoming {
            request_id,
            path,
            temp,
            file: Some(file),
            mode,
            expected_size: size,
            expected_sha256: sha256,
            written: 0,
            hasher: Sha256::new(),
            failed: None,
        })
    }

    pub(super) fn write(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        if let Some(file) = &mut self.file {
            if let Err(e) = file.write_all(bytes) {
                self.failed = Some(AgentError::io(
                    &format!("put: write {}", self.temp.display()),
                    &e,
                ));
            }
        }
    }

    /// Verifies and renames into place; returns the request id to answer.
    pub(super) fn finish(mut self) -> (u32, Result<Reply, AgentError>) {
        let id = self.request_id;
        let result = self.verify_and_rename();
        if result.is_err() {
            let _ = std::fs::remove_file(&self.temp);
        }
        (id, result)
    }

    fn verify_and_rename(&mut self) -> Result<Reply, AgentError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        if self.written != self.expected_size {
            return Err(AgentError::new(
                ErrorKind::Corrupt,
                format!(
                    "put {}: received {} bytes, expected {}",
                    self.path.display(),
                    self.written,
                    self.expected_size
                ),
            ));
        }
        let digest: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        if digest != self.expected_sha256 {
            return Err(AgentError::new(
                ErrorKind::Corrupt,
                format!("put {}: SHA-256 mismatch", self.path.display()),
            ));
        }
        let file = self.file.take().expect("file open until finish");
        file.set_permissions(std::fs::Permissions::from_mode(self.mode & 0o7777))
            .map_err(|e| AgentError::io("put: chmod", &e))?;
        drop(file);
        std::fs::rename(&self.temp, &self.path)
            .map_err(|e| AgentError::io(&format!("put: rename to {}", self.path.display()), &e))?;
        Ok(Reply::Done)
    }

    /// The connection ended mid-transfer.
    pub(super) fn abandon(self) {
        let _ = std::fs::remove_file(&self.temp);
    }
}

/// Sends a file's content on `stream`, then a close frame; the caller
/// sends the returned reply after that.
pub(super) fn send(conn: &Connection, path: &str, stream: u32) -> Result<Reply, AgentError> {
    let path = Path::new(path);
    let mut file = std::fs::File::open(path)
        .map_err(|e| AgentError::io(&format!("get {}", path.display()), &e))?;
    let meta = file
        .metadata()
        .map_err(|e| AgentError::io(&format!("get {}", path.display()), &e))?;
    if !meta.is_file() {
        return Err(AgentError::new(
            ErrorKind::BadRequest,
            format!("get {}: not a regular file", path.display()),
        ));
    }
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; DATA_CHUNK];
    let outcome = loop {
        match file.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                hasher.update(&buf[..n]);
                size += n as u64;
                if let Err(e) = conn.writer.send(&Frame::data(stream, buf[..n].to_vec())) {
                    break Err(AgentError::io("get: send", &e));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Err(AgentError::io(&format!("get: read {}", path.display()), &e)),
        }
    };
    let _ = conn.writer.send(&Frame::close(stream));
    outcome?;
    Ok(Reply::File {
        size,
        mode: meta.permissions().mode(),
        sha256: hasher.finalize().into(),
    })
}

//! A client of vmdbg-vmm's control API (`--api unix:PATH`), which speaks
//! Firecracker's HTTP/JSON shape: one short request per connection
//! (`Connection: close`), answered with a status and, on failure,
//! `{"fault_message": …}`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Snapshots of a Linux guest write its whole memory; give that time.
const REQUEST_LIMIT: Duration = Duration::from_secs(120);

pub struct ApiClient {
    socket: PathBuf,
}

impl ApiClient {
    pub fn new(socket: PathBuf) -> Self {
        ApiClient { socket }
    }

    /// Sends one request; returns the body of a 2xx answer (empty for 204).
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<String> {
        let what = format!("vmdbg-vmm's control API: {method} {path}");
        let mut stream = self
            .connect()
            .with_context(|| format!("{what}: connect to {}", self.socket.display()))?;
        stream.set_read_timeout(Some(REQUEST_LIMIT))?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .with_context(|| format!("{what}: send"))?;
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .with_context(|| format!("{what}: no answer"))?;
        let answer = String::from_utf8_lossy(&answer);
        let (head, body) = answer
            .split_once("\r\n\r\n")
            .with_context(|| format!("{what}: not an HTTP answer: {answer:?}"))?;
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("{what}: no status in {head:?}"))?;
        if !(200..300).contains(&status) {
            let fault = serde_json::from_str::<Value>(body)
                .ok()
                .and_then(|v| v.get("fault_message")?.as_str().map(str::to_string))
                .unwrap_or_else(|| body.trim().to_string());
            bail!("{what}: {status}: {fault}");
        }
        Ok(body.to_string())
    }

    /// The VMM binds its socket as it starts: a request made right after
    /// the start waits for it a little.
    fn connect(&self) -> std::io::Result<UnixStream> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match UnixStream::connect(&self.socket) {
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                    ) && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(10))
                }
                other => return other,
            }
        }
    }

    /// `GET /`'s `state`: "Running", "Paused" or "Not started".
    pub fn state(&self) -> Result<String> {
        let body = self.call("GET", "/", None)?;
        serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("state")?.as_str().map(str::to_string))
            .with_context(|| format!("vmdbg-vmm's control API: GET / answered {body:?}"))
    }

    pub fn set_state(&self, state: &str) -> Result<()> {
        self.call("PATCH", "/vm", Some(&serde_json::json!({ "state": state })))
            .map(drop)
    }

    pub fn create(&self, state: &Path, mem: &Path) -> Result<()> {
        self.call(
            "PUT",
            "/snapshot/create",
            Some(&serde_json::json!({
                "snapshot_type": "Full",
                "snapshot_path": state,
                "mem_file_path": mem,
            })),
        )
        .map(drop)
    }

    pub fn load(&self, state: &Path, mem: &Path) -> Result<()> {
        self.call(
            "PUT",
            "/snapshot/load",
            Some(&serde_json::json!({
                "snapshot_path": state,
                "mem_backend": { "backend_type": "File", "backend_path": mem },
                "resume_vm": false,
            })),
        )
        .map(drop)
    }

    /// A recording's (or replay's) position and end, in instructions
    /// (`GET /vmdbg/recording` on a stopped VM).
    pub fn recording(&self) -> Result<(u64, u64)> {
        let body = self.call("GET", "/vmdbg/recording", None)?;
        let v: Value = serde_json::from_str(&body).with_context(|| {
            format!("vmdbg-vmm's control API: GET /vmdbg/recording answered {body:?}")
        })?;
        match (v.get("icount").and_then(Value::as_u64), v.get("recorded").and_then(Value::as_u64)) {
            (Some(at), Some(end)) => Ok((at, end)),
            _ => bail!("vmdbg-vmm's control API: GET /vmdbg/recording answered {body:?} (is the VM stopped?)"),
        }
    }

    /// Saves the recording to `path` (the VM stopped).
    pub fn save_recording(&self, path: &Path) -> Result<()> {
        self.call(
            "PUT",
            "/vmdbg/recording",
            Some(&serde_json::json!({ "action": "save", "path": path })),
        )
        .map(drop)
    }

    /// Back to the snapshot last created or loaded, in place.
    pub fn reset(&self) -> Result<()> {
        self.call("PUT", "/vmdbg/reset", None).map(drop)
    }
}

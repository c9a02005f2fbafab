//! Launch and attach configurations, and starting the engine for a launch:
//! finding `vmdbg-vmm`, running it with a gdb socket in a private
//! directory, waiting until it listens, and streaming its serial console.

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::engine::kvm::find_vmm;
use crate::rsp::Endpoint;

/// A kernel launch (see schema/launch.schema.json).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaunchConfig {
    /// A vmlinux ELF, a bzImage, or "default" (the default image's kernel).
    pub kernel: PathBuf,
    /// An initramfs; with one (or `kernel: "default"`, or `engine`) the
    /// kernel boots through the engine interface ([`super::kernel`]).
    #[serde(default)]
    pub initrd: Option<PathBuf>,
    /// auto, kvm or qemu; default $VMDBG_ENGINE, else auto.
    #[serde(default)]
    pub engine: Option<crate::engine::EngineChoice>,
    /// Shell commands the agent runs in the guest once it is up.
    #[serde(default)]
    pub run: Vec<String>,
    /// DWARF path prefix → where those files are on this host.
    #[serde(default)]
    pub source_map: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub symbols: Option<PathBuf>,
    #[serde(default)]
    pub cmdline: Option<String>,
    #[serde(default)]
    pub mem: Option<String>,
    #[serde(default)]
    pub cpus: Option<u32>,
    #[serde(default)]
    pub stop_on_entry: bool,
    /// Record the kernel's run first, then debug its replay, backwards too
    /// (the QEMU engine's record/replay; see [`crate::engine::RecordSpec`]).
    #[serde(default)]
    pub record: bool,
    /// Seconds the recording may run at most; default 60.
    #[serde(default)]
    pub record_limit: Option<u32>,
    /// Path of vmdbg-vmm; else $VMDBG_VMM, next to `vmdbg`, then PATH.
    #[serde(default)]
    pub vmm: Option<PathBuf>,
}

impl LaunchConfig {
    pub fn is_default_kernel(&self) -> bool {
        self.kernel.as_os_str() == "default"
    }

    /// A `record` session's time limit.
    pub fn record_limit(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.record_limit.unwrap_or(60).into())
    }
}

/// An attach to any RSP endpoint.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachConfig {
    pub gdb_server: String,
    pub symbols: PathBuf,
    /// DWARF path prefix → where those files are on this host.
    #[serde(default)]
    pub source_map: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub stop_on_entry: Option<bool>,
}

/// A running vmdbg-vmm for one launch.
pub struct Engine {
    pub child: Child,
    pub endpoint: Endpoint,
    /// Everything vmdbg-vmm wrote to stderr (its fatal-exit report with the
    /// vCPU registers included), and whether stderr has closed.
    pub stderr_log: std::sync::Arc<std::sync::Mutex<(String, bool)>>,
    /// The guest serial port's input (vmdbg-vmm's stdin).
    pub console_in: Option<tokio::process::ChildStdin>,
    /// Holds the private directory of the gdb socket until the session ends.
    _dir: tempfile::TempDir,
}

/// Where the engine's console lines go.
pub type LineSink = tokio::sync::mpsc::UnboundedSender<(&'static str, String)>;

pub async fn start_engine(config: &LaunchConfig, console: LineSink) -> Result<Engine> {
    if !config.kernel.is_file() {
        bail!("kernel {} does not exist", config.kernel.display());
    }
    let vmm = find_vmm(config.vmm.as_deref())?;
    let dir = tempfile::Builder::new()
        .prefix("vmdbg-dap-")
        .tempdir()
        .context("cannot create a private directory for the gdb socket")?;
    let socket = dir.path().join("gdb.sock");
    let mut cmd = Command::new(&vmm);
    cmd.arg("--kernel")
        .arg(&config.kernel)
        .arg("--gdb")
        .arg(format!("unix:{}", socket.display()))
        .arg("--wait-gdb")
        // The serial port reads stdin too: the editor's console terminal
        // types into the guest through `vmdbg/consoleInput`.
        .arg("--serial")
        .arg("stdio")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    if let Some(mem) = &config.mem {
        cmd.arg("--mem").arg(mem);
    }
    if let Some(cpus) = config.cpus {
        cmd.arg("--cpus").arg(cpus.to_string());
    }
    if let Some(cmdline) = &config.cmdline {
        cmd.arg("--cmdline").arg(cmdline);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", vmm.display()))?;
    let console_in = child.stdin.take();
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let stderr = child.stderr.take().context("no stderr pipe")?;

    // Serial console: forwarded as it comes, in chunks (a guest may print a
    // prompt without a newline).
    let console_out = console.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut stdout = stdout;
        let mut buf = vec![0u8; 4096];
        let mut pending: Vec<u8> = Vec::new();
        loop {
            // The UART writes a byte at a time: gather bytes into lines, and
            // flush a partial line (a prompt) after a short quiet time.
            let read = if pending.is_empty() {
                stdout.read(&mut buf).await.ok()
            } else {
                match tokio::time::timeout(
                    std::time::Duration::from_millis(20),
                    stdout.read(&mut buf),
                )
                .await
                {
                    Ok(r) => r.ok(),
                    Err(_) => Some(usize::MAX),
                }
            };
            match read {
                Some(0) | None => break,
                Some(usize::MAX) => {}
                Some(n) => pending.extend_from_slice(&buf[..n]),
            }
            let cut = if read == Some(usize::MAX) {
                pending.len()
            } else {
                pending
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1)
            };
            if cut > 0 {
                let text = String::from_utf8_lossy(&pending[..cut]).into_owned();
                pending.drain(..cut);
                if console_out.send(("console", text)).is_err() {
                    return;
                }
            }
        }
        if !pending.is_empty() {
            let _ = console_out.send(("console", String::from_utf8_lossy(&pending).into_owned()));
        }
    });
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let stderr_log = std::sync::Arc::new(std::sync::Mutex::new((String::new(), false)));
    let log = stderr_log.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut ready = Some(ready_tx);
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("waiting for gdb") {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(());
                }
                continue;
            }
            if let Ok(mut log) = log.lock() {
                // Bounded: only the end (the exit report) matters.
                if log.0.len() > 64 * 1024 {
                    log.0.drain(..32 * 1024);
                }
                log.0.push_str(&line);
                log.0.push('\n');
            }
            let _ = console.send(("stderr", format!("{line}\n")));
        }
        if let Ok(mut log) = log.lock() {
            log.1 = true;
        }
    });
    tokio::select! {
        _ = ready_rx => {}
        status = child.wait() => {
            let status = status?;
            bail!("vmdbg-vmm ended before it listened for the debugger ({status}); its messages are in the debug console");
        }
        _ = tokio::time::sleep(std::time::Duration::from_secs(30)) => {
            bail!("vmdbg-vmm did not start listening within 30 s");
        }
    }
    Ok(Engine {
        child,
        endpoint: Endpoint::Unix(socket),
        stderr_log,
        console_in,
        _dir: dir,
    })
}

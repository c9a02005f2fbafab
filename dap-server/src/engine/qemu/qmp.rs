//! A minimal QMP client: one command at a time, events skipped; the human
//! monitor through it for the commands QMP lacks (`savevm`, `loadvm`).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use anyhow::{bail, Context, Result};

pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Reads the greeting and enters command mode.
    pub fn handshake(stream: UnixStream) -> Result<Self> {
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            bail!("QMP greeting expected, got {greeting}");
        }
        qmp.execute("qmp_capabilities")?;
        Ok(qmp)
    }

    fn read_message(&mut self) -> Result<serde_json::Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).context("read from QMP")? == 0 {
            bail!("QEMU closed its QMP socket");
        }
        serde_json::from_str(&line)
            .with_context(|| format!("QMP sent something that is not JSON: {line:?}"))
    }

    pub fn execute(&mut self, command: &str) -> Result<()> {
        self.execute_with(command, serde_json::json!({})).map(drop)
    }

    /// Runs a command with arguments; returns what it returned.
    pub fn execute_with(
        &mut self,
        command: &str,
        arguments: serde_json::Value,
    ) -> Result<serde_json::Value> {
        writeln!(
            self.writer,
            "{}",
            serde_json::json!({ "execute": command, "arguments": arguments })
        )
        .context("write to QMP")?;
        loop {
            let mut message = self.read_message()?;
            if let Some(value) = message.get_mut("return") {
                return Ok(value.take());
            }
            if let Some(error) = message.get("error") {
                bail!("QMP {command}: {error}");
            }
            // An asynchronous event (STOP, RESUME, SHUTDOWN…): not ours.
        }
    }
}

impl Qmp {
    /// A human-monitor command; its output is its error, if any (`savevm`
    /// and `loadvm` print only on failure).
    pub fn human(&mut self, command_line: &str) -> Result<()> {
        let output = self.execute_with(
            "human-monitor-command",
            serde_json::json!({ "command-line": command_line }),
        )?;
        let text = output.as_str().unwrap_or_default().trim();
        if !text.is_empty() {
            bail!("QEMU's `{command_line}` said: {text}");
        }
        Ok(())
    }
}

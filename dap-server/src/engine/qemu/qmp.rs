//! A minimal QMP client: one command at a time, events skipped.

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
        writeln!(self.writer, "{}", serde_json::json!({ "execute": command }))
            .context("write to QMP")?;
        loop {
            let message = self.read_message()?;
            if message.get("return").is_some() {
                return Ok(());
            }
            if let Some(error) = message.get("error") {
                bail!("QMP {command}: {error}");
            }
            // An asynchronous event (STOP, RESUME, SHUTDOWN…): not ours.
        }
    }
}

//! The serial console of a kernel alone under the KVM engine: vmdbg-vmm
//! serves COM1 on a unix socket (`--serial unix:PATH`, which it waits on
//! before it boots), and this end copies what the guest writes into the
//! VM's `console.log` — the console stream every engine has — and writes
//! what the user types into the socket, the guest's input.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::engine::process::VmProcess;

pub struct SerialPump {
    input: UnixStream,
    copier: Option<JoinHandle<()>>,
}

impl SerialPump {
    /// Connects to the VMM's serial socket (it appears once the VMM is up)
    /// and starts copying its output to `log`.
    pub fn connect(socket: &Path, log: &Path, process: &mut VmProcess) -> Result<Self> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(stream) => break stream,
                Err(_) if Instant::now() < deadline && process.try_exit().is_none() => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                // A VMM that ended before its socket appeared has said why
                // (a kernel that is not an ELF, no /dev/kvm …): that leads.
                Err(e) if process.try_exit().is_some() => {
                    let words = process.last_words(Duration::from_millis(500));
                    if words.trim().is_empty() {
                        bail!(
                            "vmdbg-vmm ended before it opened its serial socket {} ({e}) and said nothing",
                            socket.display()
                        );
                    }
                    bail!("{}", words.trim())
                }
                Err(e) => bail!(
                    "vmdbg-vmm did not open its serial socket {} ({e}); it said:\n{}",
                    socket.display(),
                    process.last_words(Duration::from_millis(500))
                ),
            }
        };
        let mut file = std::fs::File::create(log)
            .with_context(|| format!("create the console log {}", log.display()))?;
        let mut output = stream.try_clone()?;
        let copier = std::thread::Builder::new()
            .name("serial-console".into())
            .spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = output.read(&mut buf) {
                    if file.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            })?;
        Ok(SerialPump {
            input: stream,
            copier: Some(copier),
        })
    }

    /// Once the VMM has ended: waits until everything it wrote is in the
    /// log.
    pub fn finish(&mut self) {
        if let Some(copier) = self.copier.take() {
            let _ = copier.join();
        }
    }
}

impl crate::engine::ConsoleInput for SerialPump {
    fn type_in(&mut self, bytes: &[u8]) -> Result<()> {
        self.input
            .write_all(bytes)
            .context("the guest's serial console is closed")
    }
}

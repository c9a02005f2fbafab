//! The 16550 UART at COM1 (vm-superio), its interrupt line, where its
//! output goes and where its input comes from.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use super::{IoAction, Persist, PioDevice};
use crate::error::{Error, Result};

pub const COM1_PORT: u16 = 0x3f8;
pub const COM1_LEN: u16 = 8;
pub const COM1_IRQ: u32 = 4;

/// Where the guest's serial output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SerialTarget {
    Stdout,
    /// Output to stdout, input from stdin (line by line, as the terminal
    /// delivers it).
    Stdio,
    File(PathBuf),
    /// A unix socket the VMM listens on; it waits for one client to connect.
    /// What the client writes is the guest's input.
    Unix(PathBuf),
    None,
}

impl std::str::FromStr for SerialTarget {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "stdout" => Ok(Self::Stdout),
            "stdio" => Ok(Self::Stdio),
            "none" | "null" => Ok(Self::None),
            _ => match s.split_once(':') {
                Some(("file", p)) if !p.is_empty() => Ok(Self::File(p.into())),
                Some(("unix", p)) if !p.is_empty() => Ok(Self::Unix(p.into())),
                _ => Err(format!(
                    "`{s}` is not a serial target: use stdout, stdio, none, file:PATH or unix:PATH"
                )),
            },
        }
    }
}

impl SerialTarget {
    /// Opens the output, and the input if the target has one.
    pub fn open(&self) -> Result<SerialEnds> {
        let err = |source| Error::Serial {
            target: format!("{self:?}"),
            source,
        };
        if let Self::Unix(p) = self {
            let _ = std::fs::remove_file(p);
            let listener = vmdbg_gdb_common::listen::bind_unix_owner_only(p).map_err(err)?;
            eprintln!(
                "vmdbg-vmm: waiting for a client on serial socket {}",
                p.display()
            );
            let (stream, _) = listener.accept().map_err(err)?;
            let input = stream.try_clone().map_err(err)?;
            return Ok((Box::new(stream), Some(Box::new(input))));
        }
        if let Self::Stdio = self {
            return Ok((Box::new(FlushingStdout), Some(Box::new(std::io::stdin()))));
        }
        let output: Box<dyn Write + Send> = match self {
            Self::Stdout | Self::Stdio => Box::new(FlushingStdout),
            Self::None => Box::new(std::io::sink()),
            Self::File(p) => Box::new(std::fs::File::create(p).map_err(err)?),
            Self::Unix(_) => unreachable!("handled above"),
        };
        Ok((output, None))
    }
}

/// The UART's output and, for targets that have one, its input.
pub type SerialEnds = (Box<dyn Write + Send>, Option<Box<dyn Read + Send>>);

/// Guest output reaches the terminal as it is written, not when a line
/// buffer fills, so it interleaves correctly with a debugger's output.
struct FlushingStdout;

impl Write for FlushingStdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut out = std::io::stdout().lock();
        out.write_all(buf)?;
        out.flush()?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

/// Raises the UART's IRQ line through a KVM irqfd.
pub struct IrqLine(pub EventFd);

impl Trigger for IrqLine {
    type E = std::io::Error;

    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}

pub struct SerialDevice {
    uart: Serial<IrqLine, vm_superio::serial::NoEvents, Box<dyn Write + Send>>,
}

impl SerialDevice {
    pub fn new(irq: EventFd, out: Box<dyn Write + Send>) -> Self {
        Self {
            uart: Serial::new(IrqLine(irq), out),
        }
    }

    /// Puts as much of `bytes` into the receive FIFO as fits; how much.
    pub fn enqueue(&mut self, bytes: &[u8]) -> usize {
        self.uart.enqueue_raw_bytes(bytes).unwrap_or(0)
    }

    pub fn fifo_room(&self) -> usize {
        self.uart.fifo_capacity()
    }
}

/// Where the host's serial input goes.
pub enum InputSink {
    /// Straight into the UART's FIFO, as it arrives.
    Uart(Arc<Mutex<SerialDevice>>),
    /// Into a queue that a recording drains at instruction boundaries it
    /// logs ([`crate::record`]), so a replay delivers it at the same one.
    Queue(Arc<Mutex<std::collections::VecDeque<u8>>>),
}

/// Output that a replay silences: the guest re-executes its writes, and
/// the user saw them when they were recorded.
pub struct Mutable {
    pub out: Box<dyn Write + Send>,
    pub muted: Arc<std::sync::atomic::AtomicBool>,
}

impl Write for Mutable {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.muted.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(buf.len());
        }
        self.out.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl PioDevice for SerialDevice {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        if let Some(first) = data.first_mut() {
            *first = self.uart.read(offset as u8);
        }
    }

    fn write(&mut self, offset: u16, data: &[u8]) -> IoAction {
        if let Some(&value) = data.first() {
            // A failed write to the output (a closed socket, a full disk)
            // loses that output, not the VM.
            if let Err(e) = self.uart.write(offset as u8, value) {
                tracing::debug!("serial write: {e:?}");
            }
        }
        IoAction::None
    }
}

/// Feeds the guest's input from `input` into the UART as its receive FIFO
/// has room, until the input ends.
pub fn spawn_input(
    sink: InputSink,
    mut input: Box<dyn Read + Send>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("serial-input".into())
        .spawn(move || {
            crate::seccomp::install(crate::seccomp::Kind::SerialInput);
            let mut buf = [0u8; 64];
            let uart = match sink {
                InputSink::Uart(uart) => uart,
                InputSink::Queue(queue) => {
                    while let Ok(n @ 1..) = input.read(&mut buf) {
                        super::lock_device(&queue).extend(&buf[..n]);
                    }
                    return;
                }
            };
            while let Ok(n @ 1..) = input.read(&mut buf) {
                let mut pending = &buf[..n];
                while !pending.is_empty() {
                    let taken = {
                        let mut dev = uart.lock().unwrap_or_else(|p| p.into_inner());
                        dev.uart.enqueue_raw_bytes(pending).unwrap_or(0)
                    };
                    pending = &pending[taken..];
                    if taken == 0 {
                        // The guest has not drained its FIFO yet.
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                }
            }
        })
}

/// The UART's registers and receive FIFO (vm-superio's `SerialState`,
/// which has no serde of its own).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SerialSnapshot {
    pub baud_divisor_low: u8,
    pub baud_divisor_high: u8,
    pub interrupt_enable: u8,
    pub interrupt_identification: u8,
    pub line_control: u8,
    pub line_status: u8,
    pub modem_control: u8,
    pub modem_status: u8,
    pub scratch: u8,
    pub in_buffer: Vec<u8>,
}

impl Persist for SerialDevice {
    type State = SerialSnapshot;

    fn save(&self) -> SerialSnapshot {
        let s = self.uart.state();
        SerialSnapshot {
            baud_divisor_low: s.baud_divisor_low,
            baud_divisor_high: s.baud_divisor_high,
            interrupt_enable: s.interrupt_enable,
            interrupt_identification: s.interrupt_identification,
            line_control: s.line_control,
            line_status: s.line_status,
            modem_control: s.modem_control,
            modem_status: s.modem_status,
            scratch: s.scratch,
            in_buffer: s.in_buffer,
        }
    }

    /// Keeps this UART's output and interrupt line; takes the registers
    /// and FIFO from `state`.
    fn restore(&mut self, state: &SerialSnapshot) -> std::result::Result<(), String> {
        let s = vm_superio::serial::SerialState {
            baud_divisor_low: state.baud_divisor_low,
            baud_divisor_high: state.baud_divisor_high,
            interrupt_enable: state.interrupt_enable,
            interrupt_identification: state.interrupt_identification,
            line_control: state.line_control,
            line_status: state.line_status,
            modem_control: state.modem_control,
            modem_status: state.modem_status,
            scratch: state.scratch,
            in_buffer: state.in_buffer.clone(),
        };
        let irq = self
            .uart
            .interrupt_evt()
            .0
            .try_clone()
            .map_err(|e| format!("serial: cloning its interrupt line: {e}"))?;
        let spare_irq = irq
            .try_clone()
            .map_err(|e| format!("serial: cloning its interrupt line: {e}"))?;
        let old = std::mem::replace(
            &mut self.uart,
            Serial::new(IrqLine(spare_irq), Box::new(std::io::sink())),
        );
        let out = old.into_writer();
        match Serial::from_state(&s, IrqLine(irq), vm_superio::serial::NoEvents, out) {
            Ok(uart) => {
                self.uart = uart;
                Ok(())
            }
            // Only an over-long FIFO fails, and then the output is lost
            // with the failed UART; the checksum makes this unreachable
            // from a file this VMM wrote.
            Err(e) => Err(format!("serial: {e:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert_eq!("stdout".parse(), Ok(SerialTarget::Stdout));
        assert_eq!("stdio".parse(), Ok(SerialTarget::Stdio));
        assert_eq!(
            "file:/tmp/x".parse(),
            Ok(SerialTarget::File("/tmp/x".into()))
        );
        assert_eq!(
            "unix:/tmp/s".parse(),
            Ok(SerialTarget::Unix("/tmp/s".into()))
        );
        assert!("tcp:1"
            .parse::<SerialTarget>()
            .unwrap_err()
            .contains("unix:PATH"));
    }
}

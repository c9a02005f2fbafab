//! `vmdbg gdb-forward --port N [VM options] -- PROGRAM ARGS…`: a plain gdb
//! (or lldb) debugs a program inside a fresh Linux VM.
//!
//! It boots a VM the way `vmdbg run` does (engine, image, `--copy`; the
//! shared pieces live in `crate::run`), copies PROGRAM in at the same
//! absolute path as on this host with its shared-library closure (so the
//! paths gdb sees in the library list and the exec file are the host's),
//! starts it under the agent's debugger stopped at its first instruction,
//! and listens on 127.0.0.1:N — loopback only. The one gdb connection it
//! accepts is forwarded byte for byte to the agent's `gdbserver` channel:
//! `gdb PROGRAM -ex 'target remote :N'`. The program's stdout and stderr
//! come out on vmdbg's.
//!
//! When gdb kills or detaches from the program, or the program ends, the
//! VM is shut down and vmdbg exits with the program's status (128 + N for
//! a signal N; the agent reports it on a status channel, also after a
//! detach). Ctrl-C (or SIGTERM/SIGHUP) ends the VM at once, status 130.
//!
//! This module never interprets RSP: it forwards it.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::engine::Vm;
use crate::guest::debuggee::{self, Ended};
use crate::guest::{self, VmArgs};

#[derive(clap::Args, Debug)]
pub struct GdbForwardArgs {
    /// Listen for gdb on 127.0.0.1:PORT (loopback only); 0 picks a free
    /// port, which the "listening" line names.
    #[arg(long, value_name = "PORT")]
    pub port: u16,
    #[command(flatten)]
    pub vm: VmArgs,
    /// Working directory of the program in the guest.
    #[arg(long, default_value = "/root")]
    pub cwd: String,
    /// The program (a file on this host, copied into the guest at the
    /// same path with its shared libraries) and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "PROGRAM ARGS")]
    pub command: Vec<String>,
}

pub fn main(args: GdbForwardArgs) -> Result<ExitCode> {
    let interrupts = guest::interrupt_counter()?;
    let program = PathBuf::from(&args.command[0]);
    if !program.is_file() {
        bail!(
            "the program {} is not a file on this host: give the path of a program built here after `--` (it is copied into the guest)",
            program.display()
        );
    }
    let program = program
        .canonicalize()
        .with_context(|| format!("cannot resolve the path of {}", program.display()))?;
    let guest_path = program
        .to_str()
        .with_context(|| format!("the program path {} is not UTF-8", program.display()))?
        .to_string();
    if guest_path.contains(':') {
        bail!("the program path {guest_path} contains `:`, which --copy cannot express; move or link the program elsewhere");
    }
    // Listen first: a port in use is an error before any boot.
    let listener = TcpListener::bind(("127.0.0.1", args.port)).with_context(|| {
        format!(
            "--port {}: cannot listen on 127.0.0.1:{} (in use? give another port, or 0 for any free one)",
            args.port, args.port
        )
    })?;
    let port = listener.local_addr()?.port();

    let (engine, spec, copies) = guest::prepare(&args.vm, &[format!("{guest_path}:{guest_path}")])?;
    let Some(mut vm) = guest::boot(engine.as_ref(), &spec, &interrupts)? else {
        return Ok(ExitCode::from(130));
    };
    let result = serve(
        &args,
        &guest_path,
        port,
        listener,
        vm.as_mut(),
        &copies,
        &interrupts,
    );
    let vm_exit = vm.shutdown(Duration::from_secs(3));
    match result {
        Ok(Outcome::Ended(ended)) => {
            if let Ended::Signal(signal) = ended {
                eprintln!("vmdbg: the program was killed by signal {signal}");
            }
            Ok(ExitCode::from(ended.shell_code().clamp(0, 255) as u8))
        }
        Ok(Outcome::Interrupted) => {
            eprintln!("vmdbg: interrupted; the VM is shut down");
            Ok(ExitCode::from(130))
        }
        Err(e) => {
            let vm_said = vm_exit
                .map(|exit| format!(" (VM {exit})"))
                .unwrap_or_default();
            Err(e.context(format!("gdb-forward{vm_said}")))
        }
    }
}

enum Outcome {
    Ended(Ended),
    Interrupted,
}

fn serve(
    args: &GdbForwardArgs,
    guest_path: &str,
    port: u16,
    listener: TcpListener,
    vm: &mut dyn Vm,
    copies: &guest::copy::CopyPlan,
    interrupts: &AtomicUsize,
) -> Result<Outcome> {
    let agent = vm.agent().clone();
    agent.hello().context("agent hello")?;
    guest::copy_in(&agent, copies)?;
    let env = guest::guest_env(copies);
    let mut argv = vec![guest_path.to_string()];
    argv.extend(args.command[1..].iter().cloned());
    let channels = debuggee::start(
        &agent,
        &debuggee::Debuggee {
            argv: &argv,
            env: &env,
            cwd: &args.cwd,
            want_status: true,
        },
    )
    .context("the guest's agent cannot debug programs")?;
    let out_done = relay(channels.stdout, std::io::stdout(), None);
    let (head_tx, head_rx) = mpsc::channel();
    let err_done = relay(channels.stderr, std::io::stderr(), Some(head_tx));
    let status = read_status(channels.status.context("no status channel")?);
    let rsp = channels.rsp;

    eprintln!("vmdbg: listening on 127.0.0.1:{port}; in gdb: target remote :{port}");
    listener.set_nonblocking(true)?;
    let interrupted = || interrupts.load(Ordering::SeqCst) > 0;
    // Wait for gdb (or for the program's start to fail). A connection that
    // closes without a byte (a port probe) is not a debugger: the program
    // stays for the next one.
    let (connection, first) = loop {
        if interrupted() {
            return Ok(Outcome::Interrupted);
        }
        if let Ok(line) = head_rx.try_recv() {
            if line.starts_with("vmdbg-agent: ") {
                let _ = err_done.recv_timeout(Duration::from_secs(2));
                bail!(
                    "the guest could not start {guest_path}: {}",
                    line.trim_start_matches("vmdbg-agent: ").trim()
                );
            }
        }
        if let Some(exit) = vm.try_exit() {
            bail!("the VM ended before a debugger connected ({exit})");
        }
        match listener.accept() {
            Ok((stream, peer)) => {
                stream.set_nonblocking(false)?;
                match first_bytes(&stream, &interrupted)? {
                    Some(first) => {
                        tracing::info!("debugger connected from {peer}");
                        break (stream, first);
                    }
                    None if interrupted() => return Ok(Outcome::Interrupted),
                    None => tracing::info!("{peer} closed its connection without a word"),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e).context("accept a debugger connection"),
        }
    };
    // One debugger per program: later connections are refused.
    drop(listener);
    let _ = connection.set_nodelay(true);
    (&rsp)
        .write_all(&first)
        .context("the guest's debugger channel closed")?;
    forward(connection, rsp)?;

    // Until the program's status: gdb may have detached and let it run on.
    // The status channel closes without a line only if the agent is lost.
    let ended = loop {
        if interrupted() {
            return Ok(Outcome::Interrupted);
        }
        match status.recv_timeout(Duration::from_millis(50)) {
            Ok(Some(ended)) => break ended,
            Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                bail!("the guest's agent did not say how {guest_path} ended")
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some(exit) = vm.try_exit() {
            bail!("the VM ended while {guest_path} ran ({exit})");
        }
    };
    // Output before the status line of the shell.
    for done in [out_done, err_done] {
        let _ = done.recv_timeout(Duration::from_secs(5));
    }
    Ok(Outcome::Ended(ended))
}

/// The first bytes a new connection sends; None if it closes first (or
/// vmdbg is interrupted while waiting).
fn first_bytes(stream: &TcpStream, interrupted: &dyn Fn() -> bool) -> Result<Option<Vec<u8>>> {
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut buf = vec![0u8; 4096];
    let result = loop {
        if interrupted() {
            break None;
        }
        match (&*stream).read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => break Some(buf[..n].to_vec()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => break None,
        }
    };
    stream.set_read_timeout(None)?;
    Ok(result)
}

/// Forwards the debugger's connection and the agent's RSP channel to each
/// other (two threads) until either side closes.
fn forward(tcp: TcpStream, rsp: UnixStream) -> Result<()> {
    let tcp_in = tcp.try_clone()?;
    let rsp_out = rsp.try_clone()?;
    std::thread::spawn(move || {
        // gdb -> the guest's debugger. gdb gone: the debugger sees end of
        // file (and kills a program gdb neither killed nor detached).
        let _ = copy(tcp_in, &rsp_out);
        let _ = rsp_out.shutdown(Shutdown::Write);
    });
    std::thread::spawn(move || {
        // The guest's debugger -> gdb. It closes when its session is over.
        let _ = copy(rsp, &tcp);
        let _ = tcp.shutdown(Shutdown::Both);
    });
    Ok(())
}

fn copy(mut from: impl Read, mut to: impl Write) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
    }
}

/// Copies a program output stream to `out`; the receiver fires at its end.
/// `head` gets the stream's first line (the agent's launch error, if any).
fn relay(
    mut stream: UnixStream,
    mut out: impl Write + Send + 'static,
    head: Option<mpsc::Sender<String>>,
) -> mpsc::Receiver<()> {
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        let mut head = head;
        let mut first_line = Vec::new();
        loop {
            let n = match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if head.is_some() {
                first_line.extend_from_slice(&buf[..n]);
                if first_line.contains(&b'\n') || first_line.len() >= 4096 {
                    if let Some(tx) = head.take() {
                        let _ = tx.send(String::from_utf8_lossy(&first_line).into_owned());
                    }
                }
            }
            if out.write_all(&buf[..n]).and_then(|_| out.flush()).is_err() {
                break;
            }
        }
        if let Some(tx) = head {
            let _ = tx.send(String::from_utf8_lossy(&first_line).into_owned());
        }
        let _ = done_tx.send(());
    });
    done_rx
}

/// Reads the status channel's one line: Some(how it ended), or None if
/// the channel closed without one.
fn read_status(mut stream: UnixStream) -> mpsc::Receiver<Option<Ended>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        let _ = tx.send(Ended::parse(&text));
    });
    rx
}

//! `vmdbg run`: boots a fresh VM (default image or `--kernel/--initrd`),
//! copies files in, runs a command through the agent, streams its output
//! and exits with its status (128 + N when a signal N ended it).
//!
//! Ctrl-C (or SIGTERM/SIGHUP) first interrupts the guest command (SIGINT
//! to its process group, SIGKILL if it is still there after 2 s), then ends
//! the VM; nothing is left behind (the engine removes its sockets).
//!
//! This module is the command only: it drives an
//! [`engine::Vm`](crate::engine::Vm) that [`crate::guest`] starts, and
//! never branches on which engine it is.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use vmdbg_agent::client::{Chunk, ClientError, ExecOptions};
use vmdbg_agent::protocol::{ExitStatus, Reply, StdioMode};

use crate::engine::{self, VmExit};
use crate::guest::{self, warm, VmArgs};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub vm: VmArgs,
    /// After the command ends, copy a guest file to the host (default:
    /// ./<name>), verified by SHA-256. Repeatable.
    #[arg(long = "copy-out", value_name = "GUESTPATH[:HOSTPATH]")]
    pub copy_outs: Vec<String>,
    /// Run the command on a pseudo-terminal (stdout and stderr merged).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Working directory of the command in the guest.
    #[arg(long, default_value = "/root")]
    pub cwd: String,
    /// Print how long each phase took (boot, copy, command) on stderr.
    #[arg(long)]
    pub timings: bool,
    /// Boot the guest instead of starting it from the saved state of an
    /// earlier boot of the same image (engines that can save one).
    #[arg(long)]
    pub cold: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

pub fn main(args: RunArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let interrupts = guest::interrupt_counter()?;
    let (engine, spec, copies) = guest::prepare(&args.vm, &[])?;
    let t_boot = Instant::now();
    let booted = if args.cold {
        guest::boot(engine.as_ref(), &spec, &interrupts)?
    } else {
        warm::boot(engine.as_ref(), &spec, &interrupts)?
    };
    let Some(mut vm) = booted else {
        return Ok(ExitCode::from(130));
    };
    let agent = vm.agent().clone();
    let info = agent.hello().context("agent hello")?;
    let t_ready = Instant::now();
    tracing::info!(
        "agent {} (protocol {}) on kernel {}",
        info.agent_version,
        info.version,
        info.kernel
    );

    guest::copy_in(&agent, &copies)?;
    let t_copied = Instant::now();

    let mut options = ExecOptions::new(args.command.iter().cloned());
    options.cwd = Some(args.cwd.clone());
    options.stdin = true;
    options.env.extend(guest::guest_env(&copies));
    if args.tty {
        let (rows, cols) = terminal_size();
        options.stdio = StdioMode::Pty { rows, cols };
        options.env.push((
            "TERM".into(),
            std::env::var("TERM").unwrap_or_else(|_| "xterm".into()),
        ));
    }
    let program = match agent.exec(&options) {
        Ok(p) => p,
        Err(ClientError::Agent(e)) => {
            vm.shutdown(Duration::from_secs(2))?;
            bail!("the guest cannot run {}: {}", args.command[0], e.message);
        }
        Err(e) => return Err(e.into()),
    };
    let out_thread = relay(program.stdout, std::io::stdout());
    let err_thread = relay(program.stderr, std::io::stderr());
    if let Some(stdin) = program.stdin {
        // Host stdin to the program; a thread that may stay blocked in
        // read() until the process exits, which is harmless.
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 32 * 1024];
            let mut input = std::io::stdin();
            while let Ok(n @ 1..) = input.read(&mut buf) {
                if stdin.send(&buf[..n]).is_err() {
                    return;
                }
            }
            let _ = stdin.close();
        });
    }

    let pending = agent.wait_request(program.pid)?;
    let mut interrupted_at: Option<Instant> = None;
    let mut killed = false;
    let outcome: Result<ExitStatus, String> = loop {
        if let Some(reply) = pending.wait_timeout(Duration::from_millis(50)) {
            break match reply {
                Ok(Reply::Exited(status)) => Ok(status),
                Ok(other) => Err(format!("unexpected reply {other:?}")),
                Err(e) => Err(e.to_string()),
            };
        }
        if interrupts.load(Ordering::SeqCst) > 0 {
            match interrupted_at {
                None => {
                    interrupted_at = Some(Instant::now());
                    let _ = agent.signal(program.pid, libc::SIGINT, true);
                }
                Some(at)
                    if !killed
                        && (at.elapsed() > Duration::from_secs(2)
                            || interrupts.load(Ordering::SeqCst) > 1) =>
                {
                    killed = true;
                    let _ = agent.signal(program.pid, libc::SIGKILL, true);
                }
                Some(at) if at.elapsed() > Duration::from_secs(5) => {
                    break Err("the guest command did not end after SIGKILL".into())
                }
                _ => {}
            }
        }
        if let Some(exit) = vm.try_exit() {
            break Err(format!("the VM ended ({exit})"));
        }
    };
    let t_done = Instant::now();
    // Output before the status: the agent sends it first; wait for the
    // relays to write it out (bounded, in case the VM went away).
    for relay in [out_thread, err_thread] {
        let _ = relay.recv_timeout(Duration::from_secs(5));
    }
    let copied_out = if outcome.is_ok() {
        copy_out(&agent, &args.copy_outs)
    } else {
        Ok(())
    };
    let t_copied_out = Instant::now();
    let vm_exit = vm.shutdown(Duration::from_secs(3))?;
    copied_out?;
    if args.timings {
        eprintln!(
            "vmdbg: timings ({}, {}): engine+image {:.3}s, boot to agent ready {:.3}s, copy {:.3}s, command {:.3}s, copy-out {:.3}s, shutdown {:.3}s, total {:.3}s",
            vm.describe(),
            spec.image.describe,
            (t_boot - started).as_secs_f64(),
            (t_ready - t_boot).as_secs_f64(),
            (t_copied - t_ready).as_secs_f64(),
            (t_done - t_copied).as_secs_f64(),
            (t_copied_out - t_done).as_secs_f64(),
            t_copied_out.elapsed().as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
    }
    match outcome {
        Ok(status) => {
            if let ExitStatus::Signal(sig) = status {
                eprintln!("vmdbg: the guest command was killed by signal {sig}");
            }
            Ok(ExitCode::from(status.shell_code().clamp(0, 255) as u8))
        }
        // The command powered the guest off (or rebooted it): the VM's
        // own status tells whether that was clean.
        Err(why) if vm_exit == VmExit::Code(0) && interrupted_at.is_none() => {
            eprintln!("vmdbg: the guest powered off before the command's status came ({why})");
            Ok(ExitCode::SUCCESS)
        }
        Err(why) if interrupted_at.is_some() => {
            eprintln!("vmdbg: interrupted ({why})");
            Ok(ExitCode::from(130))
        }
        Err(why) => bail!(
            "lost the guest command: {why} (VM {vm_exit}){}",
            engine::console_tail(vm.console_log())
        ),
    }
}

fn copy_out(agent: &vmdbg_agent::client::AgentClient, specs: &[String]) -> Result<()> {
    for spec in specs {
        let (guest, host) = match spec.split_once(':') {
            Some((g, h)) => (g.to_string(), PathBuf::from(h)),
            None => {
                let name = std::path::Path::new(spec)
                    .file_name()
                    .with_context(|| format!("--copy-out {spec}: names no file"))?;
                (spec.clone(), PathBuf::from(name))
            }
        };
        agent.get_file(&guest, &host).with_context(|| {
            format!(
                "--copy-out {spec}: copy the guest's {guest} to {}",
                host.display()
            )
        })?;
    }
    Ok(())
}

/// Writes a stream's chunks to `out`; the receiver fires when it is done.
fn relay(
    chunks: mpsc::Receiver<Chunk>,
    mut out: impl Write + Send + 'static,
) -> mpsc::Receiver<()> {
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        while let Ok(Chunk::Data(bytes)) = chunks.recv() {
            if out.write_all(&bytes).and_then(|_| out.flush()).is_err() {
                break;
            }
        }
        let _ = done_tx.send(());
    });
    done_rx
}

fn terminal_size() -> (u16, u16) {
    if std::io::stdout().is_terminal() {
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ fills the winsize we pass.
        if unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_row > 0 {
            return (ws.ws_row, ws.ws_col);
        }
    }
    (24, 80)
}

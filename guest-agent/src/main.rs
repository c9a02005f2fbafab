//! `vmdbg-agent`: started by the guest's init; also usable by hand.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// vmdbg's in-guest agent.
#[derive(Parser, Debug)]
#[command(name = "vmdbg-agent", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the host over the agent protocol (what the image's init runs).
    Serve(ServeArgs),
    /// Run PROGRAM under the process debugger and serve one gdb or lldb
    /// (`target remote`), like gdbserver.
    Gdbserver(GdbserverArgs),
}

#[derive(clap::Args, Debug)]
struct GdbserverArgs {
    /// HOST:PORT (port 0 picks a free one, printed on stderr) or unix:PATH.
    #[arg(long, default_value = "127.0.0.1:2345")]
    listen: vmdbg_agent::debugger::gdbserver::Listen,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true)]
    program: Vec<std::ffi::OsString>,
}

/// Exits with the debugged program's status (128 + signal when killed).
fn gdbserver(args: GdbserverArgs) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match vmdbg_agent::debugger::gdbserver::run(&args.listen, args.program) {
        Ok(status) => {
            let code = status
                .code()
                .or(status.signal().map(|s| 128 + s))
                .unwrap_or(1);
            ExitCode::from(code as u8)
        }
        Err(e) => {
            eprintln!("vmdbg-agent gdbserver: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// A virtio-serial port by its name (QEMU `virtserialport,name=...`);
    /// the default unless --vsock, --stdio or `vmdbg.agent=vsock:PORT` on
    /// the kernel command line says otherwise.
    #[arg(long, default_value = "org.vmdbg.agent.0", conflicts_with_all = ["vsock", "stdio"])]
    virtio_port: String,
    /// Listen on this vsock port instead (the embedded VMM).
    #[arg(long)]
    vsock: Option<u32>,
    /// Serve one connection on stdin/stdout instead (tests, by hand).
    #[arg(long)]
    stdio: bool,
}

fn serve(args: ServeArgs) -> ExitCode {
    use vmdbg_agent::agent::{self, transport};
    if args.stdio {
        return match agent::serve(std::io::stdin(), std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("vmdbg-agent: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // The engine may choose the transport on the kernel command line
    // (`vmdbg.agent=vsock:1024`), so one image serves every engine.
    let from_cmdline = std::fs::read_to_string("/proc/cmdline")
        .ok()
        .and_then(|cmdline| {
            cmdline
                .split_whitespace()
                .find_map(|arg| arg.strip_prefix("vmdbg.agent=vsock:"))
                .and_then(|port| port.parse::<u32>().ok())
        });
    if let Some(port) = args.vsock.or(from_cmdline) {
        if let Err(e) = transport::serve_vsock(port) {
            eprintln!("vmdbg-agent: {e:#}");
        }
        return ExitCode::FAILURE;
    }
    transport::serve_virtio_port(&args.virtio_port)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Gdbserver(args) => gdbserver(args),
    }
}

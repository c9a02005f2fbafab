//! The `vmdbg` crate: the command line behind the `vmdbg` binary
//! (`cli_main`), and the DAP session (`serve`, `transport`) for the fuzz
//! targets in fuzz/, which drive the server through this public surface
//! instead of compiling its source tree in (which broke whenever a module
//! was added). Everything else stays private to the crate.

mod dap;
mod debugger;
mod engine;
mod gdb_forward;
mod guest;
mod image;
mod rsp;
mod run;
mod symbols;
mod test_runner;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use dap::serve;
/// Content-Length framing of DAP messages, as `serve` reads and writes it.
pub mod transport {
    pub use crate::dap::transport::{read_message, Incoming};
}

/// Debug code that runs inside a virtual machine.
#[derive(Parser, Debug)]
#[command(name = "vmdbg", version)]
struct Cli {
    /// Log more (repeat for more detail); or set RUST_LOG.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the Debug Adapter Protocol (for VS Code, Eclipse, any DAP client).
    Dap(dap::DapArgs),
    /// Boot a fresh VM, run a command inside it, stream its output and exit
    /// with its status.
    Run(run::RunArgs),
    /// Boot a fresh VM, start a program in it under the agent's debugger,
    /// and forward a plain gdb's connection on 127.0.0.1:PORT to it.
    GdbForward(gdb_forward::GdbForwardArgs),
    /// Build or inspect the default guest image (kernel, initramfs, agent).
    Image(image::ImageArgs),
    /// Run each test of a test binary (Rust's libtest or GoogleTest) in a
    /// VM restored from one set-up snapshot; libtest's report, JSON or
    /// JUnit XML. As a cargo runner: runner = ["vmdbg", "test", "--"].
    Test(test_runner::TestArgs),
}

/// Parses the command line and runs the subcommand; the binary's `main`.
pub fn cli_main() -> ExitCode {
    let cli = Cli::parse();
    vmdbg_vmm::init_logging(cli.verbose);
    let result = match cli.command {
        Command::Dap(args) => dap::main(args),
        Command::Run(args) => run::main(args),
        Command::GdbForward(args) => gdb_forward::main(args),
        Command::Image(args) => image::main(args),
        Command::Test(args) => test_runner::main(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vmdbg: {e:#}");
            ExitCode::from(2)
        }
    }
}

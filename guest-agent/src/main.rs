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
enum Command {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {}
}

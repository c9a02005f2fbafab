//! `vmdbg run`: a command inside a fresh VM.

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

pub fn main(_args: RunArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`vmdbg run` is being written (issue 3/5)")
}

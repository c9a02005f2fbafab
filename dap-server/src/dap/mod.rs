//! The Debug Adapter Protocol server (`vmdbg dap`).

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct DapArgs {
    /// Listen on 127.0.0.1:PORT instead of talking DAP on stdin/stdout.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
}

pub fn main(_args: DapArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("the DAP server is being written (issue 4)")
}

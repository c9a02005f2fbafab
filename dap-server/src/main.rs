//! `vmdbg`: the command a user runs. The subcommands live in the crate's
//! library (src/lib.rs), so the fuzz targets can reach the DAP server.

fn main() -> std::process::ExitCode {
    vmdbg::cli_main()
}

//! The Debug Adapter Protocol server (`vmdbg dap`): stdio, or one client at
//! a time on 127.0.0.1:PORT.
//!
//! Owns: message types (`protocol`), Content-Length framing (`transport`),
//! responses and events to the client, with the one `stopped` event
//! builder (`outbox`), launch/attach configurations and argument parsing
//! (`launch`, `arguments`), the request table and its dispatcher, one line
//! per request (`requests`), the session: its loop, the VMs it starts and
//! ends (`session`, `kernel`, `program`, `kernel_modules`, `snapshots`),
//! and the DAP side of breakpoints, stepping, reverse execution, a kernel
//! that died of an unhandled exception (`postmortem`) and the inspection
//! requests (`inspect`). The debugger itself — target state, run control,
//! breakpoint decisions, the evaluator, signals — is `crate::debugger`,
//! which reports in plain Rust; DWARF lives in `crate::symbols`, the gdb
//! remote protocol in `crate::rsp`; this module ties them to DAP.

mod arguments;
mod breakpoints;
mod inspect;
mod kernel;
mod kernel_modules;
mod launch;
mod outbox;
mod postmortem;
mod program;
mod protocol;
mod requests;
mod reverse;
mod session;
mod snapshots;
mod stepping;
// Public (through the crate's `transport`) for the dap fuzz target, which
// must decode an input as the server will.
pub mod transport;

use std::process::ExitCode;

use anyhow::Context;
use tokio::io::{AsyncRead, AsyncWrite, BufReader};

#[derive(clap::Args, Debug)]
pub struct DapArgs {
    /// Listen on 127.0.0.1:PORT instead of talking DAP on stdin/stdout.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
}

pub fn main(args: DapArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // The session itself is not Send (the DWARF context caches lazily in
    // cells), so it runs on this thread with block_on; I/O tasks are spawned.
    runtime.block_on(async move {
        match args.port {
            None => {
                serve(tokio::io::stdin(), tokio::io::stdout()).await;
                Ok(ExitCode::SUCCESS)
            }
            Some(port) => {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
                eprintln!(
                    "vmdbg dap: listening on 127.0.0.1:{}",
                    listener.local_addr()?.port()
                );
                loop {
                    let (stream, peer) = listener.accept().await?;
                    tracing::info!("DAP client connected from {peer}");
                    stream.set_nodelay(true).ok();
                    let (r, w) = stream.into_split();
                    serve(r, w).await;
                    tracing::info!("DAP client {peer} disconnected");
                }
            }
        }
    })
}

/// Runs one debug session over a byte stream until the client leaves
/// (public for the dap fuzz target in fuzz/).
pub async fn serve<R, W>(reader: R, writer: W)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    let writer_task = tokio::spawn(async move {
        let mut writer = writer;
        while let Some(message) = out_rx.recv().await {
            if let Err(e) = transport::write_message(&mut writer, &message).await {
                tracing::warn!("cannot write to the DAP client: {e}");
                break;
            }
        }
    });
    let (in_tx, in_rx) = tokio::sync::mpsc::unbounded_channel();
    let reader_task = tokio::spawn(async move {
        let mut reader = BufReader::new(reader);
        loop {
            match transport::read_message(&mut reader).await {
                Ok(transport::Incoming::Closed) | Err(_) => break,
                Ok(incoming) => {
                    if in_tx.send(incoming).is_err() {
                        break;
                    }
                }
            }
        }
    });
    session::Session::new(out_tx).run(in_rx).await;
    reader_task.abort();
    let _ = writer_task.await;
}

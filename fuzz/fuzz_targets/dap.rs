//! `vmdbg dap`'s whole session on arbitrary client bytes: Content-Length
//! framing (dap/transport.rs), then request parsing and dispatch
//! (dap/protocol.rs, dap/session.rs …) of a session with no target,
//! through the vmdbg crate's public `serve` and `transport`.
//!
//! Inputs that would start a VM (`launch`, `attach`) are skipped: the
//! framing is decoded first, exactly as the server will, to find them.
//!
//! Checked: no panic or hang, and everything written back is a sequence
//! of Content-Length frames holding JSON objects.
#![no_main]

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use libfuzzer_sys::fuzz_target;
use tokio::io::AsyncWrite;

/// Collects what the server writes.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl AsyncWrite for Sink {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Pieces split at NUL bytes; one starting with 0x01 goes out raw, any
/// other gets a correct Content-Length header so it reaches the parser.
fn client_bytes(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in data.split(|b| *b == 0) {
        match piece.split_first() {
            Some((0x01, raw)) => out.extend_from_slice(raw),
            _ => {
                out.extend_from_slice(
                    format!("Content-Length: {}\r\n\r\n", piece.len()).as_bytes(),
                );
                out.extend_from_slice(piece);
            }
        }
    }
    out
}

/// What the server will dispatch, decoded with its own framing.
async fn would_start_a_vm(bytes: &[u8]) -> bool {
    let mut reader = tokio::io::BufReader::new(bytes);
    loop {
        match vmdbg::transport::read_message(&mut reader).await {
            Ok(vmdbg::transport::Incoming::Message(v)) => {
                let command = v.get("command").and_then(|c| c.as_str()).unwrap_or("");
                if matches!(command, "launch" | "attach" | "restart") {
                    return true;
                }
            }
            Ok(vmdbg::transport::Incoming::Malformed(_)) => {}
            Ok(vmdbg::transport::Incoming::Closed) | Err(_) => return false,
        }
    }
}

fn assert_well_framed(mut out: &[u8]) {
    while !out.is_empty() {
        let header_end = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a header block");
        let header = std::str::from_utf8(&out[..header_end]).unwrap();
        let len: usize = header
            .strip_prefix("Content-Length: ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("bad header {header:?}"));
        let body = &out[header_end + 4..header_end + 4 + len];
        let value: serde_json::Value = serde_json::from_slice(body).expect("a JSON body");
        assert!(value.is_object(), "{value}");
        out = &out[header_end + 4 + len..];
    }
}

thread_local! {
    /// One runtime for all inputs: building one costs more than most
    /// sessions. `serve` leaves no task behind (it aborts or awaits its own).
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
}

fuzz_target!(|data: &[u8]| {
    let input = client_bytes(data);
    RUNTIME.with(|runtime| {
        if runtime.block_on(would_start_a_vm(&input)) {
            return;
        }
        let sink = Sink::default();
        runtime.block_on(vmdbg::serve(std::io::Cursor::new(input), sink.clone()));
        assert_well_framed(&sink.0.lock().unwrap());
    });
});

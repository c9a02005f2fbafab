//! The control API's front door on arbitrary bytes, as a client on its
//! socket would send them, in arbitrary pieces: the HTTP parser
//! (vmm/src/control/http.rs) and, for each whole request, the typed action
//! parser that checks every route's JSON body (control/action.rs).
//!
//! Checked: no panic; the parser makes progress (a `Done` uses at least one
//! byte and no more than it was given); a refusal is a 4xx with a
//! Firecracker `fault_message`; every response serializes to one HTTP
//! response the parser's own framing would accept (status line, headers,
//! a Content-Length that matches its body).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmdbg_vmm::control::action;
use vmdbg_vmm::control::http::{self, Parse, Response};

fn check_response(r: &Response) {
    let bytes = r.to_bytes(true);
    let text = std::str::from_utf8(&bytes).expect("responses are UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with(&format!("HTTP/1.1 {} ", r.status)));
    if let Some(b) = &r.body {
        assert_eq!(body, b);
        assert!(
            head.contains(&format!("Content-Length: {}\r\n", b.len()))
                || head.ends_with(&format!("Content-Length: {}", b.len()))
        );
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the piece size: requests split across reads.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let piece = (split as usize % 97) + 1;
    let mut buf: Vec<u8> = Vec::new();
    for chunk in rest.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            match http::parse(&buf) {
                Parse::Incomplete { .. } => break,
                Parse::Bad { status, why } => {
                    assert!((400..500).contains(&status), "{status}: {why}");
                    assert!(!why.is_empty());
                    check_response(&Response::fault(status, why));
                    // The server answers and closes the connection.
                    return;
                }
                Parse::Done(req, used) => {
                    assert!(
                        used > 0 && used <= buf.len(),
                        "used {used} of {}",
                        buf.len()
                    );
                    match action::parse(&req) {
                        Ok(_) => {}
                        Err(refusal) => {
                            assert_eq!(refusal.status, 400);
                            let body: serde_json::Value = serde_json::from_str(
                                refusal.body.as_deref().expect("a refusal has a body"),
                            )
                            .expect("a refusal's body is JSON");
                            assert!(body["fault_message"]
                                .as_str()
                                .is_some_and(|m| !m.is_empty()));
                            check_response(&refusal);
                        }
                    }
                    buf.drain(..used);
                    if req.close {
                        return;
                    }
                }
            }
        }
    }
});

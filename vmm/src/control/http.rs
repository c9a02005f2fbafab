//! A small HTTP/1.1 request parser and response writer for the control
//! API: bounded sizes, `Content-Length` bodies only, a clear 400 for
//! anything else. It never panics on input.

/// Request line and headers together may not exceed this.
pub const MAX_HEAD: usize = 8 * 1024;
/// The API's JSON bodies are a few hundred bytes.
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
    /// `Connection: close` was asked for (or HTTP/1.0 without keep-alive).
    pub close: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parse {
    /// More bytes are needed; `expect_continue` when the client waits for
    /// a `100 Continue` before sending its body.
    Incomplete { expect_continue: bool },
    /// A whole request, and how many bytes of the buffer it used.
    Done(Request, usize),
    /// Not a request this server takes: answer 400 (or 413) and close.
    Bad { status: u16, why: String },
}

fn bad(why: impl Into<String>) -> Parse {
    Parse::Bad {
        status: 400,
        why: why.into(),
    }
}

/// Parses one request from the front of `buf`.
pub fn parse(buf: &[u8]) -> Parse {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Parse::Bad {
                status: 431,
                why: format!("request head longer than {MAX_HEAD} bytes"),
            };
        }
        return Parse::Incomplete {
            expect_continue: false,
        };
    };
    if head_end > MAX_HEAD {
        return Parse::Bad {
            status: 431,
            why: format!("request head longer than {MAX_HEAD} bytes"),
        };
    }
    let Ok(head) = std::str::from_utf8(&buf[..head_end]) else {
        return bad("request head is not UTF-8");
    };
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return bad(format!(
            "malformed request line `{}`",
            shorten(request_line)
        ));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return bad(format!("malformed method `{}`", shorten(method)));
    }
    if !path.starts_with('/') {
        return bad(format!("malformed path `{}`", shorten(path)));
    }
    let mut close = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return bad(format!("unsupported protocol `{}`", shorten(version))),
    };
    let mut content_length: Option<usize> = None;
    let mut expect_continue = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return bad(format!("malformed header `{}`", shorten(line)));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                let Ok(n) = value.parse::<usize>() else {
                    return bad(format!("bad Content-Length `{}`", shorten(value)));
                };
                if content_length.is_some_and(|m| m != n) {
                    return bad("conflicting Content-Length headers");
                }
                content_length = Some(n);
            }
            "transfer-encoding" => {
                return bad("Transfer-Encoding is not supported; send a Content-Length")
            }
            "expect" if value.eq_ignore_ascii_case("100-continue") => expect_continue = true,
            "connection" if value.eq_ignore_ascii_case("close") => close = true,
            "connection" if value.eq_ignore_ascii_case("keep-alive") => close = false,
            _ => {}
        }
    }
    let len = content_length.unwrap_or(0);
    if len > MAX_BODY {
        return Parse::Bad {
            status: 413,
            why: format!("body of {len} bytes; at most {MAX_BODY} are taken"),
        };
    }
    let start = head_end + 4;
    if buf.len() - start < len {
        return Parse::Incomplete { expect_continue };
    }
    Parse::Done(
        Request {
            method: method.to_string(),
            path: path.to_string(),
            body: buf[start..start + len].to_vec(),
            close,
        },
        start + len,
    )
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// At most 64 characters of client input in a message.
fn shorten(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        409 => "Conflict",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        _ => "Unknown",
    }
}

/// A response: status and an optional JSON body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Option<String>,
}

impl Response {
    pub fn no_content() -> Self {
        Self {
            status: 204,
            body: None,
        }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self {
            status,
            body: Some(value.to_string()),
        }
    }

    /// Firecracker's error shape: `{"fault_message": "..."}`.
    pub fn fault(status: u16, message: impl Into<String>) -> Self {
        Self::json(
            status,
            &serde_json::json!({ "fault_message": message.into() }),
        )
    }

    pub fn to_bytes(&self, close: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nServer: vmdbg-vmm\r\n",
            self.status,
            reason(self.status)
        );
        if close {
            out.push_str("Connection: close\r\n");
        }
        match &self.body {
            Some(body) => {
                out.push_str(&format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                ));
            }
            None => out.push_str("\r\n"),
        }
        out.into_bytes()
    }
}

pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_put_with_a_body() {
        let raw =
            b"PUT /snapshot/create HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}GET";
        match parse(raw) {
            Parse::Done(r, used) => {
                assert_eq!(
                    (r.method.as_str(), r.path.as_str()),
                    ("PUT", "/snapshot/create")
                );
                assert_eq!(r.body, b"{}");
                assert_eq!(used, raw.len() - 3);
                assert!(!r.close);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn waits_for_the_rest() {
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n"),
            Parse::Incomplete {
                expect_continue: false
            }
        );
        assert_eq!(
            parse(b"PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nab"),
            Parse::Incomplete {
                expect_continue: true
            }
        );
    }

    #[test]
    fn refuses_garbage_without_panicking() {
        for raw in [
            &b"\x00\xff\r\n\r\n"[..],
            b"get / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/2\r\n\r\n",
            b"GET  HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"PUT / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(
                matches!(parse(raw), Parse::Bad { status: 400, .. }),
                "{raw:?}"
            );
        }
        assert!(matches!(
            parse(b"PUT / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n"),
            Parse::Bad { status: 413, .. }
        ));
        assert!(matches!(
            parse(&[b'A'; MAX_HEAD + 1]),
            Parse::Bad { status: 431, .. }
        ));
    }

    #[test]
    fn writes_responses() {
        let r = Response::fault(400, "no").to_bytes(true);
        let s = String::from_utf8(r).unwrap();
        assert!(s.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(s.contains("Connection: close\r\n"));
        assert!(s.ends_with("\r\n\r\n{\"fault_message\":\"no\"}"));
        assert_eq!(
            Response::no_content().to_bytes(false),
            b"HTTP/1.1 204 No Content\r\nServer: vmdbg-vmm\r\n\r\n"
        );
    }
}

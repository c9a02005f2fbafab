//! Control messages: what travels in control frames on stream 0.
//!
//! A control payload is a postcard varint `u32` correlation id followed by
//! a postcard-encoded [`Message`]. The id comes first and on its own so a
//! side that cannot decode the message (a newer peer, a damaged payload)
//! can still answer the right request with an error. Events use id 0;
//! requests use ids from 1.

use serde::{Deserialize, Serialize};

/// Protocol versions this build speaks (negotiated by `Hello`).
pub const PROTOCOL_VERSIONS: &[u16] = &[1];
pub const CONTROL_STREAM: u32 = 0;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Message {
    Request(Request),
    Reply(Result<Reply, AgentError>),
    Event(Event),
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Request {
    /// The first request of a connection: the versions and capabilities the
    /// host has; the reply picks the highest common version.
    Hello {
        versions: Vec<u16>,
        capabilities: Vec<String>,
    },
    /// Start a program. Replies `Started` as soon as it runs; its output
    /// arrives as data frames on the streams named here, then a close frame.
    Exec(ExecRequest),
    /// Send a signal to a started program (to its process group if `group`).
    Signal { pid: u32, signal: i32, group: bool },
    /// Replies `Exited` when the program has ended and all its output has
    /// been sent (close frames of its streams come before the reply).
    Wait { pid: u32 },
    /// Write a file: its content follows as data frames on `stream`, ended by
    /// a close frame; the reply (`Done`) comes after size and SHA-256 match
    /// and the file was renamed into place with `mode`.
    PutFile {
        path: String,
        mode: u32,
        size: u64,
        sha256: [u8; 32],
        stream: u32,
    },
    /// Read a file: its content is sent as data frames on `stream`, a close
    /// frame, then the reply `File` with size, mode and SHA-256.
    GetFile { path: String, stream: u32 },
    /// A raw byte stream to a service in the agent (e.g. `gdbserver`, whose
    /// gdb remote protocol then travels as data frames on `stream`).
    OpenChannel {
        stream: u32,
        service: String,
        args: Vec<String>,
    },
    /// Sync disks and power the guest off; replies `Done` first.
    Poweroff,
    /// Set the guest's wall clock (CLOCK_REALTIME) to this many
    /// nanoseconds since the Unix epoch; replies `Done`. The host sends it
    /// after restoring a snapshot, whose clock stood still while saved.
    SetClock { unix_ns: u64 },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ExecRequest {
    pub argv: Vec<String>,
    /// Added to (or, with `clear_env`, replacing) the agent's environment.
    pub env: Vec<(String, String)>,
    pub clear_env: bool,
    pub cwd: Option<String>,
    pub stdio: StdioMode,
    /// Host-to-program bytes; None gives the program /dev/null.
    pub stdin_stream: Option<u32>,
    /// Program output (with a pty: the terminal's output, stdout and stderr).
    pub stdout_stream: u32,
    /// Ignored with a pty.
    pub stderr_stream: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub enum StdioMode {
    Pipes,
    Pty { rows: u16, cols: u16 },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Reply {
    Hello {
        version: u16,
        capabilities: Vec<String>,
        agent_version: String,
        kernel: String,
    },
    Started {
        pid: u32,
    },
    Exited(ExitStatus),
    File {
        size: u64,
        mode: u32,
        sha256: [u8; 32],
    },
    Done,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl ExitStatus {
    /// As a shell reports it: the code, or 128 + the signal number.
    pub fn shell_code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Event {
    /// Sent by the agent each time its end of the channel opens.
    Ready {
        agent_version: String,
        uptime_ms: u64,
    },
    /// Bytes that were not a valid frame or message were dropped.
    ProtocolError {
        message: String,
        stream: Option<u32>,
    },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AgentError {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request could not be decoded or is not known to this agent.
    BadRequest,
    /// No such file, program, process or service.
    NotFound,
    /// A checksum or size did not match.
    Corrupt,
    /// Any other operating-system error.
    Io,
    /// A stream id already in use.
    StreamInUse,
}

impl std::fmt::Display for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for AgentError {}

impl AgentError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        AgentError {
            kind,
            message: message.into(),
        }
    }
    pub fn io(what: &str, e: &std::io::Error) -> Self {
        let kind = if e.kind() == std::io::ErrorKind::NotFound {
            ErrorKind::NotFound
        } else {
            ErrorKind::Io
        };
        AgentError::new(kind, format!("{what}: {e}"))
    }
}

/// Encodes a control payload: id, then the message.
pub fn encode_control(id: u32, message: &Message) -> Vec<u8> {
    let mut out = postcard::to_stdvec(&id).expect("postcard encodes u32");
    out.extend(postcard::to_stdvec(message).expect("postcard encodes protocol messages"));
    out
}

/// Decodes a control payload. On failure the id is returned when it could
/// be read, so the error can be answered.
pub fn decode_control(payload: &[u8]) -> Result<(u32, Message), (Option<u32>, String)> {
    let (id, rest) = postcard::take_from_bytes::<u32>(payload)
        .map_err(|e| (None, format!("control payload has no correlation id: {e}")))?;
    match postcard::from_bytes::<Message>(rest) {
        Ok(m) => Ok((id, m)),
        Err(e) => Err((
            Some(id),
            format!("control message {id} does not decode: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_round_trip() {
        let m = Message::Request(Request::PutFile {
            path: "/tmp/x".into(),
            mode: 0o755,
            size: 3,
            sha256: [7; 32],
            stream: 9,
        });
        assert_eq!(decode_control(&encode_control(42, &m)), Ok((42, m)));
    }

    #[test]
    fn undecodable_body_still_yields_its_id() {
        let mut payload = postcard::to_stdvec(&77u32).unwrap();
        payload.extend([0xff, 0xff, 0xff]);
        let (id, _why) = decode_control(&payload).unwrap_err();
        assert_eq!(id, Some(77));
    }
}

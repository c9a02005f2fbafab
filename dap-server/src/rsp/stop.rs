//! Stop replies (`T`, `S`, `W`, `X`) and console output (`O`) as the stub
//! sends them after a resume or `?`, with gdb's reverse-execution stop
//! reason (`replaylog:begin|end`), and an error reply (`E`) where a resume
//! was refused (QEMU answers a reverse step at the start of its recording
//! with `E14`).

use anyhow::{bail, Context, Result};

use super::packet::{from_hex, parse_hex_u64};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchKind {
    Write,
    Read,
    Access,
}

/// A replay stopped at an edge of its recording (`replaylog:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayEdge {
    Begin,
    End,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReply {
    /// The target stopped with a signal; which thread, and why if the stub
    /// said (`swbreak`, `hwbreak`, `watch`).
    Signal {
        signal: u8,
        thread: Option<String>,
        watch: Option<(WatchKind, u64)>,
        breakpoint: bool,
        /// A replay at the start or end of its recording.
        replay_edge: Option<ReplayEdge>,
    },
    /// The stub refused the resume (`E` and its number).
    Refused(String),
    /// The target exited with a status (`W`).
    Exited { status: u8 },
    /// The target was terminated by a signal (`X`).
    Terminated { signal: u8 },
    /// Console output from the target (`O`), not a stop.
    Output(Vec<u8>),
}

impl StopReply {
    /// A step that ended as steps do: SIGTRAP, no watchpoint, not at an
    /// edge of a recording.
    pub fn is_plain_step(&self) -> bool {
        matches!(
            self,
            StopReply::Signal {
                signal: 5,
                watch: None,
                replay_edge: None,
                ..
            }
        )
    }

    pub fn parse(packet: &[u8]) -> Result<Self> {
        let text = std::str::from_utf8(packet).context("stop reply is not ASCII")?;
        let kind = text.chars().next().context("empty stop reply")?;
        let body = &text[1..];
        let hex_byte = |s: &str| -> Result<u8> {
            u8::from_str_radix(s.get(..2).context("short stop reply")?, 16)
                .context("bad signal number")
        };
        match kind {
            'S' => Ok(Self::Signal {
                signal: hex_byte(body)?,
                thread: None,
                watch: None,
                breakpoint: false,
                replay_edge: None,
            }),
            'T' => {
                let signal = hex_byte(body)?;
                let mut thread = None;
                let mut watch = None;
                let mut breakpoint = false;
                let mut replay_edge = None;
                for pair in body[2..].split(';').filter(|p| !p.is_empty()) {
                    let (key, value) = pair.split_once(':').unwrap_or((pair, ""));
                    match key {
                        "thread" => thread = Some(value.to_string()),
                        "watch" => watch = Some((WatchKind::Write, parse_hex_u64(value)?)),
                        "rwatch" => watch = Some((WatchKind::Read, parse_hex_u64(value)?)),
                        "awatch" => watch = Some((WatchKind::Access, parse_hex_u64(value)?)),
                        "swbreak" | "hwbreak" => breakpoint = true,
                        "replaylog" => {
                            replay_edge = match value {
                                "begin" => Some(ReplayEdge::Begin),
                                "end" => Some(ReplayEdge::End),
                                _ => None,
                            }
                        }
                        _ => {}
                    }
                }
                Ok(Self::Signal {
                    signal,
                    thread,
                    watch,
                    breakpoint,
                    replay_edge,
                })
            }
            'W' => Ok(Self::Exited {
                status: hex_byte(body)?,
            }),
            'X' => Ok(Self::Terminated {
                signal: hex_byte(body)?,
            }),
            'O' => Ok(Self::Output(from_hex(body.as_bytes())?)),
            'E' => Ok(Self::Refused(text.to_string())),
            _ => bail!("unexpected stop reply {text:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_t_with_watch_and_thread() {
        let r = StopReply::parse(b"T05watch:4010a0;thread:p1.2;06:0000000000000000;").unwrap();
        assert_eq!(
            r,
            StopReply::Signal {
                signal: 5,
                thread: Some("p1.2".into()),
                watch: Some((WatchKind::Write, 0x4010a0)),
                breakpoint: false,
                replay_edge: None,
            }
        );
        assert!(matches!(
            StopReply::parse(b"T05replaylog:begin;thread:01;").unwrap(),
            StopReply::Signal {
                replay_edge: Some(ReplayEdge::Begin),
                ..
            }
        ));
        assert!(matches!(
            StopReply::parse(b"T05replaylog:end;").unwrap(),
            StopReply::Signal {
                replay_edge: Some(ReplayEdge::End),
                ..
            }
        ));
        assert_eq!(
            StopReply::parse(b"E14").unwrap(),
            StopReply::Refused("E14".into())
        );
        assert_eq!(
            StopReply::parse(b"W3f").unwrap(),
            StopReply::Exited { status: 0x3f }
        );
        assert_eq!(
            StopReply::parse(b"X0b").unwrap(),
            StopReply::Terminated { signal: 11 }
        );
        assert!(StopReply::parse(b"Q").is_err());
        assert!(StopReply::parse(b"T").is_err());
    }
}

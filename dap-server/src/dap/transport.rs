//! Content-Length framing of DAP messages over any byte stream (stdio or a
//! TCP connection). Reading is lenient: a header block without a usable
//! Content-Length, or a body that is not JSON, is reported and skipped, and
//! the stream goes on.

use anyhow::Result;
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest message accepted; a bigger Content-Length is a corrupt header.
const MAX_MESSAGE: usize = 64 << 20;

/// One framed message, or why the bytes read were not one.
pub enum Incoming {
    Message(Value),
    Malformed(String),
    Closed,
}

pub async fn read_message<R: AsyncBufRead + Unpin>(reader: &mut R) -> Result<Incoming> {
    let mut content_length: Option<usize> = None;
    let mut bad_header = None;
    let mut saw_header = false;
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).await?;
        if n == 0 {
            return Ok(Incoming::Closed);
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if !saw_header {
                continue; // stray blank line between messages
            }
            break;
        }
        saw_header = true;
        match line.split_once(':') {
            Some((name, value)) if name.trim().eq_ignore_ascii_case("Content-Length") => {
                match value.trim().parse::<usize>() {
                    Ok(len) if len <= MAX_MESSAGE => content_length = Some(len),
                    _ => bad_header = Some(format!("bad Content-Length {:?}", value.trim())),
                }
            }
            Some(_) => {} // other headers (Content-Type) are allowed
            None => bad_header = Some(format!("header line without a colon: {line:?}")),
        }
    }
    let Some(len) = content_length else {
        return Ok(Incoming::Malformed(
            bad_header.unwrap_or_else(|| "message without Content-Length".into()),
        ));
    };
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).await?;
    Ok(match serde_json::from_slice::<Value>(&body) {
        Ok(v) => Incoming::Message(v),
        Err(e) => Incoming::Malformed(format!("message body is not JSON: {e}")),
    })
}

pub async fn write_message<W: AsyncWrite + Unpin>(writer: &mut W, message: &Value) -> Result<()> {
    let body = serde_json::to_vec(message)?;
    writer
        .write_all(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes())
        .await?;
    writer.write_all(&body).await?;
    writer.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_and_survives_garbage() {
        let input =
            b"Content-Length: 5\r\n\r\nnot{}garbage\r\n\r\nContent-Length: 2\r\n\r\n{}".to_vec();
        let mut reader = tokio::io::BufReader::new(&input[..]);
        assert!(matches!(
            read_message(&mut reader).await.unwrap(),
            Incoming::Malformed(_)
        ));
        assert!(matches!(
            read_message(&mut reader).await.unwrap(),
            Incoming::Malformed(_)
        ));
        assert!(matches!(
            read_message(&mut reader).await.unwrap(),
            Incoming::Message(_)
        ));
        assert!(matches!(
            read_message(&mut reader).await.unwrap(),
            Incoming::Closed
        ));
    }
}

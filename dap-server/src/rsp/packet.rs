//! RSP packet framing: `$payload#cs` with `}` escapes and `*` run-length
//! encoding on the way in, escapes on the way out, and hex helpers.

use anyhow::{bail, Context, Result};

/// Frames a payload as `$…#cs`, escaping the bytes RSP reserves.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.push(b'$');
    let mut sum: u8 = 0;
    for &b in payload {
        if matches!(b, b'$' | b'#' | b'}' | b'*') {
            out.push(b'}');
            out.push(b ^ 0x20);
            sum = sum.wrapping_add(b'}').wrapping_add(b ^ 0x20);
        } else {
            out.push(b);
            sum = sum.wrapping_add(b);
        }
    }
    out.push(b'#');
    out.extend_from_slice(format!("{sum:02x}").as_bytes());
    out
}

/// Undoes escapes and run-length encoding of a received packet body (the
/// bytes between `$` and `#`).
pub fn decode_body(body: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'}' => {
                let next = *body.get(i + 1).context("packet ends inside an escape")?;
                out.push(next ^ 0x20);
                i += 2;
            }
            b'*' => {
                let prev = *out
                    .last()
                    .context("run-length marker with nothing to repeat")?;
                let count = *body.get(i + 1).context("packet ends inside a run length")?;
                if count < 29 {
                    bail!("invalid run length byte {count:#x}");
                }
                out.extend(std::iter::repeat_n(prev, (count - 29) as usize));
                i += 2;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

pub fn checksum(body: &[u8]) -> u8 {
    body.iter().fold(0u8, |sum, &b| sum.wrapping_add(b))
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn from_hex(text: &[u8]) -> Result<Vec<u8>> {
    if text.len() % 2 != 0 {
        bail!("odd-length hex string");
    }
    text.chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).context("non-ASCII hex")?;
            u8::from_str_radix(s, 16).with_context(|| format!("bad hex byte {s:?}"))
        })
        .collect()
}

/// Register bytes where the stub marks unavailable values with `xx`: those
/// read as zero and are reported unavailable by the caller if it cares.
pub fn from_hex_lenient(text: &[u8]) -> Result<Vec<u8>> {
    if text.len() % 2 != 0 {
        bail!("odd-length hex string");
    }
    text.chunks(2)
        .map(|pair| {
            if pair == b"xx" {
                return Ok(0);
            }
            let s = std::str::from_utf8(pair).context("non-ASCII hex")?;
            u8::from_str_radix(s, 16).with_context(|| format!("bad hex byte {s:?}"))
        })
        .collect()
}

pub fn parse_hex_u64(text: &str) -> Result<u64> {
    u64::from_str_radix(text, 16).with_context(|| format!("bad hex number {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_escapes() {
        assert_eq!(frame(b"g"), b"$g#67");
        let framed = frame(b"a#b");
        assert_eq!(&framed[..5], b"$a}\x03b");
        let body = &framed[1..framed.len() - 3];
        assert_eq!(decode_body(body).unwrap(), b"a#b");
    }

    #[test]
    fn run_length() {
        assert_eq!(decode_body(b"0* ").unwrap(), b"0000");
        assert!(decode_body(b"*").is_err());
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(
            from_hex(to_hex(&[0, 0xab, 0xff]).as_bytes()).unwrap(),
            vec![0, 0xab, 0xff]
        );
        assert!(from_hex(b"abc").is_err());
        assert!(from_hex(b"zz").is_err());
    }
}

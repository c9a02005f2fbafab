//! Inspection while stopped: stack trace (with inlined frames), scopes
//! (Locals, Arguments, Registers, Globals), variables expanded lazily by
//! variablesReference, evaluate, setVariable, memory and disassembly.

use anyhow::{Context, Result};
use iced_x86::{Decoder, DecoderOptions, Formatter, GasFormatter};
use serde_json::{json, Value};

use super::protocol;
use super::session::Session;
use crate::debugger::eval::{Evaluation, SetValue, VarEntry, MAX_CHILDREN};
use crate::debugger::eval::{ScopeKind, VarNode};
use crate::debugger::target::TargetState;

impl Session {
    /// `threads`: the stub's thread list, asked again whenever the target
    /// is stopped (a program's threads come and go: a libtest test runs on
    /// a thread spawned long after the session started), with `thread`
    /// events for those that started or exited since the last list.
    /// Program threads carry the names the guest gives them; a kernel's
    /// are its vCPUs.
    pub async fn threads_request(&mut self) -> Value {
        self.dbg.refresh_threads().await;
        let Some(target) = self.dbg.target.as_ref() else {
            return json!({ "threads": [] });
        };
        let threads: Vec<Value> = target
            .threads
            .iter()
            .map(|t| {
                let n = TargetState::thread_id(t);
                let name = match (target.program, target.thread_names.get(t)) {
                    (true, Some(name)) => format!("{name} ({n})"),
                    (true, None) => format!("thread {n}"),
                    (false, _) => format!("vCPU {}", n - 1),
                };
                json!({ "id": n, "name": name })
            })
            .collect();
        json!({ "threads": threads })
    }

    pub async fn stack_trace(&mut self, args: protocol::StackTraceArguments) -> Result<Value> {
        let target = self.dbg.target_ref()?;
        target.thread = target.rsp_thread(args.thread_id);
        target.stop.frames = None;
        let frames = self.dbg.frames().await?;
        let start = args.start_frame.unwrap_or(0);
        let levels = args.levels.filter(|&l| l > 0).unwrap_or(frames.len());
        let list: Vec<Value> = frames
            .iter()
            .enumerate()
            .skip(start)
            .take(levels)
            .map(|(i, f)| {
                let mut frame = json!({
                    "id": i + 1,
                    "name": if f.source.inlined { format!("{} [inlined]", f.source.function) } else { f.source.function.clone() },
                    "line": f.source.line.unwrap_or(0),
                    "column": f.source.column.unwrap_or(1).max(1),
                    "instructionPointerReference": format!("{:#x}", f.pc),
                });
                if let Some(path) = &f.source.file {
                    frame["source"] = json!({ "name": std::path::Path::new(path).file_name().map(|n| n.to_string_lossy()), "path": path });
                } else {
                    frame["presentationHint"] = json!("subtle");
                }
                frame
            })
            .collect();
        Ok(json!({ "stackFrames": list, "totalFrames": frames.len() }))
    }

    pub async fn scopes(&mut self, args: protocol::ScopesArguments) -> Result<Value> {
        let index = usize::try_from(args.frame_id - 1).context("bad frameId")?;
        let frame = self.dbg.frame(index).await?;
        let mut scopes = Vec::new();
        for (kind, name, hint) in [
            (ScopeKind::Locals, "Locals", "locals"),
            (ScopeKind::Arguments, "Arguments", "arguments"),
            (ScopeKind::Registers, "Registers", "registers"),
            (ScopeKind::Globals, "Globals", "globals"),
        ] {
            let reference = self
                .dbg
                .new_reference(VarNode::Scope { frame: index, kind })?;
            scopes.push(json!({ "name": name, "presentationHint": hint, "variablesReference": reference, "expensive": kind == ScopeKind::Globals }));
        }
        let _ = frame;
        Ok(json!({ "scopes": scopes }))
    }

    /// Shows one row as a DAP Variable (allocating a reference when it has
    /// children).
    async fn render(&mut self, entry: VarEntry, hex: bool) -> Result<Value> {
        let shown = self.dbg.describe(entry, hex).await?;
        let Some(type_name) = shown.type_name else {
            let mut var =
                json!({ "name": shown.name, "value": shown.value, "variablesReference": 0 });
            if let Some(expression) = shown.expression {
                var["evaluateName"] = json!(expression);
            }
            return Ok(var);
        };
        let mut var = json!({ "name": shown.name, "value": shown.value, "type": type_name, "variablesReference": shown.reference });
        if let Some(count) = shown.indexed {
            var["indexedVariables"] = json!(count);
        }
        if let Some(addr) = shown.address {
            var["memoryReference"] = json!(format!("{addr:#x}"));
        }
        if let Some(expression) = shown.expression {
            var["evaluateName"] = json!(expression);
        }
        Ok(var)
    }

    pub async fn variables(&mut self, args: protocol::VariablesArguments) -> Result<Value> {
        let start = args.start.unwrap_or(0) as u64;
        let count = args.count.filter(|&c| c > 0).unwrap_or(MAX_CHILDREN) as u64;
        let entries = self
            .dbg
            .children_page(args.variables_reference, start, count)
            .await?;
        let hex = protocol::ValueFormat::hex(args.format);
        let mut list = Vec::new();
        for entry in entries {
            list.push(self.render(entry, hex).await?);
        }
        Ok(json!({ "variables": list }))
    }

    pub async fn set_variable(&mut self, args: protocol::SetVariableArguments) -> Result<Value> {
        let set = self
            .dbg
            .set_variable(args.variables_reference, &args.name, &args.value)
            .await?;
        match set {
            SetValue::Register(value) => Ok(json!({ "value": format!("{value:#x}") })),
            SetValue::Value(entry) => {
                let rendered = self
                    .render(entry, protocol::ValueFormat::hex(args.format))
                    .await?;
                Ok(
                    json!({ "value": rendered["value"], "type": rendered["type"], "variablesReference": rendered["variablesReference"] }),
                )
            }
        }
    }

    pub async fn evaluate(&mut self, args: protocol::EvaluateArguments) -> Result<Value> {
        let frame = args.frame_id.map(|f| (f - 1).max(0) as usize).unwrap_or(0);
        let hex = protocol::ValueFormat::hex(args.format);
        Ok(
            match self.dbg.evaluate(frame, &args.expression, hex).await? {
                number @ Evaluation::Number(_) => {
                    json!({ "result": number.result(hex), "variablesReference": 0 })
                }
                Evaluation::Address(a) => {
                    json!({ "result": format!("{a:#x}"), "variablesReference": 0, "memoryReference": format!("{a:#x}") })
                }
                Evaluation::Value(v) => {
                    let mut body = json!({ "result": v.value, "type": v.type_name, "variablesReference": v.reference });
                    if let Some(addr) = v.address {
                        body["memoryReference"] = json!(format!("{addr:#x}"));
                    }
                    body
                }
            },
        )
    }

    pub async fn read_memory(&mut self, args: protocol::ReadMemoryArguments) -> Result<Value> {
        let addr =
            parse_address(&args.memory_reference)?.wrapping_add(args.offset.unwrap_or(0) as u64);
        let count = args.count.min(1 << 20);
        let target = self.dbg.target_ref()?;
        let bytes = target.rsp.read_memory(addr, count).await?;
        let mut body = json!({ "address": format!("{addr:#x}"), "data": base64_encode(&bytes) });
        if bytes.len() < count {
            body["unreadableBytes"] = json!(count - bytes.len());
        }
        Ok(body)
    }

    pub async fn write_memory(&mut self, args: protocol::WriteMemoryArguments) -> Result<Value> {
        let addr =
            parse_address(&args.memory_reference)?.wrapping_add(args.offset.unwrap_or(0) as u64);
        let data = base64_decode(&args.data)?;
        let target = self.dbg.target_ref()?;
        target.rsp.write_memory(addr, &data).await?;
        target.invalidate();
        Ok(json!({ "bytesWritten": data.len() }))
    }

    pub async fn disassemble(&mut self, args: protocol::DisassembleArguments) -> Result<Value> {
        let addr =
            parse_address(&args.memory_reference)?.wrapping_add(args.offset.unwrap_or(0) as u64);
        let count = args.instruction_count.min(4096);
        let before = (-args.instruction_offset.unwrap_or(0)).max(0) as u64;
        let after = args.instruction_offset.unwrap_or(0).max(0) as u64;
        let target = self.dbg.target_ref()?;
        let symbols = target.symbols.clone();
        // Decoding backwards is ambiguous on x86: start at the function's
        // entry when it is near, else far enough back to resynchronize.
        let start = match symbols.function_at(addr) {
            Some(f) if addr - f.low <= 16 * 1024 && before > 0 => f.low,
            _ => addr.saturating_sub(before * 15),
        };
        let len = (addr - start) + (after + count as u64) * 15 + 16;
        let bytes = target
            .rsp
            .read_memory(start, len.min(1 << 20) as usize)
            .await?;
        let mut decoder = Decoder::with_ip(64, &bytes, start, DecoderOptions::NONE);
        let mut formatter = GasFormatter::new();
        let mut decoded = Vec::new();
        while decoder.can_decode() {
            let insn = decoder.decode();
            let mut text = String::new();
            formatter.format(&insn, &mut text);
            let offset = (insn.ip() - start) as usize;
            decoded.push((
                insn.ip(),
                bytes[offset..offset + insn.len()].to_vec(),
                if insn.is_invalid() {
                    "(bad)".to_string()
                } else {
                    text
                },
            ));
        }
        let anchor = decoded
            .iter()
            .position(|(ip, _, _)| *ip >= addr)
            .unwrap_or(decoded.len()) as i64;
        let first = anchor + args.instruction_offset.unwrap_or(0);
        let mut list = Vec::new();
        for i in first..first + count as i64 {
            let item = usize::try_from(i).ok().and_then(|i| decoded.get(i));
            match item {
                Some((ip, raw, text)) => {
                    let mut insn = json!({
                        "address": format!("{ip:#x}"),
                        "instructionBytes": raw.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" "),
                        "instruction": text,
                    });
                    if let Some(f) = symbols.function_at(*ip).filter(|f| f.low == *ip) {
                        insn["symbol"] = json!(f.name);
                    }
                    if let Some(row) = symbols.lines.row_at(*ip) {
                        let path = symbols.lines.file_name(row.file);
                        insn["location"] = json!({ "path": path, "name": std::path::Path::new(path).file_name().map(|n| n.to_string_lossy()) });
                        insn["line"] = json!(row.line);
                    }
                    list.push(insn);
                }
                None => list.push(json!({ "address": format!("{:#x}", addr.wrapping_add((i - anchor) as u64)), "instruction": "??", "presentationHint": "invalid" })),
            }
        }
        Ok(json!({ "instructions": list }))
    }
}

fn parse_address(reference: &str) -> Result<u64> {
    let r = reference.trim();
    let value = if let Some(hex) = r.strip_prefix("0x").or_else(|| r.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16)
    } else {
        r.parse::<u64>()
    };
    value.with_context(|| format!("memoryReference {reference:?} is not an address"))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        let v = B64
            .iter()
            .position(|&x| x == c)
            .with_context(|| format!("{:?} is not base64", c as char))? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        for data in [&b""[..], b"a", b"ab", b"abc", b"hello world"] {
            assert_eq!(base64_decode(&base64_encode(data)).unwrap(), data);
        }
        assert_eq!(base64_encode(b"hi"), "aGk=");
        assert!(base64_decode("!!").is_err());
    }
}

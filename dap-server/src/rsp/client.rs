//! The connection to a stub: a reader task that frames and acknowledges
//! incoming packets, a writer task, and request/reply calls on top.
//!
//! All-stop discipline: while the target runs, the only packet the client
//! expects is a stop reply (or `O` output), which the session collects with
//! [`RspClient::next_packet`]; while it is stopped, every request gets one
//! reply.
//!
//! Stubs also send packets nobody asked for: QEMU stops a running guest
//! when a debugger connects and announces it with a stop reply that can
//! arrive before the reply to `qSupported`; a Ctrl-C that crosses a stop
//! gets a second stop reply; console output (`O`) comes at any time. A
//! request therefore takes as its reply only a packet that can be one:
//! a stop reply while waiting for another reply is remembered
//! ([`RspClient::take_unexpected_stop`]) and skipped, as is output, so one
//! stray packet cannot shift every later reply by one.
//!
//! A stub whose `vCont?` reply lists `r` range-steps (gdb's `vCont;r`):
//! [`RspClient::range_step`] steps a thread through a whole source line in
//! one round trip. `VMDBG_RANGE_STEP=0` makes the client ignore it (to
//! measure against single steps), and `VMDBG_RSP_LOG=<path>` appends every
//! packet the client sends, one per line, to that file (to count them).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::packet::{
    checksum, decode_body, frame, from_hex, from_hex_lenient, parse_hex_u64, to_hex,
};
use super::registers::RegisterMap;
use super::stop::{StopReply, WatchKind};

/// Where a stub listens: `unix:/path` or `host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Unix(std::path::PathBuf),
    Tcp(String),
}

impl std::str::FromStr for Endpoint {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                bail!("`unix:` needs a socket path");
            }
            return Ok(Self::Unix(path.into()));
        }
        let (host, port) = s
            .rsplit_once(':')
            .with_context(|| format!("gdbServer {s:?} is neither `host:port` nor `unix:/path`"))?;
        port.parse::<u16>()
            .with_context(|| format!("gdbServer {s:?}: {port:?} is not a port number"))?;
        let host = if host.is_empty() { "127.0.0.1" } else { host };
        Ok(Self::Tcp(format!("{host}:{port}")))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
            Self::Tcp(a) => f.write_str(a),
        }
    }
}

/// How long a stopped target may take to answer one request.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

pub struct RspClient {
    out: mpsc::UnboundedSender<Vec<u8>>,
    incoming: mpsc::UnboundedReceiver<Result<Vec<u8>, String>>,
    no_ack: Arc<AtomicBool>,
    pub registers: RegisterMap,
    pub packet_size: usize,
    /// The stub steps and continues backwards (`ReverseStep+`,
    /// `ReverseContinue+` in its qSupported reply: QEMU's in replay mode).
    pub reverse: bool,
    vcont: bool,
    /// The stub offers `vCont;r` and the user did not turn it off.
    range_step: bool,
    /// Where every sent packet is logged (`VMDBG_RSP_LOG`).
    log: Option<Arc<std::sync::Mutex<std::fs::File>>>,
    /// The thread `Hg` last selected, so it is not resent for every read.
    selected_thread: Option<String>,
    /// The last stop reply that arrived while a request waited for its own
    /// reply (see the module doc).
    unexpected_stop: Option<StopReply>,
}

/// Stub capabilities the client uses.
#[derive(Debug, Default)]
struct Features {
    packet_size: Option<usize>,
    target_xml: bool,
    no_ack: bool,
    reverse_step: bool,
    reverse_continue: bool,
}

impl RspClient {
    pub async fn connect(endpoint: &Endpoint) -> Result<Self> {
        let (reader, writer): (
            Box<dyn AsyncRead + Send + Unpin>,
            Box<dyn AsyncWrite + Send + Unpin>,
        ) = match endpoint {
            Endpoint::Unix(path) => {
                let s = tokio::net::UnixStream::connect(path)
                    .await
                    .with_context(|| format!("cannot connect to the gdb stub at {endpoint}"))?;
                let (r, w) = s.into_split();
                (Box::new(r), Box::new(w))
            }
            Endpoint::Tcp(addr) => {
                let s = tokio::net::TcpStream::connect(addr)
                    .await
                    .with_context(|| format!("cannot connect to the gdb stub at {endpoint}"))?;
                s.set_nodelay(true).ok();
                let (r, w) = s.into_split();
                (Box::new(r), Box::new(w))
            }
        };
        Self::over(reader, writer).await
    }

    /// A client over an already connected byte stream, e.g. the agent's
    /// `gdbserver` channel to a process debugger inside the guest.
    pub async fn over(
        reader: Box<dyn AsyncRead + Send + Unpin>,
        writer: Box<dyn AsyncWrite + Send + Unpin>,
    ) -> Result<Self> {
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let no_ack = Arc::new(AtomicBool::new(false));
        tokio::spawn(write_loop(writer, out_rx));
        tokio::spawn(read_loop(reader, in_tx, out_tx.clone(), no_ack.clone()));
        let mut client = Self {
            out: out_tx,
            incoming: in_rx,
            no_ack,
            registers: RegisterMap::amd64_fallback(),
            packet_size: 4096,
            reverse: false,
            vcont: false,
            range_step: false,
            log: packet_log(),
            selected_thread: None,
            unexpected_stop: None,
        };
        client.handshake().await?;
        Ok(client)
    }

    async fn handshake(&mut self) -> Result<()> {
        let reply = self
            .request("qSupported:multiprocess-;swbreak+;hwbreak+;xmlRegisters=i386;vContSupported+")
            .await?;
        let mut features = Features::default();
        for item in String::from_utf8_lossy(&reply).split(';') {
            if let Some(size) = item.strip_prefix("PacketSize=") {
                features.packet_size = parse_hex_u64(size).ok().map(|s| s as usize);
            } else if item == "qXfer:features:read+" {
                features.target_xml = true;
            } else if item == "QStartNoAckMode+" {
                features.no_ack = true;
            } else if item == "ReverseStep+" {
                features.reverse_step = true;
            } else if item == "ReverseContinue+" {
                features.reverse_continue = true;
            }
        }
        self.reverse = features.reverse_step && features.reverse_continue;
        if let Some(size) = features.packet_size {
            self.packet_size = size.clamp(256, 64 * 1024);
        }
        if features.no_ack && self.request("QStartNoAckMode").await? == b"OK" {
            self.no_ack.store(true, Ordering::SeqCst);
        }
        if features.target_xml {
            let top = self.read_annex("target.xml").await?;
            let mut annexes = std::collections::HashMap::new();
            // Fetch every include first (the parser's callback is synchronous).
            for href in includes(&top) {
                let text = self.read_annex(&href).await?;
                for nested in includes(&text) {
                    let nested_text = self.read_annex(&nested).await?;
                    annexes.insert(nested, nested_text);
                }
                annexes.insert(href, text);
            }
            self.registers = RegisterMap::from_target_xml(&top, &mut |name| {
                annexes
                    .get(name)
                    .cloned()
                    .ok_or_else(|| anyhow!("target description {name} was not sent"))
            })?;
        }
        let vcont = self.request("vCont?").await?;
        let actions = vcont_actions(&vcont);
        self.vcont = actions.contains(&"c");
        self.range_step = self.vcont && actions.contains(&"r") && range_step_wanted();
        Ok(())
    }

    async fn read_annex(&mut self, annex: &str) -> Result<String> {
        let mut text = Vec::new();
        loop {
            let chunk = self.packet_size.saturating_sub(16).max(128);
            let reply = self
                .request(&format!(
                    "qXfer:features:read:{annex}:{:x},{chunk:x}",
                    text.len()
                ))
                .await?;
            match reply.first() {
                Some(b'm') => text.extend_from_slice(&reply[1..]),
                Some(b'l') => {
                    text.extend_from_slice(&reply[1..]);
                    break;
                }
                _ => bail!(
                    "the stub refused to send {annex}: {}",
                    String::from_utf8_lossy(&reply)
                ),
            }
        }
        String::from_utf8(text).context("target description is not UTF-8")
    }

    /// Sends one packet without waiting for anything.
    pub fn send(&self, payload: &str) -> Result<()> {
        tracing::trace!("rsp -> {payload}");
        if let Some(log) = &self.log {
            use std::io::Write;
            let mut file = log.lock().unwrap_or_else(|p| p.into_inner());
            // A log that cannot be written must not stop the debugging.
            let _ = writeln!(file, "{payload}");
        }
        self.out
            .send(frame(payload.as_bytes()))
            .map_err(|_| anyhow!("the connection to the gdb stub is closed"))
    }

    /// Ctrl-C: asks a running target to stop; the stop reply comes later.
    pub fn interrupt(&self) -> Result<()> {
        self.out
            .send(vec![0x03])
            .map_err(|_| anyhow!("the connection to the gdb stub is closed"))
    }

    /// The next packet from the stub (a reply or, while running, a stop).
    pub async fn next_packet(&mut self) -> Result<Vec<u8>> {
        match self.incoming.recv().await {
            Some(Ok(p)) => {
                tracing::trace!("rsp <- {}", String::from_utf8_lossy(&p));
                Ok(p)
            }
            Some(Err(e)) => bail!("the gdb stub connection failed: {e}"),
            None => bail!("the gdb stub closed the connection"),
        }
    }

    /// Sends a request and waits for its reply, skipping console output and
    /// (unless the request is `?`) stop replies nobody asked for.
    pub async fn request(&mut self, payload: &str) -> Result<Vec<u8>> {
        self.send(payload)?;
        let wants_stop = payload == "?";
        loop {
            let reply = tokio::time::timeout(REPLY_TIMEOUT, self.next_packet())
                .await
                .map_err(|_| {
                    anyhow!("the gdb stub did not answer `{}` in time", short(payload))
                })??;
            if is_output(&reply) {
                continue;
            }
            if !wants_stop && is_stop_reply(&reply) {
                tracing::debug!(
                    "a stop reply arrived while `{}` waited for its reply: {}",
                    short(payload),
                    String::from_utf8_lossy(&reply)
                );
                if let Ok(stop) = StopReply::parse(&reply) {
                    self.unexpected_stop = Some(stop);
                }
                continue;
            }
            return Ok(reply);
        }
    }

    /// The stop reply that last arrived unasked (e.g. QEMU stopping a
    /// running guest when the debugger connected), if any; taking it
    /// forgets it.
    // The session re-asks with `?` after connecting; this is for callers
    // that want to know why the target stopped by itself.
    #[allow(dead_code)]
    pub fn take_unexpected_stop(&mut self) -> Option<StopReply> {
        self.unexpected_stop.take()
    }

    /// A request whose reply must be `OK`.
    pub async fn request_ok(&mut self, payload: &str) -> Result<()> {
        let reply = self.request(payload).await?;
        if reply == b"OK" {
            Ok(())
        } else if reply.is_empty() {
            bail!("the gdb stub does not support `{}`", short(payload))
        } else {
            bail!(
                "the gdb stub refused `{}`: {}",
                short(payload),
                String::from_utf8_lossy(&reply)
            )
        }
    }

    /// The current stop (`?`).
    pub async fn query_stop(&mut self) -> Result<StopReply> {
        let reply = self.request("?").await?;
        StopReply::parse(&reply)
    }

    /// Thread ids as the stub spells them.
    pub async fn threads(&mut self) -> Result<Vec<String>> {
        let mut threads = Vec::new();
        let mut reply = self.request("qfThreadInfo").await?;
        while let Some(b'm') = reply.first() {
            threads.extend(
                String::from_utf8_lossy(&reply[1..])
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            );
            reply = self.request("qsThreadInfo").await?;
        }
        Ok(threads)
    }

    /// A thread's name as the stub gives it (`qThreadExtraInfo`: the
    /// agent answers with the thread's comm, e.g. a libtest test's name),
    /// or None when the stub has none.
    pub async fn thread_name(&mut self, thread: &str) -> Result<Option<String>> {
        let reply = self.request(&format!("qThreadExtraInfo,{thread}")).await?;
        let Ok(bytes) = from_hex(&reply) else {
            // Empty (not supported) or an `Exx` error.
            return Ok(None);
        };
        let name = String::from_utf8_lossy(&bytes).trim().to_string();
        Ok((!name.is_empty()).then_some(name))
    }

    async fn select_thread(&mut self, thread: &str) -> Result<()> {
        if self.selected_thread.as_deref() == Some(thread) {
            return Ok(());
        }
        self.request_ok(&format!("Hg{thread}")).await?;
        self.selected_thread = Some(thread.to_string());
        Ok(())
    }

    /// All registers of a thread, as the `g` block.
    pub async fn read_registers(&mut self, thread: &str) -> Result<Vec<u8>> {
        self.select_thread(thread).await?;
        let reply = self.request("g").await?;
        if reply.first() == Some(&b'E') && reply.len() == 3 {
            bail!(
                "the gdb stub could not read registers: {}",
                String::from_utf8_lossy(&reply)
            );
        }
        from_hex_lenient(&reply)
    }

    pub async fn write_register(&mut self, thread: &str, regnum: u32, value: &[u8]) -> Result<()> {
        self.select_thread(thread).await?;
        self.request_ok(&format!("P{regnum:x}={}", to_hex(value)))
            .await
    }

    /// Reads memory; a short result means the rest is not readable.
    pub async fn read_memory(&mut self, addr: u64, len: usize) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(len);
        let chunk_max = (self.packet_size / 2).saturating_sub(16).max(64);
        while out.len() < len {
            let chunk = (len - out.len()).min(chunk_max);
            let at = addr.wrapping_add(out.len() as u64);
            let reply = self.request(&format!("m{at:x},{chunk:x}")).await?;
            if reply.is_empty() || (reply[0] == b'E' && reply.len() == 3) {
                break;
            }
            let bytes = from_hex(&reply)?;
            if bytes.is_empty() {
                break;
            }
            let got = bytes.len();
            out.extend(bytes);
            if got < chunk {
                break;
            }
        }
        Ok(out)
    }

    pub async fn write_memory(&mut self, addr: u64, data: &[u8]) -> Result<()> {
        let chunk_max = (self.packet_size / 2).saturating_sub(32).max(64);
        for (i, chunk) in data.chunks(chunk_max).enumerate() {
            let at = addr.wrapping_add((i * chunk_max) as u64);
            self.request_ok(&format!("M{at:x},{:x}:{}", chunk.len(), to_hex(chunk)))
                .await
                .with_context(|| format!("cannot write memory at {at:#x}"))?;
        }
        Ok(())
    }

    /// Inserts a breakpoint (Z0; the stub decides software or hardware).
    pub async fn insert_breakpoint(&mut self, addr: u64) -> Result<()> {
        self.request_ok(&format!("Z0,{addr:x},1")).await
    }

    pub async fn remove_breakpoint(&mut self, addr: u64) -> Result<()> {
        self.request_ok(&format!("z0,{addr:x},1")).await
    }

    /// A hardware breakpoint (Z1): it needs no write to the code, so it
    /// works at an address the vCPU cannot map yet.
    pub async fn insert_hw_breakpoint(&mut self, addr: u64) -> Result<()> {
        self.request_ok(&format!("Z1,{addr:x},1")).await
    }

    pub async fn remove_hw_breakpoint(&mut self, addr: u64) -> Result<()> {
        self.request_ok(&format!("z1,{addr:x},1")).await
    }

    pub async fn insert_watchpoint(
        &mut self,
        kind: WatchKind,
        addr: u64,
        len: usize,
    ) -> Result<()> {
        self.request_ok(&format!("Z{},{addr:x},{len:x}", watch_type(kind)))
            .await
    }

    pub async fn remove_watchpoint(
        &mut self,
        kind: WatchKind,
        addr: u64,
        len: usize,
    ) -> Result<()> {
        self.request_ok(&format!("z{},{addr:x},{len:x}", watch_type(kind)))
            .await
    }

    /// Resumes every thread; the stop reply arrives via [`next_packet`].
    pub fn resume_continue(&mut self) -> Result<()> {
        self.selected_thread = None;
        self.unexpected_stop = None;
        if self.vcont {
            self.send("vCont;c")
        } else {
            self.send("c")
        }
    }

    /// Resumes every thread, `thread` receiving `signal` (gdb's number) as
    /// it goes on (`vCont;C<sig>:<thread>;c`, as gdb passes a signal).
    pub fn resume_continue_with(&mut self, thread: &str, signal: Option<u8>) -> Result<()> {
        let Some(signal) = signal else {
            return self.resume_continue();
        };
        self.selected_thread = None;
        self.unexpected_stop = None;
        if self.vcont {
            self.send(&format!("vCont;C{signal:02x}:{thread};c"))
        } else {
            // Without vCont the signal goes to the thread that stopped.
            self.send(&format!("C{signal:02x}"))
        }
    }

    /// Single-steps one thread, the others staying stopped, delivering
    /// `signal` (gdb's number) to it first when given (`vCont;S<sig>:<thread>`): with a handler, the
    /// step ends on the handler's first instruction.
    pub fn resume_step_with(&mut self, thread: &str, signal: Option<u8>) -> Result<()> {
        self.selected_thread = None;
        self.unexpected_stop = None;
        match (self.vcont, signal) {
            (true, None) => self.send(&format!("vCont;s:{thread}")),
            (true, Some(sig)) => self.send(&format!("vCont;S{sig:02x}:{thread}")),
            (false, None) => self.send("s"),
            (false, Some(sig)) => self.send(&format!("S{sig:02x}")),
        }
    }

    /// Whether the stub range-steps ([`Self::range_step`]).
    pub fn can_range_step(&self) -> bool {
        self.range_step
    }

    /// gdb's range stepping: steps `thread`, the others staying stopped,
    /// while its pc stays in `[start, end)`; the stop reply (the first pc
    /// outside, or a breakpoint, watchpoint, signal or exit before it)
    /// arrives via [`Self::next_packet`]. Only for a stub that offers it.
    pub fn range_step(&mut self, thread: &str, start: u64, end: u64) -> Result<()> {
        if !self.range_step {
            bail!("the gdb stub does not range-step (no `r` in its vCont? reply)");
        }
        self.selected_thread = None;
        self.unexpected_stop = None;
        self.send(&format!("vCont;r{start:x},{end:x}:{thread}"))
    }

    /// One instruction backwards (`bs`); the stop reply arrives via
    /// [`Self::next_packet`].
    pub fn resume_reverse_step(&mut self) -> Result<()> {
        self.selected_thread = None;
        self.unexpected_stop = None;
        self.send("bs")
    }

    /// Runs backwards until a breakpoint, a watchpoint or the start of the
    /// recording (`bc`).
    pub fn resume_reverse_continue(&mut self) -> Result<()> {
        self.selected_thread = None;
        self.unexpected_stop = None;
        self.send("bc")
    }

    /// Parses the stop reply that ends a resume, passing on console output.
    pub async fn wait_stop(&mut self, mut on_output: impl FnMut(Vec<u8>)) -> Result<StopReply> {
        loop {
            let packet = self.next_packet().await?;
            match StopReply::parse(&packet)? {
                StopReply::Output(bytes) => on_output(bytes),
                stop => {
                    // A stop names its thread, and the stub makes that thread
                    // the one register and memory reads address (gdb relies
                    // on it too): no `Hg` for it before the next read.
                    if let StopReply::Signal {
                        thread: Some(thread),
                        ..
                    } = &stop
                    {
                        self.selected_thread = Some(thread.clone());
                    }
                    return Ok(stop);
                }
            }
        }
    }

    /// Leaves the target running and closes the session (`D`).
    pub async fn detach(&mut self) -> Result<()> {
        self.request_ok("D").await
    }

    /// Ends the target (`k`); the stub may close without a reply.
    pub fn kill(&mut self) -> Result<()> {
        self.send("k")
    }
}

/// The actions a `vCont?` reply lists (`vCont;c;C;s;S;r` → c, C, s, S, r).
fn vcont_actions(reply: &[u8]) -> Vec<&str> {
    let Some(rest) = reply.strip_prefix(b"vCont") else {
        return Vec::new();
    };
    std::str::from_utf8(rest)
        .unwrap_or("")
        .split(';')
        .filter(|a| !a.is_empty())
        .collect()
}

/// `VMDBG_RANGE_STEP=0` (or `false`, `off`) turns range stepping off.
fn range_step_wanted() -> bool {
    !matches!(
        std::env::var("VMDBG_RANGE_STEP").as_deref(),
        Ok("0" | "false" | "off")
    )
}

/// The file `VMDBG_RSP_LOG` names, opened for appending (several clients
/// of one session write to it); a file that cannot be opened is said once
/// and not logged to.
fn packet_log() -> Option<Arc<std::sync::Mutex<std::fs::File>>> {
    let path = std::env::var_os("VMDBG_RSP_LOG")?;
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        Ok(file) => Some(Arc::new(std::sync::Mutex::new(file))),
        Err(e) => {
            tracing::warn!(
                "VMDBG_RSP_LOG {}: {e}",
                std::path::Path::new(&path).display()
            );
            None
        }
    }
}

fn watch_type(kind: WatchKind) -> u8 {
    match kind {
        WatchKind::Write => 2,
        WatchKind::Read => 3,
        WatchKind::Access => 4,
    }
}

/// Console output (`O` + hex), which `OK` is not.
fn is_output(packet: &[u8]) -> bool {
    packet.first() == Some(&b'O') && packet.len() > 1 && packet != b"OK"
}

/// Whether a packet has the shape of a stop reply: `S`/`T` + a hex signal,
/// `W`/`X` + a hex status. No reply to the other requests vmdbg sends looks
/// like that (hex data, `OK`, `E nn`, `m`/`l` lists, feature lists, `vCont`).
fn is_stop_reply(packet: &[u8]) -> bool {
    let hex2 = |rest: &[u8]| rest.len() >= 2 && rest[..2].iter().all(u8::is_ascii_hexdigit);
    match packet.first() {
        Some(b'S') => packet.len() == 3 && hex2(&packet[1..]),
        Some(b'T') => hex2(&packet[1..]),
        Some(b'W' | b'X') => {
            packet.len() >= 2
                && packet[1..]
                    .split(|&b| b == b';')
                    .next()
                    .is_some_and(|s| !s.is_empty() && s.iter().all(u8::is_ascii_hexdigit))
        }
        _ => false,
    }
}

fn short(payload: &str) -> &str {
    payload.get(..payload.len().min(40)).unwrap_or(payload)
}

fn includes(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find("xi:include") {
        rest = &rest[pos..];
        if let Some(h) = rest.find("href=\"") {
            let value = &rest[h + 6..];
            if let Some(end) = value.find('"') {
                out.push(value[..end].to_string());
            }
        }
        rest = &rest[10..];
    }
    out
}

async fn write_loop(
    mut writer: Box<dyn AsyncWrite + Send + Unpin>,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    while let Some(bytes) = rx.recv().await {
        if writer.write_all(&bytes).await.is_err() || writer.flush().await.is_err() {
            break;
        }
    }
}

async fn read_loop(
    mut reader: Box<dyn AsyncRead + Send + Unpin>,
    tx: mpsc::UnboundedSender<Result<Vec<u8>, String>>,
    acks: mpsc::UnboundedSender<Vec<u8>>,
    no_ack: Arc<AtomicBool>,
) {
    enum State {
        Idle,
        Body,
        Checksum(Vec<u8>),
    }
    let mut buf = [0u8; 8192];
    let mut state = State::Idle;
    let mut body = Vec::new();
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
                return;
            }
        };
        for &b in &buf[..n] {
            state = match state {
                State::Idle => match b {
                    b'$' | b'%' => {
                        body.clear();
                        State::Body
                    }
                    // '+', '-' and line noise between packets.
                    _ => State::Idle,
                },
                State::Body if b == b'#' => State::Checksum(Vec::with_capacity(2)),
                State::Body => {
                    body.push(b);
                    State::Body
                }
                State::Checksum(mut cs) => {
                    cs.push(b);
                    if cs.len() < 2 {
                        State::Checksum(cs)
                    } else {
                        let good = std::str::from_utf8(&cs)
                            .ok()
                            .and_then(|s| u8::from_str_radix(s, 16).ok())
                            .is_some_and(|sum| sum == checksum(&body));
                        let acking = !no_ack.load(Ordering::SeqCst);
                        if acking {
                            let _ = acks.send(vec![if good { b'+' } else { b'-' }]);
                        }
                        if good || !acking {
                            match decode_body(&body) {
                                Ok(p) => {
                                    if tx.send(Ok(p)).is_err() {
                                        return;
                                    }
                                }
                                Err(e) => {
                                    tracing::warn!("dropping a malformed packet from the stub: {e}")
                                }
                            }
                        }
                        State::Idle
                    }
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            "unix:/tmp/x".parse::<Endpoint>().unwrap(),
            Endpoint::Unix("/tmp/x".into())
        );
        assert_eq!(
            "localhost:1234".parse::<Endpoint>().unwrap(),
            Endpoint::Tcp("localhost:1234".into())
        );
        assert_eq!(
            ":1234".parse::<Endpoint>().unwrap(),
            Endpoint::Tcp("127.0.0.1:1234".into())
        );
        assert!("nonsense".parse::<Endpoint>().is_err());
        assert!("host:99999".parse::<Endpoint>().is_err());
        assert!("unix:".parse::<Endpoint>().is_err());
    }

    #[test]
    fn stop_reply_shapes() {
        for stop in [
            &b"T02thread:p01.01;"[..],
            b"S05",
            b"W00",
            b"X09",
            b"W01;process:1",
        ] {
            assert!(is_stop_reply(stop), "{}", String::from_utf8_lossy(stop));
        }
        for other in [
            &b"OK"[..],
            b"E01",
            b"",
            b"PacketSize=1000;qXfer:features:read+",
            b"vCont;c;C;s;S",
            b"m01,02",
            b"l",
            b"Text=0;Data=0",
            b"Sxyz",
        ] {
            assert!(!is_stop_reply(other), "{}", String::from_utf8_lossy(other));
        }
        assert!(is_output(b"O6869"));
        assert!(!is_output(b"OK"));
    }

    #[test]
    fn vcont_reply_actions() {
        assert_eq!(vcont_actions(b"vCont;c;C;s;S;r"), ["c", "C", "s", "S", "r"]);
        assert_eq!(vcont_actions(b"vCont;c;C;s;S"), ["c", "C", "s", "S"]);
        assert!(!vcont_actions(b"vCont;c;C;s;S").contains(&"r"));
        assert!(vcont_actions(b"").is_empty());
        assert!(vcont_actions(b"E01").is_empty());
    }

    /// A stub that answers the attach with a stop before the reply to
    /// `qSupported` (QEMU with a running guest): every later request still
    /// gets its own reply.
    #[tokio::test]
    async fn an_unasked_stop_does_not_shift_replies() {
        let (ours, theirs) = tokio::net::UnixStream::pair().unwrap();
        let stub = tokio::spawn(async move {
            let (mut r, mut w) = theirs.into_split();
            let mut buf = vec![0u8; 4096];
            let mut pending = Vec::new();
            let mut first = true;
            loop {
                let n = r.read(&mut buf).await.unwrap();
                if n == 0 {
                    return;
                }
                pending.extend_from_slice(&buf[..n]);
                while let Some(start) = pending.iter().position(|&b| b == b'$') {
                    let Some(end) = pending[start..].iter().position(|&b| b == b'#') else {
                        break;
                    };
                    if pending.len() < start + end + 3 {
                        break;
                    }
                    let body =
                        String::from_utf8_lossy(&pending[start + 1..start + end]).into_owned();
                    pending.drain(..start + end + 3);
                    let send = |p: &str| frame(p.as_bytes());
                    let mut out = Vec::new();
                    if first {
                        out.extend(send("T02thread:01;"));
                        first = false;
                    }
                    out.push(b'+');
                    let reply = match body.as_str() {
                        b if b.starts_with("qSupported") => "PacketSize=2000".to_string(),
                        "vCont?" => "vCont;c;C;s;S".to_string(),
                        "?" => "T02thread:01;".to_string(),
                        "m1000,4" => {
                            out.extend(send("O6869"));
                            "01020304".to_string()
                        }
                        _ => String::new(),
                    };
                    out.extend(send(&reply));
                    w.write_all(&out).await.unwrap();
                }
            }
        });
        let (r, w) = ours.into_split();
        let mut client = RspClient::over(Box::new(r), Box::new(w)).await.unwrap();
        assert_eq!(client.packet_size, 0x2000);
        assert!(client.vcont);
        assert!(matches!(
            client.take_unexpected_stop(),
            Some(StopReply::Signal { signal: 2, .. })
        ));
        assert!(matches!(
            client.query_stop().await.unwrap(),
            StopReply::Signal { signal: 2, .. }
        ));
        assert_eq!(client.read_memory(0x1000, 4).await.unwrap(), [1, 2, 3, 4]);
        drop(client);
        stub.abort();
    }
}

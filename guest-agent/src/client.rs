//! The host's side of the agent protocol: a blocking client over any byte
//! stream (the QEMU engine's virtio-serial socket, a vsock connection).
//! One background thread reads frames and routes them: replies to the
//! request that is waiting for them, data to the stream's receiver.
//! Safe to share between threads (`Arc<AgentClient>`).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::protocol::*;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the agent connection closed ({0})")]
    Disconnected(String),
    #[error("the agent refused: {0}")]
    Agent(#[from] AgentError),
    #[error("no answer from the agent within {0:?}")]
    Timeout(Duration),
    #[error("unexpected reply from the agent: {0:?}")]
    Unexpected(Reply),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Corrupt(String),
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// A piece of a stream the agent sends.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    Data(Vec<u8>),
    /// The agent sends no more on this stream.
    Closed,
}

type ReplySender = mpsc::Sender<std::result::Result<Reply, AgentError>>;

#[derive(Default)]
struct Routes {
    replies: HashMap<u32, ReplySender>,
    streams: HashMap<u32, mpsc::Sender<Chunk>>,
    /// Why the connection ended, once it has.
    closed: Option<String>,
    /// Which connection is current (see [`AgentClient::reconnect`]): a
    /// reader of an older one ends without closing the client.
    generation: u64,
}

pub struct AgentClient {
    writer: Arc<FrameWriter>,
    routes: Arc<Mutex<Routes>>,
    ready: Mutex<mpsc::Receiver<Event>>,
    protocol_errors: Arc<Mutex<Vec<String>>>,
    next_id: AtomicU32,
    next_stream: AtomicU32,
}

/// A request whose reply has not come yet.
pub struct Pending {
    rx: mpsc::Receiver<std::result::Result<Reply, AgentError>>,
    routes: Arc<Mutex<Routes>>,
}

impl Pending {
    pub fn wait(self) -> Result<Reply> {
        match self.rx.recv() {
            Ok(r) => Ok(r?),
            Err(_) => Err(disconnected(&self.routes)),
        }
    }

    /// None when no reply came within `limit`.
    pub fn wait_timeout(&self, limit: Duration) -> Option<Result<Reply>> {
        match self.rx.recv_timeout(limit) {
            Ok(r) => Some(r.map_err(ClientError::from)),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => Some(Err(disconnected(&self.routes))),
        }
    }
}

fn disconnected(routes: &Mutex<Routes>) -> ClientError {
    ClientError::Disconnected(
        routes
            .lock()
            .unwrap()
            .closed
            .clone()
            .unwrap_or_else(|| "reader ended".into()),
    )
}

/// What to run with [`AgentClient::exec`].
#[derive(Clone, Debug)]
pub struct ExecOptions {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub clear_env: bool,
    pub cwd: Option<String>,
    pub stdio: StdioMode,
    /// Open a stdin stream (else the program reads /dev/null).
    pub stdin: bool,
}

impl ExecOptions {
    pub fn new(argv: impl IntoIterator<Item = impl Into<String>>) -> Self {
        ExecOptions {
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            clear_env: false,
            cwd: None,
            stdio: StdioMode::Pipes,
            stdin: false,
        }
    }
}

/// A program started in the guest.
pub struct Program {
    pub pid: u32,
    /// Its stdout (with a pty: all its terminal output).
    pub stdout: mpsc::Receiver<Chunk>,
    /// Its stderr (closed at once with a pty).
    pub stderr: mpsc::Receiver<Chunk>,
    /// Its stdin, when asked for.
    pub stdin: Option<StreamSender>,
}

/// The host's sending end of a stream.
pub struct StreamSender {
    writer: Arc<FrameWriter>,
    pub stream: u32,
}

impl StreamSender {
    pub fn send(&self, bytes: &[u8]) -> Result<()> {
        Ok(self.writer.send_data(self.stream, bytes)?)
    }
    pub fn close(self) -> Result<()> {
        Ok(self.writer.send(&Frame::close(self.stream))?)
    }
}

/// Facts from the agent's Hello reply.
#[derive(Clone, Debug)]
pub struct AgentInfo {
    pub version: u16,
    pub capabilities: Vec<String>,
    pub agent_version: String,
    pub kernel: String,
}

impl AgentClient {
    /// Starts the reader thread over a connected byte stream.
    pub fn new(reader: impl Read + Send + 'static, writer: impl Write + Send + 'static) -> Self {
        let routes: Arc<Mutex<Routes>> = Default::default();
        let protocol_errors: Arc<Mutex<Vec<String>>> = Default::default();
        let (ready_tx, ready_rx) = mpsc::channel();
        spawn_reader(reader, &routes, &protocol_errors, ready_tx, 0);
        AgentClient {
            writer: Arc::new(FrameWriter::new(writer)),
            routes,
            ready: Mutex::new(ready_rx),
            protocol_errors,
            next_id: AtomicU32::new(1),
            next_stream: AtomicU32::new(1),
        }
    }

    /// Goes on over a new connection to the agent (after a snapshot is
    /// restored, the guest's side of the old one is gone): requests still
    /// waiting on the old connection fail, later ones use the new one, and
    /// [`wait_ready`](Self::wait_ready) waits for the new `Ready`. The same
    /// client (and every `Arc` of it) stays valid.
    pub fn reconnect(
        &self,
        reader: impl Read + Send + 'static,
        writer: impl Write + Send + 'static,
    ) {
        let generation = {
            let mut routes = self.routes.lock().unwrap();
            routes.generation += 1;
            routes.closed = None;
            // Dropping the senders fails the old connection's waiters.
            routes.replies.clear();
            routes.streams.clear();
            routes.generation
        };
        self.writer.replace(writer);
        let (ready_tx, ready_rx) = mpsc::channel();
        *self.ready.lock().unwrap() = ready_rx;
        spawn_reader(
            reader,
            &self.routes,
            &self.protocol_errors,
            ready_tx,
            generation,
        );
    }

    /// Sets the guest's wall clock to the host's (after a restore, the
    /// guest's clock still says when the snapshot was taken).
    pub fn set_clock_from_host(&self) -> Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| ClientError::Corrupt(format!("the host's clock: {e}")))?;
        self.call(Request::SetClock {
            unix_ns: now.as_nanos() as u64,
        })
        .map(drop)
    }

    /// Waits for the agent's `Ready` event (sent when its side opens).
    pub fn wait_ready(&self, limit: Duration) -> Result<Duration> {
        match self.ready.lock().unwrap().recv_timeout(limit) {
            Ok(Event::Ready { uptime_ms, .. }) => Ok(Duration::from_millis(uptime_ms)),
            Ok(other) => Err(ClientError::Corrupt(format!("unexpected event {other:?}"))),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(ClientError::Timeout(limit)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(disconnected(&self.routes)),
        }
    }

    /// Framing or decoding errors the agent reported, oldest first.
    pub fn protocol_errors(&self) -> Vec<String> {
        self.protocol_errors.lock().unwrap().clone()
    }

    /// Sends a request; the reply comes through the returned [`Pending`].
    pub fn request(&self, request: Request) -> Result<Pending> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        {
            let mut routes = self.routes.lock().unwrap();
            if let Some(why) = &routes.closed {
                return Err(ClientError::Disconnected(why.clone()));
            }
            routes.replies.insert(id, tx);
        }
        self.writer.send_control(id, &Message::Request(request))?;
        Ok(Pending {
            rx,
            routes: self.routes.clone(),
        })
    }

    fn call(&self, request: Request) -> Result<Reply> {
        self.request(request)?.wait()
    }

    /// A fresh stream id and the receiver for what the agent sends on it.
    fn open_stream(&self) -> (u32, mpsc::Receiver<Chunk>) {
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        self.routes.lock().unwrap().streams.insert(id, tx);
        (id, rx)
    }

    /// Writes raw bytes on the connection, bypassing framing: for tests
    /// of the agent's handling of damaged input.
    pub fn send_raw(&self, bytes: &[u8]) -> Result<()> {
        Ok(self.writer.send_raw(bytes)?)
    }

    pub fn hello(&self) -> Result<AgentInfo> {
        let caps = ["exec", "file", "channel"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        match self.call(Request::Hello {
            versions: PROTOCOL_VERSIONS.to_vec(),
            capabilities: caps,
        })? {
            Reply::Hello {
                version,
                capabilities,
                agent_version,
                kernel,
            } => Ok(AgentInfo {
                version,
                capabilities,
                agent_version,
                kernel,
            }),
            other => Err(ClientError::Unexpected(other)),
        }
    }

    pub fn exec(&self, options: &ExecOptions) -> Result<Program> {
        let (stdout_stream, stdout) = self.open_stream();
        let (stderr_stream, stderr) = self.open_stream();
        let stdin_stream = options
            .stdin
            .then(|| self.next_stream.fetch_add(1, Ordering::Relaxed));
        let reply = self.call(Request::Exec(ExecRequest {
            argv: options.argv.clone(),
            env: options.env.clone(),
            clear_env: options.clear_env,
            cwd: options.cwd.clone(),
            stdio: options.stdio,
            stdin_stream,
            stdout_stream,
            stderr_stream,
        }));
        let pid = match reply {
            Ok(Reply::Started { pid }) => pid,
            Ok(other) => return Err(ClientError::Unexpected(other)),
            Err(e) => {
                let mut routes = self.routes.lock().unwrap();
                routes.streams.remove(&stdout_stream);
                routes.streams.remove(&stderr_stream);
                return Err(e);
            }
        };
        if matches!(options.stdio, StdioMode::Pty { .. }) {
            // A pty has one output stream; stderr's receiver just ends.
            self.routes.lock().unwrap().streams.remove(&stderr_stream);
        }
        let stdin = stdin_stream.map(|stream| StreamSender {
            writer: self.writer.clone(),
            stream,
        });
        Ok(Program {
            pid,
            stdout,
            stderr,
            stdin,
        })
    }

    /// The program's exit status, once it has ended and its output is in.
    pub fn wait_request(&self, pid: u32) -> Result<Pending> {
        self.request(Request::Wait { pid })
    }

    pub fn wait(&self, pid: u32) -> Result<ExitStatus> {
        match self.call(Request::Wait { pid })? {
            Reply::Exited(status) => Ok(status),
            other => Err(ClientError::Unexpected(other)),
        }
    }

    pub fn signal(&self, pid: u32, signal: i32, group: bool) -> Result<()> {
        self.call(Request::Signal { pid, signal, group }).map(drop)
    }

    /// Copies a host file into the guest, keeping its mode bits.
    pub fn put_file(&self, local: &Path, guest_path: &str) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(local)?;
        let sha256 = sha256_file(local)?;
        let (stream, _unused) = self.open_stream();
        self.routes.lock().unwrap().streams.remove(&stream);
        let pending = self.request(Request::PutFile {
            path: guest_path.into(),
            mode: meta.permissions().mode(),
            size: meta.len(),
            sha256,
            stream,
        })?;
        let mut file = std::fs::File::open(local)?;
        let mut buf = vec![0u8; DATA_CHUNK];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            self.writer.send(&Frame::data(stream, buf[..n].to_vec()))?;
        }
        self.writer.send(&Frame::close(stream))?;
        match pending.wait()? {
            Reply::Done => Ok(()),
            other => Err(ClientError::Unexpected(other)),
        }
    }

    /// Copies a guest file to `local` (through a temporary name, renamed
    /// once size and SHA-256 match); returns what the agent reported.
    pub fn get_file(&self, guest_path: &str, local: &Path) -> Result<(u64, u32, [u8; 32])> {
        use std::os::unix::fs::PermissionsExt;
        let (stream, chunks) = self.open_stream();
        let pending = self.request(Request::GetFile {
            path: guest_path.into(),
            stream,
        })?;
        let temp = local.with_file_name(format!(
            ".{}.vmdbg-part",
            local
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let mut out = std::fs::File::create(&temp)?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let result = (|| {
            // The reply comes after the close, so read the data first;
            // a refusal (no such file) comes without any data.
            loop {
                match chunks.recv_timeout(Duration::from_millis(50)) {
                    Ok(Chunk::Data(bytes)) => {
                        hasher.update(&bytes);
                        size += bytes.len() as u64;
                        out.write_all(&bytes)?;
                    }
                    Ok(Chunk::Closed) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if let Some(reply) = pending.wait_timeout(Duration::ZERO) {
                            return Err(ClientError::Unexpected(reply?));
                        }
                    }
                }
            }
            match pending.wait()? {
                Reply::File {
                    size: their_size,
                    mode,
                    sha256,
                } => {
                    let ours: [u8; 32] = std::mem::take(&mut hasher).finalize().into();
                    if their_size != size || sha256 != ours {
                        return Err(ClientError::Corrupt(format!(
                            "get {guest_path}: received {size} bytes, agent sent {their_size}; checksums {}",
                            if sha256 == ours { "match" } else { "differ" }
                        )));
                    }
                    out.sync_all()?;
                    std::fs::set_permissions(
                        &temp,
                        std::fs::Permissions::from_mode(mode & 0o7777),
                    )?;
                    std::fs::rename(&temp, local)?;
                    Ok((size, mode, sha256))
                }
                other => Err(ClientError::Unexpected(other)),
            }
        })();
        self.routes.lock().unwrap().streams.remove(&stream);
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result
    }

    /// A raw byte stream to an agent service (e.g. `gdbserver`): returns a
    /// local socket whose other end is relayed to the service, so any RSP
    /// client code that talks to a socket works unchanged.
    pub fn open_channel(&self, service: &str, args: Vec<String>) -> Result<UnixStream> {
        let (stream, chunks) = self.open_stream();
        match self.call(Request::OpenChannel {
            stream,
            service: service.into(),
            args,
        }) {
            Ok(Reply::Done) => {}
            Ok(other) => return Err(ClientError::Unexpected(other)),
            Err(e) => {
                self.routes.lock().unwrap().streams.remove(&stream);
                return Err(e);
            }
        }
        let (user_end, relay_end) = UnixStream::pair()?;
        let mut to_user = relay_end.try_clone()?;
        std::thread::spawn(move || {
            while let Ok(Chunk::Data(bytes)) = chunks.recv() {
                if to_user.write_all(&bytes).is_err() {
                    break;
                }
            }
            let _ = to_user.shutdown(std::net::Shutdown::Write);
        });
        let writer = self.writer.clone();
        let mut from_user = relay_end;
        std::thread::spawn(move || {
            let mut buf = vec![0u8; DATA_CHUNK];
            while let Ok(n @ 1..) = from_user.read(&mut buf) {
                if writer
                    .send(&Frame::data(stream, buf[..n].to_vec()))
                    .is_err()
                {
                    return;
                }
            }
            let _ = writer.send(&Frame::close(stream));
        });
        Ok(user_end)
    }

    /// Asks the guest to power off. The connection ends soon after.
    pub fn poweroff(&self) -> Result<()> {
        self.call(Request::Poweroff).map(drop)
    }
}

fn spawn_reader(
    reader: impl Read + Send + 'static,
    routes: &Arc<Mutex<Routes>>,
    errors: &Arc<Mutex<Vec<String>>>,
    ready: mpsc::Sender<Event>,
    generation: u64,
) {
    let (routes, errors) = (routes.clone(), errors.clone());
    std::thread::Builder::new()
        .name("agent-reader".into())
        .spawn(move || read_loop(reader, routes, errors, ready, generation))
        .expect("spawn agent reader");
}

fn read_loop(
    reader: impl Read,
    routes: Arc<Mutex<Routes>>,
    errors: Arc<Mutex<Vec<String>>>,
    ready: mpsc::Sender<Event>,
    generation: u64,
) {
    let mut frames = FrameReader::new(reader);
    let why = loop {
        let frame = match frames.read_frame() {
            Ok(Ok(frame)) => frame,
            Ok(Err(bad)) => {
                errors
                    .lock()
                    .unwrap()
                    .push(format!("from the agent: {bad}"));
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break "the guest side closed".to_string()
            }
            Err(e) => break e.to_string(),
        };
        match frame.kind {
            FrameKind::Control => match decode_control(&frame.payload) {
                Ok((id, Message::Reply(reply))) => {
                    if let Some(tx) = routes.lock().unwrap().replies.remove(&id) {
                        let _ = tx.send(reply);
                    }
                }
                Ok((_, Message::Event(Event::ProtocolError { message, .. }))) => {
                    errors.lock().unwrap().push(message);
                }
                Ok((_, Message::Event(event))) => {
                    let _ = ready.send(event);
                }
                Ok((_, Message::Request(r))) => errors
                    .lock()
                    .unwrap()
                    .push(format!("agent sent a request: {r:?}")),
                Err((_, why)) => errors.lock().unwrap().push(why),
            },
            FrameKind::Data => {
                if let Some(tx) = routes.lock().unwrap().streams.get(&frame.stream) {
                    let _ = tx.send(Chunk::Data(frame.payload));
                }
            }
            FrameKind::Close => {
                if let Some(tx) = routes.lock().unwrap().streams.remove(&frame.stream) {
                    let _ = tx.send(Chunk::Closed);
                }
            }
        }
    };
    let mut routes = routes.lock().unwrap();
    if routes.generation != generation {
        // A newer connection took over (reconnect); this one just ends.
        return;
    }
    routes.closed = Some(why);
    // Dropping the senders wakes every waiter with "disconnected".
    routes.replies.clear();
    routes.streams.clear();
}

pub fn sha256_file(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hasher.finalize().into())
}

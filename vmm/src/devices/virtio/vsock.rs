//! virtio-vsock in Firecracker's style: the guest's vsock is bridged to
//! host unix sockets.
//!
//! - Host to guest: a client connects to the unix socket `PATH`, writes
//!   `CONNECT <port>\n`, and once the guest accepts it reads
//!   `OK <host port>\n`; from then on the stream is the connection.
//! - Guest to host: a guest `connect(2, port)` (CID 2 is the host) is
//!   bridged to a connection to the unix socket `PATH_<port>`.
//!
//! The device owns the connection table and its credit accounting (virtio
//! 1.2, 5.10.6.3). Packets are framed with the virtio-vsock crate; chains
//! are checked with [`super::read_chain`] first. Host sockets are served by
//! the transport's host poller thread, guest packets on the notifying vCPU.

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use crate::vm::GuestMemoryMmap;
use virtio_queue::Queue;
use virtio_vsock::packet::{VsockPacket, PKT_HEADER_SIZE};
use vm_memory::bitmap::BitmapSlice;

use super::{add_used, next_chain, read_chain, DeviceError, VirtioDevice};
use crate::error::{Error, Result};

const DEVICE_ID_VSOCK: u32 = 19;
const HOST_CID: u64 = 2;
const QUEUE_SIZE: u16 = 256;
const RX: usize = 0;
const TX: usize = 1;
const EVENT: usize = 2;
/// virtio_vsock_event.id: the device's connections are gone.
const EVENT_TRANSPORT_RESET: u32 = 0;
/// Largest payload of one packet, as Linux's driver uses.
const MAX_PAYLOAD: u32 = 64 * 1024;
/// What each connection tells the guest it may have in flight.
const CONN_BUF_ALLOC: u32 = 256 * 1024;
/// Send a credit update once the guest may have used this much of it.
const CREDIT_UPDATE_THRESHOLD: u32 = CONN_BUF_ALLOC / 4;
/// Host ports for host-initiated connections start here, away from the
/// ports guests listen on.
const FIRST_LOCAL_PORT: u32 = 1 << 30;
const MAX_CONNECT_LINE: usize = 64;

const TYPE_STREAM: u16 = 1;
const OP_REQUEST: u16 = 1;
const OP_RESPONSE: u16 = 2;
const OP_RST: u16 = 3;
const OP_SHUTDOWN: u16 = 4;
const OP_RW: u16 = 5;
const OP_CREDIT_UPDATE: u16 = 6;
const OP_CREDIT_REQUEST: u16 = 7;
const SHUTDOWN_SEND: u32 = 2;
const SHUTDOWN_BOTH: u32 = 3;

/// A connection, keyed by (host-side port, guest-side port).
type Key = (u32, u32);

struct Conn {
    stream: UnixStream,
    /// Host-initiated and waiting for the guest's RESPONSE.
    connecting: bool,
    /// Bytes the host end sent, waiting for the guest's RX buffers.
    inbox: Vec<u8>,
    host_eof: bool,
    peer_buf_alloc: u32,
    peer_fwd_cnt: u32,
    /// Bytes sent to the guest.
    tx_cnt: u32,
    /// Bytes received from the guest and passed to the host.
    fwd_cnt: u32,
    fwd_cnt_sent: u32,
}

impl Conn {
    fn new(stream: UnixStream, connecting: bool) -> Self {
        Self {
            stream,
            connecting,
            inbox: Vec::new(),
            host_eof: false,
            peer_buf_alloc: 0,
            peer_fwd_cnt: 0,
            tx_cnt: 0,
            fwd_cnt: 0,
            fwd_cnt_sent: 0,
        }
    }

    /// How much more the guest has room for.
    fn peer_credit(&self) -> u32 {
        self.peer_buf_alloc
            .saturating_sub(self.tx_cnt.wrapping_sub(self.peer_fwd_cnt))
    }
}

/// A host client that has connected but not yet sent its CONNECT line.
struct Handshake {
    stream: UnixStream,
    line: Vec<u8>,
}

/// A packet with no payload, waiting for an RX buffer.
#[derive(Clone, Copy, Debug)]
struct Control {
    op: u16,
    local: u32,
    peer: u32,
    flags: u32,
}

pub struct Vsock {
    guest_cid: u64,
    uds_path: PathBuf,
    listener: UnixListener,
    handshakes: Vec<Handshake>,
    conns: HashMap<Key, Conn>,
    control: VecDeque<Control>,
    next_local_port: u32,
    config: [u8; 8],
    /// Data waits and the guest has posted no RX buffer: host sockets are
    /// not polled until it does (or they would wake the poller for ever).
    rx_starved: bool,
}

impl Vsock {
    /// Listens on `uds_path` for host-initiated connections.
    pub fn new(guest_cid: u64, uds_path: &Path) -> Result<Self> {
        let bad = |why: String| Error::Vsock {
            path: uds_path.to_path_buf(),
            why,
        };
        if guest_cid <= HOST_CID || guest_cid >= u32::MAX as u64 {
            return Err(bad(format!(
                "--vsock-cid {guest_cid}: a guest CID must be 3 or more (0-2 are reserved) and below 2^32-1"
            )));
        }
        // A socket file left by an earlier run would make bind fail.
        if std::fs::symlink_metadata(uds_path)
            .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
        {
            let _ = std::fs::remove_file(uds_path);
        }
        let listener = vmdbg_gdb_common::listen::bind_unix_owner_only(uds_path)
            .map_err(|e| bad(format!("cannot listen: {e}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            guest_cid,
            uds_path: uds_path.to_path_buf(),
            listener,
            handshakes: Vec::new(),
            conns: HashMap::new(),
            control: VecDeque::new(),
            next_local_port: FIRST_LOCAL_PORT,
            config: guest_cid.to_le_bytes(),
            rx_starved: false,
        })
    }

    fn reply(&mut self, op: u16, local: u32, peer: u32, flags: u32) {
        self.control.push_back(Control {
            op,
            local,
            peer,
            flags,
        });
    }

    fn accept_host_clients(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_ok() {
                        self.handshakes.push(Handshake {
                            stream,
                            line: Vec::new(),
                        });
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::warn!("vsock {}: accept: {e}", self.uds_path.display());
                    break;
                }
            }
        }
        let mut still_waiting = Vec::new();
        for mut hs in std::mem::take(&mut self.handshakes) {
            let mut byte = [0u8; 1];
            let mut done = None;
            loop {
                match hs.stream.read(&mut byte) {
                    Ok(0) => {
                        done = Some(Err(()));
                        break;
                    }
                    Ok(_) if byte[0] == b'\n' => {
                        done = Some(Ok(()));
                        break;
                    }
                    Ok(_) if hs.line.len() < MAX_CONNECT_LINE => hs.line.push(byte[0]),
                    Ok(_) => {
                        done = Some(Err(()));
                        break;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        done = Some(Err(()));
                        break;
                    }
                }
            }
            match done {
                None => still_waiting.push(hs),
                Some(Err(())) => {}
                Some(Ok(())) => {
                    let line = String::from_utf8_lossy(&hs.line).trim().to_string();
                    let port = line
                        .strip_prefix("CONNECT ")
                        .and_then(|p| p.trim().parse::<u32>().ok());
                    match port {
                        Some(peer) => {
                            let local = self.next_local_port;
                            self.next_local_port =
                                self.next_local_port.wrapping_add(1).max(FIRST_LOCAL_PORT);
                            self.conns.insert((local, peer), Conn::new(hs.stream, true));
                            self.reply(OP_REQUEST, local, peer, 0);
                        }
                        None => {
                            let _ = hs.stream.write_all(b"ERROR expected `CONNECT <port>`\n");
                        }
                    }
                }
            }
        }
        self.handshakes = still_waiting;
    }

    /// Handles one packet from the guest.
    fn handle_tx<B: BitmapSlice>(&mut self, pkt: &VsockPacket<'_, B>) {
        let local = pkt.dst_port();
        let peer = pkt.src_port();
        if pkt.src_cid() != self.guest_cid || pkt.dst_cid() != HOST_CID {
            tracing::debug!(
                "vsock: dropping a packet from CID {} to CID {}",
                pkt.src_cid(),
                pkt.dst_cid()
            );
            return;
        }
        if pkt.type_() != TYPE_STREAM {
            self.reply(OP_RST, local, peer, 0);
            return;
        }
        let key = (local, peer);
        if pkt.op() == OP_REQUEST {
            if self.conns.contains_key(&key) {
                self.reply(OP_RST, local, peer, 0);
                return;
            }
            let target = format!("{}_{local}", self.uds_path.display());
            match UnixStream::connect(&target).and_then(|s| s.set_nonblocking(true).map(|_| s)) {
                Ok(stream) => {
                    let mut conn = Conn::new(stream, false);
                    conn.peer_buf_alloc = pkt.buf_alloc();
                    conn.peer_fwd_cnt = pkt.fwd_cnt();
                    self.conns.insert(key, conn);
                    self.reply(OP_RESPONSE, local, peer, 0);
                }
                Err(e) => {
                    tracing::info!("vsock: guest connection to port {local}: {target}: {e}");
                    self.reply(OP_RST, local, peer, 0);
                }
            }
            return;
        }
        let Some(conn) = self.conns.get_mut(&key) else {
            if pkt.op() != OP_RST {
                self.reply(OP_RST, local, peer, 0);
            }
            return;
        };
        conn.peer_buf_alloc = pkt.buf_alloc();
        conn.peer_fwd_cnt = pkt.fwd_cnt();
        match pkt.op() {
            OP_RESPONSE if conn.connecting => {
                conn.connecting = false;
                let ok = format!("OK {local}\n");
                if write_all_patiently(&mut conn.stream, ok.as_bytes()).is_err() {
                    self.conns.remove(&key);
                    self.reply(OP_RST, local, peer, 0);
                }
            }
            OP_RW => {
                let mut data = vec![0u8; pkt.len() as usize];
                if let Some(slice) = pkt.data_slice() {
                    let n = data.len().min(slice.len());
                    slice.copy_to(&mut data[..n]);
                    data.truncate(n);
                }
                conn.fwd_cnt = conn.fwd_cnt.wrapping_add(data.len() as u32);
                if write_all_patiently(&mut conn.stream, &data).is_err() {
                    self.conns.remove(&key);
                    self.reply(OP_RST, local, peer, 0);
                    return;
                }
                if conn.fwd_cnt.wrapping_sub(conn.fwd_cnt_sent) >= CREDIT_UPDATE_THRESHOLD {
                    self.reply(OP_CREDIT_UPDATE, local, peer, 0);
                }
            }
            OP_CREDIT_REQUEST => self.reply(OP_CREDIT_UPDATE, local, peer, 0),
            OP_CREDIT_UPDATE => {}
            OP_SHUTDOWN => {
                let flags = pkt.flags();
                if flags & SHUTDOWN_SEND != 0 {
                    let _ = conn.stream.shutdown(std::net::Shutdown::Write);
                }
                if flags & SHUTDOWN_BOTH == SHUTDOWN_BOTH {
                    self.conns.remove(&key);
                    self.reply(OP_RST, local, peer, 0);
                }
            }
            OP_RST => {
                self.conns.remove(&key);
            }
            _ => {
                self.conns.remove(&key);
                self.reply(OP_RST, local, peer, 0);
            }
        }
    }

    /// Reads what host ends have sent, within each guest's credit.
    fn fill_inboxes(&mut self) {
        let mut closed = Vec::new();
        for (key, conn) in &mut self.conns {
            if conn.connecting || conn.host_eof || !conn.inbox.is_empty() {
                continue;
            }
            let room = conn.peer_credit().min(MAX_PAYLOAD) as usize;
            if room == 0 {
                continue;
            }
            let mut buf = vec![0u8; room];
            match conn.stream.read(&mut buf) {
                Ok(0) => {
                    conn.host_eof = true;
                    closed.push(*key);
                }
                Ok(n) => {
                    buf.truncate(n);
                    conn.inbox = buf;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => {
                    conn.host_eof = true;
                    closed.push(*key);
                }
            }
        }
        for (local, peer) in closed {
            self.reply(OP_SHUTDOWN, local, peer, SHUTDOWN_BOTH);
        }
    }

    fn has_rx_work(&self) -> bool {
        !self.control.is_empty() || self.conns.values().any(|c| !c.inbox.is_empty())
    }

    /// Fills one RX buffer; returns the bytes used.
    fn fill_rx<B: BitmapSlice>(&mut self, pkt: &mut VsockPacket<'_, B>) -> u32 {
        let (op, local, peer, flags, data) = match self.control.pop_front() {
            Some(c) => (c.op, c.local, c.peer, c.flags, Vec::new()),
            None => {
                let room = pkt.data_slice().map_or(0, |s| s.len());
                let Some((key, conn)) = self.conns.iter_mut().find(|(_, c)| !c.inbox.is_empty())
                else {
                    return 0;
                };
                let n = conn.inbox.len().min(room);
                let data: Vec<u8> = conn.inbox.drain(..n).collect();
                (OP_RW, key.0, key.1, 0, data)
            }
        };
        let fwd_cnt = match self.conns.get_mut(&(local, peer)) {
            Some(conn) => {
                conn.tx_cnt = conn.tx_cnt.wrapping_add(data.len() as u32);
                conn.fwd_cnt_sent = conn.fwd_cnt;
                conn.fwd_cnt
            }
            None => 0,
        };
        if op == OP_SHUTDOWN && flags == SHUTDOWN_BOTH {
            // The host end is gone; the guest answers with RST.
            self.conns.remove(&(local, peer));
        }
        pkt.set_src_cid(HOST_CID)
            .set_dst_cid(self.guest_cid)
            .set_src_port(local)
            .set_dst_port(peer)
            .set_type(TYPE_STREAM)
            .set_op(op)
            .set_flags(flags)
            .set_buf_alloc(CONN_BUF_ALLOC)
            .set_fwd_cnt(fwd_cnt)
            .set_len(data.len() as u32);
        if let Some(slice) = pkt.data_slice() {
            slice.copy_from(&data[..data.len().min(slice.len())]);
        }
        (PKT_HEADER_SIZE + data.len()) as u32
    }
}

/// Writes all of `data` to a non-blocking stream, waiting for room for at
/// most a few seconds: a host client that stops reading loses its
/// connection rather than stalling the vCPU for ever.
fn write_all_patiently(stream: &mut UnixStream, mut data: &[u8]) -> std::io::Result<()> {
    let mut waits = 0;
    while !data.is_empty() {
        match stream.write(data) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock && waits < 50 => {
                waits += 1;
                let mut pfd = libc::pollfd {
                    fd: stream.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut pfd, 1, 100) };
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl VirtioDevice for Vsock {
    fn name(&self) -> &'static str {
        "vsock"
    }

    fn device_id(&self) -> u32 {
        DEVICE_ID_VSOCK
    }

    fn features(&self) -> u64 {
        super::VIRTIO_F_VERSION_1
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE, QUEUE_SIZE]
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_config_bytes(&self.config, offset, data);
    }

    fn process(
        &mut self,
        queues: &mut [Queue],
        mem: &GuestMemoryMmap,
    ) -> std::result::Result<bool, DeviceError> {
        let mut used = false;
        while let Some(chain) = next_chain(&mut queues[TX], mem)? {
            let head = chain.head_index();
            read_chain(chain.clone(), mem)?;
            let mut chain = chain;
            match VsockPacket::from_tx_virtq_chain(mem, &mut chain, MAX_PAYLOAD) {
                Ok(pkt) => self.handle_tx(&pkt),
                Err(e) => tracing::warn!("vsock: dropping a malformed TX packet: {e:?}"),
            }
            add_used(&mut queues[TX], mem, head, 0)?;
            used = true;
        }

        self.accept_host_clients();
        self.fill_inboxes();
        self.rx_starved = false;
        while self.has_rx_work() {
            let Some(chain) = next_chain(&mut queues[RX], mem)? else {
                self.rx_starved = true;
                break;
            };
            let head = chain.head_index();
            read_chain(chain.clone(), mem)?;
            let mut chain = chain;
            let written = match VsockPacket::from_rx_virtq_chain(mem, &mut chain, MAX_PAYLOAD) {
                Ok(mut pkt) => self.fill_rx(&mut pkt),
                Err(e) => {
                    tracing::warn!("vsock: skipping a malformed RX buffer: {e:?}");
                    0
                }
            };
            add_used(&mut queues[RX], mem, head, written)?;
            used = true;
            self.fill_inboxes();
        }
        Ok(used)
    }

    /// Connections are host sockets and do not survive a snapshot: as
    /// Firecracker does, the guest gets VIRTIO_VSOCK_EVENT_TRANSPORT_RESET
    /// on the event queue and drops its connections (listening sockets
    /// stay); new ones work as before.
    fn restored(
        &mut self,
        queues: &mut [Queue],
        mem: &GuestMemoryMmap,
    ) -> std::result::Result<bool, DeviceError> {
        let Some(chain) = next_chain(&mut queues[EVENT], mem)? else {
            tracing::warn!("vsock: no event buffer for the transport reset after a restore");
            return Ok(false);
        };
        let head = chain.head_index();
        let descriptors = read_chain(chain, mem)?;
        let Some(d) = descriptors
            .iter()
            .find(|d| d.is_write_only() && d.len() >= 4)
        else {
            return Err(DeviceError(format!(
                "event chain at head {head} has no writable buffer of 4 bytes"
            )));
        };
        super::guest_write(mem, d.addr(), &EVENT_TRANSPORT_RESET.to_le_bytes())?;
        add_used(&mut queues[EVENT], mem, head, 4)?;
        Ok(true)
    }

    fn reset(&mut self) {
        self.conns.clear();
        self.control.clear();
        self.handshakes.clear();
        self.rx_starved = false;
    }

    fn host_fds(&self) -> Vec<i32> {
        let mut fds = vec![self.listener.as_raw_fd()];
        fds.extend(self.handshakes.iter().map(|h| h.stream.as_raw_fd()));
        if !self.rx_starved {
            fds.extend(
                self.conns
                    .values()
                    .filter(|c| {
                        !c.connecting && !c.host_eof && c.inbox.is_empty() && c.peer_credit() > 0
                    })
                    .map(|c| c.stream.as_raw_fd()),
            );
        }
        fds
    }
}

impl Drop for Vsock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.uds_path);
    }
}

//! A raw gdb remote-protocol client, for tests that must see exactly what a
//! stub replies, and the malformed packets the robustness tests send to
//! both stubs.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{vmm, ChildGuard};

/// Packets, acks and replies over any byte stream (TCP, unix socket).
pub struct RawRsp<S: Read + Write>(pub S);

impl<S: Read + Write> RawRsp<S> {
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).expect("write to the stub");
    }

    pub fn send(&mut self, body: &str) {
        let sum = body.bytes().fold(0u8, |s, b| s.wrapping_add(b));
        self.send_raw(format!("${body}#{sum:02x}").as_bytes());
    }

    fn byte(&mut self) -> u8 {
        let mut b = [0u8];
        self.0
            .read_exact(&mut b)
            .expect("the stub closed the connection");
        b[0]
    }

    /// The next reply's body (run-length decoded), acked; a NAK is "-".
    pub fn reply(&mut self) -> String {
        loop {
            match self.byte() {
                b'+' => continue,
                b'-' => return "-".into(),
                b'$' => break,
                other => panic!("unexpected byte {other:#x} from the stub"),
            }
        }
        let mut body = Vec::new();
        loop {
            match self.byte() {
                b'#' => break,
                b => body.push(b),
            }
        }
        let _checksum = [self.byte(), self.byte()];
        // The stub may already be gone after a final reply.
        let _ = self.0.write_all(b"+");
        let mut plain = Vec::new();
        let mut bytes = body.into_iter();
        while let Some(b) = bytes.next() {
            if b == b'*' {
                let repeat = bytes.next().expect("run length") - 29;
                let last = *plain.last().expect("a run repeats a byte");
                plain.extend(std::iter::repeat_n(last, repeat as usize));
            } else {
                plain.push(b);
            }
        }
        String::from_utf8_lossy(&plain).into_owned()
    }

    pub fn ask(&mut self, body: &str) -> String {
        self.send(body);
        self.reply()
    }

    /// gdb's `monitor CMD` (qRcmd): the console output it printed.
    pub fn monitor(&mut self, cmd: &str) -> String {
        let hex: String = cmd.bytes().map(|b| format!("{b:02x}")).collect();
        self.send(&format!("qRcmd,{hex}"));
        let mut out = String::new();
        loop {
            let r = self.reply();
            if r == "OK" {
                return out;
            }
            let Some(h) = r.strip_prefix('O') else {
                panic!("monitor {cmd}: unexpected reply {r}");
            };
            let bytes: Vec<u8> = (0..h.len() / 2)
                .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            out.push_str(&String::from_utf8_lossy(&bytes));
        }
    }

    /// A vmdbg-vmm recording's position: `icount` of `monitor record
    /// status`.
    pub fn record_icount(&mut self) -> u64 {
        let status = self.monitor("record status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("icount: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no icount in: {status}"))
    }
}

/// `vmdbg-vmm --wait-gdb` on `elf` (with `extra` arguments) with its stub
/// on a unix socket in a fresh directory (returned, for the caller to
/// remove), and a client connected to it.
pub fn vmm_waiting_for_gdb(
    elf: &Path,
    extra: &[&str],
    name: &str,
) -> (ChildGuard, RawRsp<UnixStream>, PathBuf) {
    let dir = std::env::temp_dir().join(format!("vmdbg-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("gdb.sock");
    let mut cmd = vmm();
    cmd.arg("--kernel")
        .arg(elf)
        .arg("--gdb")
        .arg(format!("unix:{}", sock.display()))
        .arg("--wait-gdb")
        .args(extra);
    let mut guard = ChildGuard::spawn(cmd, "vmdbg-vmm");
    guard.wait_for_stderr("waiting for gdb", Duration::from_secs(10));
    let stream = UnixStream::connect(&sock).expect("connect to the stub");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    (guard, RawRsp(stream), dir)
}

/// Packets from the report of issue 18, each of which once ended a
/// session of vmdbg-vmm's stub, and their kin.
pub const REPORTED: &[&str] = &[
    "M200000,4:zzzz",
    "vCont;q",
    "qXfer:features:read:nope.xml:0,ffffffff",
    "Z2,208000,16",
    // An address wider than the target's 64 bits.
    "Z0,123456789abcdef0123,1",
    "m123456789abcdef0123,1",
];

/// Packets a stub must answer without running, writing or ending
/// anything: known commands whose arguments cannot parse, unknown
/// packets. Deterministic for a seed.
///
/// Commands that resume, kill, detach, restart or change the launch
/// setup are never generated, and the arguments of the ones that write
/// (`M`, `X`, `G`, `P`, `Z`) start with a non-hex `z`, so no generated
/// packet can be a valid write by chance.
pub fn malformed_packets(seed: u64, count: usize) -> Vec<String> {
    const PREFIXES: &[&str] = &[
        "m",
        "M",
        "X",
        "G",
        "p",
        "P",
        "Z0,",
        "Z1,",
        "Z2,",
        "Z3,",
        "Z4,",
        "z0,",
        "z2,",
        "Hg",
        "Hc",
        "T",
        "qXfer:features:read:",
        "qXfer:features:read:target.xml:",
        "qXfer:libraries-svr4:read::",
        "qXfer:auxv:read::",
        "qXfer:exec-file:read:",
        "qRcmd,",
        "qThreadExtraInfo,",
        "vFile:pread:",
        "vFile:close:",
        "qVmdbgNoSuch",
        "vNoSuch;",
    ];
    const ALPHABET: &[u8] = b"0123456789abcdefz,:;.-xX+|~ ";
    let mut state = seed | 1;
    let mut next = move || {
        // xorshift64: enough spread for test inputs, no dependency.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|_| {
            let prefix = PREFIXES[(next() % PREFIXES.len() as u64) as usize];
            let len = (next() % 24) as usize;
            let tail: String = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize] as char)
                .collect();
            format!("{prefix}z{tail}")
        })
        .collect()
}

/// A packet longer than gdbstub's default packet buffer (4096 bytes).
pub fn oversized_packet() -> String {
    format!("m{},1", "z".repeat(5000))
}

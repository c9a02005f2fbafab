//! The agent and the host client talking over a socket pair on the host:
//! the protocol's behaviour without a VM (the VM tests are in tests/).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use vmdbg_agent::client::{AgentClient, Chunk, ClientError, ExecOptions};
use vmdbg_agent::protocol::*;

fn connected() -> AgentClient {
    let (host, guest) = UnixStream::pair().unwrap();
    let guest_reader = guest.try_clone().unwrap();
    std::thread::spawn(move || vmdbg_agent::agent::serve(guest_reader, guest));
    let client = AgentClient::new(host.try_clone().unwrap(), host);
    client
        .wait_ready(Duration::from_secs(5))
        .expect("ready event");
    client
}

fn collect(rx: &std::sync::mpsc::Receiver<Chunk>) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(Chunk::Data(d)) = rx.recv_timeout(Duration::from_secs(10)) {
        out.extend(d);
    }
    out
}

#[test]
fn hello_negotiates_version_and_reports_capabilities() {
    let c = connected();
    let info = c.hello().unwrap();
    assert_eq!(info.version, 1);
    assert!(
        info.capabilities.iter().any(|c| c == "exec"),
        "{:?}",
        info.capabilities
    );
}

#[test]
fn exec_streams_output_stdin_and_exit_code() {
    let c = connected();
    let mut opts = ExecOptions::new(["sh", "-c", "cat; echo err >&2; exit 7"]);
    opts.stdin = true;
    let p = c.exec(&opts).unwrap();
    let stdin = p.stdin.unwrap();
    stdin.send(b"from host\n").unwrap();
    stdin.close().unwrap();
    assert_eq!(collect(&p.stdout), b"from host\n");
    assert_eq!(collect(&p.stderr), b"err\n");
    assert_eq!(c.wait(p.pid).unwrap(), ExitStatus::Code(7));
}

#[test]
fn signal_ends_a_program_and_is_reported_as_signal() {
    let c = connected();
    let p = c.exec(&ExecOptions::new(["sleep", "30"])).unwrap();
    c.signal(p.pid, libc::SIGTERM, true).unwrap();
    assert_eq!(c.wait(p.pid).unwrap(), ExitStatus::Signal(libc::SIGTERM));
    assert_eq!(ExitStatus::Signal(libc::SIGTERM).shell_code(), 143);
}

#[test]
fn missing_program_is_a_clear_error() {
    let c = connected();
    match c.exec(&ExecOptions::new(["/no/such/program"])) {
        Err(ClientError::Agent(e)) => {
            assert_eq!(e.kind, ErrorKind::NotFound);
            assert!(e.message.contains("/no/such/program"), "{e}");
        }
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("a missing program started"),
    }
}

#[test]
fn pty_exec_gives_a_terminal() {
    let c = connected();
    let mut opts = ExecOptions::new(["sh", "-c", "test -t 0 && test -t 1 && echo tty"]);
    opts.stdio = StdioMode::Pty { rows: 24, cols: 80 };
    let p = c.exec(&opts).unwrap();
    let out = String::from_utf8_lossy(&collect(&p.stdout)).into_owned();
    assert!(out.contains("tty"), "{out:?}");
    assert_eq!(c.wait(p.pid).unwrap(), ExitStatus::Code(0));
}

#[test]
fn files_round_trip_with_mode_and_checksum() {
    let c = connected();
    let dir = std::env::temp_dir().join(format!("vmdbg-agent-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("src.bin");
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&src, &content).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o751)).unwrap();
    let guest = dir.join("sub/dir/put.bin");
    c.put_file(&src, guest.to_str().unwrap()).unwrap();
    assert_eq!(
        std::fs::metadata(&guest).unwrap().permissions().mode() & 0o777,
        0o751
    );
    let back = dir.join("back.bin");
    let (size, mode, _) = c.get_file(guest.to_str().unwrap(), &back).unwrap();
    assert_eq!((size, mode & 0o777), (content.len() as u64, 0o751));
    assert_eq!(std::fs::read(&back).unwrap(), content);
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("sub/dir"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    assert!(matches!(
        c.get_file("/no/such/file", &dir.join("x")),
        Err(ClientError::Agent(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn malformed_frames_get_error_events_and_the_connection_keeps_working() {
    let c = connected();
    // Garbage, a frame with a damaged payload, an unknown kind, an
    // undecodable control message, data on a stream that is not open.
    c.send_raw(b"this is not a frame").unwrap();
    let mut damaged = Frame::data(5, b"abc".to_vec()).encode();
    damaged[frame::HEADER_LEN] ^= 1;
    c.send_raw(&damaged).unwrap();
    let mut unknown = Frame::data(5, b"abc".to_vec()).encode();
    unknown[3] = 42;
    let crc = crc32fast::hash(&unknown[..16]);
    unknown[16..20].copy_from_slice(&crc.to_le_bytes());
    c.send_raw(&unknown).unwrap();
    let mut bad_control = postcard::to_stdvec(&99u32).unwrap();
    bad_control.extend([0xee; 4]);
    c.send_raw(
        &Frame {
            kind: FrameKind::Control,
            stream: 0,
            payload: bad_control,
        }
        .encode(),
    )
    .unwrap();
    c.send_raw(&Frame::data(12345, b"stray".to_vec()).encode())
        .unwrap();
    // Still works:
    let p = c.exec(&ExecOptions::new(["echo", "alive"])).unwrap();
    assert_eq!(collect(&p.stdout), b"alive\n");
    assert_eq!(c.wait(p.pid).unwrap(), ExitStatus::Code(0));
    let errors = c.protocol_errors();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("did not start with the frame magic")),
        "{errors:?}"
    );
    assert!(errors.iter().any(|e| e.contains("checksum")), "{errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("unknown kind 42")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("stream 12345")),
        "{errors:?}"
    );
}

#[test]
fn channel_relays_a_raw_byte_stream() {
    let c = connected();
    let mut ch = c.open_channel("echo", vec![]).unwrap();
    ch.write_all(b"$qSupported#37").unwrap();
    let mut buf = [0u8; 14];
    ch.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"$qSupported#37");
    assert!(
        matches!(c.open_channel("nope", vec![]), Err(ClientError::Agent(e)) if e.kind == ErrorKind::NotFound)
    );
}

#[test]
fn hello_without_a_common_version_is_refused_and_unknown_ids_are_answered() {
    let c = connected();
    let refused = c
        .request(Request::Hello {
            versions: vec![99],
            capabilities: vec![],
        })
        .unwrap()
        .wait();
    match refused {
        Err(ClientError::Agent(e)) => assert!(
            e.kind == ErrorKind::BadRequest && e.message.contains("99"),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
    // Waiting for a pid the agent never started.
    assert!(
        matches!(c.wait(4_000_000), Err(ClientError::Agent(e)) if e.kind == ErrorKind::NotFound)
    );
}

/// After a snapshot restore the VMM drops the guest's end of the agent's
/// connection; the host goes on over a new one under the same client.
#[test]
fn reconnect_goes_on_over_a_new_connection_and_fails_what_waited_on_the_old() {
    let (host, guest) = UnixStream::pair().unwrap();
    let guest_reader = guest.try_clone().unwrap();
    std::thread::spawn(move || vmdbg_agent::agent::serve(guest_reader, guest));
    let client = AgentClient::new(host.try_clone().unwrap(), host.try_clone().unwrap());
    client.wait_ready(Duration::from_secs(5)).unwrap();
    let long = client.exec(&ExecOptions::new(["sleep", "3"])).unwrap();
    let waiting = client.wait_request(long.pid).unwrap();

    let (host2, guest2) = UnixStream::pair().unwrap();
    let guest2_reader = guest2.try_clone().unwrap();
    std::thread::spawn(move || vmdbg_agent::agent::serve(guest2_reader, guest2));
    client.reconnect(host2.try_clone().unwrap(), host2);
    // The old connection goes away, as the VMM's reset closes it.
    host.shutdown(std::net::Shutdown::Both).unwrap();
    assert!(matches!(
        waiting.wait_timeout(Duration::from_secs(5)),
        Some(Err(ClientError::Disconnected(_)))
    ));
    client
        .wait_ready(Duration::from_secs(5))
        .expect("the new connection's ready event");
    let p = client.exec(&ExecOptions::new(["echo", "again"])).unwrap();
    assert_eq!(collect(&p.stdout), b"again\n");
    assert_eq!(client.wait(p.pid).unwrap(), ExitStatus::Code(0));
}

#[test]
fn an_impossible_clock_is_refused_with_the_reason() {
    let c = connected();
    // Past what CLOCK_REALTIME takes (time_t of this many seconds overflows
    // the kernel's limit): the agent answers with the error, not a crash.
    let err = c
        .request(Request::SetClock { unix_ns: u64::MAX })
        .unwrap()
        .wait()
        .unwrap_err();
    assert!(err.to_string().contains("set the clock"), "{err}");
    assert!(c.hello().is_ok());
}

//! Where the agent's byte stream comes from: a virtio-serial port (the
//! QEMU engine), vsock (the embedded VMM), or stdin/stdout (tests, or an
//! agent run by hand).

use std::path::PathBuf;
use std::time::Duration;

/// Finds the /dev node of the virtio-serial port QEMU named `name`
/// (`-device virtserialport,name=...`). Reads sysfs rather than
/// /dev/virtio-ports/, which only udev creates.
pub fn find_virtio_port(name: &str) -> Option<PathBuf> {
    let entries = std::fs::read_dir("/sys/class/virtio-ports").ok()?;
    for entry in entries.flatten() {
        let port_name = std::fs::read_to_string(entry.path().join("name")).unwrap_or_default();
        if port_name.trim() == name {
            return Some(PathBuf::from("/dev").join(entry.file_name()));
        }
    }
    None
}

/// Serves the named virtio-serial port for ever: the host may disconnect
/// and connect again, and the port may appear only after its driver loads.
pub fn serve_virtio_port(name: &str) -> ! {
    let mut said_waiting = false;
    loop {
        let Some(dev) = find_virtio_port(name) else {
            if !said_waiting {
                eprintln!("vmdbg-agent: waiting for virtio-serial port {name}");
                said_waiting = true;
            }
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&dev)
        {
            Ok(port) => {
                let reader = port.try_clone().expect("dup virtio port");
                if let Err(e) = super::serve(reader, port) {
                    eprintln!("vmdbg-agent: {}: {e}", dev.display());
                }
            }
            Err(e) => eprintln!("vmdbg-agent: open {}: {e}", dev.display()),
        }
        // The host side closed (reads give EOF until it reconnects).
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Listens on vsock `port` (any CID) and serves each connection on its
/// own thread.
pub fn serve_vsock(port: u32) -> anyhow::Result<()> {
    use nix::sys::socket::{
        accept, bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, VsockAddr,
    };
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let listener = socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| anyhow::anyhow!("vsock socket (is vmw_vsock_virtio_transport loaded?): {e}"))?;
    bind(
        listener.as_raw_fd(),
        &VsockAddr::new(libc::VMADDR_CID_ANY, port),
    )
    .map_err(|e| anyhow::anyhow!("bind vsock port {port}: {e}"))?;
    listen(&listener, Backlog::new(4).expect("backlog"))
        .map_err(|e| anyhow::anyhow!("listen vsock: {e}"))?;
    loop {
        let fd = accept(listener.as_raw_fd()).map_err(|e| anyhow::anyhow!("accept vsock: {e}"))?;
        // SAFETY: accept returned a new descriptor that nothing else owns.
        let conn = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        std::thread::spawn(move || {
            let reader = conn.try_clone().expect("dup vsock");
            if let Err(e) = super::serve(reader, conn) {
                eprintln!("vmdbg-agent: vsock connection: {e}");
            }
        });
    }
}

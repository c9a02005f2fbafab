//! Where a gdb server listens, as users write it: `HOST:PORT`, `:PORT`
//! (loopback), `tcp:HOST:PORT` or `unix:PATH`; and unix sockets only
//! their owner can connect to ([`bind_unix_owner_only`]), which every
//! socket of vmdbg-vmm is.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    Tcp(String),
    Unix(PathBuf),
}

impl std::str::FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            return match path {
                "" => Err("unix: needs a path, e.g. unix:/tmp/vmdbg-gdb.sock".into()),
                p => Ok(Listen::Unix(p.into())),
            };
        }
        let addr = s.strip_prefix("tcp:").unwrap_or(s);
        let addr = if addr.starts_with(':') {
            format!("127.0.0.1{addr}")
        } else {
            addr.to_string()
        };
        match addr.rsplit_once(':') {
            Some((_, port)) if port.parse::<u16>().is_ok() => Ok(Listen::Tcp(addr)),
            _ => Err(format!(
                "`{s}` is not an address to listen on: use HOST:PORT (e.g. 127.0.0.1:1234), :PORT or unix:PATH"
            )),
        }
    }
}

/// A bound listener. A unix socket's file is removed when it is dropped.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Binds `listen`; a stale unix socket at the path (left by a killed
    /// server) is replaced, any other file there is an error.
    pub fn bind(listen: &Listen) -> std::io::Result<Self> {
        let context = |what: &str, e: std::io::Error| {
            std::io::Error::new(e.kind(), format!("cannot listen on {what}: {e}"))
        };
        match listen {
            Listen::Tcp(addr) => {
                let listener = TcpListener::bind(addr).map_err(|e| context(addr, e))?;
                if let Ok(local) = listener.local_addr() {
                    if !local.ip().is_loopback() {
                        eprintln!(
                            "WARNING: the gdb server listens on {local}, not a loopback address: \
                             anyone who can reach it can read and change the debugged machine"
                        );
                    }
                }
                Ok(Listener::Tcp(listener))
            }
            Listen::Unix(path) => {
                if std::fs::symlink_metadata(path).is_ok_and(|m| {
                    use std::os::unix::fs::FileTypeExt;
                    m.file_type().is_socket()
                }) {
                    let _ = std::fs::remove_file(path);
                }
                bind_unix_owner_only(path)
                    .map(|l| Listener::Unix(l, path.clone()))
                    .map_err(|e| context(&format!("unix:{}", path.display()), e))
            }
        }
    }

    /// Where it listens, as gdb's `target remote` takes it (with the real
    /// port when port 0 was asked for).
    pub fn target_remote_address(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "?".into()),
            Listener::Unix(_, path) => path.display().to_string(),
        }
    }

    /// Waits for one client. TCP streams get TCP_NODELAY: RSP is a
    /// conversation of small packets.
    pub fn accept(&self) -> std::io::Result<Stream> {
        match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept()?;
                let _ = s.set_nodelay(true);
                Ok(Stream::Tcp(s))
            }
            Listener::Unix(l, _) => l.accept().map(|(s, _)| Stream::Unix(s)),
        }
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix(l, _) => l.as_raw_fd(),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Binds a unix socket at `path` that only its owner can connect to (mode
/// 0600), with no moment at which it is wider: it is bound in a new 0700
/// directory beside `path`, narrowed there, then renamed into place
/// (never over an existing file). Connecting needs write permission on
/// the socket file, so another user is refused; a process-wide umask
/// would race with other threads creating files.
pub fn bind_unix_owner_only(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = parent.join(format!(
        ".b{}.{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    let tmp = dir.join("s");
    let bound = (|| {
        let listener = UnixListener::bind(&tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes());
        let (from, to) = (c(&tmp)?, c(path)?);
        // SAFETY: two NUL-terminated paths.
        let r = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                from.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(listener)
    })();
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_dir(&dir);
    bound
}

/// An accepted client.
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_as_users_write_them() {
        let parse = |s: &str| s.parse::<Listen>();
        assert_eq!(parse(":1234"), Ok(Listen::Tcp("127.0.0.1:1234".into())));
        assert_eq!(parse("0.0.0.0:9"), Ok(Listen::Tcp("0.0.0.0:9".into())));
        assert_eq!(parse("tcp::7"), Ok(Listen::Tcp("127.0.0.1:7".into())));
        assert_eq!(parse("unix:/tmp/g"), Ok(Listen::Unix("/tmp/g".into())));
        assert!(parse("unix:").unwrap_err().contains("needs a path"));
        assert!(parse("localhost").unwrap_err().contains("HOST:PORT"));
        assert!(parse(":99999").is_err());
    }

    #[test]
    fn a_unix_listener_replaces_a_stale_socket_and_removes_its_own() {
        let path = std::env::temp_dir().join(format!("vmdbg-listen-{}", std::process::id()));
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists(), "a dropped std listener leaves its file");
        let listener = Listener::bind(&Listen::Unix(path.clone())).unwrap();
        assert_eq!(listener.target_remote_address(), path.display().to_string());
        drop(listener);
        assert!(!path.exists());
    }

    #[test]
    fn unix_sockets_are_owner_only_and_leave_no_scratch_directory() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("vmdbg-owner-only-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("api.sock");
        let listener = bind_unix_owner_only(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
        // The listener answers at the renamed path.
        let _client = UnixStream::connect(&path).unwrap();
        listener.accept().unwrap();
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, [std::ffi::OsString::from("api.sock")]);
        // Never over an existing file.
        drop(listener);
        assert!(bind_unix_owner_only(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_regular_file_in_the_way_is_an_error_naming_the_path() {
        let path = std::env::temp_dir().join(format!("vmdbg-listen-file-{}", std::process::id()));
        std::fs::write(&path, b"keep me").unwrap();
        let err = Listener::bind(&Listen::Unix(path.clone())).err().unwrap();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
        std::fs::remove_file(&path).unwrap();
    }
}

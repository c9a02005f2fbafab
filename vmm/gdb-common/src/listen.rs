//! Where a gdb server listens, as users write it: `HOST:PORT`, `:PORT`
//! (loopback), `tcp:HOST:PORT` or `unix:PATH`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

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
            Listen::Tcp(addr) => TcpListener::bind(addr)
                .map(Listener::Tcp)
                .map_err(|e| context(addr, e)),
            Listen::Unix(path) => {
                if std::fs::symlink_metadata(path).is_ok_and(|m| {
                    use std::os::unix::fs::FileTypeExt;
                    m.file_type().is_socket()
                }) {
                    let _ = std::fs::remove_file(path);
                }
                UnixListener::bind(path)
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

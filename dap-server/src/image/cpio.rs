//! A writer for the newc cpio format, the one the Linux kernel unpacks as
//! an initramfs. Only what an initramfs needs: directories, files,
//! symlinks and character devices, owned by root.

use std::io::Write;

pub struct CpioWriter<W: Write> {
    out: W,
    next_inode: u32,
    written: u64,
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> Self {
        CpioWriter {
            out,
            next_inode: 1,
            written: 0,
        }
    }

    pub fn dir(&mut self, path: &str) -> std::io::Result<()> {
        self.entry(path, 0o040755, b"", (0, 0))
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> std::io::Result<()> {
        self.entry(path, 0o100000 | (mode & 0o7777), data, (0, 0))
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> std::io::Result<()> {
        self.entry(path, 0o120777, target.as_bytes(), (0, 0))
    }

    pub fn char_device(
        &mut self,
        path: &str,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> std::io::Result<()> {
        self.entry(path, 0o020000 | (mode & 0o7777), b"", (major, minor))
    }

    fn entry(
        &mut self,
        path: &str,
        mode: u32,
        data: &[u8],
        rdev: (u32, u32),
    ) -> std::io::Result<()> {
        let name = path.trim_start_matches('/');
        let ino = self.next_inode;
        self.next_inode += 1;
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        let header = format!(
            "070701{ino:08x}{mode:08x}{uid:08x}{gid:08x}{nlink:08x}{mtime:08x}{size:08x}{maj:08x}{min:08x}{rmaj:08x}{rmin:08x}{namesize:08x}{check:08x}",
            uid = 0,
            gid = 0,
            mtime = 0,
            size = data.len(),
            maj = 0,
            min = 0,
            rmaj = rdev.0,
            rmin = rdev.1,
            namesize = name.len() + 1,
            check = 0,
        );
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> std::io::Result<()> {
        let pad = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0u8; 3][..pad])
    }

    /// Writes the trailer and returns the underlying writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.entry("TRAILER!!!", 0, b"", (0, 0))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GNU cpio reads what we write back. Where cpio is missing this is
    /// skipped loudly, and fails under CI (as the e2e tests' `require`).
    #[test]
    fn gnu_cpio_lists_the_archive() {
        let mut w = CpioWriter::new(Vec::new());
        w.dir("/etc").unwrap();
        w.file("/etc/hello", 0o644, b"hi\n").unwrap();
        w.symlink("/init", "bin/busybox").unwrap();
        w.char_device("/dev/console", 0o600, 5, 1).unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let mut child = match std::process::Command::new("cpio")
            .args(["-t", "-v"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                let why = format!("cpio cannot be run ({e}); apt-get install cpio");
                let strict = ["CI", "VMDBG_REQUIRE_KVM"].iter().any(|v| {
                    std::env::var(v).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
                });
                assert!(!strict, "required but unavailable under CI: {why}");
                eprintln!("SKIPPED: gnu_cpio_lists_the_archive: {why}");
                return;
            }
        };
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        let (listing, errors) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        // cpio lists what it could read and then fails on a damaged archive.
        assert!(out.status.success(), "cpio -t failed: {errors}\n{listing}");
        assert!(
            listing.contains("etc/hello")
                && listing.contains("init -> bin/busybox")
                && listing.contains("dev/console"),
            "{listing}"
        );
    }
}

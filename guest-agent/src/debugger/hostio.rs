//! gdb's host I/O (`vFile:*`) over the files of the machine the program
//! runs on, read-only: with it, a gdb on the host reads the program and
//! its shared libraries from the guest (its default sysroot `target:`)
//! instead of guessing them from the host's own files.
//!
//! Writes, unlinks and creation are refused: a debugger connection is not
//! a way to change the guest's files.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};

use gdbstub::target::ext::host_io::{
    FsKind, HostIo, HostIoClose, HostIoCloseOps, HostIoErrno, HostIoError, HostIoFstat,
    HostIoFstatOps, HostIoOpen, HostIoOpenFlags, HostIoOpenMode, HostIoOpenOps, HostIoPread,
    HostIoPreadOps, HostIoReadlink, HostIoReadlinkOps, HostIoResult, HostIoSetfs, HostIoSetfsOps,
    HostIoStat,
};

use super::target::ProcessTarget;

/// Files a client may hold open at once.
const MAX_OPEN_FILES: usize = 64;

/// The files gdb has open, by the descriptor number it was given.
#[derive(Default)]
pub struct OpenFiles {
    files: BTreeMap<u32, File>,
    next: u32,
}

fn errno<E>(e: HostIoErrno) -> HostIoError<E> {
    HostIoError::Errno(e)
}

fn path(filename: &[u8]) -> &std::path::Path {
    std::path::Path::new(std::ffi::OsStr::from_bytes(filename))
}

impl HostIo for ProcessTarget {
    fn support_open(&mut self) -> Option<HostIoOpenOps<'_, Self>> {
        Some(self)
    }

    fn support_close(&mut self) -> Option<HostIoCloseOps<'_, Self>> {
        Some(self)
    }

    fn support_pread(&mut self) -> Option<HostIoPreadOps<'_, Self>> {
        Some(self)
    }

    fn support_fstat(&mut self) -> Option<HostIoFstatOps<'_, Self>> {
        Some(self)
    }

    fn support_readlink(&mut self) -> Option<HostIoReadlinkOps<'_, Self>> {
        Some(self)
    }

    fn support_setfs(&mut self) -> Option<HostIoSetfsOps<'_, Self>> {
        Some(self)
    }
}

impl HostIoOpen for ProcessTarget {
    fn open(
        &mut self,
        filename: &[u8],
        flags: HostIoOpenFlags,
        _mode: HostIoOpenMode,
    ) -> HostIoResult<u32, Self> {
        let writes = HostIoOpenFlags::O_WRONLY
            | HostIoOpenFlags::O_RDWR
            | HostIoOpenFlags::O_APPEND
            | HostIoOpenFlags::O_CREAT
            | HostIoOpenFlags::O_TRUNC;
        if flags.intersects(writes) {
            return Err(errno(HostIoErrno::EPERM));
        }
        let files = &mut self.open_files;
        if files.files.len() >= MAX_OPEN_FILES {
            return Err(errno(HostIoErrno::EMFILE));
        }
        let file = File::open(path(filename))?;
        let fd = files.next;
        files.next = files.next.wrapping_add(1);
        files.files.insert(fd, file);
        Ok(fd)
    }
}

impl HostIoClose for ProcessTarget {
    fn close(&mut self, fd: u32) -> HostIoResult<(), Self> {
        match self.open_files.files.remove(&fd) {
            Some(_) => Ok(()),
            None => Err(errno(HostIoErrno::EBADF)),
        }
    }
}

impl HostIoPread for ProcessTarget {
    fn pread(
        &mut self,
        fd: u32,
        count: usize,
        offset: u64,
        buf: &mut [u8],
    ) -> HostIoResult<usize, Self> {
        let file = self
            .open_files
            .files
            .get(&fd)
            .ok_or(errno(HostIoErrno::EBADF))?;
        let n = count.min(buf.len());
        Ok(file.read_at(&mut buf[..n], offset)?)
    }
}

impl HostIoFstat for ProcessTarget {
    fn fstat(&mut self, fd: u32) -> HostIoResult<HostIoStat, Self> {
        let file = self
            .open_files
            .files
            .get(&fd)
            .ok_or(errno(HostIoErrno::EBADF))?;
        let m = file.metadata()?;
        Ok(HostIoStat {
            st_dev: m.dev() as u32,
            st_ino: m.ino() as u32,
            st_mode: HostIoOpenMode::from_bits_truncate(m.mode()),
            st_nlink: m.nlink() as u32,
            st_uid: m.uid(),
            st_gid: m.gid(),
            st_rdev: m.rdev() as u32,
            st_size: m.size(),
            st_blksize: m.blksize(),
            st_blocks: m.blocks(),
            st_atime: m.atime() as u32,
            st_mtime: m.mtime() as u32,
            st_ctime: m.ctime() as u32,
        })
    }
}

impl HostIoReadlink for ProcessTarget {
    fn readlink(&mut self, filename: &[u8], buf: &mut [u8]) -> HostIoResult<usize, Self> {
        let target = std::fs::read_link(path(filename))?;
        let bytes = target.as_os_str().as_bytes();
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        Ok(n)
    }
}

impl HostIoSetfs for ProcessTarget {
    /// The program shares this server's mount namespace: every file system
    /// gdb can ask for is this one.
    fn setfs(&mut self, _fs: FsKind) -> HostIoResult<(), Self> {
        Ok(())
    }
}

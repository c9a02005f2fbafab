//! virtio-blk over a raw image file: read, write, flush and get-id, served
//! synchronously on the notifying vCPU's thread.
//!
//! A request the device can answer (a sector past the end, a write to a
//! read-only disk, an unknown type) gets an error status in its status
//! byte; only a chain that breaks the virtqueue contract puts the device in
//! its error state.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use crate::vm::GuestMemoryMmap;
use virtio_queue::Queue;

use super::{add_used, guest_read, guest_write, next_chain, read_chain, DeviceError, VirtioDevice};
use crate::error::{Error, Result};

const DEVICE_ID_BLOCK: u32 = 2;
const SECTOR_SIZE: u64 = 512;
const QUEUE_SIZE: u16 = 256;
const VIRTIO_BLK_F_RO: u64 = 1 << 5;
const VIRTIO_BLK_F_FLUSH: u64 = 1 << 9;
const REQUEST_HEADER_LEN: u32 = 16;
const ID_LEN: usize = 20;

const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const T_GET_ID: u32 = 8;
const S_OK: u8 = 0;
const S_IOERR: u8 = 1;
const S_UNSUPP: u8 = 2;

/// `--disk PATH[,ro]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSpec {
    pub path: PathBuf,
    pub read_only: bool,
}

impl std::str::FromStr for DiskSpec {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (path, opts) = match s.split_once(',') {
            Some((p, o)) => (p, Some(o)),
            None => (s, None),
        };
        if path.is_empty() {
            return Err(format!("`{s}`: expected PATH or PATH,ro"));
        }
        let read_only = match opts {
            None | Some("rw") => false,
            Some("ro") => true,
            Some(o) => {
                return Err(format!(
                    "`{s}`: unknown option `{o}`; the only ones are ro and rw"
                ))
            }
        };
        Ok(Self {
            path: path.into(),
            read_only,
        })
    }
}

pub struct Block {
    file: File,
    read_only: bool,
    capacity_sectors: u64,
    id: [u8; ID_LEN],
    config: [u8; 8],
}

impl Block {
    pub fn open(spec: &DiskSpec) -> Result<Self> {
        let bad = |why: String| Error::Disk {
            spec: spec.path.display().to_string(),
            why,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(!spec.read_only)
            .open(&spec.path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => bad(
                    "not found; create a raw image first (e.g. `truncate -s 64M disk.img`)".into(),
                ),
                std::io::ErrorKind::PermissionDenied if !spec.read_only => {
                    bad("no permission to write it; pass PATH,ro for a read-only disk".into())
                }
                _ => bad(e.to_string()),
            })?;
        let len = file.metadata().map_err(|e| bad(e.to_string()))?.len();
        if len % SECTOR_SIZE != 0 {
            tracing::warn!(
                "disk {}: {len} bytes is not a multiple of 512; the last {} bytes are not visible",
                spec.path.display(),
                len % SECTOR_SIZE
            );
        }
        let capacity_sectors = len / SECTOR_SIZE;
        let mut id = [0u8; ID_LEN];
        let name = spec
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let n = name.len().min(ID_LEN);
        id[..n].copy_from_slice(&name.as_bytes()[..n]);
        Ok(Self {
            file,
            read_only: spec.read_only,
            capacity_sectors,
            id,
            config: capacity_sectors.to_le_bytes(),
        })
    }

    /// Serves one request; Ok(bytes written into the guest's buffers).
    fn serve(
        &mut self,
        descriptors: &[virtio_queue::desc::split::Descriptor],
        mem: &GuestMemoryMmap,
    ) -> std::result::Result<u32, DeviceError> {
        let (header, rest) = descriptors
            .split_first()
            .ok_or_else(|| DeviceError("empty block request".into()))?;
        let (status_desc, data) = rest
            .split_last()
            .ok_or_else(|| DeviceError("block request without a status descriptor".into()))?;
        if header.is_write_only() || header.len() < REQUEST_HEADER_LEN {
            return Err(DeviceError(format!(
                "block request header must be a device-readable buffer of at least {REQUEST_HEADER_LEN} bytes"
            )));
        }
        if !status_desc.is_write_only() || status_desc.len() < 1 {
            return Err(DeviceError(
                "block request status must be a device-writable buffer of at least 1 byte".into(),
            ));
        }
        let mut raw = [0u8; 16];
        guest_read(mem, header.addr(), &mut raw)?;
        let request_type = u32::from_le_bytes(raw[0..4].try_into().unwrap());
        let sector = u64::from_le_bytes(raw[8..16].try_into().unwrap());

        let mut written = 0u32;
        let status = match request_type {
            T_IN | T_OUT => {
                let want_writable = request_type == T_IN;
                let wrong_direction = data.iter().any(|d| d.is_write_only() != want_writable);
                if wrong_direction || (request_type == T_OUT && self.read_only) {
                    S_IOERR
                } else {
                    let total: u64 = data.iter().map(|d| d.len() as u64).sum();
                    let in_range = sector
                        .checked_mul(SECTOR_SIZE)
                        .and_then(|start| start.checked_add(total))
                        .is_some_and(|end| end <= self.capacity_sectors * SECTOR_SIZE);
                    if !in_range {
                        S_IOERR
                    } else {
                        let mut offset = sector * SECTOR_SIZE;
                        let mut status = S_OK;
                        for d in data {
                            let mut buf = vec![0u8; d.len() as usize];
                            let io = if want_writable {
                                self.file
                                    .read_exact_at(&mut buf, offset)
                                    .map(|_| guest_write(mem, d.addr(), &buf))
                            } else {
                                guest_read(mem, d.addr(), &mut buf)?;
                                self.file.write_all_at(&buf, offset).map(|_| Ok(()))
                            };
                            match io {
                                Ok(guest) => guest?,
                                Err(e) => {
                                    tracing::warn!("virtio-blk: I/O at byte {offset}: {e}");
                                    status = S_IOERR;
                                    break;
                                }
                            }
                            offset += d.len() as u64;
                            if want_writable {
                                written += d.len();
                            }
                        }
                        status
                    }
                }
            }
            T_FLUSH => match self.file.sync_data() {
                Ok(()) => S_OK,
                Err(e) => {
                    tracing::warn!("virtio-blk: flush: {e}");
                    S_IOERR
                }
            },
            T_GET_ID => match data.first() {
                Some(d) if d.is_write_only() => {
                    let n = (d.len() as usize).min(ID_LEN);
                    guest_write(mem, d.addr(), &self.id[..n])?;
                    written += n as u32;
                    S_OK
                }
                _ => S_IOERR,
            },
            _ => S_UNSUPP,
        };
        guest_write(mem, status_desc.addr(), &[status])?;
        Ok(written + 1)
    }
}

impl VirtioDevice for Block {
    fn name(&self) -> &'static str {
        "blk"
    }

    fn device_id(&self) -> u32 {
        DEVICE_ID_BLOCK
    }

    fn features(&self) -> u64 {
        let ro = if self.read_only { VIRTIO_BLK_F_RO } else { 0 };
        super::VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_FLUSH | ro
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_config_bytes(&self.config, offset, data);
    }

    fn process(
        &mut self,
        queues: &mut [Queue],
        mem: &GuestMemoryMmap,
    ) -> std::result::Result<bool, DeviceError> {
        let queue = &mut queues[0];
        let mut used = false;
        while let Some(chain) = next_chain(queue, mem)? {
            let head = chain.head_index();
            let descriptors = read_chain(chain, mem)?;
            let len = self.serve(&descriptors, mem)?;
            add_used(queue, mem, head, len)?;
            used = true;
        }
        Ok(used)
    }

    fn reset(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_disk_specs() {
        assert_eq!(
            "a.img".parse(),
            Ok(DiskSpec {
                path: "a.img".into(),
                read_only: false
            })
        );
        assert!("a.img,ro".parse::<DiskSpec>().unwrap().read_only);
        assert!("a.img,rx".parse::<DiskSpec>().unwrap_err().contains("ro"));
        assert!(",ro".parse::<DiskSpec>().is_err());
    }
}

//! What the virtio fuzz targets share (included with `#[path]`; not a
//! target itself): the scratch disk their block devices open, and the
//! transport's registers as 32-bit reads and writes.

use std::sync::OnceLock;

use vmdbg_vmm::devices::virtio::block::DiskSpec;
use vmdbg_vmm::devices::virtio::MmioTransport;
use vmdbg_vmm::devices::MmioDevice;

/// A 64 KiB scratch disk in the temp directory, one per process.
pub fn disk() -> &'static DiskSpec {
    static DISK: OnceLock<DiskSpec> = OnceLock::new();
    DISK.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("vmdbg-fuzz-disk-{}", std::process::id()));
        std::fs::File::create(&path)
            .unwrap()
            .set_len(64 << 10)
            .unwrap();
        DiskSpec {
            path,
            read_only: false,
        }
    })
}

pub fn write_reg(t: &mut MmioTransport, offset: u64, value: u32) {
    t.write(offset, &value.to_le_bytes());
}

pub fn read_reg(t: &mut MmioTransport, offset: u64) -> u32 {
    let mut bytes = [0u8; 4];
    t.read(offset, &mut bytes);
    u32::from_le_bytes(bytes)
}

//! The virtio-mmio transport and the block and vsock devices against a
//! guest driver writing anything into their rings: descriptor tables
//! (addresses, lengths, flags, next indices), the available ring and the
//! request bytes are the input; rings are laid out with virtio-queue's
//! mock queues in real guest memory, and the device is driven through its
//! MMIO registers as vmm/src/devices/virtio/tests.rs does.
//!
//! Checked: no panic or hang; a device the driver broke says so
//! (DEVICE_NEEDS_RESET) and works again after a reset.
#![no_main]

#[path = "devices.rs"]
mod devices;

use devices::{disk, read_reg, write_reg};
use libfuzzer_sys::fuzz_target;
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Address, Bytes, GuestAddress};
use vmdbg_vmm::devices::virtio::block::Block;
use vmdbg_vmm::devices::virtio::vsock::Vsock;
use vmdbg_vmm::devices::virtio::{reg, status, MmioTransport, VirtioDevice};
use vmdbg_vmm::vm::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

const MEM_SIZE: u64 = 256 << 10;
const QUEUE_LEN: u16 = 16;
const REQUESTS: u64 = 0x1_0000;

fn bring_up(t: &mut MmioTransport, queues: &[MockSplitQueue<'_, GuestMemoryMmap>]) {
    write_reg(t, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
    write_reg(t, reg::DRIVER_FEATURES_SEL, 1);
    write_reg(t, reg::DRIVER_FEATURES, 1);
    let s = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
    write_reg(t, reg::STATUS, s);
    for (i, q) in queues.iter().enumerate() {
        write_reg(t, reg::QUEUE_SEL, i as u32);
        write_reg(t, reg::QUEUE_NUM, QUEUE_LEN as u32);
        for (low, addr) in [
            (reg::QUEUE_DESC_LOW, q.desc_table_addr()),
            (reg::QUEUE_DRIVER_LOW, q.avail_addr()),
            (reg::QUEUE_DEVICE_LOW, q.used_addr()),
        ] {
            write_reg(t, low, addr.0 as u32);
            write_reg(t, low + 4, (addr.0 >> 32) as u32);
        }
        write_reg(t, reg::QUEUE_READY, 1);
    }
    write_reg(t, reg::STATUS, s | status::DRIVER_OK);
}

/// Reads `n` bytes of the input, zero-filled once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let [device, queue, descriptors, rounds] = input.take::<4>();
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE as usize)]).unwrap();
    let device: Box<dyn VirtioDevice> = if device % 2 == 0 {
        Box::new(Block::open(disk()).unwrap())
    } else {
        let uds = std::env::temp_dir().join(format!("vmdbg-fuzz-vsock-{}", std::process::id()));
        Box::new(Vsock::new(3, &uds).unwrap())
    };
    let queue_count = device.queue_max_sizes().len();
    let mut t = MmioTransport::new(
        device,
        mem.clone(),
        EventFd::new(libc::EFD_NONBLOCK).unwrap(),
    );
    let queues: Vec<_> = (0..queue_count)
        .map(|i| MockSplitQueue::create(&mem, GuestAddress(0x1000 * i as u64), QUEUE_LEN))
        .collect();
    bring_up(&mut t, &queues);

    // The driver's descriptors, written raw: an address with its top bit
    // clear is folded into (or just past) guest memory so chains reach
    // real buffers; one with it set stays wild.
    let q = &queues[queue as usize % queue_count];
    for i in 0..(descriptors as u64 % (QUEUE_LEN as u64 + 1)) {
        let mut raw = input.take::<16>();
        let addr = u64::from_le_bytes(raw[..8].try_into().unwrap());
        if addr >> 63 == 0 {
            let folded = addr % (MEM_SIZE + 0x1000);
            raw[..8].copy_from_slice(&folded.to_le_bytes());
        }
        mem.write_slice(&raw, q.desc_table_addr().unchecked_add(i * 16))
            .unwrap();
    }
    let flags_idx = input.take::<4>();
    mem.write_slice(&flags_idx, q.avail_addr()).unwrap();
    for slot in 0..QUEUE_LEN as u64 {
        let entry = input.take::<2>();
        mem.write_slice(&entry, q.avail_addr().unchecked_add(4 + slot * 2))
            .unwrap();
    }
    // Whatever is left is what the buffers hold: request headers, packets.
    let rest = input.0;
    let n = rest.len().min((MEM_SIZE - REQUESTS) as usize);
    mem.write_slice(&rest[..n], GuestAddress(REQUESTS)).unwrap();

    for _ in 0..1 + rounds % 3 {
        write_reg(
            &mut t,
            reg::QUEUE_NOTIFY,
            (queue as usize % queue_count) as u32,
        );
        let pending = read_reg(&mut t, reg::INTERRUPT_STATUS);
        write_reg(&mut t, reg::INTERRUPT_ACK, pending);
    }
    let broken = read_reg(&mut t, reg::STATUS) & status::DEVICE_NEEDS_RESET != 0;
    assert_eq!(
        broken,
        t.error().is_some(),
        "NEEDS_RESET and the error agree"
    );
    if broken {
        write_reg(&mut t, reg::STATUS, 0);
        assert_eq!(read_reg(&mut t, reg::STATUS), 0);
        assert!(t.error().is_none(), "a reset clears the error");
    }
});

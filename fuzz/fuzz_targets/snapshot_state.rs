//! A snapshot state file as `vmdbg-vmm --restore` and `PUT /snapshot/load`
//! read it (vmm/src/snapshot/), and what restores the devices from it: the
//! serial port, and the virtio-mmio transports with their queues (the
//! block and vsock devices over real guest memory) — everything a state
//! file feeds that runs without KVM (KVM checks the vCPU and VM state it
//! is handed itself).
//!
//! Most inputs are a body framed with its right checksum, so the fuzzer
//! reaches the JSON and the restores behind it; the rest go in raw. A seed
//! is a real state file's body (fuzz/seeds/snapshot_state).
//!
//! Checked: no panic; a state a device refuses leaves it usable; a
//! restored transport answers every register and a notify of each queue
//! without panicking, and a broken one says so (DEVICE_NEEDS_RESET).
#![no_main]

#[path = "devices.rs"]
mod devices;

use std::path::Path;

use devices::{disk, read_reg, write_reg};
use libfuzzer_sys::fuzz_target;
use vm_memory::GuestAddress;
use vmdbg_vmm::devices::serial::SerialDevice;
use vmdbg_vmm::devices::virtio::block::Block;
use vmdbg_vmm::devices::virtio::vsock::Vsock;
use vmdbg_vmm::devices::virtio::{reg, status, MmioTransport, VirtioDevice};
use vmdbg_vmm::devices::{Persist, PioDevice};
use vmdbg_vmm::snapshot::{self, SNAPSHOT_FRAMING};
use vmdbg_vmm::vm::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

const MEM_SIZE: usize = 256 << 10;
/// virtio device ids (virtio 1.2, 5): block, vsock.
const BLOCK_ID: u32 = 2;
const VSOCK_ID: u32 = 19;

fn exercise(t: &mut MmioTransport, queues: usize) {
    for offset in (0..0x100).step_by(4) {
        read_reg(t, offset);
    }
    for q in 0..queues as u32 + 1 {
        write_reg(t, reg::QUEUE_NOTIFY, q);
        let pending = read_reg(t, reg::INTERRUPT_STATUS);
        write_reg(t, reg::INTERRUPT_ACK, pending);
    }
    let broken = read_reg(t, reg::STATUS) & status::DEVICE_NEEDS_RESET != 0;
    assert_eq!(
        broken,
        t.error().is_some(),
        "NEEDS_RESET and the error agree"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&how, body)) = data.split_first() else {
        return;
    };
    let bytes = if how % 8 == 0 {
        body.to_vec()
    } else {
        let mut framed = SNAPSHOT_FRAMING.header(body);
        framed.extend_from_slice(body);
        framed
    };
    let Ok(snap) = snapshot::decode(Path::new("fuzz.state"), &bytes) else {
        return;
    };

    let mut serial = SerialDevice::new(
        EventFd::new(libc::EFD_NONBLOCK).unwrap(),
        Box::new(std::io::sink()),
    );
    let _ = serial.restore(&snap.serial);
    for offset in 0..8 {
        let mut byte = [0u8];
        serial.read(offset, &mut byte);
    }
    serial.write(0, b"x");

    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    for state in snap.virtio.iter().take(4) {
        let device: Box<dyn VirtioDevice> = match state.device_id {
            BLOCK_ID => Box::new(Block::open(disk()).unwrap()),
            VSOCK_ID => {
                let uds = std::env::temp_dir()
                    .join(format!("vmdbg-fuzz-snap-vsock-{}", std::process::id()));
                Box::new(Vsock::new(3, &uds).unwrap())
            }
            _ => continue,
        };
        let queues = device.queue_max_sizes().len();
        let mut t = MmioTransport::new(
            device,
            mem.clone(),
            EventFd::new(libc::EFD_NONBLOCK).unwrap(),
        );
        if t.restore(state).is_err() {
            // Refused before anything changed: the device is as new.
            assert_eq!(read_reg(&mut t, reg::STATUS), 0);
        }
        exercise(&mut t, queues);
    }
});

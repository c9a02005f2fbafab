//! The transport and devices against a driver that misbehaves: rings built
//! with virtio-queue's mock (`test-utils`) in real guest memory, driven
//! through the MMIO registers as a guest driver would.

use std::os::unix::fs::FileExt;

use crate::vm::GuestMemoryMmap;
use virtio_bindings::bindings::virtio_ring::{
    VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
};
use virtio_queue::desc::{split::Descriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Address, Bytes, GuestAddress};
use vmm_sys_util::eventfd::EventFd;

use super::block::{Block, DiskSpec};
use super::vsock::Vsock;
use super::*;

const MEM_SIZE: usize = 4 << 20;
const QUEUE_LEN: u16 = 16;
const HEADER: u64 = 0x10_0000;
const DATA: u64 = 0x11_0000;
const STATUS: u64 = 0x12_0000;

fn memory() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap()
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "vmdbg-virtio-{}-{name}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ))
}

/// A 64 KiB disk whose first sector holds `marker`.
fn disk(name: &str, marker: &[u8]) -> (std::path::PathBuf, Block) {
    let path = temp_path(name);
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(64 * 1024).unwrap();
    file.write_all_at(marker, 0).unwrap();
    let block = Block::open(&DiskSpec {
        path: path.clone(),
        read_only: false,
    })
    .unwrap();
    (path, block)
}

fn transport(device: Box<dyn VirtioDevice>, mem: &GuestMemoryMmap) -> MmioTransport {
    MmioTransport::new(
        device,
        mem.clone(),
        EventFd::new(libc::EFD_NONBLOCK).unwrap(),
    )
}

fn write_reg(t: &mut MmioTransport, offset: u64, value: u32) {
    assert_eq!(t.write(offset, &value.to_le_bytes()), IoAction::None);
}

fn read_reg(t: &mut MmioTransport, offset: u64) -> u32 {
    let mut bytes = [0u8; 4];
    t.read(offset, &mut bytes);
    u32::from_le_bytes(bytes)
}

/// What a driver does: negotiate VERSION_1, set up each queue at the mock
/// queues' addresses, DRIVER_OK.
fn bring_up(t: &mut MmioTransport, queues: &[&MockSplitQueue<GuestMemoryMmap>]) {
    let rings: Vec<[GuestAddress; 3]> = queues
        .iter()
        .map(|q| [q.desc_table_addr(), q.avail_addr(), q.used_addr()])
        .collect();
    bring_up_at(t, &rings);
}

/// [`bring_up`] with ring addresses of the test's choosing.
fn bring_up_at(t: &mut MmioTransport, rings: &[[GuestAddress; 3]]) {
    assert_eq!(read_reg(t, reg::MAGIC), MAGIC);
    assert_eq!(read_reg(t, reg::VERSION), 2);
    write_reg(t, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
    write_reg(t, reg::DRIVER_FEATURES_SEL, 1);
    write_reg(t, reg::DRIVER_FEATURES, 1); // VIRTIO_F_VERSION_1 is bit 32
    let s = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
    write_reg(t, reg::STATUS, s);
    assert_ne!(read_reg(t, reg::STATUS) & status::FEATURES_OK, 0);
    for (i, [desc_table, avail, used]) in rings.iter().enumerate() {
        write_reg(t, reg::QUEUE_SEL, i as u32);
        write_reg(t, reg::QUEUE_NUM, QUEUE_LEN as u32);
        for (low, addr) in [
            (reg::QUEUE_DESC_LOW, *desc_table),
            (reg::QUEUE_DRIVER_LOW, *avail),
            (reg::QUEUE_DEVICE_LOW, *used),
        ] {
            write_reg(t, low, addr.0 as u32);
            write_reg(t, low + 4, (addr.0 >> 32) as u32);
        }
        write_reg(t, reg::QUEUE_READY, 1);
    }
    write_reg(t, reg::STATUS, s | status::DRIVER_OK);
}

fn notify(t: &mut MmioTransport, queue: u32) {
    write_reg(t, reg::QUEUE_NOTIFY, queue);
}

fn needs_reset(t: &mut MmioTransport) -> bool {
    read_reg(t, reg::STATUS) & status::DEVICE_NEEDS_RESET != 0
}

fn desc(addr: u64, len: u32, flags: u32, next: u16) -> RawDescriptor {
    RawDescriptor::from(Descriptor::new(addr, len, flags as u16, next))
}

/// A block read of sector 0 into DATA: header, data, status.
fn read_request(mem: &GuestMemoryMmap) -> Vec<RawDescriptor> {
    let header = [0u32.to_le_bytes(), 0u32.to_le_bytes()].concat();
    mem.write_slice(&header, GuestAddress(HEADER)).unwrap();
    mem.write_slice(&0u64.to_le_bytes(), GuestAddress(HEADER + 8))
        .unwrap();
    mem.write_obj(0xffu8, GuestAddress(STATUS)).unwrap();
    vec![
        desc(HEADER, 16, VRING_DESC_F_NEXT, 1),
        desc(DATA, 512, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2),
        desc(STATUS, 1, VRING_DESC_F_WRITE, 0),
    ]
}

fn used_idx(mem: &GuestMemoryMmap, q: &MockSplitQueue<GuestMemoryMmap>) -> u16 {
    mem.read_obj::<u16>(q.used_addr().unchecked_add(2)).unwrap()
}

#[test]
fn a_valid_block_read_is_served() {
    let mem = memory();
    let (path, block) = disk("valid", b"hello from the disk");
    let mut t = transport(Box::new(block), &mem);
    let q = MockSplitQueue::create(&mem, GuestAddress(0), QUEUE_LEN);
    bring_up(&mut t, &[&q]);
    q.add_desc_chains(&read_request(&mem), 0).unwrap();
    notify(&mut t, 0);
    assert!(!needs_reset(&mut t), "{:?}", t.error());
    assert_eq!(used_idx(&mem, &q), 1);
    assert_eq!(mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(), 0);
    let mut data = [0u8; 19];
    mem.read_slice(&mut data, GuestAddress(DATA)).unwrap();
    assert_eq!(&data, b"hello from the disk");
    let _ = std::fs::remove_file(path);
}

/// Runs `chain` (written at descriptor index 0) against a fresh block
/// device, expects DEVICE_NEEDS_RESET with a message containing `why`, and
/// checks a second block device on the same memory still works.
fn assert_breaks_only_its_device(chain: &[RawDescriptor], why: &str) {
    let mem = memory();
    let (path_a, block_a) = disk("bad", b"A");
    let (path_b, block_b) = disk("good", b"second disk");
    let mut broken = transport(Box::new(block_a), &mem);
    let mut healthy = transport(Box::new(block_b), &mem);
    let qa = MockSplitQueue::create(&mem, GuestAddress(0), QUEUE_LEN);
    let qb = MockSplitQueue::create(&mem, GuestAddress(0x8000), QUEUE_LEN);
    bring_up(&mut broken, &[&qa]);
    bring_up(&mut healthy, &[&qb]);

    qa.add_desc_chains(chain, 0).unwrap();
    notify(&mut broken, 0);
    assert!(needs_reset(&mut broken), "no error state for: {why}");
    let message = broken.error().unwrap().to_string();
    assert!(message.contains(why), "`{message}` does not say `{why}`");
    assert_ne!(
        read_reg(&mut broken, reg::INTERRUPT_STATUS) & INT_CONFIG_CHANGE,
        0
    );
    // A broken device ignores further notifications instead of touching
    // the rings again.
    notify(&mut broken, 0);
    assert_eq!(used_idx(&mem, &qa), 0);

    qb.add_desc_chains(&read_request(&mem), 0).unwrap();
    notify(&mut healthy, 0);
    assert!(!needs_reset(&mut healthy));
    assert_eq!(used_idx(&mem, &qb), 1);
    let mut data = [0u8; 11];
    mem.read_slice(&mut data, GuestAddress(DATA)).unwrap();
    assert_eq!(&data, b"second disk");

    // The driver's way out: reset, and the device works again.
    write_reg(&mut broken, reg::STATUS, 0);
    assert_eq!(read_reg(&mut broken, reg::STATUS), 0);
    assert!(broken.error().is_none());
    let qa2 = MockSplitQueue::create(&mem, GuestAddress(0x4000), QUEUE_LEN);
    bring_up(&mut broken, &[&qa2]);
    qa2.add_desc_chains(&read_request(&mem), 0).unwrap();
    notify(&mut broken, 0);
    assert!(!needs_reset(&mut broken), "{:?}", broken.error());
    assert_eq!(used_idx(&mem, &qa2), 1);
    let _ = std::fs::remove_file(path_a);
    let _ = std::fs::remove_file(path_b);
}

#[test]
fn a_buffer_outside_guest_memory_breaks_only_that_device() {
    assert_breaks_only_its_device(
        &[
            desc(HEADER, 16, VRING_DESC_F_NEXT, 1),
            desc(
                MEM_SIZE as u64 + 0x1000,
                512,
                VRING_DESC_F_WRITE | VRING_DESC_F_NEXT,
                2,
            ),
            desc(STATUS, 1, VRING_DESC_F_WRITE, 0),
        ],
        "outside guest memory",
    );
}

#[test]
fn a_buffer_straddling_the_end_of_memory_breaks_only_that_device() {
    assert_breaks_only_its_device(
        &[
            desc(HEADER, 16, VRING_DESC_F_NEXT, 1),
            desc(
                MEM_SIZE as u64 - 100,
                512,
                VRING_DESC_F_WRITE | VRING_DESC_F_NEXT,
                2,
            ),
            desc(STATUS, 1, VRING_DESC_F_WRITE, 0),
        ],
        "outside guest memory",
    );
}

#[test]
fn a_descriptor_loop_breaks_only_that_device() {
    assert_breaks_only_its_device(
        &[
            desc(HEADER, 16, VRING_DESC_F_NEXT, 1),
            desc(DATA, 512, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0),
        ],
        "loops",
    );
}

#[test]
fn a_next_index_outside_the_table_breaks_only_that_device() {
    assert_breaks_only_its_device(
        &[desc(HEADER, 16, VRING_DESC_F_NEXT, QUEUE_LEN + 100)],
        "loops, is longer than the queue, or points outside",
    );
}

#[test]
fn an_over_long_indirect_chain_breaks_only_that_device() {
    // An indirect table may hold more descriptors than the queue; this
    // one holds more than MAX_CHAIN_LEN, all properly linked.
    let mem = memory();
    let table = 0x20_0000u64;
    let count = MAX_CHAIN_LEN as u16 + 8;
    for i in 0..count {
        let last = i == count - 1;
        let d = desc(
            DATA,
            1,
            if last {
                VRING_DESC_F_WRITE
            } else {
                VRING_DESC_F_NEXT
            },
            i + 1,
        );
        mem.write_obj(d, GuestAddress(table + i as u64 * 16))
            .unwrap();
    }
    let head = desc(table, count as u32 * 16, VRING_DESC_F_INDIRECT, 0);
    // assert_breaks_only_its_device builds its own memory, so the indirect
    // table is written through a chain check here directly.
    let q = MockSplitQueue::create(&mem, GuestAddress(0), QUEUE_LEN);
    q.add_desc_chains(&[head], 0).unwrap();
    let (path, block) = disk("long", b"x");
    let mut t = transport(Box::new(block), &mem);
    bring_up(&mut t, &[&q]);
    notify(&mut t, 0);
    assert!(needs_reset(&mut t));
    assert!(t.error().unwrap().to_string().contains("longer than"));
    let _ = std::fs::remove_file(path);
}

#[test]
fn an_available_index_far_ahead_breaks_only_that_device() {
    let mem = memory();
    let (path, block) = disk("avail", b"x");
    let mut t = transport(Box::new(block), &mem);
    let q = MockSplitQueue::create(&mem, GuestAddress(0), QUEUE_LEN);
    bring_up(&mut t, &[&q]);
    mem.write_obj(1000u16, q.avail_addr().unchecked_add(2))
        .unwrap();
    notify(&mut t, 0);
    assert!(needs_reset(&mut t));
    assert!(t.error().unwrap().to_string().contains("available ring"));
    let _ = std::fs::remove_file(path);
}

#[test]
fn rings_outside_guest_memory_are_refused_at_driver_ok() {
    let mem = memory();
    let (path, block) = disk("rings", b"x");
    let mut t = transport(Box::new(block), &mem);
    let end = MEM_SIZE as u64;
    bring_up_at(
        &mut t,
        &[[
            GuestAddress(end - 0x80),
            GuestAddress(end + 0x1000),
            GuestAddress(end + 0x2000),
        ]],
    );
    assert!(needs_reset(&mut t));
    assert!(t.error().unwrap().to_string().contains("queue 0"));
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_bad_chain_on_vsock_tx_breaks_only_vsock() {
    let mem = memory();
    let uds = temp_path("vsock.sock");
    let vsock = Vsock::new(3, &uds).unwrap();
    let mut t = transport(Box::new(vsock), &mem);
    let rx = MockSplitQueue::create(&mem, GuestAddress(0), QUEUE_LEN);
    let tx = MockSplitQueue::create(&mem, GuestAddress(0x4000), QUEUE_LEN);
    let ev = MockSplitQueue::create(&mem, GuestAddress(0x8000), QUEUE_LEN);
    bring_up(&mut t, &[&rx, &tx, &ev]);
    assert!(!needs_reset(&mut t), "{:?}", t.error());
    tx.add_desc_chains(
        &[
            desc(HEADER, 44, VRING_DESC_F_NEXT, 1),
            desc(HEADER, 44, VRING_DESC_F_NEXT, 0),
        ],
        0,
    )
    .unwrap();
    notify(&mut t, 1);
    assert!(needs_reset(&mut t));
    assert_eq!(read_reg(&mut t, reg::DEVICE_ID), 19);
    drop(t);
    assert!(
        !uds.exists(),
        "the vsock socket file is removed with the device"
    );
}

/// What a device may write for the chains in `q`'s descriptor table: the
/// sum of every device-writable buffer, direct or in an indirect table. A
/// chain the device accepts visits each descriptor once (a loop ends in a
/// descriptor that still says NEXT, which is refused), so no used length
/// can be larger.
fn writable_bytes(mem: &GuestMemoryMmap, q: &MockSplitQueue<GuestMemoryMmap>) -> u64 {
    let read = |at: u64| mem.read_obj::<[u8; 16]>(GuestAddress(at)).ok();
    let field = |d: &[u8; 16], from: usize, to: usize| {
        d[from..to]
            .iter()
            .rev()
            .fold(0u64, |v, &b| v << 8 | u64::from(b))
    };
    let mut total = 0;
    for i in 0..u64::from(QUEUE_LEN) {
        let d = read(q.desc_table_addr().0 + 16 * i).unwrap();
        let (addr, len, flags) = (field(&d, 0, 8), field(&d, 8, 12), field(&d, 12, 14));
        if flags & u64::from(VRING_DESC_F_INDIRECT) != 0 {
            for j in 0..len / 16 {
                if let Some(e) = read(addr + 16 * j) {
                    if field(&e, 12, 14) & u64::from(VRING_DESC_F_WRITE) != 0 {
                        total += field(&e, 8, 12);
                    }
                }
            }
        } else if flags & u64::from(VRING_DESC_F_WRITE) != 0 {
            total += len;
        }
    }
    total
}

/// Deterministic garbage in every descriptor field: whatever happens, no
/// panic, and a used ring that is written is written in bounds: no more
/// entries than chains offered, each naming an offered head with a length
/// the chain's writable buffers can hold, nothing in the ring's unused
/// slots or past its end.
#[test]
fn random_descriptor_tables_never_panic() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut served = 0;
    for round in 0..300 {
        let mem = memory();
        let (path, block) = disk("random", b"r");
        let mut t = transport(Box::new(block), &mem);
        let q = MockSplitQueue::create(&mem, GuestAddress(0), QUEUE_LEN);
        bring_up(&mut t, &[&q]);
        let mut garbage = || {
            let r = next();
            let addr = match r % 4 {
                0 => r >> 8,
                _ => HEADER + (r >> 40) % 0x10_0000,
            };
            (
                addr,
                (next() % 0x2000) as u32,
                (next() % 8) as u32,
                (next() % 20) as u16,
            )
        };
        let chain: Vec<RawDescriptor> = if round % 2 == 0 {
            (0..1 + garbage().3 % 6)
                .map(|_| {
                    let (addr, len, flags, next) = garbage();
                    desc(addr, len, flags, next)
                })
                .collect()
        } else {
            // A good read with one field of one descriptor gone bad, so
            // that many rounds are served and the used ring is written.
            let mut chain = read_request(&mem);
            let (addr, len, flags, next) = garbage();
            let at = usize::from(next) % chain.len();
            let d = Descriptor::from(chain[at]);
            chain[at] = match flags % 4 {
                0 => desc(addr, d.len(), d.flags().into(), d.next()),
                1 => desc(d.addr().0, len, d.flags().into(), d.next()),
                2 => desc(d.addr().0, d.len(), len % 8, d.next()),
                _ => desc(d.addr().0, d.len(), d.flags().into(), next),
            };
            chain
        };
        q.add_desc_chains(&chain, 0).unwrap();
        if round % 2 == 0 {
            mem.write_obj(next() as u32, GuestAddress(HEADER)).unwrap();
        }
        let avail = q.avail_addr().0;
        let offered = mem.read_obj::<u16>(GuestAddress(avail + 2)).unwrap();
        let heads: Vec<u16> = (0..u64::from(offered))
            .map(|i| mem.read_obj(GuestAddress(avail + 4 + 2 * i)).unwrap())
            .collect();
        let most = writable_bytes(&mem, &q);
        // From the used ring's first slot to a page past its end.
        let used = q.used_addr().0;
        let ring_end = used + 4 + 8 * u64::from(QUEUE_LEN) + 2;
        let mut before = vec![0u8; 0x1000];
        mem.read_slice(&mut before, GuestAddress(used + 4)).unwrap();

        notify(&mut t, 0);
        let _ = read_reg(&mut t, reg::STATUS);

        let done = used_idx(&mem, &q);
        assert!(
            done <= offered,
            "round {round}: {done} used entries for {offered} chains"
        );
        let mut after = vec![0u8; 0x1000];
        mem.read_slice(&mut after, GuestAddress(used + 4)).unwrap();
        for i in 0..usize::from(done) {
            let id = u32::from_le_bytes(after[8 * i..8 * i + 4].try_into().unwrap());
            let len = u32::from_le_bytes(after[8 * i + 4..8 * i + 8].try_into().unwrap());
            assert!(
                heads.iter().any(|&h| u32::from(h) == id),
                "round {round}: used entry {i} names head {id}, offered {heads:?}"
            );
            assert!(
                u64::from(len) <= most,
                "round {round}: used entry {i} says {len} bytes written, the buffers hold {most}"
            );
        }
        let untouched = 8 * usize::from(done);
        let tail = (ring_end - 2 - used - 4) as usize;
        assert_eq!(
            after[untouched..tail],
            before[untouched..tail],
            "round {round}: the used ring's unused slots were written"
        );
        assert_eq!(
            after[tail + 2..],
            before[tail + 2..],
            "round {round}: memory past the used ring was written"
        );
        served += usize::from(done);
        let _ = std::fs::remove_file(path);
    }
    // The bounds above were checked on real entries, not only on none.
    assert!(served > 0, "no round put a chain in the used ring");
    eprintln!("{served} used entries in 300 rounds of garbage");
}

#[test]
fn a_block_transport_saved_and_restored_serves_on_from_the_same_queue_position() {
    use crate::devices::Persist;
    let mem = memory();
    let (path, block) = disk("persist", b"kept across a snapshot");
    let mut t = transport(Box::new(block), &mem);
    let q = MockSplitQueue::create(&mem, GuestAddress(0), QUEUE_LEN);
    bring_up(&mut t, &[&q]);
    q.add_desc_chains(&read_request(&mem), 0).unwrap();
    notify(&mut t, 0);
    assert_eq!(used_idx(&mem, &q), 1);
    let saved = t.save();
    let json = serde_json::to_string(&saved).unwrap();

    // A fresh device of the same kind takes the state and serves the next
    // request where the first left off.
    let block = Block::open(&DiskSpec {
        path: path.clone(),
        read_only: false,
    })
    .unwrap();
    let mut restored = transport(Box::new(block), &mem);
    restored
        .restore(&serde_json::from_str(&json).unwrap())
        .unwrap();
    assert_eq!(restored.save(), saved);
    q.add_desc_chains(&read_request(&mem), 3).unwrap();
    notify(&mut restored, 0);
    assert!(!needs_reset(&mut restored), "{:?}", restored.error());
    assert_eq!(used_idx(&mem, &q), 2);

    // Another device type, or a queue virtio-queue refuses, changes nothing.
    let vsock = Vsock::new(3, &temp_path("persist-vsock")).unwrap();
    let mut other = transport(Box::new(vsock), &mem);
    let before = other.save();
    assert!(other.restore(&saved).unwrap_err().contains("virtio-vsock"));
    assert_eq!(other.save(), before);
    let mut bad = saved.clone();
    bad.queues[0].size = 3;
    let err = restored.restore(&bad).unwrap_err();
    assert!(err.contains("queue state refused"), "{err}");
    assert_eq!(restored.save().queues[0].next_used, 2);
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_restored_vsock_tells_the_guest_its_transport_was_reset() {
    use crate::devices::Persist;
    let mem = memory();
    let rx = MockSplitQueue::create(&mem, GuestAddress(0), QUEUE_LEN);
    let tx = MockSplitQueue::create(&mem, GuestAddress(0x4000), QUEUE_LEN);
    let ev = MockSplitQueue::create(&mem, GuestAddress(0x8000), QUEUE_LEN);
    let mut t = transport(
        Box::new(Vsock::new(3, &temp_path("reset-a.sock")).unwrap()),
        &mem,
    );
    bring_up(&mut t, &[&rx, &tx, &ev]);
    mem.write_obj(0xffff_ffffu32, GuestAddress(DATA)).unwrap();
    ev.add_desc_chains(&[desc(DATA, 4, VRING_DESC_F_WRITE, 0)], 0)
        .unwrap();
    let saved = t.save();
    assert_eq!(used_idx(&mem, &ev), 0);

    let mut restored = transport(
        Box::new(Vsock::new(3, &temp_path("reset-b.sock")).unwrap()),
        &mem,
    );
    restored.restore(&saved).unwrap();
    assert!(!needs_reset(&mut restored), "{:?}", restored.error());
    assert_eq!(used_idx(&mem, &ev), 1);
    assert_eq!(
        mem.read_obj::<u32>(GuestAddress(DATA)).unwrap(),
        0,
        "VIRTIO_VSOCK_EVENT_TRANSPORT_RESET"
    );
    assert_eq!(read_reg(&mut restored, reg::INTERRUPT_STATUS) & 1, 1);
}

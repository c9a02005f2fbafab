//! A recording file as `vmdbg-vmm --replay` and a DAP replay session read
//! it (vmm/src/record/file.rs), and the devices restored from its first
//! state that run without KVM: the PIT (its counters and the next timer
//! interrupt computed from hostile reloads, modes and start times) and the
//! serial port.
//!
//! Most inputs are a JSON header (the seed is a real recording's), put in
//! a body with its length and a memory image of zeros of the size the
//! header names (up to 4 MiB; a larger machine gets none, which must be
//! refused) and framed with its right checksum, so the fuzzer spends its
//! time on the header and its checks rather than on megabytes of memory;
//! the rest go in raw as a whole file.
//!
//! Checked: no panic; an accepted file's log is in instruction order and
//! within the recorded length, and its memory image has the machine's size.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vmdbg_vmm::devices::pit::{Pit, VirtualClock};
use vmdbg_vmm::devices::serial::SerialDevice;
use vmdbg_vmm::devices::{Persist, PioDevice};
use vmdbg_vmm::record::file::{self, FRAMING};
use vmm_sys_util::eventfd::EventFd;

fuzz_target!(|data: &[u8]| {
    let Some((&how, body)) = data.split_first() else {
        return;
    };
    const MAX_MEMORY: u64 = 4 << 20;
    let bytes = if how % 8 == 0 {
        body.to_vec()
    } else {
        let json = body;
        let mem_bytes = serde_json::from_slice::<serde_json::Value>(json)
            .ok()
            .and_then(|h| h["shape"]["mem_bytes"].as_u64())
            .filter(|&m| m <= MAX_MEMORY)
            .unwrap_or(0);
        let mut body = (json.len() as u64).to_le_bytes().to_vec();
        body.extend_from_slice(json);
        body.resize(body.len() + mem_bytes as usize, 0);
        let mut framed = FRAMING.header(&body);
        framed.extend_from_slice(&body);
        framed
    };
    let Ok(f) = file::decode(Path::new("fuzz.rec"), bytes) else {
        return;
    };
    let h = &f.header;
    assert_eq!(f.memory.len() as u64, h.shape.mem_bytes);
    assert!(h.log.windows(2).all(|w| w[0].icount <= w[1].icount));
    assert!(h.log.iter().all(|e| e.icount <= h.end));

    let clock = VirtualClock::default();
    clock.set_ns(h.first.clock_ns);
    let mut pit = Pit::new(clock.clone());
    let _ = pit.restore(&h.first.pit);
    for at in [
        0,
        h.first.clock_ns,
        h.first.clock_ns.saturating_add(1 << 40),
        u64::MAX,
    ] {
        clock.set_ns(at);
        pit.irq0_due();
        let _ = pit.next_irq0_ns();
        for port in 0..3u16 {
            let mut byte = [0u8];
            pit.read(port, &mut byte);
        }
    }

    let mut serial = SerialDevice::new(
        EventFd::new(libc::EFD_NONBLOCK).unwrap(),
        Box::new(std::io::sink()),
    );
    let _ = serial.restore(&h.first.serial);
    for offset in 0..8 {
        let mut byte = [0u8];
        serial.read(offset, &mut byte);
    }
});

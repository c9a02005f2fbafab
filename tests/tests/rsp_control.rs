//! Run control a debugger needs beyond a scripted gdb session, spoken as
//! raw gdb remote protocol so the test sees exactly what the stub replies:
//! Ctrl-C stops a running guest, memory written by the debugger is what the
//! guest reads, detach lets the guest run on to its own exit, and a
//! malformed packet gets an error reply instead of ending the session.

use std::io::Read;
use std::time::Duration;

use vmdbg_e2e::rsp::vmm_waiting_for_gdb;
use vmdbg_e2e::*;

const LIMIT: Duration = Duration::from_secs(60);

fn symbol_address(elf: &std::path::Path, name: &str) -> u64 {
    let out = std::process::Command::new("nm")
        .arg(elf)
        .output()
        .expect("nm");
    text(&out.stdout)
        .lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            let (addr, _, sym) = (f.next()?, f.next()?, f.next()?);
            (sym == name).then(|| u64::from_str_radix(addr, 16).unwrap())
        })
        .unwrap_or_else(|| panic!("{name} not in {}", elf.display()))
}

#[test]
fn interrupt_write_memory_detach_and_run_on() {
    if !require(
        all([kvm(), tool("nm")]),
        "interrupt_write_memory_detach_and_run_on",
    ) {
        return;
    }
    let elf = kernel("spin.elf");
    let (mut vmm, mut rsp, dir) = vmm_waiting_for_gdb(&elf, &[], "rsp-control");

    assert!(rsp
        .ask("qSupported:multiprocess+;swbreak+;hwbreak+")
        .contains("PacketSize="));
    assert!(
        rsp.ask("?").starts_with('T'),
        "stopped before the first continue"
    );

    // A malformed packet (bad checksum) is refused with a NAK; a packet the
    // stub does not know gets the empty reply. The session goes on.
    rsp.send_raw(b"$m100000,8#00");
    let mut nak = [0u8; 1];
    rsp.0.read_exact(&mut nak).unwrap();
    assert_eq!(nak[0], b'-', "a bad checksum is NAKed");
    assert_eq!(rsp.ask("qNoSuchThing"), "");

    rsp.send("vCont;c");
    // Interrupt once the guest says it spins (an event, not a head start
    // a loaded host may not give it).
    vmm.wait_for_stdout("spin: waiting to be released", LIMIT);
    rsp.send_raw(&[0x03]);
    let stop = rsp.reply();
    assert!(stop.starts_with("T02"), "Ctrl-C stops with SIGINT: {stop}");

    let spins = symbol_address(&elf, "spins");
    let counted = rsp.ask(&format!("m{spins:x},8"));
    let counted = u64::from_le_bytes(
        (0..8)
            .map(|i| u8::from_str_radix(&counted[i * 2..i * 2 + 2], 16).unwrap())
            .collect::<Vec<_>>()
            .try_into()
            .unwrap(),
    );
    assert!(counted > 0, "the guest ran before the interrupt");

    let released = symbol_address(&elf, "released");
    assert_eq!(rsp.ask(&format!("M{released:x},4:01000000")), "OK");
    assert_eq!(rsp.ask(&format!("m{released:x},4")), "01000000");
    assert_eq!(rsp.ask("D"), "OK");
    drop(rsp);

    let out = vmm.wait_output(LIMIT);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        text(&out.stdout),
        "spin: waiting to be released\nspin: released\n"
    );
    assert_eq!(
        out.status.code(),
        Some((0x15 << 1) | 1),
        "{}",
        text(&out.stderr)
    );
}

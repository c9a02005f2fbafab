//! Both gdb stubs — vmdbg-vmm's over a bare-metal guest's vCPU and the
//! agent's process debugger over a program — keep one session alive
//! through the packets of issue 18 and a few hundred generated malformed
//! ones: each gets an error (or, unknown, the empty) reply, the stop is
//! still reported, and registers and memory are what they were.

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use vmdbg_e2e::rsp::{malformed_packets, oversized_packet, vmm_waiting_for_gdb, RawRsp, REPORTED};
use vmdbg_e2e::*;

const LIMIT: Duration = Duration::from_secs(60);
const GENERATED: usize = 400;

/// `rip` in the `g` block: after the 16 general registers, little-endian.
fn rip(regs: &str) -> u64 {
    let hex = &regs[16 * 16..17 * 16];
    let bytes: Vec<u8> = (0..8)
        .map(|i| u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap())
        .collect();
    u64::from_le_bytes(bytes.try_into().unwrap())
}

fn is_refusal(reply: &str) -> bool {
    reply.is_empty() || reply.starts_with('E')
}

/// What both stubs must survive; `data` is a readable address whose bytes
/// are checked before and after.
fn survive_malformed_packets<S: std::io::Read + std::io::Write>(rsp: &mut RawRsp<S>, data: u64) {
    // A bare qSupported is valid RSP: the client claims no features.
    assert!(rsp.ask("qSupported").contains("PacketSize="));
    let stop = rsp.ask("?");
    assert!(stop.starts_with('T'), "stopped: {stop}");
    let regs = rsp.ask("g");
    let code = rsp.ask(&format!("m{:x},20", rip(&regs)));
    let memory = rsp.ask(&format!("m{data:x},40"));
    assert!(
        !code.starts_with('E') && !memory.starts_with('E'),
        "{code} {memory}"
    );

    for packet in REPORTED {
        let reply = rsp.ask(packet);
        assert!(reply.starts_with('E'), "{packet} got {reply:?}");
    }
    // A range one debug register can watch is taken, and given back.
    assert_eq!(rsp.ask(&format!("Z2,{data:x},8")), "OK");
    assert_eq!(rsp.ask(&format!("z2,{data:x},8")), "OK");
    assert!(
        rsp.ask(&format!("Z2,{:x},4", data + 2)).starts_with('E'),
        "misaligned"
    );
    let reply = rsp.ask(&oversized_packet());
    assert!(reply.starts_with('E'), "oversized: {reply:?}");
    // A NAK asks for the last reply again.
    let again = rsp.ask("?");
    rsp.send_raw(b"-");
    assert_eq!(rsp.reply(), again, "the reply is sent again after a NAK");

    let mut refused = 0;
    for packet in malformed_packets(0x5eed_0018, GENERATED) {
        let reply = rsp.ask(&packet);
        assert_ne!(reply, "-", "{packet} was NAKed (framing is valid)");
        if is_refusal(&reply) {
            refused += 1;
        }
    }
    assert!(
        refused > GENERATED * 9 / 10,
        "most generated packets are refused: {refused} of {GENERATED}"
    );

    assert_eq!(rsp.ask("?"), stop, "the stop is still reported");
    assert_eq!(rsp.ask("g"), regs, "registers unchanged");
    assert_eq!(
        rsp.ask(&format!("m{:x},20", rip(&regs))),
        code,
        "code unchanged"
    );
    assert_eq!(
        rsp.ask(&format!("m{data:x},40")),
        memory,
        "memory unchanged"
    );
}

#[test]
fn vmm_stub_survives_malformed_packets() {
    if !require(kvm(), "vmm_stub_survives_malformed_packets") {
        return;
    }
    let (vmm, mut rsp, dir) =
        vmm_waiting_for_gdb(&kernel("spin.elf"), &["--cpus", "2"], "rsp-robust");

    // The guest's page tables map the 2 MiB where the M packet wrote.
    survive_malformed_packets(&mut rsp, 0x200000);

    // The thread gdb selected outlives a refused packet: `g` still reads
    // the second vCPU's registers, not the first's.
    let first = rsp.ask("g");
    assert_eq!(rsp.ask("Hg2"), "OK");
    let second = rsp.ask("g");
    assert_ne!(first, second, "two vCPUs, two register sets");
    assert!(rsp.ask("vCont;q").starts_with('E'));
    assert_eq!(rsp.ask("g"), second, "still the second vCPU");

    // Without extended mode a kill gets no reply.
    rsp.send("k");
    drop(rsp);
    let out = vmm.wait_output(LIMIT);
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = text(&out.stderr);
    assert!(
        !stderr.contains("gdb connection ended"),
        "the session ended early:\n{stderr}"
    );
}

#[test]
fn agent_gdbserver_survives_malformed_packets() {
    if !require(tool("gcc"), "agent_gdbserver_survives_malformed_packets") {
        return;
    }
    let dir = scratch_dir("agent_gdbserver_survives_malformed_packets");
    let spin = dir.join("spin");
    let mut gcc = Command::new("gcc");
    gcc.args(["-g", "-O0", "-o"])
        .arg(&spin)
        .arg(programs_dir().join("spin.c"));
    assert!(run(gcc, "gcc", LIMIT).status.success());
    let (server, port) = agent_gdbserver(&[&spin]);
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    let mut rsp = RawRsp(stream);

    // The program's stack: rsp, read from the stop's registers.
    let regs = rsp.ask("g");
    let sp = &regs[7 * 16..8 * 16];
    let sp = u64::from_le_bytes(
        (0..8)
            .map(|i| u8::from_str_radix(&sp[i * 2..i * 2 + 2], 16).unwrap())
            .collect::<Vec<_>>()
            .try_into()
            .unwrap(),
    );
    survive_malformed_packets(&mut rsp, sp & !0xf);

    rsp.send("k");
    drop(rsp);
    let out = server.wait_output(LIMIT);
    assert_eq!(out.status.code(), Some(128 + 9), "{}", text(&out.stderr));
}

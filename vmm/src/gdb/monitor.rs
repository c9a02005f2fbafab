//! `monitor` commands: what gdb's own commands cannot reach in a VM —
//! guest-physical memory, address translation, and the host's debug
//! capabilities. Named after QEMU's monitor commands where one exists.

use gdbstub::outputln;
use gdbstub::target::ext::monitor_cmd::{ConsoleOutput, MonitorCmd};
use vm_memory::{Bytes, GuestAddress};

use super::target::VmTarget;
use crate::debug::probe::Int3Support;
use crate::error::Error;
use crate::record;
use crate::vcpu::VcpuEvent;

const HELP: &str = "vmdbg-vmm monitor commands:
  xp [/N] ADDR         dump N (default 16) bytes of guest-physical memory
  phys-write ADDR HEX  write bytes (hex string, e.g. 90ccff) to guest-physical memory
  gva2gpa ADDR         translate a guest-virtual address with vCPU 0's page tables
  info                 vCPUs, debug registers in use, host debug capabilities
  record status        position (icount), recorded length, log, checkpoints
  record goto N        go to instruction position N of the recording
  record replay-to N   replay forward to N executing every instruction
  record digest        CRC of what the guest observed since the last restore
  record save FILE     save the recording (replay it with --replay FILE)
  help                 this text";

fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn parse_hex_bytes(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl VmTarget {
    fn monitor(&mut self, words: &[&str], mut out: ConsoleOutput<'_>) {
        match words {
            ["xp", rest @ ..] => {
                let (count, addr) = match rest {
                    [n, a] if n.starts_with('/') => (parse_u64(&n[1..]), parse_u64(a)),
                    [a] => (Some(16), parse_u64(a)),
                    _ => (None, None),
                };
                let (Some(count), Some(addr)) = (count, addr) else {
                    outputln!(out, "usage: xp [/N] ADDR");
                    return;
                };
                let mut buf = vec![0u8; count.min(4096) as usize];
                if let Err(e) = self.vm.mem.read_slice(&mut buf, GuestAddress(addr)) {
                    outputln!(
                        out,
                        "xp: cannot read {count} bytes at physical {addr:#x}: {e}"
                    );
                    return;
                }
                for (i, row) in buf.chunks(16).enumerate() {
                    let hex: Vec<String> = row.iter().map(|b| format!("{b:02x}")).collect();
                    outputln!(out, "{:#018x}: {}", addr + (i * 16) as u64, hex.join(" "));
                }
            }
            ["phys-write", addr, hex] => match (parse_u64(addr), parse_hex_bytes(hex)) {
                (Some(addr), Some(bytes)) => {
                    match self.vm.mem.write_slice(&bytes, GuestAddress(addr)) {
                        Ok(()) => {
                            outputln!(out, "wrote {} bytes at physical {addr:#x}", bytes.len())
                        }
                        Err(e) => outputln!(out, "phys-write: {e}"),
                    }
                }
                _ => outputln!(
                    out,
                    "usage: phys-write ADDR HEXBYTES (e.g. phys-write 0x1000 90cc)"
                ),
            },
            ["gva2gpa", addr] => {
                let Some(gva) = parse_u64(addr) else {
                    outputln!(out, "usage: gva2gpa ADDR");
                    return;
                };
                match self.paging_mode(0) {
                    Ok(mode) => match mode.translate(&self.vm.mem, gva) {
                        Ok(t) => outputln!(out, "gpa: {:#x} (page size {:#x})", t.gpa, t.page_size),
                        Err(e) => outputln!(out, "gva2gpa: {e}"),
                    },
                    Err(_) => outputln!(out, "gva2gpa: cannot read vCPU 0's registers"),
                }
            }
            ["info"] => {
                outputln!(out, "vCPUs: {}", self.vm.vcpu_count());
                outputln!(
                    out,
                    "boot: {:?} entry at {:#x}",
                    self.vm.boot.mode,
                    self.vm.boot.rip
                );
                outputln!(out, "debug registers: DR7={:#x}", self.slots.dr7());
                match &self.host.int3 {
                    Int3Support::Intercepted => {
                        outputln!(out, "int3: intercepted by this host's KVM")
                    }
                    Int3Support::NotIntercepted(why) => outputln!(
                        out,
                        "int3: not usable on this host ({why}); `break` uses debug registers, 4 at most"
                    ),
                }
                if !self.host.exec_breakpoints {
                    outputln!(
                        out,
                        "breakpoints: none ({})",
                        super::target::NO_BREAKPOINTS_HERE
                    );
                }
                outputln!(
                    out,
                    "data breakpoints: {}",
                    if self.host.data_breakpoints {
                        "in hardware"
                    } else {
                        "not delivered by this host's KVM; watchpoints single-step and compare (writes only)"
                    }
                );
                outputln!(
                    out,
                    "single-step blocks interrupts: {}",
                    self.vm.caps.block_irq_on_step
                );
            }
            ["record", rest @ ..] => self.record_monitor(rest, &mut out),
            _ => outputln!(out, "{HELP}"),
        }
    }

    fn record_monitor(&mut self, words: &[&str], out: &mut ConsoleOutput<'_>) {
        let Some(shared) = self.vm.recorder.clone() else {
            outputln!(out, "no recording: {}", record::HOW_TO_RECORD);
            return;
        };
        match words {
            ["status"] => {
                let r = record::lock(&shared);
                outputln!(out, "icount: {}", r.icount);
                outputln!(out, "recorded: {} instructions", r.end);
                outputln!(out, "live: {}", r.live);
                outputln!(out, "log entries: {}", r.log.len());
                outputln!(
                    out,
                    "checkpoints: {} (every {} instructions), {} KiB kept",
                    r.checkpoint_count(),
                    r.interval,
                    r.memory_kept() >> 10
                );
                outputln!(
                    out,
                    "replayed: {} instructions, {} restores, {} pages restored",
                    r.stats.steps_replayed,
                    r.stats.restores,
                    r.stats.pages_restored
                );
                if let Some(why) = &r.diverged {
                    outputln!(out, "diverged: {why}");
                }
            }
            ["digest"] => {
                let r = record::lock(&shared);
                outputln!(
                    out,
                    "digest {:#010x} from {} to {}",
                    r.digest(),
                    r.digest_from,
                    r.icount
                );
            }
            [verb @ ("goto" | "replay-to"), n] => {
                let Some(target) = parse_u64(n) else {
                    outputln!(out, "usage: record {verb} N");
                    return;
                };
                let goal = match *verb {
                    "goto" => record::Goal::Goto(target),
                    _ => record::Goal::ReplayTo(target),
                };
                match record::drive_and_wait(&mut self.vm, goal) {
                    Ok(VcpuEvent::Record {
                        stop: record::Stop::Reached,
                        ..
                    }) => outputln!(out, "icount: {target}"),
                    Ok(VcpuEvent::Record {
                        stop: record::Stop::Diverged(why) | record::Stop::Failed(why),
                        ..
                    }) => outputln!(out, "record {verb}: {why}"),
                    Ok(other) => outputln!(out, "record {verb}: stopped by {other:?}"),
                    Err(e) => outputln!(out, "record {verb}: {e}"),
                }
            }
            ["save", path] => match record::save(&self.vm, std::path::Path::new(path)) {
                Ok(()) => outputln!(out, "saved to {path}"),
                Err(e) => outputln!(out, "record save: {e}"),
            },
            _ => outputln!(
                out,
                "usage: record status | goto N | replay-to N | digest | save FILE"
            ),
        }
    }
}

impl MonitorCmd for VmTarget {
    fn handle_monitor_cmd(&mut self, cmd: &[u8], out: ConsoleOutput<'_>) -> Result<(), Error> {
        let text = String::from_utf8_lossy(cmd);
        let words: Vec<&str> = text.split_whitespace().collect();
        self.monitor(&words, out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers_and_hex() {
        assert_eq!(parse_u64("0x1f"), Some(31));
        assert_eq!(parse_u64("16"), Some(16));
        assert_eq!(parse_hex_bytes("90cc"), Some(vec![0x90, 0xcc]));
        assert_eq!(parse_hex_bytes("9"), None);
        assert_eq!(parse_hex_bytes("zz"), None);
    }
}

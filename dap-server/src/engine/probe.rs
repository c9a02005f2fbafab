//! The start-up capability probe of /dev/kvm behind `engine: auto`.
//!
//! A throw-away VM with 64 KiB of memory runs a tiny 64-bit guest that does
//! what the Linux kernel needs from a KVM early in its boot: it takes an
//! `int3` in ring 0 through its own IDT (Linux's int3 self-test, which a
//! paravirtual nested KVM such as kvm_pvm fails with an emulation error),
//! runs a short loop whose time shows whether ring-0 code runs natively or
//! is emulated instruction by instruction, and takes a local-APIC timer
//! interrupt. It reports to the host through port-I/O exits. The whole
//! probe takes a few milliseconds on a real KVM.
//!
//! The loop is timed by the host's wall clock, which a loaded machine
//! stretches at random (one preemption is milliseconds). So the guest runs
//! it several times, the host runs the same instructions natively as
//! often, and the probe compares the fastest of each: emulation costs
//! three orders of magnitude on every sample; a preemption costs one
//! sample, and the minimum drops it.
//!
//! The probe guest (GNU as, AT&T syntax; assembled once, bytes below):
//!
//! ```text
//! 0x8000 start:  int3                     ; -> handler_int3
//!                mov $9,%ebx              ; LOOP_SAMPLES
//!            3:  out %al,$0x12            ; loop start
//!                mov $20000,%ecx
//!            1:  dec %ecx ; jnz 1b
//!                out %al,$0x13            ; loop end
//!                dec %ebx ; jnz 3b
//!                mov $0xfee00000,%edi
//!                movl $0x1ff,0xf0(%rdi)   ; APIC software enable
//!                movl $0xb,0x3e0(%rdi)    ; timer divide by 1
//!                movl $0x40,0x320(%rdi)   ; LVT timer: one-shot, vector 0x40
//!                movl $100000,0x380(%rdi) ; initial count
//!                sti
//!            2:  hlt ; jmp 2b
//! 0x8100 handler_int3:  out %al,$0x10 ; iretq
//! 0x8200 handler_timer: out %al,$0x14 ; movl $0,0xb0(%rdi) (EOI) ; iretq
//! 0x8300 handler_other: out %al,$0x1f ; hlt ; jmp handler_other
//! ```

use std::sync::mpsc;
use std::time::{Duration, Instant};

use kvm_bindings::{kvm_segment, kvm_userspace_memory_region, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Kvm, VcpuExit};

const CODE_START: &[u8] = &[
    0xcc, 0xbb, 0x09, 0x00, 0x00, 0x00, 0xe6, 0x12, 0xb9, 0x20, 0x4e, 0x00, 0x00, 0xff, 0xc9, 0x75,
    0xfc, 0xe6, 0x13, 0xff, 0xcb, 0x75, 0xef, 0xbf, 0x00, 0x00, 0xe0, 0xfe, 0xc7, 0x87, 0xf0, 0x00,
    0x00, 0x00, 0xff, 0x01, 0x00, 0x00, 0xc7, 0x87, 0xe0, 0x03, 0x00, 0x00, 0x0b, 0x00, 0x00, 0x00,
    0xc7, 0x87, 0x20, 0x03, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0xc7, 0x87, 0x80, 0x03, 0x00, 0x00,
    0xa0, 0x86, 0x01, 0x00, 0xfb, 0xf4, 0xeb, 0xfd,
];
/// How often the guest runs the timed loop (the `mov $9,%ebx` above).
const LOOP_SAMPLES: usize = 9;
/// The loop's iteration count (the `mov $20000,%ecx` above).
const LOOP_ITERATIONS: u32 = 20_000;
const CODE_INT3: &[u8] = &[0xe6, 0x10, 0x48, 0xcf];
const CODE_TIMER: &[u8] = &[
    0xe6, 0x14, 0xbf, 0x00, 0x00, 0xe0, 0xfe, 0xc7, 0x87, 0xb0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x48, 0xcf,
];
const CODE_OTHER: &[u8] = &[0xe6, 0x1f, 0xf4, 0xeb, 0xfb];

const MEM_SIZE: usize = 0x10000;
const GDT: u64 = 0x500;
const PML4: u64 = 0x1000;
const PDPT: u64 = 0x2000;
const PD_LOW: u64 = 0x3000;
const PD_APIC: u64 = 0x4000;
const IDT: u64 = 0x6000;
const CODE: u64 = 0x8000;
const TIMER_VECTOR: usize = 0x40;

/// Ring-0 loop of 40,000 instructions: microseconds natively, tens of
/// milliseconds when every instruction is emulated (2.27 s for 4 million
/// was measured on kvm_pvm, ~2000 times native). The guest's fastest run
/// must be this many times slower than the host's fastest run of the same
/// loop to count as emulated: a real KVM is within a few times (the
/// port-I/O exits around the loop included), also when the "host" is
/// itself a VM under TCG, as the nested tier's L1 is.
const EMULATED_RATIO: u32 = 50;
/// ...and at least this slow, so a loop too short to time well on a fast
/// host never counts as emulated.
const EMULATED_FLOOR: Duration = Duration::from_millis(1);
/// How long the probe may go without a step of progress (the VM made,
/// each port write of its guest); a KVM that never delivers the timer
/// interrupt would otherwise leave the guest halted for ever. The limit is
/// on a silence, not on the whole probe: on a loaded host (the nested
/// tier's L1 runs under TCG) the timed loops alone can take over a second.
const PROBE_LIMIT: Duration = Duration::from_millis(1500);

/// What the probe thread tells the waiting one.
enum ProbeEvent {
    /// One more step done: the wait for the next starts again.
    Progress,
    Done(Result<ProbePass, String>),
}

/// What the probe measured on a KVM that passed.
#[derive(Debug, Clone)]
pub struct ProbePass {
    /// The guest's fastest run of the ring-0 loop.
    pub loop_time: Duration,
    /// The host's fastest run of the same instructions.
    pub host_loop_time: Duration,
    /// The whole probe, VM creation included.
    pub total: Duration,
}

/// Runs the probe; `Err` says in one sentence why this KVM cannot run a
/// Linux guest.
pub fn probe_kvm() -> Result<ProbePass, String> {
    let (tx, rx) = mpsc::channel();
    // The vCPU may block in KVM_RUN for ever (a halted guest whose timer
    // never fires); the probe then gives up on the thread and its VM.
    std::thread::Builder::new()
        .name("kvm-probe".into())
        .spawn(move || {
            let progress = tx.clone();
            let result = run_probe(&move || {
                let _ = progress.send(ProbeEvent::Progress);
            });
            let _ = tx.send(ProbeEvent::Done(result));
        })
        .map_err(|e| format!("cannot start the probe thread: {e}"))?;
    loop {
        match rx.recv_timeout(PROBE_LIMIT) {
            Ok(ProbeEvent::Progress) => {}
            Ok(ProbeEvent::Done(result)) => return result,
            Err(_) => {
                return Err(format!(
                "its probe guest did not get a local-APIC timer interrupt within {PROBE_LIMIT:?}"
            ))
            }
        }
    }
}

fn segment(selector: u16, code: bool) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_: if code { 0xb } else { 0x3 },
        present: 1,
        dpl: 0,
        db: if code { 0 } else { 1 },
        s: 1,
        l: if code { 1 } else { 0 },
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// An anonymous mapping for guest memory, unmapped on drop.
struct GuestMemory(*mut u8);

impl GuestMemory {
    fn new() -> Result<Self, String> {
        // SAFETY: a fresh private anonymous mapping; checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MEM_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(format!("mmap: {}", std::io::Error::last_os_error()));
        }
        Ok(GuestMemory(ptr as *mut u8))
    }

    fn write(&mut self, addr: u64, bytes: &[u8]) {
        assert!(
            addr as usize + bytes.len() <= MEM_SIZE,
            "probe layout beyond its memory"
        );
        // SAFETY: within the mapping (checked above); no other references.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.0.add(addr as usize), bytes.len())
        }
    }
}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        // SAFETY: the mapping made in new(); the VM using it is gone by now
        // (fields drop in order: see run_probe).
        unsafe { libc::munmap(self.0 as *mut libc::c_void, MEM_SIZE) };
    }
}

fn run_probe(progress: &dyn Fn()) -> Result<ProbePass, String> {
    let started = Instant::now();
    let kvm = Kvm::new().map_err(|e| format!("/dev/kvm cannot be opened ({e})"))?;
    let mut mem = GuestMemory::new()?;
    // Page tables: 0-2 MiB and the local APIC's 2 MiB page, identity.
    mem.write(PML4, &(PDPT | 3).to_le_bytes());
    mem.write(PDPT, &(PD_LOW | 3).to_le_bytes());
    mem.write(PDPT + 3 * 8, &(PD_APIC | 3).to_le_bytes());
    mem.write(PD_LOW, &(0x83u64).to_le_bytes());
    mem.write(
        PD_APIC + 503 * 8,
        &(0xfee0_0000u64 | 0x83 | 0x10).to_le_bytes(),
    ); // PCD: uncached
       // GDT: null, 64-bit code (0x08), data (0x10).
    for (i, d) in [0u64, 0x00af_9b00_0000_ffff, 0x00cf_9300_0000_ffff]
        .iter()
        .enumerate()
    {
        mem.write(GDT + i as u64 * 8, &d.to_le_bytes());
    }
    // IDT: every vector to handler_other except int3 and the timer.
    for vector in 0..256usize {
        let handler = match vector {
            3 => CODE + 0x100,
            TIMER_VECTOR => CODE + 0x200,
            _ => CODE + 0x300,
        };
        let mut gate = [0u8; 16];
        gate[0..2].copy_from_slice(&(handler as u16).to_le_bytes());
        gate[2..4].copy_from_slice(&0x08u16.to_le_bytes());
        gate[5] = 0x8e; // present, ring 0, 64-bit interrupt gate
        gate[6..8].copy_from_slice(&((handler >> 16) as u16).to_le_bytes());
        gate[8..12].copy_from_slice(&((handler >> 32) as u32).to_le_bytes());
        mem.write(IDT + vector as u64 * 16, &gate);
    }
    mem.write(CODE, CODE_START);
    mem.write(CODE + 0x100, CODE_INT3);
    mem.write(CODE + 0x200, CODE_TIMER);
    mem.write(CODE + 0x300, CODE_OTHER);

    let vm = kvm
        .create_vm()
        .map_err(|e| format!("KVM_CREATE_VM failed ({e})"))?;
    // SAFETY: the region is our live mapping of MEM_SIZE bytes, which
    // outlives the VM (`vm` is dropped before `mem` at the end of scope).
    unsafe {
        vm.set_user_memory_region(kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: MEM_SIZE as u64,
            userspace_addr: mem.0 as u64,
        })
    }
    .map_err(|e| format!("KVM_SET_USER_MEMORY_REGION failed ({e})"))?;
    let _ = vm.set_tss_address(0xfffb_d000);
    vm.create_irq_chip()
        .map_err(|e| format!("it has no in-kernel interrupt controller ({e})"))?;
    let vcpu = vm
        .create_vcpu(0)
        .map_err(|e| format!("KVM_CREATE_VCPU failed ({e})"))?;
    let cpuid = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(|e| format!("KVM_GET_SUPPORTED_CPUID failed ({e})"))?;
    vcpu.set_cpuid2(&cpuid)
        .map_err(|e| format!("KVM_SET_CPUID2 failed ({e})"))?;
    let mut sregs = vcpu
        .get_sregs()
        .map_err(|e| format!("KVM_GET_SREGS failed ({e})"))?;
    sregs.cs = segment(0x08, true);
    let data = segment(0x10, false);
    (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
    sregs.gdt.base = GDT;
    sregs.gdt.limit = 23;
    sregs.idt.base = IDT;
    sregs.idt.limit = 256 * 16 - 1;
    sregs.cr3 = PML4;
    sregs.cr4 = 1 << 5; // PAE
    sregs.cr0 = 1 | (1 << 4) | (1 << 5) | (1 << 31); // PE, ET, NE, PG
    sregs.efer = (1 << 8) | (1 << 10); // LME, LMA
    vcpu.set_sregs(&sregs)
        .map_err(|e| format!("it refused 64-bit mode (KVM_SET_SREGS: {e})"))?;
    let mut regs = vcpu
        .get_regs()
        .map_err(|e| format!("KVM_GET_REGS failed ({e})"))?;
    regs.rip = CODE;
    regs.rsp = 0x7ff0;
    regs.rflags = 2;
    vcpu.set_regs(&regs)
        .map_err(|e| format!("KVM_SET_REGS failed ({e})"))?;

    let mut vcpu = vcpu;
    let (mut int3, mut loop_start, mut guest_loops) = (false, None, Vec::new());
    progress();
    loop {
        let exit = vcpu
            .run()
            .map_err(|e| format!("KVM_RUN failed in its probe guest ({e})"))?;
        match exit {
            VcpuExit::IoOut(0x10, _) => int3 = true,
            VcpuExit::IoOut(0x12, _) if int3 => loop_start = Some(Instant::now()),
            VcpuExit::IoOut(0x13, _) => guest_loops.extend(loop_start.take().map(|s: Instant| s.elapsed())),
            VcpuExit::IoOut(0x14, _) => break,
            VcpuExit::IoOut(0x1f, _) => return Err("its probe guest took an unexpected exception".into()),
            VcpuExit::IoOut(port, _) => return Err(format!("its probe guest wrote to port {port:#x} out of order")),
            VcpuExit::InternalError => {
                return Err(format!(
                    "KVM internal error (emulation failure) {} in its ring-0 probe guest, as the Linux kernel's int3 self-test would hit",
                    if int3 { "after the int3" } else { "on the int3" }
                ))
            }
            VcpuExit::Shutdown => return Err("its probe guest triple-faulted".into()),
            VcpuExit::FailEntry(reason, _) => return Err(format!("VM entry failed (hardware reason {reason:#x})")),
            VcpuExit::Hlt => return Err("its probe guest halted without an in-kernel timer".into()),
            other => return Err(format!("unexpected exit {other:?} in its probe guest")),
        }
        // After the exit is timed: the loops' times stay the guest's own.
        progress();
    }
    drop(vcpu);
    drop(vm);
    if guest_loops.len() != LOOP_SAMPLES {
        return Err(format!(
            "its probe guest ran the timed loop {} times instead of {LOOP_SAMPLES}",
            guest_loops.len()
        ));
    }
    let host_loops: Vec<Duration> = (0..LOOP_SAMPLES).map(|_| host_loop()).collect();
    let (loop_time, host_loop_time) = judge_loop(&guest_loops, &host_loops)?;
    Ok(ProbePass {
        loop_time,
        host_loop_time,
        total: started.elapsed(),
    })
}

/// The probe guest's loop, run here: the same two instructions, as often.
fn host_loop() -> Duration {
    let started = Instant::now();
    // SAFETY: only ecx changes, and it is declared; no memory is touched.
    unsafe {
        std::arch::asm!(
            "2:",
            "dec {n:e}",
            "jnz 2b",
            n = inout(reg) LOOP_ITERATIONS => _,
            options(nomem, nostack),
        );
    }
    started.elapsed()
}

/// Whether the guest's loop ran emulated, from the fastest guest and host
/// samples; returns those two when it did not.
fn judge_loop(guest: &[Duration], host: &[Duration]) -> Result<(Duration, Duration), String> {
    let guest_min = *guest.iter().min().ok_or("no guest loop sample")?;
    let host_min = *host.iter().min().ok_or("no host loop sample")?;
    let host_floor = host_min.max(Duration::from_nanos(100));
    if guest_min > EMULATED_FLOOR && guest_min > host_floor * EMULATED_RATIO {
        return Err(format!(
            "its ring-0 code runs emulated: a 40,000-instruction loop took {:.1} ms at best of {} runs, {:.0} times the {:.0} µs it takes here natively",
            guest_min.as_secs_f64() * 1e3,
            guest.len(),
            guest_min.as_secs_f64() / host_floor.as_secs_f64(),
            host_min.as_secs_f64() * 1e6,
        ));
    }
    Ok((guest_min, host_min))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&u| Duration::from_micros(u)).collect()
    }

    #[test]
    fn preempted_samples_of_a_native_loop_do_not_make_it_emulated() {
        // A real KVM on a loaded host: most samples hit by a multi-ms
        // preemption, one clean one is enough.
        let guest = us(&[9_000, 12_000, 25, 7_500, 30_000, 8_000, 4_100, 9_900, 6_000]);
        let host = us(&[20, 21, 5_000, 20, 22, 20, 20, 4_000, 20]);
        assert_eq!(
            judge_loop(&guest, &host),
            Ok((Duration::from_micros(25), Duration::from_micros(20)))
        );
    }

    #[test]
    fn a_slow_host_running_a_nested_kvm_is_not_emulated() {
        // The nested tier's L1 runs under TCG: host and guest loops are
        // both slow, and about equal.
        let guest = us(&[900, 850, 1_200, 870, 3_000, 880, 860, 900, 855]);
        let host = us(&[700, 690, 2_000, 710, 700, 705, 695, 690, 700]);
        assert!(judge_loop(&guest, &host).is_ok());
    }

    #[test]
    fn an_emulated_loop_is_emulated_on_every_sample() {
        let guest = us(&[
            22_000, 23_000, 21_500, 25_000, 22_100, 22_000, 24_000, 21_900, 22_300,
        ]);
        let host = us(&[11, 10, 12, 10, 3_000, 10, 11, 10, 10]);
        let why = judge_loop(&guest, &host).unwrap_err();
        assert!(
            why.contains("runs emulated") && why.contains("21.5 ms"),
            "{why}"
        );
    }
}

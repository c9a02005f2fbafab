//! `cargo bench -p vmdbg-vmm --bench snapshot_bench`: snapshot restore and
//! in-place reset of a 256 MiB bare-metal guest, medians of
//! `VMDBG_BENCH_RUNS` (default 20) runs.
//!
//! 1. **Restore to running** (in this process, through the library): read
//!    and check the state file, map the memory file MAP_PRIVATE, build the
//!    machine, write the vCPU/VM/device state, start vCPU 0.
//! 2. **In-place reset** with 0, 1, 16 and 64 MiB dirtied: `dirty-N.elf`
//!    writes one byte in each page of N MiB and exits; the reset reads
//!    KVM's dirty log and the VMM's own (guest memory's bitmap), drops
//!    those pages (MADV_DONTNEED) and writes the state back. Timed from the
//!    guest's exit to the reset's return. The 1 MiB case runs again with a
//!    virtio-blk disk attached.
//! 3. **Restore into a new process**: `vmdbg-vmm --restore` of
//!    `dirty-0.elf`'s snapshot (the guest exits at once) from spawn to exit,
//!    beside a boot of the same kernel (`--kernel dirty-0.elf`).
//! 4. **QEMU incoming migration** of the same ELF and memory size
//!    (`-incoming "exec:cat FILE"` of a `migrate` to a file, `-accel kvm`),
//!    from spawn to the guest's exit, where QEMU and its KVM can run it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vmdbg_vmm::devices::serial::SerialTarget;
use vmdbg_vmm::snapshot;
use vmdbg_vmm::vcpu::VcpuEvent;
use vmdbg_vmm::vm::{Vm, VmConfig};

const MEM: u64 = 256 << 20;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

fn guests() -> PathBuf {
    let out = workspace().join("target/bench-guests");
    let status = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(workspace().join("tests/guests/baremetal"))
        .arg(format!("OUT={}", out.display()))
        .status()
        .expect("run make");
    assert!(status.success(), "building the bench guests failed");
    out
}

fn config(kernel: PathBuf) -> VmConfig {
    let mut c = VmConfig::new(kernel);
    c.mem_bytes = MEM;
    c.serial = SerialTarget::None;
    c
}

/// Runs vCPU 0 until the guest ends the VM.
fn run_to_end(vm: &mut Vm) {
    vm.run_vcpu(0).expect("run");
    loop {
        match vm.wait_event() {
            Some(VcpuEvent::VmEnded { .. }) => return,
            Some(other) => vm.run_vcpu(other.vcpu()).expect("run"),
            None => panic!("vCPU threads gone"),
        }
    }
}

fn vmm_bin() -> PathBuf {
    std::env::var_os("VMDBG_VMM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let status = Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
                .args([
                    "build",
                    "-q",
                    "--release",
                    "-p",
                    "vmdbg-vmm",
                    "--bin",
                    "vmdbg-vmm",
                ])
                .status()
                .expect("cargo build");
            assert!(status.success());
            workspace().join("target/release/vmdbg-vmm")
        })
}

fn time_process(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    let status = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn");
    let d = t.elapsed();
    assert!(status.code().is_some(), "{cmd:?}: {status}");
    d
}

fn qemu_migration(kernel: &Path, dir: &Path, runs: usize) -> Result<Duration, String> {
    use std::io::Write;
    let qemu = "qemu-system-x86_64";
    let state = dir.join("qemu.migration");
    let base = |cmd: &mut Command| {
        cmd.args([
            "-accel", "kvm", "-M", "microvm", "-cpu", "host", "-m", "256M",
        ])
        .args(["-nographic", "-nodefaults", "-no-reboot", "-serial", "null"])
        .args([
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-kernel",
        ])
        .arg(kernel);
    };
    // Stopped at its first instruction (-S), saved to a file.
    let mut cmd = Command::new(qemu);
    base(&mut cmd);
    cmd.args(["-S", "-monitor", "stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("{qemu}: {e}"))?;
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "migrate \"exec:cat > {}\"", state.display()).map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_secs(2));
    let _ = writeln!(stdin, "quit");
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !state.exists() || std::fs::metadata(&state).map(|m| m.len()).unwrap_or(0) == 0 {
        return Err(format!(
            "saving failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    // The saved VM was stopped, so the incoming one stays stopped until a
    // `cont`, sent every 2 ms until it takes (so up to 2 ms of this is the
    // polling).
    let mut times = Vec::new();
    for _ in 0..runs {
        let mut cmd = Command::new(qemu);
        base(&mut cmd);
        cmd.arg("-incoming")
            .arg(format!("exec:cat {}", state.display()))
            .args(["-monitor", "stdio"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let t = Instant::now();
        let mut child = cmd.spawn().map_err(|e| format!("{qemu}: {e}"))?;
        let mut stdin = child.stdin.take().expect("stdin");
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if t.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                return Err("the incoming VM did not run to its exit within 20 s".into());
            }
            let _ = writeln!(stdin, "cont");
            std::thread::sleep(Duration::from_millis(2));
        };
        times.push(t.elapsed());
        if status.code() != Some(1) {
            return Err(format!("the incoming VM ended with {status}"));
        }
    }
    Ok(median(times))
}

fn main() {
    let runs: usize = std::env::var("VMDBG_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let guests = guests();
    let dir = std::env::temp_dir().join(format!("vmdbg-snapshot-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    println!("snapshot bench: 256 MiB guest, medians of {runs} runs");

    // 2. In-place reset after N MiB dirtied; the 1 MiB case again with a
    // virtio-blk disk attached (the VMM's own writes are tracked in guest
    // memory's bitmap, so a virtio device no longer makes a reset drop all
    // of memory).
    let disk = dir.join("disk.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).expect("bench disk");
    let mut reset_medians = Vec::new();
    for (mib, with_disk) in [(0, false), (1, false), (16, false), (64, false), (1, true)] {
        let kernel = guests.join(format!("dirty-{mib}.elf"));
        let mut c = config(kernel);
        if with_disk {
            c.disks.push(vmdbg_vmm::devices::virtio::block::DiskSpec {
                path: disk.clone(),
                read_only: true,
            });
        }
        let mut vm = Vm::create(&c).expect("boot");
        let snap = snapshot::create(
            &mut vm,
            &dir.join(format!("dirty-{mib}.snap")),
            &dir.join(format!("dirty-{mib}.mem")),
        )
        .expect("snapshot");
        let mut times = Vec::new();
        let mut pages = 0;
        for _ in 0..runs {
            run_to_end(&mut vm);
            let t = Instant::now();
            let stats = snapshot::reset(&mut vm, &snap).expect("reset");
            times.push(t.elapsed());
            pages = stats.pages_dropped;
        }
        let median = median(times);
        println!(
            "in-place reset, {mib:>2} MiB dirtied{} ({pages:>5} pages dropped): {}",
            if with_disk {
                ", virtio-blk attached"
            } else {
                ""
            },
            ms(median)
        );
        reset_medians.push(median);
    }

    // 1. Restore to running, in this process.
    let state = dir.join("dirty-0.snap");
    let mem = dir.join("dirty-0.mem");
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let (mut vm, _) =
            snapshot::restore_new(&state, &mem, &SerialTarget::None, None).expect("restore");
        vm.run_vcpu(0).expect("run");
        times.push(t.elapsed());
        while !matches!(vm.wait_event(), Some(VcpuEvent::VmEnded { .. }) | None) {}
    }
    let in_process = median(times);
    println!(
        "restore to running (library, in process): {}",
        ms(in_process)
    );

    // 3. A new process.
    let bin = vmm_bin();
    let restore: Vec<_> = (0..runs)
        .map(|_| {
            time_process(
                Command::new(&bin)
                    .arg("--restore")
                    .arg(&state)
                    .arg("--mem-file")
                    .arg(&mem)
                    .args(["--serial", "none"]),
            )
        })
        .collect();
    let boot: Vec<_> = (0..runs)
        .map(|_| {
            time_process(
                Command::new(&bin)
                    .arg("--kernel")
                    .arg(guests.join("dirty-0.elf"))
                    .args(["--mem", "256M", "--serial", "none"]),
            )
        })
        .collect();
    let new_process = median(restore);
    println!(
        "new process: vmdbg-vmm --restore to guest exit {}; --kernel boot to guest exit {}",
        ms(new_process),
        ms(median(boot))
    );

    // 4. QEMU's incoming migration of the same guest.
    let qemu = qemu_migration(&guests.join("dirty-0.elf"), &dir, runs);
    match &qemu {
        Ok(d) => println!("QEMU -incoming (exec:cat) to guest exit: {}", ms(*d)),
        Err(e) => println!("QEMU -incoming: unavailable: {e}"),
    }

    // Ratios: against Firecracker's published restore figure (3 ms at
    // best, docs/prod-host-setup.md; up to 8 ms in its SPECIFICATION) and
    // QEMU's incoming migration measured above.
    const FIRECRACKER: Duration = Duration::from_millis(3);
    for (what, d) in [
        ("in-place reset, 0 MiB dirtied", reset_medians[0]),
        ("in-place reset, 1 MiB dirtied", reset_medians[1]),
        ("restore to running, in process", in_process),
        ("restore in a new process, to guest exit", new_process),
    ] {
        let qemu = match &qemu {
            Ok(q) => format!(
                ", QEMU -incoming / this = {:.1}x",
                q.as_secs_f64() / d.as_secs_f64()
            ),
            Err(_) => String::new(),
        };
        println!(
            "ratio {what}: {:.2}x Firecracker's 3 ms{qemu}",
            d.as_secs_f64() / FIRECRACKER.as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

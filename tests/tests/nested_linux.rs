//! The nested tier: the static vmdbg-vmm boots Debian's kernel as L2 on the
//! hardware-virtualization KVM inside an L1 VM under QEMU TCG (see
//! vmdbg_e2e::nested). One L1 serves every test here, one at a time.

use vmdbg_e2e::nested::{self, Outcome, SCENARIO_LIMIT};

const KERNEL_RELEASE: &str = "6.1.0-56-amd64";

fn run(test: &str, command: &str) -> Option<Outcome> {
    let mut l1 = nested::session(test)?;
    let outcome = l1.run(command, SCENARIO_LIMIT);
    eprintln!("{test}: `{command}` ->\n{}", outcome.output);
    Some(outcome)
}

/// Checks L2 reached its init, printed Debian's uname and powered off, so
/// that vmdbg-vmm exited 0.
fn assert_booted_and_powered_off(out: &Outcome) {
    let uname = out
        .marker("@@L2-UNAME")
        .unwrap_or_else(|| panic!("L2 never printed its uname:\n{}", out.output));
    assert!(
        uname.starts_with("Linux") && uname.contains(KERNEL_RELEASE),
        "{uname}"
    );
    assert!(out.marker("@@L2-POWEROFF").is_some(), "{}", out.output);
    assert_eq!(out.marker("@@VMM-STATUS"), Some("0"), "{}", out.output);
    eprintln!("boot to init: {:?} ms", out.boot_to_init_ms());
}

#[test]
fn nested_vmlinux_pvh_boots_to_init_and_poweroff_exits_0() {
    let Some(out) = run(
        "nested_vmlinux_pvh_boots_to_init_and_poweroff_exits_0",
        "run-l2.sh /l2/vmlinux uname",
    ) else {
        return;
    };
    assert_booted_and_powered_off(&out);
}

#[test]
fn nested_vmlinux_64bit_entry_boots_to_init() {
    let Some(out) = run(
        "nested_vmlinux_64bit_entry_boots_to_init",
        "run-l2.sh /l2/vmlinux uname --entry elf64",
    ) else {
        return;
    };
    assert_booted_and_powered_off(&out);
}

#[test]
fn nested_bzimage_boots_to_init() {
    let Some(out) = run(
        "nested_bzimage_boots_to_init",
        "run-l2.sh /l2/vmlinuz uname",
    ) else {
        return;
    };
    assert_booted_and_powered_off(&out);
}

#[test]
fn nested_guest_reboot_exits_14() {
    let Some(out) = run(
        "nested_guest_reboot_exits_14",
        "run-l2.sh /l2/vmlinux reboot",
    ) else {
        return;
    };
    assert!(out.marker("@@L2-REBOOTING").is_some(), "{}", out.output);
    assert_eq!(out.marker("@@VMM-STATUS"), Some("14"), "{}", out.output);
}

#[test]
fn nested_acpi_lists_virtio_mmio_devices() {
    let Some(out) = run(
        "nested_acpi_lists_virtio_mmio_devices",
        "truncate -s 1M /tmp/acpi-disk.img && run-l2.sh /l2/vmlinux virtio --disk /tmp/acpi-disk.img,ro --vsock-uds /tmp/acpi.vsock",
    ) else { return };
    assert_eq!(out.marker("@@L2-VIRTIO-COUNT"), Some("2"), "{}", out.output);
    let devices: Vec<&str> = out
        .output
        .lines()
        .filter_map(|l| l.trim_start_matches("L2| ").strip_prefix("@@L2-VIRTIO "))
        .collect();
    // virtio device IDs: 2 block, 19 (0x13) vsock.
    assert!(
        devices.iter().any(|d| d.ends_with("device=0x0002")),
        "{devices:?}"
    );
    assert!(
        devices.iter().any(|d| d.ends_with("device=0x0013")),
        "{devices:?}"
    );
    assert_eq!(out.marker("@@VMM-STATUS"), Some("0"), "{}", out.output);
}

#[test]
fn nested_vsock_round_trips_both_ways() {
    let Some(out) = run("nested_vsock_round_trips_both_ways", "vsock.sh /l2/vmlinux") else {
        return;
    };
    let host_side = out.marker("@@L1-UDS-CONNECT").unwrap_or_default();
    assert!(
        host_side.starts_with("OK "),
        "host-initiated: no OK line: {}",
        out.output
    );
    assert!(
        host_side.contains("echo:from-l1"),
        "host-initiated: {}",
        out.output
    );
    assert_eq!(
        out.marker("@@L2-VSOCK-CONNECT"),
        Some("echo:from-l2"),
        "guest-initiated: {}",
        out.output
    );
    assert_eq!(out.marker("@@VMM-STATUS"), Some("0"), "{}", out.output);
}

#[test]
fn nested_block_device_reads_and_writes_a_host_file() {
    let Some(out) = run(
        "nested_block_device_reads_and_writes_a_host_file",
        "block.sh /l2/vmlinux",
    ) else {
        return;
    };
    assert_eq!(
        out.marker("@@L2-BLOCK-READ"),
        Some("written-by-l1"),
        "{}",
        out.output
    );
    assert_eq!(
        out.marker("@@L1-BLOCK-SECTOR1"),
        Some("written-by-l2"),
        "{}",
        out.output
    );
    assert_eq!(out.marker("@@VMM-STATUS"), Some("0"), "{}", out.output);
}

/// Benchmark, not a test (ignored by default): L2 boot to init (L1 wall
/// clock from starting the VMM to L2's first line from init) with the
/// uncompressed vmlinux (PVH) and the bzImage, each run `VMDBG_BENCH_RUNS`
/// times (default 3), medians printed. With `VMDBG_NESTED_WITH_QEMU=1` the
/// L1 image also carries QEMU, and the same boots under `qemu-system-x86_64
/// -M microvm -accel kvm` in the same L1 are measured beside them.
/// `VMDBG_NESTED_WITH_QEMU=1 cargo test --release -p vmdbg-e2e --test nested_linux -- --ignored --nocapture nested_bench`
#[test]
#[ignore]
fn nested_bench_boot_to_init_vmlinux_vs_bzimage() {
    let runs: usize = std::env::var("VMDBG_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let Some(mut l1) = nested::session("nested_bench_boot_to_init_vmlinux_vs_bzimage") else {
        return;
    };
    let mut runners = vec!["run-l2.sh"];
    if std::env::var("VMDBG_NESTED_WITH_QEMU").is_ok_and(|v| !v.is_empty()) {
        runners.push("run-l2-qemu.sh");
    }
    let mut medians = Vec::new();
    for runner in &runners {
        for kernel in ["/l2/vmlinux", "/l2/vmlinuz"] {
            let mut times: Vec<u64> = (0..runs)
                .map(|_| {
                    let out = l1.run(&format!("{runner} {kernel} uname"), SCENARIO_LIMIT);
                    assert_eq!(out.marker("@@VMM-STATUS"), Some("0"), "{}", out.output);
                    out.boot_to_init_ms()
                        .unwrap_or_else(|| panic!("no boot time: {}", out.output))
                })
                .collect();
            times.sort();
            let median = times[times.len() / 2];
            eprintln!("BENCH {runner} {kernel}: boot to init {times:?} ms, median {median} ms");
            medians.push((format!("{runner} {kernel}"), median));
        }
    }
    for (name, median) in &medians {
        eprintln!(
            "BENCH median {name}: {median} ms ({:.2}x vmdbg-vmm vmlinux)",
            *median as f64 / medians[0].1 as f64
        );
    }
}

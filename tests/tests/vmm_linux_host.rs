//! Host-tier checks of what vmdbg-vmm gives Linux guests: the ACPI tables
//! disassemble cleanly with iasl, bad Linux-boot inputs get messages that
//! name the file and the fix, and the virtio devices do not disturb a
//! bare-metal guest. (Booting Linux itself needs the nested tier.)

use std::path::PathBuf;
use std::time::Duration;

use vmdbg_e2e::{all, kernel, kvm, process_temp_dir, require, run, text, tool, vmm};

const LIMIT: Duration = Duration::from_secs(60);

fn scratch(name: &str) -> PathBuf {
    process_temp_dir(&format!("vmdbg-linux-host-{name}-"))
}

#[test]
fn acpi_tables_disassemble_with_iasl_without_errors() {
    if !require(
        tool("iasl"),
        "acpi_tables_disassemble_with_iasl_without_errors",
    ) {
        return;
    }
    let dir = scratch("acpi");
    let mut dump = vmm();
    dump.arg("--dump-acpi").arg(&dir).args([
        "--cpus",
        "2",
        "--disk",
        "disk.img",
        "--vsock-uds",
        "v.sock",
    ]);
    let out = run(dump, "vmdbg-vmm --dump-acpi", LIMIT);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut dsl = std::collections::HashMap::new();
    for table in ["dsdt", "facp", "apic", "xsdt"] {
        let dat = dir.join(format!("{table}.dat"));
        assert!(dat.exists(), "{} was not written", dat.display());
        let mut iasl = std::process::Command::new("iasl");
        iasl.arg("-d").arg(&dat).current_dir(&dir);
        let out = run(iasl, "iasl -d", LIMIT);
        let log = text(&out.stdout) + &text(&out.stderr);
        assert!(out.status.success(), "iasl -d {table}.dat failed:\n{log}");
        assert!(
            !log.contains("Error") && !log.contains("Warning"),
            "iasl -d {table}.dat complained:\n{log}"
        );
        let source = std::fs::read_to_string(dir.join(format!("{table}.dsl"))).unwrap();
        dsl.insert(table, source);
    }
    let dsdt = &dsl["dsdt"];
    assert_eq!(dsdt.matches("\"LNRO0005\"").count(), 2, "{dsdt}");
    assert!(
        dsdt.contains("0xD0000000") && dsdt.contains("0xD0001000"),
        "{dsdt}"
    );
    assert!(dsdt.contains("PNP0501"), "COM1 missing: {dsdt}");
    assert!(dsdt.contains("_S5"), "{dsdt}");
    let facp = &dsl["facp"];
    assert!(
        facp.contains("Hardware Reduced (V5) : 1"),
        "FADT is not hardware-reduced: {facp}"
    );
    assert!(facp.contains("Sleep Control Register"), "{facp}");
    let apic = &dsl["apic"];
    assert_eq!(apic.matches("Processor Local APIC").count(), 2, "{apic}");
    assert!(apic.contains("I/O APIC"), "{apic}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_initrd_is_named_with_the_fix() {
    let mut cmd = vmm();
    cmd.arg("--kernel")
        .arg(kernel("hello.elf"))
        .args(["--initrd", "/nonexistent/initrd.img"]);
    let out = run(cmd, "vmdbg-vmm", LIMIT);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("/nonexistent/initrd.img") && err.contains("--initrd"),
        "{err}"
    );
}

#[test]
fn an_empty_initrd_is_refused() {
    let dir = scratch("empty-initrd");
    let initrd = dir.join("initrd.img");
    std::fs::write(&initrd, b"").unwrap();
    let mut cmd = vmm();
    cmd.arg("--kernel")
        .arg(kernel("hello.elf"))
        .arg("--initrd")
        .arg(&initrd);
    let out = run(cmd, "vmdbg-vmm", LIMIT);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("initrd.img") && err.contains("cpio"), "{err}");
}

#[test]
fn a_bad_disk_option_is_explained() {
    let mut cmd = vmm();
    cmd.arg("--kernel")
        .arg(kernel("hello.elf"))
        .args(["--disk", "x.img,rx"]);
    let out = run(cmd, "vmdbg-vmm", LIMIT);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    // The bad option by name and the ones there are ("ro" alone would
    // match the word "error").
    assert!(
        err.contains("unknown option `rx`") && err.contains("the only ones are ro and rw"),
        "{err}"
    );
}

#[test]
fn a_missing_disk_image_is_named_with_the_fix() {
    if !require(kvm(), "a_missing_disk_image_is_named_with_the_fix") {
        return;
    }
    let mut cmd = vmm();
    cmd.arg("--kernel")
        .arg(kernel("hello.elf"))
        .args(["--disk", "/nonexistent/disk.img"]);
    let out = run(cmd, "vmdbg-vmm", LIMIT);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("/nonexistent/disk.img") && err.contains("truncate"),
        "{err}"
    );
}

#[test]
fn a_bzimage_cannot_be_entered_through_pvh() {
    if !require(kvm(), "a_bzimage_cannot_be_entered_through_pvh") {
        return;
    }
    let dir = scratch("bzimage");
    let image = dir.join("vmlinuz");
    let mut bytes = vec![0u8; 8192];
    bytes[0x202..0x206].copy_from_slice(b"HdrS");
    std::fs::write(&image, &bytes).unwrap();
    let mut cmd = vmm();
    cmd.arg("--kernel").arg(&image).args(["--entry", "pvh"]);
    let out = run(cmd, "vmdbg-vmm", LIMIT);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("vmlinuz") && err.contains("--entry pvh"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn virtio_devices_leave_a_bare_metal_guest_alone() {
    if !require(
        all([kvm()]),
        "virtio_devices_leave_a_bare_metal_guest_alone",
    ) {
        return;
    }
    let dir = scratch("devices");
    let disk = dir.join("disk.img");
    std::fs::write(&disk, vec![0u8; 4096]).unwrap();
    let uds = dir.join("v.sock");
    let mut cmd = vmm();
    cmd.arg("--kernel")
        .arg(kernel("hello.elf"))
        .arg("--disk")
        .arg(&disk)
        .arg("--vsock-uds")
        .arg(&uds);
    let out = run(cmd, "vmdbg-vmm", LIMIT);
    assert_eq!(out.status.code(), Some(85), "{}", text(&out.stderr));
    assert!(
        !uds.exists(),
        "the vsock socket is removed when the VM ends"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

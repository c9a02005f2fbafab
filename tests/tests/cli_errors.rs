//! Each bad input gets a one-line error naming the problem and the fix, and
//! a non-zero status: no /dev/kvm, no permission on it, a missing kernel,
//! a file that is not an x86-64 ELF, an ELF with no loadable segment, and
//! memory too small for the kernel.

use std::process::Command;
use std::time::Duration;

use vmdbg_e2e::*;

const LIMIT: Duration = Duration::from_secs(30);

/// Runs vmdbg-vmm and returns (status, the one stderr line).
fn fails(mut cmd: Command) -> (i32, String) {
    let out = run(
        {
            cmd.env_remove("RUST_LOG");
            cmd
        },
        "vmdbg-vmm",
        LIMIT,
    );
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one error line, got: {stderr}"
    );
    let status = out.status.code().expect("exited normally");
    assert_ne!(status, 0, "must fail: {stderr}");
    (status, lines[0].to_string())
}

#[test]
fn no_kvm_device() {
    let mut cmd = vmm();
    cmd.env("VMDBG_KVM_DEVICE", "/nonexistent/kvm")
        .arg("--kernel")
        .arg(kernel("hello.elf"));
    let (status, line) = fails(cmd);
    assert_eq!(status, 4);
    assert!(
        line.contains("/nonexistent/kvm does not exist") && line.contains("modprobe"),
        "{line}"
    );
}

#[test]
fn no_permission_on_kvm() {
    // Root bypasses file permissions, so drop to an unprivileged user.
    let mut id = Command::new("id");
    id.arg("-u");
    let is_root = run(id, "id", LIMIT).stdout == b"0\n";
    let setpriv = tool("setpriv");
    let available = if is_root { setpriv } else { Ok(()) };
    if !require(available.and(kvm_device_exists()), "no_permission_on_kvm") {
        return;
    }
    let mut cmd = if is_root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(vmm_binary());
        c
    } else {
        vmm()
    };
    cmd.arg("--kernel").arg(kernel("hello.elf"));
    let (status, line) = fails(cmd);
    assert_eq!(status, 4);
    assert!(
        line.contains("no permission to open /dev/kvm") && line.contains("kvm` group"),
        "{line}"
    );
}

fn kvm_device_exists() -> Result<(), String> {
    std::path::Path::new("/dev/kvm")
        .exists()
        .then_some(())
        .ok_or_else(|| "/dev/kvm does not exist".into())
}

#[test]
fn missing_kernel() {
    let mut cmd = vmm();
    cmd.args(["--kernel", "/nonexistent/guest.elf"]);
    let (status, line) = fails(cmd);
    assert_eq!(status, 2);
    assert!(
        line.contains("/nonexistent/guest.elf: not found") && line.contains("--kernel"),
        "{line}"
    );
}

#[test]
fn not_an_elf() {
    let path = std::env::temp_dir().join(format!("vmdbg-not-elf-{}", std::process::id()));
    std::fs::write(&path, "#!/bin/sh\necho not a kernel\n").unwrap();
    let mut cmd = vmm();
    cmd.arg("--kernel").arg(&path);
    let (status, line) = fails(cmd);
    let _ = std::fs::remove_file(&path);
    assert_eq!(status, 2);
    assert!(
        line.contains("not an x86-64 ELF") && line.contains("magic"),
        "{line}"
    );
}

#[test]
fn elf_for_another_machine() {
    // A real AArch64 ELF header (e_machine 183), as a cross-compiler writes it.
    let mut header = vec![0u8; 64];
    header[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    header[18..20].copy_from_slice(&183u16.to_le_bytes());
    let path = std::env::temp_dir().join(format!("vmdbg-arm-{}.elf", std::process::id()));
    std::fs::write(&path, header).unwrap();
    let mut cmd = vmm();
    cmd.arg("--kernel").arg(&path);
    let (status, line) = fails(cmd);
    let _ = std::fs::remove_file(&path);
    assert_eq!(status, 2);
    assert!(line.contains("e_machine is 183"), "{line}");
}

#[test]
fn elf_without_loadable_segment() {
    // The relocatable object gcc made on the way to hello.elf has no
    // program headers at all.
    let mut cmd = vmm();
    cmd.arg("--kernel").arg(kernel("hello.o"));
    let (status, line) = fails(cmd);
    assert_eq!(status, 2);
    assert!(line.contains("no loadable (PT_LOAD) segment"), "{line}");
}

#[test]
fn memory_too_small_for_kernel() {
    let mut cmd = vmm();
    cmd.arg("--kernel")
        .arg(kernel("hello-64m.elf"))
        .args(["--mem", "16M"]);
    let (status, line) = fails(cmd);
    assert_eq!(status, 2);
    assert!(
        line.contains("needs guest memory up to 65 MiB but --mem is 16 MiB")
            && line.contains("--mem 128M"),
        "{line}"
    );
}

#[test]
fn malformed_mem_size() {
    let mut cmd = vmm();
    cmd.arg("--kernel")
        .arg(kernel("hello.elf"))
        .args(["--mem", "lots"]);
    let (status, line) = fails(cmd);
    assert_eq!(status, 2);
    assert!(line.contains("--mem lots"), "{line}");
}

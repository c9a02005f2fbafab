//! Builds the in-guest agent as a static binary (glibc with crt-static) and
//! hands its path to the `vmdbg` crate, which embeds it: the default guest
//! image needs it, and `vmdbg` must be usable on its own after
//! `cargo build --release`.
//!
//! It is a nested cargo with an explicit `--target` and its own target
//! directory: crt-static in RUSTFLAGS would otherwise also apply to the
//! proc-macros of the host build and break them, and the outer cargo holds
//! the lock of its own target directory.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "x86_64-unknown-linux-gnu";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest.parent().unwrap();
    for watched in [
        "guest-agent/src",
        "guest-agent/Cargo.toml",
        "vmm/gdb-common",
        "Cargo.lock",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    println!("cargo:rerun-if-env-changed=VMDBG_AGENT_BINARY");
    // An agent built elsewhere (e.g. by a packager) can be supplied.
    if let Ok(prebuilt) = std::env::var("VMDBG_AGENT_BINARY") {
        println!("cargo:rustc-env=VMDBG_AGENT_STATIC={prebuilt}");
        return;
    }
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let target_root: &Path = out_dir
        .ancestors()
        .nth(4)
        .expect("OUT_DIR under a target dir");
    let agent_target = target_root.join("agent-static");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args([
            "build",
            "--release",
            "-p",
            "vmdbg-agent",
            "--bin",
            "vmdbg-agent",
            "--target",
            TARGET,
        ])
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &agent_target)
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    let status = build
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the static guest agent: {e}"));
    assert!(
        status.success(),
        "building the static guest agent failed (see above); is the {TARGET} standard library installed (`rustup target add {TARGET}`)?"
    );
    let binary = agent_target
        .join(TARGET)
        .join("release")
        .join("vmdbg-agent");
    assert!(
        binary.exists(),
        "{} missing after the agent build",
        binary.display()
    );
    println!("cargo:rustc-env=VMDBG_AGENT_STATIC={}", binary.display());
}

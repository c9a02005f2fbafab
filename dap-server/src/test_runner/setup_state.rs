//! The set-up state kept between `vmdbg test` invocations: the VM just
//! after the test binary was copied in and the `--setup` commands ran,
//! saved by the engine (QEMU: a migration to a file) into the cache as
//! `test-setup/<key>.state`, written under a temporary name and renamed.
//! The key covers the booted image's own warm-start key (engine binary and
//! version, kernel, initramfs, command line, memory, vCPUs, vmdbg's
//! version), every copied file's contents and guest path, and the setup
//! commands; so a single-test invocation (`cargo test NAME`, an editor's
//! run of one test) starts from it instead of booting, and `--jobs N`
//! starts its other VMs from the same file.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use sha2::{Digest, Sha256};

use crate::engine::{Engine, Vm, VmSpec};
use crate::guest::copy::CopyPlan;
use crate::guest::warm;

/// States kept: one per test binary of a workspace that
/// `cargo test` runs in turn (each ~90 MB for the default image).
const KEPT_STATES: usize = 8;

/// Where the set-up state for this binary, image and setup lives; None
/// when the engine cannot save a VM's state (or there is no cache).
pub fn path(
    engine: &dyn Engine,
    spec: &VmSpec,
    copies: &CopyPlan,
    setup: &[String],
) -> Option<PathBuf> {
    let booted = warm::state_path(engine, spec)?;
    let mut hash = Sha256::new();
    hash.update(booted.file_name()?.as_encoded_bytes());
    for (host, guest) in &copies.files {
        hash.update(format!("\ncopy {guest}\n"));
        hash.update(file_digest(host)?);
    }
    for command in setup {
        hash.update(format!("\nsetup {}\n{command}", command.len()));
    }
    warm::keyed_state_path("test-setup", hash)
}

fn file_digest(path: &Path) -> Option<Vec<u8>> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    Some(hash.finalize().to_vec())
}

/// Starts a VM from the saved set-up state; a state that does not start
/// is removed (the caller then boots and sets up).
pub fn start(engine: &dyn Engine, spec: &VmSpec, state: &Path) -> Result<Box<dyn Vm>> {
    warm::start_or_discard(engine, spec, state)
}

/// Saves the running VM as the set-up state at `state` (whole, or not at
/// all: the engine renames it into place); older states are pruned.
pub fn save(vm: &mut dyn Vm, state: &Path) -> Result<()> {
    let started = Instant::now();
    warm::save_state(vm, state, KEPT_STATES)?;
    eprintln!(
        "vmdbg: saved the set-up VM for the next runs as {} in {} ms",
        state.display(),
        started.elapsed().as_millis()
    );
    Ok(())
}

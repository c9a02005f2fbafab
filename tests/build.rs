//! Builds the bare-metal test kernels with gcc (through their Makefile)
//! into OUT_DIR, so every test run uses kernels made from the sources here.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("guests/baremetal");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("baremetal");
    println!("cargo:rerun-if-changed={}", src.display());
    let status = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(&src)
        .arg(format!("OUT={}", out.display()))
        .status()
        .unwrap_or_else(|e| panic!("cannot run make (install `make` and `gcc`): {e}"));
    assert!(
        status.success(),
        "building the bare-metal test kernels in {} failed",
        src.display()
    );
    println!("cargo:rustc-env=VMDBG_BAREMETAL_DIR={}", out.display());
    println!("cargo:rustc-env=VMDBG_BAREMETAL_SRC={}", src.display());
}

//! dap-server embeds the static agent binary; the dap fuzz target never
//! builds an image, so an empty file stands in for it.
fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("no-agent");
    std::fs::write(&out, b"").unwrap();
    println!("cargo:rustc-env=VMDBG_AGENT_STATIC={}", out.display());
}

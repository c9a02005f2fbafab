//! `engine: auto | kvm | qemu`: which engine runs the VM, and why.
//!
//! A Linux guest needs a KVM that passes the start-up probe
//! ([`super::probe`]); a kernel alone (a bare-metal kernel) runs on any
//! KVM that opens, such as this project's paravirtual nested one.

use std::path::Path;

use anyhow::{bail, Result};

use super::kvm::KvmEngine;
use super::probe::{probe_kvm, ProbePass};
use super::qemu::{Accel, QemuEngine};
use super::Engine;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineChoice {
    /// vmdbg's own VMM where the host's KVM passes the start-up probe,
    /// QEMU otherwise.
    Auto,
    /// vmdbg's own KVM VMM.
    Kvm,
    /// qemu-system-x86_64 (KVM acceleration where the probe passes, TCG
    /// otherwise).
    Qemu,
}

/// The engine and a one-line reason for the choice (for `auto`, printed
/// to the user; for the others, logged).
pub fn choose_engine(choice: EngineChoice) -> Result<(Box<dyn Engine>, String)> {
    choose_engine_for(choice, false, None)
}

/// [`choose_engine`] for a guest that is a kernel alone (`kernel_alone`:
/// any KVM that opens runs it) or a Linux guest, with vmdbg-vmm at `vmm`
/// if given (else where [`super::kvm::find_vmm`] looks).
pub fn choose_engine_for(
    choice: EngineChoice,
    kernel_alone: bool,
    vmm: Option<&Path>,
) -> Result<(Box<dyn Engine>, String)> {
    if kernel_alone && choice != EngineChoice::Qemu {
        let kvm = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm");
        let engine = kvm.map_err(anyhow::Error::from).and_then(|_| {
            Ok(KvmEngine {
                vmm: super::kvm::find_vmm(vmm)?,
            })
        });
        match (engine, choice) {
            (Ok(engine), _) => {
                let why = "engine kvm (vmdbg-vmm): a kernel alone runs on this host's /dev/kvm";
                return Ok((Box::new(engine), why.to_string()));
            }
            (Err(e), EngineChoice::Kvm) => {
                bail!("engine kvm: {e:#} (/dev/kvm). Or use engine qemu")
            }
            (Err(e), _) => {
                let engine = QemuEngine::new(Accel::Tcg)?;
                let why = format!("engine qemu (tcg): the KVM engine cannot run here: {e:#}");
                return Ok((Box::new(engine), why));
            }
        }
    }
    let probe = probe_kvm();
    let probe_text = |pass: &ProbePass| {
        format!(
            "this host's KVM passed the start-up probe in {:.1} ms (ring-0 loop {:.0} µs, {:.0} µs natively)",
            pass.total.as_secs_f64() * 1e3,
            pass.loop_time.as_secs_f64() * 1e6,
            pass.host_loop_time.as_secs_f64() * 1e6
        )
    };
    match choice {
        EngineChoice::Qemu => {
            let accel = if probe.is_ok() { Accel::Kvm } else { Accel::Tcg };
            let engine = QemuEngine::new(accel)?;
            let why = match &probe {
                Ok(pass) => format!("engine {} (asked for): {}", engine.describe(), probe_text(pass)),
                Err(why) => format!("engine {} (asked for): no KVM acceleration: {why}", engine.describe()),
            };
            Ok((Box::new(engine), why))
        }
        EngineChoice::Kvm => match probe {
            Err(why) => bail!("--engine kvm: this host's KVM cannot run a Linux guest: {why}. Use --engine qemu (or auto)"),
            Ok(pass) => {
                let engine = KvmEngine::with_vmm(vmm).map_err(|e| anyhow::anyhow!("--engine kvm: {e:#}. Or use --engine qemu"))?;
                Ok((Box::new(engine), format!("engine kvm (asked for): {}", probe_text(&pass))))
            }
        },
        EngineChoice::Auto => match probe {
            Err(why) => {
                let engine = QemuEngine::new(Accel::Tcg)?;
                Ok((Box::new(engine), format!("engine qemu (tcg): this host's KVM cannot run the Linux guest: {why}")))
            }
            Ok(pass) => match KvmEngine::with_vmm(vmm) {
                Ok(engine) => Ok((Box::new(engine), format!("engine kvm (vmdbg-vmm): {}", probe_text(&pass)))),
                Err(no_vmm) => {
                    let engine = QemuEngine::new(Accel::Kvm)?;
                    Ok((
                        Box::new(engine),
                        format!("engine qemu (kvm): {}, but {no_vmm:#}", probe_text(&pass)),
                    ))
                }
            },
        },
    }
}

//! vmdbg-vmm: a small KVM virtual machine monitor built for debugging.
//!
//! It boots a 64-bit ELF kernel (directly in long mode, or through the PVH
//! entry so the same ELF also runs under `qemu-system-x86_64 -kernel`) or
//! Linux (vmlinux or bzImage, with an initramfs and ACPI tables), emulates
//! a 16550 UART, QEMU's isa-debug-exit port, ACPI power-off/reset and
//! virtio-mmio block and vsock devices, and serves the vCPUs to gdb or
//! lldb over the gdb remote protocol.
//!
//! Layout, one concern per module:
//! - [`control`]: the control loop that owns the VM and every event source
//!   (vCPU stops, gdb, the HTTP control API in Firecracker's shape)
//! - [`vm`]: building a machine (KVM VM, memory, interrupt controllers,
//!   typed devices, vCPUs) apart from booting a kernel into it; all-stop
//!   control
//! - [`snapshot`]: state and memory files, save/restore order, reset
//! - [`vcpu`]: one thread per vCPU, exit dispatch, stop events
//! - [`boot`]: kernel and initrd loading, boot_params, ACPI tables, entry
//!   ABIs, initial CPU state
//! - [`devices`]: port-I/O and MMIO buses, emulated and virtio devices
//! - [`debug`]: debug registers, single-step, page-table walks, probes
//! - [`gdb`]: the gdb remote-protocol server over `debug`
//! - [`record`]: deterministic recording, checkpoints, replay and
//!   reverse execution
//! - [`report`]: what is printed when a VM dies
//! - [`seccomp`]: one seccomp-bpf filter per kind of thread

pub mod boot;
pub mod control;
pub mod debug;
pub mod devices;
pub mod error;
pub mod gdb;
pub mod poll;
pub mod record;
pub mod report;
pub mod seccomp;
pub mod snapshot;
pub mod vcpu;
pub mod vm;

use error::Result;
use vcpu::VmEnd;
use vm::{Vm, VmConfig};

/// Logs to stderr, shared by vmdbg's binaries: `RUST_LOG` when set, else
/// warnings, and more detail for each `-v` (info, debug, trace).
pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// How a debugger reaches the VM.
#[derive(Clone, Debug)]
pub struct GdbOptions {
    pub listen: gdb::Listen,
    /// Do not start the vCPUs until a debugger attaches.
    pub wait: bool,
}

/// Boots the VM and runs it until the guest ends it or it fails.
pub fn run(config: &VmConfig, gdb: Option<&GdbOptions>) -> Result<VmEnd> {
    boot::validate(&config.kernel, config.initrd.as_deref(), config.mem_bytes)?;
    let vm = Vm::create(config)?;
    control::Control::new(
        Some(vm),
        None,
        control::Options {
            gdb: gdb.cloned(),
            api: None,
            serial: config.serial.clone(),
            start_paused: false,
            record_to: None,
            checkpoint_interval: record::DEFAULT_INTERVAL,
        },
    )?
    .run()
}

//! Errors a user can act on, and the process exit status each one maps to.
//!
//! Every variant's message names what went wrong and how to fix it, in one
//! line, because it is printed as-is by the `vmdbg-vmm` binary.

use std::path::PathBuf;

/// Process exit statuses of `vmdbg-vmm`.
///
/// Odd statuses belong to the guest (`(V << 1) | 1` for a write of V to the
/// exit port, as QEMU's isa-debug-exit does), so the VMM's own are even.
pub mod exit_status {
    /// Bad command line or input file.
    pub const BAD_INPUT: i32 = 2;
    /// The host cannot run a VM: no /dev/kvm, no permission, missing capability.
    pub const HOST: i32 = 4;
    /// The guest triple-faulted (KVM_EXIT_SHUTDOWN).
    pub const TRIPLE_FAULT: i32 = 6;
    /// KVM reported an internal error or a failed VM entry.
    pub const KVM_INTERNAL: i32 = 8;
    /// The guest caused a VM exit the VMM does not handle.
    pub const UNHANDLED_EXIT: i32 = 10;
    /// The gdb connection failed (cannot listen, protocol error).
    pub const GDB: i32 = 12;
    /// The guest powered off (ACPI S5, or KVM's shutdown system event).
    pub const GUEST_POWEROFF: i32 = 0;
    /// The guest rebooted (ACPI reset register, i8042 reset, KVM reset
    /// event); the VMM does not restart it, the caller decides.
    pub const GUEST_REBOOT: i32 = 14;
    /// A replay left its recording (divergence), or a recording could not
    /// go on (a host-timed LAPIC timer).
    pub const RECORDING: i32 = 16;
    /// A thread made a system call its seccomp filter forbids.
    pub const SECCOMP: i32 = 18;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path} does not exist: this host has no KVM. Load the module (`modprobe kvm_intel` or `modprobe kvm_amd`) or run on a host with virtualization enabled")]
    NoKvm { path: String },
    #[error("no permission to open {path}: add your user to the `kvm` group (`sudo usermod -aG kvm $USER`, then log in again) or run as root")]
    KvmPermission { path: String },
    #[error("cannot open {path}: {source}")]
    KvmOpen {
        path: String,
        source: std::io::Error,
    },
    #[error("KVM API version {0} is not supported (vmdbg-vmm needs version 12)")]
    KvmApiVersion(i32),
    #[error("this host's KVM lacks {0}, which vmdbg-vmm needs")]
    KvmCapability(&'static str),
    #[error("KVM call {call} failed: {source}")]
    Kvm {
        call: &'static str,
        source: kvm_ioctls::Error,
    },
    #[error("kernel file {path}: not found. Pass an existing ELF with --kernel PATH")]
    KernelNotFound { path: PathBuf },
    #[error("kernel file {path}: {source}")]
    KernelRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("kernel file {path}: not an x86-64 ELF ({why}). Build the kernel for x86_64 (e.g. `gcc -m64 ... -o kernel.elf`)")]
    NotX86_64Elf { path: PathBuf, why: String },
    #[error("kernel file {path}: the ELF has no loadable (PT_LOAD) segment, so there is nothing to run. Link it with a linker script that places .text in a PT_LOAD segment")]
    NoLoadableSegment { path: PathBuf },
    #[error("kernel file {path}: needs guest memory up to {needed_mib} MiB but --mem is {mem_mib} MiB. Pass --mem {suggest}M or more")]
    MemoryTooSmall {
        path: PathBuf,
        needed_mib: u64,
        mem_mib: u64,
        suggest: u64,
    },
    #[error("kernel file {path}: loading failed: {source}")]
    KernelLoad {
        path: PathBuf,
        source: linux_loader::loader::Error,
    },
    #[error("initrd {path}: {why}")]
    Initrd { path: PathBuf, why: String },
    #[error("--disk {spec}: {why}")]
    Disk { spec: String, why: String },
    #[error("vsock {path}: {why}")]
    Vsock { path: PathBuf, why: String },
    #[error("--mem {0}: {1}")]
    BadMemSize(String, &'static str),
    #[error("--cpus {0}: must be between 1 and {1}")]
    BadCpuCount(usize, usize),
    #[error("guest memory: {0}")]
    GuestMemory(String),
    #[error("serial output {target}: {source}")]
    Serial {
        target: String,
        source: std::io::Error,
    },
    #[error("snapshot file {path}: {why}")]
    Snapshot { path: PathBuf, why: String },
    #[error("memory file {path}: {why}")]
    MemFile { path: PathBuf, why: String },
    #[error("control API: {0}")]
    Api(String),
    #[error("recording: {0}")]
    Record(String),
    #[error("recording file {path}: {why}")]
    RecordFile { path: PathBuf, why: String },
    #[error("gdb: {0}")]
    Gdb(String),
    #[error("vCPU thread: {0}")]
    Vcpu(String),
}

impl Error {
    pub fn exit_status(&self) -> i32 {
        use exit_status::*;
        match self {
            Error::NoKvm { .. }
            | Error::KvmPermission { .. }
            | Error::KvmOpen { .. }
            | Error::KvmApiVersion(_)
            | Error::KvmCapability(_)
            | Error::Kvm { .. }
            | Error::Vcpu(_) => HOST,
            Error::Gdb(_) => GDB,
            _ => BAD_INPUT,
        }
    }

    pub(crate) fn kvm(call: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> Error {
        move |source| Error::Kvm { call, source }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

//! What each kind of thread may call once its set-up is done. Measured with
//! `strace -f -ff` over a boot with every device (two virtio-blk disks,
//! virtio-vsock, serial on a unix socket), gdb attached twice (registers,
//! memory, stepi, hardware breakpoints and watchpoints, monitor, detach,
//! kill), the API's pause, snapshot, load in place, reset and resume, a
//! restore, an empty VMM loading a snapshot through the API, a recording
//! started, saved and stopped through the API, `--record-to` and a replay
//! with reverse steps; plus the calls of code paths this host's bare-metal
//! guests cannot reach but Linux guests do (virtio-blk I/O, guest-initiated
//! vsock connections), read from the code.
//!
//! - every thread ([`BASE`]): memory (mmap/mprotect without PROT_EXEC,
//!   munmap, mremap, madvise, brk), futexes, read/write on descriptors it
//!   already has, close, poll, clocks and sleeps, signal return and masks,
//!   getrandom (std's per-thread HashMap keys), and what a thread's end and
//!   a panic's abort need (sigaltstack, exit, exit_group, gettid, getpid,
//!   tgkill). fcntl only for its descriptor/status flags and
//!   F_DUPFD_CLOEXEC.
//! - `vcpu`: KVM ioctls (type 0xAE: KVM_RUN, state get/set for gdb,
//!   snapshots and recording, dirty logs, IRQ lines), FIONBIO; the devices
//!   it runs on MMIO/PIO exits: virtio-blk's pread64/pwrite64/fdatasync,
//!   virtio-vsock's unix-socket traffic (socket(AF_UNIX), connect, accept4,
//!   sendto/recvfrom, shutdown); serial output (write, sendto).
//! - `virtio` (a device's host-side poller): poll, and virtio-vsock's
//!   unix-socket traffic as above; no KVM ioctls (it raises interrupts by
//!   writing an irqfd).
//! - `serial-input`: read/recvfrom its input, and the UART's mutex.
//! - `live-ticker` (a recordable VM's clock): poll/read its eventfds and
//!   KVM_IRQ_LINE-style KVM ioctls.
//! - `main` (the control loop, the control API and the gdb stub, which runs
//!   on this thread): everything above — threads it starts later (vCPUs of
//!   a VM loaded through the API, the live ticker of a recording started
//!   through it) inherit its filter, and a call passes only if every filter
//!   of the thread allows it — plus what the API and gdb do: accept4 on
//!   its listeners, a new unix listener (socket(AF_UNIX), bind, listen,
//!   getsockname, setsockopt; owner-only: mkdir, chmod, renameat2, rmdir
//!   of its scratch directory), snapshot and recording files (openat,
//!   lseek, ftruncate, fsync, newfstatat/statx, rename, unlink,
//!   pread64/pwrite64), building a VM (eventfd2, dup, KVM ioctls), starting
//!   threads (clone3, clone with CLONE_THREAD, set_robust_list, rseq,
//!   prctl(PR_SET_NAME), sched_getaffinity, and prctl(PR_SET_NO_NEW_PRIVS)
//!   with seccomp(SECCOMP_SET_MODE_FILTER) for the thread's own filter)
//!   and kicking vCPUs (tgkill).
//!
//! - every thread but `main` gets a second filter that makes openat fail
//!   with EACCES instead of trapping (its allow-list lets openat through to
//!   it; the kernel applies the stricter answer): glibc's malloc opens
//!   `/proc/sys/vm/overcommit_memory` the first time it trims a thread's
//!   heap, in whichever thread frees last (seen on a vCPU thread ending),
//!   and takes a failed open as "do not shrink".
//!
//! No thread may execve, fork, ptrace, mount, open a non-unix socket,
//! map executable memory or change its own credentials.
//!
//! KVM ioctls are allowed by their type (0xAE) rather than one by one:
//! the set a Linux guest's boot needs (MSI routing, irqfds, clock) is
//! larger than what this host's bare-metal guests reach, and a missing one
//! would kill a VM in the nested tier; every KVM ioctl acts on the VM's own
//! descriptors.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

/// The kinds of thread vmdbg-vmm runs, each with its filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Main,
    Vcpu,
    SerialInput,
    Virtio,
    LiveTicker,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Main,
        Kind::Vcpu,
        Kind::SerialInput,
        Kind::Virtio,
        Kind::LiveTicker,
    ];

    /// The name the test hook and the docs use.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Main => "main",
            Kind::Vcpu => "vcpu",
            Kind::SerialInput => "serial-input",
            Kind::Virtio => "virtio",
            Kind::LiveTicker => "live-ticker",
        }
    }
}

/// Allowed with any arguments, in every thread.
const BASE: &[i64] = &[
    libc::SYS_read,
    libc::SYS_readv,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_close,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_brk,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_clock_gettime,
    // Served by the vDSO, but a kernel without it makes them syscalls.
    libc::SYS_gettimeofday,
    libc::SYS_time,
    libc::SYS_getcpu,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask,
    libc::SYS_sigaltstack,
    libc::SYS_restart_syscall,
    libc::SYS_getrandom,
    libc::SYS_sched_getaffinity,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_tgkill,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// A unix socket's traffic (virtio-vsock's bridges, the serial socket).
const UNIX_SOCKET_IO: &[i64] = &[
    libc::SYS_accept4,
    libc::SYS_connect,
    libc::SYS_sendto,
    libc::SYS_recvfrom,
    libc::SYS_sendmsg,
    libc::SYS_recvmsg,
    libc::SYS_shutdown,
];

const BLOCK_IO: &[i64] = &[
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_preadv,
    libc::SYS_pwritev,
    libc::SYS_fdatasync,
    libc::SYS_fsync,
];

/// The main thread's own: files, listeners, building VMs, starting threads.
const MAIN_ONLY: &[i64] = &[
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_setsockopt,
    libc::SYS_getsockopt,
    libc::SYS_openat,
    libc::SYS_lseek,
    libc::SYS_ftruncate,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_rmdir,
    libc::SYS_chmod,
    libc::SYS_fchmodat,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_eventfd2,
    libc::SYS_dup,
    libc::SYS_rt_sigaction,
    libc::SYS_clone3,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
];

/// openat fails with EACCES, everything else passes on to the other
/// filter (see the module doc: glibc's malloc probes a /proc file).
pub fn open_fails() -> Result<BpfProgram, String> {
    SeccompFilter::new(
        [(libc::SYS_openat, Vec::new()), (libc::SYS_open, Vec::new())]
            .into_iter()
            .collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EACCES as u32),
        std::env::consts::ARCH
            .try_into()
            .map_err(|e| format!("{e}"))?,
    )
    .and_then(BpfProgram::try_from)
    .map_err(|e| format!("the open-fails filter: {e}"))
}

/// The thread's filter, compiled.
pub fn program(kind: Kind) -> Result<BpfProgram, String> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let mut any = |calls: &[i64]| {
        for &nr in calls {
            rules.insert(nr, Vec::new());
        }
    };
    any(BASE);
    if kind != Kind::Main {
        // Answered by [`open_fails`].
        any(&[libc::SYS_openat, libc::SYS_open]);
    }
    let kvm = kind != Kind::SerialInput && kind != Kind::Virtio;
    match kind {
        Kind::Main => {
            any(UNIX_SOCKET_IO);
            any(BLOCK_IO);
            any(MAIN_ONLY);
        }
        Kind::Vcpu => {
            any(UNIX_SOCKET_IO);
            any(BLOCK_IO);
        }
        Kind::Virtio => any(UNIX_SOCKET_IO),
        Kind::SerialInput => any(&[libc::SYS_recvfrom, libc::SYS_recvmsg]),
        Kind::LiveTicker => {}
    }
    let mut conditional = vec![
        (libc::SYS_ioctl, ioctl_rules(kvm)?),
        (libc::SYS_mmap, vec![no_exec(2)?]),
        (libc::SYS_mprotect, vec![no_exec(2)?]),
        (libc::SYS_fcntl, fcntl_rules()?),
    ];
    if matches!(kind, Kind::Main | Kind::Vcpu | Kind::Virtio) {
        conditional.push((
            libc::SYS_socket,
            vec![rule(vec![eq(0, libc::AF_UNIX as u64)?])?],
        ));
    }
    if kind == Kind::Main {
        // glibc's fallback when clone3 is missing; a thread, never a process.
        conditional.push((
            libc::SYS_clone,
            vec![rule(vec![masked(
                0,
                libc::CLONE_THREAD as u64,
                libc::CLONE_THREAD as u64,
            )?])?],
        ));
        // A thread it starts names itself and then installs its own
        // filter (which can only take calls away).
        conditional.push((
            libc::SYS_prctl,
            vec![
                rule(vec![eq(0, libc::PR_SET_NAME as u64)?])?,
                rule(vec![eq(0, libc::PR_SET_NO_NEW_PRIVS as u64)?])?,
            ],
        ));
        conditional.push((
            libc::SYS_seccomp,
            vec![rule(vec![eq(0, libc::SECCOMP_SET_MODE_FILTER as u64)?])?],
        ));
    }
    rules.extend(conditional);
    SeccompFilter::new(
        rules,
        SeccompAction::Trap,
        SeccompAction::Allow,
        std::env::consts::ARCH
            .try_into()
            .map_err(|e| format!("{e}"))?,
    )
    .and_then(BpfProgram::try_from)
    .map_err(|e| format!("the {} filter: {e}", kind.name()))
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, String> {
    SeccompRule::new(conditions).map_err(|e| e.to_string())
}

fn eq(arg: u8, value: u64) -> Result<SeccompCondition, String> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value)
        .map_err(|e| e.to_string())
}

fn masked(arg: u8, mask: u64, value: u64) -> Result<SeccompCondition, String> {
    SeccompCondition::new(
        arg,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(mask),
        value,
    )
    .map_err(|e| e.to_string())
}

/// mmap/mprotect whose protection (argument `arg`) lacks PROT_EXEC.
fn no_exec(arg: u8) -> Result<SeccompRule, String> {
    rule(vec![SeccompCondition::new(
        arg,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::MaskedEq(libc::PROT_EXEC as u64),
        0,
    )
    .map_err(|e| e.to_string())?])
}

/// KVM's ioctls (`_IOC` type 0xAE in bits 8..16) where `kvm`, and the few
/// descriptor ioctls std uses (FIONBIO for set_nonblocking, FIOCLEX,
/// TCGETS for a terminal check).
fn ioctl_rules(kvm: bool) -> Result<Vec<SeccompRule>, String> {
    let mut rules = Vec::new();
    for request in [libc::FIONBIO, libc::FIOCLEX, libc::TCGETS] {
        rules.push(rule(vec![eq(1, request)?])?);
    }
    if kvm {
        rules.push(rule(vec![SeccompCondition::new(
            1,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::MaskedEq(0xff00),
            0xae00,
        )
        .map_err(|e| e.to_string())?])?);
    }
    Ok(rules)
}

fn fcntl_rules() -> Result<Vec<SeccompRule>, String> {
    [
        libc::F_GETFD,
        libc::F_SETFD,
        libc::F_GETFL,
        libc::F_SETFL,
        libc::F_DUPFD_CLOEXEC,
    ]
    .into_iter()
    .map(|cmd| rule(vec![eq(1, cmd as u64)?]))
    .collect()
}

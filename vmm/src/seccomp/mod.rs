//! seccomp-bpf: one filter per kind of thread, installed by each thread
//! once its set-up is done, so that code running in it afterwards (a
//! device model a guest found a bug in) can make only the system calls
//! that thread needs. Any other call traps: the SIGSYS handler here writes
//! `vmdbg-vmm: seccomp: thread NAME made the forbidden system call CALL (nr
//! N)` to stderr and exits with status 18 — never a silent hang.
//!
//! The allow-lists are in [`filters`]; its doc says what each kind may do
//! and why. They are off unless the binary calls [`enable`] (so the
//! library's own unit tests and benches run unfiltered); `vmdbg-vmm
//! --no-seccomp` leaves them off, loudly.
//!
//! Test hook: `VMDBG_VMM_TEST_FORBIDDEN_SYSCALL=KIND` (`main`, `vcpu`,
//! `serial-input`, `virtio`, `live-ticker`) makes every thread of that
//! kind call `mount(2)` — allowed to no thread — right after its filter is
//! in, so a test can see the process die with the message naming it.

pub mod filters;
mod names;

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

pub use filters::Kind;

/// The exit status of a process a filter stopped (even: the VMM's own).
pub const EXIT_STATUS: i32 = crate::error::exit_status::SECCOMP;

/// The env var naming the thread kind the test hook makes misbehave.
pub const TEST_HOOK_ENV: &str = "VMDBG_VMM_TEST_FORBIDDEN_SYSCALL";

static ENABLED: AtomicBool = AtomicBool::new(false);
static TEST_HOOK: OnceLock<Option<String>> = OnceLock::new();

thread_local! {
    // Const-initialised with no destructor, so the SIGSYS handler reads it
    // without allocating or locking: the thread's name, NUL-padded.
    static THREAD_NAME: Cell<[u8; 16]> = const { Cell::new([0; 16]) };
}

/// Turns filtering on for every thread that calls [`install`] from now on,
/// and installs the SIGSYS handler. Call once, early, on the main thread.
pub fn enable() -> std::io::Result<()> {
    TEST_HOOK.get_or_init(|| std::env::var(TEST_HOOK_ENV).ok().filter(|v| !v.is_empty()));
    // SAFETY: a zeroed sigaction with a handler of the SA_SIGINFO shape.
    let ok = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigsys as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut()) == 0
    };
    if !ok {
        return Err(std::io::Error::last_os_error());
    }
    ENABLED.store(true, Ordering::SeqCst);
    Ok(())
}

/// Whether [`enable`] was called.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::SeqCst)
}

/// Installs the filter of `kind` on the calling thread (when enabled).
/// A filter that cannot be installed ends the process: running on
/// unfiltered when the user asked for filters would be a silent downgrade.
pub fn install(kind: Kind) {
    if !enabled() {
        return;
    }
    let name = std::thread::current()
        .name()
        .unwrap_or(kind.name())
        .to_string();
    let mut buf = [0u8; 16];
    let n = name.len().min(buf.len());
    buf[..n].copy_from_slice(&name.as_bytes()[..n]);
    THREAD_NAME.with(|t| t.set(buf));
    let apply = |p: seccompiler::BpfProgram| {
        seccompiler::apply_filter(&p).map_err(|e| format!("installing it: {e}"))
    };
    let installed = match kind {
        Kind::Main => Ok(()),
        _ => filters::open_fails().and_then(apply),
    }
    .and_then(|()| filters::program(kind).and_then(apply));
    if let Err(e) = installed {
        eprintln!(
            "vmdbg-vmm: seccomp: thread {name}: cannot install its filter ({e}); run with --no-seccomp to go on without filters"
        );
        // SAFETY: ends the process at once, as the SIGSYS handler does.
        unsafe { libc::_exit(EXIT_STATUS) };
    }
    if TEST_HOOK
        .get()
        .and_then(Option::as_deref)
        .is_some_and(|k| k == kind.name())
    {
        forbidden_call(&name);
    }
}

/// The test hook's misdeed: mount(2) with null arguments (harmless where
/// no filter stops it: it fails with EFAULT).
fn forbidden_call(thread: &str) {
    // SAFETY: null pointers make mount fail; nothing is mounted.
    let r = unsafe { libc::syscall(libc::SYS_mount, 0usize, 0usize, 0usize, 0usize, 0usize) };
    eprintln!(
        "vmdbg-vmm: seccomp test hook: thread {thread} called mount and it returned {r}: no filter stopped it"
    );
}

/// SIGSYS from SECCOMP_RET_TRAP: say which thread made which call, then
/// exit. Only async-signal-safe calls (write, _exit), no allocation.
extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // siginfo_t's _sigsys member: _call_addr (8 bytes at offset 16), then
    // _syscall (i32 at 24); the libc crate does not expose it.
    // SAFETY: the kernel passes a valid siginfo_t for SA_SIGINFO handlers.
    let nr = unsafe { (info as *const u8).add(24).cast::<i32>().read_unaligned() };
    let mut msg = Message::default();
    msg.push(b"vmdbg-vmm: seccomp: thread ");
    let name = THREAD_NAME.with(Cell::get);
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    msg.push(if len == 0 { b"?" } else { &name[..len] });
    msg.push(b" made the forbidden system call ");
    let call = usize::try_from(nr)
        .ok()
        .and_then(|i| names::NAMES.get(i))
        .filter(|n| !n.is_empty())
        .copied()
        .unwrap_or("unknown");
    msg.push(call.as_bytes());
    msg.push(b" (nr ");
    msg.push_number(nr);
    msg.push(b")\n");
    // SAFETY: write(2) and _exit(2) are async-signal-safe; every filter
    // allows both.
    unsafe {
        libc::write(2, msg.buf.as_ptr().cast(), msg.len);
        libc::_exit(EXIT_STATUS);
    }
}

/// A message built on the signal handler's stack.
struct Message {
    buf: [u8; 160],
    len: usize,
}

impl Default for Message {
    fn default() -> Self {
        Self {
            buf: [0; 160],
            len: 0,
        }
    }
}

impl Message {
    fn push(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    fn push_number(&mut self, n: i32) {
        let mut digits = [0u8; 12];
        let mut i = digits.len();
        let mut v = n.unsigned_abs();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        if n < 0 {
            self.push(b"-");
        }
        self.push(&digits[i..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_table_matches_libc_numbers() {
        for (nr, name) in [
            (libc::SYS_read, "read"),
            (libc::SYS_ptrace, "ptrace"),
            (libc::SYS_mount, "mount"),
            (libc::SYS_ioctl, "ioctl"),
            (libc::SYS_clone3, "clone3"),
        ] {
            assert_eq!(names::NAMES[nr as usize], name);
        }
    }

    #[test]
    fn numbers_print_in_decimal() {
        for (n, text) in [(0, "0"), (7, "7"), (165, "165"), (-38, "-38")] {
            let mut m = Message::default();
            m.push_number(n);
            assert_eq!(&m.buf[..m.len], text.as_bytes());
        }
    }

    #[test]
    fn every_filter_compiles() {
        for kind in Kind::ALL {
            filters::program(kind).unwrap_or_else(|e| panic!("{}: {e}", kind.name()));
        }
        filters::open_fails().unwrap();
    }
}

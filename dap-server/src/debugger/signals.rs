//! Signals of a debugged program, as the gdb remote protocol numbers them
//! (gdb's own numbering, gdb/signals.def, which differs from Linux's above
//! 6), and what the session does with each by default — gdb's defaults
//! (`info signals`):
//!
//! - SIGTRAP and SIGINT are the debugger's own (breakpoints, steps, pause):
//!   they stop and are never given to the program;
//! - the signals that are no error (SIGCHLD, SIGWINCH, SIGALRM, SIGURG,
//!   SIGIO, SIGVTALRM, SIGPROF and glibc's internal real-time signals 32
//!   and 33) neither stop nor print, and are passed on at once;
//! - every other signal stops (an `exception` stop) and is passed to the
//!   program when it resumes, so its handler runs or it dies of it.

use vmdbg_agent::debugger::signals::gdb_to_linux;

use super::target::TargetState;
use crate::rsp::StopReply;

/// gdb's numbers of the signals the session treats specially.
pub const SIGINT: u8 = 2;
pub const SIGTRAP: u8 = 5;

/// Linux signal names, by Linux number.
const LINUX_NAMES: [&str; 32] = [
    "",
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// The Linux number of a gdb signal number, when Linux has that signal.
pub fn linux_number(gdb: u8) -> Option<i32> {
    gdb_to_linux(gdb)
}

/// The signal's name (`SIGSEGV`), or `signal N` for one Linux lacks.
pub fn name(gdb: u8) -> String {
    match linux_number(gdb) {
        Some(n @ 1..=31) => LINUX_NAMES[n as usize].to_string(),
        Some(n) => format!("SIG{n}"),
        None => format!("signal {gdb}"),
    }
}

/// What the signal means, as gdb words it ("Segmentation fault").
pub fn description(gdb: u8) -> &'static str {
    match linux_number(gdb).unwrap_or(0) {
        libc::SIGHUP => "Hangup",
        libc::SIGINT => "Interrupt",
        libc::SIGQUIT => "Quit",
        libc::SIGILL => "Illegal instruction",
        libc::SIGTRAP => "Trace/breakpoint trap",
        libc::SIGABRT => "Aborted",
        libc::SIGBUS => "Bus error",
        libc::SIGFPE => "Arithmetic exception",
        libc::SIGKILL => "Killed",
        libc::SIGUSR1 => "User defined signal 1",
        libc::SIGSEGV => "Segmentation fault",
        libc::SIGUSR2 => "User defined signal 2",
        libc::SIGPIPE => "Broken pipe",
        libc::SIGALRM => "Alarm clock",
        libc::SIGTERM => "Terminated",
        libc::SIGCHLD => "Child status changed",
        libc::SIGSYS => "Bad system call",
        libc::SIGXCPU => "CPU time limit exceeded",
        _ => "a signal",
    }
}

/// Whether the signal stops the program (gdb's `handle … stop`).
pub fn stops(gdb: u8) -> bool {
    !matches!(
        linux_number(gdb),
        Some(
            libc::SIGCHLD
                | libc::SIGWINCH
                | libc::SIGALRM
                | libc::SIGURG
                | libc::SIGIO
                | libc::SIGVTALRM
                | libc::SIGPROF
                | 32
                | 33
        )
    )
}

/// Whether the program gets the signal when it resumes (gdb's `handle …
/// pass`): all but the debugger's own.
pub fn passes(gdb: u8) -> bool {
    gdb != SIGTRAP && gdb != SIGINT && gdb != 0
}

/// The status a shell reports for a program killed by the signal
/// (128 + its Linux number).
pub fn shell_status(gdb: u8) -> i64 {
    128 + i64::from(linux_number(gdb).unwrap_or(i32::from(gdb)))
}

/// How a kernel (or any non-program target) stopping with a signal is
/// named: the exception the CPU raised that the stub reports as it.
pub fn signal_name(signal: u8) -> &'static str {
    match signal {
        4 => "SIGILL (illegal instruction)",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE (arithmetic exception)",
        11 => "SIGSEGV (page fault or protection fault)",
        _ => "a signal",
    }
}

impl TargetState {
    /// Program mode: a signal stop the user does not want to see (SIGCHLD,
    /// SIGWINCH …: gdb's `nostop pass`); its gdb number.
    pub fn quiet_signal(&self, stop: &StopReply) -> Option<u8> {
        match stop {
            StopReply::Signal {
                signal,
                watch: None,
                ..
            } if self.program && passes(*signal) && !stops(*signal) => Some(*signal),
            _ => None,
        }
    }

    /// Program mode: remembers a reported signal for the thread that got
    /// it, to be passed on when that thread resumes.
    pub fn note_signal(&mut self, stop: &StopReply) {
        if !self.program {
            return;
        }
        if let StopReply::Signal {
            signal,
            thread,
            watch: None,
            ..
        } = stop
        {
            if passes(*signal) {
                let thread = thread.clone().unwrap_or_else(|| self.thread.clone());
                self.pending_signal = Some((thread, *signal));
            }
        }
    }

    /// The signal waiting for `thread`, taken (it is delivered once).
    pub fn take_signal_for(&mut self, thread: &str) -> Option<u8> {
        match &self.pending_signal {
            Some((t, sig)) if t == thread => {
                let sig = *sig;
                self.pending_signal = None;
                Some(sig)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdb_numbers_name_linux_signals() {
        // gdb numbers SIGSEGV 11 like Linux, SIGUSR1 30, SIGCHLD 20,
        // SIGBUS 10, SIGWINCH 28.
        assert_eq!(name(11), "SIGSEGV");
        assert_eq!(name(30), "SIGUSR1");
        assert_eq!(name(10), "SIGBUS");
        assert_eq!(description(11), "Segmentation fault");
        assert_eq!(shell_status(11), 139);
        assert_eq!(shell_status(6), 134);
        assert_eq!(shell_status(30), 138);
        assert_eq!(name(77), "SIG32");
        assert_eq!(name(7), "signal 7", "gdb's SIGEMT has no Linux twin");
    }

    #[test]
    fn gdb_defaults_for_stopping_and_passing() {
        for quiet in [20, 28, 14, 16, 23, 26, 27, 77, 45] {
            assert!(!stops(quiet), "{} should not stop", name(quiet));
            assert!(passes(quiet));
        }
        for loud in [11, 6, 30, 31, 8, 4, 10, 13, 15] {
            assert!(stops(loud), "{} should stop", name(loud));
            assert!(passes(loud));
        }
        assert!(stops(SIGTRAP) && !passes(SIGTRAP));
        assert!(stops(SIGINT) && !passes(SIGINT));
    }
}

//! The debugged process, through ptrace: launching it stopped at its exec,
//! its threads (clone events add them, exits remove them), all-stop control
//! (any stop stops every thread; stops that arrive meanwhile wait their
//! turn), registers, memory through /proc/PID/mem, int3 breakpoints (in the
//! text only while the process runs, so memory reads never see them) and
//! debug-register watchpoints.
//!
//! Only the thread that launched the process may call into it: ptrace
//! binds a tracee to its tracer thread.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use vmdbg_gdb_common::hw_slots::check_watch;

use super::{DebugError, Launch};

const INT3: u8 = 0xcc;
/// si_code of the SIGTRAP an int3 raises.
const SI_KERNEL: i32 = 0x80;
/// PTRACE_GETFPREGS / PTRACE_SETFPREGS.
const PTRACE_GETFPREGS: libc::c_uint = 14;
const PTRACE_SETFPREGS: libc::c_uint = 15;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResumeMode {
    Continue,
    Step,
    /// Step while the PC stays in `start..end` (gdb's range stepping:
    /// one round trip for a whole source line).
    Range {
        start: u64,
        end: u64,
    },
}

impl ResumeMode {
    fn steps(self) -> bool {
        !matches!(self, ResumeMode::Continue)
    }

    fn keeps_stepping_at(self, pc: u64) -> bool {
        matches!(self, ResumeMode::Range { start, end } if (start..end).contains(&pc))
    }
}

/// Why a thread stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopCause {
    /// One of our int3s; the thread's PC is already back on its address.
    Breakpoint,
    Stepped,
    Watchpoint {
        slot: usize,
    },
    /// A signal the program got (Linux numbering); it is delivered only if
    /// the debugger resumes the thread with it.
    Signal(i32),
    /// Stopped on the debugger's request (Ctrl-C).
    Interrupted,
    /// The process called execve: a new program image.
    Exec,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Stopped { tid: Pid, cause: StopCause },
    Exited(i32),
    Killed(i32),
}

#[derive(Debug)]
struct Thread {
    running: bool,
    mode: ResumeMode,
    /// A SIGSTOP of ours (or a new thread's initial one) is still to come:
    /// when it arrives it is swallowed, not reported.
    sigstop_expected: bool,
    /// A stop that happened while all threads were being stopped, reported
    /// at the next resume instead of resuming.
    pending: Option<StopCause>,
    /// Which watchpoint generation its debug registers hold.
    watch_generation: u64,
}

impl Thread {
    fn new_running() -> Self {
        Thread {
            running: true,
            mode: ResumeMode::Continue,
            sigstop_expected: true,
            pending: None,
            watch_generation: 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchKind {
    Write,
    ReadWrite,
    /// A hardware breakpoint: the instruction at `addr` (length 1).
    Execute,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watchpoint {
    pub addr: u64,
    pub len: u64,
    pub kind: WatchKind,
}

/// What to do with one thread at the next resume.
#[derive(Clone, Copy, Debug)]
pub struct ResumeAction {
    pub mode: ResumeMode,
    pub signal: Option<i32>,
}

pub struct Inferior {
    pub pid: Pid,
    pub exe: PathBuf,
    threads: BTreeMap<Pid, Thread>,
    mem: File,
    /// Breakpoint address → the byte the int3 replaces.
    breakpoints: BTreeMap<u64, u8>,
    breakpoints_inserted: bool,
    watchpoints: [Option<Watchpoint>; 4],
    watch_generation: u64,
    ended: Option<Event>,
    /// Something happened inside (a range step went on, a thread was
    /// born) without a stop to report: the waiter should look again soon.
    progressed: bool,
}

fn sys(what: &str, e: Errno) -> DebugError {
    DebugError::Ptrace(format!("{what}: {e}"))
}

fn os(what: &str) -> DebugError {
    DebugError::Ptrace(format!("{what}: {}", std::io::Error::last_os_error()))
}

/// Where a program name resolves to, searching PATH as execvp does.
fn resolve_program(program: &std::ffi::OsStr, env_path: Option<&std::ffi::OsStr>) -> PathBuf {
    let as_path = PathBuf::from(program);
    if program.as_encoded_bytes().contains(&b'/') {
        return as_path;
    }
    let search = env_path
        .map(|p| p.to_os_string())
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&search)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        })
        .unwrap_or(as_path)
}

fn cstring(bytes: &[u8], what: &str) -> Result<CString, DebugError> {
    CString::new(bytes).map_err(|_| DebugError::Launch(format!("{what} contains a NUL byte")))
}

impl Inferior {
    /// Forks, and in the child: connects the requested stdio, changes
    /// directory, turns off address-space randomisation (as gdb does, so
    /// addresses repeat from run to run), asks to be traced and execs. The
    /// parent returns once the child is stopped at its exec.
    /// `randomize` keeps address-space randomisation on (gdb's `set
    /// disable-randomization off`).
    pub fn launch(launch: &Launch, randomize: bool) -> Result<Self, DebugError> {
        let program = launch
            .argv
            .first()
            .ok_or_else(|| DebugError::Launch("no program to run (argv is empty)".into()))?;
        let env: Vec<(std::ffi::OsString, std::ffi::OsString)> = match &launch.env {
            Some(env) => env.clone(),
            None => std::env::vars_os().collect(),
        };
        let env_path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_os_str());
        let exe = resolve_program(program, env_path);
        let exe = std::fs::canonicalize(&exe)
            .map_err(|e| DebugError::Launch(format!("cannot run {}: {e}", exe.display())))?;
        let path_c = cstring(exe.as_os_str().as_encoded_bytes(), "the program path")?;
        let argv_c: Vec<CString> = launch
            .argv
            .iter()
            .map(|a| cstring(a.as_encoded_bytes(), "an argument"))
            .collect::<Result<_, _>>()?;
        let envp_c: Vec<CString> = env
            .iter()
            .map(|(k, v)| {
                let mut kv = k.as_encoded_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_encoded_bytes());
                cstring(&kv, "an environment variable")
            })
            .collect::<Result<_, _>>()?;
        let cwd_c = launch
            .cwd
            .as_ref()
            .map(|c| cstring(c.as_os_str().as_encoded_bytes(), "the working directory"))
            .transpose()?;
        let mut argv_p: Vec<*const libc::c_char> = argv_c.iter().map(|c| c.as_ptr()).collect();
        argv_p.push(std::ptr::null());
        let mut envp_p: Vec<*const libc::c_char> = envp_c.iter().map(|c| c.as_ptr()).collect();
        envp_p.push(std::ptr::null());
        use std::os::fd::AsRawFd;
        let stdio: [(Option<i32>, i32); 3] = [
            (launch.stdin.as_ref().map(|f| f.as_raw_fd()), 0),
            (launch.stdout.as_ref().map(|f| f.as_raw_fd()), 1),
            (launch.stderr.as_ref().map(|f| f.as_raw_fd()), 2),
        ];

        // The child reports a failed exec's errno through this pipe; a
        // successful exec closes it (O_CLOEXEC) with nothing written.
        let mut report = [0i32; 2];
        // SAFETY: `report` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(report.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(os("pipe2"));
        }
        // SAFETY: the child only makes async-signal-safe calls (dup2, chdir,
        // personality, sigprocmask, ptrace, execve, write, _exit) on data
        // prepared before the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(os("fork"));
        }
        if pid == 0 {
            unsafe {
                libc::close(report[0]);
                let fail = |step: i32| -> ! {
                    let err = [step, *libc::__errno_location()];
                    libc::write(report[1], err.as_ptr().cast(), std::mem::size_of_val(&err));
                    libc::_exit(127)
                };
                for (from, to) in stdio {
                    if let Some(from) = from {
                        if libc::dup2(from, to) < 0 {
                            fail(1);
                        }
                    }
                }
                if let Some(cwd) = &cwd_c {
                    if libc::chdir(cwd.as_ptr()) != 0 {
                        fail(2);
                    }
                }
                let current = libc::personality(0xffff_ffff);
                if current != -1 && !randomize {
                    libc::personality((current | libc::ADDR_NO_RANDOMIZE) as libc::c_ulong);
                }
                let mut none: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut none);
                libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
                if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) != 0 {
                    fail(3);
                }
                libc::execve(path_c.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr());
                fail(4);
            }
        }
        let pid = Pid::from_raw(pid);
        // SAFETY: closing our copy of the write end, which we own.
        unsafe { libc::close(report[1]) };
        let mut failure = [0i32; 2];
        // SAFETY: reading at most size_of(failure) bytes into it.
        let got = unsafe {
            libc::read(
                report[0],
                failure.as_mut_ptr().cast(),
                std::mem::size_of_val(&failure),
            )
        };
        // SAFETY: closing the read end, which we own.
        unsafe { libc::close(report[0]) };
        if got == std::mem::size_of_val(&failure) as isize {
            let _ = waitpid(pid, None);
            let step = match failure[0] {
                1 => "connecting its stdio",
                2 => "changing to its working directory",
                3 => "PTRACE_TRACEME",
                _ => "execve",
            };
            return Err(DebugError::Launch(format!(
                "cannot run {}: {step} failed: {}",
                exe.display(),
                std::io::Error::from_raw_os_error(failure[1])
            )));
        }
        match waitpid(pid, Some(WaitPidFlag::__WALL)).map_err(|e| sys("waitpid", e))? {
            WaitStatus::Stopped(_, Signal::SIGTRAP) => {}
            other => {
                return Err(DebugError::Launch(format!(
                    "{} did not stop at its exec: {other:?}",
                    exe.display()
                )))
            }
        }
        ptrace::setoptions(
            pid,
            // Forks are traced only to hand the child back untraced and
            // without our int3s (untraced, it would die on the first one);
            // untraced, a vfork-like clone would be reported as a thread.
            ptrace::Options::PTRACE_O_TRACECLONE
                | ptrace::Options::PTRACE_O_TRACEFORK
                | ptrace::Options::PTRACE_O_TRACEVFORK
                | ptrace::Options::PTRACE_O_TRACEEXEC
                | ptrace::Options::PTRACE_O_EXITKILL,
        )
        .map_err(|e| sys("PTRACE_SETOPTIONS", e))?;
        let mem = open_mem(pid)?;
        let mut threads = BTreeMap::new();
        let mut leader = Thread::new_running();
        leader.running = false;
        leader.sigstop_expected = false;
        threads.insert(pid, leader);
        Ok(Self {
            pid,
            exe,
            threads,
            mem,
            breakpoints: BTreeMap::new(),
            breakpoints_inserted: false,
            watchpoints: [None; 4],
            watch_generation: 0,
            ended: None,
            progressed: false,
        })
    }

    /// Whether anything happened inside since the last call.
    pub fn take_progress(&mut self) -> bool {
        std::mem::take(&mut self.progressed)
    }

    /// Whether any thread runs (the debugger resumed the program and no
    /// stop was reported since).
    pub fn any_running(&self) -> bool {
        self.ended.is_none() && self.threads.values().any(|t| t.running)
    }

    pub fn ended(&self) -> Option<Event> {
        self.ended
    }

    pub fn thread_ids(&self) -> impl Iterator<Item = Pid> + '_ {
        self.threads.keys().copied()
    }

    pub fn has_thread(&self, tid: Pid) -> bool {
        self.threads.contains_key(&tid)
    }

    fn known_thread(&self, tid: Pid) -> Result<(), DebugError> {
        if self.threads.contains_key(&tid) {
            Ok(())
        } else {
            Err(DebugError::NoSuchThread(tid.as_raw()))
        }
    }

    // ----- registers -------------------------------------------------------

    pub fn read_registers(
        &self,
        tid: Pid,
    ) -> Result<(libc::user_regs_struct, libc::user_fpregs_struct), DebugError> {
        self.known_thread(tid)?;
        let gp = ptrace::getregs(tid).map_err(|e| sys("PTRACE_GETREGS", e))?;
        // SAFETY: an all-zero user_fpregs_struct is valid (plain integers).
        let mut fp: libc::user_fpregs_struct = unsafe { std::mem::zeroed() };
        // SAFETY: PTRACE_GETFPREGS writes one user_fpregs_struct to `fp`.
        let r = unsafe { libc::ptrace(PTRACE_GETFPREGS, tid.as_raw(), 0, &mut fp as *mut _) };
        if r != 0 {
            return Err(os("PTRACE_GETFPREGS"));
        }
        Ok((gp, fp))
    }

    pub fn write_registers(
        &self,
        tid: Pid,
        gp: &libc::user_regs_struct,
        fp: &libc::user_fpregs_struct,
    ) -> Result<(), DebugError> {
        self.known_thread(tid)?;
        ptrace::setregs(tid, *gp).map_err(|e| sys("PTRACE_SETREGS", e))?;
        // SAFETY: PTRACE_SETFPREGS reads one user_fpregs_struct from `fp`.
        let r = unsafe { libc::ptrace(PTRACE_SETFPREGS, tid.as_raw(), 0, fp as *const _) };
        if r != 0 {
            return Err(os("PTRACE_SETFPREGS"));
        }
        Ok(())
    }

    fn pc(&self, tid: Pid) -> Result<u64, DebugError> {
        Ok(ptrace::getregs(tid)
            .map_err(|e| sys("PTRACE_GETREGS", e))?
            .rip)
    }

    fn set_pc(&self, tid: Pid, pc: u64) -> Result<(), DebugError> {
        let mut regs = ptrace::getregs(tid).map_err(|e| sys("PTRACE_GETREGS", e))?;
        regs.rip = pc;
        ptrace::setregs(tid, regs).map_err(|e| sys("PTRACE_SETREGS", e))
    }

    // ----- memory ----------------------------------------------------------

    /// Reads as much of `buf` as is mapped from `addr` on; an error when
    /// nothing is.
    pub fn read_memory(&self, addr: u64, buf: &mut [u8]) -> Result<usize, DebugError> {
        let mut done = 0;
        while done < buf.len() {
            match self
                .mem
                .read_at(&mut buf[done..], addr.wrapping_add(done as u64))
            {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if done == 0 => {
                    return Err(DebugError::Memory(format!("cannot read {addr:#x}: {e}")))
                }
                Err(_) => break,
            }
        }
        if done == 0 && !buf.is_empty() {
            return Err(DebugError::Memory(format!("cannot read {addr:#x}")));
        }
        Ok(done)
    }

    /// Writes all of `data` (even into read-only text: /proc/PID/mem
    /// writes as the tracer).
    pub fn write_memory(&self, addr: u64, data: &[u8]) -> Result<(), DebugError> {
        self.mem
            .write_all_at(data, addr)
            .map_err(|e| DebugError::Memory(format!("cannot write {addr:#x}: {e}")))
    }

    pub fn read_u64(&self, addr: u64) -> Result<u64, DebugError> {
        let mut b = [0u8; 8];
        if self.read_memory(addr, &mut b)? != 8 {
            return Err(DebugError::Memory(format!(
                "cannot read 8 bytes at {addr:#x}"
            )));
        }
        Ok(u64::from_le_bytes(b))
    }

    // ----- breakpoints and watchpoints -------------------------------------

    pub fn add_breakpoint(&mut self, addr: u64) -> Result<(), DebugError> {
        if self.breakpoints.contains_key(&addr) {
            return Ok(());
        }
        let mut original = [0u8];
        if self.read_memory(addr, &mut original)? != 1 {
            return Err(DebugError::Memory(format!("cannot read {addr:#x}")));
        }
        self.breakpoints.insert(addr, original[0]);
        Ok(())
    }

    pub fn remove_breakpoint(&mut self, addr: u64) -> bool {
        self.breakpoints.remove(&addr).is_some()
    }

    fn insert_breakpoints(&mut self) {
        if self.breakpoints_inserted {
            return;
        }
        // A library unloaded under a breakpoint makes its address unwritable;
        // that breakpoint simply cannot hit, so it is skipped.
        for &addr in self.breakpoints.keys() {
            let _ = self.write_memory(addr, &[INT3]);
        }
        self.breakpoints_inserted = true;
    }

    fn lift_breakpoints(&mut self) {
        if !self.breakpoints_inserted {
            return;
        }
        for (&addr, &original) in &self.breakpoints {
            let _ = self.write_memory(addr, &[original]);
        }
        self.breakpoints_inserted = false;
    }

    /// Takes a free debug register for the watchpoint; false when all four
    /// are in use.
    pub fn add_watchpoint(&mut self, watch: Watchpoint) -> bool {
        if check_watch(watch.addr, watch.len).is_err() {
            return false;
        }
        // The CPU requires length bits 00 (one byte) for instruction slots.
        if watch.kind == WatchKind::Execute && watch.len != 1 {
            return false;
        }
        match self.watchpoints.iter_mut().find(|w| w.is_none()) {
            Some(slot) => {
                *slot = Some(watch);
                self.watch_generation += 1;
                true
            }
            None => false,
        }
    }

    pub fn remove_watchpoint(&mut self, watch: Watchpoint) -> bool {
        match self.watchpoints.iter_mut().find(|w| **w == Some(watch)) {
            Some(slot) => {
                *slot = None;
                self.watch_generation += 1;
                true
            }
            None => false,
        }
    }

    pub fn watchpoint(&self, slot: usize) -> Option<Watchpoint> {
        self.watchpoints.get(slot).copied().flatten()
    }

    /// Writes DR0–DR3 and DR7 of a thread whose copy is out of date.
    fn apply_watchpoints(&mut self, tid: Pid) -> Result<(), DebugError> {
        let generation = self.watch_generation;
        let Some(thread) = self.threads.get(&tid) else {
            return Ok(());
        };
        if thread.watch_generation == generation {
            return Ok(());
        }
        // DR7 goes to 0 first: the kernel checks each address write against
        // the control bits in force.
        poke_debugreg(tid, 7, 0)?;
        let mut dr7 = 0u64;
        for (slot, watch) in self.watchpoints.iter().enumerate() {
            let Some(w) = watch else { continue };
            poke_debugreg(tid, slot, w.addr)?;
            let rw = match w.kind {
                WatchKind::Execute => 0b00,
                WatchKind::Write => 0b01,
                WatchKind::ReadWrite => 0b11,
            };
            let len = match w.len {
                1 => 0b00,
                2 => 0b01,
                8 => 0b10,
                _ => 0b11,
            };
            dr7 |= 1 << (slot * 2); // local enable
            dr7 |= (rw | (len << 2)) << (16 + slot * 4);
        }
        poke_debugreg(tid, 7, dr7)?;
        if let Some(thread) = self.threads.get_mut(&tid) {
            thread.watch_generation = generation;
        }
        Ok(())
    }

    // ----- stops -----------------------------------------------------------

    /// Why a thread reported SIGTRAP: our int3, a step, a watchpoint, or a
    /// trap of the program's own.
    fn classify_trap(&mut self, tid: Pid, mode: ResumeMode) -> Result<StopCause, DebugError> {
        let info = ptrace::getsiginfo(tid).map_err(|e| sys("PTRACE_GETSIGINFO", e))?;
        if info.si_code == SI_KERNEL && self.breakpoints_inserted {
            let pc = self.pc(tid)?;
            if self.breakpoints.contains_key(&pc.wrapping_sub(1)) {
                self.set_pc(tid, pc - 1)?;
                return Ok(StopCause::Breakpoint);
            }
        }
        if self.watchpoints.iter().any(Option::is_some) {
            let dr6 = peek_debugreg(tid, 6)?;
            if let Some(slot) =
                (0..4).find(|s| dr6 & (1 << s) != 0 && self.watchpoints[*s].is_some())
            {
                poke_debugreg(tid, 6, 0)?;
                return Ok(StopCause::Watchpoint { slot });
            }
        }
        if mode.steps() {
            return Ok(StopCause::Stepped);
        }
        Ok(StopCause::Signal(libc::SIGTRAP))
    }

    fn resume_thread(
        &mut self,
        tid: Pid,
        mode: ResumeMode,
        signal: Option<i32>,
    ) -> Result<(), DebugError> {
        self.apply_watchpoints(tid)?;
        let sig = signal.and_then(|s| Signal::try_from(s).ok());
        let result = match mode {
            ResumeMode::Continue => ptrace::cont(tid, sig),
            ResumeMode::Step | ResumeMode::Range { .. } => ptrace::step(tid, sig),
        };
        match result {
            Ok(()) => {}
            // The thread was killed under us (exit_group of another thread,
            // SIGKILL): its exit will be reported by waitpid.
            Err(Errno::ESRCH) => {}
            Err(e) => return Err(sys("resume", e)),
        }
        if let Some(t) = self.threads.get_mut(&tid) {
            t.running = true;
            t.mode = mode;
        }
        Ok(())
    }

    /// Takes in one wait status. Returns a stop or the end of the process
    /// when it is one to report; internal stops (a new thread, our own
    /// SIGSTOPs) are handled here and give `None`. While `stopping`, a
    /// thread that stops stays stopped, and a reportable stop is kept as
    /// that thread's pending stop instead.
    fn absorb(
        &mut self,
        tid: Pid,
        status: WaitStatus,
        stopping: bool,
    ) -> Result<Option<Event>, DebugError> {
        match status {
            WaitStatus::Exited(_, code) => {
                self.threads.remove(&tid);
                if tid == self.pid {
                    self.end(Event::Exited(code));
                    return Ok(self.ended);
                }
                Ok(None)
            }
            WaitStatus::Signaled(_, signal, _) => {
                self.threads.remove(&tid);
                if tid == self.pid {
                    self.end(Event::Killed(signal as i32));
                    return Ok(self.ended);
                }
                Ok(None)
            }
            WaitStatus::PtraceEvent(_, _, event) if event == libc::PTRACE_EVENT_CLONE => {
                let new = ptrace::getevent(tid).map_err(|e| sys("PTRACE_GETEVENTMSG", e))?;
                self.threads
                    .insert(Pid::from_raw(new as i32), Thread::new_running());
                let mode = self
                    .threads
                    .get(&tid)
                    .map_or(ResumeMode::Continue, |t| t.mode);
                self.resume_thread(tid, mode, None)?;
                Ok(None)
            }
            WaitStatus::PtraceEvent(_, _, event)
                if event == libc::PTRACE_EVENT_FORK || event == libc::PTRACE_EVENT_VFORK =>
            {
                let child = ptrace::getevent(tid).map_err(|e| sys("PTRACE_GETEVENTMSG", e))?;
                self.release_child(
                    Pid::from_raw(child as i32),
                    event == libc::PTRACE_EVENT_FORK,
                );
                let mode = self
                    .threads
                    .get(&tid)
                    .map_or(ResumeMode::Continue, |t| t.mode);
                self.resume_thread(tid, mode, None)?;
                Ok(None)
            }
            WaitStatus::PtraceEvent(_, _, event) if event == libc::PTRACE_EVENT_EXEC => {
                // Every other thread is gone and the exec'ing one now has the
                // leader's id; the old image's breakpoints went with it.
                self.threads.retain(|t, _| *t == self.pid);
                // (After the leader's own pthread_exit it may be missing.)
                self.threads.entry(self.pid).or_insert_with(|| {
                    let mut leader = Thread::new_running();
                    leader.sigstop_expected = false;
                    leader
                });
                self.breakpoints.clear();
                self.breakpoints_inserted = false;
                self.mem = open_mem(self.pid)?;
                self.exe = std::fs::read_link(format!("/proc/{}/exe", self.pid))
                    .unwrap_or_else(|_| self.exe.clone());
                self.stopped(self.pid, StopCause::Exec, stopping)
            }
            WaitStatus::PtraceEvent(..) => {
                let mode = self
                    .threads
                    .get(&tid)
                    .map_or(ResumeMode::Continue, |t| t.mode);
                self.resume_thread(tid, mode, None)?;
                Ok(None)
            }
            WaitStatus::Stopped(_, Signal::SIGSTOP)
                if self.threads.get(&tid).is_some_and(|t| t.sigstop_expected) =>
            {
                let thread = self.threads.get_mut(&tid).expect("checked");
                thread.sigstop_expected = false;
                thread.running = false;
                if !stopping {
                    // A leftover stop of ours, or a new thread's first stop,
                    // while the process runs: carry on as before.
                    let mode = thread.mode;
                    self.resume_thread(tid, mode, None)?;
                }
                Ok(None)
            }
            WaitStatus::Stopped(_, signal) => {
                let mode = match self.threads.get_mut(&tid) {
                    Some(t) => {
                        t.running = false;
                        t.mode
                    }
                    None => return Ok(None),
                };
                let cause = if signal == Signal::SIGTRAP {
                    self.classify_trap(tid, mode)?
                } else {
                    StopCause::Signal(signal as i32)
                };
                if cause == StopCause::Stepped && !stopping && mode.keeps_stepping_at(self.pc(tid)?)
                {
                    self.progressed = true;
                    self.resume_thread(tid, mode, None)?;
                    return Ok(None);
                }
                self.stopped(tid, cause, stopping)
            }
            _ => Ok(None),
        }
    }

    /// Lets a forked child of the program run on untraced: waits for its
    /// first stop, takes our int3s and watchpoints out of its copy of the
    /// memory (a vfork child shares the parent's, which must keep them),
    /// and detaches.
    fn release_child(&self, child: Pid, own_memory: bool) {
        let _ = waitpid(child, Some(WaitPidFlag::__WALL));
        if own_memory && self.breakpoints_inserted {
            if let Ok(mem) = open_mem(child) {
                for (&addr, &original) in &self.breakpoints {
                    let _ = mem.write_all_at(&[original], addr);
                }
            }
        }
        if self.watchpoints.iter().any(Option::is_some) {
            let _ = poke_debugreg(child, 7, 0);
        }
        let _ = ptrace::detach(child, None);
    }

    fn stopped(
        &mut self,
        tid: Pid,
        cause: StopCause,
        stopping: bool,
    ) -> Result<Option<Event>, DebugError> {
        if let Some(t) = self.threads.get_mut(&tid) {
            t.running = false;
            if stopping {
                t.pending = Some(cause);
                return Ok(None);
            }
        }
        Ok(Some(Event::Stopped { tid, cause }))
    }

    fn end(&mut self, event: Event) {
        self.threads.clear();
        self.breakpoints_inserted = false;
        self.ended = Some(event);
    }

    /// Looks once, without blocking, for a stop of any running thread. On a
    /// stop, every other thread is stopped too before it is returned.
    pub fn poll_event(&mut self) -> Result<Option<Event>, DebugError> {
        if let Some(end) = self.ended {
            return Ok(Some(end));
        }
        let running: Vec<Pid> = self
            .threads
            .iter()
            .filter(|(_, t)| t.running)
            .map(|(tid, _)| *tid)
            .collect();
        for tid in running {
            let status = match waitpid(tid, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
                Ok(WaitStatus::StillAlive) => continue,
                Ok(status) => status,
                Err(Errno::ECHILD) => {
                    // Already reaped elsewhere: it is gone.
                    self.threads.remove(&tid);
                    continue;
                }
                Err(e) => return Err(sys("waitpid", e)),
            };
            if let Some(event) = self.absorb(tid, status, false)? {
                if let Event::Stopped { .. } = event {
                    if let Some(end) = self.stop_all()? {
                        return Ok(Some(end));
                    }
                    self.lift_breakpoints();
                }
                return Ok(Some(event));
            }
        }
        if self.threads.is_empty() && self.ended.is_none() {
            // Every thread vanished without the leader's status (reaped by
            // someone else): nothing is left to debug.
            self.end(Event::Killed(libc::SIGKILL));
            return Ok(self.ended);
        }
        Ok(None)
    }

    /// Stops every running thread (SIGSTOP, then waits for each); stops of
    /// other kinds that arrive meanwhile become pending. Returns the end
    /// of the process if it ended meanwhile.
    fn stop_all(&mut self) -> Result<Option<Event>, DebugError> {
        for (&tid, thread) in self.threads.iter_mut() {
            if thread.running && !thread.sigstop_expected {
                // SAFETY: tgkill with our own process's ids and a valid signal.
                unsafe {
                    libc::syscall(
                        libc::SYS_tgkill,
                        self.pid.as_raw(),
                        tid.as_raw(),
                        libc::SIGSTOP,
                    )
                };
                thread.sigstop_expected = true;
            }
        }
        let started = std::time::Instant::now();
        let mut zombie_checked = false;
        while let Some((tid, status)) = self.wait_any(|_, t| t.running)? {
            if let Some(end @ (Event::Exited(_) | Event::Killed(_))) =
                self.absorb(tid, status, true)?
            {
                return Ok(Some(end));
            }
            // A thread born meanwhile is running and owes us its first stop:
            // the loop waits for it like the others.
            if !zombie_checked && started.elapsed() > Duration::from_millis(20) {
                zombie_checked = true;
                self.settle_zombie_leader();
            }
        }
        Ok(None)
    }

    /// A leader that called pthread_exit stays a zombie (never stopping)
    /// until the last thread ends: it counts as stopped.
    fn settle_zombie_leader(&mut self) {
        let stat = std::fs::read_to_string(format!("/proc/{0}/task/{0}/stat", self.pid))
            .unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        if state == Some("Z") {
            if let Some(leader) = self.threads.get_mut(&self.pid) {
                leader.running = false;
                leader.sigstop_expected = false;
            }
        }
    }

    /// Waits for a status from any thread `wanted` picks, looking without
    /// blocking and the leader last: a blocking wait on the leader of an
    /// exiting process would wait for the other threads, which wait for us.
    /// `None` when no thread is wanted any more.
    fn wait_any(
        &mut self,
        wanted: impl Fn(Pid, &Thread) -> bool,
    ) -> Result<Option<(Pid, WaitStatus)>, DebugError> {
        let mut pause = Duration::from_micros(5);
        loop {
            let mut candidates: Vec<Pid> = self
                .threads
                .iter()
                .filter(|(tid, t)| wanted(**tid, t))
                .map(|(tid, _)| *tid)
                .collect();
            if candidates.is_empty() {
                return Ok(None);
            }
            candidates.sort_by_key(|tid| *tid == self.pid);
            for tid in candidates {
                match waitpid(tid, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
                    Ok(WaitStatus::StillAlive) => {}
                    Ok(status) => return Ok(Some((tid, status))),
                    Err(Errno::ECHILD) => {
                        self.threads.remove(&tid);
                    }
                    Err(e) => return Err(sys("waitpid", e)),
                }
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(1));
        }
    }

    /// Ctrl-C: stops every thread and says which one to report.
    pub fn interrupt(&mut self) -> Result<Event, DebugError> {
        if let Some(end) = self.stop_all()? {
            return Ok(end);
        }
        self.lift_breakpoints();
        if let Some(event) = self.take_pending(|_| true) {
            return Ok(event);
        }
        let tid = self.threads.keys().next().copied().unwrap_or(self.pid);
        Ok(Event::Stopped {
            tid,
            cause: StopCause::Interrupted,
        })
    }

    fn take_pending(&mut self, wanted: impl Fn(Pid) -> bool) -> Option<Event> {
        let breakpoints = &self.breakpoints;
        let mut stale = Vec::new();
        let mut found = None;
        for (&tid, thread) in self.threads.iter_mut() {
            let Some(cause) = thread.pending else {
                continue;
            };
            if !wanted(tid) {
                continue;
            }
            if cause == StopCause::Breakpoint {
                stale.push(tid);
                continue;
            }
            thread.pending = None;
            found = Some(Event::Stopped { tid, cause });
            break;
        }
        if found.is_some() {
            return found;
        }
        // A breakpoint hit that was not reported yet counts only if the
        // debugger still has that breakpoint (it may have removed it since;
        // the PC is already back on the original instruction).
        for tid in stale {
            let still_there = self.pc(tid).is_ok_and(|pc| breakpoints.contains_key(&pc));
            let thread = self.threads.get_mut(&tid).expect("listed above");
            thread.pending = None;
            if still_there {
                return Some(Event::Stopped {
                    tid,
                    cause: StopCause::Breakpoint,
                });
            }
        }
        None
    }

    /// Resumes the threads per `actions` (a thread without one stays
    /// stopped unless `others` says how to run it). Returns a stop that is
    /// already known — a pending one, or the end of a step over a
    /// breakpoint — instead of resuming, as the protocol allows.
    pub fn resume(
        &mut self,
        actions: &BTreeMap<Pid, ResumeAction>,
        others: Option<ResumeAction>,
    ) -> Result<Option<Event>, DebugError> {
        if let Some(end) = self.ended {
            return Ok(Some(end));
        }
        let plan: Vec<(Pid, ResumeAction)> = self
            .threads
            .keys()
            .filter_map(|tid| actions.get(tid).copied().or(others).map(|a| (*tid, a)))
            .collect();
        if let Some(event) = self.take_pending(|tid| plan.iter().any(|(t, _)| *t == tid)) {
            return Ok(Some(event));
        }
        let mut plan = plan;
        // A thread sitting on a breakpoint first steps off it alone, with the
        // int3s out, so it runs the original instruction.
        for (tid, action) in plan.iter_mut() {
            if !self.breakpoints.contains_key(&self.pc(*tid)?) {
                continue;
            }
            self.lift_breakpoints();
            self.resume_thread(*tid, ResumeMode::Step, action.signal)?;
            // A clone during the step is registered by `absorb`, which steps
            // the thread on; wait until it really stopped or ended. Every
            // thread is watched: if the step ends the process, the others'
            // exits must be collected before the leader's.
            let outcome = loop {
                let Some((from, status)) = self.wait_any(|_, _| true)? else {
                    break self.ended;
                };
                let outcome = self.absorb(from, status, false)?;
                if outcome.is_some() || !self.threads.get(tid).is_some_and(|t| t.running) {
                    break outcome;
                }
            };
            match outcome {
                Some(Event::Stopped {
                    cause: StopCause::Stepped,
                    ..
                }) if action.mode == ResumeMode::Continue
                    || action.mode.keeps_stepping_at(self.pc(*tid)?) =>
                {
                    // Off the breakpoint: it continues with the others below,
                    // its signal already delivered.
                    action.signal = None;
                }
                Some(event) => {
                    if let Event::Stopped { .. } = event {
                        if let Some(end) = self.stop_all()? {
                            return Ok(Some(end));
                        }
                        self.lift_breakpoints();
                    }
                    return Ok(Some(event));
                }
                None => {}
            }
        }
        self.insert_breakpoints();
        for (tid, action) in plan {
            if self.threads.get(&tid).is_some_and(|t| !t.running) {
                self.resume_thread(tid, action.mode, action.signal)?;
            }
        }
        Ok(None)
    }

    /// Ends the process (the debugger's `kill`) and reaps it.
    pub fn kill(&mut self) -> Event {
        if let Some(end) = self.ended {
            return end;
        }
        let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
        self.reap_all()
    }

    /// Waits for every thread to end (after a SIGKILL); returns the
    /// process's end.
    fn reap_all(&mut self) -> Event {
        while let Ok(Some((tid, status))) = self.wait_any(|_, _| true) {
            if let Ok(Some(end @ (Event::Exited(_) | Event::Killed(_)))) =
                self.absorb(tid, status, true)
            {
                return end;
            }
        }
        let end = self.ended.unwrap_or(Event::Killed(libc::SIGKILL));
        self.end(end);
        end
    }

    /// Lets the process run on untraced (the debugger's `detach`), then
    /// waits for it to end as its parent.
    pub fn detach_and_wait(&mut self) -> Event {
        if let Some(end) = self.ended {
            return end;
        }
        self.lift_breakpoints();
        for (&tid, thread) in &self.threads {
            let _ = poke_debugreg(tid, 7, 0);
            let signal = match thread.pending {
                Some(StopCause::Signal(s)) => Signal::try_from(s).ok(),
                _ => None,
            };
            let _ = ptrace::detach(tid, signal);
        }
        // A SIGSTOP of ours still queued would stop the detached process:
        // a SIGCONT undoes it.
        if self.threads.values().any(|t| t.sigstop_expected) {
            let _ = nix::sys::signal::kill(self.pid, Signal::SIGCONT);
        }
        self.threads.retain(|tid, _| *tid == self.pid);
        let end = match waitpid(self.pid, None) {
            Ok(WaitStatus::Exited(_, code)) => Event::Exited(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => Event::Killed(sig as i32),
            _ => Event::Killed(libc::SIGKILL),
        };
        self.end(end);
        end
    }
}

impl Drop for Inferior {
    /// A debugger that went away must not leave a stopped process behind.
    fn drop(&mut self) {
        if self.ended.is_none() {
            self.kill();
        }
    }
}

fn open_mem(pid: Pid) -> Result<File, DebugError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/{pid}/mem"))
        .map_err(|e| DebugError::Ptrace(format!("cannot open /proc/{pid}/mem: {e}")))
}

fn debugreg_offset(index: usize) -> usize {
    std::mem::offset_of!(libc::user, u_debugreg) + index * 8
}

fn peek_debugreg(tid: Pid, index: usize) -> Result<u64, DebugError> {
    Errno::clear();
    // SAFETY: PTRACE_PEEKUSER reads one word of the user area at an offset
    // inside `struct user`.
    let value = unsafe {
        libc::ptrace(
            libc::PTRACE_PEEKUSER,
            tid.as_raw(),
            debugreg_offset(index),
            0,
        )
    };
    if value == -1 && Errno::last_raw() != 0 {
        return Err(os("PTRACE_PEEKUSER"));
    }
    Ok(value as u64)
}

fn poke_debugreg(tid: Pid, index: usize, value: u64) -> Result<(), DebugError> {
    // SAFETY: PTRACE_POKEUSER writes one word of the user area at an offset
    // inside `struct user`.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_POKEUSER,
            tid.as_raw(),
            debugreg_offset(index),
            value,
        )
    };
    if r != 0 {
        return Err(os(&format!("writing debug register {index}")));
    }
    Ok(())
}

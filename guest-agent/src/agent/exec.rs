//! Exec: start a program with pipes or a pty, pump its output, and answer
//! Wait once it has ended and all its output is sent.

use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::{spawn_pipe_writer, Connection, Program, Sink};
use crate::protocol::*;

pub(super) fn start(conn: &Connection, req: ExecRequest) -> Result<Reply, AgentError> {
    let Some(program) = req.argv.first() else {
        return Err(AgentError::new(
            ErrorKind::BadRequest,
            "exec: argv is empty",
        ));
    };
    let mut cmd = Command::new(program);
    cmd.args(&req.argv[1..]);
    if req.clear_env {
        cmd.env_clear();
    }
    cmd.envs(req.env.iter().map(|(k, v)| (k, v)));
    if let Some(cwd) = &req.cwd {
        cmd.current_dir(cwd);
    }
    let pty_master = match req.stdio {
        StdioMode::Pipes => {
            cmd.stdin(if req.stdin_stream.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            // SAFETY: setsid is async-signal-safe. Its own session and
            // process group let Signal{group} reach `sh -c`'s children too.
            unsafe {
                cmd.pre_exec(|| {
                    libc::setsid();
                    Ok(())
                });
            }
            None
        }
        StdioMode::Pty { rows, cols } => {
            let size = nix::pty::Winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            let pty = nix::pty::openpty(Some(&size), None)
                .map_err(|e| AgentError::new(ErrorKind::Io, format!("openpty: {e}")))?;
            let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| AgentError::io("dup pty", &e));
            cmd.stdin(Stdio::from(dup(&pty.slave)?));
            cmd.stdout(Stdio::from(dup(&pty.slave)?));
            cmd.stderr(Stdio::from(pty.slave));
            // SAFETY: setsid and ioctl are async-signal-safe; the pty
            // becomes the controlling terminal so ^C and job control work.
            unsafe {
                cmd.pre_exec(|| {
                    libc::setsid();
                    libc::ioctl(0, libc::TIOCSCTTY, 0);
                    Ok(())
                });
            }
            Some(pty.master)
        }
    };
    let mut child = cmd
        .spawn()
        .map_err(|e| AgentError::io(&format!("exec {program}"), &e))?;
    drop(cmd); // closes our copies of the pty's program side
    let pid = child.id();
    conn.state().programs.insert(
        pid,
        Program {
            status: None,
            waiters: Vec::new(),
        },
    );

    // Each pump reports on `pumped` when its stream is closed.
    let (pumped_tx, pumped) = mpsc::channel::<()>();
    let mut pumps = 0;
    let mut spawn_pump = |conn: &Connection, stream: u32, source: Box<dyn std::io::Read + Send>| {
        let (c, done) = (conn.clone(), pumped_tx.clone());
        pumps += 1;
        std::thread::spawn(move || {
            c.pump(stream, source);
            let _ = done.send(());
        });
    };
    match pty_master {
        None => {
            if let (Some(stream), Some(stdin)) = (req.stdin_stream, child.stdin.take()) {
                claim_or_report(conn, stream, Sink::Pipe(spawn_pipe_writer(stdin, drop)));
            }
            let out = child.stdout.take().expect("piped stdout");
            let err = child.stderr.take().expect("piped stderr");
            spawn_pump(conn, req.stdout_stream, Box::new(out));
            spawn_pump(conn, req.stderr_stream, Box::new(err));
        }
        Some(master) => {
            let reader = std::fs::File::from(
                master
                    .try_clone()
                    .map_err(|e| AgentError::io("dup pty", &e))?,
            );
            if let Some(stream) = req.stdin_stream {
                claim_or_report(
                    conn,
                    stream,
                    Sink::Pipe(spawn_pipe_writer(std::fs::File::from(master), drop)),
                );
            }
            spawn_pump(conn, req.stdout_stream, Box::new(reader));
        }
    }

    let conn = conn.clone();
    std::thread::spawn(move || {
        let status = match child.wait() {
            Ok(s) => match (s.code(), s.signal()) {
                (Some(code), _) => ExitStatus::Code(code),
                (None, Some(sig)) => ExitStatus::Signal(sig),
                (None, None) => ExitStatus::Code(-1),
            },
            Err(e) => {
                eprintln!("vmdbg-agent: wait for {pid}: {e}");
                ExitStatus::Code(-1)
            }
        };
        // Output first, so the host has all of it before the status. A
        // background child of the program may hold the pipes open for
        // ever: the program has ended, so give its output a grace period.
        for _ in 0..pumps {
            if pumped.recv_timeout(Duration::from_secs(2)).is_err() {
                break;
            }
        }
        let waiters = {
            let mut state = conn.state();
            let program = state.programs.get_mut(&pid).expect("registered program");
            program.status = Some(status);
            std::mem::take(&mut program.waiters)
        };
        for id in waiters {
            conn.reply(id, Ok(Reply::Exited(status)));
        }
    });
    Ok(Reply::Started { pid })
}

fn claim_or_report(conn: &Connection, stream: u32, sink: Sink) {
    if let Err(e) = conn.claim_stream(stream, sink) {
        conn.protocol_error(format!("exec stdin: {e}"), Some(stream));
    }
}

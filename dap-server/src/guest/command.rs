//! One command in the guest, run by its agent to its end (or a time
//! limit), its stdout and stderr captured; and the `--setup` commands a
//! test VM (or a test's debug session) runs before its snapshot.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use vmdbg_agent::client::{AgentClient, Chunk, ExecOptions};
use vmdbg_agent::protocol::{ExitStatus, Reply};

/// A finished guest command: `status` is None when it did not end within
/// its limit (it is then killed).
pub struct Captured {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub duration: Duration,
}

/// "exit status 1", "killed by signal 9", "timed out".
pub fn describe(status: Option<ExitStatus>) -> String {
    match status {
        Some(ExitStatus::Code(c)) => format!("exit status {c}"),
        Some(ExitStatus::Signal(s)) => format!("killed by signal {s}"),
        None => "timed out".into(),
    }
}

/// Runs `argv` in /root with `env` added, waits at most `limit`.
pub fn run_captured(
    agent: &AgentClient,
    argv: &[String],
    env: &[(String, String)],
    limit: Duration,
) -> Result<Captured> {
    let started = Instant::now();
    let mut options = ExecOptions::new(argv.iter().cloned());
    options.cwd = Some("/root".into());
    options.env.extend(env.iter().cloned());
    let program = agent
        .exec(&options)
        .with_context(|| format!("the guest cannot run {}", argv[0]))?;
    let collect = |chunks: mpsc::Receiver<Chunk>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            while let Ok(Chunk::Data(b)) = chunks.recv() {
                bytes.extend_from_slice(&b);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let (out, err) = (collect(program.stdout), collect(program.stderr));
    let pending = agent.wait_request(program.pid)?;
    let status = match pending.wait_timeout(limit) {
        Some(Ok(Reply::Exited(status))) => Some(status),
        Some(Ok(other)) => bail!("the agent answered a wait with {other:?}"),
        Some(Err(e)) => bail!("lost the guest command {}: {e}", argv[0]),
        None => {
            let _ = agent.signal(program.pid, libc::SIGKILL, true);
            None
        }
    };
    let duration = started.elapsed();
    Ok(Captured {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        duration,
    })
}

/// Runs `argv` and returns its stdout; a command that does not succeed
/// is the error, with its status and output.
pub fn run_ok(
    agent: &AgentClient,
    argv: &[String],
    env: &[(String, String)],
    limit: Duration,
) -> Result<String> {
    let done = run_captured(agent, argv, env, limit)?;
    if done.status != Some(ExitStatus::Code(0)) {
        bail!(
            "{} ({}):\n{}{}",
            argv.join(" "),
            describe(done.status),
            done.stdout,
            done.stderr
        );
    }
    Ok(done.stdout)
}

/// Runs each set-up command with `sh -c`, in order; the first that does
/// not succeed is the error, with its output.
pub fn run_setup(
    agent: &AgentClient,
    commands: &[String],
    env: &[(String, String)],
    limit: Duration,
) -> Result<()> {
    for command in commands {
        let argv = ["/bin/sh".into(), "-c".into(), command.clone()];
        run_ok(agent, &argv, env, limit)
            .with_context(|| format!("setup command {command:?} failed"))?;
    }
    Ok(())
}

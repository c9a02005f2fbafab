//! Starting a program under the guest agent's debugger: the `gdbserver`
//! channel (RSP) with `program-output` channels for the program's stdout,
//! stderr and, when asked, its final status (guest-agent/PROTOCOL.md,
//! "Debugging a program"). `vmdbg dap`'s program mode and `vmdbg
//! gdb-forward` both start programs this way. Blocking: call it off an
//! async runtime's threads.

use std::os::unix::net::UnixStream;

use anyhow::Result;
use vmdbg_agent::client::AgentClient;

/// What to run in the guest, stopped at its first instruction.
pub struct Debuggee<'a> {
    /// The program's guest path and its arguments.
    pub argv: &'a [String],
    /// The whole environment of the program.
    pub env: &'a [(String, String)],
    pub cwd: &'a str,
    /// Open a status channel too (one line, `exit N` or `signal N`, once
    /// the program ended — also after a debugger detached).
    pub want_status: bool,
}

/// The channels of a program started under the debugger.
pub struct Channels {
    pub stdout: UnixStream,
    pub stderr: UnixStream,
    pub status: Option<UnixStream>,
    /// The gdb remote protocol, served by the in-guest debugger.
    pub rsp: UnixStream,
}

/// Opens the output channels, then the `gdbserver` channel that launches
/// `debuggee`. A program that cannot start closes the RSP channel; the
/// reason arrives on stderr.
pub fn start(agent: &AgentClient, debuggee: &Debuggee) -> Result<Channels> {
    let token = format!("{}-{}", std::process::id(), unique_number());
    let (stdout_token, stderr_token, status_token) = (
        format!("{token}-stdout"),
        format!("{token}-stderr"),
        format!("{token}-status"),
    );
    let stdout = agent.open_channel("program-output", vec![stdout_token.clone()])?;
    let stderr = agent.open_channel("program-output", vec![stderr_token.clone()])?;
    let status = match debuggee.want_status {
        true => Some(agent.open_channel("program-output", vec![status_token.clone()])?),
        false => None,
    };
    let mut args = vec![
        "--stdout".to_string(),
        stdout_token,
        "--stderr".into(),
        stderr_token,
    ];
    if status.is_some() {
        args.extend(["--status".to_string(), status_token]);
    }
    args.extend(["--cwd".to_string(), debuggee.cwd.to_string()]);
    for (k, v) in debuggee.env {
        args.extend(["--env".to_string(), format!("{k}={v}")]);
    }
    args.push("--".into());
    args.extend(debuggee.argv.iter().cloned());
    let rsp = agent.open_channel("gdbserver", args)?;
    Ok(Channels {
        stdout,
        stderr,
        status,
        rsp,
    })
}

/// How a program ended, as the status channel says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Exited(i32),
    Signal(i32),
}

impl Ended {
    /// `exit N` / `signal N`.
    pub fn parse(line: &str) -> Option<Self> {
        let (kind, number) = line.trim().split_once(' ')?;
        let number: i32 = number.parse().ok()?;
        match kind {
            "exit" => Some(Ended::Exited(number)),
            "signal" => Some(Ended::Signal(number)),
            _ => None,
        }
    }

    /// The status a shell reports (128 + N for signal N).
    pub fn shell_code(self) -> i32 {
        match self {
            Ended::Exited(code) => code,
            Ended::Signal(signal) => 128 + signal,
        }
    }
}

/// Tokens of output channels must not collide between launches.
fn unique_number() -> u128 {
    static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    time + u128::from(COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse() {
        assert_eq!(Ended::parse("exit 7\n"), Some(Ended::Exited(7)));
        assert_eq!(Ended::parse("signal 11"), Some(Ended::Signal(11)));
        assert_eq!(Ended::parse("signal 11").unwrap().shell_code(), 139);
        assert_eq!(Ended::parse("unknown"), None);
        assert_eq!(Ended::parse("exit x"), None);
    }
}

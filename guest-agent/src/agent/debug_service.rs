//! The `gdbserver` and `program-output` channel services: debug a program
//! inside the guest with its stdout and stderr delivered to the host apart
//! from the gdb remote protocol (PROTOCOL.md, "Debugging a program").
//!
//! The host first opens one `program-output` channel per output stream,
//! each with a token it chose; the channel's socket waits here, parked
//! under its token. Then it opens `gdbserver` with the tokens, the working
//! directory, the environment and the argv: the program is launched under
//! [`crate::debugger::serve`] with the parked sockets as its stdout and
//! stderr (it writes straight into them; the agent relays each to its own
//! host stream), and the `gdbserver` channel carries RSP only. A third
//! parked channel (`--status`) gets how the program ended, once it has —
//! also after a debugger detached and let it run to its end.
//!
//! This module must not interpret RSP: the debugger owns it.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::debugger::{self, Launch};

/// Output sockets opened by the host and not yet claimed by a `gdbserver`
/// channel, by token.
static PARKED_OUTPUTS: Mutex<Option<HashMap<String, UnixStream>>> = Mutex::new(None);

/// How long `gdbserver` waits for an output channel it names: the host
/// opens them first, but the agent answers requests on separate threads.
const OUTPUT_CLAIM_WAIT: Duration = Duration::from_secs(5);

/// `program-output TOKEN`: parks this channel's socket until a
/// `gdbserver` channel claims it as a program's stdout or stderr. The
/// channel ends when the program and the debugger have closed it.
pub fn program_output(stream: UnixStream, args: Vec<String>) -> Result<()> {
    let [token] = args.as_slice() else {
        bail!("program-output takes exactly one argument, a token (got {args:?})");
    };
    // Nothing comes from the host on an output channel; our end only writes.
    let _ = stream.shutdown(std::net::Shutdown::Read);
    let mut parked = PARKED_OUTPUTS.lock().unwrap_or_else(|p| p.into_inner());
    let parked = parked.get_or_insert_with(HashMap::new);
    if parked.contains_key(token) {
        bail!("program-output: token {token:?} is already in use");
    }
    parked.insert(token.clone(), stream);
    Ok(())
}

fn claim_output(token: &str) -> Result<OwnedFd> {
    let deadline = Instant::now() + OUTPUT_CLAIM_WAIT;
    loop {
        let found = PARKED_OUTPUTS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
            .and_then(|m| m.remove(token));
        if let Some(stream) = found {
            return Ok(OwnedFd::from(stream));
        }
        if Instant::now() > deadline {
            bail!("no program-output channel with token {token:?} was opened");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What a `gdbserver` channel's arguments ask for.
#[derive(Debug, Default, PartialEq)]
struct DebugRequest {
    stdout_token: Option<String>,
    stderr_token: Option<String>,
    status_token: Option<String>,
    cwd: Option<String>,
    env: Vec<(String, String)>,
    argv: Vec<String>,
}

/// `[--stdout TOKEN] [--stderr TOKEN] [--status TOKEN] [--cwd DIR]
/// [--env NAME=VALUE]… -- ARGV…`
fn parse_args(args: &[String]) -> Result<DebugRequest> {
    let mut request = DebugRequest::default();
    let mut rest = args.iter();
    loop {
        let Some(flag) = rest.next() else {
            bail!("gdbserver: missing `--` and the program to run")
        };
        let mut value = || {
            rest.next()
                .cloned()
                .with_context(|| format!("gdbserver: {flag} needs a value"))
        };
        match flag.as_str() {
            "--" => break,
            "--stdout" => request.stdout_token = Some(value()?),
            "--stderr" => request.stderr_token = Some(value()?),
            "--status" => request.status_token = Some(value()?),
            "--cwd" => request.cwd = Some(value()?),
            "--env" => {
                let pair = value()?;
                let (name, val) = pair
                    .split_once('=')
                    .with_context(|| format!("gdbserver: --env {pair:?} is not NAME=VALUE"))?;
                request.env.push((name.to_string(), val.to_string()));
            }
            other => bail!("gdbserver: unknown argument {other:?}"),
        }
    }
    request.argv = rest.cloned().collect();
    if request.argv.is_empty() {
        bail!("gdbserver: no program after `--`");
    }
    Ok(request)
}

/// `gdbserver ARGS`: launches the program stopped at its first instruction
/// and serves RSP on this channel until the program ends or the host
/// kills or detaches it.
pub fn gdbserver(stream: UnixStream, args: Vec<String>) -> Result<()> {
    let request = parse_args(&args)?;
    let stdout = request
        .stdout_token
        .as_deref()
        .map(claim_output)
        .transpose()?;
    let stderr = request
        .stderr_token
        .as_deref()
        .map(claim_output)
        .transpose()?;
    let status_out = request
        .status_token
        .as_deref()
        .map(claim_output)
        .transpose()?;
    // The agent's own stdin is the console: the program reads nothing.
    let stdin = std::fs::File::open("/dev/null")
        .map(OwnedFd::from)
        .context("open /dev/null")?;
    // Keep a copy of stderr to say why a launch failed: the host sees the
    // RSP channel close and reads the reason there.
    let stderr_for_errors = stderr.as_ref().and_then(|fd| fd.try_clone().ok());
    let launch = Launch {
        argv: request.argv.iter().map(OsString::from).collect(),
        env: Some(
            request
                .env
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v)))
                .collect(),
        ),
        cwd: request.cwd.as_ref().map(Into::into),
        stdin: Some(stdin),
        stdout,
        stderr,
    };
    match debugger::serve(stream, launch) {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            let line = match (status.code(), status.signal()) {
                (Some(code), _) => format!("exit {code}"),
                (None, Some(signal)) => format!("signal {signal}"),
                (None, None) => "unknown".to_string(),
            };
            report_status(status_out, &line);
            Ok(())
        }
        Err(e) => {
            if let Some(fd) = stderr_for_errors {
                use std::io::Write;
                let _ = writeln!(std::fs::File::from(fd), "vmdbg-agent: {e}");
            }
            // Past its launch, a failed session (the debugger's connection
            // closed without `kill` or `detach`) kills the program.
            if !matches!(e, debugger::DebugError::Launch(_)) {
                report_status(status_out, &format!("signal {}", libc::SIGKILL));
            }
            Err(e.into())
        }
    }
}

/// Writes the program's end on the status channel, if there is one (the
/// host may have stopped listening; that is its choice).
fn report_status(channel: Option<OwnedFd>, line: &str) {
    if let Some(fd) = channel {
        use std::io::Write;
        let _ = writeln!(std::fs::File::from(fd), "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_parse_into_a_request() {
        let got = parse_args(&strings(&[
            "--stdout", "a", "--stderr", "b", "--status", "s", "--cwd", "/root", "--env", "X=1=2",
            "--", "/prog", "-v",
        ]))
        .unwrap();
        assert_eq!(
            got,
            DebugRequest {
                stdout_token: Some("a".into()),
                stderr_token: Some("b".into()),
                status_token: Some("s".into()),
                cwd: Some("/root".into()),
                env: vec![("X".into(), "1=2".into())],
                argv: strings(&["/prog", "-v"]),
            }
        );
    }

    #[test]
    fn bad_arguments_are_refused_with_a_reason() {
        for (args, why) in [
            (vec!["/prog"], "unknown argument"),
            (vec!["--stdout"], "needs a value"),
            (vec!["--env", "NOEQUALS", "--", "/p"], "NAME=VALUE"),
            (vec!["--"], "no program"),
            (vec![], "missing `--`"),
        ] {
            let err = parse_args(&strings(&args)).unwrap_err().to_string();
            assert!(err.contains(why), "{args:?}: {err}");
        }
    }

    #[test]
    fn a_launch_failure_is_explained_on_the_programs_stderr_channel() {
        use std::io::Read;
        let (agent_end, mut host_end) = UnixStream::pair().unwrap();
        program_output(agent_end, strings(&["test-token-err"])).unwrap();
        let (rsp_server, _rsp_client) = UnixStream::pair().unwrap();
        let result = gdbserver(
            rsp_server,
            strings(&["--stderr", "test-token-err", "--", "/nonexistent/program"]),
        );
        assert!(result.is_err());
        let mut said = String::new();
        host_end.read_to_string(&mut said).unwrap();
        assert!(said.contains("/nonexistent/program"), "{said:?}");
    }

    #[test]
    fn an_unknown_output_token_is_an_error() {
        let (rsp_server, _rsp_client) = UnixStream::pair().unwrap();
        let err = gdbserver(
            rsp_server,
            strings(&["--stdout", "never-opened", "--", "/bin/true"]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("never-opened"), "{err}");
    }
}

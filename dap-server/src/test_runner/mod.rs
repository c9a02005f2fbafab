//! `vmdbg test`: every test from the same VM state. Boots one VM, copies
//! the test binary in (with its shared libraries), runs the `--setup`
//! commands, lists the tests (Rust's libtest or GoogleTest, filtered by the
//! user's arguments as the binary itself filters them), takes a snapshot,
//! and runs each test alone from a restore of that snapshot, so a test that
//! wrecks the guest cannot touch the next one. Reports as libtest does on a
//! terminal, as JSON events for editors, and as JUnit XML.
//!
//! As a cargo runner (`runner = ["vmdbg", "test", "--"]`) it gets the test
//! binary and cargo's forwarded arguments (`cargo test NAME -- --exact`).
//!
//! Built on [`crate::run`] (engine choice, boot, copy-in, guest
//! environment) and the engines' snapshot calls; it never branches on the
//! engine.

mod discover;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use vmdbg_agent::protocol::ExitStatus;

use crate::guest::{describe, run_captured, run_setup};
use crate::run::{self, VmArgs};
pub use discover::Framework;
use discover::UserArgs;
use report::{Format, Outcome, Reporter, Verdict};

#[derive(clap::Args, Debug)]
pub struct TestArgs {
    #[command(flatten)]
    pub vm: VmArgs,
    /// A shell command to run in the guest before the snapshot (after the
    /// binary is copied in); it must succeed. Repeatable, run in order.
    #[arg(long = "setup", value_name = "CMD")]
    pub setup: Vec<String>,
    /// Write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// human: libtest's lines; json: one event per line.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Only list the tests (after the set-up commands, in the guest) and
    /// exit: libtest's `NAME: test` lines, or with `--format json` one
    /// `{"type":"test","event":"listed","name":…,"ignored":…}` per test.
    #[arg(long)]
    pub list: bool,
    /// How long one test may run before it counts as failed.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub timeout: u64,
    /// The test binary, then the test harness's own arguments (filters,
    /// --exact, --skip, --ignored, --include-ignored), after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Where test binaries go in the guest.
const GUEST_DIR: &str = "/root/tests";
/// The snapshot every test starts from.
const SET_UP: &str = "vmdbg-test-setup";

pub fn main(args: TestArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let binary = PathBuf::from(&args.command[0]);
    let framework = Framework::of(&binary)?;
    let user = UserArgs::parse(&args.command[1..])?;
    let name = binary
        .file_name()
        .context("the test binary's path names no file")?
        .to_string_lossy()
        .into_owned();
    let guest_binary = format!("{GUEST_DIR}/{name}");
    let interrupts = run::interrupt_counter()?;
    let (engine, spec, copies) =
        run::prepare(&args.vm, &[format!("{}:{guest_binary}", binary.display())])?;
    eprintln!("vmdbg: booting the test VM ({})", engine.describe());
    let Some(mut vm) = run::boot(engine.as_ref(), &spec, &interrupts)? else {
        return Ok(ExitCode::from(130));
    };
    let agent = vm.agent().clone();
    run::copy_in(&agent, &copies)?;
    let env = run::guest_env(&copies);
    let limit = Duration::from_secs(args.timeout);
    run_setup(&agent, &args.setup, &env, limit).context("--setup")?;

    let list = |ignored_only: bool| -> Result<Vec<String>> {
        let mut argv = vec![guest_binary.clone()];
        argv.extend(framework.list_args(&user, ignored_only));
        let listed = run_captured(&agent, &argv, &env, limit)?;
        if listed.status != Some(ExitStatus::Code(0)) {
            bail!(
                "{name} could not list its tests ({}): {}{}",
                describe(listed.status),
                listed.stdout,
                listed.stderr
            );
        }
        Ok(framework.parse_list(&listed.stdout))
    };
    let selected = list(false)?;
    let ignored = if framework == Framework::Libtest {
        list(true)?
    } else {
        Vec::new()
    };
    let unfiltered = if user.filters.is_empty() && user.skips.is_empty() {
        selected.len()
    } else {
        let all = UserArgs::default();
        let mut argv = vec![guest_binary.clone()];
        argv.extend(framework.list_args(&all, false));
        framework
            .parse_list(&run_captured(&agent, &argv, &env, limit)?.stdout)
            .len()
    };
    let to_run: Vec<(String, bool)> = selected
        .iter()
        .filter(|t| !user.ignored || ignored.contains(t))
        .map(|t| {
            (
                t.clone(),
                !ignored.contains(t) || user.ignored || user.include_ignored,
            )
        })
        .collect();

    if args.list {
        report::list(args.format, &to_run);
        vm.shutdown(Duration::from_secs(3))?;
        return Ok(ExitCode::SUCCESS);
    }

    let t_snap = Instant::now();
    vm.snapshot(SET_UP)
        .with_context(|| format!("take the set-up snapshot on the {} engine", vm.describe()))?;
    eprintln!(
        "vmdbg: set-up snapshot taken in {} ms; each test starts from it",
        t_snap.elapsed().as_millis()
    );

    let reporter = Reporter {
        format: args.format,
    };
    reporter.started(to_run.len());
    let mut outcomes = Vec::new();
    for (test, runs) in &to_run {
        if interrupts.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            eprintln!("vmdbg: interrupted");
            vm.shutdown(Duration::from_secs(2))?;
            return Ok(ExitCode::from(130));
        }
        reporter.test_started(test);
        let outcome = if *runs {
            vm.restore(SET_UP)
                .with_context(|| format!("restore the set-up snapshot before {test}"))?;
            // The snapshot's clock stood still since it was taken.
            agent
                .set_clock_from_host()
                .with_context(|| format!("set the guest's clock before {test}"))?;
            let console_from = std::fs::metadata(vm.console_log())
                .map(|m| m.len())
                .unwrap_or(0);
            let mut argv = vec![guest_binary.clone()];
            argv.extend(framework.run_args(test));
            let done = run_captured(&agent, &argv, &env, limit)?;
            let console = std::fs::read(vm.console_log())
                .map(|b| {
                    String::from_utf8_lossy(b.get(console_from as usize..).unwrap_or_default())
                        .into_owned()
                })
                .unwrap_or_default();
            Outcome {
                name: test.clone(),
                verdict: match done.status {
                    Some(ExitStatus::Code(0)) => Verdict::Passed,
                    other => Verdict::Failed(describe(other)),
                },
                duration: done.duration,
                stdout: done.stdout,
                stderr: done.stderr,
                console,
            }
        } else {
            Outcome {
                name: test.clone(),
                verdict: Verdict::Ignored,
                duration: Duration::ZERO,
                stdout: String::new(),
                stderr: String::new(),
                console: String::new(),
            }
        };
        reporter.test_ended(&outcome);
        outcomes.push(outcome);
    }
    let elapsed = started.elapsed();
    let ok = reporter.finished(&outcomes, unfiltered.saturating_sub(to_run.len()), elapsed);
    if let Some(path) = &args.junit {
        report::write_junit(path, &name, &outcomes, elapsed)?;
    }
    vm.shutdown(Duration::from_secs(3))?;
    // libtest's own status for failed tests.
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(101)
    })
}

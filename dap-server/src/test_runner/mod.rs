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
mod partition;
mod report;
pub mod setup_state;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use vmdbg_agent::client::AgentClient;
use vmdbg_agent::protocol::ExitStatus;

use crate::engine::{Engine, Vm, VmSpec};
use crate::guest::copy::CopyPlan;
use crate::guest::{self, VmArgs};
use crate::guest::{describe, run_captured, run_ok, run_setup};
pub use discover::Framework;
use discover::UserArgs;
use partition::{Listed, Partition};
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
    /// Run the tests in N VMs side by side, each started from the same
    /// saved set-up state and restored to it before each of its tests.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub jobs: usize,
    /// Boot and set up the VM even when the cache holds the set-up state
    /// of this binary, image and setup (the state is saved again).
    #[arg(long)]
    pub fresh: bool,
    /// How long one test may run before it counts as failed.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub timeout: u64,
    /// Generic mode: each test is this shell command, `{}` standing for
    /// the test's name (shell-quoted), instead of a test binary's test.
    #[arg(long, value_name = "CMD", requires = "list_from")]
    pub each: Option<String>,
    /// Generic mode: the test names, one a line: a file on this host, or
    /// else a shell command run in the guest after the setup.
    #[arg(long, value_name = "FILE|CMD", requires = "each")]
    pub list_from: Option<String>,
    /// Run only shard M of N of the selected tests, as cargo-nextest's
    /// `--partition` picks them: count:M/N (round-robin in name order),
    /// hash:M/N (by the name's hash) or slice:M/N (count, for one binary).
    #[arg(long, value_name = "KIND:M/N")]
    pub partition: Option<Partition>,
    /// The test binary, then the test harness's own arguments (filters,
    /// --exact, --skip, --ignored, --include-ignored), after `--`.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// Where test binaries go in the guest.
pub const GUEST_DIR: &str = "/root/tests";
/// The snapshot every test starts from.
const SET_UP: &str = "vmdbg-test-setup";

pub fn main(args: TestArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let (name, runner, extra_copies) = match (&args.each, &args.list_from, args.command.first()) {
        (Some(template), Some(list_from), None) => {
            if !template.contains("{}") {
                bail!("--each {template:?}: put {{}} where the test's name goes, e.g. --each './check.sh {{}}'");
            }
            let runner = Runner::Each {
                template: template.clone(),
                list_from: list_from.clone(),
            };
            ("each".to_string(), runner, Vec::new())
        }
        (Some(_), _, Some(_)) => bail!(
            "--each runs a command per test, not a test binary's tests: give either --each with --list-from, or a test binary after --"
        ),
        (None, _, Some(binary)) => {
            let binary = PathBuf::from(binary);
            let name = binary
                .file_name()
                .context("the test binary's path names no file")?
                .to_string_lossy()
                .into_owned();
            let guest = format!("{GUEST_DIR}/{name}");
            let copy = format!("{}:{guest}", binary.display());
            let runner = Runner::Binary {
                framework: Framework::of(&binary)?,
                user: UserArgs::parse(&args.command[1..])?,
                guest,
            };
            (name, runner, vec![copy])
        }
        _ => bail!("give a test binary after -- (or --each 'CMD {{}}' --list-from FILE|CMD)"),
    };
    if args.jobs == 0 {
        bail!("--jobs 0: give at least 1 (the number of VMs running tests side by side)");
    }
    let interrupts = guest::interrupt_counter()?;
    let (engine, mut spec, copies) = guest::prepare(&args.vm, &extra_copies)?;
    spec.resets = true;
    let env = guest::guest_env(&copies);
    let limit = Duration::from_secs(args.timeout);
    let state = setup_state::path(engine.as_ref(), &spec, &copies, &args.setup);
    let set_up = SetUp {
        engine: engine.as_ref(),
        spec: &spec,
        copies: &copies,
        setup: &args.setup,
        env: &env,
        limit,
        state: state.as_deref(),
        interrupts: &interrupts,
    };
    let Some(vm) = set_up.vm(args.fresh, true)? else {
        return Ok(ExitCode::from(130));
    };
    let agent = vm.agent().clone();

    let (to_run, unfiltered) = runner.list(&agent, &env, limit, args.partition.as_ref())?;

    let mut vms = vec![vm];
    if args.list {
        report::list(args.format, &to_run);
        vms[0].shutdown(Duration::from_secs(3))?;
        return Ok(ExitCode::SUCCESS);
    }

    let runnable = to_run.iter().filter(|(_, runs)| *runs).count();
    let extra = args.jobs.min(runnable).saturating_sub(1);
    if extra > 0 {
        eprintln!(
            "vmdbg: starting {extra} more VM(s) for --jobs {}",
            args.jobs
        );
        // One after the other: each loads the same file (a second or two).
        for _ in 0..extra {
            match set_up.vm(false, false) {
                Ok(Some(vm)) => vms.push(vm),
                Ok(None) => return shut_down(vms, ExitCode::from(130)),
                Err(e) => {
                    shut_down(vms, ExitCode::FAILURE)?;
                    return Err(e.context("start a VM for --jobs"));
                }
            }
        }
    }

    let reporter = Reporter {
        format: args.format,
    };
    reporter.started(to_run.len());
    let queue = Mutex::new(to_run.iter().enumerate().collect::<VecDeque<_>>());
    let done = Mutex::new(Vec::new());
    let interrupted = AtomicBool::new(false);
    let worker = |vm: &mut Box<dyn Vm>| -> Result<()> {
        let t_snap = Instant::now();
        let describe = vm.describe();
        vm.support_snapshots()
            .with_context(|| format!("the {describe} engine takes no snapshots"))?
            .take_reset_point(SET_UP)
            .with_context(|| format!("take the set-up snapshot on the {describe} engine"))?;
        eprintln!(
            "vmdbg: set-up snapshot taken in {} ms; each test starts from it",
            t_snap.elapsed().as_millis()
        );
        loop {
            if interrupts.load(Ordering::SeqCst) > 0 {
                interrupted.store(true, Ordering::SeqCst);
                return Ok(());
            }
            let Some((index, (test, runs))) = queue.lock().expect("queue").pop_front() else {
                return Ok(());
            };
            reporter.test_started(test);
            let outcome = if *runs {
                run_test(vm.as_mut(), test, &runner, &env, limit)?
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
            done.lock().expect("results").push((index, outcome));
        }
    };
    let ran: Vec<Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = vms.iter_mut().map(|vm| s.spawn(|| worker(vm))).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a test worker panicked")))
            })
            .collect()
    });
    if let Some(e) = ran.into_iter().find_map(Result::err) {
        shut_down(vms, ExitCode::FAILURE)?;
        return Err(e);
    }
    if interrupted.load(Ordering::SeqCst) {
        eprintln!("vmdbg: interrupted");
        return shut_down(vms, ExitCode::from(130));
    }
    let mut done = done.into_inner().expect("results");
    done.sort_by_key(|(index, _)| *index);
    let outcomes: Vec<Outcome> = done.into_iter().map(|(_, o)| o).collect();
    let elapsed = started.elapsed();
    let ok = reporter.finished(&outcomes, unfiltered.saturating_sub(to_run.len()), elapsed);
    if let Some(path) = &args.junit {
        report::write_junit(path, &name, &outcomes, elapsed)?;
    }
    // libtest's own status for failed tests.
    shut_down(
        vms,
        if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(101)
        },
    )
}

/// The tests of `partition`'s shard (all of them without one).
fn in_shard(
    tests: Vec<(String, bool)>,
    ignored: &std::collections::HashSet<&str>,
    partition: Option<&Partition>,
) -> Vec<(String, bool)> {
    let Some(partition) = partition else {
        return tests;
    };
    let listed: Vec<Listed> = tests
        .iter()
        .map(|(name, _)| Listed {
            name,
            ignored: ignored.contains(name.as_str()),
        })
        .collect();
    let keep = partition.keeps(&listed);
    tests
        .into_iter()
        .zip(keep)
        .filter_map(|(test, keep)| keep.then_some(test))
        .collect()
}

fn shut_down(vms: Vec<Box<dyn Vm>>, status: ExitCode) -> Result<ExitCode> {
    for mut vm in vms {
        vm.shutdown(Duration::from_secs(3))?;
    }
    Ok(status)
}

/// How a VM gets to the set-up state.
struct SetUp<'a> {
    engine: &'a dyn Engine,
    spec: &'a VmSpec,
    copies: &'a CopyPlan,
    setup: &'a [String],
    env: &'a [(String, String)],
    limit: Duration,
    /// The cached set-up state's path, where the engine can save one.
    state: Option<&'a Path>,
    interrupts: &'a AtomicUsize,
}

impl SetUp<'_> {
    /// A VM in the set-up state: started from the cached state where there
    /// is one (unless `fresh`), else booted, the binary copied in and the
    /// setup run, then (with `save`) saved for later invocations. None
    /// when interrupted while booting.
    fn vm(&self, fresh: bool, save: bool) -> Result<Option<Box<dyn Vm>>> {
        if let Some(path) = self.state.filter(|p| !fresh && p.exists()) {
            let t = Instant::now();
            match setup_state::start(self.engine, self.spec, path) {
                Ok(vm) => {
                    eprintln!(
                        "vmdbg: started from the cached set-up state {} in {} ms (--fresh sets up anew)",
                        path.display(),
                        t.elapsed().as_millis()
                    );
                    return Ok(Some(vm));
                }
                Err(e) => eprintln!(
                    "vmdbg: the cached set-up state {} did not start ({e:#}); setting up anew",
                    path.display()
                ),
            }
        }
        eprintln!("vmdbg: booting the test VM ({})", self.engine.describe());
        let Some(mut vm) = guest::warm::boot(self.engine, self.spec, self.interrupts)? else {
            return Ok(None);
        };
        let agent = vm.agent().clone();
        guest::copy_in(&agent, self.copies)?;
        run_setup(&agent, self.setup, self.env, self.limit).context("--setup")?;
        if let (true, Some(path)) = (save, self.state) {
            if let Err(e) = setup_state::save(vm.as_mut(), path) {
                eprintln!("vmdbg: could not save the set-up VM for the next runs: {e:#}");
            }
        }
        Ok(Some(vm))
    }
}

/// Runs one test alone from a restore of the set-up snapshot.
fn run_test(
    vm: &mut dyn Vm,
    test: &str,
    runner: &Runner,
    env: &[(String, String)],
    limit: Duration,
) -> Result<Outcome> {
    let t0 = Instant::now();
    vm.support_snapshots()
        .context("this engine takes no snapshots")?
        .reset(SET_UP)
        .with_context(|| format!("restore the set-up snapshot before {test}"))?;
    let t1 = Instant::now();
    // The snapshot's clock stood still since it was taken.
    vm.agent()
        .set_clock_from_host()
        .with_context(|| format!("set the guest's clock before {test}"))?;
    let t2 = Instant::now();
    let console_from = std::fs::metadata(vm.console_log())
        .map(|m| m.len())
        .unwrap_or(0);
    let done = run_captured(vm.agent(), &runner.argv(test), env, limit)?;
    let console = std::fs::read(vm.console_log())
        .map(|b| {
            String::from_utf8_lossy(b.get(console_from as usize..).unwrap_or_default()).into_owned()
        })
        .unwrap_or_default();
    // Where a test's time goes (`vmdbg -vv test`): issue 32's breakdown.
    tracing::debug!(
        "{test}: restore {:?}, clock {:?}, run (exec to exit) {:?}, collect {:?}",
        t1 - t0,
        t2 - t1,
        done.duration,
        t2.elapsed().saturating_sub(done.duration)
    );
    Ok(Outcome {
        name: test.to_string(),
        verdict: match done.status {
            Some(ExitStatus::Code(0)) => Verdict::Passed,
            other => Verdict::Failed(describe(other)),
        },
        duration: done.duration,
        stdout: done.stdout,
        stderr: done.stderr,
        console,
    })
}

/// What the tests are.
enum Runner {
    /// The tests of a test binary copied to `guest`.
    Binary {
        framework: Framework,
        user: UserArgs,
        guest: String,
    },
    /// `--each`: a shell command per test name.
    Each { template: String, list_from: String },
}

impl Runner {
    /// The tests to report (those of `partition`'s shard), each with
    /// whether it runs (false: ignored), and how many there are before the
    /// user's filters and the partition.
    fn list(
        &self,
        agent: &AgentClient,
        env: &[(String, String)],
        limit: Duration,
        partition: Option<&Partition>,
    ) -> Result<(Vec<(String, bool)>, usize)> {
        match self {
            Runner::Each { list_from, .. } => {
                let text = if Path::new(list_from).is_file() {
                    std::fs::read_to_string(list_from)
                        .with_context(|| format!("--list-from {list_from}"))?
                } else {
                    let argv = ["/bin/sh".to_string(), "-c".into(), list_from.clone()];
                    run_ok(agent, &argv, env, limit).with_context(|| {
                        format!("--list-from {list_from:?} is no file on this host, and as a command in the guest it failed")
                    })?
                };
                let names: Vec<(String, bool)> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(|l| (l.to_string(), true))
                    .collect();
                let count = names.len();
                let ignored = std::collections::HashSet::new();
                Ok((in_shard(names, &ignored, partition), count))
            }
            Runner::Binary {
                framework,
                user,
                guest,
            } => {
                let framework = *framework;
                let list = |args: &UserArgs, ignored_only: bool| -> Result<Vec<String>> {
                    let mut argv = vec![guest.clone()];
                    argv.extend(framework.list_args(args, ignored_only));
                    let listed = run_ok(agent, &argv, env, limit)
                        .with_context(|| format!("{guest} could not list its tests"))?;
                    Ok(framework.parse_list(&listed))
                };
                let selected = list(user, false)?;
                let ignored = if framework == Framework::Libtest {
                    list(user, true)?
                } else {
                    Vec::new()
                };
                let unfiltered = if user.filters.is_empty() && user.skips.is_empty() {
                    selected.len()
                } else {
                    list(&UserArgs::default(), false)?.len()
                };
                let to_run = selected
                    .iter()
                    .filter(|t| !user.ignored || ignored.contains(t))
                    .map(|t| {
                        let runs = !ignored.contains(t) || user.ignored || user.include_ignored;
                        (t.clone(), runs)
                    })
                    .collect();
                let ignored = ignored.iter().map(String::as_str).collect();
                Ok((in_shard(to_run, &ignored, partition), unfiltered))
            }
        }
    }

    /// The guest command that runs `test` alone.
    fn argv(&self, test: &str) -> Vec<String> {
        match self {
            Runner::Binary {
                framework, guest, ..
            } => {
                let mut argv = vec![guest.clone()];
                argv.extend(framework.run_args(test));
                argv
            }
            Runner::Each { template, .. } => {
                let quoted = format!("'{}'", test.replace('\'', r"'\''"));
                vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    template.replace("{}", &quoted),
                ]
            }
        }
    }
}

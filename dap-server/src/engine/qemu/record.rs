//! Recorded sessions on QEMU: its deterministic record/replay
//! (`-icount …,rr=record|replay`). QEMU runs twice:
//!
//! 1. **Record**: the guest runs (TCG, instruction counting) until it stops
//!    the machine — a triple fault (an exception it could not handle) or a
//!    power-off, which `-action shutdown=pause` turns into a pause instead
//!    of an exit — or until the time limit. Every non-deterministic input
//!    goes into `replay.bin`; the machine's starting state is the snapshot
//!    `init` in `replay.qcow2`. The instruction count where it stopped is
//!    the end of the recording.
//! 2. **Replay**: QEMU replays `replay.bin` from `init`, stopped (`-S`)
//!    under its gdb stub, which then also serves reverse steps and
//!    continues (`bs`, `bc`) by replaying from the snapshot to the wanted
//!    instruction. One can debug only a replay, not the recording itself.
//!
//! What QEMU 7.2 needs that it does not say, measured here:
//! - `sleep=off`: with icount's default `sleep=on`, reverse-continue
//!   deadlocks (the main loop resets the machine for its `loadvm` while
//!   holding the replay lock the vCPU thread waits for); reverse-stepi
//!   works either way.
//! - The replay must not run into the recorded shutdown: from QEMU's
//!   `shutdown` run state a reverse step aborts QEMU ("invalid runstate
//!   transition: 'shutdown' -> 'running'"). So the replay stops at the last
//!   recorded instruction with QMP's `replay-break`, re-armed before every
//!   forward run ([`ReplayAfresh::keep_inside`]) because QEMU's own
//!   reverse execution uses the same single break.
//! - The stub reports neither end of the recording as such (no
//!   `replaylog`): where the replay is comes from QMP's `query-replay`
//!   ([`Replay::position`]); a reverse step at the start is
//!   answered `E14`.
//! - Its own reverse execution (`bs`, `bc`, QMP `replay-seek`) loads the
//!   starting snapshot into the running process, and that races: the main
//!   loop's machine reset waits for the vCPU thread, which waits for the
//!   replay lock the main loop holds. Measured here: five of six reverse
//!   steps after a stop hung for good, whatever the machine type. So vmdbg
//!   goes back without it ([`ReplayAfresh::start_at`]): a new QEMU
//!   replays from the start (no snapshot to load) to the wanted instruction count,
//!   which for a short recording is a fraction of a second.

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::qmp::Qmp;
use super::{accept_while_alive, create_qcow2, QemuControl, QemuEngine, Run};
use crate::engine::process::{spawn_vmm, VmProcess};
use crate::engine::{
    EngineVm, RecordSpec, RecordingEnd, Replay, ReplayAfresh, ReplayPosition, RuntimeDir, Vm,
    VmControl, VmExit, VmSpec,
};

/// In a recorded VM's runtime directory: the recording's console (the
/// replay writes `console.log` again as it goes).
pub const RECORD_CONSOLE_LOG: &str = "record-console.log";
/// The recorded inputs and events.
const REPLAY_LOG: &str = "replay.bin";
/// The image holding the starting snapshot.
const REPLAY_STORE: &str = "replay.qcow2";
/// The starting snapshot's name.
const START_SNAPSHOT: &str = "init";

/// The record/replay arguments of either run (they must match).
pub(super) fn add_arguments(cmd: &mut Command, dir: &Path, record: bool) {
    cmd.args([
        "-icount",
        &format!(
            "shift=auto,sleep=off,rr={},rrfile={},rrsnapshot={START_SNAPSHOT}",
            if record { "record" } else { "replay" },
            dir.join(REPLAY_LOG).display()
        ),
        "-drive",
        &format!("file={},if=none,id=rr", dir.join(REPLAY_STORE).display()),
        // A triple fault or power-off pauses the machine rather than ending
        // QEMU (-no-reboot makes a reset a shutdown too).
        "-action",
        "shutdown=pause",
    ]);
}

/// Records `spec`'s run, then starts its replay (see the module doc).
pub(super) fn record_then_replay(
    engine: &QemuEngine,
    spec: &VmSpec,
    record: &RecordSpec,
) -> Result<Box<dyn Vm>> {
    let dir = RuntimeDir::create().context("create the VM's runtime directory")?;
    create_qcow2(&dir.path().join(REPLAY_STORE), "recordings")?;
    let (end, ending) = record_run(engine, spec, record, dir.path())?;
    let say = |line: String| {
        if let Some(progress) = &record.progress {
            let _ = progress.send(line);
        }
    };
    say(format!(
        "recorded {end} instructions ({}); starting the replay",
        match ending {
            RecordingEnd::Shutdown { .. } => "the guest stopped the machine",
            RecordingEnd::Limit => "the time limit ended it",
        }
    ));
    let (mut process, mut qmp) = spawn(engine, spec, dir.path(), Run::Replay)?;
    if let Err(e) = qmp.execute_with("replay-break", serde_json::json!({ "icount": end })) {
        let _ = process.wait_or_kill(Duration::ZERO);
        return Err(e.context("QEMU refused to stop its replay at the recording's end"));
    }
    let dir_path = dir.path().to_path_buf();
    let agent = crate::engine::no_agent()?;
    Ok(Box::new(EngineVm::new(
        "qemu (tcg), replaying a recording".to_string(),
        dir,
        agent,
        Box::new(ReplayControl {
            qemu: QemuControl {
                process,
                qmp,
                snapshot_store: false,
                snapshot_store_made: false,
                relaunch: None,
                ram_shared: false,
            },
            end,
            ending,
            engine: QemuEngine {
                binary: engine.binary.clone(),
                accel: engine.accel,
            },
            spec: VmSpec {
                record: None,
                ..spec.clone()
            },
            dir: dir_path,
        }),
    )))
}

/// Starts QEMU for `run` and connects its QMP socket.
fn spawn(engine: &QemuEngine, spec: &VmSpec, dir: &Path, run: Run) -> Result<(VmProcess, Qmp)> {
    let qmp_path = dir.join("qmp.sock");
    let _ = std::fs::remove_file(&qmp_path);
    let listener = UnixListener::bind(&qmp_path)?;
    let cmd = engine.command(spec, dir, run);
    // Ours to end: QEMU says so when we quit it or gdb kills it.
    let quiet = &["terminating on signal", "Terminated via GDBstub"];
    let mut process = spawn_vmm(cmd, "qemu: ", quiet)?;
    let stream = accept_while_alive(&listener, &mut process, Duration::from_secs(30))
        .map_err(|e| anyhow::anyhow!("{e}{}", stderr_of(&mut process)))
        .with_context(|| {
            format!(
                "QEMU ({}) did not connect its QMP socket",
                engine.binary.display()
            )
        })?;
    let qmp = Qmp::handshake(stream).context("QMP handshake with QEMU")?;
    Ok((process, qmp))
}

fn stderr_of(process: &mut VmProcess) -> String {
    std::thread::sleep(Duration::from_millis(50)); // let the relay take QEMU's last words
    let tail = process.stderr_tail.lock().unwrap().join("\n");
    if tail.is_empty() {
        String::new()
    } else {
        format!("; QEMU said:\n{tail}")
    }
}

/// Runs the recording to its end; the end's instruction count and why.
fn record_run(
    engine: &QemuEngine,
    spec: &VmSpec,
    record: &RecordSpec,
    dir: &Path,
) -> Result<(u64, RecordingEnd)> {
    let (mut process, mut qmp) = spawn(engine, spec, dir, Run::Record)?;
    let started = Instant::now();
    let mut told = Instant::now();
    let ending = loop {
        if let Some(exit) = process.try_exit() {
            bail!(
                "QEMU ended while recording ({exit}){}",
                stderr_of(&mut process)
            );
        }
        let status = qmp.execute_with("query-status", serde_json::json!({}))?;
        if status.get("status").and_then(|s| s.as_str()) == Some("shutdown") {
            break RecordingEnd::Shutdown {
                last_page_fault: control_register(&mut qmp, "CR2"),
            };
        }
        if started.elapsed() >= record.limit {
            qmp.execute("stop")?;
            break RecordingEnd::Limit;
        }
        if told.elapsed() >= Duration::from_secs(1) {
            told = Instant::now();
            if let (Some(progress), Ok(at)) = (&record.progress, position(&mut qmp)) {
                let _ = progress.send(format!(
                    "recording: {at} instructions in {:.0} s (ends when the guest stops the machine, or after {:.0} s)",
                    started.elapsed().as_secs_f64(),
                    record.limit.as_secs_f64()
                ));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let end = position(&mut qmp)?;
    // `quit` ends QEMU, which closes the log; the reply may not come.
    let _ = qmp.execute("quit");
    process.wait_or_kill(Duration::from_secs(5))?;
    Ok((end, ending))
}

/// A control register (`CR2` …) of the stopped machine, from the monitor's
/// `info registers` (QEMU's gdb stub is not connected while recording);
/// None if zero or not there.
fn control_register(qmp: &mut Qmp, name: &str) -> Option<u64> {
    let text = qmp
        .execute_with(
            "human-monitor-command",
            serde_json::json!({ "command-line": "info registers" }),
        )
        .ok()?;
    crate::engine::register_in_dump(text.as_str()?, name)
}

/// The replay's (or recording's) instruction count.
fn position(qmp: &mut Qmp) -> Result<u64> {
    let replay = qmp.execute_with("query-replay", serde_json::json!({}))?;
    replay
        .get("icount")
        .and_then(|i| i.as_u64())
        .with_context(|| format!("QMP query-replay answered without an icount: {replay}"))
}

/// The replay's QEMU.
struct ReplayControl {
    /// Pause, resume and shutdown as any QEMU VM (no snapshots in a replay).
    qemu: QemuControl,
    end: u64,
    ending: RecordingEnd,
    /// To start the replay again ([`crate::engine::ReplayAfresh::start_at`]).
    engine: QemuEngine,
    spec: VmSpec,
    dir: std::path::PathBuf,
}

impl VmControl for ReplayControl {
    fn shutdown(&mut self, grace: Duration) -> Result<VmExit> {
        self.qemu.shutdown(grace)
    }
    fn try_exit(&mut self) -> Option<VmExit> {
        self.qemu.try_exit()
    }
    fn pid(&self) -> Option<u32> {
        self.qemu.pid()
    }
    fn last_words(&mut self) -> String {
        self.qemu.last_words()
    }
    fn support_replay(&mut self) -> Option<&mut dyn Replay> {
        Some(self)
    }
}

impl Replay for ReplayControl {
    fn position(&mut self) -> Result<ReplayPosition> {
        position(&mut self.qemu.qmp).map(|at| ReplayPosition {
            at,
            end: self.end,
            ending: self.ending,
        })
    }
    /// QEMU's gdb stub goes back only within a replay's snapshots; vmdbg
    /// starts the replay again instead (see the module doc).
    fn support_afresh(&mut self) -> Option<&mut dyn ReplayAfresh> {
        Some(self)
    }
}

impl ReplayAfresh for ReplayControl {
    fn keep_inside(&mut self) -> Result<()> {
        self.break_at(self.end)
    }
    fn break_at(&mut self, icount: u64) -> Result<()> {
        self.qemu
            .qmp
            .execute_with("replay-break", serde_json::json!({ "icount": icount }))
            .map(drop)
    }
    fn start_at(&mut self, icount: u64) -> Result<()> {
        self.start_again(icount.min(self.end))
    }
}

impl ReplayControl {
    /// A new replay process, run to `icount` and stopped there.
    fn start_again(&mut self, icount: u64) -> Result<()> {
        self.qemu.shutdown(Duration::from_secs(2))?;
        let _ = std::fs::remove_file(self.dir.join(crate::engine::RSP_SOCKET));
        let (process, qmp) = spawn(&self.engine, &self.spec, &self.dir, Run::Replay)?;
        self.qemu = QemuControl {
            process,
            qmp,
            snapshot_store: false,
            snapshot_store_made: false,
            relaunch: None,
            ram_shared: false,
        };
        if icount == 0 {
            return Ok(());
        }
        self.break_at(icount)?;
        self.qemu.qmp.execute("cont")?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let status = self
                .qemu
                .qmp
                .execute_with("query-status", serde_json::json!({}))?;
            if status.get("running").and_then(|r| r.as_bool()) == Some(false) {
                break;
            }
            if let Some(exit) = self.qemu.process.try_exit() {
                bail!(
                    "QEMU ended while replaying to instruction {icount} ({exit}){}",
                    stderr_of(&mut self.qemu.process)
                );
            }
            if Instant::now() > deadline {
                bail!("replaying to instruction {icount} took over 2 minutes");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let at = position(&mut self.qemu.qmp)?;
        if at != icount {
            bail!("the replay stopped at instruction {at}, not at {icount}");
        }
        Ok(())
    }
}

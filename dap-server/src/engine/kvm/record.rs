//! Recorded sessions on vmdbg-vmm: its own deterministic recorder
//! (vmm/src/record: every instruction single-stepped, non-deterministic
//! input logged, in-memory checkpoints every 250 instructions). vmdbg-vmm
//! runs twice, as QEMU does for its recordings:
//!
//! 1. **Record**: `--record-to recording.rec` runs the kernel until it
//!    stops the machine (a triple fault, a power-off, its exit port) —
//!    vmdbg-vmm then saves the recording as it exits — or until the time
//!    limit, when the control API pauses it and saves it (`PUT
//!    /vmdbg/recording {"action": "save"}`).
//! 2. **Replay**: `--replay recording.rec` under the gdb stub, stopped at
//!    the start. The stub itself goes backwards (`bs`, `bc`: from the
//!    nearest checkpoint, milliseconds) and says where either end of the
//!    recording is (`replaylog:begin`/`end`); where the replay stands
//!    comes from `GET /vmdbg/recording`.
//!
//! Recording the live session instead (`--record` under the debugger)
//! would lose everything to the fault it is meant to explain: a triple
//! fault ends vmdbg-vmm. The replay stops just before the instruction that
//! stopped the machine.
//!
//! vmdbg-vmm records one vCPU and no virtio devices, so a recording takes a
//! kernel alone (no initramfs, no agent).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{api::ApiClient, KvmControl, KvmEngine, API_SOCKET, QUIET};
use crate::engine::process::{spawn_vmm, VmProcess};
use crate::engine::{
    Engine, EngineVm, RecordSpec, RecordingEnd, RuntimeDir, Vm, VmExit, VmSpec, CONSOLE_LOG,
    RSP_SOCKET,
};

/// Why a recording of a Linux guest is refused on this engine, and the fix.
pub const RECORD_NEEDS_KERNEL_ALONE: &str = "launch configuration: `record` on the KVM engine (vmdbg-vmm) records a kernel alone: \
     vmdbg-vmm refuses virtio devices while recording, and a Linux guest needs them (the agent's vsock). \
     Leave out `initrd`, `run` and `kernel: \"default\"` to record a bare-metal kernel, or use `\"engine\": \"qemu\"` \
     (or \"auto\") to record a Linux guest with QEMU's record/replay";

/// vmdbg-vmm's exit status for a recording that could not go on (`vmdbg-vmm
/// --help`).
const RECORDING_FAILED: i32 = 16;

/// In a recorded VM's runtime directory: the recording.
const RECORDING: &str = "recording.rec";
/// The recording run's console (the replay writes `console.log` again).
const RECORD_CONSOLE_LOG: &str = "record-console.log";
/// The recording run's control API (the replay has its own).
const RECORD_API_SOCKET: &str = "record-api.sock";

/// Records `spec`'s run, then starts its replay (see the module doc).
pub(super) fn record_then_replay(
    engine: &KvmEngine,
    spec: &VmSpec,
    record: &RecordSpec,
) -> Result<Box<dyn Vm>> {
    if spec.image.initrd.is_some() {
        bail!(RECORD_NEEDS_KERNEL_ALONE);
    }
    if spec.cpus != 1 {
        bail!(
            "launch configuration: `record` needs one vCPU (`cpus` is {}): vmdbg-vmm records a single vCPU",
            spec.cpus
        );
    }
    let say = |line: String| {
        if let Some(progress) = &record.progress {
            let _ = progress.send(line);
        }
    };
    let dir = RuntimeDir::create().context("create the VM's runtime directory")?;
    let recording = dir.path().join(RECORDING);
    let ending = record_run(engine, spec, record, dir.path(), &recording)?;

    let mut cmd = Command::new(&engine.vmm);
    cmd.arg("--replay")
        .arg(&recording)
        .arg("--api")
        .arg(format!("unix:{}", dir.path().join(API_SOCKET).display()))
        .arg("--serial")
        .arg(format!("file:{}", dir.path().join(CONSOLE_LOG).display()))
        .arg("--gdb")
        .arg(format!("unix:{}", dir.path().join(RSP_SOCKET).display()))
        .arg("--wait-gdb");
    let mut process = spawn_vmm(cmd, "vmdbg-vmm: ", QUIET)?;
    let api = ApiClient::new(dir.path().join(API_SOCKET));
    let end = match api.recording() {
        Ok((_, end)) => end,
        Err(e) => bail!(
            "vmdbg-vmm could not replay the recording: {e:#}; it said:\n{}",
            process.last_words(Duration::from_millis(500))
        ),
    };
    say(format!(
        "recorded {end} instructions ({}); starting the replay",
        match ending {
            RecordingEnd::Shutdown { .. } => "the guest stopped the machine",
            RecordingEnd::Limit => "the time limit ended it",
        }
    ));
    let control = KvmControl {
        process,
        connector: None,
        serial: None,
        api,
        agent: crate::engine::no_agent()?,
        vsock: dir.path().join("vsock.sock"),
        current: None,
        replay: Some(ending),
        ended_by_us: false,
        reported: false,
    };
    Ok(Box::new(EngineVm::new(
        format!("{}, replaying a recording", engine.describe()),
        dir,
        control.agent.clone(),
        Box::new(control),
    )))
}

/// Runs the recording to its end (see the module doc); how it ended.
fn record_run(
    engine: &KvmEngine,
    spec: &VmSpec,
    record: &RecordSpec,
    dir: &Path,
    recording: &Path,
) -> Result<RecordingEnd> {
    let mut cmd = Command::new(&engine.vmm);
    engine.boot_arguments(&mut cmd, spec);
    cmd.arg("--record-to")
        .arg(recording)
        .arg("--api")
        .arg(format!("unix:{}", dir.join(RECORD_API_SOCKET).display()))
        .arg("--serial")
        .arg(format!("file:{}", dir.join(RECORD_CONSOLE_LOG).display()));
    let mut process = spawn_vmm(cmd, "vmdbg-vmm: ", QUIET)?;
    let started = Instant::now();
    let mut told = Instant::now();
    loop {
        if let Some(exit) = process.try_exit() {
            return stopped_machine(&mut process, exit, recording);
        }
        if started.elapsed() >= record.limit {
            return save_at_limit(&mut process, dir, recording);
        }
        if told.elapsed() >= Duration::from_secs(1) {
            told = Instant::now();
            if let Some(progress) = &record.progress {
                let _ = progress.send(format!(
                    "recording: {:.0} s (ends when the guest stops the machine, or after {:.0} s)",
                    started.elapsed().as_secs_f64(),
                    record.limit.as_secs_f64()
                ));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The guest ended the recording run: vmdbg-vmm saved the recording as it
/// exited (its report says why, with CR2 for a fault).
fn stopped_machine(
    process: &mut VmProcess,
    exit: VmExit,
    recording: &Path,
) -> Result<RecordingEnd> {
    let said = process.last_words(Duration::from_secs(2));
    if !recording.is_file() {
        bail!("vmdbg-vmm ended ({exit}) without saving the recording; it said:\n{said}");
    }
    if exit == VmExit::Code(RECORDING_FAILED) {
        bail!("the recording could not go on; vmdbg-vmm said:\n{said}");
    }
    Ok(RecordingEnd::Shutdown {
        last_page_fault: crate::engine::register_in_dump(&said, "CR2"),
    })
}

/// The time limit: pause the recording, save it, end the process.
fn save_at_limit(process: &mut VmProcess, dir: &Path, recording: &Path) -> Result<RecordingEnd> {
    let api = ApiClient::new(dir.join(RECORD_API_SOCKET));
    let saved = api
        .set_state("Paused")
        .and_then(|()| api.save_recording(recording));
    let _ = process.wait_or_kill(Duration::ZERO);
    if let Err(e) = saved {
        bail!(
            "the recording could not be saved at its time limit: {e:#}; vmdbg-vmm said:\n{}",
            process.last_words(Duration::from_millis(500))
        );
    }
    Ok(RecordingEnd::Limit)
}

/// A replay on vmdbg-vmm: its stub runs backwards itself, so only where the
/// replay stands comes from the control API.
impl crate::engine::Replay for KvmControl {
    fn position(&mut self) -> Result<crate::engine::ReplayPosition> {
        let ending = self
            .replay
            .context("this vmdbg-vmm is not replaying a recording")?;
        let (at, end) = self.api.recording()?;
        Ok(crate::engine::ReplayPosition { at, end, ending })
    }
}

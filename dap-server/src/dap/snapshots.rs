//! VM snapshots in a debug session: the custom requests `vmdbg/snapshot
//! {name}`, `vmdbg/restore {name}` and `vmdbg/snapshots`. The engine saves
//! and restores the VM ([`crate::engine::Vm`]); the debugger core's view
//! is kept true across a restore (`Debugger::after_restore`: every cached
//! register, memory line and frame is dropped, the user's breakpoints and
//! watchpoints are put back into the restored stub, which holds the ones of
//! the snapshot's moment, not the session's), and a `stopped` event makes
//! the editor read the restored stop.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::session::Session;
use crate::debugger::target::TargetState;
use crate::engine::Vm;

impl Session {
    /// `vmdbg/snapshots`: the names of the VM's snapshots.
    pub(super) async fn list_snapshots(&mut self, _: Value) -> Result<Value> {
        let names = self
            .session_vm()
            .and_then(|vm| vm.support_snapshots())
            .map(|snapshots| snapshots.names())
            .unwrap_or_default();
        Ok(json!({ "snapshots": names.iter().map(|n| json!({ "name": n })).collect::<Vec<_>>() }))
    }

    /// `vmdbg/snapshot {name}`: saves the stopped VM.
    pub(super) async fn take_snapshot(&mut self, args: Value) -> Result<Value> {
        let command = "vmdbg/snapshot";
        let name = snapshot_name(command, &args)?;
        self.require_stopped()
            .with_context(|| format!("`{command}`"))?;
        let vm = self.session_vm().context(NO_VM)?;
        let describe = vm.describe();
        let mut snapshots = vm
            .support_snapshots()
            .with_context(|| no_snapshots(&describe))?;
        if snapshots.restore_ends_agent_channels() {
            bail!("`{command}`: {describe} {CHANNELS_END}");
        }
        let started = std::time::Instant::now();
        snapshots.take(&name)?;
        let ms = started.elapsed().as_millis();
        self.out.output(
            "console",
            format!("vmdbg: snapshot {name:?} taken in {ms} ms\n"),
        );
        Ok(json!({ "name": name, "milliseconds": ms }))
    }

    /// `vmdbg/restore {name}`: the VM back at a snapshot, and the stop there.
    pub(super) async fn restore_snapshot(&mut self, args: Value) -> Result<Value> {
        let command = "vmdbg/restore";
        let name = snapshot_name(command, &args)?;
        self.require_stopped()
            .with_context(|| format!("`{command}`"))?;
        let vm = self.session_vm().context(NO_VM)?;
        let describe = vm.describe();
        let started = std::time::Instant::now();
        vm.support_snapshots()
            .with_context(|| no_snapshots(&describe))?
            .restore(&name)?;
        self.dbg.after_restore().await?;
        let ms = started.elapsed().as_millis();
        self.out.output(
            "console",
            format!("vmdbg: restored snapshot {name:?} in {ms} ms\n"),
        );
        let thread = self
            .dbg
            .target
            .as_ref()
            .map(|t| TargetState::thread_id(&t.thread))
            .unwrap_or(1);
        self.out
            .stopped("restore", thread)
            .description(format!("Restored snapshot {name}"))
            .send();
        Ok(json!({ "name": name, "milliseconds": ms }))
    }

    /// The VM this session started, if it started one through an engine.
    fn session_vm(&mut self) -> Option<&mut Box<dyn Vm>> {
        self.program.as_mut()?.vm_mut()
    }
}

/// The snapshot a request names.
fn snapshot_name(command: &str, args: &Value) -> Result<String> {
    args.get("name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .with_context(|| format!("`{command}` needs a string `name`"))
}

/// Why program sessions on the KVM engine take no snapshots yet.
const CHANNELS_END: &str = "drops the agent's vsock connection on a restore (the guest gets a transport reset, as under Firecracker), and this program's debugger runs over it: snapshots of program sessions need `\"engine\": \"qemu\"` for now (`vmdbg test` and warm starts use the KVM engine's snapshots)";

fn no_snapshots(describe: &str) -> String {
    format!("this session's VM ({describe}) takes no snapshots (a replay's positions are its recording's: use reverse execution)")
}

const NO_VM: &str = "this session has no VM of its own to snapshot (snapshots are for program sessions; attach sessions do not own their target)";

//! The control loop: the one owner of the VM and of every event source —
//! vCPU stops, the gdb listener and its connection, the control API
//! socket. gdb ([`crate::gdb`]) and the HTTP API ([`api`], in
//! Firecracker's shape) are its clients: while a debugger is attached the
//! gdb stub drives the vCPUs and this loop lends it the VM together with
//! the API (which then refuses to change the run state behind the
//! debugger's back).
//!
//! It does not build machines or know file formats: [`crate::vm`] builds,
//! [`crate::snapshot`] saves and restores.

pub mod action;
pub mod api;
pub mod http;

use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use vmdbg_gdb_common::listen::Listener;

use self::action::{Action, RecordingAction, RunState};
use self::http::{Request, Response};
use crate::debug::probe::HostDebugCaps;
use crate::devices::serial::SerialTarget;
use crate::error::{Error, Result};
use crate::gdb::{self, SessionEnd, SideEvents};
use crate::snapshot::{self, VmSnapshot};
use crate::vcpu::{VcpuEvent, VmEnd};
use crate::vm::Vm;
use crate::GdbOptions;

/// The event sources a control loop serves besides the VM.
pub struct Options {
    pub gdb: Option<GdbOptions>,
    /// `--api unix:PATH`: the HTTP control API.
    pub api: Option<PathBuf>,
    /// Where a VM loaded through the API puts its serial port.
    pub serial: SerialTarget,
    /// Do not start the vCPUs (a restored VM that waits for gdb or `PATCH
    /// /vm`).
    pub start_paused: bool,
    /// `--record-to FILE`: where the recording is saved when the VM ends.
    pub record_to: Option<PathBuf>,
    /// `--checkpoint-interval`: for a recording started through the API.
    pub checkpoint_interval: u64,
}

struct GdbServer {
    listener: Listener,
    host: HostDebugCaps,
}

pub struct Control {
    vm: Option<Vm>,
    record_to: Option<PathBuf>,
    gdb: Option<GdbServer>,
    /// `None` only while lent to a gdb session.
    service: Option<Box<Service>>,
}

/// Blocks until one of `fds` is readable; returns which are.
pub fn poll_readable(fds: &[RawFd]) -> std::io::Result<Vec<bool>> {
    crate::poll::readable(fds, None)
}

impl Control {
    /// `vm` is `None` for a VMM that waits for `PUT /snapshot/load`;
    /// `snapshot` is what the VM was restored from (a reset goes back to it).
    pub fn new(vm: Option<Vm>, snapshot: Option<VmSnapshot>, options: Options) -> Result<Self> {
        let api = options.api.as_deref().map(api::Server::bind).transpose()?;
        if vm.is_none() && api.is_none() {
            return Err(Error::Api(
                "no VM and no control API: give --kernel, --restore or --api".into(),
            ));
        }
        let mut paused = options.start_paused;
        let gdb = match &options.gdb {
            Some(opts) => {
                let listener =
                    Listener::bind(&opts.listen).map_err(|e| Error::Gdb(e.to_string()))?;
                let shown = format!("target remote {}", listener.target_remote_address());
                if opts.wait {
                    eprintln!("vmdbg-vmm: waiting for gdb: {shown}");
                    paused = true;
                } else {
                    eprintln!("vmdbg-vmm: gdb can attach with: {shown}");
                }
                let host = crate::debug::probe::probe(&crate::vm::open_kvm()?);
                tracing::info!("host debug capabilities: {host:?}");
                Some(GdbServer { listener, host })
            }
            None => None,
        };
        Ok(Self {
            vm,
            record_to: options.record_to.clone(),
            gdb,
            service: Some(Box::new(Service {
                api,
                snapshot,
                paused,
                serial: options.serial,
                ended: None,
                checkpoint_interval: options.checkpoint_interval,
            })),
        })
    }

    fn service(&mut self) -> &mut Service {
        self.service
            .as_mut()
            .expect("the service is back from the gdb session")
    }

    /// Runs until the guest ends the VM, a debugger kills it, or it
    /// fails; then saves the recording where `--record-to` says.
    pub fn run(mut self) -> Result<VmEnd> {
        let end = self.serve_until_end()?;
        if let (Some(path), Some(vm)) = (&self.record_to, &self.vm) {
            if vm.recorder.is_none() {
                eprintln!(
                    "vmdbg-vmm: no recording to save to {}: it was stopped",
                    path.display()
                );
                return Ok(end);
            }
            crate::record::save(vm, path)?;
            let recorded = vm
                .recorder
                .as_ref()
                .map_or(0, |r| crate::record::lock(r).end);
            eprintln!(
                "vmdbg-vmm: recording of {recorded} instructions saved to {}",
                path.display()
            );
        }
        Ok(end)
    }

    fn serve_until_end(&mut self) -> Result<VmEnd> {
        if !self.service().paused {
            if let Some(vm) = &mut self.vm {
                run_all(vm)?;
            }
        }
        loop {
            if let Some(end) = self.service().ended.take() {
                return Ok(end);
            }
            let mut fds = Vec::new();
            if let Some(vm) = &self.vm {
                fds.push(vm.events_fd());
            }
            let api_fds = self.service().fds();
            let api_at = fds.len();
            fds.extend(&api_fds);
            let gdb_at = fds.len();
            if let (Some(g), Some(_)) = (&self.gdb, &self.vm) {
                fds.push(g.listener.as_raw_fd());
            }
            let ready = poll_readable(&fds).map_err(|e| Error::Vcpu(format!("poll: {e}")))?;
            let paused = self.service().paused;
            if let Some(vm) = &mut self.vm {
                while let Some(event) = vm.poll_event() {
                    match event {
                        VcpuEvent::VmEnded { end, .. } => return Ok(end),
                        VcpuEvent::Record { stop, .. } => {
                            if let Some(end) = record_end(stop) {
                                return Ok(end);
                            }
                        }
                        // A stop nobody waits for (a pause request a
                        // breakpoint overtook): go on unless paused.
                        other if !paused => vm.run_vcpu(other.vcpu())?,
                        _ => {}
                    }
                }
            }
            if ready[api_at..gdb_at].iter().any(|&r| r) {
                let mut vm = VmAccess::Owned(&mut self.vm);
                self.service
                    .as_mut()
                    .expect("the service is here outside gdb sessions")
                    .serve(&mut vm);
            }
            if ready.get(gdb_at).copied().unwrap_or(false) {
                if let Some(end) = self.gdb_session()? {
                    return Ok(end);
                }
            }
        }
    }

    /// Serves one debugger until it detaches (the guest runs on), kills the
    /// VM, or the VM ends.
    fn gdb_session(&mut self) -> Result<Option<VmEnd>> {
        let Some(server) = &self.gdb else {
            return Ok(None);
        };
        let stream = server
            .listener
            .accept()
            .map_err(|e| Error::Gdb(format!("accepting a connection: {e}")))?;
        let host = server.host.clone();
        let mut vm = self.vm.take().expect("gdb is polled only with a VM");
        for stop in vm.pause_all() {
            if let VcpuEvent::VmEnded { end, .. } = stop {
                return Ok(Some(end));
            }
        }
        let side: Box<dyn SideEvents> = self.service.take().expect("not lent twice");
        let (vm, side, outcome) = gdb::session(vm, host, stream, side);
        self.vm = Some(vm);
        let service = side
            .into_any()
            .downcast::<Service>()
            .expect("the side events lent are the service");
        self.service = Some(service);
        match outcome? {
            SessionEnd::Ended(end) => Ok(Some(end)),
            SessionEnd::Killed => {
                eprintln!("vmdbg-vmm: killed by the debugger");
                Ok(Some(VmEnd::Guest { status: 0 }))
            }
            SessionEnd::Detached => {
                // The session let every vCPU run on.
                self.service().paused = false;
                Ok(None)
            }
        }
    }
}

/// How a recording's stop ends a VM that runs with no debugger: a
/// replayed file at its end, a divergence or a failed recording.
fn record_end(stop: crate::record::Stop) -> Option<VmEnd> {
    use crate::error::exit_status::RECORDING;
    use crate::record::Stop;
    match stop {
        Stop::End => {
            eprintln!("vmdbg-vmm: replayed to the end of the recording");
            Some(VmEnd::Guest { status: 0 })
        }
        Stop::Diverged(why) | Stop::Failed(why) => Some(VmEnd::Fatal {
            status: RECORDING,
            report: format!("vmdbg-vmm: {why}\n"),
        }),
        _ => None,
    }
}

/// Starts every vCPU that is not running.
fn run_all(vm: &mut Vm) -> Result<()> {
    for i in 0..vm.vcpu_count() {
        if !vm.vcpu(i).is_some_and(|v| v.is_running()) {
            vm.run_vcpu(i)?;
        }
    }
    Ok(())
}

/// The VM as a request sees it.
pub enum VmAccess<'a> {
    /// The control loop's own: the API controls the run state, and may
    /// create the VM (`PUT /snapshot/load` on an empty VMM).
    Owned(&'a mut Option<Vm>),
    /// Lent to a gdb session: the debugger controls the run state.
    Debugged(&'a mut Vm),
}

impl VmAccess<'_> {
    fn vm(&mut self) -> Option<&mut Vm> {
        match self {
            Self::Owned(vm) => vm.as_mut(),
            Self::Debugged(vm) => Some(vm),
        }
    }
}

/// The control API's state: the socket, the snapshot a reset goes back
/// to, and whether the API paused the VM.
pub struct Service {
    api: Option<api::Server>,
    snapshot: Option<VmSnapshot>,
    paused: bool,
    serial: SerialTarget,
    /// The VM ended while a request stopped it.
    ended: Option<VmEnd>,
    checkpoint_interval: u64,
}

impl SideEvents for Service {
    fn fds(&self) -> Vec<RawFd> {
        self.api.as_ref().map(api::Server::fds).unwrap_or_default()
    }

    fn serve_debugged(&mut self, vm: &mut Vm) {
        self.serve(&mut VmAccess::Debugged(vm));
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }
}

fn failed(e: Error) -> Response {
    Response::fault(400, e.to_string())
}

const DEBUGGER_OWNS_RUN_STATE: &str =
    "a debugger is attached and controls whether the VM runs; pause or resume it from gdb";
const DEBUGGER_RUNNING: &str =
    "a debugger is attached and the VM is running; interrupt it in gdb first";

impl Service {
    fn fds(&self) -> Vec<RawFd> {
        SideEvents::fds(self)
    }

    fn serve(&mut self, vm: &mut VmAccess) {
        let Some(mut server) = self.api.take() else {
            return;
        };
        server.serve(|req| self.handle(req, vm));
        self.api = Some(server);
    }

    fn state_name(&self, vm: &mut VmAccess) -> &'static str {
        match vm {
            VmAccess::Owned(None) => "Not started",
            VmAccess::Owned(Some(_)) if self.paused => "Paused",
            VmAccess::Owned(Some(_)) => "Running",
            VmAccess::Debugged(vm) if vm.any_running() => "Running",
            VmAccess::Debugged(_) => "Paused",
        }
    }

    fn handle(&mut self, req: &Request, vm: &mut VmAccess) -> Response {
        tracing::debug!("control API: {} {}", req.method, req.path);
        let result = match action::parse(req) {
            Ok(Action::Describe) => Ok(Response::json(
                200,
                &serde_json::json!({
                    "id": "vmdbg-vmm",
                    "state": self.state_name(vm),
                    "vmm_version": env!("CARGO_PKG_VERSION"),
                    "app_name": "vmdbg-vmm",
                }),
            )),
            Ok(Action::SetState(state)) => self.set_state(state, vm),
            Ok(Action::CreateSnapshot { state, memory }) => self.create(&state, &memory, vm),
            Ok(Action::LoadSnapshot {
                state,
                memory,
                resume,
            }) => self.load(&state, &memory, resume, vm),
            Ok(Action::Reset) => self.reset(vm),
            Ok(Action::RecordingStatus) => self.recording_status(vm),
            Ok(Action::Recording(action)) => self.recording_action(action, vm),
            Err(refusal) => Err(refusal),
        };
        result.unwrap_or_else(|r| r)
    }

    /// `GET /vmdbg/recording`: whether a recording is on, since when, how
    /// much it has recorded and logged; where it is when the VM is stopped.
    fn recording_status(
        &mut self,
        access: &mut VmAccess,
    ) -> std::result::Result<Response, Response> {
        let Some(vm) = access.vm() else {
            return Err(Response::fault(400, "no VM yet: load a snapshot first"));
        };
        let (Some(shared), Some(progress)) = (&vm.recorder, &vm.record_progress) else {
            return Ok(Response::json(
                200,
                &serde_json::json!({
                    "recording": false,
                    "state": "Off",
                    "recordable": vm.shape.recordable,
                }),
            ));
        };
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        let mut status = serde_json::json!({
            "recording": true,
            "started": if progress.mid_run { "running" } else { "boot" },
            "started_unix_ms": progress.started_unix_ms,
            "recorded": load(&progress.recorded),
            "log_entries": load(&progress.log_entries),
            "log_bytes": load(&progress.log_bytes),
        });
        // The vCPU holds the recorder while it runs.
        match shared.try_lock() {
            Err(_) => status["state"] = "Running".into(),
            Ok(r) => {
                status["state"] = "Stopped".into();
                status["icount"] = r.icount.into();
                status["live"] = r.live.into();
                status["checkpoints"] = r.checkpoint_count().into();
                status["checkpoint_interval"] = r.interval.into();
                status["diverged"] = r.diverged.clone().into();
            }
        }
        Ok(Response::json(200, &status))
    }

    /// `PUT /vmdbg/recording {"action": "start" | "stop" | "save", ...}`.
    /// A VM the API let run is paused at an instruction boundary for the
    /// action and resumed after it; under a debugger it must be stopped.
    fn recording_action(
        &mut self,
        action: RecordingAction,
        access: &mut VmAccess,
    ) -> std::result::Result<Response, Response> {
        match action {
            RecordingAction::Start { interval } => {
                let interval = interval.unwrap_or(self.checkpoint_interval);
                self.while_stopped(access, |vm| {
                    crate::record::start(vm, interval, true).map_err(failed)?;
                    eprintln!(
                        "vmdbg-vmm: recording started (checkpoint every {interval} instructions)"
                    );
                    Ok(Response::no_content())
                })
            }
            RecordingAction::Stop => self.while_stopped(access, |vm| {
                let recorded = crate::record::stop(vm).map_err(failed)?;
                eprintln!(
                    "vmdbg-vmm: recording stopped after {recorded} instructions; the VM runs live"
                );
                Ok(Response::no_content())
            }),
            RecordingAction::Save(path) => self.while_stopped(access, |vm| {
                crate::record::save(vm, &path).map_err(failed)?;
                Ok(Response::no_content())
            }),
        }
    }

    /// Runs `f` on the stopped VM: a VM the API let run is paused for it
    /// and resumed after (the run state stays as it was).
    fn while_stopped(
        &mut self,
        access: &mut VmAccess,
        f: impl FnOnce(&mut Vm) -> std::result::Result<Response, Response>,
    ) -> std::result::Result<Response, Response> {
        let was_running = matches!(access, VmAccess::Owned(Some(_))) && !self.paused;
        if was_running {
            if let Some(vm) = access.vm() {
                self.pause(vm);
            }
        }
        let result = self.stopped(access).and_then(f);
        if was_running && self.ended.is_none() {
            if let Some(vm) = access.vm() {
                run_all(vm).map_err(failed)?;
                self.paused = false;
            }
        }
        result
    }

    /// Stops every vCPU the API let run; a VM that ends meanwhile is kept
    /// for the control loop.
    fn pause(&mut self, vm: &mut Vm) {
        for stop in vm.pause_all() {
            if let VcpuEvent::VmEnded { end, .. } = stop {
                self.ended.get_or_insert(end);
            }
        }
        self.paused = true;
    }

    fn set_state(
        &mut self,
        state: RunState,
        access: &mut VmAccess,
    ) -> std::result::Result<Response, Response> {
        let VmAccess::Owned(slot) = access else {
            return Err(Response::fault(409, DEBUGGER_OWNS_RUN_STATE));
        };
        let Some(vm) = slot.as_mut() else {
            return Err(Response::fault(400, "no VM yet: load a snapshot first"));
        };
        match state {
            RunState::Paused => self.pause(vm),
            RunState::Resumed => {
                run_all(vm).map_err(failed)?;
                self.paused = false;
            }
        }
        Ok(Response::no_content())
    }

    /// The VM, stopped: paused through the API, or stopped by the debugger.
    fn stopped<'v>(&self, access: &'v mut VmAccess) -> std::result::Result<&'v mut Vm, Response> {
        match access {
            VmAccess::Owned(None) => Err(Response::fault(400, "no VM yet: load a snapshot first")),
            VmAccess::Owned(Some(_)) if !self.paused => Err(Response::fault(
                400,
                "the VM is running: pause it first (PATCH /vm {\"state\": \"Paused\"})",
            )),
            VmAccess::Debugged(vm) if vm.any_running() => {
                Err(Response::fault(409, DEBUGGER_RUNNING))
            }
            _ => Ok(access.vm().expect("checked above")),
        }
    }

    fn create(
        &mut self,
        state: &Path,
        memory: &Path,
        access: &mut VmAccess,
    ) -> std::result::Result<Response, Response> {
        let vm = self.stopped(access)?;
        let snap = snapshot::create(vm, state, memory).map_err(failed)?;
        self.snapshot = Some(snap);
        Ok(Response::no_content())
    }

    fn load(
        &mut self,
        state: &Path,
        memory: &Path,
        resume: bool,
        access: &mut VmAccess,
    ) -> std::result::Result<Response, Response> {
        if let VmAccess::Debugged(_) = access {
            if resume {
                return Err(Response::fault(409, DEBUGGER_OWNS_RUN_STATE));
            }
        }
        if let VmAccess::Owned(slot @ None) = access {
            let (vm, snap) =
                snapshot::restore_new(state, memory, &self.serial, None).map_err(failed)?;
            **slot = Some(vm);
            self.snapshot = Some(snap);
            self.paused = true;
        } else {
            let vm = self.stopped(access)?;
            let snap = snapshot::load_in_place(vm, state, memory).map_err(failed)?;
            self.snapshot = Some(snap);
        }
        if resume {
            if let Some(vm) = access.vm() {
                run_all(vm).map_err(failed)?;
                self.paused = false;
            }
        }
        Ok(Response::no_content())
    }

    /// Back to the last snapshot in place; the run state stays as it was.
    fn reset(&mut self, access: &mut VmAccess) -> std::result::Result<Response, Response> {
        let Some(snap) = self.snapshot.take() else {
            return Err(Response::fault(
                400,
                "no snapshot to reset to: PUT /snapshot/create or /snapshot/load first",
            ));
        };
        let result = self.while_stopped(access, |vm| {
            snapshot::reset(vm, &snap).map_err(failed)?;
            Ok(Response::no_content())
        });
        self.snapshot = Some(snap);
        result
    }
}

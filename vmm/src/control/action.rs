//! The control API's requests as one typed enum, as Firecracker parses
//! its API into `ParsedRequest`s: the method, the path and the JSON body
//! are checked here, before anything touches the VM, and every refusal is
//! a 400 naming the field. The control loop ([`super`]) only matches on an
//! [`Action`]; it keeps the checks that need the VM (is it stopped, does a
//! debugger own the run state).
//!
//! Pure: no VM, no files. The `control_api` fuzz target drives it.

use std::path::PathBuf;

use serde::Deserialize;

use super::http::{Request, Response};

/// One request of the control API, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `GET /`: the instance's description.
    Describe,
    /// `PATCH /vm {"state": "Paused" | "Resumed"}`.
    SetState(RunState),
    /// `PUT /snapshot/create`.
    CreateSnapshot { state: PathBuf, memory: PathBuf },
    /// `PUT /snapshot/load`.
    LoadSnapshot {
        state: PathBuf,
        memory: PathBuf,
        resume: bool,
    },
    /// `PUT /vmdbg/reset`: back to the last snapshot in place.
    Reset,
    /// `GET /vmdbg/recording`.
    RecordingStatus,
    /// `PUT /vmdbg/recording {"action": ...}`.
    Recording(RecordingAction),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Paused,
    Resumed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordingAction {
    /// Start recording; `interval` instructions between checkpoints (at
    /// least 1), or the VMM's default.
    Start {
        interval: Option<u64>,
    },
    Stop,
    Save(PathBuf),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VmStateBody {
    state: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    snapshot_path: PathBuf,
    mem_file_path: PathBuf,
    #[serde(default)]
    snapshot_type: Option<String>,
    /// Firecracker's snapshot format version: accepted, not used (the
    /// state file carries its own).
    #[serde(default)]
    #[allow(dead_code)]
    version: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemBackend {
    backend_type: String,
    backend_path: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // Firecracker's diff-snapshot flags: accepted, not used
struct LoadBody {
    snapshot_path: PathBuf,
    #[serde(default)]
    mem_backend: Option<MemBackend>,
    /// Firecracker's older spelling of `mem_backend`.
    #[serde(default)]
    mem_file_path: Option<PathBuf>,
    #[serde(default)]
    resume_vm: bool,
    #[serde(default)]
    enable_diff_snapshots: bool,
    #[serde(default)]
    track_dirty_pages: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordingBody {
    action: String,
    #[serde(default)]
    path: Option<PathBuf>,
    /// For `start`: instructions between checkpoints.
    #[serde(default)]
    checkpoint_interval: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    action_type: String,
}

fn fault(why: impl Into<String>) -> Response {
    Response::fault(400, why)
}

fn body<T: serde::de::DeserializeOwned>(req: &Request) -> Result<T, Response> {
    serde_json::from_slice(&req.body)
        .map_err(|e| fault(format!("{} {}: bad body: {e}", req.method, req.path)))
}

/// The action `req` asks for, or the 400 that answers it.
pub fn parse(req: &Request) -> Result<Action, Response> {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/") => Ok(Action::Describe),
        ("PATCH", "/vm") => run_state(body(req)?),
        ("PUT", "/snapshot/create") => create(body(req)?),
        ("PUT", "/snapshot/load") => load(body(req)?),
        ("PUT", "/vmdbg/reset") => Ok(Action::Reset),
        ("GET", "/vmdbg/recording") => Ok(Action::RecordingStatus),
        ("PUT", "/vmdbg/recording") => recording(body(req)?).map(Action::Recording),
        ("PUT", "/actions") => Err(instance_action(body(req)?)),
        (m, p) => Err(fault(format!(
            "Invalid request method and/or path: {m} {p}."
        ))),
    }
}

fn run_state(b: VmStateBody) -> Result<Action, Response> {
    match b.state.as_str() {
        "Paused" => Ok(Action::SetState(RunState::Paused)),
        "Resumed" => Ok(Action::SetState(RunState::Resumed)),
        other => Err(fault(format!(
            "state `{other}`: use \"Paused\" or \"Resumed\""
        ))),
    }
}

fn create(b: CreateBody) -> Result<Action, Response> {
    if let Some(t) = b.snapshot_type.as_deref().filter(|t| *t != "Full") {
        return Err(fault(format!(
            "snapshot_type `{t}`: only Full snapshots are supported"
        )));
    }
    Ok(Action::CreateSnapshot {
        state: b.snapshot_path,
        memory: b.mem_file_path,
    })
}

fn load(b: LoadBody) -> Result<Action, Response> {
    let memory = match (b.mem_backend, b.mem_file_path) {
        (Some(m), None) if m.backend_type == "File" => m.backend_path,
        (Some(m), None) => {
            return Err(fault(format!(
                "backend_type `{}`: only File is supported",
                m.backend_type
            )))
        }
        (None, Some(p)) => p,
        _ => {
            return Err(fault(
                "give the memory file as mem_backend {\"backend_type\": \"File\", \"backend_path\": ...}",
            ))
        }
    };
    Ok(Action::LoadSnapshot {
        state: b.snapshot_path,
        memory,
        resume: b.resume_vm,
    })
}

fn recording(b: RecordingBody) -> Result<RecordingAction, Response> {
    let action = b.action.as_str();
    if b.path.is_some() && action != "save" {
        return Err(fault(format!(
            "action `{action}` takes no `path` (only \"save\" does)"
        )));
    }
    if b.checkpoint_interval.is_some() && action != "start" {
        return Err(fault(format!(
            "action `{action}` takes no `checkpoint_interval` (only \"start\" does)"
        )));
    }
    if b.checkpoint_interval == Some(0) {
        return Err(fault("checkpoint_interval must be at least 1 instruction"));
    }
    match (action, b.path) {
        ("start", None) => Ok(RecordingAction::Start {
            interval: b.checkpoint_interval,
        }),
        ("stop", None) => Ok(RecordingAction::Stop),
        ("save", Some(path)) => Ok(RecordingAction::Save(path)),
        ("save", None) => Err(fault("action `save` needs a `path`")),
        (other, _) => Err(fault(format!(
            "action `{other}`: use \"start\", \"stop\" or \"save\""
        ))),
    }
}

/// `PUT /actions`: Firecracker's instance actions; none applies to this
/// machine, each refusal says why.
fn instance_action(b: ActionBody) -> Response {
    match b.action_type.as_str() {
        "SendCtrlAltDel" => fault(
            "SendCtrlAltDel needs an i8042 keyboard controller, which vmdbg-vmm's machine does not have",
        ),
        other => fault(format!(
            "unknown action_type `{other}`; this VMM takes SendCtrlAltDel"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str, body: &str) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            body: body.as_bytes().to_vec(),
            close: false,
        }
    }

    fn refusal(method: &str, path: &str, body: &str) -> String {
        let response = parse(&request(method, path, body)).expect_err("refused");
        assert_eq!(response.status, 400);
        let body: serde_json::Value =
            serde_json::from_str(response.body.as_deref().expect("a body")).expect("JSON");
        body["fault_message"]
            .as_str()
            .expect("a fault_message")
            .to_string()
    }

    #[test]
    fn firecracker_shaped_bodies_become_actions() {
        assert_eq!(
            parse(&request(
                "PUT",
                "/snapshot/load",
                r#"{"snapshot_path": "s", "mem_backend": {"backend_type": "File", "backend_path": "m"}, "resume_vm": true}"#
            )),
            Ok(Action::LoadSnapshot {
                state: "s".into(),
                memory: "m".into(),
                resume: true
            })
        );
        assert_eq!(
            parse(&request(
                "PUT",
                "/snapshot/load",
                r#"{"snapshot_path": "s", "mem_file_path": "m"}"#
            )),
            Ok(Action::LoadSnapshot {
                state: "s".into(),
                memory: "m".into(),
                resume: false
            })
        );
        assert_eq!(
            parse(&request("PATCH", "/vm", r#"{"state": "Paused"}"#)),
            Ok(Action::SetState(RunState::Paused))
        );
        assert_eq!(
            parse(&request(
                "PUT",
                "/vmdbg/recording",
                r#"{"action": "start", "checkpoint_interval": 50}"#
            )),
            Ok(Action::Recording(RecordingAction::Start {
                interval: Some(50)
            }))
        );
    }

    #[test]
    fn refusals_name_the_field_and_the_fix() {
        assert!(refusal("PATCH", "/vm", r#"{"state": "Stopped"}"#)
            .contains("state `Stopped`: use \"Paused\" or \"Resumed\""));
        assert!(
            refusal("PATCH", "/vm", r#"{"state": "Paused", "x": 1}"#).contains("unknown field `x`")
        );
        assert!(refusal(
            "PUT",
            "/snapshot/create",
            r#"{"snapshot_path": "s", "mem_file_path": "m", "snapshot_type": "Diff"}"#
        )
        .contains("only Full snapshots"));
        assert!(refusal(
            "PUT",
            "/snapshot/load",
            r#"{"snapshot_path": "s", "mem_backend": {"backend_type": "Uffd", "backend_path": "m"}}"#
        )
        .contains("backend_type `Uffd`"));
        assert!(refusal(
            "PUT",
            "/vmdbg/recording",
            r#"{"action": "start", "checkpoint_interval": 0}"#
        )
        .contains("at least 1"));
        assert!(
            refusal("PUT", "/vmdbg/recording", r#"{"action": "save"}"#).contains("needs a `path`")
        );
        assert!(refusal("DELETE", "/vm", "").contains("Invalid request method and/or path"));
    }
}

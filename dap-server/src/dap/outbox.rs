//! What goes to the DAP client: responses and events with increasing
//! `seq`, and the one place a `stopped` event is built ([`Outbox::stopped`]):
//! every stop of the session, whatever found it, reports itself through it,
//! so all stops carry the same fields.

use std::cell::Cell;
use std::rc::Rc;

use anyhow::Result;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::protocol::{self, Response};
use crate::debugger;
use crate::debugger::breakpoints::UserBreakpoint;
use crate::debugger::target::TargetState;

/// Sends responses and events to the client with increasing `seq`. Its
/// clones share the channel and the count: the debugger core reports
/// through one ([`debugger::Events`]) in order with the session's own.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Value>,
    seq: Rc<Cell<i64>>,
}

impl Outbox {
    pub fn new(tx: mpsc::UnboundedSender<Value>) -> Self {
        Self {
            tx,
            seq: Rc::new(Cell::new(0)),
        }
    }

    /// A `stopped` event for `thread`, sent by [`Stopped::send`]. The
    /// stubs stop the whole machine or program (all-stop), so every stop
    /// says all threads stopped.
    pub fn stopped(&mut self, reason: &str, thread: i64) -> Stopped<'_> {
        Stopped {
            body: json!({ "reason": reason, "threadId": thread, "allThreadsStopped": true }),
            out: self,
        }
    }

    /// `thread` events for the threads that exited or started between two
    /// lists of the stub's threads (both the stop that finds a new thread
    /// and a later `threads` request must agree on what was announced).
    pub fn announce_threads(&mut self, before: &[String], now: &[String]) {
        let exited = before
            .iter()
            .filter(|t| !now.contains(t))
            .map(|t| ("exited", t));
        let started = now
            .iter()
            .filter(|t| !before.contains(t))
            .map(|t| ("started", t));
        for (reason, thread) in exited.chain(started) {
            self.event(
                "thread",
                json!({ "reason": reason, "threadId": TargetState::thread_id(thread) }),
            );
        }
    }

    fn next_seq(&mut self) -> i64 {
        self.seq.set(self.seq.get() + 1);
        self.seq.get()
    }

    pub fn respond(&mut self, request_seq: i64, command: &str, result: Result<Value>) {
        let seq = self.next_seq();
        let response = match result {
            Ok(body) => Response {
                seq,
                kind: "response",
                request_seq,
                success: true,
                command: command.to_string(),
                message: None,
                body: (!body.is_null()).then_some(body),
            },
            Err(e) => Response {
                seq,
                kind: "response",
                request_seq,
                success: false,
                command: command.to_string(),
                message: Some(format!("{e:#}")),
                body: Some(
                    json!({ "error": { "id": 1, "format": format!("{e:#}"), "showUser": false } }),
                ),
            },
        };
        let _ = self
            .tx
            .send(serde_json::to_value(response).expect("a response serializes"));
    }

    pub fn event(&mut self, event: &str, body: Value) {
        let seq = self.next_seq();
        let event = protocol::Event {
            seq,
            kind: "event",
            event: event.to_string(),
            body: (!body.is_null()).then_some(body),
        };
        let _ = self
            .tx
            .send(serde_json::to_value(event).expect("an event serializes"));
    }

    pub fn output(&mut self, category: &str, text: impl Into<String>) {
        self.event(
            "output",
            json!({ "category": category, "output": text.into() }),
        );
    }
}

impl debugger::Events for Outbox {
    fn output(&mut self, category: &'static str, text: String) {
        Outbox::output(self, category, text);
    }

    fn breakpoint_changed(&mut self, bp: &UserBreakpoint) {
        self.event(
            "breakpoint",
            json!({ "reason": "changed", "breakpoint": super::breakpoints::to_dap(bp) }),
        );
    }

    fn threads_changed(&mut self, before: &[String], now: &[String]) {
        self.announce_threads(before, now);
    }

    fn continued(&mut self, thread: i64) {
        self.event(
            "continued",
            json!({ "threadId": thread, "allThreadsContinued": true }),
        );
    }
}

/// A `stopped` event being built ([`Outbox::stopped`]).
#[must_use = "a stopped event goes out only on `send()`"]
pub struct Stopped<'a> {
    out: &'a mut Outbox,
    body: Value,
}

impl Stopped<'_> {
    /// Why, in words: the client shows it beside the stopped thread.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.body["description"] = json!(description.into());
        self
    }

    /// The short label of the stop (a signal's or exception's name).
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.body["text"] = json!(text.into());
        self
    }

    /// The user breakpoints (line, function or data) the stop is at.
    pub fn hit_breakpoints(mut self, ids: &[i64]) -> Self {
        self.body["hitBreakpointIds"] = json!(ids);
        self
    }

    /// vmdbg's own fields for a recorded write found backwards: the value
    /// before and after it (DAP has none for this).
    pub fn change(mut self, old: impl Into<String>, new: impl Into<String>) -> Self {
        self.body["oldValue"] = json!(old.into());
        self.body["newValue"] = json!(new.into());
        self
    }

    pub fn send(self) {
        self.out.event("stopped", self.body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field names are the DAP specification's `StoppedEvent` body
    /// (plus vmdbg's oldValue/newValue); a misspelt one is silently
    /// ignored by every client, so they are checked by name here.
    #[test]
    fn stopped_event_has_the_dap_field_names() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut out = Outbox::new(tx);
        out.stopped("data breakpoint", 3)
            .hit_breakpoints(&[7, 9])
            .description("why")
            .text("short")
            .change("0x1", "0x2")
            .send();
        out.stopped("pause", 1).send();
        let first = rx.try_recv().unwrap();
        assert_eq!(first["type"], "event");
        assert_eq!(first["event"], "stopped");
        assert_eq!(
            first["body"],
            json!({ "reason": "data breakpoint", "threadId": 3, "allThreadsStopped": true,
                    "hitBreakpointIds": [7, 9], "description": "why", "text": "short",
                    "oldValue": "0x1", "newValue": "0x2" })
        );
        let second = rx.try_recv().unwrap();
        assert!(second["seq"].as_i64() > first["seq"].as_i64());
        assert_eq!(
            second["body"],
            json!({ "reason": "pause", "threadId": 1, "allThreadsStopped": true })
        );
    }

    /// The debugger core reports through a clone of the session's Outbox:
    /// what either sends must reach the client in the order it was sent,
    /// numbered by one count (a client drops or reorders by `seq`).
    #[test]
    fn clones_number_in_one_sequence() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut session = Outbox::new(tx);
        let mut core: Box<dyn debugger::Events> = Box::new(session.clone());
        session.output("console", "from the session\n");
        core.output("console", "from the core\n".into());
        session.respond(7, "next", Ok(Value::Null));
        core.continued(3);
        let sent: Vec<Value> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        let seqs: Vec<i64> = sent.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
        assert_eq!(sent[1]["body"]["output"], "from the core\n");
        assert_eq!(sent[2]["request_seq"], 7);
        assert_eq!(
            sent[3]["body"],
            json!({ "threadId": 3, "allThreadsContinued": true })
        );
    }
}

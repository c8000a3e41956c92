//! The hooks of Claude Code inside an agent that baton started (`baton hook claude-…`). A hook
//! reads the event's JSON on stdin, checks it, and hands it to the agent's runner as a file in
//! `agents/<name>/events/` (temp file, then rename); the runner, the only writer of `status.json`
//! and `done.json`, acts on it. A hook never blocks Claude Code: it always exits 0, at once; a
//! malformed event is noted in the agent's log; outside a baton agent (`BATON_AGENT` unset) it
//! does nothing.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::exit::Exit;
use crate::protocol::{store, Store};
use crate::sys::time;

/// The hook kinds, with the `hook_event_name` each expects from Claude Code.
pub const KINDS: [(&str, &str); 8] = [
    ("claude-session-start", "SessionStart"),
    ("claude-prompt", "UserPromptSubmit"),
    ("claude-stop", "Stop"),
    ("claude-stop-failure", "StopFailure"),
    ("claude-notification", "Notification"),
    ("claude-pre-tool", "PreToolUse"),
    ("claude-post-tool", "PostToolUse"),
    ("tmux-exit", ""),
];

/// Claude Code's events come with at most this much JSON (a long final message fits easily).
const MAX_EVENT: u64 = 64 << 20;

/// One event as the runner reads it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Event {
    /// The `hook_event_name` (or `TmuxExit`).
    pub event: String,
    pub data: serde_json::Value,
}

/// Runs agent hook `kind` (one of `KINDS`); `None` if `kind` is not one of them.
pub fn run(kind: &str) -> Option<anyhow::Result<Exit>> {
    let expected = KINDS.iter().find(|(k, _)| *k == kind).map(|(_, e)| *e)?;
    Some(handle(kind, expected))
}

fn handle(kind: &str, expected: &str) -> anyhow::Result<Exit> {
    let Some(agent) = std::env::var("BATON_AGENT")
        .ok()
        .filter(|a| crate::protocol::agent::validate_id(a).is_ok())
    else {
        return Ok(Exit::Ok); // not inside an agent baton started
    };
    let Ok(store) = Store::open() else {
        return Ok(Exit::Ok);
    };
    let Ok(Some(paths)) = store.agent(&agent) else {
        return Ok(Exit::Ok);
    };
    let note = |msg: &str| {
        if let Ok(mut log) = store::open_append(&paths.log) {
            let _ = writeln!(log, "{} [baton] hook {kind}: {msg}", time::now_rfc3339());
        }
    };
    let event = if expected.is_empty() {
        Event {
            event: "TmuxExit".into(),
            data: serde_json::Value::Null,
        }
    } else {
        let mut input = Vec::new();
        if let Err(e) = std::io::stdin().take(MAX_EVENT).read_to_end(&mut input) {
            note(&format!("reading the event: {e}"));
            return Ok(Exit::Ok);
        }
        let data: serde_json::Value = match serde_json::from_slice(&input) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            Ok(_) => {
                note("ignored: the event is not a JSON object");
                return Ok(Exit::Ok);
            }
            Err(e) => {
                note(&format!("ignored a malformed event: {e}"));
                return Ok(Exit::Ok);
            }
        };
        match data.get("hook_event_name").and_then(|n| n.as_str()) {
            Some(name) if name == expected => {}
            other => {
                note(&format!(
                    "ignored: hook_event_name is {other:?}, expected {expected:?}"
                ));
                return Ok(Exit::Ok);
            }
        }
        Event {
            event: expected.into(),
            data,
        }
    };
    let dir = &paths.events;
    let name = format!(
        "{:013}-{:08x}.json",
        time::now_ms(),
        store::random_u64() as u32
    );
    let written =
        store::ensure_dir(dir).and_then(|_| crate::protocol::write_json(&dir.join(name), &event));
    if let Err(e) = written {
        note(&format!("could not hand the event to the runner: {e}"));
    }
    Ok(Exit::Ok)
}

/// Takes the pending events out of `dir`, oldest first. Malformed files are dropped.
pub fn take_events(dir: &std::path::Path) -> Vec<Event> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.') && n.ends_with(".json"))
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|n| {
            let path = dir.join(&n);
            let event = crate::protocol::read_json::<Event>(&path).ok().flatten();
            let _ = std::fs::remove_file(&path);
            event
        })
        .collect()
}

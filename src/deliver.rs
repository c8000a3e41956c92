//! The coordinator's side of the protocol: write a task folder completely, then drop its id into
//! the agent's inbox (`inbox/tmp` → rename → `inbox/new`); and take a task back, or ask the agent
//! to stop it.
//!
//! Invariant: a task id appears in an inbox only once its folder holds `task.json` and `prompt`.

use std::fs;
use std::io;
use std::time::Duration;

use crate::error::{Error, IoContext, Result};
use crate::protocol::{self, Done, State, Task};
use crate::store::{self, AgentPaths, Store};
use crate::time;

/// What a caller asks for.
pub struct Request<'a> {
    pub prompt: &'a [u8],
    pub priority: u8,
    pub timeout: Option<Duration>,
}

/// A delivered task.
#[derive(Clone, Debug)]
pub struct Delivered {
    pub agent: String,
    pub task_id: String,
    pub entry: String,
    pub created_ms: u64,
}

/// Writes the task folder and drops the task into `agent`'s inbox. On failure nothing is left
/// behind.
pub fn deliver(store: &Store, agent: &AgentPaths, req: &Request) -> Result<Delivered> {
    let task_id = store::new_task_id();
    let dir = store.task_dir(&task_id);
    let now = time::now_ms();
    let task = Task {
        task_id: task_id.clone(),
        agent: agent.name().into(),
        created_at: time::rfc3339(now),
        created_ms: now,
        priority: req.priority.min(9),
        deadline_ms: req.timeout.map(|t| now + t.as_millis() as u64),
        caller_pid: std::process::id(),
    };
    let entry = protocol::inbox_entry(task.priority, &task_id);
    let written = (|| {
        store::ensure_dir(&dir)?;
        store::write_atomic(&dir, "prompt", req.prompt)?;
        protocol::write_json(&dir, "task.json", &task)?;
        let tmp = agent.inbox_tmp.join(&entry);
        fs::write(&tmp, format!("{task_id}\n")).during("writing the inbox entry", &tmp)?;
        let new = agent.inbox_new.join(&entry);
        fs::rename(&tmp, &new).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::io("delivering into", new, e)
        })
    })();
    if let Err(e) = written {
        let _ = fs::remove_dir_all(&dir);
        return Err(e);
    }
    Ok(Delivered {
        agent: agent.name().into(),
        task_id,
        entry,
        created_ms: now,
    })
}

/// What `withdraw_or_cancel` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The task was still queued: it was taken out of the inbox and marked with `state`.
    Withdrawn,
    /// An agent had claimed it: a cancel request was written for the runner.
    Requested,
    /// It had already finished.
    AlreadyDone,
}

/// Takes a queued task back out of the inbox, or asks the runner to stop it. `state` is what the
/// task ends as (`cancelled` or `timeout`).
pub fn withdraw_or_cancel(
    store: &Store,
    agent: &AgentPaths,
    task_id: &str,
    state: State,
) -> Result<Stopped> {
    let dir = store.task_dir(task_id);
    if store::exists(&dir.join("done.json")) {
        return Ok(Stopped::AlreadyDone);
    }
    if let Some(entry) = find_entry(&agent.inbox_new, task_id)? {
        // Renaming the entry away is atomic against a runner's claim: exactly one of us wins.
        let from = agent.inbox_new.join(&entry);
        let to = agent.inbox_tmp.join(format!("withdrawn-{entry}"));
        match fs::rename(&from, &to) {
            Ok(()) => {
                let _ = fs::remove_file(&to);
                let done = Done::new(task_id, agent.name(), state)
                    .with_error(format!("{} before an agent claimed it", state_words(state)));
                finish_once(store, &done)?;
                return Ok(Stopped::Withdrawn);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {} // claimed just now
            Err(e) => return Err(Error::io("withdrawing", from, e)),
        }
    }
    if store::exists(&dir.join("done.json")) {
        return Ok(Stopped::AlreadyDone);
    }
    store::write_atomic(&dir, "cancel", state.as_str().as_bytes())?;
    Ok(Stopped::Requested)
}

fn state_words(state: State) -> &'static str {
    match state {
        State::Timeout => "timed out",
        _ => "cancelled",
    }
}

/// Tells `agent`'s runner (if it listens) that a task it never ran has its `done.json`, so that
/// callers watching that task through the runner wake up. Best effort: they also wake when the
/// runner goes away. Never called by the runner itself.
pub fn tell_runner_finished(agent: &AgentPaths, task_id: &str) {
    let sock = crate::control::socket_path(&agent.dir);
    if store::exists(&sock) {
        let _ = crate::control::call(
            &sock,
            &crate::control::Request::Finished {
                task: task_id.into(),
            },
        );
    }
}

/// Takes a queued task back or asks its agent to stop it, as a caller (not the runner) does:
/// `withdraw_or_cancel`, then the notice for the runner's watchers.
pub fn stop_task(
    store: &Store,
    agent: &AgentPaths,
    task_id: &str,
    state: State,
) -> Result<Stopped> {
    let stopped = withdraw_or_cancel(store, agent, task_id, state)?;
    if stopped == Stopped::Withdrawn {
        tell_runner_finished(agent, task_id);
    }
    Ok(stopped)
}

/// The well-formed entries of an inbox folder as (entry name, task id), in claiming order
/// (priority, then time).
fn list_inbox(dir: &std::path::Path) -> io::Result<Vec<(String, String)>> {
    let mut entries: Vec<(String, String)> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| protocol::parse_inbox_entry(&n).map(|id| (n.clone(), id.to_string())))
        .collect();
    entries.sort();
    Ok(entries)
}

/// The entries of an inbox folder that must exist (a runner's own), in claiming order.
pub fn inbox_entries(dir: &std::path::Path) -> Result<Vec<(String, String)>> {
    list_inbox(dir).during("listing", dir)
}

/// The inbox entry in `dir` that names `task_id`.
pub fn find_entry(dir: &std::path::Path, task_id: &str) -> Result<Option<String>> {
    match list_inbox(dir) {
        Ok(entries) => Ok(entries
            .into_iter()
            .find(|(_, id)| id == task_id)
            .map(|(name, _)| name)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("listing", dir, e)),
    }
}

/// True if `task_id` still waits in `agent`'s inbox (no runner has claimed it).
pub fn is_queued(agent: &AgentPaths, task_id: &str) -> bool {
    find_entry(&agent.inbox_new, task_id)
        .ok()
        .flatten()
        .is_some()
}

/// Counts the well-formed entries of an inbox folder.
pub fn queue_depth(dir: &std::path::Path) -> usize {
    list_inbox(dir).map_or(0, |entries| entries.len())
}

/// Writes `done.json` only if none exists yet (a later writer never overwrites an outcome).
pub fn finish_once(store: &Store, done: &Done) -> Result<bool> {
    let dir = store.task_dir(&done.task_id);
    let path = dir.join("done.json");
    if store::exists(&path) {
        return Ok(false);
    }
    let mut bytes = serde_json::to_vec(done).map_err(|e| Error::Malformed {
        path: path.clone(),
        why: e.to_string(),
    })?;
    bytes.push(b'\n');
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(&dir)
        .during("creating a temp file in", &dir)?;
    io::Write::write_all(&mut tmp, &bytes).during("writing", tmp.path())?;
    // persist_noclobber links the temp file into place and fails if the target exists.
    match tmp.persist_noclobber(&path) {
        Ok(_) => Ok(true),
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::io("writing", path, e.error)),
    }
}

//! The queue between callers and a runner: an agent's maildir-style `inbox/` of task ids.
//!
//! A caller writes a task folder completely, then creates the entry (named for the task, a hard
//! link to its `task.json`) in `inbox/new/` (`deliver`); it can take a queued task back by
//! renaming its entry away, or ask the runner to stop a claimed one (`withdraw_or_cancel`). A
//! runner claims the first entry of `inbox/new/` in name order (priority, then time) by renaming
//! it into `inbox/cur/` (`claim`); rename is atomic, so exactly one claimer wins. When the task
//! has its end, the runner removes the `cur/` entry (`release`). Entries left in `cur/` were
//! claimed by a runner that died (`claimed`); entries a runner cannot serve go to `inbox/bad/`
//! (`quarantine`).
//!
//! Invariant: a task id appears in an inbox only once its folder holds `task.json` and `prompt`
//! (and, for a workflow's first task, `workflow.lock`, held by whoever runs the workflow).

use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

use super::agent::AgentPaths;
use super::store::{self, Store};
use super::task::{State, Task, TaskEnd, TaskId, TaskPaths};
use crate::error::{IoContext, StoreError};
use crate::sys::time;

type Result<T> = std::result::Result<T, StoreError>;

/// One inbox entry: `<priority digit>-<task id>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub name: String,
    pub id: TaskId,
}

impl Entry {
    pub fn new(priority: u8, id: &TaskId) -> Entry {
        Entry {
            name: format!("{}-{}", priority.min(9), id),
            id: id.clone(),
        }
    }

    /// The entry a file name is, if it is well formed.
    pub fn parse(name: &str) -> Option<Entry> {
        let (prio, id) = name.split_once('-')?;
        let ok = prio.len() == 1 && prio.as_bytes()[0].is_ascii_digit();
        let id = TaskId::parse(id).ok().filter(|_| ok)?;
        Some(Entry {
            name: name.into(),
            id,
        })
    }
}

/// What a caller asks for.
pub struct Request<'a> {
    pub prompt: &'a [u8],
    pub priority: u8,
    pub timeout: Option<Duration>,
    /// The workflow the task is a step of (its first task), if any.
    pub workflow: Option<TaskId>,
    /// The task is a workflow's first: its `workflow.lock` is taken before the entry is made (so
    /// that no agent can see a workflow no one holds) and handed back in `Delivered`.
    pub starts_workflow: bool,
}

/// A delivered task.
#[derive(Debug)]
pub struct Delivered {
    pub agent: String,
    pub task: TaskPaths,
    pub entry: Entry,
    pub created_ms: u64,
    /// The lock of the workflow it starts (`Request::starts_workflow`).
    pub workflow_lock: Option<super::lock::Held>,
}

/// Writes the task folder and drops the task into `agent`'s inbox. On failure nothing is left
/// behind.
pub fn deliver(store: &Store, agent: &AgentPaths, req: &Request) -> Result<Delivered> {
    let id = TaskId::new();
    let task = store.task(&id);
    let now = time::now_ms();
    let envelope = Task {
        task_id: id.clone(),
        agent: agent.name().into(),
        created_at: time::rfc3339(now),
        created_ms: now,
        priority: req.priority.min(9),
        deadline_ms: req
            .timeout
            .and_then(|t| u64::try_from(t.as_millis()).ok())
            .and_then(|t| now.checked_add(t)),
        caller_pid: std::process::id(),
        workflow: req.workflow.clone(),
    };
    let entry = Entry::new(envelope.priority, &id);
    let mut workflow_lock = None;
    let written = (|| {
        // A folder the agent's runner made ahead, or a new one. No one reads it before its
        // entry lands: plain writes suffice.
        let spare = super::spare::take(&agent.spare, &task.dir);
        if spare.is_none() {
            store::create_dir(&task.dir)?;
        }
        let (prompt, task_json) = spare.map(|s| (s.prompt, s.task)).unzip();
        write_first(prompt, &task.prompt, req.prompt)?;
        let mut json = serde_json::to_vec(&envelope).map_err(|e| StoreError::Malformed {
            path: task.task.clone(),
            why: e.to_string(),
        })?;
        json.push(b'\n');
        write_first(task_json, &task.task, &json)?;
        if req.starts_workflow {
            let held = super::lock::take(&task.workflow_lock, Duration::ZERO)?;
            workflow_lock = Some(held.ok_or_else(|| {
                StoreError::io(
                    "locking",
                    &task.workflow_lock,
                    io::Error::from(io::ErrorKind::WouldBlock),
                )
            })?);
        }
        write_entry(&task.task, &agent.inbox_new.join(&entry.name))
    })();
    if let Err(e) = written {
        let _ = fs::remove_dir_all(&task.dir);
        return Err(e);
    }
    Ok(Delivered {
        agent: agent.name().into(),
        task,
        entry,
        created_ms: now,
        workflow_lock,
    })
}

/// Makes the entry a hard link to the task's `task.json`: its name is the message and linking
/// is atomic, so it goes straight into new/ (a writer that puts content of its own in an entry
/// writes it in tmp/ and renames it), and neither the link nor its removal makes or frees an
/// inode (see `rewritten` for what that costs on some disks). Where links cannot be made (a
/// filesystem without them, an inbox on another one), the entry is an empty file.
fn write_entry(task_json: &Path, entry: &Path) -> Result<()> {
    match fs::hard_link(task_json, entry) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            Err(StoreError::io("delivering into", entry, e))
        }
        Err(_) => write_fresh(entry, b""),
    }
}

/// Writes a new task's file: into `blank` (a spare's, open already), or else a new file.
fn write_first(blank: Option<fs::File>, path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    match blank {
        Some(mut f) => f.write_all(bytes).during("writing", path),
        None => write_fresh(path, bytes),
    }
}

/// Creates `path` (it must not exist), mode 0600, with `bytes`.
pub(super) fn write_fresh(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .during("delivering into", path)?;
    if bytes.is_empty() {
        return Ok(());
    }
    f.write_all(bytes).during("writing", path)
}

/// What `withdraw_or_cancel` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The task was still queued: it was taken out of the inbox and its end recorded.
    Withdrawn,
    /// An agent had claimed it: a cancel request was written for the runner.
    Requested,
    /// It had already finished.
    AlreadyDone,
}

impl Stopped {
    /// For messages.
    pub fn describe(&self) -> &'static str {
        match self {
            Stopped::Withdrawn => "withdrawn from the inbox",
            Stopped::Requested => "the agent was asked to stop it",
            Stopped::AlreadyDone => "it had already finished",
        }
    }
}

/// Takes a queued task back out of the inbox (recording its end as `state`, `cancelled` or
/// `timeout`), or asks the runner to stop it. Never writes into a task folder that is not a real
/// folder of ours.
pub fn withdraw_or_cancel(
    store: &Store,
    agent: &AgentPaths,
    id: &TaskId,
    state: State,
) -> Result<Stopped> {
    let task = store.task(id);
    store::check_dir(&task.dir)?;
    if task.is_done() {
        return Ok(Stopped::AlreadyDone);
    }
    if withdraw(agent, id)? {
        let why = match state {
            State::Timeout => "timed out before an agent claimed it",
            State::AgentLost => "the agent's runner died before claiming it",
            _ => "cancelled before an agent claimed it",
        };
        let end = TaskEnd::new(id, agent.name(), state).with_error(why);
        task.record_end(&end)?;
        return Ok(Stopped::Withdrawn);
    }
    if task.is_done() {
        return Ok(Stopped::AlreadyDone);
    }
    store::write_atomic(&task.cancel, state.as_str().as_bytes())?;
    Ok(Stopped::Requested)
}

/// Takes `id` out of `agent`'s inbox if it is still queued: `Ok(true)` if it was. Renaming the
/// entry away is atomic against a runner's claim: exactly one of the two wins.
pub fn withdraw(agent: &AgentPaths, id: &TaskId) -> Result<bool> {
    let Some(entry) = find(&agent.inbox_new, id)? else {
        return Ok(false);
    };
    let from = agent.inbox_new.join(&entry.name);
    let to = agent.inbox_tmp.join(format!("withdrawn-{}", entry.name));
    match fs::rename(&from, &to) {
        Ok(()) => {
            let _ = fs::remove_file(&to);
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false), // claimed just now
        Err(e) => Err(StoreError::io("withdrawing", from, e)),
    }
}

/// The well-formed entries of an inbox folder, in claiming order (priority, then time).
pub fn list(dir: &Path) -> io::Result<Vec<Entry>> {
    let mut entries: Vec<Entry> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(Entry::parse))
        .collect();
    entries.sort();
    Ok(entries)
}

/// The first entry waiting in `agent`'s inbox.
pub fn next(agent: &AgentPaths) -> Result<Option<Entry>> {
    let dir = &agent.inbox_new;
    let mut first: Option<Entry> = None;
    for e in fs::read_dir(dir)
        .during("listing", dir)?
        .filter_map(|e| e.ok())
    {
        if let Some(entry) = e.file_name().to_str().and_then(Entry::parse) {
            if first.as_ref().is_none_or(|f| entry < *f) {
                first = Some(entry);
            }
        }
    }
    Ok(first)
}

/// Claims `entry` for the runner (new/ → cur/). `Ok(false)` if it is gone (withdrawn).
pub fn claim(agent: &AgentPaths, entry: &Entry) -> Result<bool> {
    claim_from(agent, agent, entry)
}

/// Claims `entry` of `from`'s inbox (a pool's) into `to`'s `cur/`: the member that wins the
/// rename runs it. `Ok(false)` if it is gone (withdrawn, or another member took it).
pub fn claim_from(from: &AgentPaths, to: &AgentPaths, entry: &Entry) -> Result<bool> {
    let cur = to.inbox_cur.join(&entry.name);
    match fs::rename(from.inbox_new.join(&entry.name), &cur) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::io("claiming", cur, e)),
    }
}

/// Removes a claimed entry once its task has its end.
pub fn release(agent: &AgentPaths, entry: &Entry) {
    let _ = fs::remove_file(agent.inbox_cur.join(&entry.name));
}

/// The entries claimed by a runner (at start-up: by one that died).
pub fn claimed(agent: &AgentPaths) -> Result<Vec<Entry>> {
    list(&agent.inbox_cur).during("listing", &agent.inbox_cur)
}

/// Moves an entry the runner cannot serve out of `from` (new/ or cur/) into `inbox/bad/`, where a
/// person can look at it; it is never served again.
pub fn quarantine(agent: &AgentPaths, from: &Path, entry: &Entry) -> Result<()> {
    store::ensure_dir(&agent.inbox_bad)?;
    let to = agent.inbox_bad.join(&entry.name);
    fs::rename(from.join(&entry.name), &to).during("quarantining", to)
}

/// The entry in `dir` that names `id`.
pub fn find(dir: &Path, id: &TaskId) -> Result<Option<Entry>> {
    match list(dir) {
        Ok(entries) => Ok(entries.into_iter().find(|e| &e.id == id)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("listing", dir, e)),
    }
}

/// True if `id` still waits in `agent`'s inbox (no runner has claimed it).
pub fn is_queued(agent: &AgentPaths, id: &TaskId) -> bool {
    find(&agent.inbox_new, id).ok().flatten().is_some()
}

/// True if a runner has claimed `id` and not yet released it.
pub fn is_claimed(agent: &AgentPaths, id: &TaskId) -> bool {
    find(&agent.inbox_cur, id).ok().flatten().is_some()
}

/// Counts the well-formed entries of an inbox folder.
pub fn depth(dir: &Path) -> usize {
    list(dir).map_or(0, |entries| entries.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_sort_by_priority_then_time() {
        let a = Entry::new(5, &TaskId::parse("1795276023456-0000000a").unwrap());
        let b = Entry::new(1, &TaskId::parse("1795276023999-0000000b").unwrap());
        assert_eq!(Entry::parse(&a.name), Some(a.clone()));
        assert!(b < a, "priority 1 sorts before priority 5");
        assert_eq!(Entry::parse("x-123"), None);
        assert_eq!(Entry::parse("5-../x"), None);
        assert_eq!(Entry::new(12, &a.id).name, format!("9-{}", a.id));
    }
}

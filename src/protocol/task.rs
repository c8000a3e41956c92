//! A task as the protocol knows it: its id (`TaskId`, parsed once), its folder's files
//! (`TaskPaths`, the only place their names are written), its envelope (`Task`, `task.json`), and
//! how it ended (`TaskEnd`, one type for every end: what a runner records in `done.json`, what a
//! wait returns, what `--json` prints and what a command turns into an exit code).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::store;
use crate::error::StoreError;
use crate::sys::time;

/// A task id: `<ns since the epoch, 19 digits>-<8 hex digits>`. Only `[0-9a-f-]`, so an id can
/// never name a path; ids sort in the order they were made.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TaskId(String);

impl TaskId {
    /// A new id, unique across processes: the time in nanoseconds, then 32 random bits. Inbox
    /// entries (priority, then id) are thus first in, first out within a priority.
    pub fn new() -> TaskId {
        TaskId(format!(
            "{:019}-{:08x}",
            time::now_ns(),
            store::random_u64() as u32
        ))
    }

    pub fn parse(id: &str) -> Result<TaskId, StoreError> {
        let ok = (3..=40).contains(&id.len())
            && id
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c) || c == b'-')
            && !id.starts_with('-');
        if ok {
            Ok(TaskId(id.to_string()))
        } else {
            Err(StoreError::BadTaskId { id: id.into() })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TaskId {
    fn default() -> Self {
        TaskId::new()
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for TaskId {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<TaskId, StoreError> {
        TaskId::parse(s)
    }
}

impl TryFrom<String> for TaskId {
    type Error = StoreError;
    fn try_from(s: String) -> Result<TaskId, StoreError> {
        TaskId::parse(&s)
    }
}

impl From<TaskId> for String {
    fn from(id: TaskId) -> String {
        id.0
    }
}

/// The names of a task folder's files (here, and nowhere else; a shell agent's prelude names
/// two of them through these).
pub const TASK_JSON: &str = "task.json";
pub const PROMPT: &str = "prompt";
pub const OUTPUT: &str = "output";
pub const RESULT: &str = "result";
pub const DONE_JSON: &str = "done.json";
pub const CANCEL: &str = "cancel";
pub const RUNNER: &str = "runner";
pub const PROGRESS: &str = "progress";
pub const DELIVERED: &str = "delivered";
pub const WORKFLOW_JSON: &str = "workflow.json";
pub const WORKFLOW_LOCK: &str = "workflow.lock";
pub const WORKFLOW_PID: &str = "workflow.pid";

/// The files of one task folder, `tasks/<id>/`.
#[derive(Clone, Debug)]
pub struct TaskPaths {
    pub id: TaskId,
    pub dir: PathBuf,
    /// The envelope, written once before delivery.
    pub task: PathBuf,
    /// The prompt text.
    pub prompt: PathBuf,
    /// The answer while it is being produced.
    pub output: PathBuf,
    /// The answer, complete, renamed into place before the sentinel.
    pub result: PathBuf,
    /// The completion sentinel, renamed into place last.
    pub done: PathBuf,
    /// A caller's request to stop the task ("cancelled" or "timeout").
    pub cancel: PathBuf,
    /// The id of the agent whose runner took the task from a pool's inbox.
    pub runner: PathBuf,
    /// What the agent is doing now (`Bash: cargo test`), as its driver last saw it.
    pub progress: PathBuf,
    /// The prompt as handed to the agent, when its runner put its unread mail before it.
    pub delivered: PathBuf,
    /// In the first task of a workflow: the workflow's record (`protocol::workflow`).
    pub workflow: PathBuf,
    /// Held (flock) by whoever runs the workflow, so that one process at a time does.
    pub workflow_lock: PathBuf,
    /// The pid of whoever runs the workflow (who holds `workflow_lock`).
    pub workflow_pid: PathBuf,
}

impl TaskPaths {
    pub fn new(tasks_dir: &Path, id: &TaskId) -> TaskPaths {
        let dir = tasks_dir.join(id.as_str());
        TaskPaths {
            id: id.clone(),
            task: dir.join(TASK_JSON),
            prompt: dir.join(PROMPT),
            output: dir.join(OUTPUT),
            result: dir.join(RESULT),
            done: dir.join(DONE_JSON),
            cancel: dir.join(CANCEL),
            runner: dir.join(RUNNER),
            progress: dir.join(PROGRESS),
            delivered: dir.join(DELIVERED),
            workflow: dir.join(WORKFLOW_JSON),
            workflow_lock: dir.join(WORKFLOW_LOCK),
            workflow_pid: dir.join(WORKFLOW_PID),
            dir,
        }
    }

    /// True once the task has its `done.json`.
    pub fn is_done(&self) -> bool {
        store::exists(&self.done)
    }

    /// The recorded end, if the task has one; a malformed `done.json` is reported as a failed
    /// end naming the file, never a panic. `agent` fills in what a hand-written agent may omit.
    pub fn read_end(&self, agent: &str) -> Option<TaskEnd> {
        let mut end = match super::read_json::<TaskEnd>(&self.done) {
            Ok(end) => end?,
            Err(e) => TaskEnd::new(&self.id, agent, State::Failed).with_error(e.to_string()),
        };
        if end.agent.is_empty() {
            end.agent = agent.to_string();
        }
        if end.task_id != self.id {
            end.task_id = self.id.clone();
        }
        Some(end)
    }

    /// The answer as recorded in `result` (empty if there is none).
    pub fn read_answer(&self) -> Vec<u8> {
        store::read_nofollow(&self.result).unwrap_or_default()
    }

    /// Records `end` as the task's `done.json` unless it already has one (`Ok(false)`): the first
    /// end recorded is the task's end.
    pub fn record_end(&self, end: &TaskEnd) -> Result<bool, StoreError> {
        store::write_new(&self.done, &super::json_line(&self.done, end)?)
    }

    /// `record_end`, written into a file made ahead (`spare::Unnamed`) if one is ready and can
    /// be named `done.json`.
    pub fn record_end_ahead(
        &self,
        end: &TaskEnd,
        ahead: &mut super::spare::Unnamed,
    ) -> Result<bool, StoreError> {
        let bytes = super::json_line(&self.done, end)?;
        match ahead.place(&self.done, &bytes) {
            Some((_, named)) => Ok(named),
            None => store::write_new(&self.done, &bytes),
        }
    }

    /// Marks the task as waited on for as long as the returned lock lives: a shared flock on
    /// `task.json`, which `baton gc` must take exclusively before it removes the folder (the
    /// kernel releases it when the waiter exits, however it exits). `None` if the task is
    /// being removed right now, or has no envelope to lock.
    pub fn hold(&self) -> Option<super::lock::UntilClosed> {
        let file = store::open_nofollow(&self.task).ok()?;
        super::lock::shared_until_closed(file).ok()
    }

    /// Takes the task for removal: an exclusive flock on `task.json`, refused while anyone
    /// waits on the task (`hold`). `Ok(None)` if someone does.
    pub fn take_for_removal(&self) -> std::io::Result<Option<nix::fcntl::Flock<std::fs::File>>> {
        let file = store::open_nofollow(&self.task)?;
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(held) => Ok(Some(held)),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(e.into()),
        }
    }

    /// The state a cancel request asks for (`timeout`, or else `cancelled`).
    pub fn cancel_request(&self) -> Option<State> {
        let text = store::read_nofollow(&self.cancel).ok()?;
        Some(if String::from_utf8_lossy(&text).trim() == "timeout" {
            State::Timeout
        } else {
            State::Cancelled
        })
    }
}

/// The envelope of a task, written once by the coordinator before delivery.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Task {
    pub task_id: TaskId,
    pub agent: String,
    pub created_at: String,
    pub created_ms: u64,
    /// 0 (first) to 9 (last); 5 by default.
    pub priority: u8,
    /// The runner gives up on the task at this instant (ms since the epoch), if set.
    pub deadline_ms: Option<u64>,
    pub caller_pid: u32,
    /// The first task of the workflow this task is a step of, if it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<TaskId>,
}

/// How a task ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Ok,
    Failed,
    Timeout,
    Cancelled,
    AgentLost,
    /// The caller stopped waiting and the task keeps running (never recorded in `done.json`).
    Detached,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Failed => "failed",
            State::Timeout => "timeout",
            State::Cancelled => "cancelled",
            State::AgentLost => "agent_lost",
            State::Detached => "detached",
        }
    }
}

/// How a task ended: `done.json` as the runner (or a caller that withdrew the task) recorded it,
/// and, once read back, the answer. Fields other than the core five are optional on disk, so
/// that a hand-written agent may write just `task_id`, `state`, `exit_code`, `finished_at` and
/// `error`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskEnd {
    pub task_id: TaskId,
    pub state: State,
    /// The exit status of the task's own process (not baton's), where there was one.
    pub exit_code: Option<i32>,
    pub finished_at: String,
    pub error: Option<String>,
    #[serde(default)]
    pub agent: String,
    #[serde(default)]
    pub created_ms: Option<u64>,
    #[serde(default)]
    pub started_ms: Option<u64>,
    #[serde(default)]
    pub finished_ms: Option<u64>,
    /// The answer (from `result`), once read; never part of `done.json`.
    #[serde(skip)]
    pub answer: Vec<u8>,
    /// Where the task stood in a workflow, once known; never part of `done.json`.
    #[serde(skip)]
    pub place: Option<Place>,
    /// No task was made (the caller stopped before delivering it, or its delivery failed):
    /// `task_id` names no folder, and `--json` prints it as null. Never part of `done.json` (a
    /// workflow's record keeps it in its `FinalEnd`).
    #[serde(skip)]
    pub undelivered: bool,
}

/// A task's place in a workflow: its stage, which attempt it was (retries), which round of its
/// done-gate, and the workflow's first task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    pub workflow: TaskId,
    /// 1-based.
    pub stage: u32,
    /// 1 for the first attempt, 2 for the first retry, ….
    pub attempt: u32,
    /// 0 for the first answer, 1 after the gate sent it back once, ….
    pub round: u32,
    /// What the done-gate made of its answer, if one judged it.
    pub gate: Option<super::workflow::Verdict>,
}

impl TaskEnd {
    /// An end in `state`, now.
    pub fn new(id: &TaskId, agent: &str, state: State) -> TaskEnd {
        let now = time::now_ms();
        TaskEnd {
            task_id: id.clone(),
            state,
            exit_code: None,
            finished_at: time::rfc3339(now),
            error: None,
            agent: agent.into(),
            created_ms: None,
            started_ms: None,
            finished_ms: Some(now),
            answer: Vec::new(),
            place: None,
            undelivered: false,
        }
    }

    /// The end of a task that was never delivered to `agent`, in `state`: no folder, no id to
    /// look up.
    pub fn undelivered(agent: &str, state: State) -> TaskEnd {
        TaskEnd {
            undelivered: true,
            ..TaskEnd::new(&TaskId::new(), agent, state)
        }
    }

    /// The task id to show: none for a task never delivered.
    pub fn shown_id(&self) -> Option<&TaskId> {
        (!self.undelivered).then_some(&self.task_id)
    }

    pub fn with_error(mut self, error: impl Into<String>) -> TaskEnd {
        self.error = Some(error.into());
        self
    }

    pub fn is_ok(&self) -> bool {
        self.state == State::Ok
    }

    /// The end as `--json` prints it: the fields of `done.json` plus the answer (lossy UTF-8)
    /// and the time from creation to the end, and, for a step of a workflow, its place
    /// (`workflow`, `stage`, `attempt`, `round`).
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = self.json_fields();
        if let (Some(place), Some(map)) = (&self.place, v.as_object_mut()) {
            map.insert("workflow".into(), serde_json::json!(place.workflow));
            map.insert("stage".into(), place.stage.into());
            map.insert("attempt".into(), place.attempt.into());
            map.insert("round".into(), place.round.into());
            if let Some(verdict) = place.gate {
                map.insert("gate".into(), serde_json::json!(verdict));
            }
        }
        v
    }

    fn json_fields(&self) -> serde_json::Value {
        serde_json::json!({
            "agent": self.agent,
            "task_id": self.shown_id(),
            "state": self.state,
            "exit_code": self.exit_code,
            "error": self.error,
            "answer": String::from_utf8_lossy(&self.answer),
            "created_ms": self.created_ms,
            "started_ms": self.started_ms,
            "finished_ms": self.finished_ms,
            "finished_at": self.finished_at,
            "elapsed_ms": self
                .finished_ms
                .zip(self.created_ms)
                .map(|(f, c)| f.saturating_sub(c)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_parse_once_and_sort_in_the_order_they_were_made() {
        let a = TaskId::new();
        let b = TaskId::new();
        assert!(a < b, "{a} {b}");
        assert_eq!(TaskId::parse(a.as_str()).unwrap(), a);
        assert_eq!(a.as_str().len(), 28);
        for bad in ["", "../etc", "-x", "1/2", "ABC", &"1".repeat(41), "12 3"] {
            assert!(TaskId::parse(bad).is_err(), "{bad:?}");
        }
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<TaskId>(&json).unwrap(), a);
        assert!(serde_json::from_str::<TaskId>("\"../x\"").is_err());
    }

    #[test]
    fn task_paths_name_every_file_inside_the_task_folder() {
        let id = TaskId::parse("1000-0000000a").unwrap();
        let p = TaskPaths::new(Path::new("/s/tasks"), &id);
        assert_eq!(p.dir, Path::new("/s/tasks/1000-0000000a"));
        for (file, name) in [
            (&p.task, "task.json"),
            (&p.prompt, "prompt"),
            (&p.output, "output"),
            (&p.result, "result"),
            (&p.done, "done.json"),
            (&p.cancel, "cancel"),
        ] {
            assert_eq!(file.parent(), Some(p.dir.as_path()));
            assert_eq!(file.file_name().unwrap(), name);
        }
    }

    #[test]
    fn an_end_round_trips_and_reads_what_a_hand_written_agent_writes() {
        let dir = tempfile::tempdir().unwrap();
        let id = TaskId::new();
        let p = TaskPaths::new(dir.path(), &id);
        std::fs::create_dir(&p.dir).unwrap();
        assert!(p.read_end("a").is_none());
        std::fs::write(
            &p.done,
            format!(
                r#"{{"task_id":"{id}","state":"ok","exit_code":0,"finished_at":"x","error":null}}"#
            ),
        )
        .unwrap();
        let end = p.read_end("shouty").unwrap();
        assert_eq!((end.state, end.agent.as_str()), (State::Ok, "shouty"));
        assert!(!p
            .record_end(&TaskEnd::new(&id, "a", State::Failed))
            .unwrap());
        std::fs::write(&p.done, "{broken").unwrap();
        let end = p.read_end("a").unwrap();
        assert_eq!(end.state, State::Failed);
        assert!(end.error.unwrap().contains("malformed"));
    }
}

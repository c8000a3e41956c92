//! The protocol files' shapes: `task.json`, `done.json`, `status.json`, the agent's
//! `agent.json`, and the inbox entry names. Readers never panic on a hand-edited file: a missing
//! file is `None`, a malformed one is an error that names the file and what is wrong.

use std::io;
use std::path::Path;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store;

/// The envelope of a task, written once by the coordinator before delivery.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Task {
    pub task_id: String,
    pub agent: String,
    pub created_at: String,
    pub created_ms: u64,
    /// 0 (first) to 9 (last); 5 by default.
    pub priority: u8,
    /// The runner gives up on the task at this instant (ms since the epoch), if set.
    pub deadline_ms: Option<u64>,
    pub caller_pid: u32,
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
}

impl State {
    pub fn exit(self) -> crate::exit::Exit {
        use crate::exit::Exit;
        match self {
            State::Ok => Exit::Ok,
            State::Failed => Exit::AgentFailed,
            State::Timeout => Exit::Timeout,
            State::Cancelled => Exit::Cancelled,
            State::AgentLost => Exit::AgentLost,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Failed => "failed",
            State::Timeout => "timeout",
            State::Cancelled => "cancelled",
            State::AgentLost => "agent_lost",
        }
    }

    /// The state a cancel request file asks for ("timeout" or anything else: cancelled).
    pub fn from_cancel_request(text: &str) -> State {
        if text.trim() == "timeout" {
            State::Timeout
        } else {
            State::Cancelled
        }
    }
}

/// The completion sentinel, written last.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Done {
    pub task_id: String,
    pub state: State,
    pub exit_code: Option<i32>,
    pub finished_at: String,
    pub error: Option<String>,
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub started_ms: Option<u64>,
    #[serde(default)]
    pub finished_ms: Option<u64>,
}

impl Done {
    pub fn new(task_id: &str, agent: &str, state: State) -> Done {
        let now = crate::time::now_ms();
        Done {
            task_id: task_id.into(),
            state,
            exit_code: None,
            finished_at: crate::time::rfc3339(now),
            error: None,
            agent: Some(agent.into()),
            started_ms: None,
            finished_ms: Some(now),
        }
    }

    pub fn with_error(mut self, error: impl Into<String>) -> Done {
        self.error = Some(error.into());
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    Idle,
    Working,
    Blocked,
    Stopped,
}

impl AgentState {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Idle => "idle",
            AgentState::Working => "working",
            AgentState::Blocked => "blocked",
            AgentState::Stopped => "stopped",
        }
    }
}

/// `status.json`, written only by the agent's runner.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    pub agent_id: String,
    pub status: AgentState,
    pub current_task: Option<String>,
    pub context_summary: String,
    pub last_active: String,
    pub window_id: Option<String>,
    pub pid: u32,
    pub driver: String,
    pub tasks_done: u64,
}

/// How an agent's runner was started; written by the runner, read by `status` and `demo`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AgentConfig {
    pub driver: String,
    pub command: Vec<String>,
    pub cwd: Option<String>,
    pub env: Vec<String>,
    pub pass_env: Vec<String>,
}

/// Inbox entry names sort by priority, then time: `<priority digit>-<task id>`.
pub fn inbox_entry(priority: u8, task_id: &str) -> String {
    format!("{}-{}", priority.min(9), task_id)
}

/// The task id named by an inbox entry, if the name is well formed.
pub fn parse_inbox_entry(name: &str) -> Option<&str> {
    let (prio, id) = name.split_once('-')?;
    let ok = prio.len() == 1 && prio.as_bytes()[0].is_ascii_digit();
    (ok && store::validate_task_id(id).is_ok()).then_some(id)
}

/// Reads a JSON protocol file: `Ok(None)` if it does not exist, an error naming the file if it
/// cannot be read or parsed.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let bytes = match store::read_nofollow(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(Error::Unsafe {
                path: path.into(),
                why: "it is a symbolic link".into(),
            })
        }
        Err(e) => return Err(Error::io("reading", path, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::Malformed {
            path: path.into(),
            why: e.to_string(),
        })
}

/// Writes a JSON protocol file atomically into `dir`.
pub fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec(value).map_err(|e| Error::Malformed {
        path: dir.join(name),
        why: e.to_string(),
    })?;
    bytes.push(b'\n');
    store::write_atomic(dir, name, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_entries_round_trip_and_sort() {
        let a = inbox_entry(5, "1795276023456-0000000a");
        let b = inbox_entry(1, "1795276023999-0000000b");
        assert_eq!(parse_inbox_entry(&a), Some("1795276023456-0000000a"));
        assert!(b < a, "priority 1 sorts before priority 5");
        assert_eq!(parse_inbox_entry("x-123"), None);
        assert_eq!(parse_inbox_entry("5-../x"), None);
    }
}

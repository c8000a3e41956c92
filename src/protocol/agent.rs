//! An agent as the protocol knows it: its name, its folder's files (`AgentPaths`, the only place
//! their names are written), how its runner is started (`Spec`, kept as `agent.json`) and what
//! its runner says of it (`Status`, `status.json`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// An agent's id in the state folder: its name, or, for a project's agent, `name.<8 hex>` (the
/// project's id).
pub fn validate_id(id: &str) -> Result<(), StoreError> {
    let bad = || StoreError::BadName { name: id.into() };
    match id.split_once('.') {
        None => validate_name(id),
        Some((name, project)) => {
            validate_name(name).map_err(|_| bad())?;
            let hex = project.len() == 8
                && project
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
            if hex {
                Ok(())
            } else {
                Err(bad())
            }
        }
    }
}

/// The name part of an agent id (`planning` of `planning.3f2a1c9b`).
pub fn name_of(id: &str) -> &str {
    id.split_once('.').map_or(id, |(name, _)| name)
}

/// Agent names: `[a-z0-9][a-z0-9_-]{0,31}`.
pub fn validate_name(name: &str) -> Result<(), StoreError> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 32
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadName { name: name.into() })
    }
}

/// The files of one agent, `agents/<name>/`.
#[derive(Clone, Debug)]
pub struct AgentPaths {
    pub dir: PathBuf,
    pub inbox: PathBuf,
    pub inbox_tmp: PathBuf,
    pub inbox_new: PathBuf,
    pub inbox_cur: PathBuf,
    /// Entries a runner could not serve (their task folder is missing or unsafe), kept for a
    /// person to look at.
    pub inbox_bad: PathBuf,
    /// The runner holds `flock(LOCK_EX)` on it for its whole life.
    pub lock: PathBuf,
    /// Held by whoever is starting the runner (or, for a pool, choosing its members), so that
    /// racing callers start one.
    pub start_lock: PathBuf,
    pub status: PathBuf,
    pub log: PathBuf,
    /// The log's previous part: what `log` held when it last outgrew its bound (see
    /// `runner::log`).
    pub log_old: PathBuf,
    /// The runner's `Spec`.
    pub spec: PathBuf,
    /// The agent's stable session id.
    pub session: PathBuf,
    /// The runner's control socket.
    pub sock: PathBuf,
    /// Hook events for the runner (the tmux driver).
    pub events: PathBuf,
    /// The claude driver's session.
    pub claude: PathBuf,
    /// The tmux driver's window.
    pub tmux: PathBuf,
    /// Present in a pool's folder (which has an inbox and no runner of its own).
    pub pool_marker: PathBuf,
    /// The sessions of the agent's processes, so that the next runner can end what a dead one
    /// left behind.
    pub children: PathBuf,
    /// `gates/<task id>`: a done-gate running on one of its answers (written by the caller).
    pub gates: PathBuf,
    /// Task folders its runner made ahead, for callers to take (`protocol::spare`).
    pub spare: PathBuf,
}

impl AgentPaths {
    pub fn new(dir: PathBuf) -> AgentPaths {
        let inbox = dir.join("inbox");
        AgentPaths {
            inbox_tmp: inbox.join("tmp"),
            inbox_new: inbox.join("new"),
            inbox_cur: inbox.join("cur"),
            inbox_bad: inbox.join("bad"),
            inbox,
            lock: dir.join("lock"),
            start_lock: dir.join("start.lock"),
            status: dir.join("status.json"),
            log: dir.join("log"),
            log_old: dir.join("log.1"),
            spec: dir.join("agent.json"),
            session: dir.join("session_id"),
            sock: dir.join("sock"),
            events: dir.join("events"),
            claude: dir.join("claude.json"),
            tmux: dir.join("tmux.json"),
            pool_marker: dir.join("pool"),
            children: dir.join("children"),
            gates: dir.join("gates"),
            spare: dir.join("spare"),
            dir,
        }
    }

    /// The folders every agent has.
    pub fn folders(&self) -> [&Path; 5] {
        [
            &self.dir,
            &self.inbox,
            &self.inbox_tmp,
            &self.inbox_new,
            &self.inbox_cur,
        ]
    }

    pub fn name(&self) -> &str {
        self.dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
    }

    /// The recorded spec, if the agent has run (or been started) before.
    pub fn read_spec(&self) -> Result<Option<Spec>, StoreError> {
        let mut spec: Option<Spec> = super::read_json(&self.spec)?;
        if let Some(s) = spec.as_mut() {
            s.name = self.name().to_string();
        }
        Ok(spec)
    }

    /// True for a pool's folder.
    pub fn is_pool(&self) -> bool {
        super::store::exists(&self.pool_marker)
    }

    /// The runner's status. Read a second time if what was read does not parse: a reader that
    /// opened the file in the instant of a swap can, at worst, have read a version its runner
    /// died writing (`rewritten`); one that still does not parse was broken by hand.
    pub fn read_status(&self) -> Result<Option<Status>, StoreError> {
        match super::read_json(&self.status) {
            Err(StoreError::Malformed { .. }) => super::read_json(&self.status),
            read => read,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    Shell,
    Exec,
    Claude,
    Tmux,
}

impl DriverKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriverKind::Shell => "shell",
            DriverKind::Exec => "exec",
            DriverKind::Claude => "claude",
            DriverKind::Tmux => "tmux",
        }
    }
}

fn default_tmux_session() -> String {
    "baton".into()
}

/// How to run an agent: the data a runner is started from, recorded as `agent.json` so that the
/// agent can be started again exactly as it was.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    #[serde(default)]
    pub name: String,
    pub driver: DriverKind,
    /// exec: the command per task; shell: the shell; claude: extra arguments; tmux: the command
    /// in the window (arguments that start with `-` go to claude).
    #[serde(default)]
    pub command: Vec<String>,
    /// The agent's working folder (absolute once the runner has started).
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// `KEY=VALUE` set in the agent's environment.
    #[serde(default)]
    pub env: Vec<String>,
    /// Variables passed through from the caller's environment.
    #[serde(default)]
    pub pass_env: Vec<String>,
    /// The claude binary (the claude and tmux drivers); found on PATH when not given.
    #[serde(default)]
    pub claude: Option<PathBuf>,
    /// The tmux session that holds the agent's window (the tmux driver).
    #[serde(default = "default_tmux_session")]
    pub tmux_session: String,
    /// The project the agent belongs to (the folder of its `.baton.toml`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<PathBuf>,
    /// The pool it is a member of (the pool's id): it also takes tasks from the pool's inbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// At most this many tasks run at once across the state folder (`max_concurrent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    /// The git branch of the agent's own worktree, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

impl Spec {
    /// A spec for `name` with `driver` and nothing else set.
    pub fn new(name: &str, driver: DriverKind) -> Spec {
        Spec {
            name: name.into(),
            driver,
            command: Vec::new(),
            cwd: None,
            env: Vec::new(),
            pass_env: Vec::new(),
            claude: None,
            tmux_session: default_tmux_session(),
            project: None,
            pool: None,
            max_concurrent: None,
            branch: None,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "planning", "sh1", "a-b_c", "0x", &"a".repeat(32)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "A",
            "-a",
            "_a",
            "a/b",
            "a b",
            "../x",
            &"a".repeat(33),
            "é",
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_spec_written_by_an_older_runner_still_reads() {
        let old =
            r#"{"driver":"exec","command":["tr","a-z","A-Z"],"cwd":"/tmp","env":[],"pass_env":[]}"#;
        let spec: Spec = serde_json::from_str(old).unwrap();
        assert_eq!(spec.driver, DriverKind::Exec);
        assert_eq!(spec.command, ["tr", "a-z", "A-Z"]);
        assert_eq!(spec.tmux_session, "baton");
    }
}

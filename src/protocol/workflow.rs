//! A workflow's record: what a run of several tasks — stages of a pipeline, the members of a
//! fan-out, retries, answers a done-gate sent back — was asked to do and how far it got. It lives
//! in the folder of the workflow's first task (its *root*), as `workflow.json`, written
//! atomically after every step by the one process that runs the workflow (it holds
//! `workflow.lock`): the caller that waits, or, once that caller has let go (`baton send`, a
//! detach), a detached `baton supervise ROOT` that takes it over from this record alone.
//!
//! Invariants: every task the workflow delivered is listed, in the order delivered, with its
//! place; the request is the root task's `prompt` (stage 1's first attempt gets it unchanged);
//! `state` is `None` while the workflow runs, and once set, `finals` are the tasks whose answers
//! are its result.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::store::Store;
use super::task::{Place, State, TaskEnd, TaskId, TaskPaths};
use crate::error::StoreError;

/// What the workflow was asked to do (what a `Plan` says, as data).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asked {
    /// The stages, each the names of its agents (one, a pool, or a fan-out) as the caller gave
    /// them.
    pub stages: Vec<Vec<String>>,
    /// In a fan-out stage, the first answer that succeeds wins.
    #[serde(default)]
    pub any: bool,
    /// `--retries`, when given (else each agent's declared `retries`).
    #[serde(default)]
    pub retries: Option<u32>,
    /// `--gate`, when given (else each agent's declared `gate`).
    #[serde(default)]
    pub gate: Option<String>,
    /// `--gate-rounds`, when given (else declared, else 2).
    #[serde(default)]
    pub gate_rounds: Option<u32>,
    #[serde(default)]
    pub priority: Option<u8>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub queue: bool,
}

/// How a done-gate judged a task's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Exit 0.
    Accepted,
    /// Exit 2: the answer went back to the agent with the gate's output.
    Rejected,
    /// Any other end: the task failed.
    Failed,
}

/// One task the workflow delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub task_id: TaskId,
    /// The agent (or pool) id it was delivered to.
    pub agent: String,
    /// 1-based.
    pub stage: u32,
    /// Which of the stage's agents it is for (0-based, in the order given).
    pub member: u32,
    pub attempt: u32,
    pub round: u32,
    /// The gate's verdict on its answer, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Verdict>,
}

/// How a final task ended for the workflow where that is not what its own `done.json` says: an
/// answer its gate rejected, or never judged because the workflow was stopped, ended failed or
/// cancelled, although the task itself ended ok; or a final that was never delivered, which has
/// no folder and so no `done.json` at all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalEnd {
    pub task_id: TaskId,
    pub state: State,
    #[serde(default)]
    pub error: Option<String>,
    /// The agent it was for: only kept for one never delivered, whose end no folder holds.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub agent: String,
    /// It was never delivered (its delivery failed): `task_id` names no folder.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub undelivered: bool,
    /// When it ended: only kept for one never delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
}

impl FinalEnd {
    /// A delivered final's end as the workflow gave it.
    pub fn new(task_id: TaskId, state: State, error: Option<String>) -> FinalEnd {
        FinalEnd {
            task_id,
            state,
            error,
            agent: String::new(),
            undelivered: false,
            finished_ms: None,
        }
    }

    /// `end` as the workflow ended it. One never delivered also keeps what its end needs (its
    /// agent, when it ended), since no folder holds it: `end` gives it back.
    pub fn of(end: &TaskEnd) -> FinalEnd {
        let mut f = FinalEnd::new(end.task_id.clone(), end.state, end.error.clone());
        if end.undelivered {
            f.agent = end.agent.clone();
            f.undelivered = true;
            f.finished_ms = end.finished_ms;
        }
        f
    }

    /// The end of a final never delivered, as `of` kept it.
    pub fn end(&self) -> Option<TaskEnd> {
        if !self.undelivered {
            return None;
        }
        let mut end = TaskEnd::undelivered(&self.agent, self.state);
        end.task_id = self.task_id.clone();
        end.error = self.error.clone();
        if let Some(ms) = self.finished_ms {
            end.finished_ms = Some(ms);
            end.finished_at = crate::sys::time::rfc3339(ms);
        }
        Some(end)
    }
}

/// `workflow.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub root: TaskId,
    /// The folder the caller stood in: its config names the agents.
    pub cwd: PathBuf,
    pub asked: Asked,
    /// The stage that runs now (1-based).
    pub stage: u32,
    pub steps: Vec<Step>,
    /// For each stage that has ended well, the tasks whose answers it passed on.
    #[serde(default)]
    pub passed: Vec<Vec<TaskId>>,
    /// How the workflow ended; `None` while it runs.
    #[serde(default)]
    pub state: Option<State>,
    /// The tasks whose answers are the result (or whose failure ended it).
    #[serde(default)]
    pub finals: Vec<TaskId>,
    #[serde(default)]
    pub error: Option<String>,
    /// The results inbox the outcome goes to, when no caller waits for it.
    #[serde(default)]
    pub results: Option<String>,
    /// The finals that did not succeed, as the workflow ended them (see `FinalEnd`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub final_ends: Vec<FinalEnd>,
}

impl Record {
    pub fn new(root: &TaskId, cwd: PathBuf, asked: Asked) -> Record {
        Record {
            root: root.clone(),
            cwd,
            asked,
            stage: 1,
            steps: Vec::new(),
            passed: Vec::new(),
            state: None,
            finals: Vec::new(),
            error: None,
            results: None,
            final_ends: Vec::new(),
        }
    }

    /// The place of task `id` in this workflow, if it is one of its steps.
    pub fn place_of(&self, id: &TaskId) -> Option<Place> {
        self.steps.iter().find(|s| &s.task_id == id).map(|s| Place {
            workflow: self.root.clone(),
            stage: s.stage,
            attempt: s.attempt,
            round: s.round,
            gate: s.gate,
        })
    }

    /// The latest step of each member of `stage`, in member order.
    pub fn latest(&self, stage: u32) -> Vec<&Step> {
        let mut out: Vec<&Step> = Vec::new();
        for s in self.steps.iter().filter(|s| s.stage == stage) {
            match out.iter_mut().find(|o| o.member == s.member) {
                Some(o) => *o = s,
                None => out.push(s),
            }
        }
        out.sort_by_key(|s| s.member);
        out
    }

    /// The end of final `id` if it was never delivered (no folder holds it).
    pub fn undelivered_end(&self, id: &TaskId) -> Option<TaskEnd> {
        self.final_ends
            .iter()
            .find(|f| &f.task_id == id)
            .and_then(FinalEnd::end)
    }

    /// Gives the final ends read from their tasks' folders the ends the workflow gave them.
    pub fn apply_final_ends(&self, ends: &mut [TaskEnd]) {
        for end in ends {
            if let Some(f) = self.final_ends.iter().find(|f| f.task_id == end.task_id) {
                end.state = f.state;
                end.error = f.error.clone();
            }
        }
    }

    pub fn save(&self, store: &Store) -> Result<(), StoreError> {
        super::write_json(&store.task(&self.root).workflow, self)
    }
}

/// Records `pid` as the process that runs the workflow rooted at `task` (the caller, then its
/// supervisor; whoever holds its lock): `baton cancel ROOT` stops the workflow through it.
pub fn set_runner(task: &TaskPaths, pid: u32) -> Result<(), crate::error::StoreError> {
    super::store::write_atomic(&task.workflow_pid, pid.to_string().as_bytes())
}

/// The process that runs the workflow rooted at `task`, as last recorded.
pub fn runner(task: &TaskPaths) -> Option<u32> {
    let text = super::store::read_nofollow(&task.workflow_pid).ok()?;
    String::from_utf8_lossy(&text).trim().parse().ok()
}

/// The record of the workflow rooted at `root`; `None` if the task is not a workflow's root.
pub fn load(task: &TaskPaths) -> Result<Option<Record>, StoreError> {
    super::read_json(&task.workflow)
}

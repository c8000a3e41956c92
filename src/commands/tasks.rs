//! Commands on tasks by id: `wait`, `result`, `cancel`, and `gc`, which bounds the history.

use std::fs;
use std::time::{Duration, SystemTime};

use crate::deliver;
use crate::exit::{Exit, Failure, Result};
use crate::protocol::{self, State, Task};
use crate::store::{self, AgentPaths, Store};
use crate::wait::{self, Pending};

/// A task named on the command line: its envelope and its agent.
fn load(store: &Store, id: &str) -> Result<(Task, AgentPaths)> {
    store::validate_task_id(id)?;
    let path = store.task_dir(id).join("task.json");
    let task: Task = protocol::read_json(&path)?
        .ok_or_else(|| Failure::msg(Exit::Usage, format!("no such task: {id}")))?;
    let agent = store.agent(&task.agent)?.ok_or_else(|| {
        Failure::msg(
            Exit::Usage,
            format!(
                "task {id} names agent {:?}, which has no folder",
                task.agent
            ),
        )
    })?;
    Ok((task, agent))
}

pub fn wait(store: &Store, ids: &[String], timeout: Option<Duration>, json: bool) -> Result<Exit> {
    let mut pending = Vec::new();
    for id in ids {
        let (task, agent) = load(store, id)?;
        pending.push(Pending::new(agent, task.task_id, task.created_ms));
    }
    let sigs = super::installed_signals()?;
    let answers = super::await_answers(
        store,
        &mut pending,
        &sigs,
        &super::How {
            deadline: super::deadline(timeout),
            watch_liveness: true,
            owned: false,
        },
        None,
    )?;
    super::print_answers(&answers, json)
}

pub fn result(store: &Store, id: &str, json: bool) -> Result<Exit> {
    let (task, agent) = load(store, id)?;
    let Some(done) = wait::read_done(store, id) else {
        let state = if deliver::find_entry(&agent.inbox_new, id)?.is_some() {
            "queued"
        } else {
            "running"
        };
        return Err(Failure::msg(
            Exit::Usage,
            format!("task {id} has not finished yet ({state}); `baton wait {id}` waits for it"),
        ));
    };
    let answer = super::Answer {
        agent: task.agent,
        task_id: task.task_id,
        answer: super::read_answer(store, id),
        done,
        created_ms: task.created_ms,
    };
    super::print_answers(&[answer], json)
}

pub fn cancel(store: &Store, ids: &[String]) -> Result<Exit> {
    for id in ids {
        let (_, agent) = load(store, id)?;
        let what = deliver::stop_task(store, &agent, id, State::Cancelled)?;
        println!("{id}: {}", super::describe_stop(&what));
    }
    Ok(Exit::Ok)
}

/// Removes finished tasks whose `done.json` is older than `older_than`. Unfinished tasks are
/// never removed.
pub fn gc(store: &Store, older_than: Duration) -> Result<Exit> {
    let cutoff = SystemTime::now()
        .checked_sub(older_than)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let dir = store.tasks_dir();
    let (mut removed, mut kept) = (0usize, 0usize);
    let entries = fs::read_dir(&dir).map_err(|e| crate::error::Error::io("listing", &dir, e))?;
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        let Some(id) = name.to_str().filter(|n| store::validate_task_id(n).is_ok()) else {
            continue;
        };
        let done = store.task_dir(id).join("done.json");
        let old = fs::symlink_metadata(&done)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t <= cutoff);
        if old {
            fs::remove_dir_all(store.task_dir(id))
                .map_err(|e| crate::error::Error::io("removing", store.task_dir(id), e))?;
            removed += 1;
        } else {
            kept += 1;
        }
    }
    println!("removed {removed} finished task(s); kept {kept}");
    Ok(Exit::Ok)
}

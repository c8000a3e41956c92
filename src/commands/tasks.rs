//! Commands on tasks by id: `wait`, `result`, `cancel`, and `gc`, which bounds the history.

use std::collections::HashMap;
use std::fs;
use std::time::{Duration, SystemTime};

use super::{print_ends, Format};
use crate::coordinator::{self, background, Caller};
use crate::error::{usage, StoreError};
use crate::exit::Exit;
use crate::protocol::workflow::Record;
use crate::protocol::{inbox, State, Store, TaskId};

/// Parses task ids given on the command line.
pub fn parse_ids(ids: &[String]) -> anyhow::Result<Vec<TaskId>> {
    Ok(ids
        .iter()
        .map(|id| TaskId::parse(id))
        .collect::<Result<_, _>>()?)
}

/// Marks the background results of the finished work `ids` seen (in whichever project's inbox
/// they are): an answer someone waited for, or read, need not reach the chief as well.
fn seen(store: &Store, ids: &[TaskId]) {
    for inbox in crate::protocol::results::all(store) {
        for id in ids {
            let _ = inbox.claim(id);
        }
    }
}

/// The record of the workflow that starts with task `id`, if it is one's first task.
fn workflow_of(store: &Store, id: &TaskId) -> anyhow::Result<Option<Record>> {
    Ok(crate::protocol::workflow::load(&store.task(id))?)
}

pub fn wait(
    store: &Store,
    ids: &[String],
    timeout: Option<Duration>,
    format: Format,
) -> anyhow::Result<Exit> {
    let ids = parse_ids(ids)?;
    let mut caller = Caller::new(false)?;
    // A workflow's first task stands for the whole workflow: its outcome is waited for. With
    // one among several ids, each is waited for in turn, all within the one timeout.
    let mut workflows = Vec::new();
    for id in &ids {
        workflows.push(workflow_of(store, id)?.is_some());
    }
    let ends = if workflows.iter().any(|w| *w) {
        let deadline = timeout.and_then(crate::sys::time::deadline_after);
        let mut ends = Vec::new();
        for (id, workflow) in ids.iter().zip(workflows) {
            let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
            let got = if workflow {
                background::follow_workflow(store, id, left, &mut caller)?
            } else {
                coordinator::follow(store, std::slice::from_ref(id), left, &mut caller)?
            };
            // Stopped (a signal) before its outcome: the others are not waited for either.
            let stopped = !background::has_ended(store, id)
                && got.iter().any(|e| e.state == State::Cancelled);
            ends.extend(got);
            if stopped {
                break;
            }
        }
        ends
    } else {
        coordinator::follow(store, &ids, timeout, &mut caller)?
    };
    // What has ended is seen: a workflow by its record, a task by its done.json.
    let ended: Vec<TaskId> = ids
        .iter()
        .filter(|id| background::has_ended(store, id))
        .cloned()
        .collect();
    seen(store, &ended);
    print_ends(&ends, format)
}

/// `baton supervise ROOT`: runs a workflow to its end from its record, with no one waiting (what
/// `send`, `&` and `d` start, detached). If it cannot, the record says why.
pub fn supervise(store: &Store, root: &str) -> anyhow::Result<Exit> {
    let root = TaskId::parse(root)?;
    let run = crate::coordinator::workflow::resume(store, &root)?;
    Ok(crate::exit::of_ends(&run.ends))
}

pub fn result(store: &Store, id: &str, format: Format) -> anyhow::Result<Exit> {
    let id = TaskId::parse(id)?;
    if let Some(rec) = workflow_of(store, &id)? {
        if rec.state.is_some() {
            seen(store, std::slice::from_ref(&id));
        }
        return workflow_result(store, &rec, format);
    }
    match coordinator::end_of(store, &id)? {
        Some(end) => {
            seen(store, std::slice::from_ref(&id));
            print_ends(&[end], format)
        }
        None => {
            let (_, agent) = coordinator::load(store, &id)?;
            let state = if inbox::is_queued(&agent, &id) {
                "queued"
            } else {
                "running"
            };
            Err(usage(format!(
                "task {id} has not finished yet ({state}); `baton wait {id}` waits for it"
            )))
        }
    }
}

/// `baton result ROOT` of a workflow: its outcome (its last stage's answers); with `--json`,
/// every task it ran, each with its place, state, timing and answer.
fn workflow_result(store: &Store, rec: &Record, format: Format) -> anyhow::Result<Exit> {
    let Some(state) = rec.state else {
        return Err(usage(format!(
            "workflow {} has not finished yet (stage {} of {} runs); `baton wait {}` waits for it",
            rec.root,
            rec.stage,
            rec.asked.stages.len(),
            rec.root
        )));
    };
    let ends = background::outcome(store, &rec.root).unwrap_or_default();
    if format == Format::Json {
        let history: Vec<crate::protocol::TaskEnd> = rec
            .steps
            .iter()
            .filter_map(|s| coordinator::end_of(store, &s.task_id).ok().flatten())
            .map(|mut e| {
                e.place = rec.place_of(&e.task_id);
                e
            })
            .collect();
        return super::print_history(&history, &ends);
    }
    if state != State::Ok && ends.is_empty() {
        // Nothing to show but why: the code is the workflow's end's, as for a task.
        eprintln!(
            "baton: workflow {} ended {}: {}",
            rec.root,
            state.as_str(),
            rec.error.as_deref().unwrap_or("no reason given")
        );
        return Ok(crate::exit::of_state(state));
    }
    print_ends(&ends, format)
}

pub fn cancel(store: &Store, ids: &[String]) -> anyhow::Result<Exit> {
    for id in parse_ids(ids)? {
        // A workflow's first task stands for the whole workflow.
        if let Some(rec) = workflow_of(store, &id)? {
            let what = background::cancel_workflow(store, &id, rec)?;
            println!("{id}: {}", what.describe());
            continue;
        }
        let what = coordinator::cancel(store, &id, State::Cancelled)?;
        println!("{id}: {}", what.describe());
    }
    Ok(Exit::Ok)
}

/// How long agent mail is kept when the config does not say.
pub const MESSAGE_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Removes finished tasks whose `done.json` is older than `older_than`. Unfinished tasks, tasks
/// someone is waiting on and the tasks of a workflow that has not ended are never removed.
pub fn gc(
    store: &Store,
    older_than: Duration,
    message_retention: Option<Duration>,
) -> anyhow::Result<Exit> {
    let cutoff = SystemTime::now()
        .checked_sub(older_than)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let dir = store.tasks_dir();
    let (mut removed, mut kept, mut in_use, mut in_workflow) = (0usize, 0usize, 0usize, 0usize);
    let mut unfinished = HashMap::new();
    let entries = fs::read_dir(&dir).map_err(|e| StoreError::io("listing", &dir, e))?;
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(|n| TaskId::parse(n).ok()) else {
            continue;
        };
        let task = store.task(&id);
        let old = fs::symlink_metadata(&task.done)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t <= cutoff);
        if !old {
            kept += 1;
            continue;
        }
        // A workflow that has not ended reads its earlier stages' ends (and its record) again.
        if in_unfinished_workflow(store, &id, &mut unfinished) {
            in_workflow += 1;
            continue;
        }
        // Held while the folder goes, so that no waiter starts on it half-removed.
        let _removing = match task.take_for_removal() {
            Ok(Some(held)) => Some(held),
            Ok(None) => {
                in_use += 1;
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(StoreError::io("locking", &task.task, e).into()),
        };
        match fs::remove_dir_all(&task.dir) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("removing", &task.dir, e).into()),
        }
    }
    // Background results whose task is gone have nothing left to show.
    for inbox in crate::protocol::results::all(store) {
        for id in inbox.entries(false).into_iter().chain(inbox.entries(true)) {
            if !crate::protocol::store::exists(&store.task(&id).dir) {
                inbox.forget(&id);
            }
        }
    }
    let waited = match in_use {
        0 => String::new(),
        n => format!(" and {n} someone is waiting on"),
    };
    let running = match in_workflow {
        0 => String::new(),
        n => format!(" and {n} of a workflow that has not ended"),
    };
    let mut purged = 0;
    for mailbox in crate::protocol::mail::all(store) {
        purged +=
            crate::protocol::mail::purge(&mailbox, message_retention.unwrap_or(MESSAGE_RETENTION))?;
    }
    let mail = match purged {
        0 => String::new(),
        n => format!("; {n} old message(s) purged"),
    };
    println!("removed {removed} finished task(s); kept {kept}{waited}{running}{mail}");
    Ok(Exit::Ok)
}

/// True if task `id` is the first task or a step of a workflow that has not ended (its record
/// has no outcome yet). `unfinished` remembers each root's answer.
fn in_unfinished_workflow(
    store: &Store,
    id: &TaskId,
    unfinished: &mut HashMap<TaskId, bool>,
) -> bool {
    let task = store.task(id);
    let root = crate::protocol::read_json::<crate::protocol::task::Task>(&task.task)
        .ok()
        .flatten()
        .and_then(|t| t.workflow)
        .unwrap_or_else(|| id.clone());
    *unfinished.entry(root).or_insert_with_key(|root| {
        workflow_of(store, root).is_ok_and(|rec| rec.is_some_and(|r| r.state.is_none()))
    })
}

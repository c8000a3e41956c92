//! Commands on tasks by id: `wait`, `result`, `cancel`, and `gc`, which bounds the history.

use std::fs;
use std::time::{Duration, SystemTime};

use super::{print_ends, Format};
use crate::coordinator::{self, Caller};
use crate::error::{usage, StoreError};
use crate::exit::Exit;
use crate::protocol::{inbox, State, Store, TaskId};

/// Parses task ids given on the command line.
pub fn parse_ids(ids: &[String]) -> anyhow::Result<Vec<TaskId>> {
    Ok(ids
        .iter()
        .map(|id| TaskId::parse(id))
        .collect::<Result<_, _>>()?)
}

pub fn wait(
    store: &Store,
    ids: &[String],
    timeout: Option<Duration>,
    format: Format,
) -> anyhow::Result<Exit> {
    let ids = parse_ids(ids)?;
    let mut caller = Caller::new(false)?;
    let ends = coordinator::follow(store, &ids, timeout, &mut caller)?;
    print_ends(&ends, format)
}

pub fn result(store: &Store, id: &str, format: Format) -> anyhow::Result<Exit> {
    let id = TaskId::parse(id)?;
    match coordinator::end_of(store, &id)? {
        Some(end) => print_ends(&[end], format),
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

pub fn cancel(store: &Store, ids: &[String]) -> anyhow::Result<Exit> {
    for id in parse_ids(ids)? {
        let what = coordinator::cancel(store, &id, State::Cancelled)?;
        println!("{id}: {}", what.describe());
    }
    Ok(Exit::Ok)
}

/// Removes finished tasks whose `done.json` is older than `older_than`. Unfinished tasks, and
/// tasks someone is waiting on, are never removed.
pub fn gc(store: &Store, older_than: Duration) -> anyhow::Result<Exit> {
    let cutoff = SystemTime::now()
        .checked_sub(older_than)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let dir = store.tasks_dir();
    let (mut removed, mut kept, mut in_use) = (0usize, 0usize, 0usize);
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
    let waited = match in_use {
        0 => String::new(),
        n => format!(" and {n} someone is waiting on"),
    };
    println!("removed {removed} finished task(s); kept {kept}{waited}");
    Ok(Exit::Ok)
}

//! `baton status`: every agent's state from the kernel (the lock) and the files (status.json,
//! the inbox), never from a model. A missing or malformed status.json is reported, not fatal.

use std::fmt::Write as _;

use serde_json::json;

use crate::exit::Exit;
use crate::protocol::control::{self, Reply, Request};
use crate::protocol::{inbox, lock, AgentPaths, AgentState, Store};

struct Row {
    name: String,
    state: String,
    pid: Option<u32>,
    driver: String,
    queued: usize,
    done: Option<u64>,
    current: Option<String>,
    last_active: Option<String>,
    problem: Option<String>,
}

fn row(paths: &AgentPaths) -> Row {
    let alive = lock::is_alive(&paths.lock);
    let (status, mut problem) = match paths.read_status() {
        Ok(s) => (s, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let wedged = alive && wedged(paths, &mut problem);
    let state = match (&status, alive) {
        _ if wedged => "wedged".into(),
        (Some(s), true) => s.status.as_str().to_string(),
        (None, true) => "running".into(),
        (Some(s), false) if matches!(s.status, AgentState::Working | AgentState::Blocked) => {
            "dead (its runner died while working)".into()
        }
        (_, false) => "stopped".into(),
    };
    let s = status.as_ref();
    Row {
        name: paths.name().into(),
        state,
        pid: s.filter(|_| alive).map(|s| s.pid),
        driver: s.map(|s| s.driver.clone()).unwrap_or_else(|| "?".into()),
        queued: inbox::depth(&paths.inbox_new),
        done: s.map(|s| s.tasks_done),
        current: s.filter(|_| alive).and_then(|s| s.current_task.clone()),
        last_active: s.map(|s| s.last_active.clone()),
        problem,
    }
}

/// A live runner that has a control socket but does not answer `ping` is wedged. (An agent
/// written by hand may have no socket at all; that is not a problem.)
fn wedged(paths: &AgentPaths, problem: &mut Option<String>) -> bool {
    if !crate::protocol::store::exists(&paths.sock) {
        return false;
    }
    let why = match control::call(&paths.sock, &Request::Ping) {
        Ok(Reply::Pong { .. }) => return false,
        Ok(other) => format!("unexpected reply {other:?}"),
        Err(e) => e.to_string(),
    };
    *problem = Some(format!("the runner holds its lock but is wedged: {why}"));
    true
}

/// The row of agent `name`; a folder that fails the safety checks is reported, never read
/// through.
fn named_row(store: &Store, name: &str) -> Option<Row> {
    match store.agent(name) {
        Ok(Some(paths)) => Some(row(&paths)),
        Ok(None) => None,
        Err(e) => Some(Row {
            name: name.into(),
            state: "unusable".into(),
            pid: None,
            driver: "?".into(),
            queued: 0,
            done: None,
            current: None,
            last_active: None,
            problem: Some(e.to_string()),
        }),
    }
}

/// Every agent's row, in name order. Each row is a handful of small reads; many agents are read
/// by a few threads at once.
fn rows(store: &Store, names: &[String]) -> Vec<Row> {
    const PER_THREAD: usize = 32;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(names.len().div_ceil(PER_THREAD))
        .max(1);
    if threads == 1 {
        return names.iter().filter_map(|n| named_row(store, n)).collect();
    }
    let chunk = names.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = names
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .filter_map(|n| named_row(store, n))
                        .collect::<Vec<Row>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().unwrap_or_default())
            .collect()
    })
}

pub fn status(store: &Store, json_out: bool) -> anyhow::Result<Exit> {
    let rows = rows(store, &store.agent_names()?);
    if json_out {
        let v: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "agent": r.name, "state": r.state, "pid": r.pid, "driver": r.driver,
                    "queued": r.queued, "tasks_done": r.done, "current_task": r.current,
                    "last_active": r.last_active, "problem": r.problem,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(Exit::Ok);
    }
    if rows.is_empty() {
        println!("no agents yet: start one with `baton agent start NAME`");
        return Ok(Exit::Ok);
    }
    // One write for the whole table, not one per line.
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:<10} {:>8} {:<6} {:>6} {:>6}  CURRENT",
        "AGENT", "STATE", "PID", "DRIVER", "QUEUED", "DONE"
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "{:<16} {:<10} {:>8} {:<6} {:>6} {:>6}  {}",
            r.name,
            r.state,
            r.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            r.driver,
            r.queued,
            r.done.map(|d| d.to_string()).unwrap_or_else(|| "-".into()),
            r.current.as_deref().unwrap_or("-"),
        );
        if let Some(p) = &r.problem {
            let _ = writeln!(out, "  problem: {p}");
        }
    }
    print!("{out}");
    Ok(Exit::Ok)
}

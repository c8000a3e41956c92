//! `baton status`: every agent's state from the kernel (the lock) and the files (status.json,
//! agent.json, the inbox), never from a model, grouped by project, pools with their members, and
//! the global queue in the order its tasks will start. A missing or malformed status.json is
//! reported, not fatal.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::json;

use crate::exit::Exit;
use crate::protocol::control::{self, Reply, Request};
use crate::protocol::{inbox, lock, AgentPaths, AgentState, Store, Task, TaskId};

pub struct Row {
    pub name: String,
    pub state: String,
    pub pid: Option<u32>,
    pub driver: String,
    pub queued: usize,
    pub done: Option<u64>,
    pub current: Option<String>,
    pub last_active: Option<String>,
    pub problem: Option<String>,
    /// The project it belongs to (the folder of the `.baton.toml` that declares it).
    pub project: Option<PathBuf>,
    /// The pool it is a member of (the pool's id).
    pub pool: Option<String>,
    /// The git branch of its own worktree.
    pub branch: Option<String>,
    /// Messages waiting unread in its mailbox.
    pub unread: usize,
    /// The done-gates running on its answers: (task id, command).
    pub gates: Vec<(String, String)>,
}

fn row(paths: &AgentPaths) -> Row {
    let alive = lock::is_alive(&paths.lock);
    let (status, mut problem) = match paths.read_status() {
        Ok(s) => (s, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let spec = paths.read_spec().ok().flatten();
    let wedged = alive && wedged(paths, &mut problem);
    let state = match (&status, alive) {
        _ if wedged => "wedged".into(),
        (Some(s), true) => s.status.as_str().to_string(),
        (None, true) => "running".into(),
        (Some(s), false) if matches!(s.status, AgentState::Working | AgentState::Blocked) => {
            "dead (its runner died while working)".into()
        }
        (None, false) if paths.is_pool() => "pool".into(),
        (_, false) => "stopped".into(),
    };
    let s = status.as_ref();
    Row {
        name: paths.name().into(),
        state,
        pid: s.filter(|_| alive).map(|s| s.pid),
        driver: s
            .map(|s| s.driver.clone())
            .or_else(|| spec.as_ref().map(|s| s.driver.as_str().to_string()))
            .unwrap_or_else(|| "-".into()),
        queued: inbox::depth(&paths.inbox_new),
        done: s.map(|s| s.tasks_done),
        current: s.filter(|_| alive).and_then(|s| s.current_task.clone()),
        last_active: s.map(|s| s.last_active.clone()),
        problem,
        project: spec.as_ref().and_then(|s| s.project.clone()),
        pool: spec.as_ref().and_then(|s| s.pool.clone()),
        branch: spec.and_then(|s| s.branch),
        unread: 0,
        gates: crate::coordinator::gate::running(paths),
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
            project: None,
            pool: None,
            branch: None,
            unread: 0,
            gates: Vec::new(),
        }),
    }
}

/// Every agent's row, in name order. Each row is a handful of small reads; many agents are read
/// by a few threads at once.
pub fn rows(store: &Store) -> anyhow::Result<Vec<Row>> {
    let mut rows = read_rows(store)?;
    for mb in crate::protocol::mail::all(store) {
        if let Some(r) = rows.iter_mut().find(|r| r.name == mb.agent) {
            r.unread = crate::protocol::mail::unread(&mb);
        }
    }
    // A pool's folder holds only its inbox: it belongs to its members' project.
    let projects: Vec<(String, Option<PathBuf>)> = rows
        .iter()
        .filter_map(|r| r.pool.clone().map(|p| (p, r.project.clone())))
        .collect();
    for r in rows.iter_mut().filter(|r| r.state == "pool") {
        if let Some((_, project)) = projects.iter().find(|(p, _)| *p == r.name) {
            r.project = project.clone();
        }
    }
    Ok(rows)
}

fn read_rows(store: &Store) -> anyhow::Result<Vec<Row>> {
    const PER_THREAD: usize = 32;
    let names = store.agent_names()?;
    // Asking how many CPUs there are reads the cgroup's files: only worth it for many agents.
    let threads = match names.len() {
        n if n <= PER_THREAD => 1,
        n => std::thread::available_parallelism()
            .map_or(1, |cpus| cpus.get())
            .min(n.div_ceil(PER_THREAD)),
    };
    if threads == 1 {
        return Ok(names.iter().filter_map(|n| named_row(store, n)).collect());
    }
    let chunk = names.len().div_ceil(threads);
    Ok(std::thread::scope(|scope| {
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
    }))
}

/// A task waiting for a slot of the global limit, in the order they will start.
pub struct Waiting {
    pub task: TaskId,
    pub priority: u8,
    pub agent: String,
}

/// The global queue (tasks waiting for a slot under `max_concurrent`), in start order; entries
/// left by runners that died are skipped.
pub fn global_queue(store: &Store) -> Vec<Waiting> {
    crate::runner::slots::queue_entries(&store.queue_dir())
        .into_iter()
        .filter(|(_, path)| crate::runner::slots::entry_alive(path))
        .filter_map(|(name, _)| {
            let entry = inbox::Entry::parse(&name)?;
            let task: Option<Task> = crate::protocol::read_json(&store.task(&entry.id).task)
                .ok()
                .flatten();
            Some(Waiting {
                priority: name.as_bytes()[0] - b'0',
                agent: task.map(|t| t.agent).unwrap_or_else(|| "?".into()),
                task: entry.id,
            })
        })
        .collect()
}

pub fn status(store: &Store, json_out: bool) -> anyhow::Result<Exit> {
    let rows = rows(store)?;
    if json_out {
        let v: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "agent": r.name, "state": r.state, "pid": r.pid, "driver": r.driver,
                    "queued": r.queued, "tasks_done": r.done, "current_task": r.current,
                    "last_active": r.last_active, "problem": r.problem,
                    "project": r.project, "pool": r.pool, "branch": r.branch,
                    "unread": r.unread,
                    "gates": r.gates.iter().map(|(t, c)| json!({"task_id": t, "command": c})).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(Exit::Ok);
    }
    if rows.is_empty() {
        println!("no agents yet: start one with `baton agent start NAME`, or declare them in .baton.toml");
        return Ok(Exit::Ok);
    }
    print!("{}", table(&rows, &global_queue(store)));
    Ok(Exit::Ok)
}

/// The table: agents grouped by project (global ones first), each pool followed by its members;
/// then the global queue. One write for it all.
pub fn table(rows: &[Row], queue: &[Waiting]) -> String {
    let mut out = String::new();
    let mut projects: Vec<Option<&PathBuf>> = rows.iter().map(|r| r.project.as_ref()).collect();
    projects.sort();
    projects.dedup();
    for project in projects {
        match project {
            Some(p) => {
                let _ = writeln!(out, "project {}", p.display());
            }
            None if rows.iter().any(|r| r.project.is_some()) => {
                let _ = writeln!(out, "global");
            }
            None => {}
        }
        let _ = writeln!(
            out,
            "  {:<24} {:<10} {:>8} {:<6} {:>6} {:>6} {:>4}  CURRENT",
            "AGENT", "STATE", "PID", "DRIVER", "QUEUED", "DONE", "MAIL"
        );
        let group: Vec<&Row> = rows
            .iter()
            .filter(|r| r.project.as_ref() == project)
            .collect();
        for r in group.iter().filter(|r| r.pool.is_none()) {
            line(&mut out, r, "");
            for m in group
                .iter()
                .filter(|m| m.pool.as_deref() == Some(r.name.as_str()))
            {
                line(&mut out, m, "  ");
            }
        }
        // Members whose pool has no folder yet.
        for m in group.iter().filter(|m| {
            m.pool
                .as_ref()
                .is_some_and(|p| !group.iter().any(|r| &r.name == p))
        }) {
            line(&mut out, m, "");
        }
    }
    if !queue.is_empty() {
        let _ = writeln!(
            out,
            "waiting for a slot (max_concurrent), in the order they start:"
        );
        for (i, w) in queue.iter().enumerate() {
            let _ = writeln!(
                out,
                "  {}. task {} for {} (priority {})",
                i + 1,
                w.task,
                w.agent,
                w.priority
            );
        }
    }
    out
}

fn line(out: &mut String, r: &Row, indent: &str) {
    let name = crate::protocol::agent::name_of(&r.name);
    let shown = match &r.branch {
        Some(b) => format!("{indent}{name} [{b}]"),
        None => format!("{indent}{name}"),
    };
    let _ = writeln!(
        out,
        "  {:<24} {:<10} {:>8} {:<6} {:>6} {:>6} {:>4}  {}",
        shown,
        r.state,
        r.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
        r.driver,
        r.queued,
        r.done.map(|d| d.to_string()).unwrap_or_else(|| "-".into()),
        r.unread,
        r.current.as_deref().unwrap_or("-"),
    );
    for (task, command) in &r.gates {
        let _ = writeln!(out, "    gate running on task {task}: {command}");
    }
    if let Some(p) = &r.problem {
        let _ = writeln!(out, "    problem: {p}");
    }
}

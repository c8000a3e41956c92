//! `baton status`: every agent's state from the kernel (the lock) and the files (status.json,
//! the inbox), never from a model. A missing or malformed status.json is reported, not fatal.

use serde_json::json;

use crate::control::{self, Reply, Request, Unreachable};
use crate::deliver;
use crate::exit::{Exit, Result};
use crate::lock;
use crate::protocol::{self, AgentState, Status};
use crate::store::Store;

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

fn row(store: &Store, name: &str) -> Row {
    let paths = store.agent(name).ok().flatten();
    let dir = store.agent_dir(name);
    let alive = lock::is_alive(&dir.join("lock"));
    let (status, mut problem) = match protocol::read_json::<Status>(&dir.join("status.json")) {
        Ok(s) => (s, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let wedged = alive && wedged(&dir, &mut problem);
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
        name: name.into(),
        state,
        pid: s.filter(|_| alive).map(|s| s.pid),
        driver: s.map(|s| s.driver.clone()).unwrap_or_else(|| "?".into()),
        queued: paths
            .map(|p| deliver::queue_depth(&p.inbox_new))
            .unwrap_or(0),
        done: s.map(|s| s.tasks_done),
        current: s.filter(|_| alive).and_then(|s| s.current_task.clone()),
        last_active: s.map(|s| s.last_active.clone()),
        problem,
    }
}

/// A live runner that has a control socket but does not answer `ping` is wedged. (An agent
/// written by hand may have no socket at all; that is not a problem.)
fn wedged(dir: &std::path::Path, problem: &mut Option<String>) -> bool {
    let sock = control::socket_path(dir);
    if !crate::store::exists(&sock) {
        return false;
    }
    let why = match control::call(&sock, &Request::Ping) {
        Ok(Reply::Pong { .. }) => return false,
        Ok(other) => format!("unexpected reply {other:?}"),
        Err(Unreachable::NoListener) => "nothing listens on its control socket".into(),
        Err(Unreachable::NoAnswer(e)) => format!("no answer on its control socket ({e})"),
    };
    *problem = Some(format!("the runner holds its lock but is wedged: {why}"));
    true
}

pub fn status(store: &Store, json_out: bool) -> Result<Exit> {
    let rows: Vec<Row> = store.agent_names()?.iter().map(|n| row(store, n)).collect();
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
    println!(
        "{:<16} {:<10} {:>8} {:<6} {:>6} {:>6}  CURRENT",
        "AGENT", "STATE", "PID", "DRIVER", "QUEUED", "DONE"
    );
    for r in &rows {
        println!(
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
            println!("  problem: {p}");
        }
    }
    Ok(Exit::Ok)
}

//! The coordinator: the one place that delegates. Every entry point (`ask`, `send`, `wait`,
//! editor mode, the git hooks, and through them the demo) hands it a `Plan` and gets back the
//! `TaskEnd`s it came to; entry points parse and print, nothing more.
//!
//! Delegation is: resolve the agents of every stage (known, and startable unless the plan
//! queues), start declared agents on demand, deliver, wait (the `wait` module's one loop), and
//! step each task's end — a done-gate, a retry, the next stage — until the plan has its outcome
//! (`workflow`). When the wait ends early (a signal, a key, the deadline, a lost agent) what is
//! left is cancelled or withdrawn; when no one will wait any more (`send`, a detach) the outcome
//! goes to the results inbox (`background`). A task's end is never invented where it can be
//! read: a task that finished is reported as it finished.
//!
//! Errors are only what keeps delegation from happening at all (bad input, an agent that is not
//! running, a failing machine); everything that happens to a delivered task is its `TaskEnd`.

pub mod background;
pub mod compose;
pub mod gate;
pub mod plan;
pub mod resolve;
pub mod team;
pub mod wait;
pub mod workflow;

use std::time::Duration;

use crate::config::Config;
use crate::error::Error;
use crate::protocol::control;
use crate::protocol::inbox::{self, Stopped};
use crate::protocol::{store, AgentPaths, State, Store, Task, TaskEnd, TaskId, TaskPaths};
use crate::sys::signals::{self, Signals};
use crate::sys::term::Tty;
use crate::sys::time;
use crate::test_hooks::pause_point;
use wait::{Pending, Stop};

pub use plan::Plan;
pub use workflow::Run;

/// The caller's side of a wait: its signals (installed once, early, before anything is
/// delivered) and its terminal, when a person is there to press keys and see a status line.
pub struct Caller {
    pub sigs: Signals,
    pub tty: Option<Tty>,
}

impl Caller {
    /// A caller that shows a status line on the terminal (if standard error is one) without
    /// taking its keys: `baton ask` at a shell.
    pub fn watching() -> anyhow::Result<Caller> {
        let mut caller = Caller::new(false)?;
        caller.tty = Tty::status_only();
        Ok(caller)
    }

    /// Installs the stop signals; with `terminal`, takes the terminal if there is one.
    pub fn new(terminal: bool) -> anyhow::Result<Caller> {
        let sigs = Signals::install(&signals::STOP_SIGNALS).map_err(|e| {
            Error::Environment(format!(
                "installing signal handlers: {e}{}",
                crate::error::advice(&e)
            ))
        })?;
        let tty = if terminal { Tty::open() } else { None };
        Ok(Caller { sigs, tty })
    }
}

/// Runs `plan` (as `config` names its agents) and returns its outcome's ends: the last stage's
/// answers, or the ends that stopped it. `workflow::run` gives every task's end as well.
pub fn delegate(
    store: &Store,
    config: &Config,
    plan: &Plan,
    caller: &mut Caller,
) -> anyhow::Result<Vec<TaskEnd>> {
    Ok(workflow::run(store, config, plan, caller)?.ends)
}

/// Of the ends of a plan run without waiting (`send`, `&`), the one that says it was stopped
/// (a signal as it was delivered or handed over), if any: the others are detached, or ended
/// already.
pub fn stopped_end(ends: &[TaskEnd]) -> Option<&TaskEnd> {
    ends.iter()
        .find(|e| !matches!(e.state, State::Detached | State::Ok))
}

/// Waits for tasks delivered earlier (`baton wait`): the caller does not own them, so stopping
/// the wait leaves them running.
pub fn follow(
    store: &Store,
    ids: &[TaskId],
    timeout: Option<Duration>,
    caller: &mut Caller,
) -> anyhow::Result<Vec<TaskEnd>> {
    let mut pending = Vec::new();
    for id in ids {
        let (task, agent) = load(store, id)?;
        let pool = agent.is_pool();
        let mut p = Pending::new(agent, store.task(id), task.created_ms);
        p.pool = pool;
        pending.push(p);
    }
    let how = How {
        timeout,
        watch_liveness: true,
    };
    finish(store, &mut pending, caller, &how)
}

/// A task named by its id: its envelope and its agent.
pub fn load(store: &Store, id: &TaskId) -> anyhow::Result<(Task, AgentPaths)> {
    let paths = store.task(id);
    let task: Task = crate::protocol::read_json(&paths.task)?
        .ok_or_else(|| Error::Usage(format!("no such task: {id}")))?;
    let agent = store.agent(&task.agent)?.ok_or_else(|| {
        Error::Usage(format!(
            "task {id} names agent {:?}, which has no folder",
            task.agent
        ))
    })?;
    Ok((task, agent))
}

/// A finished task's end with its answer; `None` if it has not finished.
pub fn end_of(store: &Store, id: &TaskId) -> anyhow::Result<Option<TaskEnd>> {
    let (task, _) = load(store, id)?;
    let paths = store.task(id);
    // Held while the end and the answer are read: `baton gc` leaves the folder alone meanwhile.
    let _held = paths.hold();
    Ok(paths
        .read_end(&task.agent)
        .map(|end| with_answer(end, &paths, task.created_ms)))
}

/// Withdraws a queued task, or asks its agent to stop it, as a caller (not the runner) does: a
/// watcher of a withdrawn task is woken through the runner.
pub fn cancel(store: &Store, id: &TaskId, state: State) -> anyhow::Result<Stopped> {
    let (_, agent) = load(store, id)?;
    Ok(stop_task(store, &agent, id, state)?)
}

/// Takes a queued task back or asks its agent to stop it, then wakes the runner's watchers of a
/// task it took back.
fn stop_task(
    store: &Store,
    agent: &AgentPaths,
    id: &TaskId,
    state: State,
) -> Result<Stopped, crate::error::StoreError> {
    let stopped = inbox::withdraw_or_cancel(store, agent, id, state)?;
    if stopped == Stopped::Withdrawn {
        control::tell_finished(agent, id);
    }
    Ok(stopped)
}

/// How a wait goes.
struct How {
    timeout: Option<Duration>,
    /// A runner's death ends the wait for its tasks (unless another runner takes them over).
    watch_liveness: bool,
}

/// Waits for tasks the caller does not own (`baton wait`), and returns each one's end: read from
/// its folder when it finished, else what the early end of the wait made of it. Stopping the
/// wait leaves the tasks alone.
fn finish(
    store: &Store,
    pending: &mut [Pending],
    caller: &mut Caller,
    how: &How,
) -> anyhow::Result<Vec<TaskEnd>> {
    let opts = wait::Options {
        deadline: how.timeout.and_then(time::deadline_after),
        watch_liveness: how.watch_liveness,
        owned: false,
        any: false,
    };
    let stop = wait::wait(store, pending, &caller.sigs, &opts, caller.tty.as_mut())?;
    let lost_task = match stop {
        Stop::Lost(i, why) => Some((i, record_loss(&pending[i], why))),
        _ => None,
    };
    let (state, why) = match stop {
        Stop::Ended => {
            pause_point(crate::test_hooks::WAITED);
            return Ok(pending.iter().map(read_finished).collect());
        }
        Stop::Signal(sig) => (
            State::Cancelled,
            format!("cancelled by {}", signals::name(sig)),
        ),
        Stop::CancelKey => (State::Cancelled, "cancelled by Ctrl-C".into()),
        Stop::Timeout => (
            State::Timeout,
            format!(
                "no answer within {}",
                how.timeout.map(time::human).unwrap_or_default()
            ),
        ),
        Stop::Detach => (State::Detached, "detached; the task keeps running".into()),
        Stop::Lost(..) => (
            State::Cancelled,
            "cancelled: another agent of the fan-out was lost".into(),
        ),
    };
    let ends = pending.iter().enumerate().map(|(i, p)| {
        let recorded = p.task.read_end(p.agent.name());
        if let Some((_, message)) = lost_task.as_ref().filter(|(at, _)| *at == i) {
            return match recorded {
                Some(end) if end.state != State::AgentLost => {
                    with_answer(end, &p.task, p.created_ms)
                }
                _ => p.ended(State::AgentLost, message.clone()),
            };
        }
        match recorded.filter(|_| state != State::Detached) {
            // It finished before the wait ended.
            Some(end) => with_answer(end, &p.task, p.created_ms),
            None if state == State::Detached => p.ended(
                state,
                format!("{why}: `baton wait {0}` or `baton result {0}`", p.task.id),
            ),
            None => p.ended(state, why.clone()),
        }
    });
    Ok(ends.collect())
}

/// Stops a task the caller owns as `state` (withdraws it if it is still queued, else asks its
/// agent to stop it), and returns its end: as recorded if it finished anyway (or succeeded),
/// else `why` and what was done about it.
fn stop_one(store: &Store, p: &Pending, state: State, why: &str) -> TaskEnd {
    let stopped = if p.task.is_done() {
        None
    } else {
        stop_task(store, &p.agent, &p.task.id, state)
            .ok()
            .filter(|s| *s != Stopped::AlreadyDone)
    };
    if let Some(end) = p.task.read_end(p.agent.name()) {
        if stopped.is_none() || end.is_ok() {
            return with_answer(end, &p.task, p.created_ms);
        }
    }
    let how = stopped
        .map(|s| format!(" ({})", s.describe()))
        .unwrap_or_default();
    p.ended(state, format!("{why}{how}"))
}

/// The recorded ends of tasks `ids`, with their answers (a task without one is left out).
fn ends_of(store: &Store, ids: &[TaskId]) -> Vec<TaskEnd> {
    ids.iter()
        .filter_map(|id| end_of(store, id).ok().flatten())
        .collect()
}

/// The end of a task that finished, with its answer: as recorded, else as its runner reported
/// it (it could not record it).
fn read_finished(p: &Pending) -> TaskEnd {
    match p
        .task
        .read_end(p.agent.name())
        .or_else(|| p.reported.clone())
    {
        Some(end) => with_answer(end, &p.task, p.created_ms),
        None if !store::exists(&p.task.dir) => p.ended(
            State::Failed,
            format!(
                "its folder {} was removed (not by baton: `gc` leaves a task alone while it is waited on) before its end could be read",
                p.task.dir.display()
            ),
        ),
        None => p.ended(State::Failed, "its done.json disappeared".into()),
    }
}

/// Fills in an end read from a task folder: the answer, and when the task was created.
fn with_answer(mut end: TaskEnd, task: &TaskPaths, created_ms: u64) -> TaskEnd {
    end.answer = task.read_answer();
    end.created_ms.get_or_insert(created_ms);
    end
}

/// Records the end of a task lost with its runner (the next runner would record the same for
/// one it had claimed), and says what happened.
fn record_loss(p: &Pending, how: wait::Lost) -> String {
    let name = p.agent.name();
    let id = &p.task.id;
    let last = store::last_line(&p.agent.log).unwrap_or_else(|| "(empty)".into());
    let (record, message) = match how {
        wait::Lost::Claimed => (
            Some("the agent's runner died before finishing the task"),
            format!("agent {name} died before answering (task {id}). Its log said last: {last}"),
        ),
        wait::Lost::Withdrawn => (
            Some("the agent's runner died before claiming it; the caller took it back"),
            format!("agent {name} died before it took the task (task {id}, taken back). Its log said last: {last}"),
        ),
        wait::Lost::Queued => (
            None,
            format!("agent {name} is not running: task {id} waits in its inbox for its next runner (`baton agent start {name}`)"),
        ),
        wait::Lost::Vanished => (
            None,
            format!("task {id} of agent {name} has no end and is neither queued nor running: its folder or inbox entry was removed"),
        ),
    };
    if let Some(why) = record {
        if store::check_dir(&p.task.dir).is_ok() {
            let _ = p
                .task
                .record_end(&TaskEnd::new(id, name, State::AgentLost).with_error(why));
        }
    }
    message
}

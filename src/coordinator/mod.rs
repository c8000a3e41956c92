//! The coordinator: the one place that delegates. Every entry point (`ask`, `send`, `wait`,
//! editor mode, and through them the demo) hands it a `Plan` and gets back one `TaskEnd` per
//! task; entry points parse and print, nothing more.
//!
//! Delegation is: resolve the agents (known, and live unless the plan queues), deliver to each
//! (taking back what was delivered if one delivery fails), wait for every task to end (the
//! `wait` module's one loop), and turn the way the wait ended into ends — cancelling or
//! withdrawing what is left when the caller owns the tasks and the wait ended early (a signal,
//! a key, the deadline, a lost agent). A task's end is never invented where it can be read: a
//! task that finished is reported as it finished.
//!
//! Errors are only what keeps delegation from happening at all (bad input, an agent that is not
//! running, a failing machine); everything that happens to a delivered task is its `TaskEnd`.

pub mod resolve;
pub mod team;
pub mod wait;

use std::time::Duration;

use crate::config::Config;
use crate::error::Error;
use crate::protocol::control;
use crate::protocol::inbox::{self, Delivered, Request, Stopped};
use crate::protocol::{store, AgentPaths, State, Store, Task, TaskEnd, TaskId, TaskPaths};
use crate::sys::signals::{self, Signals};
use crate::sys::term::Tty;
use crate::sys::time;
use crate::test_hooks::{pause_point, BEFORE_DELIVER, CANCELLING};
use resolve::Target;
use wait::{Pending, Stop};

/// What to delegate and how.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The agents, each gets the same prompt (fan-out).
    pub agents: Vec<String>,
    pub prompt: Vec<u8>,
    /// 0 (first) to 9 (last); else the agent's declared priority, else 5.
    pub priority: Option<u8>,
    /// The task is cancelled (as `timeout`) after this long; else after the agent's declared
    /// timeout, else the config's `default_timeout`, else never.
    pub timeout: Option<Duration>,
    /// Deliver even if an agent has no live runner, and wait for one to start.
    pub queue: bool,
    /// Wait for the answers (`ask`, editor mode), or return once delivered (`send`): then every
    /// end is `detached`.
    pub wait: bool,
    /// The caller has a `--queue` option to offer when an agent is not running.
    pub offer_queue: bool,
}

/// The caller's side of a wait: its signals (installed once, early, before anything is
/// delivered) and its terminal, when a person is there to press keys and see a status line.
pub struct Caller {
    pub sigs: Signals,
    pub tty: Option<Tty>,
}

impl Caller {
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

/// Delivers `plan`'s prompt to its agents (as `config` names them) and, if the plan waits, waits
/// for their ends.
pub fn delegate(
    store: &Store,
    config: &Config,
    plan: &Plan,
    caller: &mut Caller,
) -> anyhow::Result<Vec<TaskEnd>> {
    let targets = resolve::resolve(store, config, &plan.agents)?;
    resolve::ready(store, &targets, plan.queue, plan.offer_queue)?;
    let timeouts: Vec<Option<Duration>> = targets
        .iter()
        .map(|t| {
            plan.timeout
                .or_else(|| t.decl().and_then(|d| d.timeout))
                .or_else(|| config.default_timeout.as_ref().map(|s| s.value))
        })
        .collect();
    pause_point(BEFORE_DELIVER);
    let delivered = deliver_all(store, config, plan, &targets, &timeouts)?;
    if !plan.wait {
        return Ok(delivered.iter().map(|(d, _)| detached_at_once(d)).collect());
    }
    let mut pending: Vec<Pending> = delivered
        .into_iter()
        .zip(&targets)
        .map(|((d, paths), t)| {
            let mut p = Pending::new(paths, d.task, d.created_ms);
            p.pool = matches!(t, Target::Pool { .. });
            p
        })
        .collect();
    // The caller gives up when every task could have timed out.
    let timeout = timeouts
        .iter()
        .copied()
        .collect::<Option<Vec<Duration>>>()
        .and_then(|t| t.into_iter().max());
    let how = How {
        timeout,
        watch_liveness: !plan.queue,
        owned: true,
    };
    finish(store, &mut pending, caller, &how)
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
        owned: false,
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

/// Delivers the prompt to every target (an agent's inbox, or a pool's); if one delivery fails,
/// withdraws the others. Returns each delivery with the agent folder it went to.
fn deliver_all(
    store: &Store,
    config: &Config,
    plan: &Plan,
    targets: &[Target],
    timeouts: &[Option<Duration>],
) -> anyhow::Result<Vec<(Delivered, AgentPaths)>> {
    let mut delivered: Vec<(Delivered, AgentPaths)> = Vec::with_capacity(targets.len());
    for (t, timeout) in targets.iter().zip(timeouts) {
        let req = Request {
            prompt: &plan.prompt,
            priority: plan
                .priority
                .or_else(|| t.decl().and_then(|d| d.priority))
                .unwrap_or(5),
            timeout: *timeout,
        };
        let result = match t {
            Target::Agent { paths, .. } => inbox::deliver(store, paths, &req)
                .map(|d| (d, paths.clone()))
                .map_err(anyhow::Error::new),
            Target::Pool { decl } => team::deliver_to_pool(store, config, decl, &req)
                .and_then(|d| Ok((d, store.agent_paths(&decl.agent_id(None))?))),
        };
        match result {
            Ok(d) => delivered.push(d),
            Err(e) => {
                for (d, owner) in &delivered {
                    let _ = inbox::withdraw_or_cancel(store, owner, &d.task.id, State::Cancelled);
                }
                let name = t.decl().map_or_else(
                    || match t {
                        Target::Agent { paths, .. } => paths.name().to_string(),
                        Target::Pool { decl } => decl.name.clone(),
                    },
                    |d| d.name.clone(),
                );
                return Err(e.context(format!("delivering the task to {name}")));
            }
        }
    }
    Ok(delivered)
}

fn detached_at_once(d: &Delivered) -> TaskEnd {
    TaskEnd {
        created_ms: Some(d.created_ms),
        ..TaskEnd::new(&d.task.id, &d.agent, State::Detached).with_error(format!(
            "delivered; the task runs on: `baton wait {0}` or `baton result {0}`",
            d.task.id
        ))
    }
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
    /// The caller delivered these tasks: when the wait ends early it withdraws or cancels them.
    owned: bool,
}

/// Waits for every pending task, and returns each one's end: read from its folder when it
/// finished, else what the early end of the wait made of it.
fn finish(
    store: &Store,
    pending: &mut [Pending],
    caller: &mut Caller,
    how: &How,
) -> anyhow::Result<Vec<TaskEnd>> {
    let opts = wait::Options {
        deadline: how.timeout.and_then(time::deadline_after),
        watch_liveness: how.watch_liveness,
        owned: how.owned,
    };
    let stop = match wait::wait(store, pending, &caller.sigs, &opts, caller.tty.as_mut()) {
        Ok(stop) => stop,
        Err(e) => {
            // A wait that cannot even start (the inotify limits) takes back what it delivered.
            stop_rest(store, pending, how, State::Cancelled);
            return Err(e.into());
        }
    };
    let lost_task = match stop {
        Stop::Lost(i, why) => Some((i, record_loss(&pending[i], why))),
        _ => None,
    };
    let (state, why) = match stop {
        Stop::AllDone => {
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
    let stopped = match state {
        State::Detached => Vec::new(),
        State::Timeout => stop_rest(store, pending, how, State::Timeout),
        _ => stop_rest(store, pending, how, State::Cancelled),
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
        if let Some(end) = recorded.filter(|_| state != State::Detached) {
            // It finished before the wait ended, or ended as the caller stopped it.
            if !stopped.iter().any(|(id, _)| id == &p.task.id) || end.state == State::Ok {
                return with_answer(end, &p.task, p.created_ms);
            }
        }
        let how = match (state, stopped.iter().find(|(id, _)| id == &p.task.id)) {
            (State::Detached, _) => {
                format!(": `baton wait {0}` or `baton result {0}`", p.task.id)
            }
            (_, Some((_, s))) => format!(" ({})", s.describe()),
            _ => String::new(),
        };
        p.ended(state, format!("{why}{how}"))
    });
    Ok(ends.collect())
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
        None => p.ended(State::Failed, "its done.json disappeared".into()),
    }
}

/// Fills in an end read from a task folder: the answer, and when the task was created.
fn with_answer(mut end: TaskEnd, task: &TaskPaths, created_ms: u64) -> TaskEnd {
    end.answer = task.read_answer();
    end.created_ms.get_or_insert(created_ms);
    end
}

/// Withdraws or cancels every unfinished task the caller owns; returns those it stopped.
fn stop_rest(
    store: &Store,
    pending: &[Pending],
    how: &How,
    state: State,
) -> Vec<(TaskId, Stopped)> {
    if !how.owned {
        return Vec::new(); // `baton wait` merely stops waiting
    }
    pause_point(CANCELLING);
    pending
        .iter()
        .filter(|p| !p.task.is_done())
        .filter_map(|p| match stop_task(store, &p.agent, &p.task.id, state) {
            Ok(Stopped::AlreadyDone) | Err(_) => None,
            Ok(s) => Some((p.task.id.clone(), s)),
        })
        .collect()
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

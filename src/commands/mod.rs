//! The commands, and the coordination they share: check that agents are reachable, deliver,
//! wait, and turn the way a wait ended into results or a `Failure` (cancelling what is left).

pub mod agent;
pub mod ask;
pub mod demo;
pub mod install;
pub mod status;
pub mod tasks;

use std::io::Write;
use std::time::Instant;

use crate::deliver::{self, Delivered, Request, Stopped};
use crate::exit::{Exit, Failure, Result};
use crate::protocol::{Done, State};
use crate::signals::{self, Signals};
use crate::store::{self, AgentPaths, Store};
use crate::term::Tty;
use crate::wait::{self, End, Pending};
use crate::{lock, time};

/// How the message of a detached wait begins (editor mode tells it from a cancellation by it).
pub const DETACHED: &str = "detached";

/// A finished task and its answer.
pub struct Answer {
    pub agent: String,
    pub task_id: String,
    pub done: Done,
    pub answer: Vec<u8>,
    pub created_ms: u64,
}

/// The agents named, each known to the state folder; unknown → exit 2 with the live agents.
pub fn resolve_agents(store: &Store, names: &[String]) -> Result<Vec<AgentPaths>> {
    names
        .iter()
        .map(|name| {
            store.agent(name)?.ok_or_else(|| {
                let live = live_agents(store);
                Failure::msg(
                    Exit::Usage,
                    format!(
                        "unknown agent {name:?}; live agents: {}. Start one with `baton agent start {name}`",
                        if live.is_empty() { "none".to_string() } else { live.join(", ") }
                    ),
                )
            })
        })
        .collect()
}

/// The names of the agents whose runner is alive.
pub fn live_agents(store: &Store) -> Vec<String> {
    store
        .agent_names()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| lock::is_alive(&store.agent_dir(n).join("lock")))
        .collect()
}

/// Fails with exit 5 if an agent has no live runner.
pub fn require_live(agents: &[AgentPaths]) -> Result<()> {
    for a in agents {
        if !lock::is_alive(&a.lock) {
            return Err(Failure::msg(
                Exit::AgentLost,
                format!(
                    "agent {0} is not running: start it with `baton agent start {0}` (or pass --queue to leave the task for its next runner)",
                    a.name()
                ),
            ));
        }
    }
    Ok(())
}

/// Delivers one request to every agent; if one delivery fails, withdraws the others.
pub fn deliver_all(store: &Store, agents: &[AgentPaths], req: &Request) -> Result<Vec<Delivered>> {
    crate::test_hooks::pause_point(crate::test_hooks::BEFORE_DELIVER);
    let mut delivered = Vec::new();
    for a in agents {
        match deliver::deliver(store, a, req) {
            Ok(d) => delivered.push(d),
            Err(e) => {
                for (d, owner) in delivered.iter().zip(agents) {
                    let _ = deliver::withdraw_or_cancel(store, owner, &d.task_id, State::Cancelled);
                }
                return Err(Failure::new(
                    Exit::Usage,
                    anyhow::Error::new(e).context(format!("delivering the task to {}", a.name())),
                ));
            }
        }
    }
    Ok(delivered)
}

pub fn installed_signals() -> Result<Signals> {
    Signals::install(&signals::STOP_SIGNALS)
        .map_err(|e| Failure::msg(Exit::Usage, format!("installing signal handlers: {e}")))
}

/// How to wait.
pub struct How {
    pub deadline: Option<Instant>,
    /// Fail as soon as an agent's runner dies.
    pub watch_liveness: bool,
    /// The caller delivered these tasks: on a signal, a timeout or a lost agent it withdraws or
    /// cancels them.
    pub owned: bool,
}

/// Waits for every pending task and returns the answers, or the failure that ended the wait
/// (after withdrawing or cancelling whatever had not finished).
pub fn await_answers(
    store: &Store,
    pending: &mut [Pending],
    sigs: &Signals,
    how: &How,
    tty: Option<&mut Tty>,
) -> Result<Vec<Answer>> {
    let opts = wait::Options {
        deadline: how.deadline,
        watch_liveness: how.watch_liveness,
    };
    let end = wait::wait(store, pending, sigs, &opts, tty);
    // Only the caller that delivered the tasks takes them back; `baton wait` merely stops waiting.
    let stop_rest = |state: State| {
        crate::test_hooks::pause_point(crate::test_hooks::CANCELLING);
        for p in pending.iter().filter(|p| p.done.is_none() && how.owned) {
            let _ = deliver::stop_task(store, &p.agent, &p.task_id, state);
        }
    };
    // A wait that cannot even start (the inotify limits) takes back what it delivered.
    let end = match end {
        Ok(end) => end,
        Err(e) => {
            stop_rest(State::Cancelled);
            return Err(e.into());
        }
    };
    let ids = || {
        pending
            .iter()
            .map(|p| p.task_id.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    match end {
        End::AllDone => Ok(pending
            .iter()
            .map(|p| Answer {
                agent: p.agent.name().to_string(),
                task_id: p.task_id.clone(),
                done: p
                    .done
                    .clone()
                    .unwrap_or_else(|| Done::new(&p.task_id, p.agent.name(), State::Failed)),
                answer: read_answer(store, &p.task_id),
                created_ms: p.created_ms,
            })
            .collect()),
        End::Signal(sig) => {
            stop_rest(State::Cancelled);
            Err(Failure::msg(
                Exit::Cancelled,
                format!("cancelled by {}", signals::name(sig)),
            ))
        }
        End::CancelKey => {
            stop_rest(State::Cancelled);
            Err(Failure::msg(Exit::Cancelled, "cancelled by Ctrl-C"))
        }
        End::Detach => Err(Failure::msg(
            Exit::Cancelled,
            format!(
                "{DETACHED}; the task keeps running: `baton wait {0}` or `baton result {0}`",
                ids()
            ),
        )),
        End::Timeout => {
            stop_rest(State::Timeout);
            Err(Failure::msg(
                Exit::Timeout,
                format!("timed out waiting for {}", waiting_on(pending)),
            ))
        }
        End::AgentLost(i) => {
            let p = &pending[i];
            let last = store::last_line(&p.agent.log).unwrap_or_else(|| "(empty)".into());
            let queued = deliver::is_queued(&p.agent, &p.task_id);
            if queued && how.owned {
                let _ = deliver::withdraw_or_cancel(store, &p.agent, &p.task_id, State::AgentLost);
            } else if !queued {
                // Claimed by the runner that died: record the loss (its next runner would too).
                let lost = Done::new(&p.task_id, p.agent.name(), State::AgentLost)
                    .with_error("the agent's runner died before finishing the task");
                let _ = deliver::finish_once(store, &lost);
            }
            stop_rest(State::Cancelled);
            Err(Failure::msg(
                Exit::AgentLost,
                format!(
                    "agent {} died before answering (task {}). Its log said last: {last}",
                    p.agent.name(),
                    p.task_id
                ),
            ))
        }
    }
}

fn waiting_on(pending: &[Pending]) -> String {
    pending
        .iter()
        .filter(|p| p.done.is_none())
        .map(|p| format!("{} (task {})", p.agent.name(), p.task_id))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn read_answer(store: &Store, task_id: &str) -> Vec<u8> {
    store::read_nofollow(&store.task_dir(task_id).join("result")).unwrap_or_default()
}

/// The exit status for a set of answers: that of the first one that did not succeed.
pub fn answers_exit(answers: &[Answer]) -> Exit {
    answers
        .iter()
        .map(|a| a.done.state.exit())
        .find(|e| *e != Exit::Ok)
        .unwrap_or(Exit::Ok)
}

/// Prints answers: one alone as it is; several each headed by its agent; or JSON lines.
pub fn print_answers(answers: &[Answer], json: bool) -> Result<Exit> {
    let mut out = std::io::stdout().lock();
    let write = |out: &mut std::io::StdoutLock, bytes: &[u8]| -> Result<()> {
        match out.write_all(bytes) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            r => r.map_err(|e| Failure::msg(Exit::Usage, format!("writing the answer: {e}"))),
        }
    };
    for a in answers {
        if json {
            let v = serde_json::json!({
                "agent": a.agent,
                "task_id": a.task_id,
                "state": a.done.state.as_str(),
                "exit_code": a.done.exit_code,
                "error": a.done.error,
                "answer": String::from_utf8_lossy(&a.answer),
                "created_ms": a.created_ms,
                "started_ms": a.done.started_ms,
                "finished_ms": a.done.finished_ms,
                "elapsed_ms": a.done.finished_ms.map(|f| f.saturating_sub(a.created_ms)),
            });
            write(&mut out, format!("{v}\n").as_bytes())?;
            continue;
        }
        if answers.len() > 1 {
            write(&mut out, format!("==> {} <==\n", a.agent).as_bytes())?;
        }
        write(&mut out, &a.answer)?;
        // Answers are printed byte for byte; a line is only finished for a person's terminal,
        // or to keep several answers apart.
        let finish_line =
            answers.len() > 1 || nix::unistd::isatty(std::io::stdout()).unwrap_or(false);
        if finish_line && !a.answer.ends_with(b"\n") && !a.answer.is_empty() {
            write(&mut out, b"\n")?;
        }
    }
    let _ = out.flush();
    drop(out);
    for a in answers.iter().filter(|a| a.done.state != State::Ok) {
        eprintln!(
            "baton: agent {} (task {}): {}{}",
            a.agent,
            a.task_id,
            a.done.state.as_str(),
            a.done
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    Ok(answers_exit(answers))
}

/// Milliseconds from now to the deadline given by an optional timeout.
pub fn deadline(timeout: Option<std::time::Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now() + t)
}

pub fn pending_for(delivered: &[Delivered], agents: &[AgentPaths]) -> Vec<Pending> {
    delivered
        .iter()
        .zip(agents)
        .map(|(d, a)| Pending::new(a.clone(), d.task_id.clone(), d.created_ms))
        .collect()
}

/// For messages: "withdrawn" / "asked the agent to stop it".
pub fn describe_stop(s: &Stopped) -> &'static str {
    match s {
        Stopped::Withdrawn => "withdrawn from the inbox",
        Stopped::Requested => "the agent was asked to stop it",
        Stopped::AlreadyDone => "it had already finished",
    }
}

pub fn elapsed_since(ms: u64) -> String {
    time::human(std::time::Duration::from_millis(
        time::now_ms().saturating_sub(ms),
    ))
}

//! Running a plan: its stages one after the other, the members of a stage side by side, each
//! member a small state machine — deliver, wait, judge the answer with the done-gate (sending it
//! back on exit 2), deliver again after a failure while retries are left — until every member
//! has its end, or, with `any`, the first one succeeds. A stage that fails stops the pipeline;
//! a signal, Ctrl-C or the `d` key stops the wait, cancelling (or, for `d`, handing over) what
//! is in flight. Nothing here sleeps: the one wait loop (`wait`) wakes the engine when any task
//! ends.
//!
//! A plain delegation (one stage, no gate, no retries) keeps no record and costs what it always
//! did. A workflow keeps its record (`protocol::workflow`) up to date after every step, holding
//! the record's lock; whoever holds that lock runs the workflow, and `resume` lets a detached
//! `baton supervise ROOT` take it over from the record alone when no caller waits any more.
//!
//! Here: the engine and its waits. Starting a stage, delivering its tasks and keeping the record
//! are in `deliver`; a member's step once its task has ended (gate, retry) in `step`; handing a
//! workflow over and taking it up again in `handover`.

use std::time::{Duration, Instant};

use super::compose;
use super::gate;
use super::plan::{Plan, DEFAULT_GATE_ROUNDS};
use super::resolve::{self, Target};
use super::wait::{self, Pending, Stop};
use super::{record_loss, with_answer, Caller};
use crate::config::Config;
use crate::protocol::workflow::{self as record, Record};
use crate::protocol::{lock, State, Store, TaskEnd, TaskId};
use crate::sys::{signals, time};
use crate::test_hooks::{pause_point, BEFORE_DELIVER};

mod deliver;
mod handover;
mod step;
pub use handover::resume;

/// What running a plan came to.
#[derive(Debug)]
pub struct Run {
    /// The ends that are the outcome: the last stage's (the winner, with `any`), or those of the
    /// stage that failed or was stopped. The exit status is the first of them that failed.
    pub ends: Vec<TaskEnd>,
    /// Every task the run delivered, in the order delivered, each with its place.
    pub history: Vec<TaskEnd>,
    /// The first task of a workflow (it keeps the record), if the run was one.
    pub root: Option<TaskId>,
}

/// A member's settings: the plan's, else its agent's declaration's.
#[derive(Clone, Debug)]
struct Settings {
    timeout: Option<Duration>,
    priority: u8,
    retries: u32,
    gate: Option<String>,
    gate_rounds: u32,
}

fn settings(plan: &Plan, config: &Config, target: &Target) -> Settings {
    let decl = target.decl();
    let once = |s: Settings| {
        if plan.once {
            Settings {
                retries: 0,
                gate: None,
                ..s
            }
        } else {
            s
        }
    };
    once(Settings {
        timeout: plan
            .timeout
            .or_else(|| decl.and_then(|d| d.timeout))
            .or_else(|| config.default_timeout.as_ref().map(|s| s.value)),
        priority: plan
            .priority
            .or_else(|| decl.and_then(|d| d.priority))
            .unwrap_or(5),
        retries: plan
            .retries
            .or_else(|| decl.and_then(|d| d.retries))
            .unwrap_or(0),
        gate: plan
            .gate
            .clone()
            .or_else(|| decl.and_then(|d| d.gate.clone())),
        gate_rounds: plan
            .gate_rounds
            .or_else(|| decl.and_then(|d| d.gate_rounds))
            .unwrap_or(DEFAULT_GATE_ROUNDS),
    })
}

/// One agent (or pool) of the stage that runs.
struct Member {
    target: Target,
    settings: Settings,
    /// The stage's prompt, which every attempt builds on.
    base: Vec<u8>,
    attempt: u32,
    round: u32,
    /// Its final end, once it has one.
    end: Option<TaskEnd>,
}

struct Engine<'a> {
    store: &'a Store,
    config: &'a Config,
    plan: Plan,
    request: Vec<u8>,
    /// The resolved agents of every stage.
    targets: Vec<Vec<Target>>,
    /// The stage that runs (0-based).
    stage: usize,
    members: Vec<Member>,
    /// The tasks in flight, and (at the same index) the member each is for.
    pending: Vec<Pending>,
    owners: Vec<usize>,
    /// The member whose answer won (`any`).
    winner: Option<usize>,
    history: Vec<TaskEnd>,
    /// The answers each finished stage passed on.
    passed: Vec<Vec<TaskEnd>>,
    record: Option<Record>,
    _record_lock: Option<lock::Held>,
    /// Keeps a record even before there is a root (a workflow).
    keeps_record: bool,
}

/// What a member's gate made of its task's end.
enum Judgement {
    /// The end the member goes on with (the task's own, or failed by the gate).
    Final(TaskEnd),
    /// The answer went back to its agent for another round.
    SentBack,
    Halt(Halt),
}

/// Why the engine stopped waiting before every member had its end.
enum Halt {
    /// A signal, Ctrl-C, or a gate stopped by one: everything in flight is cancelled.
    Cancel(String),
    /// `d`: the caller lets go.
    Detach,
}

/// Runs `plan` (as `config` names its agents) for a caller: waits for the outcome, or, when the
/// plan does not wait, delivers the first stage and leaves the rest to the background.
pub fn run(
    store: &Store,
    config: &Config,
    plan: &Plan,
    caller: &mut Caller,
) -> anyhow::Result<Run> {
    plan.check()?;
    let targets: Vec<Vec<Target>> = plan
        .stages
        .iter()
        .map(|s| resolve::resolve(store, config, s))
        .collect::<anyhow::Result<_>>()?;
    // Everything that can be refused is refused before anything is delivered (the first stage
    // is checked as it starts, just below: once is enough on the hot path).
    for stage in targets.iter().skip(1) {
        resolve::check_ready(store, stage, plan.queue, plan.offer_queue)?;
    }
    let declared = targets.iter().flatten().any(|t| {
        let s = settings(plan, config, t);
        s.retries > 0 || s.gate.is_some()
    });
    let mut gates: Vec<String> = targets
        .iter()
        .flatten()
        .filter_map(|t| settings(plan, config, t).gate)
        .collect();
    gates.sort();
    gates.dedup();
    for g in &gates {
        gate::check_exists(g)?;
    }
    let mut engine = Engine {
        store,
        config,
        plan: plan.clone(),
        request: plan.prompt.clone(),
        targets,
        stage: 0,
        members: Vec::new(),
        pending: Vec::new(),
        owners: Vec::new(),
        winner: None,
        history: Vec::new(),
        passed: Vec::new(),
        record: None,
        _record_lock: None,
        keeps_record: plan.is_workflow(declared),
    };
    pause_point(BEFORE_DELIVER);
    let ready = engine.ready_stage(true)?;
    // A signal while agents were started on demand (which can take seconds): nothing is
    // delivered, so no agent begins what the caller no longer wants.
    if let Some(sig) = caller.sigs.take() {
        let why = format!(
            "cancelled by {} before it was delivered",
            signals::name(sig)
        );
        return Ok(engine.undelivered(&why));
    }
    engine.deliver_stage(true, ready)?;
    // A signal while the tasks were delivered: what was delivered is taken back, even by a
    // caller that would not wait.
    if let Some(sig) = caller.sigs.take() {
        let run = engine.cancelled(&format!("cancelled by {}", signals::name(sig)));
        // What had already answered is kept where a caller that does not wait finds it.
        if !plan.wait {
            let inbox = super::background::results_inbox(store, config);
            for end in run.ends.iter().filter(|e| e.is_ok()) {
                inbox.add(store, &end.task_id)?;
            }
        }
        return Ok(run);
    }
    if !plan.wait {
        return engine.let_go(caller, false);
    }
    engine.drive(caller)
}

impl Engine<'_> {
    fn stages(&self) -> usize {
        self.plan.stages.len()
    }

    /// Takes pending task `i` off the wait, with the member it is for.
    fn take(&mut self, i: usize) -> (Pending, usize) {
        (self.pending.remove(i), self.owners.remove(i))
    }

    /// Waits and steps every member until the plan has its outcome.
    fn drive(&mut self, caller: &mut Caller) -> anyhow::Result<Run> {
        loop {
            if let Some(halt) = self.wait_stage(caller)? {
                return match halt {
                    Halt::Cancel(why) => Ok(self.cancelled(&why)),
                    Halt::Detach => self.let_go(caller, true),
                };
            }
            let (ok, ends) = self.stage_outcome();
            if !ok || self.stage + 1 == self.stages() {
                return Ok(self.finish(ends, ok));
            }
            if let Some(r) = self.record.as_mut() {
                r.passed
                    .push(ends.iter().map(|e| e.task_id.clone()).collect());
            }
            self.passed.push(ends);
            self.stage += 1;
            self.start_stage(false)?;
        }
    }

    /// Waits until every member of the stage has its end (or one has won), stepping members as
    /// their tasks end. `Some` if the wait was stopped first.
    fn wait_stage(&mut self, caller: &mut Caller) -> anyhow::Result<Option<Halt>> {
        while !self.pending.is_empty() {
            // One has won (seen by the last wait, or taken up so from the record): the
            // others are stopped.
            if let Some(w) = self.winner {
                let name = self.members[w]
                    .end
                    .as_ref()
                    .map(|e| crate::protocol::agent::name_of(&e.agent).to_string())
                    .unwrap_or_default();
                self.stop_all(
                    State::Cancelled,
                    &format!("cancelled: {name} answered first"),
                );
                break;
            }
            let opts = wait::Options {
                deadline: self.pending.iter().filter_map(|p| p.deadline).min(),
                watch_liveness: !self.plan.queue,
                owned: true,
                any: true,
            };
            let stop = wait::wait(
                self.store,
                &mut self.pending,
                &caller.sigs,
                &opts,
                caller.tty.as_mut(),
            );
            let stop = match stop {
                Ok(stop) => stop,
                Err(e) => {
                    // A wait that cannot even start (the inotify limits) takes back what it
                    // delivered.
                    self.cancelled("cancelled: the wait could not start");
                    return Err(e.into());
                }
            };
            let halt = match stop {
                Stop::Ended => self.take_ended(caller)?,
                Stop::Lost(i, how) => {
                    let (p, m) = self.take(i);
                    let message = record_loss(&p, how);
                    let end = match p.task.read_end(p.agent.name()) {
                        Some(end) if end.state != State::AgentLost => {
                            with_answer(end, &p.task, p.created_ms)
                        }
                        _ => p.ended(State::AgentLost, message),
                    };
                    self.ended(m, end, caller)?
                }
                Stop::Timeout => self.take_timed_out(caller)?,
                Stop::Signal(sig) => {
                    Some(Halt::Cancel(format!("cancelled by {}", signals::name(sig))))
                }
                Stop::CancelKey => Some(Halt::Cancel("cancelled by Ctrl-C".into())),
                Stop::Detach => Some(Halt::Detach),
            };
            if halt.is_some() {
                return Ok(halt);
            }
        }
        Ok(None)
    }

    /// Steps every member whose task has ended, until one has won (with `any`: the others'
    /// ends are then kept as they are, never judged or retried).
    fn take_ended(&mut self, caller: &mut Caller) -> anyhow::Result<Option<Halt>> {
        pause_point(crate::test_hooks::WAITED);
        while self.winner.is_none() {
            let Some(i) = self.pending.iter().position(Pending::is_done) else {
                break;
            };
            let (p, m) = self.take(i);
            let end = super::read_finished(&p);
            if let Some(halt) = self.ended(m, end, caller)? {
                return Ok(Some(halt));
            }
        }
        Ok(None)
    }

    /// Stops every task whose deadline has passed, and steps its member.
    fn take_timed_out(&mut self, caller: &mut Caller) -> anyhow::Result<Option<Halt>> {
        let now = Instant::now();
        while self.winner.is_none() {
            let Some(i) = self
                .pending
                .iter()
                .position(|p| p.deadline.is_some_and(|d| d <= now))
            else {
                break;
            };
            let (p, m) = self.take(i);
            let within = self.members[m]
                .settings
                .timeout
                .map(time::human)
                .unwrap_or_default();
            let end = super::stop_one(
                self.store,
                &p,
                State::Timeout,
                &format!("no answer within {within}"),
            );
            if let Some(halt) = self.ended(m, end, caller)? {
                return Ok(Some(halt));
            }
        }
        Ok(None)
    }

    /// Stops every task in flight as `state`, saying `why`; each member without an end gets its
    /// task's.
    fn stop_all(&mut self, state: State, why: &str) {
        pause_point(crate::test_hooks::CANCELLING);
        while !self.pending.is_empty() {
            let (p, m) = self.take(0);
            let end = super::stop_one(self.store, &p, state, why);
            self.witness(end.clone());
            if self.members[m].end.is_none() {
                self.members[m].end = Some(end);
            }
        }
        self.save();
    }

    /// The stage's outcome: whether it passes its answers on, and the ends that say so (the
    /// winner's, with `any`; else every member's, in the order given).
    fn stage_outcome(&self) -> (bool, Vec<TaskEnd>) {
        let ends = self.members.iter().filter_map(|m| m.end.clone());
        if self.plan.any && self.members.len() > 1 {
            if let Some(w) = self.winner.and_then(|w| self.members[w].end.clone()) {
                return (true, vec![w]);
            }
            // Every one failed: the first to fail comes first (its code is the exit code).
            let mut all: Vec<TaskEnd> = ends.collect();
            all.sort_by_key(|e| e.finished_ms);
            return (false, all);
        }
        let all: Vec<TaskEnd> = ends.collect();
        let ok = all.len() == self.members.len() && all.iter().all(TaskEnd::is_ok);
        (ok, all)
    }

    /// The run is over: the record says how, and the outcome is `ends`.
    fn finish(&mut self, ends: Vec<TaskEnd>, ok: bool) -> Run {
        let (stage, stages) = (self.stage, self.stages());
        if let Some(r) = self.record.as_mut() {
            r.state = Some(if ok {
                State::Ok
            } else {
                ends.iter()
                    .find(|e| !e.is_ok())
                    .map_or(State::Failed, |e| e.state)
            });
            r.finals = ends.iter().map(|e| e.task_id.clone()).collect();
            r.final_ends = ends
                .iter()
                .filter(|e| !e.is_ok())
                .map(record::FinalEnd::of)
                .collect();
            if !ok && stages > 1 {
                r.error = ends.iter().find(|e| !e.is_ok()).map(|e| {
                    format!(
                        "stage {} of {stages} ({}) ended {}",
                        stage + 1,
                        crate::protocol::agent::name_of(&e.agent),
                        e.state.as_str()
                    )
                });
            }
        }
        self.save();
        let ends = ends
            .into_iter()
            .map(|mut e| {
                e.place = self.place(&e.task_id);
                if !e.is_ok() && self.stages() > 1 {
                    let why = e.error.take().unwrap_or_default();
                    e.error = Some(format!(
                        "stage {} of {} ({}): {why}",
                        self.stage + 1,
                        self.stages(),
                        crate::protocol::agent::name_of(&e.agent)
                    ));
                }
                e
            })
            .collect();
        Run {
            ends,
            history: std::mem::take(&mut self.history),
            root: self.record.as_ref().map(|r| r.root.clone()),
        }
    }

    /// The caller stopped the run (`why`) before its first delivery: every member is cancelled,
    /// with no task.
    fn undelivered(&mut self, why: &str) -> Run {
        let ends: Vec<TaskEnd> = self
            .members
            .iter()
            .map(|m| {
                TaskEnd::undelivered(&target_name(&m.target), State::Cancelled).with_error(why)
            })
            .collect();
        self.finish(ends, false)
    }

    /// The caller stopped the run (`why`): everything in flight is cancelled, no later stage is
    /// delivered.
    fn cancelled(&mut self, why: &str) -> Run {
        self.stop_all(State::Cancelled, why);
        let ends: Vec<TaskEnd> = self.members.iter().filter_map(|m| m.end.clone()).collect();
        self.finish(ends, false)
    }
}

/// The name a target is known by, for messages.
fn target_name(t: &Target) -> String {
    match t {
        Target::Agent { paths, declared } => declared
            .as_deref()
            .map_or_else(|| paths.name().to_string(), |(d, _)| d.name.clone()),
        Target::Pool { decl } => decl.name.clone(),
    }
}

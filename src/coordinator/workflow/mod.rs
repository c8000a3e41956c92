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
//! Here: the engine, its stages and its waits. A member's step once its task has ended (gate,
//! retry) is in `step`; handing a workflow over and taking it up again in `handover`.

use std::time::{Duration, Instant};

use super::compose;
use super::gate;
use super::plan::{Plan, DEFAULT_GATE_ROUNDS};
use super::resolve::{self, Target};
use super::wait::{self, Pending, Stop};
use super::{record_loss, with_answer, Caller};
use crate::config::Config;
use crate::protocol::inbox::{self, Request};
use crate::protocol::workflow::{self as record, Record, Verdict as Judged};
use crate::protocol::{lock, AgentPaths, Place, State, Store, TaskEnd, TaskId};
use crate::sys::{signals, time};
use crate::test_hooks::{pause_point, BEFORE_DELIVER};

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
    engine.start_stage(true)?;
    // A signal while agents were started on demand (which can take seconds) or the tasks
    // delivered: what was delivered is taken back, even by a caller that would not wait.
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

    /// The members of the stage that runs, each at its first attempt, with the prompt they all
    /// start from.
    fn members_of_stage(&self) -> Vec<Member> {
        let base = if self.stage == 0 {
            self.request.clone()
        } else {
            compose::stage_prompt(
                &self.request,
                self.stage + 1,
                self.stages(),
                &self.passed[self.stage - 1],
            )
        };
        self.targets[self.stage]
            .iter()
            .map(|t| Member {
                settings: settings(&self.plan, self.config, t),
                target: t.clone(),
                base: base.clone(),
                attempt: 1,
                round: 0,
                end: None,
            })
            .collect()
    }

    /// Starts the stage: its declared agents started if they are not running, then the prompt
    /// delivered to each. On the first stage a failed delivery takes the others back and is the
    /// caller's error (nothing was done); on a later one it fails that member.
    fn start_stage(&mut self, first: bool) -> anyhow::Result<()> {
        self.winner = None;
        self.members = self.members_of_stage();
        // On the first stage, an agent that cannot be started is the caller's error, as it is.
        let ready = match resolve::ready(
            self.store,
            &self.targets[self.stage],
            self.plan.queue,
            self.plan.offer_queue,
        ) {
            Err(e) if first => return Err(e),
            other => other.map_err(|e| format!("{e:#}")),
        };
        for m in 0..self.members.len() {
            let delivered = match &ready {
                Ok(()) => {
                    let prompt = self.members[m].base.clone();
                    self.deliver(m, prompt, None)
                }
                Err(e) => Err(anyhow::anyhow!("{e}")),
            };
            if let Err(e) = delivered {
                let name = target_name(&self.members[m].target);
                if first {
                    self.withdraw_all();
                    return Err(e.context(format!("delivering the task to {name}")));
                }
                self.members[m].end = Some(
                    TaskEnd::new(&TaskId::new(), &name, State::AgentLost)
                        .with_error(format!("stage {}: {e:#}", self.stage + 1)),
                );
            }
        }
        self.save();
        Ok(())
    }

    /// Delivers `prompt` for member `m` (to `to`, else to its target); it is waited for from now.
    fn deliver(&mut self, m: usize, prompt: Vec<u8>, to: Option<AgentPaths>) -> anyhow::Result<()> {
        let member = &self.members[m];
        let req = Request {
            prompt: &prompt,
            priority: member.settings.priority,
            timeout: member.settings.timeout,
            workflow: self.record.as_ref().map(|r| r.root.clone()),
        };
        let (delivered, agent, pool) = match (to, &member.target) {
            (Some(agent), _) => (inbox::deliver(self.store, &agent, &req)?, agent, false),
            (None, Target::Agent { paths, .. }) => (
                inbox::deliver(self.store, paths, &req)?,
                paths.clone(),
                false,
            ),
            (None, Target::Pool { decl }) => (
                super::team::deliver_to_pool(self.store, self.config, decl, &req)?,
                self.store.agent_paths(&decl.agent_id(None))?,
                true,
            ),
        };
        let id = delivered.task.id.clone();
        let mut p = Pending::new(agent.clone(), delivered.task, delivered.created_ms);
        p.pool = pool;
        p.deadline = member.settings.timeout.and_then(time::deadline_after);
        if self.stages() > 1 {
            p.label = format!("stage {}/{} ", self.stage + 1, self.stages());
        }
        let (attempt, round) = (member.attempt, member.round);
        self.pending.push(p);
        self.owners.push(m);
        if self.keeps_record {
            self.note_step(&id, agent.name(), m, attempt, round)?;
        }
        Ok(())
    }

    /// Delivers a later attempt or round for member `m`; if that fails, the member ends failed.
    fn redeliver(&mut self, m: usize, prompt: Vec<u8>, to: Option<AgentPaths>, last: TaskEnd) {
        if let Err(e) = self.deliver(m, prompt, to) {
            let why = format!(
                "{}; delivering it again failed: {e:#}",
                last.error.as_deref().unwrap_or(last.state.as_str())
            );
            self.members[m].end = Some(TaskEnd {
                state: State::Failed,
                error: Some(why),
                ..last
            });
        }
        self.save();
    }

    /// Adds a delivered task to the record (made with the first one, whose id names it). The
    /// first also takes the record's lock, which says to `wait`, `cancel` and `gc` that someone
    /// runs the workflow: one that cannot be taken is an error (the task is then taken back),
    /// or they would take the workflow for abandoned.
    fn note_step(
        &mut self,
        id: &TaskId,
        agent: &str,
        m: usize,
        attempt: u32,
        round: u32,
    ) -> anyhow::Result<()> {
        if self.record.is_none() {
            let task = self.store.task(id);
            let held = lock::take(&task.workflow_lock, Duration::ZERO)?.ok_or_else(|| {
                crate::error::Error::Unreachable(format!(
                    "the lock of a new workflow is held by another process: {}",
                    task.workflow_lock.display()
                ))
            })?;
            self._record_lock = Some(held);
            let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
            self.record = Some(Record::new(id, cwd, self.plan.asked()));
            record::set_runner(&task, std::process::id());
        }
        if let Some(r) = self.record.as_mut() {
            r.stage = self.stage as u32 + 1;
            r.steps.push(record::Step {
                task_id: id.clone(),
                agent: agent.to_string(),
                stage: self.stage as u32 + 1,
                member: m as u32,
                attempt,
                round,
                gate: None,
            });
        }
        Ok(())
    }

    /// Records the gate's verdict on task `id`.
    fn note_verdict(&mut self, id: &TaskId, verdict: Judged) {
        if let Some(step) = self
            .record
            .as_mut()
            .and_then(|r| r.steps.iter_mut().find(|s| &s.task_id == id))
        {
            step.gate = Some(verdict);
        }
        self.save();
    }

    /// Writes the record. A failure is not fatal: the tasks run on, and their own folders are
    /// the truth; the record is their summary.
    fn save(&self) {
        if let Some(r) = &self.record {
            let _ = r.save(self.store);
        }
    }

    /// Where task `id` stands in the workflow (nothing for a plain delegation).
    fn place(&self, id: &TaskId) -> Option<Place> {
        self.record.as_ref().and_then(|r| r.place_of(id))
    }

    fn take(&mut self, i: usize) -> (Pending, usize) {
        (self.pending.remove(i), self.owners.remove(i))
    }

    /// Takes every task delivered so far back (the first stage's delivery failed half-way).
    fn withdraw_all(&mut self) {
        for p in self.pending.drain(..) {
            let _ = inbox::withdraw_or_cancel(self.store, &p.agent, &p.task.id, State::Cancelled);
        }
        self.owners.clear();
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
                .map(|e| record::FinalEnd {
                    task_id: e.task_id.clone(),
                    state: e.state,
                    error: e.error.clone(),
                })
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

//! A stage's start and its deliveries: the members of the stage that runs, each member's task
//! delivered (and delivered again after a failure), and the record kept up to date with every
//! task delivered and every verdict, under the record's lock (taken as the first task is
//! delivered, before any agent can see it).

use super::{compose, resolve, settings, target_name, Engine, Member, Target};
use crate::coordinator::wait::Pending;
use crate::protocol::inbox::{self, Request};
use crate::protocol::workflow::{self as record, Record, Verdict as Judged};
use crate::protocol::{AgentPaths, Place, State, TaskEnd, TaskId};
use crate::sys::time;

impl Engine<'_> {
    /// The members of the stage that runs, each at its first attempt, with the prompt they all
    /// start from.
    pub(super) fn members_of_stage(&self) -> Vec<Member> {
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
    pub(super) fn start_stage(&mut self, first: bool) -> anyhow::Result<()> {
        let ready = self.ready_stage(first)?;
        self.deliver_stage(first, ready)
    }

    /// The first half of `start_stage`: the stage's members, and its declared agents started if
    /// they are not running (which can take seconds). What is returned inside says why the
    /// stage's agents cannot be reached; on the first stage that is the caller's error instead.
    pub(super) fn ready_stage(&mut self, first: bool) -> anyhow::Result<Result<(), String>> {
        self.winner = None;
        self.members = self.members_of_stage();
        match resolve::ready(
            self.store,
            &self.targets[self.stage],
            self.plan.queue,
            self.plan.offer_queue,
        ) {
            Err(e) if first => Err(e),
            other => Ok(other.map_err(|e| format!("{e:#}"))),
        }
    }

    /// The second half of `start_stage`: the prompt delivered to each member, unless `ready`
    /// says why it cannot be.
    pub(super) fn deliver_stage(
        &mut self,
        first: bool,
        ready: Result<(), String>,
    ) -> anyhow::Result<()> {
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
                    return Err(e.context(format!(
                        "delivering the task to {name} (what was delivered was taken back)"
                    )));
                }
                // The run's end names the stage (`finish`).
                self.members[m].end = Some(
                    TaskEnd::undelivered(&name, State::AgentLost).with_error(format!("{e:#}")),
                );
            }
        }
        match &self.record {
            // The record is what `wait`, `cancel` and a supervisor go by: on the first stage, one
            // that cannot be written is the caller's error, as a failed delivery is.
            Some(r) if first => {
                if let Err(e) = r.save(self.store) {
                    self.withdraw_all();
                    return Err(anyhow::Error::from(e)
                        .context("writing the workflow's record (its tasks were taken back)"));
                }
            }
            _ => self.save(),
        }
        Ok(())
    }

    /// Delivers `prompt` for member `m` (to `to`, else to its target); it is waited for from now.
    pub(super) fn deliver(
        &mut self,
        m: usize,
        prompt: Vec<u8>,
        to: Option<AgentPaths>,
    ) -> anyhow::Result<()> {
        let member = &self.members[m];
        let req = Request {
            prompt: &prompt,
            priority: member.settings.priority,
            timeout: member.settings.timeout,
            workflow: self.record.as_ref().map(|r| r.root.clone()),
            starts_workflow: self.keeps_record && self.record.is_none(),
        };
        let (mut delivered, agent, pool) = match (to, &member.target) {
            (Some(agent), _) => (inbox::deliver(self.store, &agent, &req)?, agent, false),
            (None, Target::Agent { paths, .. }) => (
                inbox::deliver(self.store, paths, &req)?,
                paths.clone(),
                false,
            ),
            (None, Target::Pool { decl }) => (
                crate::coordinator::team::deliver_to_pool(self.store, self.config, decl, &req)?,
                self.store.agent_paths(&decl.agent_id(None))?,
                true,
            ),
        };
        let id = delivered.task.id.clone();
        let workflow_lock = delivered.workflow_lock.take();
        let mut p = Pending::new(agent.clone(), delivered.task, delivered.created_ms);
        p.pool = pool;
        p.deadline = member.settings.timeout.and_then(time::deadline_after);
        if self.stages() > 1 {
            p.label = format!("stage {}/{} ", self.stage + 1, self.stages());
        }
        let (attempt, round) = (member.attempt, member.round);
        self.pending.push(p);
        self.owners.push(m);
        if let Some(held) = workflow_lock {
            self._record_lock = Some(held);
        }
        if self.keeps_record {
            self.note_step(&id, agent.name(), m, attempt, round)?;
        }
        Ok(())
    }

    /// Delivers a later attempt or round for member `m`; if that fails, the member ends failed.
    pub(super) fn redeliver(
        &mut self,
        m: usize,
        prompt: Vec<u8>,
        to: Option<AgentPaths>,
        last: TaskEnd,
    ) {
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

    /// Adds a delivered task to the record (made with the first one, whose id names it, and
    /// whose delivery took the record's lock, which says to `wait`, `cancel` and `gc` that
    /// someone runs the workflow). The first also writes who that is (`workflow.pid`, which
    /// `cancel` signals): one that cannot be written is an error (the task is then taken back),
    /// or `cancel` could not reach the workflow's runner.
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
            let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
            self.record = Some(Record::new(id, cwd, self.plan.asked()));
            record::set_runner(&task, std::process::id())?;
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
    pub(super) fn note_verdict(&mut self, id: &TaskId, verdict: Judged) {
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
    pub(super) fn save(&self) {
        if let Some(r) = &self.record {
            let _ = r.save(self.store);
        }
    }

    /// Where task `id` stands in the workflow (nothing for a plain delegation).
    pub(super) fn place(&self, id: &TaskId) -> Option<Place> {
        self.record.as_ref().and_then(|r| r.place_of(id))
    }

    /// Takes every task delivered so far back (the first stage's delivery failed half-way).
    fn withdraw_all(&mut self) {
        for p in self.pending.drain(..) {
            let _ = inbox::withdraw_or_cancel(self.store, &p.agent, &p.task.id, State::Cancelled);
        }
        self.owners.clear();
    }
}

//! Handing a workflow over and taking it up again: `let_go`, when no caller will wait for the
//! rest (`send`, `&`, `d`), passes a workflow to a detached `baton supervise ROOT` with the
//! record's lock (a plain task's answer goes to the results inbox); `resume` is that supervisor
//! taking the workflow up from its record alone, and `pick_up` the stage that was running.

use std::time::{Duration, Instant};

use super::{target_name, Engine, Halt, Run};
use crate::coordinator::plan::Plan;
use crate::coordinator::resolve::{self, Target};
use crate::coordinator::wait::Pending;
use crate::coordinator::{background, Caller};
use crate::error::Error;
use crate::protocol::workflow::{self as record, Verdict as Judged};
use crate::protocol::{lock, State, Store, TaskEnd, TaskId};
use crate::sys::time;
use crate::test_hooks::pause_point;

/// Takes over the workflow rooted at `root` from its record (`baton supervise ROOT`) and runs it
/// to its end, with no one waiting: its outcome goes where the record says (the results inbox).
/// If it cannot, and it holds the workflow, the record says why; a workflow that another
/// process runs is left alone.
pub fn resume(store: &Store, root: &TaskId) -> anyhow::Result<Run> {
    // First of all: a SIGTERM (`baton cancel ROOT`) from now on stops the workflow, not the
    // process.
    let mut caller = Caller::new(false)?;
    crate::sys::signals::unblock_stops();
    let paths = store.task(root);
    let held = match background::inherited_lock() {
        Some(held) => Some(held),
        // A probe holds the lock for an instant; whoever runs the workflow holds it for good.
        None => lock::hold(&paths.workflow_lock)?,
    };
    let _held = held.ok_or_else(|| {
        Error::Usage(format!(
            "workflow {root} is being run by another process (it holds {})",
            paths.workflow_lock.display()
        ))
    })?;
    let _ = record::set_runner(&paths, std::process::id());
    pause_point(crate::test_hooks::SUPERVISING);
    carry_on(store, root, &mut caller).inspect_err(|e| {
        if let Ok(Some(mut rec)) = record::load(&paths) {
            if rec.state.is_none() {
                rec.state = Some(State::Failed);
                rec.error = Some(format!("the workflow could not be carried on: {e:#}"));
                let _ = rec.save(store);
            }
        }
    })
}

/// The body of `resume`, run while the caller holds the record's lock.
fn carry_on(store: &Store, root: &TaskId, caller: &mut Caller) -> anyhow::Result<Run> {
    let paths = store.task(root);
    let rec = record::load(&paths)?
        .ok_or_else(|| Error::Usage(format!("task {root} is not the first task of a workflow")))?;
    let config = crate::config::load(&rec.cwd)?;
    let request = crate::protocol::store::read_nofollow(&paths.prompt)
        .map_err(|e| crate::error::StoreError::io("reading the request", &paths.prompt, e))?;
    let mut plan = Plan::from_asked(&rec.asked, request.clone());
    plan.wait = true;
    if let Some(ends) = crate::coordinator::background::workflow_outcome(store, &rec) {
        return Ok(Run {
            ends,
            history: Vec::new(),
            root: Some(root.clone()),
        });
    }
    let targets: Vec<Vec<Target>> = plan
        .stages
        .iter()
        .map(|s| resolve::resolve(store, &config, s))
        .collect::<anyhow::Result<_>>()?;
    let passed = rec
        .passed
        .iter()
        .map(|ids| crate::coordinator::ends_of(store, ids))
        .collect();
    let mut engine = Engine {
        store,
        config: &config,
        plan,
        request,
        targets,
        stage: rec.stage.saturating_sub(1) as usize,
        members: Vec::new(),
        pending: Vec::new(),
        owners: Vec::new(),
        winner: None,
        history: Vec::new(),
        passed,
        record: Some(rec),
        // `resume` holds it, and records a failure under it.
        _record_lock: None,
        keeps_record: true,
    };
    if let Some(run) = engine.pick_up(caller)? {
        return Ok(run);
    }
    engine.drive(caller)
}

impl Engine<'_> {
    /// No one will wait for the rest (`send`, `&`, or `d` when `detached`): a plain task's answer
    /// goes to the results inbox; a workflow is handed to a detached supervisor, which runs it to
    /// its end from its record. What cannot be let go (its results entry or its record cannot be
    /// written) is stopped, and the error says why.
    pub(super) fn let_go(&mut self, caller: &mut Caller, detached: bool) -> anyhow::Result<Run> {
        let inbox = background::results_inbox(self.store, self.config);
        let how = if detached {
            "detached; the task keeps running"
        } else {
            "delivered; the task runs on"
        };
        if self.record.is_some() {
            return self.hand_over(caller, &inbox, how);
        }
        // Members that have answered already: their answers go to the results inbox too, not
        // away with the wait.
        let done: Vec<TaskId> = (self.members.iter().filter_map(|m| m.end.as_ref()))
            .filter(|end| self.store.task(&end.task_id).is_done())
            .map(|end| end.task_id.clone())
            .collect();
        let pending: Vec<TaskId> = self.pending.iter().map(|p| p.task.id.clone()).collect();
        if let Err(e) = (done.iter().chain(&pending)).try_for_each(|id| inbox.add(self.store, id)) {
            self.stop_all(
                State::Cancelled,
                "its answer could not be put in the results inbox",
            );
            return Err(anyhow::Error::from(e).context(
                "the task was cancelled: its answer could not be put in the results inbox",
            ));
        }
        let ends = (self.pending.iter())
            .map(|p| {
                p.ended(
                    State::Detached,
                    format!(
                        "{how}: its answer goes to `baton results`; `baton wait {0}` or `baton result {0}`",
                        p.task.id
                    ),
                )
            })
            .collect();
        Ok(Run {
            ends,
            history: std::mem::take(&mut self.history),
            root: None,
        })
    }

    /// `let_go` for a workflow: its record and results entry written, then a supervisor started
    /// that takes its lock over.
    fn hand_over(
        &mut self,
        caller: &mut Caller,
        inbox: &crate::protocol::results::Inbox,
        how: &str,
    ) -> anyhow::Result<Run> {
        let Some(r) = self.record.as_mut() else {
            return Err(anyhow::anyhow!("no workflow record to hand over"));
        };
        r.results = Some(inbox.key.clone());
        let root = r.root.clone();
        // Without its record no one can carry the workflow on, and without its entry no one
        // hears how it ended: it is stopped instead.
        let written = r
            .save(self.store)
            .and_then(|()| inbox.add(self.store, &root));
        if let Err(e) = written {
            let why = "it could not be handed to the background";
            self.cancelled(why);
            return Err(
                anyhow::Error::from(e).context(format!("the workflow was cancelled: {why}"))
            );
        }
        pause_point(crate::test_hooks::HANDING_OFF);
        let handed = background::hand_off(self.store, &root, self._record_lock.as_ref());
        pause_point(crate::test_hooks::HANDED_OFF);
        // A stop signal that came meanwhile is meant for the workflow's runner (Ctrl-C as it was
        // handed over, or `baton cancel ROOT` that read this process's pid before the
        // supervisor's was written): the supervisor gets it and stops the workflow; with no
        // supervisor to take it, this process stops it.
        let mut passed_on = None;
        if let Some(sig) = caller.sigs.take() {
            match handed.as_ref().ok().filter(|&&pid| pass_on(pid, sig)) {
                Some(&supervisor) => passed_on = Some((sig, supervisor)),
                None => {
                    let why = format!(
                        "{} came as the workflow was handed to the background",
                        crate::sys::signals::name(sig)
                    );
                    return Ok(self.cancelled(&why));
                }
            }
        }
        // One that comes from now on is lost with this process; `baton cancel` asks the
        // supervisor too, which the record names by now.
        pause_point(crate::test_hooks::LETTING_GO);
        if handed.is_ok() {
            // The supervisor shares the lock's open file: unlocking it here (what dropping the
            // lock does) would unlock it for the supervisor too. Closing this process's
            // descriptor does not: the lock stays with the supervisor's, and no one takes this
            // process (which may wait for a key a while yet) for the workflow's runner.
            if let Some(lock) = self._record_lock.take() {
                use std::os::fd::AsRawFd;
                let fd = lock.as_raw_fd();
                std::mem::forget(lock);
                let _ = nix::unistd::close(fd);
            }
        }
        let first = (self.pending.first())
            .map(|p| p.agent.name().to_string())
            .unwrap_or_default();
        let end = match (passed_on, handed) {
            (Some((sig, supervisor)), _) => TaskEnd::new(&root, &first, State::Cancelled)
                .with_error(format!(
                    "{} came as the workflow was handed to the background: passed on to its supervisor (pid {supervisor}), which cancels it; `baton wait {root}` shows how it ended",
                    crate::sys::signals::name(sig)
                )),
            (None, Ok(_)) => TaskEnd::new(&root, &first, State::Detached).with_error(format!(
                "{how} as a workflow in the background: its outcome goes to `baton results`; `baton wait {root}` waits for it"
            )),
            (None, Err(e)) => TaskEnd::new(&root, &first, State::Detached).with_error(format!(
                "{how}, but the rest of the workflow cannot go on in the background ({e:#}); `baton supervise {root}` carries it on"
            )),
        };
        Ok(Run {
            ends: vec![end],
            history: std::mem::take(&mut self.history),
            root: Some(root),
        })
    }

    /// Takes the stage that runs back up from the record (`resume`): a member whose task runs is
    /// waited for, one that has none yet is delivered to, and one whose latest task has ended is
    /// stepped as if the wait had just seen it — last, so that a stop during its gate reaches
    /// every task of the stage. `Some` if the run ended here (a signal during such a gate).
    fn pick_up(&mut self, caller: &mut Caller) -> anyhow::Result<Option<Run>> {
        let Some(rec) = self.record.clone() else {
            return Ok(None);
        };
        self.members = self.members_of_stage();
        let latest: Vec<record::Step> = rec
            .latest(self.stage as u32 + 1)
            .into_iter()
            .cloned()
            .collect();
        let mut seen = vec![false; self.members.len()];
        let mut finished = Vec::new();
        for step in latest {
            let m = step.member as usize;
            if m >= self.members.len() {
                continue;
            }
            seen[m] = true;
            self.members[m].attempt = step.attempt;
            self.members[m].round = step.round;
            let task = self.store.task(&step.task_id);
            let agent = self.store.agent_paths(&step.agent)?;
            let envelope: Option<crate::protocol::Task> =
                crate::protocol::read_json(&task.task).ok().flatten();
            let created = envelope.as_ref().map_or(0, |t| t.created_ms);
            let mut p = Pending::new(agent, task, created);
            p.pool = p.agent.is_pool();
            p.deadline = envelope
                .and_then(|t| t.deadline_ms)
                .map(|d| Instant::now() + Duration::from_millis(d.saturating_sub(time::now_ms())));
            if p.task.is_done() {
                finished.push((m, crate::coordinator::read_finished(&p), step.gate));
            } else {
                self.pending.push(p);
                self.owners.push(m);
            }
        }
        for (m, seen) in seen.into_iter().enumerate() {
            if !seen && self.members[m].end.is_none() {
                let prompt = self.members[m].base.clone();
                if let Err(e) = self.deliver(m, prompt, None) {
                    self.members[m].end = Some(
                        TaskEnd::undelivered(
                            &target_name(&self.members[m].target),
                            State::AgentLost,
                        )
                        .with_error(format!("{e:#}")),
                    );
                }
            }
        }
        for (m, end, verdict) in finished {
            if verdict == Some(Judged::Accepted) {
                self.members[m].end = Some(end);
                if self.plan.any && self.winner.is_none() {
                    self.winner = Some(m);
                }
                continue;
            }
            match self.ended(m, end, caller)? {
                Some(Halt::Cancel(why)) => return Ok(Some(self.cancelled(&why))),
                Some(Halt::Detach) => return self.let_go(caller, true).map(Some),
                None => {}
            }
        }
        Ok(None)
    }
}

/// Sends `sig` to the supervisor `pid`; false if it could not be sent (the supervisor is gone).
fn pass_on(pid: u32, sig: i32) -> bool {
    nix::sys::signal::Signal::try_from(sig).is_ok_and(|signal| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).is_ok()
    })
}

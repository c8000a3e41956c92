//! One member's step once its task has ended: the done-gate judges a successful answer (sending
//! it back on exit 2, at most `gate_rounds` times), a failure is delivered again while retries
//! are left (told what the attempt printed), and otherwise the end is the member's.

use super::{Engine, Halt, Judgement};
use crate::coordinator::gate::{self, Gate, Verdict};
use crate::coordinator::{compose, Caller};
use crate::protocol::workflow::Verdict as Judged;
use crate::protocol::{State, Store, TaskEnd};

impl Engine<'_> {
    /// Member `m`'s task has ended with `end`: judge it with the gate, send it back, retry it,
    /// or make it the member's end. `Some` if a gate was stopped by the caller.
    pub(super) fn ended(
        &mut self,
        m: usize,
        end: TaskEnd,
        caller: &mut Caller,
    ) -> anyhow::Result<Option<Halt>> {
        if self.members[m].end.is_some() {
            self.witness(end);
            return Ok(None);
        }
        let end = match self.judged(m, end, caller) {
            Judgement::Final(end) => end,
            Judgement::SentBack => return Ok(None),
            Judgement::Halt(halt) => return Ok(Some(halt)),
        };
        if end.is_ok() {
            self.members[m].end = Some(end);
            if self.plan.any && self.winner.is_none() {
                self.winner = Some(m);
            }
            self.save();
            return Ok(None);
        }
        let member = &self.members[m];
        let retryable = matches!(end.state, State::Failed | State::Timeout | State::AgentLost);
        if retryable && member.attempt <= member.settings.retries {
            if end.state == State::AgentLost {
                if let Err(e) = crate::coordinator::team::restart(self.store, &member.target) {
                    let why = format!(
                        "{}; it was not retried: {e:#}",
                        end.error.as_deref().unwrap_or("the agent was lost")
                    );
                    self.members[m].end = Some(TaskEnd {
                        error: Some(why),
                        ..end
                    });
                    self.save();
                    return Ok(None);
                }
            }
            let printed = printed_so_far(self.store, &end);
            let member = &mut self.members[m];
            member.attempt += 1;
            member.round = 0;
            let prompt = compose::retry_prompt(
                &member.base,
                member.attempt,
                member.settings.retries + 1,
                &TaskEnd {
                    answer: printed,
                    ..end.clone()
                },
            );
            self.redeliver(m, prompt, None, end);
            return Ok(None);
        }
        let lost = end.state == State::AgentLost;
        self.members[m].end = Some(end);
        // A fan-out that lost an agent for good stops the others (they are cancelled).
        if lost && !self.plan.any {
            self.stop_all(
                State::Cancelled,
                "cancelled: another agent of the fan-out was lost",
            );
        }
        self.save();
        Ok(None)
    }

    /// Adds a task's end to the history, with its place (and its gate's verdict) as the record
    /// has them now.
    pub(super) fn witness(&mut self, mut end: TaskEnd) {
        end.place = self.place(&end.task_id);
        self.history.push(end);
    }

    /// Passes an ended task through member `m`'s gate, if it has one and the task succeeded:
    /// the end the member goes on with, or the answer sent back, or a caller that stopped.
    fn judged(&mut self, m: usize, end: TaskEnd, caller: &mut Caller) -> Judgement {
        let gate = self.members[m]
            .settings
            .gate
            .clone()
            .filter(|_| end.is_ok());
        let Some(command) = gate else {
            self.witness(end.clone());
            return Judgement::Final(end);
        };
        let verdict = self.judge(m, &end, &command, caller);
        let (rounds, round) = (self.members[m].settings.gate_rounds, self.members[m].round);
        let judged = match &verdict {
            Verdict::Accept => Some(Judged::Accepted),
            Verdict::Reject(_) if round < rounds => Some(Judged::Rejected),
            Verdict::Stopped(_) => None,
            _ => Some(Judged::Failed),
        };
        if let Some(j) = judged {
            self.note_verdict(&end.task_id, j);
        }
        self.witness(end.clone());
        match verdict {
            Verdict::Accept => Judgement::Final(end),
            Verdict::Reject(output) if round < rounds => {
                let member = &mut self.members[m];
                member.round += 1;
                let prompt = compose::gate_prompt(
                    &member.base,
                    member.round,
                    rounds,
                    &command,
                    &output,
                    &end.answer,
                );
                // Back to the agent that answered (a pool's member keeps its context).
                let back = self.store.agent_paths(&end.agent).ok();
                self.redeliver(m, prompt, back, end);
                Judgement::SentBack
            }
            Verdict::Reject(output) => Judgement::Final(failed(
                end,
                State::Failed,
                format!(
                    "the gate `{command}` sent the answer back {rounds} time(s) and rejected it once more; its last output:\n{}",
                    output.trim_end()
                ),
            )),
            Verdict::Fail(why) => Judgement::Final(failed(end, State::Failed, why)),
            Verdict::Timeout(why) => Judgement::Final(failed(end, State::Timeout, why)),
            Verdict::Stopped(why) => {
                // The member's end is the stop, not the answer the gate never judged.
                self.members[m].end = Some(failed(end, State::Cancelled, why.clone()));
                Judgement::Halt(Halt::Cancel(why))
            }
        }
    }

    /// Runs member `m`'s gate on `end`'s answer.
    fn judge(&mut self, m: usize, end: &TaskEnd, command: &str, caller: &mut Caller) -> Verdict {
        let task = self.store.task(&end.task_id);
        let agent = match self.store.agent_paths(&end.agent) {
            Ok(a) => a,
            Err(e) => return Verdict::Fail(format!("the gate cannot run: {e}")),
        };
        let gate = Gate {
            command,
            agent: &agent,
            task: &task,
            end,
            timeout: self.members[m].settings.timeout,
        };
        gate::run(&gate, &caller.sigs, caller.tty.as_mut())
    }
}

/// What the task of `end` printed: its answer, or, for a task stopped before it had one (a
/// timeout, a lost runner), what its `output` held by then.
fn printed_so_far(store: &Store, end: &TaskEnd) -> Vec<u8> {
    if !end.answer.is_empty() {
        return end.answer.clone();
    }
    let task = store.task(&end.task_id);
    let read = |p: &std::path::Path| crate::protocol::store::read_nofollow(p).ok();
    read(&task.result)
        .or_else(|| read(&task.output))
        .unwrap_or_default()
}

/// `end`, failed as `state` because of `why` (a gate's verdict).
fn failed(end: TaskEnd, state: State, why: String) -> TaskEnd {
    TaskEnd {
        state,
        error: Some(why),
        ..end
    }
}

//! The runner's side of the control socket: `ping`, `cancel`, `reset`, and the callers that
//! `watch` a task until it finishes.

use super::Runner;
use crate::protocol::control::{Incoming, Reply, Request};
use crate::protocol::inbox::{self, Stopped};
use crate::protocol::{State, TaskEnd, TaskId};

impl Runner<'_> {
    /// Answers every pending control request; keeps the `watch` ones until their task ends.
    pub(super) fn serve_control(&mut self) {
        for incoming in self.control.accept() {
            match &incoming.request {
                Ok(Request::Watch { task }) => {
                    let task = task.clone();
                    let unrecorded = self
                        .pending_ends
                        .iter()
                        .find(|(_, end)| end.task_id == task)
                        .map(|(_, end)| Box::new(end.clone()));
                    if unrecorded.is_some() || self.store.task(&task).is_done() {
                        incoming.reply(&Reply::Finished {
                            task,
                            end: unrecorded,
                        });
                    } else {
                        self.watchers.push((task, incoming));
                    }
                }
                Ok(Request::Finished { task }) => {
                    let task = task.clone();
                    self.wake(&task, None);
                    incoming.reply(&Reply::Noted);
                }
                _ => {
                    let reply = self.control_reply(&incoming);
                    incoming.reply(&reply);
                }
            }
        }
    }

    /// Tells every caller watching `task` that it has finished (with its end, when that could
    /// not be recorded).
    pub(super) fn wake(&mut self, task: &TaskId, unrecorded: Option<&TaskEnd>) {
        let (woken, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.watchers)
            .into_iter()
            .partition(|(t, _)| t == task);
        self.watchers = rest;
        for (task, incoming) in woken {
            incoming.reply(&Reply::Finished {
                task,
                end: unrecorded.map(|e| Box::new(e.clone())),
            });
        }
    }

    fn control_reply(&mut self, incoming: &Incoming) -> Reply {
        match &incoming.request {
            Err(message) => Reply::Error {
                message: message.clone(),
            },
            Ok(Request::Watch { .. } | Request::Finished { .. }) => Reply::Error {
                message: "handled by serve_control".into(),
            },
            Ok(Request::Ping) => Reply::Pong {
                status: self.status.clone(),
            },
            Ok(Request::Reset) if self.status.current_task.is_some() => Reply::Error {
                message: format!(
                    "agent {} is busy ({}); cancel the task or wait, then reset",
                    self.paths.name(),
                    self.status.current_task.as_deref().unwrap_or_default()
                ),
            },
            Ok(Request::Reset) => match self.driver.reset(&self.sigs) {
                Ok(what) => {
                    self.say(&format!("reset: {what}"));
                    if let Some(summary) = self.driver.summary() {
                        self.status.context_summary = summary;
                    }
                    let _ = self.write_status();
                    Reply::Reset { summary: what }
                }
                Err(e) => Reply::Error {
                    message: e.to_string(),
                },
            },
            Ok(Request::Cancel { task })
                if self.status.current_task.as_deref() == Some(task.as_str()) =>
            {
                self.cancel_current = true;
                Reply::Cancelling { task: task.clone() }
            }
            Ok(Request::Cancel { task }) => {
                let queued =
                    inbox::withdraw_or_cancel(self.store, &self.paths, task, State::Cancelled)
                        .is_ok_and(|s| s == Stopped::Withdrawn);
                if queued {
                    self.wake(task, None);
                    Reply::Cancelling { task: task.clone() }
                } else {
                    Reply::NotRunning { task: task.clone() }
                }
            }
        }
    }
}

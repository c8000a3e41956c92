//! The runner's serving loop and the life of one task: wait for the inbox, claim, run with the
//! driver under watch (cancel requests, stop signals, deadlines), then publish `result`, the
//! status, and `done.json`, in that order.

use std::fs;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use inotify::WatchMask;
use nix::libc;

use super::Runner;
use crate::coordinator::wait::{drain_inotify, inotify_error};
use crate::driver::TaskCtx;
use crate::error::{IoContext, StoreError};
use crate::poll::{earliest, Poll};
use crate::protocol::inbox::{self, Entry};
use crate::protocol::{store, AgentState, State, Task, TaskEnd, TaskPaths};
use crate::sys::time;

impl Runner<'_> {
    pub(super) fn serve(&mut self) -> anyhow::Result<()> {
        loop {
            if self.stop_requested() {
                return Ok(());
            }
            self.sigs.take_one(libc::SIGCHLD);
            self.driver.idle_check();
            if let Some(why) = self.driver.ended() {
                self.say(&format!("{why}: stopping"));
                return Ok(());
            }
            self.sync_idle_status();
            // While a person, or a dialog, has the agent, tasks wait in the inbox.
            let next = match self.driver.busy() {
                None => inbox::next(&self.paths)?,
                Some(_) => None,
            };
            if let Some(entry) = next {
                if inbox::claim(&self.paths, &entry)? {
                    self.run_task(&entry)?;
                }
                continue;
            }
            self.sleep(false, self.driver.next_deadline())
                .during("waiting on", &self.paths.inbox_new)?;
        }
    }

    /// Sleeps until a signal, an inotify event, a control request, input from the driver (with
    /// `driver`) or `deadline`; then takes the signals and events and answers the control
    /// requests.
    fn sleep(&mut self, driver: bool, deadline: Option<Instant>) -> std::io::Result<()> {
        {
            let mut poll = Poll::new();
            poll.add(self.sigs.fd());
            poll.add(self.inotify.as_fd());
            poll.add(self.control.fd());
            if let Some(fd) = self.driver.fd().filter(|_| driver) {
                poll.add(fd);
            }
            poll.wait(deadline)?;
        }
        self.sigs.drain();
        drain_inotify(&mut self.inotify);
        self.serve_control();
        Ok(())
    }

    /// Runs one claimed task to its end and writes `result` and `done.json`.
    fn run_task(&mut self, entry: &Entry) -> anyhow::Result<()> {
        let task = self.store.task(&entry.id);
        crate::test_hooks::pause_point(crate::test_hooks::AFTER_CLAIM);
        // A task folder that is not what the protocol says (a planted link, someone else's) is
        // never read or written: the task is dropped from the inbox and the log says why.
        if let Err(e) = store::check_dir(&task.dir) {
            if store::exists(&task.dir) {
                self.say(&format!("task {}: refused: {e}", entry.id));
            }
            inbox::release(&self.paths, entry);
            return Ok(());
        }
        let envelope = match crate::protocol::read_json::<Task>(&task.task) {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(format!("{} is missing", task.task.display())),
            Err(e) => Err(e.to_string()),
        };
        let prompt_ok = match fs::symlink_metadata(&task.prompt) {
            Ok(m) if m.file_type().is_file() => Ok(()),
            Ok(_) => Err(format!("{} is not a regular file", task.prompt.display())),
            Err(e) => Err(format!("{}: {e}", task.prompt.display())),
        };
        let name = self.paths.name().to_string();
        let end = match prompt_ok.and(envelope) {
            _ if task.is_done() => None, // withdrawn or finished already
            Err(why) => Some(TaskEnd::new(&entry.id, &name, State::Failed).with_error(why)),
            Ok(envelope) => Some(match task.cancel_request() {
                Some(state) => TaskEnd {
                    created_ms: Some(envelope.created_ms),
                    ..TaskEnd::new(&entry.id, &name, state)
                        .with_error("cancelled before it started")
                },
                None => self.execute(&envelope, &task)?,
            }),
        };
        match end {
            Some(end) => self.publish(&task, end)?,
            None => self.become_idle()?,
        }
        inbox::release(&self.paths, entry);
        self.wake(&entry.id);
        Ok(())
    }

    /// Publishes a task's end: `output` becomes `result`, the status says idle (and counts the
    /// task), and `done.json` appears last.
    fn publish(&mut self, task: &TaskPaths, end: TaskEnd) -> anyhow::Result<()> {
        if store::exists(&task.output) {
            fs::rename(&task.output, &task.result).during("publishing the result", &task.result)?;
            crate::test_hooks::pause_point(crate::test_hooks::AFTER_RESULT);
        } else if !store::exists(&task.result) {
            store::write_atomic(&task.result, b"")?;
        }
        // status.json is true before the sentinel appears: whoever sees done.json and then
        // asks for the status finds the agent idle and the task counted.
        self.status.tasks_done += 1;
        self.become_idle()?;
        task.record_end(&end)?;
        // Whoever waits is told first; the log can wait.
        self.wake(&end.task_id);
        let detail = end.error.map(|e| format!(": {e}")).unwrap_or_default();
        self.say(&format!(
            "task {}: {}{detail}",
            end.task_id,
            end.state.as_str()
        ));
        Ok(())
    }

    fn become_idle(&mut self) -> Result<(), StoreError> {
        self.status.status = AgentState::Idle;
        self.status.current_task = None;
        if let Some(summary) = self.driver.summary() {
            self.status.context_summary = summary;
        }
        self.write_status()
    }

    /// Runs the task with the driver, watching for a cancel request, a stop signal and the
    /// deadline.
    fn execute(&mut self, envelope: &Task, task: &TaskPaths) -> anyhow::Result<TaskEnd> {
        let id = &envelope.task_id;
        self.started_ms = time::now_ms();
        self.cancel_current = false;
        // The answer file exists from the start, private (mode 0600) whatever writes into it.
        let output_file = match store::create_private(&task.output) {
            Ok(f) => f,
            Err(e) => {
                let e = crate::driver::DriverError::io("creating the output", e);
                return Ok(self.ended(envelope, State::Failed, None, Some(e.to_string())));
            }
        };
        // Without a watch on the task folder (the inotify watch limit), a cancel request is
        // still seen: `supervise` then also looks for it once a second.
        let wd = match self
            .inotify
            .watches()
            .add(&task.dir, WatchMask::MOVED_TO | WatchMask::CREATE)
        {
            Ok(wd) => Some(wd),
            Err(e) => {
                let e = inotify_error("watching", &task.dir, e);
                self.say(&format!(
                    "{e}; checking for a cancel request once a second instead"
                ));
                None
            }
        };
        self.unwatched = wd.is_none();
        let ctx = TaskCtx {
            id,
            prompt: &task.prompt,
            output: &task.output,
            output_file,
        };
        // Start first, then say so: the status and the log are written while the task runs.
        let started = self.driver.start(ctx);
        self.status.status = AgentState::Working;
        self.status.current_task = Some(id.to_string());
        self.write_status()?;
        self.say(&format!("task {id}: started"));
        let (state, exit_code, error) = match started {
            Err(e) => (State::Failed, e.exit_code(), Some(e.to_string())),
            Ok(()) => self.supervise(envelope, task)?,
        };
        if let Some(wd) = wd {
            let _ = self.inotify.watches().remove(wd);
            // Removing the watch queues an event of its own: take it now, not as a wake-up.
            drain_inotify(&mut self.inotify);
        }
        Ok(self.ended(envelope, state, exit_code, error))
    }

    /// The end of the task in flight.
    fn ended(
        &self,
        envelope: &Task,
        state: State,
        exit_code: Option<i32>,
        error: Option<String>,
    ) -> TaskEnd {
        TaskEnd {
            exit_code,
            error,
            created_ms: Some(envelope.created_ms),
            started_ms: Some(self.started_ms),
            ..TaskEnd::new(&envelope.task_id, self.paths.name(), state)
        }
    }

    fn supervise(
        &mut self,
        envelope: &Task,
        task: &TaskPaths,
    ) -> anyhow::Result<(State, Option<i32>, Option<String>)> {
        loop {
            self.sigs.take_one(libc::SIGCHLD);
            if let Some(finished) = self.driver.poll() {
                return Ok(match finished {
                    Ok(code) => (State::Ok, code, None),
                    Err(e) => (State::Failed, e.exit_code(), Some(e.to_string())),
                });
            }
            let stop = if self.stop_requested() {
                Some((
                    State::Cancelled,
                    "the agent was stopped while running it".into(),
                ))
            } else if std::mem::take(&mut self.cancel_current) {
                Some((
                    State::Cancelled,
                    "cancelled through the control socket".into(),
                ))
            } else if let Some(state) = task.cancel_request() {
                let words = if state == State::Timeout {
                    "timed out"
                } else {
                    "cancelled"
                };
                Some((state, format!("{words} at the caller's request")))
            } else if envelope.deadline_ms.is_some_and(|d| time::now_ms() >= d) {
                Some((State::Timeout, "its deadline passed".to_string()))
            } else {
                None
            };
            if let Some((state, why)) = stop {
                self.driver.kill(&self.sigs);
                return Ok((state, None, Some(why)));
            }
            self.sync_held_status(&envelope.task_id);
            // Wake for the task's deadline or the driver's, whichever comes first.
            let task_deadline = envelope.deadline_ms.and_then(|d| {
                Instant::now().checked_add(Duration::from_millis(d.saturating_sub(time::now_ms())))
            });
            let fallback = self
                .unwatched
                .then(|| Instant::now() + Duration::from_secs(1));
            let deadline = earliest([task_deadline, self.driver.next_deadline(), fallback]);
            self.sleep(true, deadline).during("waiting on", &task.dir)?;
        }
    }
}

//! The runner's serving loop and the life of one task: wait for the inbox, claim, run with the
//! driver under watch (cancel requests, stop signals, deadlines), then publish `result`, the
//! status, and `done.json`, in that order.

use std::fs;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use inotify::WatchMask;
use nix::libc;

use super::slots::Waited;
use super::Runner;
use crate::coordinator::wait::{drain_inotify, inotify_error};
use crate::driver::TaskCtx;
use crate::error::{IoContext, StoreError};
use crate::poll::{earliest, Poll};
use crate::protocol::inbox::{self, Entry};
use crate::protocol::spare;
use crate::protocol::{store, AgentState, State, Task, TaskEnd, TaskPaths};
use crate::sys::time;

impl Runner<'_> {
    /// Serves tasks until a stop signal, the driver's end, or the agent's folder going (`held`
    /// is the runner's lock, whose file is in it).
    pub(super) fn serve(&mut self, held: &crate::protocol::lock::Held) -> anyhow::Result<()> {
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
            self.record_pending_ends();
            self.sync_idle_status();
            // While a person, or a dialog, has the agent, tasks wait in the inbox.
            let next = match self.driver.busy() {
                None => self.claim_next(),
                Some(_) => Ok(None),
            };
            match next {
                Ok(Some((entry, from_pool))) => {
                    self.trouble = None;
                    self.run_task(&entry, from_pool);
                    self.bound_log();
                    self.spares_taken = true;
                    continue;
                }
                // Nothing to do: make again what the last task used.
                Ok(None) if std::mem::take(&mut self.spares_taken) => {
                    crate::test_hooks::pause_point(crate::test_hooks::BEFORE_SPARES);
                    self.make_ahead()
                }
                Ok(None) => {}
                // The agent's folder was removed (the whole state folder, say): no caller can
                // reach this runner any more, and no folder is left to serve.
                Err(_) if !crate::protocol::lock::still_at(held, &self.paths.lock) => {
                    self.say("the agent's folder was removed: stopping");
                    return Ok(());
                }
                // The machine refuses (too many open files, a read-only or full folder): say so
                // once, and look again when something happens, or in a second.
                Err(e) => self.in_trouble(&format!("cannot take the next task: {e}")),
            }
            let retry = self
                .trouble
                .is_some()
                .then(|| Instant::now() + Duration::from_secs(1));
            self.sleep(false, earliest([self.driver.next_deadline(), retry]))
                .during("waiting on", &self.paths.inbox_new)?;
        }
    }

    /// Claims the next task: the agent's own first, then its pool's (the member that wins the
    /// rename runs it). Returns the entry, and whether it came from the pool.
    fn claim_next(&self) -> Result<Option<(Entry, bool)>, StoreError> {
        if let Some(entry) = inbox::next(&self.paths)? {
            return Ok(inbox::claim(&self.paths, &entry)?.then_some((entry, false)));
        }
        let Some(pool) = &self.pool else {
            return Ok(None);
        };
        // Another member may win an entry; the next one is tried then.
        while let Some(entry) = inbox::next(pool)? {
            if inbox::claim_from(pool, &self.paths, &entry)? {
                return Ok(Some((entry, true)));
            }
        }
        Ok(None)
    }

    /// Logs a problem that keeps the runner from serving, once until it changes or clears.
    fn in_trouble(&mut self, why: &str) {
        if self.trouble.as_deref() != Some(why) {
            self.say(why);
            self.trouble = Some(why.to_string());
        }
    }

    /// Sleeps until a signal, an inotify event, a control request, input from the driver (with
    /// `driver`) or `deadline`; then takes the signals and events and answers the control
    /// requests.
    pub(super) fn sleep(&mut self, driver: bool, deadline: Option<Instant>) -> std::io::Result<()> {
        let control_deadline = self.control.next_deadline();
        let (sigs_ready, inotify_ready, control_ready, watchers_ready) = {
            let mut poll = Poll::new();
            let sigs = poll.add(self.sigs.fd());
            let inotify = poll.add(self.inotify.as_fd());
            let control: Vec<usize> = self.control.fds().map(|fd| poll.add(fd)).collect();
            if let Some(fd) = self.driver.fd().filter(|_| driver) {
                poll.add(fd);
            }
            // A watcher's connection becomes readable when its caller goes away.
            let watchers: Vec<usize> = self
                .watchers
                .iter()
                .map(|(_, w)| poll.add(w.fd()))
                .collect();
            poll.wait(earliest([deadline, control_deadline]))?;
            // Each source is read only if it has something.
            let ready = |i: usize| poll.ready(i);
            (
                ready(sigs),
                ready(inotify),
                control.into_iter().any(ready),
                watchers.into_iter().map(ready).collect::<Vec<bool>>(),
            )
        };
        if sigs_ready {
            self.sigs.drain();
        }
        if inotify_ready {
            drain_inotify(&mut self.inotify);
        }
        // Close the connections of callers that stopped watching.
        let mut ready = watchers_ready.into_iter();
        self.watchers
            .retain(|(_, w)| !(ready.next().unwrap_or(false) && w.gone()));
        // A request that is too slow is closed at its deadline.
        if control_ready || control_deadline.is_some_and(|at| at <= Instant::now()) {
            self.serve_control();
        }
        Ok(())
    }

    /// Runs one claimed task to its end and writes `result` and `done.json`. Nothing that goes
    /// wrong here stops the runner: an entry it cannot serve is quarantined, an end it cannot
    /// record is kept and recorded later (its waiters are told it at once).
    fn run_task(&mut self, entry: &Entry, from_pool: bool) {
        let task = self.store.task(&entry.id);
        crate::test_hooks::pause_point(crate::test_hooks::AFTER_CLAIM);
        // A task folder that is missing or not what the protocol says (a planted link, someone
        // else's) is never read or written: the entry is put aside and the log says why.
        if let Err(e) = store::check_dir(&task.dir) {
            self.quarantine(&self.paths.inbox_cur.clone(), entry, &e.to_string());
            return;
        }
        if from_pool {
            // Its caller waits on the pool: it follows the task to this member from here.
            let _ = store::write_atomic(&task.runner, self.paths.name().as_bytes());
        }
        let end = match self.run_claimed(&task) {
            Ok(end) => end,
            Err(e) => Some(
                TaskEnd::new(&entry.id, self.paths.name(), State::Failed)
                    .with_error(format!("the runner failed while running it: {e:#}")),
            ),
        };
        match end {
            Some(end) => self.publish(&task, entry, end),
            None => {
                if let Err(e) = self.become_idle() {
                    self.say(&format!("cannot write status.json: {e}"));
                }
                inbox::release(&self.paths, entry);
                self.wake(&entry.id, None);
            }
        }
        // The watchers are told; so is a caller whose request to be told has not been read yet
        // (the task ended before the runner looked): it would otherwise wait until the runner
        // next sleeps, after its spares are made.
        self.serve_control();
        self.unwatch_task();
    }

    /// The end of a claimed task: `None` if it had one already (withdrawn, or finished).
    fn run_claimed(&mut self, task: &TaskPaths) -> anyhow::Result<Option<TaskEnd>> {
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
        Ok(match prompt_ok.and(envelope) {
            _ if task.is_done() => None,
            Err(why) => Some(TaskEnd::new(&task.id, &name, State::Failed).with_error(why)),
            Ok(envelope) => Some(match task.cancel_request() {
                Some(state) => TaskEnd {
                    created_ms: Some(envelope.created_ms),
                    ..TaskEnd::new(&task.id, &name, state).with_error("cancelled before it started")
                },
                None => match self.take_slot(&envelope, task)? {
                    Waited::Go(_slot) => self.execute(&envelope, task)?,
                    Waited::Ended(state, why) => TaskEnd {
                        created_ms: Some(envelope.created_ms),
                        ..TaskEnd::new(&task.id, &name, state).with_error(why)
                    },
                },
            }),
        })
    }

    /// Puts an inbox entry the runner cannot serve aside (`inbox/bad/`), with a warning in the
    /// log; the rest of the inbox is served as usual.
    pub(super) fn quarantine(&mut self, from: &std::path::Path, entry: &Entry, why: &str) {
        let moved = inbox::quarantine(&self.paths, from, entry);
        let whereto = match &moved {
            Ok(()) => format!("put aside in {}", self.paths.inbox_bad.display()),
            Err(e) => format!("could not be put aside ({e})"),
        };
        self.say(&format!("task {}: refused, {whereto}: {why}", entry.id));
        if moved.is_err() {
            inbox::release(&self.paths, entry);
        }
    }

    /// Publishes a task's end: `output` becomes `result`, the status says idle (and counts the
    /// task), and `done.json` appears last; then the entry is released and the waiters told.
    /// If the end cannot be recorded (a full disk, a read-only folder), the waiters are told it
    /// anyway, the entry stays claimed, and the runner records it when it can.
    fn publish(&mut self, task: &TaskPaths, entry: &Entry, mut end: TaskEnd) {
        let published = publish_result(task);
        if published.is_ok() {
            crate::test_hooks::pause_point(crate::test_hooks::AFTER_RESULT);
        }
        // status.json is true before the sentinel appears: whoever sees done.json and then
        // asks for the status finds the agent idle and the task counted.
        self.status.tasks_done += 1;
        if let Err(e) = self.become_idle() {
            self.say(&format!("cannot write status.json: {e}"));
        }
        let recorded =
            match published.and_then(|()| task.record_end_ahead(&end, &mut self.ahead).map(drop)) {
                Ok(()) => Ok(()),
                Err(e) => {
                    // Make room (the answer, if any, is lost with the disk) and try once more.
                    end = unrecordable(task, end, &e);
                    task.record_end(&end).map(drop)
                }
            };
        let detail = end
            .error
            .clone()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        match recorded {
            Ok(()) => {
                inbox::release(&self.paths, entry);
                // Whoever waits is told first; the log can wait.
                self.wake(&end.task_id, None);
                self.say(&format!(
                    "task {}: {}{detail}",
                    end.task_id,
                    end.state.as_str()
                ));
            }
            Err(e) => {
                self.say(&format!(
                    "task {}: {}{detail}; its end cannot be recorded yet ({e}); it will be when the folder can be written",
                    end.task_id,
                    end.state.as_str()
                ));
                self.wake(&end.task_id, Some(&end));
                self.pending_ends.push((entry.clone(), end));
            }
        }
    }

    /// Records the ends that could not be written when their tasks finished.
    fn record_pending_ends(&mut self) {
        if self.pending_ends.is_empty() {
            return;
        }
        for (entry, end) in std::mem::take(&mut self.pending_ends) {
            let task = self.store.task(&end.task_id);
            if store::check_dir(&task.dir).is_err() {
                inbox::release(&self.paths, &entry);
                self.say(&format!(
                    "task {}: its folder is gone; its end is not recorded",
                    end.task_id
                ));
                continue;
            }
            match task.record_end(&end) {
                Ok(_) => {
                    inbox::release(&self.paths, &entry);
                    self.say(&format!("task {}: its end is recorded now", end.task_id));
                }
                Err(_) => self.pending_ends.push((entry, end)),
            }
        }
    }

    fn become_idle(&mut self) -> Result<(), StoreError> {
        self.status.status = AgentState::Idle;
        self.status.current_task = None;
        if let Some(summary) = self.driver.summary() {
            self.status.context_summary = summary;
        }
        self.write_status()
    }

    /// The prompt file the driver is given: the task's own, or — for a Claude Code agent with
    /// unread mail — `delivered`, the mail (delimited) and then the prompt; the mail is marked
    /// read once it is written there.
    fn prompt_with_mail(&mut self, task: &TaskPaths) -> std::path::PathBuf {
        if !self.reads_mail {
            return task.prompt.clone();
        }
        use crate::protocol::mail;
        let mailbox = mail::Mailbox::new(self.store, self.paths.name());
        let Ok(claim) = mail::claim_unread(&mailbox) else {
            return task.prompt.clone();
        };
        let messages = &claim.messages;
        if messages.is_empty() {
            return task.prompt.clone();
        }
        let mut text = String::from("=== baton: messages for you ===\n");
        for m in messages {
            text.push_str(&format!(
                "from {} at {}:\n{}\n",
                crate::protocol::agent::name_of(&m.from),
                m.timestamp,
                m.text.trim_end()
            ));
        }
        text.push_str("=== baton: end of messages; your task follows ===\n");
        let mut bytes = text.into_bytes();
        let written = match store::read_nofollow(&task.prompt) {
            Ok(prompt) => {
                bytes.extend_from_slice(&prompt);
                store::write_atomic(&task.delivered, &bytes).is_ok()
            }
            Err(_) => false,
        };
        if !written {
            // Not before the task after all: unread again, for the next one.
            let _ = mail::give_back(&mailbox, &claim);
            return task.prompt.clone();
        }
        self.say(&format!(
            "task {}: {} message(s) delivered before it",
            task.id,
            messages.len()
        ));
        task.delivered.clone()
    }

    /// Runs the task with the driver, watching for a cancel request, a stop signal and the
    /// deadline.
    fn execute(&mut self, envelope: &Task, task: &TaskPaths) -> anyhow::Result<TaskEnd> {
        let id = &envelope.task_id;
        self.started_ms = time::now_ms();
        self.cancel_current = false;
        // The answer file exists from the start, private (mode 0600) whatever writes into it.
        let output_file = match self.create_output(task) {
            Ok(f) => f,
            Err(e) => {
                let e = crate::driver::DriverError::io("creating the output", e);
                return Ok(self.ended(envelope, State::Failed, None, Some(e.to_string())));
            }
        };
        let prompt = self.prompt_with_mail(task);
        let ctx = TaskCtx {
            id,
            prompt: &prompt,
            output: &task.output,
            output_file,
            progress: &task.progress,
        };
        // Start first, then watch and say so: the watch, the status and the log are made while
        // the task runs. (`supervise` looks for a cancel request once the watch is there.)
        let started = self.driver.start(ctx);
        self.watch_task(task);
        self.status.status = AgentState::Working;
        self.status.current_task = Some(id.to_string());
        if let Err(e) = self.write_status() {
            self.say(&format!("cannot write status.json: {e}"));
        }
        self.say(&format!("task {id}: started"));
        crate::test_hooks::pause_point(crate::test_hooks::TASK_STARTED);
        let (state, exit_code, error) = match started {
            Err(e) => (State::Failed, e.exit_code(), Some(e.to_string())),
            Ok(()) => self.supervise(envelope, task)?,
        };
        Ok(self.ended(envelope, state, exit_code, error))
    }

    /// Makes the task folders callers take and the files the next task's ends are written
    /// into (`protocol::spare`). A failure (a full disk) only means they are made when needed.
    pub(super) fn make_ahead(&mut self) {
        let _ = spare::refill(&self.paths.spare);
        self.ahead.refill();
    }

    /// The task's `output`, new: a file made ahead given its name, or else created.
    fn create_output(&mut self, task: &TaskPaths) -> std::io::Result<fs::File> {
        match self.ahead.place(&task.output, b"") {
            Some((file, true)) => Ok(file),
            _ => store::create_private(&task.output),
        }
    }

    /// Watches the folder of the task in flight: the cancel request arriving, and the folder's
    /// files going (a folder whose agent still holds files in it reports its own deletion only
    /// after the agent lets go). Without the watch (the inotify watch limit), a cancel request
    /// is still seen: `supervise` then also looks for it once a second.
    fn watch_task(&mut self, task: &TaskPaths) {
        let mask =
            WatchMask::MOVED_TO | WatchMask::CREATE | WatchMask::DELETE | WatchMask::DELETE_SELF;
        self.task_watch = match self.inotify.watches().add(&task.dir, mask) {
            Ok(wd) => Some(wd),
            Err(e) => {
                let e = inotify_error("watching", &task.dir, e);
                self.say(&format!(
                    "{e}; checking for a cancel request once a second instead"
                ));
                None
            }
        };
    }

    /// Stops watching the folder of the task that ended, once its waiters have been told.
    fn unwatch_task(&mut self) {
        if let Some(wd) = self.task_watch.take() {
            let _ = self.inotify.watches().remove(wd);
            // The events of the end's own files, and the one removing the watch queues: taken
            // now, not as a wake-up.
            drain_inotify(&mut self.inotify);
        }
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
            } else if !store::exists(&task.task) {
                Some((
                    State::Cancelled,
                    "its task folder was removed while it ran".into(),
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
                // And whatever the task started that left its process group.
                crate::sys::spawn::kill_marked(&[
                    format!("BATON_TASK_ID={}", envelope.task_id),
                    format!("BATON_HOME={}", self.store.root().display()),
                ]);
                return Ok((state, None, Some(why)));
            }
            self.sync_held_status(&envelope.task_id);
            // Wake for the task's deadline or the driver's, whichever comes first.
            let task_deadline = envelope.deadline_ms.and_then(|d| {
                Instant::now().checked_add(Duration::from_millis(d.saturating_sub(time::now_ms())))
            });
            // No watch on the task folder (the watch limit): look for `cancel` each second.
            let fallback = self
                .task_watch
                .is_none()
                .then(|| Instant::now() + Duration::from_secs(1));
            let deadline = earliest([task_deadline, self.driver.next_deadline(), fallback]);
            if let Err(e) = self.sleep(true, deadline) {
                self.driver.kill(&self.sigs);
                return Err(StoreError::io("waiting on", &task.dir, e).into());
            }
        }
    }
}

/// Moves the answer into place as `result` (an empty one if the task produced none).
fn publish_result(task: &TaskPaths) -> Result<(), StoreError> {
    if store::exists(&task.output) {
        fs::rename(&task.output, &task.result).during("publishing the result", &task.result)
    } else if !store::exists(&task.result) {
        store::write_atomic(&task.result, b"")
    } else {
        Ok(())
    }
}

/// The end of a task whose answer or end could not be written: failed, saying why, with its
/// partial output removed to make room for the record.
fn unrecordable(task: &TaskPaths, end: TaskEnd, e: &StoreError) -> TaskEnd {
    let _ = fs::remove_file(&task.output);
    let _ = fs::remove_file(&task.result);
    let why = match &end.error {
        Some(before) => format!("the answer could not be recorded: {e} (the task: {before})"),
        None => format!("the answer could not be recorded: {e}"),
    };
    TaskEnd {
        state: State::Failed,
        error: Some(why),
        ..end
    }
}

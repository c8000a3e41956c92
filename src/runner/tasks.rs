//! The runner's serving loop and the life of one task: wait for the inbox, claim, run with the
//! driver under watch (cancel requests, stop signals, deadlines), then publish `result`, the
//! status, and `done.json`, in that order.

use std::fs;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use inotify::WatchMask;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::Runner;
use crate::driver::{Outcome, TaskCtx};
use crate::error::{Error, IoContext};
use crate::exit::Result;
use crate::protocol::{self, AgentState, Done, State, Task};
use crate::{deliver, store, time, wait};

impl Runner<'_> {
    pub(super) fn serve(&mut self) -> Result<()> {
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
            let next = if self.driver.busy().is_none() {
                deliver::inbox_entries(&self.paths.inbox_new)?
                    .into_iter()
                    .next()
            } else {
                None // a person, or a dialog, has the agent: tasks wait in the inbox
            };
            if let Some((entry, id)) = next {
                let cur = self.paths.inbox_cur.join(&entry);
                match fs::rename(self.paths.inbox_new.join(&entry), &cur) {
                    Ok(()) => self.run_task(&id, &cur)?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {} // withdrawn
                    Err(e) => return Err(Error::io("claiming", cur, e).into()),
                }
                continue;
            }
            let mut fds = [
                PollFd::new(self.sigs.fd(), PollFlags::POLLIN),
                PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.control.fd(), PollFlags::POLLIN),
            ];
            let timeout = match self.driver.next_deadline() {
                None => PollTimeout::NONE,
                Some(at) => PollTimeout::try_from(
                    at.saturating_duration_since(std::time::Instant::now())
                        + Duration::from_millis(1),
                )
                .unwrap_or(PollTimeout::MAX),
            };
            match nix::poll::poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    return Err(Error::io("waiting on", &self.paths.inbox_new, e.into()).into())
                }
            }
            self.sigs.drain();
            wait::drain_inotify(&mut self.inotify);
            self.serve_control();
        }
    }

    /// Runs one claimed task to its end and writes `result` and `done.json`.
    fn run_task(&mut self, id: &str, cur: &Path) -> Result<()> {
        let dir = self.store.task_dir(id);
        let done_path = dir.join("done.json");
        let task = match protocol::read_json::<Task>(&dir.join("task.json")) {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(format!("{} is missing", dir.join("task.json").display())),
            Err(e) => Err(e.to_string()),
        };
        crate::test_hooks::pause_point(crate::test_hooks::AFTER_CLAIM);
        // A task folder that is not what the protocol says (a planted link, someone else's) is
        // never read or written: the task is dropped from the inbox and the log says why.
        if let Err(e) = store::check_dir(&dir) {
            if store::exists(&dir) {
                self.say(&format!("task {id}: refused: {e}"));
            }
            let _ = fs::remove_file(cur);
            return Ok(());
        }
        let prompt_ok = match fs::symlink_metadata(dir.join("prompt")) {
            Ok(m) if m.file_type().is_file() => Ok(()),
            Ok(_) => Err(format!(
                "{} is not a regular file",
                dir.join("prompt").display()
            )),
            Err(e) => Err(format!("{}: {e}", dir.join("prompt").display())),
        };
        let task = prompt_ok.and(task);
        let result = match task {
            _ if store::exists(&done_path) => None, // withdrawn or finished already
            Err(why) => Some((State::Failed, None, Some(why))),
            Ok(_) if store::exists(&dir.join("cancel")) => Some((
                cancel_state(&dir),
                None,
                Some("cancelled before it started".into()),
            )),
            Ok(task) => Some(self.execute(&task, &dir)?),
        };
        if let Some((state, exit_code, error)) = result {
            let output = dir.join("output");
            if store::exists(&output) {
                let result_path = dir.join("result");
                fs::rename(&output, &result_path).during("publishing the result", &result_path)?;
                crate::test_hooks::pause_point(crate::test_hooks::AFTER_RESULT);
            } else if !store::exists(&dir.join("result")) && store::exists(&dir) {
                store::write_atomic(&dir, "result", b"")?;
            }
            // status.json is true before the sentinel appears: whoever sees done.json and then
            // asks for the status finds the agent idle and the task counted.
            self.status.tasks_done += 1;
            self.become_idle()?;
            let mut done = Done::new(id, self.paths.name(), state);
            done.exit_code = exit_code;
            done.error = error.clone();
            done.started_ms = Some(self.started_ms);
            deliver::finish_once(self.store, &done)?;
            let detail = error.map(|e| format!(": {e}")).unwrap_or_default();
            self.say(&format!("task {id}: {}{detail}", state.as_str()));
        } else {
            self.become_idle()?;
        }
        let _ = fs::remove_file(cur);
        self.wake(id);
        Ok(())
    }

    /// Runs the task with the driver, watching for a cancel request, a stop signal and the
    /// deadline. Returns the state, exit code and error to record.
    fn execute(&mut self, task: &Task, dir: &Path) -> Result<(State, Option<i32>, Option<String>)> {
        let id = task.task_id.as_str();
        self.started_ms = time::now_ms();
        self.status.status = AgentState::Working;
        self.status.current_task = Some(id.to_string());
        self.write_status()?;
        self.say(&format!("task {id}: started"));
        self.cancel_current = false;
        // Without a watch on the task folder (the inotify watch limit), a cancel request is
        // still seen: `supervise` then also looks for it once a second.
        let wd = match self
            .inotify
            .watches()
            .add(dir, WatchMask::MOVED_TO | WatchMask::CREATE)
        {
            Ok(wd) => Some(wd),
            Err(e) => {
                let e = wait::inotify_error("watching", dir, e);
                self.say(&format!(
                    "{e}; checking for a cancel request once a second instead"
                ));
                None
            }
        };
        self.unwatched = wd.is_none();
        let prompt = dir.join("prompt");
        let output = dir.join("output");
        let ctx = TaskCtx {
            id,
            prompt: &prompt,
            output: &output,
        };
        let ended = match self.driver.start(&ctx) {
            Err(why) => (State::Failed, None, Some(why)),
            Ok(()) => self.supervise(task, dir)?,
        };
        if let Some(wd) = wd {
            let _ = self.inotify.watches().remove(wd);
        }
        Ok(ended)
    }

    fn supervise(
        &mut self,
        task: &Task,
        dir: &Path,
    ) -> Result<(State, Option<i32>, Option<String>)> {
        loop {
            self.sigs.take_one(libc::SIGCHLD);
            if let Some(Outcome {
                ok,
                exit_code,
                error,
            }) = self.driver.poll()
            {
                let state = if ok { State::Ok } else { State::Failed };
                return Ok((state, exit_code, error));
            }
            let stop = if self.stop_requested() {
                Some((
                    State::Cancelled,
                    "the agent was stopped while running it".to_string(),
                ))
            } else if std::mem::take(&mut self.cancel_current) {
                Some((
                    State::Cancelled,
                    "cancelled through the control socket".to_string(),
                ))
            } else if store::exists(&dir.join("cancel")) {
                let state = cancel_state(dir);
                Some((
                    state,
                    format!(
                        "{} at the caller's request",
                        if state == State::Timeout {
                            "timed out"
                        } else {
                            "cancelled"
                        }
                    ),
                ))
            } else if task.deadline_ms.is_some_and(|d| time::now_ms() >= d) {
                Some((State::Timeout, "its deadline passed".to_string()))
            } else {
                None
            };
            if let Some((state, why)) = stop {
                self.driver.kill(&self.sigs);
                return Ok((state, None, Some(why)));
            }
            self.sync_held_status(&task.task_id);
            // Wake for the task's deadline or the driver's, whichever comes first.
            let task_deadline = task.deadline_ms.map(|d| {
                std::time::Instant::now()
                    + Duration::from_millis(d.saturating_sub(time::now_ms()) + 1)
            });
            let fallback = self
                .unwatched
                .then(|| std::time::Instant::now() + Duration::from_secs(1));
            let timeout = match [task_deadline, self.driver.next_deadline(), fallback]
                .into_iter()
                .flatten()
                .min()
            {
                None => PollTimeout::NONE,
                Some(at) => {
                    let left = at.saturating_duration_since(std::time::Instant::now())
                        + Duration::from_millis(1);
                    PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)
                }
            };
            {
                let mut fds = vec![
                    PollFd::new(self.sigs.fd(), PollFlags::POLLIN),
                    PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.control.fd(), PollFlags::POLLIN),
                ];
                if let Some(fd) = self.driver.fd() {
                    fds.push(PollFd::new(fd, PollFlags::POLLIN));
                }
                match nix::poll::poll(&mut fds, timeout) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(Error::io("waiting on", dir, e.into()).into()),
                }
            }
            self.sigs.drain();
            wait::drain_inotify(&mut self.inotify);
            self.serve_control();
        }
    }
}

/// The state a cancel request asks for.
fn cancel_state(dir: &Path) -> State {
    let text = store::read_nofollow(&dir.join("cancel")).unwrap_or_default();
    State::from_cancel_request(&String::from_utf8_lossy(&text))
}

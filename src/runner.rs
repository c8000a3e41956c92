//! The persistent runner of one agent (`baton agent run`). It owns the agent's folder:
//! it holds the `lock` for its whole life, is the only writer of `status.json`, claims tasks from
//! `inbox/new` one at a time by rename, and for each writes `result` and then `done.json`.
//!
//! It sleeps in one `poll` over inotify (the inbox, the current task's folder), the signal pipe
//! (SIGTERM/SIGINT/SIGHUP/SIGQUIT stop it, SIGCHLD reports its children) and, while a task runs,
//! the driver's channel and the task's deadline. An idle runner makes no system call at all.
//!
//! Tasks found in `inbox/cur` at start-up were claimed by a runner that died: they are failed as
//! `agent_lost`, never re-run (a task may already have had effects) and never dropped.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use inotify::{Inotify, WatchMask};
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::control::{self, Incoming, Reply, Request};
use crate::driver::{self, Driver, Outcome, Setup, TaskCtx};
use crate::error::{Error, IoContext};
use crate::exit::{Exit, Failure, Result};
use crate::protocol::{self, AgentConfig, AgentState, Done, State, Status, Task};
use crate::signals::Signals;
use crate::store::{self, AgentPaths, Store};
use crate::{deliver, lock, time, wait};

/// The variables an agent inherits from the runner's environment by default.
pub const BASE_ENV: [&str; 6] = ["PATH", "HOME", "USER", "LANG", "TERM", "TMPDIR"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DriverKind {
    Shell,
    Exec,
    Claude,
    Tmux,
}

impl DriverKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriverKind::Shell => "shell",
            DriverKind::Exec => "exec",
            DriverKind::Claude => "claude",
            DriverKind::Tmux => "tmux",
        }
    }
}

/// How to run an agent.
#[derive(Clone, Debug)]
pub struct Spec {
    pub name: String,
    pub driver: DriverKind,
    pub cwd: Option<PathBuf>,
    pub env: Vec<String>,
    pub pass_env: Vec<String>,
    pub command: Vec<String>,
    /// The claude binary (the claude and tmux drivers); found on PATH when not given.
    pub claude: Option<PathBuf>,
    /// The tmux session that holds the agent's window (the tmux driver).
    pub tmux_session: String,
}

/// The claude binary: `--claude PATH`, else `claude` on PATH. Missing is an error at start.
fn find_claude(spec: &Spec) -> Result<PathBuf> {
    let wanted = spec
        .claude
        .clone()
        .unwrap_or_else(|| PathBuf::from("claude"));
    which::which(&wanted).map_err(|_| {
        Failure::msg(
            Exit::Usage,
            format!(
                "cannot find Claude Code ({}) for agent {}: install it (npm install -g @anthropic-ai/claude-code) or pass --claude PATH",
                wanted.display(),
                spec.name
            ),
        )
    })
}

struct Runner<'a> {
    store: &'a Store,
    paths: AgentPaths,
    status: Status,
    sigs: Signals,
    inotify: Inotify,
    driver: Box<dyn Driver>,
    log: fs::File,
    echo: bool,
    stopping: bool,
    started_ms: u64,
    control: control::Server,
    /// Set when a control request asks to cancel the task in flight.
    cancel_current: bool,
    /// The task in flight has no inotify watch (the watch limit): look for `cancel` each second.
    unwatched: bool,
    /// Callers waiting on the control socket for a task to finish.
    watchers: Vec<(String, Incoming)>,
}

/// Runs the agent in the foreground until a stop signal. `ready` is told once the lock is held.
pub fn run(store: &Store, spec: &Spec, notify_ready: bool) -> Result<()> {
    let paths = store.ensure_agent(&spec.name)?;
    let Some(_lock) = lock::hold(&paths.lock)? else {
        return Err(already_running(&paths));
    };
    let control = control::Server::bind(&control::socket_path(&paths.dir))?;
    let sigs = Signals::install(&[
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGCHLD,
    ])
    .map_err(|e| Error::io("installing signal handlers for", &paths.dir, e))?;
    let log = store::open_append(&paths.log)?;
    let session = session_id(&paths)?;
    let cwd = match &spec.cwd {
        Some(c) => std::path::absolute(c).during("resolving the working folder", c)?,
        None => std::env::current_dir().during("reading the current folder", ".")?,
    };
    if !cwd.is_dir() {
        return Err(Failure::msg(
            Exit::Usage,
            format!("the working folder {} does not exist", cwd.display()),
        ));
    }
    let env = agent_env(store, spec, &session)?;
    let config = AgentConfig {
        driver: spec.driver.as_str().into(),
        command: spec.command.clone(),
        cwd: Some(cwd.display().to_string()),
        env: spec.env.clone(),
        pass_env: spec.pass_env.clone(),
    };
    protocol::write_json(&paths.dir, "agent.json", &config)?;
    let setup = Setup {
        env,
        cwd,
        log: log.try_clone().during("opening", &paths.log)?,
    };
    let driver: Box<dyn Driver> = match spec.driver {
        DriverKind::Exec => {
            let Some(program) = spec.command.first() else {
                return Err(Failure::msg(Exit::Usage, "the exec driver needs a command: baton agent run NAME --driver exec -- CMD ARGS..."));
            };
            // Resolved once, against the agent's own PATH, so that no task pays for the search.
            let agent_path = setup
                .env
                .iter()
                .find(|(k, _)| k == "PATH")
                .map(|(_, v)| v.clone());
            let Ok(resolved) = which::which_in(program, agent_path, &setup.cwd) else {
                return Err(Failure::msg(
                    Exit::Usage,
                    format!(
                        "cannot find the command {program:?} for agent {}",
                        spec.name
                    ),
                ));
            };
            let mut command = spec.command.clone();
            command[0] = resolved.to_string_lossy().into_owned();
            Box::new(driver::exec::Exec::new(command, setup))
        }
        DriverKind::Shell => Box::new(
            driver::shell::Shell::new(spec.command.clone(), setup, store.tasks_dir())
                .map_err(|e| Failure::msg(Exit::Usage, e))?,
        ),
        DriverKind::Claude => {
            let program = find_claude(spec)?;
            Box::new(
                driver::claude::Claude::new(
                    program,
                    spec.command.clone(),
                    setup,
                    paths.dir.clone(),
                    &session,
                )
                .map_err(|e| Failure::msg(Exit::Usage, e))?,
            )
        }
        DriverKind::Tmux => {
            let mut command = spec.command.clone();
            if command.is_empty() || command[0].starts_with('-') {
                command.insert(0, find_claude(spec)?.to_string_lossy().into_owned());
            }
            let opts = driver::tmux::Options {
                name: &spec.name,
                session: &spec.tmux_session,
                command,
                agent_dir: &paths.dir,
                baton: std::env::current_exe()
                    .during("finding the baton binary", "/proc/self/exe")?,
            };
            Box::new(
                driver::tmux::Tmux::new(opts, &setup).map_err(|e| Failure::msg(Exit::Usage, e))?,
            )
        }
    };
    let inotify =
        Inotify::init().map_err(|e| wait::inotify_error("watching", &paths.inbox_new, e))?;
    inotify
        .watches()
        .add(&paths.inbox_new, WatchMask::MOVED_TO | WatchMask::CREATE)
        .map_err(|e| wait::inotify_error("watching", &paths.inbox_new, e))?;
    if let Some(dir) = driver.watch_dir() {
        inotify
            .watches()
            .add(dir, WatchMask::MOVED_TO | WatchMask::CREATE)
            .map_err(|e| wait::inotify_error("watching", dir, e))?;
    }
    let mut runner = Runner {
        store,
        status: Status {
            agent_id: spec.name.clone(),
            status: AgentState::Idle,
            current_task: None,
            context_summary: driver
                .summary()
                .unwrap_or_else(|| format!("session {session}")),
            last_active: time::now_rfc3339(),
            window_id: driver.window(),
            pid: std::process::id(),
            driver: spec.driver.as_str().into(),
            tasks_done: 0,
        },
        paths,
        sigs,
        inotify,
        driver,
        log,
        echo: !notify_ready,
        stopping: false,
        started_ms: 0,
        control,
        cancel_current: false,
        unwatched: false,
        watchers: Vec::new(),
    };
    runner.recover()?;
    // The first status already says whether the agent can take a task (a TUI still starting).
    if let Some(why) = runner.driver.busy() {
        runner.status.status = AgentState::Blocked;
        runner.status.current_task = Some(why);
    }
    runner.write_status()?;
    runner.say(&format!(
        "runner started (pid {}, driver {})",
        std::process::id(),
        spec.driver.as_str()
    ));
    if notify_ready {
        // `agent start` waits for this line on our stdout, then our stdout becomes the log.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "ready {}", std::process::id());
        let _ = out.flush();
        let _ = nix::unistd::dup2_stdout(runner.log.as_fd());
    }
    let result = runner.serve();
    runner.driver.shutdown(&runner.sigs);
    runner.status.status = AgentState::Stopped;
    runner.status.current_task = None;
    let _ = runner.write_status();
    runner.say("runner stopped");
    result
}

fn already_running(paths: &AgentPaths) -> Failure {
    let pid = lock::holder_pid(&paths.lock)
        .map(|p| p.to_string())
        .unwrap_or_else(|| "unknown".into());
    Failure::msg(
        Exit::Usage,
        format!("agent {} is already running, pid {pid}", paths.name()),
    )
}

/// The agent's stable session id, created on its first run.
fn session_id(paths: &AgentPaths) -> crate::error::Result<String> {
    match store::read_nofollow(&paths.session) {
        Ok(b) => {
            let s = String::from_utf8_lossy(&b).trim().to_string();
            if s.len() == 36 {
                return Ok(s);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("reading", &paths.session, e)),
    }
    let id = store::new_uuid();
    store::write_atomic(&paths.dir, "session_id", format!("{id}\n").as_bytes())?;
    Ok(id)
}

/// The scrubbed environment: the base variables, `--pass-env`, `--env`, and baton's own.
fn agent_env(store: &Store, spec: &Spec, session: &str) -> Result<Vec<(OsString, OsString)>> {
    let mut env: Vec<(OsString, OsString)> = Vec::new();
    let mut set = |k: OsString, v: OsString| {
        env.retain(|(key, _)| *key != k);
        env.push((k, v));
    };
    for k in BASE_ENV
        .iter()
        .copied()
        .chain(spec.pass_env.iter().map(String::as_str))
    {
        if let Some(v) = std::env::var_os(k) {
            set(k.into(), v);
        }
    }
    for kv in &spec.env {
        let Some((k, v)) = kv.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(Failure::msg(
                Exit::Usage,
                format!("--env takes KEY=VALUE, not {kv:?}"),
            ));
        };
        set(k.into(), v.into());
    }
    set("BATON_AGENT".into(), spec.name.clone().into());
    set("BATON_HOME".into(), store.root().into());
    set("BATON_SESSION_ID".into(), session.into());
    Ok(env)
}

impl Runner<'_> {
    fn say(&mut self, msg: &str) {
        let line = format!("{} [baton] {msg}\n", time::now_rfc3339());
        let _ = self.log.write_all(line.as_bytes());
        if self.echo {
            eprint!("{line}");
        }
    }

    fn write_status(&mut self) -> crate::error::Result<()> {
        self.status.last_active = time::now_rfc3339();
        protocol::write_json(&self.paths.dir, "status.json", &self.status)
    }

    /// Fails, as `agent_lost`, the tasks a dead runner had claimed.
    fn recover(&mut self) -> Result<()> {
        for (entry, id) in inbox_entries(&self.paths.inbox_cur)? {
            let done = Done::new(&id, self.paths.name(), State::AgentLost).with_error(
                "the agent's runner stopped while this task ran; it was not re-run (it may have had effects)",
            );
            if deliver::finish_once(self.store, &done)? {
                self.say(&format!(
                    "task {id}: failed as agent_lost (claimed by a runner that died)"
                ));
            }
            let _ = fs::remove_file(self.paths.inbox_cur.join(entry));
        }
        Ok(())
    }

    fn stop_requested(&mut self) -> bool {
        for sig in crate::signals::STOP_SIGNALS {
            if self.sigs.take_one(sig) {
                self.say(&format!("{} received: stopping", crate::signals::name(sig)));
                self.stopping = true;
            }
        }
        self.stopping
    }

    /// Reports a task in flight `blocked` while its driver says it is held up (a permission
    /// dialog), with the reason beside the task id; `working` again after.
    fn sync_held_status(&mut self, id: &str) {
        let (state, current) = match self.driver.held() {
            Some(why) => (AgentState::Blocked, format!("{id}: {why}")),
            None => (AgentState::Working, id.to_string()),
        };
        if self.status.status != state || self.status.current_task.as_deref() != Some(&current) {
            self.status.status = state;
            self.status.current_task = Some(current);
            if let Err(e) = self.write_status() {
                self.say(&format!("cannot write status.json: {e}"));
            }
        }
    }

    /// Reports the agent `blocked` (with the reason as its current task) while its driver cannot
    /// take a task, and `idle` again after. Writes only on a change.
    fn sync_idle_status(&mut self) {
        let (state, note) = match self.driver.busy() {
            Some(why) => (AgentState::Blocked, Some(why)),
            None => (AgentState::Idle, None),
        };
        if self.status.status != state || self.status.current_task != note {
            self.status.status = state;
            self.status.current_task = note;
            self.status.context_summary = self
                .driver
                .summary()
                .unwrap_or(self.status.context_summary.clone());
            if let Err(e) = self.write_status() {
                self.say(&format!("cannot write status.json: {e}"));
            }
        }
    }

    fn serve(&mut self) -> Result<()> {
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
                inbox_entries(&self.paths.inbox_new)?.into_iter().next()
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

    /// Answers every pending control request.
    fn serve_control(&mut self) {
        for incoming in self.control.accept() {
            match &incoming.request {
                Ok(Request::Watch { task }) => {
                    let task = task.clone();
                    let finished = store::validate_task_id(&task).is_err()
                        || store::exists(&self.store.task_dir(&task).join("done.json"));
                    if finished {
                        incoming.reply(&Reply::Finished { task });
                    } else {
                        self.watchers.push((task, incoming));
                    }
                }
                Ok(Request::Finished { task }) => {
                    let task = task.clone();
                    self.wake(&task);
                    incoming.reply(&Reply::Noted);
                }
                _ => {
                    let reply = self.control_reply(&incoming);
                    incoming.reply(&reply);
                }
            }
        }
    }

    /// Tells every caller watching `task` that it has finished.
    fn wake(&mut self, task: &str) {
        let (woken, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.watchers)
            .into_iter()
            .partition(|(t, _)| t == task);
        self.watchers = rest;
        for (task, incoming) in woken {
            incoming.reply(&Reply::Finished { task });
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
                Err(message) => Reply::Error { message },
            },
            Ok(Request::Cancel { task }) if self.status.current_task.as_deref() == Some(task) => {
                self.cancel_current = true;
                Reply::Cancelling { task: task.clone() }
            }
            Ok(Request::Cancel { task }) => {
                let queued = store::validate_task_id(task).is_ok()
                    && deliver::withdraw_or_cancel(self.store, &self.paths, task, State::Cancelled)
                        .is_ok_and(|s| s == deliver::Stopped::Withdrawn);
                if queued {
                    self.wake(task);
                    Reply::Cancelling { task: task.clone() }
                } else {
                    Reply::NotRunning { task: task.clone() }
                }
            }
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

    fn become_idle(&mut self) -> crate::error::Result<()> {
        self.status.status = AgentState::Idle;
        self.status.current_task = None;
        if let Some(summary) = self.driver.summary() {
            self.status.context_summary = summary;
        }
        self.write_status()
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

/// The well-formed entries of an inbox folder, in claiming order (priority, then time).
pub fn inbox_entries(dir: &Path) -> crate::error::Result<Vec<(String, String)>> {
    let mut entries: Vec<(String, String)> = fs::read_dir(dir)
        .during("listing", dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| protocol::parse_inbox_entry(&n).map(|id| (n.clone(), id.to_string())))
        .collect();
    entries.sort();
    Ok(entries)
}

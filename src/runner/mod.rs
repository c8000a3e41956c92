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

use std::fs;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;

mod control_socket;
mod setup;
mod tasks;

use inotify::{Inotify, WatchMask};
use nix::libc;

use crate::control::{self, Incoming};
use crate::driver::{Driver, Setup};
use crate::error::{Error, IoContext};
use crate::exit::{Exit, Failure, Result};
use crate::protocol::{self, AgentConfig, AgentState, Done, State, Status};
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
    let session = setup::session_id(&paths)?;
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
    let env = setup::agent_env(store, spec, &session)?;
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
    let driver = setup::make_driver(store, spec, &paths, setup, &session)?;
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
        for (entry, id) in deliver::inbox_entries(&self.paths.inbox_cur)? {
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

    fn become_idle(&mut self) -> crate::error::Result<()> {
        self.status.status = AgentState::Idle;
        self.status.current_task = None;
        if let Some(summary) = self.driver.summary() {
            self.status.context_summary = summary;
        }
        self.write_status()
    }
}

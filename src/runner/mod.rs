//! The persistent runner of one agent (`baton agent run`). It owns the agent's folder:
//! it holds the `lock` for its whole life, is the only writer of `status.json`, claims tasks from
//! `inbox/new` one at a time by rename, and for each writes `result` and then `done.json`.
//!
//! It sleeps in one `poll` over inotify (the inbox, the current task's folder), the signal pipe
//! (SIGTERM/SIGINT/SIGHUP/SIGQUIT stop it, SIGCHLD reports its children), its control socket
//! and, while a task runs, the driver's channel and the task's deadline. An idle runner makes no
//! system call at all.
//!
//! Tasks found in `inbox/cur` at start-up were claimed by a runner that died: they are failed as
//! `agent_lost`, never re-run (a task may already have had effects) and never dropped.
//!
//! A runner is started from a `Spec` (data): `start::start_runner` hands it to a detached
//! `baton agent serve` on its standard input; `baton agent run` builds it from arguments.

use std::fs;
use std::io::Write;
use std::os::fd::AsFd;

mod control_socket;
pub mod log;
mod setup;
pub mod slots;
pub mod start;
mod tasks;

use inotify::{Inotify, WatchMask};
use nix::libc;

use crate::coordinator::wait::inotify_error;
use crate::driver::{Driver, Setup};
use crate::error::{Error, IoContext};
use crate::protocol::control::{self, Incoming};
use crate::protocol::rewritten::Rewritten;
use crate::protocol::{inbox, lock, store, AgentPaths, AgentState, DriverKind, Spec, State};
use crate::protocol::{Status, Store};
use crate::protocol::{TaskEnd, TaskId};
use crate::sys::signals::Signals;
use crate::sys::time;

pub use start::start_runner;

/// The variables an agent inherits from the runner's environment by default.
pub const BASE_ENV: [&str; 6] = ["PATH", "HOME", "USER", "LANG", "TERM", "TMPDIR"];

struct Runner<'a> {
    store: &'a Store,
    paths: AgentPaths,
    status: Status,
    /// `status.json`, which this runner alone writes.
    status_file: Rewritten,
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
    /// The watch on the folder of the task in flight, if it has one (none: the watch limit).
    task_watch: Option<inotify::WatchDescriptor>,
    /// Callers waiting on the control socket for a task to finish.
    watchers: Vec<(TaskId, Incoming)>,
    /// Ends that could not be recorded yet (a full disk), with their claimed entries.
    pending_ends: Vec<(inbox::Entry, TaskEnd)>,
    /// What keeps the runner from serving now, as last logged.
    trouble: Option<String>,
    /// The pool this agent is a member of: it also takes tasks from the pool's inbox.
    pool: Option<AgentPaths>,
    /// The global limit on tasks running at once (`max_concurrent`), if one is set.
    max_concurrent: Option<u32>,
    /// The driver is a Claude Code: its unread mail goes before its next task.
    reads_mail: bool,
    /// A task ran since what is made ahead (`protocol::spare`) was last made: callers may have
    /// taken task folders, the task used files. Made again once idle.
    spares_taken: bool,
    /// Files made ahead for the `output` and `done.json` of the next task.
    ahead: crate::protocol::spare::Unnamed,
}

/// Runs the agent in the foreground until a stop signal. With `notify_ready`, `ready PID` is
/// written on stdout once the lock is held and the agent can take tasks (`start_runner` waits
/// for it), and stdout then becomes the log.
pub fn run(store: &Store, spec: &Spec, notify_ready: bool) -> anyhow::Result<()> {
    let paths = store.ensure_agent(&spec.name)?;
    let Some(held) = lock::hold(&paths.lock)? else {
        return Err(already_running(&paths).into());
    };
    // Every waiting caller holds a connection to the runner: allow as many as the system does.
    raise_open_files_limit();
    let mut runner = Runner::open(store, spec, paths, !notify_ready)?;
    runner.recover()?;
    crate::protocol::spare::clear_unfinished(&runner.paths.spare);
    runner.make_ahead();
    runner.bound_log();
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
        crate::test_hooks::pause_point(crate::test_hooks::BEFORE_READY);
        let mut out = std::io::stdout();
        let _ = writeln!(out, "ready {}", std::process::id());
        let _ = out.flush();
        let _ = nix::unistd::dup2_stdout(runner.log.as_fd());
    }
    let result = runner.serve(&held);
    runner.driver.shutdown(&runner.sigs);
    if spec.driver != DriverKind::Tmux {
        reap_leftovers(store, &runner.paths, &runner.log);
    }
    runner.status.status = AgentState::Stopped;
    runner.status.current_task = None;
    let _ = runner.write_status();
    runner.say("runner stopped");
    result
}

impl<'a> Runner<'a> {
    /// Everything a runner holds while it serves, for the lock holder of `paths`: its control
    /// socket, signals, log, spec (recorded as `agent.json`), driver and inotify watches.
    fn open(store: &'a Store, spec: &Spec, paths: AgentPaths, echo: bool) -> anyhow::Result<Self> {
        let control = control::Server::bind(&paths.sock)?;
        let sigs = Signals::install(&[
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGCHLD,
        ])
        .during("installing signal handlers for", &paths.dir)?;
        let log = store::open_append(&paths.log)?;
        let session = setup::session_id(&paths)?;
        let spec = setup::resolve(spec)?;
        let env = setup::agent_env(store, &spec, &session)?;
        crate::protocol::write_json(&paths.spec, &spec)?;
        let setup = Setup {
            env,
            cwd: spec.cwd.clone().unwrap_or_default(),
            log: log.try_clone().during("opening", &paths.log)?,
        };
        // What a runner that died left running (a shell's background job, a pipeline's other
        // end) is ended before a new driver starts. A tmux window is adopted, not ended.
        if spec.driver != DriverKind::Tmux {
            reap_leftovers(store, &paths, &log);
        }
        let driver = setup::make_driver(store, &spec, &paths, setup, &session)?;
        let pool = match &spec.pool {
            Some(id) => Some(store.ensure_agent(id)?),
            None => None,
        };
        let inotify =
            Inotify::init().map_err(|e| inotify_error("watching", &paths.inbox_new, e))?;
        let pool_inbox = pool.as_ref().map(|p| p.inbox_new.as_path());
        for dir in std::iter::once(paths.inbox_new.as_path())
            .chain(pool_inbox)
            .chain(driver.watch_dir())
        {
            inotify
                .watches()
                .add(dir, WatchMask::MOVED_TO | WatchMask::CREATE)
                .map_err(|e| inotify_error("watching", dir, e))?;
        }
        Ok(Runner {
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
            status_file: Rewritten::new(&paths.status),
            paths,
            sigs,
            inotify,
            driver,
            log,
            echo,
            stopping: false,
            started_ms: 0,
            control,
            cancel_current: false,
            task_watch: None,
            watchers: Vec::new(),
            pending_ends: Vec::new(),
            trouble: None,
            pool,
            max_concurrent: spec.max_concurrent,
            reads_mail: matches!(spec.driver, DriverKind::Claude | DriverKind::Tmux),
            spares_taken: false,
            ahead: crate::protocol::spare::Unnamed::new(&store.tasks_dir()),
        })
    }
}

/// The environment every process of agent `paths` carries (the agent's own variables).
pub fn agent_marks(store: &Store, paths: &AgentPaths) -> Vec<String> {
    vec![
        format!("BATON_AGENT={}", paths.name()),
        format!("BATON_HOME={}", store.root().display()),
    ]
}

/// Ends every process left by an earlier runner of the agent, and says so in its log.
pub fn reap_leftovers(store: &Store, paths: &AgentPaths, mut log: &fs::File) {
    let n = crate::sys::spawn::kill_marked(&agent_marks(store, paths));
    if n > 0 {
        let _ = writeln!(
            log,
            "{} [baton] ended {n} process(es) an earlier runner of this agent left behind",
            time::now_rfc3339()
        );
    }
}

/// Raises the soft limit on open files to the hard limit (best effort).
fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

fn already_running(paths: &AgentPaths) -> Error {
    let pid = lock::holder_pid(&paths.lock)
        .map(|p| p.to_string())
        .unwrap_or_else(|| "unknown".into());
    Error::Usage(format!(
        "agent {} is already running, pid {pid}",
        paths.name()
    ))
}

impl Runner<'_> {
    fn say(&mut self, msg: &str) {
        let line = format!("{} [baton] {msg}\n", time::now_rfc3339());
        let _ = self.log.write_all(line.as_bytes());
        if self.echo {
            eprint!("{line}");
        }
    }

    fn write_status(&mut self) -> Result<(), crate::error::StoreError> {
        self.status.last_active = time::now_rfc3339();
        let bytes = crate::protocol::json_line(&self.paths.status, &self.status)?;
        self.status_file.write(&bytes)
    }

    /// Fails, as `agent_lost`, the tasks a dead runner had claimed. An entry whose task folder
    /// is missing or unsafe is put aside; an end that cannot be written yet is kept for later.
    fn recover(&mut self) -> anyhow::Result<()> {
        for entry in inbox::claimed(&self.paths)? {
            let task = self.store.task(&entry.id);
            if let Err(e) = store::check_dir(&task.dir) {
                self.quarantine(&self.paths.inbox_cur.clone(), &entry, &e.to_string());
                continue;
            }
            let end = TaskEnd::new(&entry.id, self.paths.name(), State::AgentLost).with_error(
                "the agent's runner stopped while this task ran; it was not re-run (it may have had effects)",
            );
            match task.record_end(&end) {
                Ok(true) => self.say(&format!(
                    "task {}: failed as agent_lost (claimed by a runner that died)",
                    entry.id
                )),
                Ok(false) => {}
                Err(e) => {
                    self.say(&format!(
                        "task {}: cannot record its loss yet: {e}",
                        entry.id
                    ));
                    self.pending_ends.push((entry, end));
                    continue;
                }
            }
            inbox::release(&self.paths, &entry);
        }
        Ok(())
    }

    fn stop_requested(&mut self) -> bool {
        for sig in crate::sys::signals::STOP_SIGNALS {
            if self.sigs.take_one(sig) {
                self.say(&format!(
                    "{} received: stopping",
                    crate::sys::signals::name(sig)
                ));
                self.stopping = true;
            }
        }
        self.stopping
    }

    /// Writes the status if it changed (`state`, `current`); a failure is logged, not fatal.
    fn set_status(&mut self, state: AgentState, current: Option<String>) {
        if self.status.status != state || self.status.current_task != current {
            self.status.status = state;
            self.status.current_task = current;
            if let Some(summary) = self.driver.summary() {
                self.status.context_summary = summary;
            }
            if let Err(e) = self.write_status() {
                self.say(&format!("cannot write status.json: {e}"));
            }
        }
    }

    /// Reports a task in flight `blocked` while its driver says it is held up (a permission
    /// dialog), with the reason beside the task id; `working` again after.
    fn sync_held_status(&mut self, id: &TaskId) {
        match self.driver.held() {
            Some(why) => self.set_status(AgentState::Blocked, Some(format!("{id}: {why}"))),
            None => self.set_status(AgentState::Working, Some(id.to_string())),
        }
    }

    /// Reports the agent `blocked` (with the reason as its current task) while its driver cannot
    /// take a task, and `idle` again after. Writes only on a change.
    fn sync_idle_status(&mut self) {
        match self.driver.busy() {
            Some(why) => self.set_status(AgentState::Blocked, Some(why)),
            None => self.set_status(AgentState::Idle, None),
        }
    }
}

//! Waiting for tasks: one loop (on the one poller) over the wake-ups of each task, the signal
//! pipe, the terminal when there is one, and the deadline. Nothing here sleeps or polls files on
//! a timer: without a terminal the loop wakes only for events; with one it also redraws the
//! status line each second.
//!
//! A task's wake-up is its runner's control socket when it has one (`watch`: the runner answers
//! when it writes `done.json`, and the connection closes if it dies). Otherwise, and whenever that
//! connection ends without a `done.json` (the runner is gone or restarting), the wait falls back to
//! inotify on the task's folder plus the lock-based death watch. The socket comes first because an
//! inotify watch costs its process a kernel grace period (about 16 ms here) when it exits.
//! Whatever woke the loop, `done.json` is what it reads.
//!
//! A wait follows its task, not the runner it was delivered to: when that runner dies, the task
//! is lost only if it was claimed by it (or, unless the caller queues, if no runner is left to
//! claim it). If another runner holds the agent by then, the wait goes on with that one.

use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use inotify::{Inotify, WatchMask};

use crate::error::StoreError;
use crate::poll::{earliest, Poll};
use crate::protocol::control::{self, Reply};
use crate::protocol::{inbox, lock, store, AgentPaths, AgentState, State, Store};
use crate::protocol::{TaskEnd, TaskPaths};
use crate::sys::signals::Signals;
use crate::sys::term::{Tty, CTRL_C};
use crate::sys::time;

/// One task being waited for.
pub struct Pending {
    pub agent: AgentPaths,
    pub task: TaskPaths,
    pub created_ms: u64,
    done: bool,
    /// The end the runner reported over its socket because it could not record it.
    pub reported: Option<TaskEnd>,
    /// Keeps `baton gc` from removing the task while it is waited on.
    _held: Option<crate::protocol::lock::UntilClosed>,
    /// Delivered to a pool: `agent` is the pool until a member takes the task (and says so in
    /// the task's `runner`); then it is that member.
    pub pool: bool,
    dead: Arc<AtomicBool>,
    /// The runner will answer on this connection when the task finishes.
    socket: Option<UnixStream>,
    /// Watched by inotify instead (and, if liveness matters, the death watch).
    fallback: bool,
    /// Shown before the agent's name on the status line (`stage 2/3 `).
    pub label: String,
    /// The caller gives up on the task at this instant.
    pub deadline: Option<Instant>,
}

impl Pending {
    pub fn new(agent: AgentPaths, task: TaskPaths, created_ms: u64) -> Pending {
        Pending {
            _held: task.hold(),
            pool: false,
            agent,
            task,
            created_ms,
            done: false,
            reported: None,
            dead: Arc::new(AtomicBool::new(false)),
            socket: None,
            fallback: false,
            label: String::new(),
            deadline: None,
        }
    }

    /// True once the wait has seen the task's end.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// An end the coordinator gives this task (it did not record one itself).
    pub fn ended(&self, state: State, why: String) -> TaskEnd {
        TaskEnd {
            created_ms: Some(self.created_ms),
            ..TaskEnd::new(&self.task.id, self.agent.name(), state).with_error(why)
        }
    }
}

/// Why the wait ended.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Stop {
    /// Every task has its end (or, with `Options::any`, at least one has).
    Ended,
    Signal(i32),
    Timeout,
    /// The task `pending[i]` was lost with its runner.
    Lost(usize, Lost),
    /// Ctrl-C typed on the terminal.
    CancelKey,
    /// `d` typed on the terminal.
    Detach,
}

pub struct Options {
    pub deadline: Option<Instant>,
    /// A runner's death can lose a task (off for `--queue`, which waits for a runner).
    pub watch_liveness: bool,
    /// The caller delivered the tasks: a queued task no runner is left to claim is taken back.
    pub owned: bool,
    /// Return as soon as one task has ended, not when all have.
    pub any: bool,
}

/// Advice for the inotify errors a user can fix.
pub fn inotify_error(action: &'static str, path: &std::path::Path, e: io::Error) -> StoreError {
    let advice = match e.raw_os_error() {
        Some(nix::libc::ENOSPC) => " (the inotify watch limit is reached: raise fs.inotify.max_user_watches, e.g. `sysctl fs.inotify.max_user_watches=524288`)",
        Some(nix::libc::EMFILE) => " (the inotify instance limit is reached: raise fs.inotify.max_user_instances)",
        _ => return StoreError::io(action, path, e),
    };
    // Its own kind, so that the advice for a full disk (also ENOSPC) is not added as well.
    StoreError::io(action, path, io::Error::other(format!("{e}{advice}")))
}

/// Waits until every task has its `done.json`, or something ends the wait.
pub fn wait(
    store: &Store,
    pending: &mut [Pending],
    sigs: &Signals,
    opts: &Options,
    mut tty: Option<&mut Tty>,
) -> Result<Stop, StoreError> {
    // The inotify instance is this call's: a task watched by an earlier call is watched anew.
    let mut inotify: Option<Inotify> = None;
    crate::test_hooks::pause_point(crate::test_hooks::BEFORE_WATCH);
    for p in pending.iter_mut().filter(|p| !p.done) {
        p.fallback = false;
        p.socket = control::watch(&p.agent.sock, &p.task.id).ok();
        if p.socket.is_none() {
            fall_back(store, p, &mut inotify, sigs, opts)?;
        }
    }
    loop {
        // Check after the watches are in place, so that no arrival is missed.
        follow_pool_members(store, pending, sigs, opts)?;
        if let Some(stop) = settled(pending, sigs, opts)? {
            return Ok(stop);
        }
        let mut redraw = None;
        if let Some(t) = tty.as_deref_mut() {
            let keys = t.keys().is_some();
            t.status(&status_line(pending, keys));
            crate::test_hooks::panic_point(crate::test_hooks::STATUS_DRAWN);
            redraw = Some(Instant::now() + Duration::from_secs(1));
        }
        let deadline = earliest([opts.deadline, redraw]);
        let (key_ready, ended) = sleep(
            store,
            pending,
            sigs,
            inotify.as_mut(),
            tty.as_deref(),
            deadline,
        )?;
        // A connection that answered or closed has done its work: the loop re-reads done.json,
        // and a task still unfinished falls back to inotify and the death watch.
        for i in ended {
            let p = &mut pending[i];
            p.done = p.reported.is_some() || p.task.is_done();
            if !p.done {
                fall_back(store, p, &mut inotify, sigs, opts)?;
            }
        }
        if let (true, Some(t)) = (key_ready, tty.as_deref_mut()) {
            for key in t.read_keys() {
                match key {
                    CTRL_C => return Ok(Stop::CancelKey),
                    b'd' | b'D' => return Ok(Stop::Detach),
                    b'a' | b'A' => show_window(pending),
                    _ => {}
                }
            }
        }
    }
}

/// A pool's task that a member has taken is followed on that member from then on.
fn follow_pool_members(
    store: &Store,
    pending: &mut [Pending],
    sigs: &Signals,
    opts: &Options,
) -> Result<(), StoreError> {
    for p in pending.iter_mut().filter(|p| p.pool && !p.done) {
        let Ok(bytes) = store::read_nofollow(&p.task.runner) else {
            continue;
        };
        let id = String::from_utf8_lossy(&bytes).trim().to_string();
        if let Ok(member) = store.agent_paths(&id) {
            p.agent = member;
            p.pool = false;
            if opts.watch_liveness {
                rearm(p, sigs)?;
            }
        }
    }
    Ok(())
}

/// Why the wait is over, if it is: every task done, a task lost with its runner, a signal, the
/// deadline. A runner's death that loses nothing re-arms the watch on the next runner.
fn settled(
    pending: &mut [Pending],
    sigs: &Signals,
    opts: &Options,
) -> Result<Option<Stop>, StoreError> {
    for p in pending.iter_mut().filter(|p| !p.done) {
        p.done = p.task.is_done();
    }
    let ended = if opts.any {
        pending.iter().any(|p| p.done)
    } else {
        pending.iter().all(|p| p.done)
    };
    if ended {
        return Ok(Some(Stop::Ended));
    }
    for (i, p) in pending.iter_mut().enumerate() {
        if !p.done && !store::exists(&p.task.dir) {
            return Ok(Some(Stop::Lost(i, Lost::Vanished)));
        }
        if !p.done && p.dead.swap(false, Ordering::SeqCst) {
            match fate(p, opts.owned) {
                Fate::Running => rearm(p, sigs)?,
                Fate::Done => p.done = true,
                Fate::Lost(how) => return Ok(Some(Stop::Lost(i, how))),
            }
        }
    }
    if let Some(sig) = sigs.take() {
        return Ok(Some(Stop::Signal(sig)));
    }
    if opts.deadline.is_some_and(|d| Instant::now() >= d) {
        return Ok(Some(Stop::Timeout));
    }
    Ok(None)
}

/// Sleeps until something wakes the wait (or `deadline`), and takes what woke it: returns
/// whether a key is waiting, and the tasks whose runner connection answered or closed (those
/// connections are closed).
fn sleep(
    store: &Store,
    pending: &mut [Pending],
    sigs: &Signals,
    inotify: Option<&mut Inotify>,
    tty: Option<&Tty>,
    deadline: Option<Instant>,
) -> Result<(bool, Vec<usize>), StoreError> {
    let (key_ready, ended, signalled, changed) = {
        let mut poll = Poll::new();
        let signal = poll.add(sigs.fd());
        let files = inotify.as_deref().map(|i| poll.add(i.as_fd()));
        let sockets: Vec<(usize, usize)> = pending
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.socket.as_ref().map(|s| (i, poll.add(s.as_fd()))))
            .collect();
        let key = tty.and_then(|t| t.keys()).map(|fd| poll.add(fd));
        poll.wait(deadline)
            .map_err(|e| StoreError::io("waiting", store.root(), e))?;
        let ended: Vec<usize> = sockets
            .into_iter()
            .filter(|&(_, at)| poll.ready(at))
            .map(|(i, _)| i)
            .collect();
        (
            key.is_some_and(|k| poll.ready(k)),
            ended,
            poll.ready(signal),
            files.is_some_and(|f| poll.ready(f)),
        )
    };
    if signalled {
        sigs.drain();
    }
    if let Some(i) = inotify.filter(|_| changed) {
        drain_inotify(i);
    }
    for &i in &ended {
        if let Some(s) = pending[i].socket.take() {
            if let Some(Reply::Finished { end: Some(end), .. }) = read_reply(&s) {
                pending[i].reported = Some(*end);
            }
        }
    }
    Ok((key_ready, ended))
}

/// The runner's reply on a watch connection that became readable (`None` if it closed
/// without one).
fn read_reply(mut stream: &UnixStream) -> Option<Reply> {
    let mut line = Vec::new();
    let mut chunk = [0u8; 4096];
    while !line.contains(&b'\n') && line.len() <= control::MAX_REQUEST {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => line.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    serde_json::from_slice(line.split(|&b| b == b'\n').next()?).ok()
}

/// What became of a task whose runner died.
enum Fate {
    /// It has its end after all.
    Done,
    /// Another runner holds the agent: the task is not lost.
    Running,
    Lost(Lost),
}

/// How a task was lost with its runner.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Lost {
    /// The runner that died had claimed it.
    Claimed,
    /// It was still queued and no runner is left: the caller took it back.
    Withdrawn,
    /// It is still queued and no runner is left (the caller does not own it).
    Queued,
    /// Its folder or its inbox entry is gone without an end.
    Vanished,
}

fn fate(p: &Pending, owned: bool) -> Fate {
    crate::test_hooks::pause_point(crate::test_hooks::RUNNER_GONE);
    if p.task.is_done() {
        return Fate::Done;
    }
    // Observe the claim before the lock: an entry in cur/ seen while no runner holds the lock
    // was claimed by a runner that is dead now (a live runner holds the lock before it claims).
    let claimed = inbox::is_claimed(&p.agent, &p.task.id);
    if lock::runner_alive(&p.agent.lock) {
        return Fate::Running;
    }
    if p.task.is_done() {
        return Fate::Done;
    }
    if claimed {
        return Fate::Lost(Lost::Claimed);
    }
    if !store::exists(&p.task.dir) || !inbox::is_queued(&p.agent, &p.task.id) {
        // Not queued, not claimed before the runner died: a runner that started since may
        // have claimed it; if one holds the agent now, it is running.
        return if lock::runner_alive(&p.agent.lock) {
            Fate::Running
        } else if p.task.is_done() {
            Fate::Done
        } else {
            Fate::Lost(Lost::Vanished)
        };
    }
    if !owned {
        return Fate::Lost(Lost::Queued);
    }
    // Taking it back is atomic against a runner that starts now and claims it.
    match inbox::withdraw(&p.agent, &p.task.id) {
        Ok(true) => Fate::Lost(Lost::Withdrawn),
        _ => Fate::Running,
    }
}

/// Watches the runner that holds the agent now.
fn rearm(p: &mut Pending, sigs: &Signals) -> Result<(), StoreError> {
    let waker = sigs
        .waker()
        .map_err(|e| StoreError::io("creating a waker", &p.agent.lock, e))?;
    lock::watch_death(p.agent.lock.clone(), waker, Arc::clone(&p.dead))
}

/// Watches a task's folder with inotify (created on first use) and, when liveness matters, its
/// runner's lock.
fn fall_back(
    store: &Store,
    p: &mut Pending,
    inotify: &mut Option<Inotify>,
    sigs: &Signals,
    opts: &Options,
) -> Result<(), StoreError> {
    if p.fallback {
        return Ok(());
    }
    p.fallback = true;
    let i = match inotify {
        Some(i) => i,
        None => inotify
            .insert(Inotify::init().map_err(|e| inotify_error("watching", &store.tasks_dir(), e))?),
    };
    i.watches()
        .add(&p.task.dir, WatchMask::MOVED_TO | WatchMask::CREATE)
        .map_err(|e| inotify_error("watching", &p.task.dir, e))?;
    // A pool has no runner to watch: its member is watched once it has taken the task.
    if opts.watch_liveness && !p.pool {
        rearm(p, sigs)?;
    }
    Ok(())
}

/// What a person sees while waiting: agent, state, elapsed, last line of output.
fn status_line(pending: &[Pending], keys: bool) -> String {
    let Some(p) = pending.iter().find(|p| !p.done) else {
        return String::new();
    };
    let elapsed = time::human(Duration::from_millis(
        time::now_ms().saturating_sub(p.created_ms),
    ));
    let state = if inbox::is_queued(&p.agent, &p.task.id) {
        "queued".to_string()
    } else {
        match p.agent.read_status() {
            Ok(Some(s)) if s.status == AgentState::Blocked => {
                format!("blocked: {}", s.current_task.unwrap_or_default())
            }
            Ok(Some(s)) => s.status.as_str().to_string(),
            _ => "working".to_string(),
        }
    };
    let more = match pending.iter().filter(|p| !p.done).count() {
        1 => String::new(),
        n => format!(" (+{} more)", n - 1),
    };
    // What the agent does now, as its driver reports it (a tool in use), else its last line.
    let last = store::last_line(&p.task.progress)
        .or_else(|| store::last_line(&p.task.output))
        .map(|l| format!(" │ {l}"))
        .unwrap_or_default();
    let attach = if keys && inside_tmux() && tmux_place(&p.agent).is_some() {
        " · a show its window"
    } else {
        ""
    };
    let help = if keys {
        "Ctrl-C cancel · d detach"
    } else {
        "Ctrl-C cancels"
    };
    format!(
        "baton: {}@{}{more} {state} {elapsed}{last} │ {help}{attach}",
        p.label,
        crate::protocol::agent::name_of(p.agent.name())
    )
}

fn inside_tmux() -> bool {
    std::env::var_os("TMUX").is_some_and(|v| !v.is_empty())
}

fn tmux_place(agent: &AgentPaths) -> Option<crate::driver::tmux::Place> {
    crate::protocol::read_json(&agent.tmux).ok().flatten()
}

/// Switches this terminal's tmux client to the window of the first unfinished tmux agent (a
/// person answers its permission dialog there), and keeps waiting.
fn show_window(pending: &[Pending]) {
    if !inside_tmux() {
        return;
    }
    if let Some(place) = pending
        .iter()
        .filter(|p| !p.done)
        .find_map(|p| tmux_place(&p.agent))
    {
        let _ = crate::driver::tmux::attach_command(&place)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Reads and discards every queued inotify event (the loops re-check files; events only wake).
pub fn drain_inotify(inotify: &mut Inotify) {
    let mut buf = [0u8; 4096];
    while let Ok(events) = inotify.read_events(&mut buf) {
        if events.count() == 0 {
            break;
        }
    }
}

//! Waiting for tasks: one `poll` loop over the wake-ups of each task, the signal pipe, the terminal
//! when there is one, and the deadline. Nothing here sleeps or polls files on a timer: without a
//! terminal the loop wakes only for events; with one it also redraws the status line each second.
//!
//! A task's wake-up is its runner's control socket when it has one (`watch`: the runner answers
//! when it writes `done.json`, and the connection closes if it dies). Otherwise, and whenever that
//! connection ends without a `done.json` (the runner is gone or restarting), the wait falls back to
//! inotify on the task's folder plus the lock-based death watch. The socket comes first because an
//! inotify watch costs its process a kernel grace period (about 16 ms here) when it exits.
//! Whatever woke the loop, `done.json` is what it reads.

use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use inotify::{Inotify, WatchMask};
use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::error::{Error, Result};
use crate::protocol::{self, AgentState, Done, State, Status};
use crate::signals::Signals;
use crate::store::{self, AgentPaths, Store};
use crate::term::{Tty, CTRL_C};
use crate::{deliver, lock, time};

/// One task being waited for.
pub struct Pending {
    pub agent: AgentPaths,
    pub task_id: String,
    pub created_ms: u64,
    pub done: Option<Done>,
    dead: Arc<AtomicBool>,
    /// The runner will answer on this connection when the task finishes.
    socket: Option<UnixStream>,
    /// Watched by inotify (and, if liveness matters, the death watch) instead.
    fallback: bool,
}

impl Pending {
    pub fn new(agent: AgentPaths, task_id: String, created_ms: u64) -> Pending {
        Pending {
            agent,
            task_id,
            created_ms,
            done: None,
            dead: Arc::new(AtomicBool::new(false)),
            socket: None,
            fallback: false,
        }
    }
}

/// Why the wait ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    AllDone,
    Signal(i32),
    Timeout,
    /// The runner of `pending[i]` died before finishing it.
    AgentLost(usize),
    /// Ctrl-C typed on the terminal.
    CancelKey,
    /// `d` typed on the terminal.
    Detach,
}

pub struct Options {
    pub deadline: Option<Instant>,
    /// Fail as soon as an agent's runner dies (off for `--queue`, which waits for a runner).
    pub watch_liveness: bool,
}

/// Advice for the inotify errors a user can fix.
pub fn inotify_error(action: &'static str, path: &std::path::Path, e: io::Error) -> Error {
    let advice = match e.raw_os_error() {
        Some(nix::libc::ENOSPC) => " (the inotify watch limit is reached: raise fs.inotify.max_user_watches, e.g. `sysctl fs.inotify.max_user_watches=524288`)",
        Some(nix::libc::EMFILE) => " (the inotify instance limit is reached: raise fs.inotify.max_user_instances)",
        _ => return Error::io(action, path, e),
    };
    // Its own kind, so that the advice for a full disk (also ENOSPC) is not added as well.
    Error::io(action, path, io::Error::other(format!("{e}{advice}")))
}

/// Waits until every task has its `done.json`, or something ends the wait.
pub fn wait(
    store: &Store,
    pending: &mut [Pending],
    sigs: &Signals,
    opts: &Options,
    mut tty: Option<&mut Tty>,
) -> Result<End> {
    let mut inotify: Option<Inotify> = None;
    for p in pending.iter_mut() {
        p.socket =
            crate::control::watch(&crate::control::socket_path(&p.agent.dir), &p.task_id).ok();
        if p.socket.is_none() {
            fall_back(store, p, &mut inotify, sigs, opts)?;
        }
    }
    loop {
        // Check after the watches are in place, so that no arrival is missed.
        for p in pending.iter_mut().filter(|p| p.done.is_none()) {
            p.done = read_done(store, &p.task_id);
        }
        if pending.iter().all(|p| p.done.is_some()) {
            return Ok(End::AllDone);
        }
        if let Some(i) = pending
            .iter()
            .position(|p| p.done.is_none() && p.dead.load(Ordering::SeqCst))
        {
            return Ok(End::AgentLost(i));
        }
        if let Some(sig) = sigs.take() {
            return Ok(End::Signal(sig));
        }
        let now = Instant::now();
        if opts.deadline.is_some_and(|d| now >= d) {
            return Ok(End::Timeout);
        }
        let mut timeout = opts.deadline.map(|d| d - now);
        if let Some(t) = tty.as_deref_mut() {
            t.status(&status_line(store, pending));
            timeout =
                Some(timeout.map_or(Duration::from_secs(1), |d| d.min(Duration::from_secs(1))));
        }
        let poll_timeout = match timeout {
            None => PollTimeout::NONE,
            // Round up so that the loop does not wake a millisecond early and spin.
            Some(d) => {
                PollTimeout::try_from(d + Duration::from_micros(999)).unwrap_or(PollTimeout::MAX)
            }
        };
        let (tty_ready, ended) = {
            let mut fds = vec![PollFd::new(sigs.fd(), PollFlags::POLLIN)];
            if let Some(i) = inotify.as_ref() {
                fds.push(PollFd::new(i.as_fd(), PollFlags::POLLIN));
            }
            let sockets: Vec<usize> = (0..pending.len())
                .filter(|&i| pending[i].socket.is_some())
                .collect();
            for &i in &sockets {
                if let Some(s) = pending[i].socket.as_ref() {
                    fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
                }
            }
            let tty_at = fds.len();
            if let Some(t) = tty.as_deref() {
                fds.push(PollFd::new(t.fd(), PollFlags::POLLIN));
            }
            match nix::poll::poll(&mut fds, poll_timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(Error::io("waiting", store.root(), e.into())),
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            let first_socket = tty_at - sockets.len();
            let ended: Vec<usize> = sockets
                .iter()
                .enumerate()
                .filter(|(k, _)| ready(&fds[first_socket + k]))
                .map(|(_, &i)| i)
                .collect();
            (fds.get(tty_at).is_some_and(ready), ended)
        };
        // A connection that answered or closed has done its work: the loop re-reads done.json,
        // and a task still unfinished falls back to inotify and the death watch.
        for i in ended {
            if let Some(mut s) = pending[i].socket.take() {
                let mut sink = [0u8; 256];
                let _ = s.read(&mut sink);
            }
            let p = &mut pending[i];
            p.done = read_done(store, &p.task_id);
            if p.done.is_none() {
                fall_back(store, p, &mut inotify, sigs, opts)?;
            }
        }
        if tty_ready {
            if let Some(t) = tty.as_deref_mut() {
                for key in t.read_keys() {
                    match key {
                        CTRL_C => return Ok(End::CancelKey),
                        b'd' | b'D' => return Ok(End::Detach),
                        b'a' | b'A' => show_window(pending),
                        _ => {}
                    }
                }
            }
        }
    }
}

/// Watches a task's folder with inotify (created on first use) and, when liveness matters, its
/// runner's lock.
fn fall_back(
    store: &Store,
    p: &mut Pending,
    inotify: &mut Option<Inotify>,
    sigs: &Signals,
    opts: &Options,
) -> Result<()> {
    if p.fallback {
        return Ok(());
    }
    p.fallback = true;
    let i = match inotify {
        Some(i) => i,
        None => inotify.insert(
            Inotify::init()
                .map_err(|e| inotify_error("watching", store.tasks_dir().as_path(), e))?,
        ),
    };
    let dir = store.task_dir(&p.task_id);
    i.watches()
        .add(&dir, WatchMask::MOVED_TO | WatchMask::CREATE)
        .map_err(|e| inotify_error("watching", &dir, e))?;
    if opts.watch_liveness {
        let waker = sigs
            .waker()
            .map_err(|e| Error::io("creating a waker", &p.agent.lock, e))?;
        lock::watch_death(p.agent.lock.clone(), waker, Arc::clone(&p.dead))?;
    }
    Ok(())
}

/// The task's `done.json`; a malformed one is reported as a failure of the task, never a panic.
pub fn read_done(store: &Store, task_id: &str) -> Option<Done> {
    let path = store.task_dir(task_id).join("done.json");
    match protocol::read_json::<Done>(&path) {
        Ok(done) => done,
        Err(e) => Some(Done {
            error: Some(e.to_string()),
            ..Done::new(task_id, "?", State::Failed)
        }),
    }
}

/// What a person sees while waiting: agent, state, elapsed, last line of output.
fn status_line(store: &Store, pending: &[Pending]) -> String {
    let Some(p) = pending.iter().find(|p| p.done.is_none()) else {
        return String::new();
    };
    let elapsed = time::human(Duration::from_millis(
        time::now_ms().saturating_sub(p.created_ms),
    ));
    let queued = deliver::is_queued(&p.agent, &p.task_id);
    let state = if queued {
        "queued".to_string()
    } else {
        match protocol::read_json::<Status>(&p.agent.status) {
            Ok(Some(s)) if s.status == AgentState::Blocked => {
                format!("blocked: {}", s.current_task.unwrap_or_default())
            }
            Ok(Some(s)) => s.status.as_str().to_string(),
            _ => "working".to_string(),
        }
    };
    let more = match pending.iter().filter(|p| p.done.is_none()).count() {
        1 => String::new(),
        n => format!(" (+{} more)", n - 1),
    };
    let last = store::last_line(&store.task_dir(&p.task_id).join("output"))
        .map(|l| format!(" │ {l}"))
        .unwrap_or_default();
    let attach = if inside_tmux() && tmux_place(&p.agent).is_some() {
        " · a show its window"
    } else {
        ""
    };
    format!(
        "baton: @{}{more} {state} {elapsed}{last} │ Ctrl-C cancel · d detach{attach}",
        p.agent.name()
    )
}

fn inside_tmux() -> bool {
    std::env::var_os("TMUX").is_some_and(|v| !v.is_empty())
}

fn tmux_place(agent: &AgentPaths) -> Option<crate::driver::tmux::Place> {
    protocol::read_json(&agent.dir.join("tmux.json"))
        .ok()
        .flatten()
}

/// Switches this terminal's tmux client to the window of the first unfinished tmux agent (a
/// person answers its permission dialog there), and keeps waiting.
fn show_window(pending: &[Pending]) {
    if !inside_tmux() {
        return;
    }
    if let Some(place) = pending
        .iter()
        .filter(|p| p.done.is_none())
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

//! Work no caller waits for: `baton send`, `d` while waiting, the `&` directive. A task's answer
//! goes to the results inbox of the project the work was sent from (`protocol::results`); a
//! workflow, which needs someone to deliver its next step, is handed to a detached
//! `baton supervise ROOT` that takes it over from its record once the caller has let go of the
//! record's lock. Nothing here is a daemon: the supervisor lives as long as its workflow.

use std::process::{Command, Stdio};

use crate::config::Config;
use crate::error::Error;
use crate::protocol::results::Inbox;
use crate::protocol::{State, Store, TaskEnd, TaskId};

/// The key of the results inbox for callers where `config` was read: its project's id, else
/// `global`.
pub fn results_key(config: &Config) -> String {
    config
        .project
        .as_ref()
        .map_or_else(|| "global".to_string(), |p| p.id.clone())
}

/// The results inbox for callers where `config` was read.
pub fn results_inbox(store: &Store, config: &Config) -> Inbox {
    Inbox::new(store, &results_key(config))
}

/// The variable that hands the record's lock to the supervisor: the number of a descriptor it
/// inherits, on which the lock is held already.
pub const LOCK_FD_VAR: &str = "BATON_WORKFLOW_LOCK_FD";

/// Starts `baton supervise ROOT`, detached (its own session, no terminal, no output), to carry
/// the workflow on; returns its pid. It inherits `lock` (the record's lock, held), so that the
/// lock is never free between this process letting go and the supervisor taking over.
pub fn hand_off(
    store: &Store,
    root: &TaskId,
    lock: Option<&crate::protocol::lock::Held>,
) -> anyhow::Result<u32> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let me = std::env::current_exe()
        .map_err(|e| Error::Unreachable(format!("finding baton's own binary: {e}")))?;
    let mut cmd = Command::new(me);
    cmd.args(["supervise", root.as_str()])
        .env("BATON_HOME", store.root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(held) = lock {
        let fd = held.as_raw_fd();
        cmd.env(LOCK_FD_VAR, fd.to_string());
        // SAFETY: fcntl(F_SETFD) is async-signal-safe; it only clears close-on-exec on a
        // descriptor this process owns, in the child about to exec.
        unsafe {
            cmd.pre_exec(move || {
                if nix::libc::fcntl(fd, nix::libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    crate::sys::spawn::detached(&mut cmd);
    // It starts with the stop signals blocked, so that one sent before it has its handlers
    // (`baton cancel` at once) waits for them instead of killing it; `resume` unblocks them.
    let stops = crate::sys::signals::stop_set();
    // SAFETY: sigprocmask is async-signal-safe and only changes the child's own mask.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_BLOCK,
                Some(&stops),
                None,
            )
            .map_err(Into::into)
        });
    }
    // The supervisor is not waited for: it outlives this process, and init reaps it.
    let child = cmd
        .spawn()
        .map_err(|e| Error::Unreachable(format!("starting `baton supervise {root}`: {e}")))?;
    // Named as the workflow's runner before this process lets go of the lock.
    let _ = crate::protocol::workflow::set_runner(&store.task(root), child.id());
    Ok(child.id())
}

/// The record's lock handed over by the caller that started this supervisor, if it did.
pub fn inherited_lock() -> Option<crate::protocol::lock::Held> {
    use std::os::fd::FromRawFd;
    let fd: i32 = std::env::var(LOCK_FD_VAR).ok()?.parse().ok()?;
    // SAFETY: fcntl(F_GETFD) only reads the flags of descriptor `fd`, if it is open.
    if unsafe { nix::libc::fcntl(fd, nix::libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: the caller that started this process left the descriptor open for it, and
    // nothing else in this process knows of it (checked open just above).
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    // Not handed on again to what this process starts (a gate).
    let _ = nix::fcntl::fcntl(
        &file,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    // The lock is held on it already: taking it again on the same open file only confirms it.
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).ok()
}

/// Waits for the workflow rooted at `root` to end (`baton wait ROOT`) while someone runs it,
/// and returns its outcome. Stopping the wait (a signal, the deadline) leaves it running.
pub fn follow_workflow(
    store: &Store,
    root: &TaskId,
    timeout: Option<std::time::Duration>,
    caller: &mut super::Caller,
) -> anyhow::Result<Vec<TaskEnd>> {
    use std::os::fd::AsFd;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let task = store.task(root);
    let first_agent = crate::protocol::workflow::load(&task)?
        .and_then(|r| r.steps.first().map(|s| s.agent.clone()))
        .unwrap_or_default();
    let ended =
        |state: State, why: String| vec![TaskEnd::new(root, &first_agent, state).with_error(why)];
    let deadline = timeout.and_then(crate::sys::time::deadline_after);
    let mut inotify = inotify::Inotify::init()
        .map_err(|e| super::wait::inotify_error("watching", &task.dir, e))?;
    inotify
        .watches()
        .add(
            &task.dir,
            inotify::WatchMask::MOVED_TO | inotify::WatchMask::CREATE,
        )
        .map_err(|e| super::wait::inotify_error("watching", &task.dir, e))?;
    let dead = Arc::new(AtomicBool::new(false));
    let waker = caller
        .sigs
        .waker()
        .map_err(|e| Error::Environment(format!("creating a waker: {e}")))?;
    crate::protocol::lock::watch_death(task.workflow_lock.clone(), waker, Arc::clone(&dead))?;
    loop {
        // The death first, then the record: the supervisor saves its record before it lets go
        // of the lock, so a record read after the death was seen is its last word.
        let gone = dead.load(Ordering::SeqCst);
        if let Some(ends) = outcome(store, root) {
            return Ok(ends);
        }
        if gone {
            return Ok(ended(
                State::AgentLost,
                format!("no one runs workflow {root} any more (its supervisor is gone before its end): `baton supervise {root}` carries it on"),
            ));
        }
        if let Some(sig) = caller.sigs.take() {
            return Ok(ended(
                State::Cancelled,
                format!(
                    "stopped waiting ({}); the workflow goes on",
                    crate::sys::signals::name(sig)
                ),
            ));
        }
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            return Ok(ended(
                State::Timeout,
                format!(
                    "no outcome within {}; the workflow goes on",
                    timeout.map(crate::sys::time::human).unwrap_or_default()
                ),
            ));
        }
        let mut poll = crate::poll::Poll::new();
        poll.add(caller.sigs.fd());
        poll.add(inotify.as_fd());
        poll.wait(deadline)
            .map_err(|e| crate::error::StoreError::io("waiting", &task.dir, e))?;
        drop(poll);
        caller.sigs.drain();
        super::wait::drain_inotify(&mut inotify);
    }
}

/// Whether background work that starts with task `id` has ended: a workflow once its record
/// says how, a task once it has its `done.json`.
pub fn has_ended(store: &Store, id: &TaskId) -> bool {
    let task = store.task(id);
    match crate::protocol::workflow::load(&task) {
        Ok(Some(rec)) => rec.state.is_some(),
        _ => task.is_done(),
    }
}

/// The outcome of background work that starts with task `id`, once it has one: a workflow's
/// final ends (its record says), else the task's own end. `None` while it runs.
pub fn outcome(store: &Store, id: &TaskId) -> Option<Vec<TaskEnd>> {
    let task = store.task(id);
    match crate::protocol::workflow::load(&task) {
        Ok(Some(rec)) => workflow_outcome(store, &rec),
        _ => super::end_of(store, id).ok().flatten().map(|e| vec![e]),
    }
}

/// The outcome of the workflow `rec` records, once it has one: its finals' ends as the workflow
/// ended them (a gate's verdict, a stop), each with its place; a final never delivered has no
/// folder, and the record keeps its end. `None` while it runs.
pub fn workflow_outcome(
    store: &Store,
    rec: &crate::protocol::workflow::Record,
) -> Option<Vec<TaskEnd>> {
    let state = rec.state?;
    let mut ends: Vec<TaskEnd> = (rec.finals.iter())
        .filter_map(|id| {
            (super::end_of(store, id).ok().flatten()).or_else(|| rec.undelivered_end(id))
        })
        .collect();
    rec.apply_final_ends(&mut ends);
    for e in &mut ends {
        e.place = rec.place_of(&e.task_id);
    }
    if ends.is_empty() {
        // The workflow ended without a task to show (its supervisor failed early).
        let agent = rec
            .steps
            .first()
            .map(|s| s.agent.clone())
            .unwrap_or_default();
        let mut end = TaskEnd::new(&rec.root, &agent, state);
        end.error = rec.error.clone();
        ends.push(end);
    }
    Some(ends)
}

/// How `baton cancel ROOT` left a workflow.
pub enum Cancelled {
    /// It had ended before.
    AlreadyEnded(State),
    /// The process that ran it stopped it (its running tasks cancelled, none delivered after).
    Stopped,
    /// No one ran it: its tasks that had not ended were cancelled here.
    Abandoned,
    /// Its process was asked to stop it and has not said it did within the wait.
    Asked(u32),
}

impl Cancelled {
    pub fn describe(&self) -> String {
        match self {
            Cancelled::AlreadyEnded(state) => {
                format!("the workflow had already ended ({})", state.as_str())
            }
            Cancelled::Stopped => "workflow cancelled (its running tasks stopped)".into(),
            Cancelled::Abandoned => {
                "workflow cancelled (no one ran it; its unfinished tasks stopped)".into()
            }
            Cancelled::Asked(pid) => {
                format!("asked process {pid}, which runs the workflow, to stop it")
            }
        }
    }
}

/// How long `cancel` waits for the process that runs a workflow to record that it stopped.
const CANCEL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Cancels the workflow rooted at `root`: the process that runs it (which holds its lock) is
/// sent SIGTERM, which stops it as Ctrl-C would, and its record is waited for; a workflow no
/// one runs (or whose process died of the signal before it could stop it) is ended here,
/// under its lock.
pub fn cancel_workflow(
    store: &Store,
    root: &TaskId,
    rec: crate::protocol::workflow::Record,
) -> anyhow::Result<Cancelled> {
    if let Some(state) = rec.state {
        return Ok(Cancelled::AlreadyEnded(state));
    }
    if let Some(done) = end_if_abandoned(store, root)? {
        return Ok(done);
    }
    let paths = store.task(root);
    let pid = crate::protocol::workflow::runner(&paths)
        .filter(|pid| holds(*pid, &paths.workflow_lock))
        .ok_or_else(|| {
            Error::Unreachable(format!(
                "workflow {root} is run by a process that workflow.pid does not name (it holds {}); stop that process, or try again",
                paths.workflow_lock.display()
            ))
        })?;
    crate::test_hooks::pause_point(crate::test_hooks::CANCEL_SIGNALS);
    let asked = stop(pid);
    // The process read may have been a caller handing the workflow over, which looks for a stop
    // signal to pass on only until it has started the supervisor and named it in the record: a
    // signal that reaches it later is lost with it, and one that comes after it exited reaches
    // no one. The supervisor named now is asked too (a second request to stop changes nothing).
    let pid = match crate::protocol::workflow::runner(&paths) {
        Some(now) if now != pid && holds(now, &paths.workflow_lock) && stop(now).is_ok() => now,
        _ => asked.map(|()| pid)?,
    };
    let mut caller = super::Caller::new(false)?;
    follow_workflow(store, root, Some(CANCEL_WAIT), &mut caller)?;
    if crate::protocol::workflow::load(&paths)?.is_some_and(|r| r.state.is_some()) {
        return Ok(Cancelled::Stopped);
    }
    Ok(end_if_abandoned(store, root)?.unwrap_or(Cancelled::Asked(pid)))
}

/// Asks process `pid`, which runs a workflow, to stop it (SIGTERM).
fn stop(pid: u32) -> Result<(), Error> {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .map_err(|e| Error::Unreachable(format!("signalling process {pid}: {e}")))
}

/// Ends the workflow rooted at `root` as cancelled if no one runs it (its lock is free): its
/// tasks that have not ended are cancelled, and its record says so. `None` if someone runs it.
fn end_if_abandoned(store: &Store, root: &TaskId) -> anyhow::Result<Option<Cancelled>> {
    let paths = store.task(root);
    // `hold` waits out a probe that holds the lock for an instant.
    let Some(_held) = crate::protocol::lock::hold(&paths.workflow_lock)? else {
        return Ok(None);
    };
    // Read under the lock, the record is the truth now.
    let Some(mut rec) = crate::protocol::workflow::load(&paths)? else {
        return Ok(None);
    };
    if let Some(state) = rec.state {
        return Ok(Some(Cancelled::AlreadyEnded(state)));
    }
    let why = "cancelled by `baton cancel` (no one ran the workflow)";
    let mut stopped = Vec::new();
    for step in &rec.steps {
        if !store.task(&step.task_id).is_done() {
            let _ = super::cancel(store, &step.task_id, State::Cancelled);
            stopped.push(step.task_id.clone());
        }
    }
    rec.state = Some(State::Cancelled);
    rec.error = Some(why.into());
    rec.finals = rec
        .latest(rec.stage)
        .iter()
        .map(|s| s.task_id.clone())
        .collect();
    rec.final_ends = rec
        .finals
        .iter()
        .filter(|id| stopped.contains(id))
        .map(|id| {
            crate::protocol::workflow::FinalEnd::new(id.clone(), State::Cancelled, Some(why.into()))
        })
        .collect();
    rec.save(store)?;
    Ok(Some(Cancelled::Abandoned))
}

/// True if process `pid` holds the workflow's lock open (`lock`, among its descriptors): it is
/// the workflow's runner, whatever baton binary it runs, and a PID the system has given to
/// someone else since is never signalled.
fn holds(pid: u32, lock: &std::path::Path) -> bool {
    let lock = std::fs::canonicalize(lock).unwrap_or_else(|_| lock.to_path_buf());
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(|e| e.ok())
        .any(|e| std::fs::read_link(e.path()).is_ok_and(|target| target == lock))
}

//! The global limit, `max_concurrent = N`: at most N tasks run at once across every runner of
//! the state folder, and when a slot frees, the highest-priority waiting task starts next (first
//! in, first out within a priority). There is no daemon: the kernel keeps the books.
//!
//! - A slot is a file `slots/<n>` (n < N); the runner whose task runs holds an exclusive flock
//!   on it, which the kernel releases however the runner ends.
//! - A runner whose claimed task waits for a slot puts an entry `queue/<priority>-<task id>` in
//!   the queue and holds an exclusive flock on it while it waits; the entries' names sort in the
//!   order the tasks start. An entry whose lock is free belongs to a runner that died: whoever
//!   sees it removes it.
//! - Only the head of the queue takes a slot. It waits for one with a thread per slot blocked on
//!   a shared flock (granted when the slot's holder lets go, or dies); every other waiter waits
//!   for the head to leave (a thread blocked on the head entry's lock), and for the queue to
//!   change (inotify): no polling anywhere.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use inotify::WatchMask;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::Runner;
use crate::error::{IoContext, StoreError};
use crate::protocol::{store, AgentState, State, Task, TaskPaths};
use crate::sys::time;

/// A slot held for the task in flight; dropping it lets the next task start.
pub(super) struct Slot {
    _held: Flock<File>,
}

/// What came of waiting for a slot.
pub(super) enum Waited {
    /// No limit is set, or a slot is held now.
    Go(Option<Slot>),
    /// The task ended while it waited (cancelled, timed out, the runner stopped).
    Ended(State, String),
}

/// Opens a lock file (a slot, created if missing; a queue entry, which must exist).
fn open_lockable(path: &Path, create: bool) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .during("opening", path)
}

fn try_exclusive(path: &Path) -> Result<Option<Flock<File>>, StoreError> {
    match Flock::lock(open_lockable(path, true)?, FlockArg::LockExclusiveNonblock) {
        Ok(held) => Ok(Some(held)),
        Err((_, Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(StoreError::io("locking", path, e.into())),
    }
}

/// The queue's entries in the order their tasks start, each with its path.
pub fn queue_entries(queue: &Path) -> Vec<(String, PathBuf)> {
    let mut names: Vec<String> = fs::read_dir(queue)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| crate::protocol::inbox::Entry::parse(n).is_some())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let p = queue.join(&n);
            (n, p)
        })
        .collect()
}

/// True if a runner still waits behind this queue entry (it holds the entry's lock).
pub fn entry_alive(path: &Path) -> bool {
    crate::protocol::lock::is_alive(path)
}

impl Runner<'_> {
    /// Waits until the task may run under the global limit, if there is one.
    pub(super) fn take_slot(
        &mut self,
        envelope: &Task,
        task: &TaskPaths,
    ) -> anyhow::Result<Waited> {
        let Some(limit) = self.max_concurrent else {
            return Ok(Waited::Go(None));
        };
        let (slots, queue) = (self.store.slots_dir(), self.store.queue_dir());
        store::ensure_dir(&slots)?;
        store::ensure_dir(&queue)?;
        let name = format!("{}-{}", envelope.priority.min(9), envelope.task_id);
        let mine = queue.join(&name);
        // The entry appears already locked (made under another name, locked, then renamed):
        // an entry seen unlocked belongs to a runner that died.
        let making = queue.join(format!(".{name}"));
        let Some(_waiting) = try_exclusive(&making)? else {
            return Err(StoreError::Unsafe {
                path: mine,
                why: "another runner holds this task's place in the queue".into(),
            }
            .into());
        };
        fs::rename(&making, &mine).during("queueing for a slot", &mine)?;
        // Woken when the queue changes, and when a cancel request arrives.
        let watched: Vec<_> = [
            (
                &queue,
                WatchMask::CREATE | WatchMask::DELETE | WatchMask::MOVED_TO,
            ),
            (&task.dir, WatchMask::CREATE | WatchMask::MOVED_TO),
        ]
        .into_iter()
        .filter_map(|(dir, mask)| self.inotify.watches().add(dir, mask).ok())
        .collect();
        let waited = self.wait_in_queue(envelope, task, limit, &queue, &slots, &name);
        let _ = fs::remove_file(&mine);
        for wd in watched {
            let _ = self.inotify.watches().remove(wd);
        }
        crate::coordinator::wait::drain_inotify(&mut self.inotify);
        waited
    }

    fn wait_in_queue(
        &mut self,
        envelope: &Task,
        task: &TaskPaths,
        limit: u32,
        queue: &Path,
        slots: &Path,
        mine: &str,
    ) -> anyhow::Result<Waited> {
        let mut watching = String::new();
        // How many of the watching threads have not fired yet.
        let unfired = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        loop {
            if let Some((state, why)) = self.stop_while_waiting(envelope, task) {
                return Ok(Waited::Ended(state, why));
            }
            // The head is the first entry whose runner still waits; dead ones are cleared.
            let head = queue_entries(queue).into_iter().find(|(_, path)| {
                let alive = entry_alive(path);
                if !alive {
                    let _ = fs::remove_file(path);
                }
                alive
            });
            let head_is_me = head.as_ref().is_none_or(|(n, _)| n == mine);
            if head_is_me {
                for n in 0..limit {
                    if let Some(held) = try_exclusive(&slots.join(n.to_string()))? {
                        return Ok(Waited::Go(Some(Slot { _held: held })));
                    }
                }
            }
            // Watch what stands in the way (the slots, or the head's entry): anew when it
            // changes, or when every watcher has fired (a slot can be let go and taken again
            // before this runner tries it).
            let blocker: Vec<PathBuf> = match &head {
                Some((_, path)) if !head_is_me => vec![path.clone()],
                _ => (0..limit).map(|n| slots.join(n.to_string())).collect(),
            };
            let target = format!("{blocker:?}");
            let all_fired = unfired.load(std::sync::atomic::Ordering::SeqCst) == 0;
            if target != watching || all_fired {
                for path in blocker {
                    let waker = self.sigs.waker().during("waiting for a slot in", queue)?;
                    unfired.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    on_release(path, head_is_me, waker, std::sync::Arc::clone(&unfired))?;
                }
                watching = target;
            }
            let why = format!(
                "{}: waiting for a slot (max_concurrent = {limit}){}",
                envelope.task_id,
                if head_is_me {
                    ""
                } else {
                    ", behind higher-priority or earlier tasks"
                }
            );
            self.set_status(AgentState::Blocked, Some(why));
            let deadline = envelope.deadline_ms.and_then(|d| {
                Instant::now().checked_add(Duration::from_millis(d.saturating_sub(time::now_ms())))
            });
            self.sleep(false, deadline)
                .during("waiting for a slot in", queue)?;
        }
    }

    /// Why a task that waits for a slot ends without running, if it does.
    fn stop_while_waiting(&mut self, envelope: &Task, task: &TaskPaths) -> Option<(State, String)> {
        if self.stop_requested() {
            return Some((
                State::Cancelled,
                "the agent was stopped while it waited for a slot".into(),
            ));
        }
        if let Some(state) = task.cancel_request() {
            return Some((state, "cancelled while it waited for a slot".into()));
        }
        if envelope.deadline_ms.is_some_and(|d| time::now_ms() >= d) {
            return Some((
                State::Timeout,
                "its deadline passed while it waited for a slot".into(),
            ));
        }
        None
    }
}

/// Wakes `waker` when the exclusive lock on `path` is let go (its holder finishes or dies): a
/// thread blocks in a shared flock, which the kernel grants then, and lets it go at once.
fn on_release(
    path: PathBuf,
    create: bool,
    waker: crate::sys::signals::Waker,
    unfired: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Result<(), StoreError> {
    let fired = move || {
        unfired.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        waker.wake();
    };
    let file = match open_lockable(&path, create) {
        Ok(f) => f,
        // The entry is gone already: what it blocked is free now.
        Err(_) => {
            fired();
            return Ok(());
        }
    };
    std::thread::Builder::new()
        .name("slot-watch".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            if let Ok(shared) = Flock::lock(file, FlockArg::LockShared) {
                drop(shared);
            }
            fired();
        })
        .during("starting the thread that watches", path.clone())?;
    Ok(())
}

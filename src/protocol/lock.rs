//! Liveness through the agent's `lock` file. A runner holds `flock(LOCK_EX)` on it for its whole
//! life, so the kernel tells everyone else, without PID files, whether the runner lives:
//! - `is_alive` probes with a non-blocking shared lock (released at once);
//! - `watch_death` parks a thread in a blocking shared lock, which the kernel grants the moment
//!   the runner dies, however it dies; the thread then wakes the caller's `poll` loop.
//!
//! Because probes take the lock for an instant, a runner that finds the lock taken waits a
//! bounded moment for it before deciding that another runner owns it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::{IoContext, StoreError};
use crate::sys::signals::Waker;

type Result<T> = std::result::Result<T, StoreError>;

/// How long a starting runner waits for a lock that a probe may be holding for an instant.
const PROBE_GRACE: Duration = Duration::from_millis(300);

pub type Held = Flock<File>;

/// Takes the agent's lock for the life of the runner. `Ok(None)` if another runner holds it.
pub fn hold(path: &Path) -> Result<Option<Held>> {
    // A probe holds it for microseconds; a runner holds it for good.
    take(path, PROBE_GRACE)
}

/// Whether `path` is still the file whose lock `held` is: false once the agent's folder was
/// removed (or the lock file replaced), when no one can reach its runner any more.
pub fn still_at(held: &Held, path: &Path) -> bool {
    match (held.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(mine), Ok(there)) => crate::protocol::store::same_file(&mine, &there),
        // Not known: take it as still there.
        (Err(_), _) => true,
        (_, Err(e)) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

/// Takes an exclusive lock on `path` (created if missing), waiting at most `wait` for whoever
/// holds it. `Ok(None)` if it is still held then.
pub fn take(path: &Path, wait: Duration) -> Result<Option<Held>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .during("opening the lock", path)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(held) => Ok(Some(held)),
        Err((file, Errno::EWOULDBLOCK)) => {
            // Wait, boundedly, in a thread (flock has no timeout). If the wait runs out, a lock
            // the thread takes later is dropped (released) when it cannot hand it over.
            let (tx, rx) = mpsc::channel();
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    let _ = tx.send(Flock::lock(file, FlockArg::LockExclusive));
                })
                .during("starting a thread to take the lock", path)?;
            match rx.recv_timeout(wait) {
                Ok(Ok(held)) => Ok(Some(held)),
                Ok(Err((_, e))) => Err(StoreError::io("locking", path, e.into())),
                Err(_) => Ok(None),
            }
        }
        Err((_, e)) => Err(StoreError::io("locking", path, e.into())),
    }
}

fn open_for_probe(path: &Path) -> Option<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .ok()
}

/// True if a runner holds the lock at `path` now.
pub fn is_alive(path: &Path) -> bool {
    let Some(file) = open_for_probe(path) else {
        return false;
    };
    // The probe's shared lock, if it got one, ends as the file is closed.
    matches!(shared_until_closed(file), Err(Errno::EWOULDBLOCK))
}

/// A shared flock that ends when its file is closed (dropped). Unlike nix's `Flock`, no
/// `flock(LOCK_UN)` comes first: closing the last descriptor of an open file releases its lock,
/// and the file is this process's alone (opened close-on-exec: a child started meanwhile holds
/// it only until its exec).
pub struct UntilClosed {
    _file: File,
}

/// Takes a shared lock on `file` without waiting (`EWOULDBLOCK` if someone holds it
/// exclusively).
pub fn shared_until_closed(file: File) -> std::result::Result<UntilClosed, Errno> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor the file owns and keeps open for the call.
    let taken =
        unsafe { nix::libc::flock(file.as_raw_fd(), nix::libc::LOCK_SH | nix::libc::LOCK_NB) };
    Errno::result(taken).map(|_| UntilClosed { _file: file })
}

/// How long a lock held by a process that is being killed may take to be released.
const DYING_GRACE: Duration = Duration::from_secs(2);

/// True if a live runner holds the lock at `path`. Unlike `is_alive`, a holder that is dying
/// (killed, a zombie, or gone) is waited for, boundedly, until the kernel releases its lock: a
/// start right after `kill -9` must not find the agent "already running".
pub fn runner_alive(path: &Path) -> bool {
    if !is_alive(path) {
        return false;
    }
    match holder_pid(path) {
        Some(pid) if !dying(pid) => true,
        // Dying, or gone from the kernel's list since the probe: the lock is on its way out.
        _ => !wait_free(path, DYING_GRACE),
    }
}

/// True if process `pid` is on its way out: gone, a zombie, exiting, or with SIGKILL pending.
fn dying(pid: u32) -> bool {
    const PF_EXITING: u64 = 0x4;
    let (Ok(stat), Ok(status)) = (
        std::fs::read_to_string(format!("/proc/{pid}/stat")),
        std::fs::read_to_string(format!("/proc/{pid}/status")),
    ) else {
        return true;
    };
    // After the command name: state is the first field, the task's flags the seventh.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let exiting = fields
        .get(6)
        .and_then(|f| f.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_EXITING != 0);
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    let state = field("State:");
    let sigkill = 1u64 << (nix::libc::SIGKILL - 1);
    let pending = ["SigPnd:", "ShdPnd:"]
        .iter()
        .any(|f| u64::from_str_radix(&field(f), 16).is_ok_and(|m| m & sigkill != 0));
    exiting || state.starts_with('Z') || state.starts_with('X') || pending
}

/// A thread that sets `dead` and wakes the loop when the runner holding `path` dies.
pub fn watch_death(path: PathBuf, waker: Waker, dead: Arc<AtomicBool>) -> Result<()> {
    let file = open_for_probe(&path);
    std::thread::Builder::new()
        .name("death-watch".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let lost = match file {
                None => true,
                Some(f) => Flock::lock(f, FlockArg::LockShared).is_ok(),
            };
            if lost {
                dead.store(true, Ordering::SeqCst);
                waker.wake();
            }
        })
        .during("starting the thread that watches", path.clone())?;
    Ok(())
}

/// The pid of the process holding an exclusive flock on `path`, read from `/proc/locks` (the
/// kernel's own record, so a stale or hand-edited `status.json` cannot mislead it).
pub fn holder_pid(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::symlink_metadata(path).ok()?.ino();
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"
        let f: Vec<&str> = line.split_whitespace().collect();
        let (kind, mode, pid, dev_ino) = (f.get(1)?, f.get(3)?, f.get(4)?, f.get(5)?);
        let this = dev_ino.rsplit(':').next()?.parse::<u64>().ok()? == ino;
        (this && *kind == "FLOCK" && *mode == "WRITE").then(|| pid.parse().ok())?
    })
}

/// Waits, at most `timeout`, until no runner holds the lock at `path`. True if it is free.
pub fn wait_free(path: &Path, timeout: Duration) -> bool {
    let Some(file) = open_for_probe(path) else {
        return true;
    };
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || {
            let _ = tx.send(Flock::lock(file, FlockArg::LockShared).is_ok());
        });
    spawned.is_ok() && rx.recv_timeout(timeout).unwrap_or(false)
}

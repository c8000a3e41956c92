//! Signals as events. Installed once, early, by a command that waits: each handler only sets a
//! flag and writes a byte to a self-pipe, which the `poll` loop watches. The same pipe is the
//! "waker" other threads (the agent death watch) use to wake the loop.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::libc;

/// The signals a waiting command treats as "stop": cancel what is in flight, leave files intact.
pub const STOP_SIGNALS: [i32; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// `STOP_SIGNALS` as a signal set.
pub fn stop_set() -> nix::sys::signal::SigSet {
    let mut set = nix::sys::signal::SigSet::empty();
    for sig in STOP_SIGNALS {
        if let Ok(sig) = nix::sys::signal::Signal::try_from(sig) {
            set.add(sig);
        }
    }
    set
}

/// Unblocks `STOP_SIGNALS` (blocked by whoever started this process until its handlers were
/// installed): one that came meanwhile is handled now.
pub fn unblock_stops() {
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_UNBLOCK,
        Some(&stop_set()),
        None,
    );
}

pub struct Signals {
    rx: UnixStream,
    tx: Arc<UnixStream>,
    flags: Vec<(i32, Arc<AtomicBool>)>,
}

impl Signals {
    /// Installs handlers for `signals`. Their default actions are replaced for this process; a
    /// child started later gets the defaults back at exec.
    pub fn install(signals: &[i32]) -> io::Result<Signals> {
        let (rx, tx) = super::sock::pair()?;
        let tx = Arc::new(tx);
        let mut flags = Vec::new();
        for &sig in signals {
            let flag = Arc::new(AtomicBool::new(false));
            let (set, pipe) = (Arc::clone(&flag), Arc::clone(&tx));
            // SAFETY: the action only stores to an atomic and sends one byte on a non-blocking
            // socket (it never blocks, allocates or takes a lock), all async-signal-safe; the
            // socket stays open as long as the action holds it (registrations are never removed).
            unsafe {
                signal_hook::low_level::register(sig, move || {
                    set.store(true, Ordering::SeqCst);
                    libc::send(
                        pipe.as_raw_fd(),
                        b"X".as_ptr().cast(),
                        1,
                        libc::MSG_DONTWAIT,
                    );
                })?;
            }
            flags.push((sig, flag));
        }
        Ok(Signals { rx, tx, flags })
    }

    /// The fd to poll for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.rx.as_fd()
    }

    /// A handle another thread can use to wake the loop.
    pub fn waker(&self) -> io::Result<Waker> {
        Ok(Waker(self.tx.try_clone()?))
    }

    /// Empties the pipe; call after `poll` says it is readable.
    pub fn drain(&self) {
        let mut buf = [0u8; 64];
        while matches!((&self.rx).read(&mut buf), Ok(n) if n > 0) {}
    }

    /// Takes (and clears) the first pending signal, if any.
    pub fn take(&self) -> Option<i32> {
        self.flags
            .iter()
            .find(|(_, f)| f.swap(false, Ordering::SeqCst))
            .map(|(s, _)| *s)
    }

    /// Takes (and clears) one particular signal.
    pub fn take_one(&self, sig: i32) -> bool {
        self.flags
            .iter()
            .any(|(s, f)| *s == sig && f.swap(false, Ordering::SeqCst))
    }
}

/// Wakes a `Signals` loop from another thread.
pub struct Waker(UnixStream);

impl Waker {
    pub fn wake(&self) {
        let _ = (&self.0).write(&[1]);
    }
}

/// Restores SIGPIPE's default action, which the Rust runtime replaces with "ignore", so that a
/// command whose reader has gone (`baton status | head -1`) ends quietly, as Unix tools do,
/// instead of failing on the write. Not for long-lived processes (runners, supervisors, hooks,
/// editor mode), whose writes to pipes and sockets handle EPIPE themselves.
pub fn default_sigpipe() {
    // SAFETY: signal(2) with SIG_DFL installs no handler; it only resets the disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Gives SIGIO, whose default action ends the process, a handler that does nothing (unlike
/// "ignore", a handler is not passed on to the processes this one starts). For a process that
/// holds file leases (`protocol::rewritten`): the kernel sends SIGIO when someone breaks one.
/// Installed once; false if it cannot be.
pub fn quiet_sigio() -> bool {
    static INSTALLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    // SAFETY: the action does nothing, which is async-signal-safe.
    *INSTALLED
        .get_or_init(|| unsafe { signal_hook::low_level::register(libc::SIGIO, || {}) }.is_ok())
}

/// The conventional name of a signal, for messages.
pub fn name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGCHLD => "SIGCHLD",
        _ => "a signal",
    }
}

//! The one poller. Every place that waits — a caller for its tasks, a runner for its inbox and
//! its task, the control socket for its clients, a child being killed, a runner starting, a key
//! on the terminal — names the descriptors it cares about and its deadline, and sleeps in one
//! `poll(2)`. Nothing in baton sleeps on a timer to find out whether something happened.
//!
//! A `Poll` is built afresh for each wait (it borrows the descriptors for that wait only); the
//! index `add` returns is how the caller asks afterwards whether that descriptor is ready.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};

#[derive(Default)]
pub struct Poll<'fd> {
    fds: Vec<PollFd<'fd>>,
}

impl<'fd> Poll<'fd> {
    pub fn new() -> Poll<'fd> {
        Poll { fds: Vec::new() }
    }

    /// Watches `fd` for input (or hang-up); returns its index.
    pub fn add(&mut self, fd: BorrowedFd<'fd>) -> usize {
        self.fds.push(PollFd::new(fd, PollFlags::POLLIN));
        self.fds.len() - 1
    }

    /// Sleeps until a descriptor is ready or `deadline` passes (never, if `None`). A signal that
    /// interrupts the sleep is not an error: the descriptors are looked at once more without
    /// waiting, so that `ready` tells what the signal's handler (a self-pipe) or anyone else
    /// made ready meanwhile.
    pub fn wait(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        match nix::poll::poll(&mut self.fds, timeout_until(deadline)) {
            Ok(_) => Ok(()),
            Err(nix::errno::Errno::EINTR) => {
                // Interrupted again, it says nothing ready: the caller's next wait finds it.
                let _ = nix::poll::poll(&mut self.fds, PollTimeout::ZERO);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Sleeps until the descriptor at `index` is ready or `deadline` passes, whatever wakes the
    /// sleep before (a signal: its caller looks at its signals afterwards). True if it is ready.
    pub fn wait_for(&mut self, index: usize, deadline: Option<Instant>) -> io::Result<bool> {
        loop {
            self.wait(deadline)?;
            if self.ready(index) {
                return Ok(true);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
        }
    }

    /// True if the descriptor at `index` has input, hung up or failed.
    pub fn ready(&self, index: usize) -> bool {
        self.fds
            .get(index)
            .and_then(|f| f.revents())
            .is_some_and(|r| !r.is_empty())
    }
}

/// The `poll` timeout that ends at `deadline`, rounded up to the next millisecond so that a wait
/// never wakes just before its deadline and spins.
pub fn timeout_until(deadline: Option<Instant>) -> PollTimeout {
    match deadline {
        None => PollTimeout::NONE,
        Some(at) => {
            let left = at.saturating_duration_since(Instant::now());
            let rounded = left.as_nanos().div_ceil(1_000_000);
            PollTimeout::try_from(Duration::from_millis(
                u64::try_from(rounded).unwrap_or(u64::MAX),
            ))
            .unwrap_or(PollTimeout::MAX)
        }
    }
}

/// The earliest of some deadlines (`None` if there is none).
pub fn earliest(deadlines: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
    deadlines.into_iter().flatten().min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn wakes_for_the_ready_descriptor_only() {
        let (a_rx, mut a_tx) = UnixStream::pair().unwrap();
        let (b_rx, _b_tx) = UnixStream::pair().unwrap();
        a_tx.write_all(b"x").unwrap();
        let mut poll = Poll::new();
        let a = poll.add(a_rx.as_fd());
        let b = poll.add(b_rx.as_fd());
        let start = Instant::now();
        poll.wait(Some(start + Duration::from_secs(10))).unwrap();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(poll.ready(a) && !poll.ready(b));
    }

    #[test]
    fn after_a_signal_what_its_handler_made_ready_is_ready() {
        use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
        use std::os::fd::AsRawFd;
        use std::sync::atomic::{AtomicI32, Ordering};
        static PIPE: AtomicI32 = AtomicI32::new(-1);
        // A self-pipe, as the runner's: the handler writes a byte into it.
        extern "C" fn handler(_: i32) {
            let byte = [1u8];
            // SAFETY: write(2) is async-signal-safe; the descriptor lives until the test ends.
            unsafe { nix::libc::write(PIPE.load(Ordering::SeqCst), byte.as_ptr().cast(), 1) };
        }
        let (rx, tx) = UnixStream::pair().unwrap();
        tx.set_nonblocking(true).unwrap();
        PIPE.store(tx.as_raw_fd(), Ordering::SeqCst);
        let action = SigAction::new(
            SigHandler::Handler(handler),
            SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: the handler only calls write(2).
        unsafe { sigaction(Signal::SIGUSR2, &action) }.unwrap();
        // SAFETY: neither can fail.
        let (me, tid) = unsafe { (nix::libc::pthread_self(), nix::libc::gettid()) };
        let syscall = format!("/proc/self/task/{tid}/syscall");
        if std::fs::read_to_string(&syscall).is_err() {
            eprintln!("SKIPPED after_a_signal_what_its_handler_made_ready_is_ready: no {syscall} here to tell when this thread sleeps in poll");
            return;
        }
        let mut poll = Poll::new();
        let r = poll.add(rx.as_fd());
        std::thread::scope(|scope| {
            // The signal comes once this thread sleeps in `poll` (what /proc says it is in),
            // so that it interrupts the sleep; bounded, for a machine that never schedules it.
            scope.spawn(move || {
                let give_up = Instant::now() + Duration::from_secs(20);
                while Instant::now() < give_up {
                    let now = std::fs::read_to_string(&syscall).unwrap_or_default();
                    // poll(2) or ppoll(2), on x86-64 and on arm64.
                    if ["7 ", "271 ", "73 "].iter().any(|n| now.starts_with(n)) {
                        // SAFETY: `me` is the thread that sleeps in `poll`.
                        unsafe { nix::libc::pthread_kill(me, nix::libc::SIGUSR2) };
                        return;
                    }
                    std::thread::yield_now();
                }
            });
            let start = Instant::now();
            poll.wait(Some(start + Duration::from_secs(30))).unwrap();
            assert!(start.elapsed() < Duration::from_secs(25), "no signal came");
        });
        PIPE.store(-1, Ordering::SeqCst);
        assert!(
            poll.ready(r),
            "the self-pipe its handler wrote into is ready"
        );
    }

    #[test]
    fn waiting_for_one_descriptor_ends_when_it_is_ready_or_at_the_deadline() {
        let (rx, mut tx) = UnixStream::pair().unwrap();
        let mut poll = Poll::new();
        let r = poll.add(rx.as_fd());
        let deadline = Instant::now() + Duration::from_millis(20);
        assert!(!poll.wait_for(r, Some(deadline)).unwrap());
        assert!(Instant::now() >= deadline);
        std::io::Write::write_all(&mut tx, b"x").unwrap();
        let mut poll = Poll::new();
        let r = poll.add(rx.as_fd());
        assert!(poll.wait_for(r, None).unwrap());
    }

    #[test]
    fn a_hang_up_is_ready_too() {
        let (rx, tx) = UnixStream::pair().unwrap();
        drop(tx);
        let mut poll = Poll::new();
        let i = poll.add(rx.as_fd());
        poll.wait(None).unwrap();
        assert!(poll.ready(i));
    }

    #[test]
    fn returns_at_the_deadline_and_not_before() {
        let (rx, _tx) = UnixStream::pair().unwrap();
        let mut poll = Poll::new();
        let i = poll.add(rx.as_fd());
        let start = Instant::now();
        let deadline = start + Duration::from_millis(30);
        poll.wait(Some(deadline)).unwrap();
        // Lower bound: never early (the timeout is rounded up). Upper bound: generous, for a
        // loaded machine.
        assert!(Instant::now() >= deadline, "woke early");
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(!poll.ready(i));
    }

    #[test]
    fn timeouts_round_up_and_saturate() {
        assert_eq!(timeout_until(None), PollTimeout::NONE);
        let soon = Instant::now() + Duration::from_micros(10);
        assert!(i32::from(timeout_until(Some(soon))) <= 1);
        let far = Instant::now() + Duration::from_secs(100 * 365 * 86_400);
        assert_eq!(timeout_until(Some(far)), PollTimeout::MAX);
        assert_eq!(earliest([None, Some(soon), Some(far)]), Some(soon));
    }
}

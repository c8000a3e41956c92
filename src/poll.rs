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
    /// interrupts the sleep is not an error: the caller looks at its signal pipe anyway.
    pub fn wait(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        match nix::poll::poll(&mut self.fds, timeout_until(deadline)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
            Err(e) => Err(e.into()),
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

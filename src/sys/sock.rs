//! Unix stream sockets made non-blocking when they are made (`SOCK_NONBLOCK`), which `std` cannot
//! do: one system call each instead of two or three, and a connect that never waits on a runner
//! whose queue of unaccepted connections is full.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};

/// The longest path a Unix socket address holds (`sun_path` is 108 bytes with its final NUL).
pub const PATH_MAX: usize = 107;

const FLAGS: SockFlag = SockFlag::SOCK_NONBLOCK.union(SockFlag::SOCK_CLOEXEC);

/// A connected pair, both ends non-blocking.
pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
    let (a, b) = socket::socketpair(AddressFamily::Unix, SockType::Stream, None, FLAGS)?;
    Ok((a.into(), b.into()))
}

/// A non-blocking connection to the socket at `path`. A listener that has not accepted its
/// earlier connections makes this fail with `WouldBlock` at once, not wait.
pub fn connect(path: &Path) -> io::Result<UnixStream> {
    let bytes = path.as_os_str().as_bytes();
    // An empty path would name the abstract socket "", not a file.
    let too_long = bytes.len() > PATH_MAX;
    if bytes.is_empty() || too_long || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path too long or not a path",
        ));
    }
    let addr = UnixAddr::new(path)?;
    let stream: UnixStream =
        socket::socket(AddressFamily::Unix, SockType::Stream, FLAGS, None)?.into();
    socket::connect(stream.as_raw_fd(), &addr)?;
    Ok(stream)
}

/// Accepts one waiting connection on the (non-blocking) listener `fd`, non-blocking itself;
/// `WouldBlock` when none is waiting.
pub fn accept(fd: BorrowedFd<'_>) -> io::Result<UnixStream> {
    loop {
        match socket::accept4(fd.as_raw_fd(), FLAGS) {
            // SAFETY: `new` is a new descriptor owned by nothing else.
            Ok(new) => return Ok(unsafe { UnixStream::from_raw_fd(new) }),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixListener;
    use std::path::PathBuf;

    fn nonblocking(s: &UnixStream) -> bool {
        let mut b = [0u8; 1];
        matches!((&*s).read(&mut b), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    #[test]
    fn a_pair_is_connected_and_never_blocks() {
        let (mut a, b) = pair().unwrap();
        assert!(nonblocking(&b), "an empty end blocks");
        a.write_all(b"x").unwrap();
        let mut got = [0u8; 1];
        (&b).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"x");
    }

    #[test]
    fn connect_and_accept_make_non_blocking_streams() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sock");
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let err = accept(listener.as_fd()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
        let mut client = connect(&path).unwrap();
        let server = accept(listener.as_fd()).unwrap();
        assert!(nonblocking(&client) && nonblocking(&server));
        client.write_all(b"hi\n").unwrap();
        let mut got = [0u8; 3];
        (&server).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hi\n");
    }

    /// A listener at `path` whose queue holds a single connection it has not accepted.
    pub(crate) fn listener_with_a_short_queue(path: &Path) -> UnixListener {
        let listener = UnixListener::bind(path).unwrap();
        socket::listen(&listener, socket::Backlog::new(0).unwrap()).unwrap();
        listener
    }

    #[test]
    fn connect_to_a_listener_that_accepts_nothing_fails_once_its_queue_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sock");
        let listener = listener_with_a_short_queue(&path);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            let end = loop {
                match connect(&path) {
                    Ok(s) if held.len() < 8 => held.push(s),
                    other => break other.map(|_| held.len()),
                }
            };
            let _ = tx.send(end);
        });
        let end = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("a connect waited for the listener");
        let err = end.expect_err("the queue never filled");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
        drop(listener);
    }

    #[test]
    fn connect_fails_at_once_where_no_one_listens_or_the_path_cannot_be_one() {
        let dir = tempfile::tempdir().unwrap();
        let err = connect(&dir.path().join("none")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        for bad in [dir.path().join("x".repeat(200)), PathBuf::new()] {
            let err = connect(&bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        }
    }
}

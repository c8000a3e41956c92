//! Unix stream sockets made non-blocking when they are made (`SOCK_NONBLOCK`), which `std` cannot
//! do: one system call each instead of two or three, and a connect that never waits on a runner
//! whose queue of unaccepted connections is full.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::libc;

const FLAGS: libc::c_int = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;

/// A connected pair, both ends non-blocking.
pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
    let mut fds = [-1; 2];
    // SAFETY: socketpair writes two new descriptors into `fds` when it succeeds.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | FLAGS,
            0,
            fds.as_mut_ptr(),
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and owned by nothing else.
    Ok(unsafe {
        (
            UnixStream::from_raw_fd(fds[0]),
            UnixStream::from_raw_fd(fds[1]),
        )
    })
}

/// A non-blocking connection to the socket at `path`. A listener that has not accepted its
/// earlier connections makes this fail with `WouldBlock` at once, not wait.
pub fn connect(path: &Path) -> io::Result<UnixStream> {
    // SAFETY: an all-zero sockaddr_un is valid (family AF_UNSPEC, empty path); it is filled below.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let bytes = path.as_os_str().as_bytes();
    // An empty path would name the abstract socket "", not a file.
    if bytes.is_empty() || bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path too long or not a path",
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (to, &from) in addr.sun_path.iter_mut().zip(bytes) {
        *to = from as libc::c_char;
    }
    // SAFETY: socket returns a new descriptor or -1.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | FLAGS, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is new and owned by nothing else; the stream closes it on every path.
    let stream = unsafe { UnixStream::from_raw_fd(fd) };
    let len = std::mem::offset_of!(libc::sockaddr_un, sun_path) + bytes.len() + 1;
    // SAFETY: `addr` is a valid sockaddr_un and `len` does not exceed its size.
    let connected = unsafe {
        libc::connect(
            stream.as_raw_fd(),
            std::ptr::addr_of!(addr).cast(),
            len as libc::socklen_t,
        )
    };
    if connected != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stream)
}

/// Accepts one waiting connection on the (non-blocking) listener `fd`, non-blocking itself;
/// `WouldBlock` when none is waiting.
pub fn accept(fd: BorrowedFd<'_>) -> io::Result<UnixStream> {
    loop {
        // SAFETY: accept4 with null address pointers returns a new descriptor or -1.
        let new = unsafe {
            libc::accept4(
                fd.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                FLAGS,
            )
        };
        if new >= 0 {
            // SAFETY: `new` is a new descriptor owned by nothing else.
            return Ok(unsafe { UnixStream::from_raw_fd(new) });
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
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
        // SAFETY: listen on a socket the listener owns; it only changes the queue's length.
        assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
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

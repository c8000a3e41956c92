//! The runner's control socket, `agents/<name>/sock` (an `interprocess` local socket, mode 0600):
//! short JSON-line requests, one per connection. `ping` answers with the runner's live status, so
//! a runner that holds its lock but does not answer can be reported as wedged; `cancel` stops a
//! task; `watch` keeps the connection open until the task has finished (a waiting caller's
//! wake-up, and, if the connection closes without a reply, the news that the runner died);
//! `finished` tells the runner that someone else finished a task (a caller took it back from the
//! inbox), so that it wakes that task's watchers. Files stay the source of truth: every outcome
//! is also written to the task folder, and nothing is lost if no one connects.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use interprocess::local_socket::{
    GenericFilePath, ListenerNonblockingMode, ListenerOptions, ToFsName,
};
use interprocess::os::unix::local_socket::ListenerOptionsExt;
use interprocess::os::unix::uds_local_socket as uds;
use serde::{Deserialize, Serialize};

use super::agent::{AgentPaths, Status};
use super::task::{TaskEnd, TaskId};
use crate::error::{IoContext, StoreError};

/// How long either side waits for the other's line.
const IO_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Ping,
    Cancel {
        task: TaskId,
    },
    /// Start a fresh session (drivers that keep one); refused while a task runs.
    Reset,
    /// Reply `finished` once the task has its `done.json` (at once if it has).
    Watch {
        task: TaskId,
    },
    /// The task was finished by someone else (its `done.json` is written): wake its watchers.
    Finished {
        task: TaskId,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Pong {
        status: Status,
    },
    Cancelling {
        task: TaskId,
    },
    NotRunning {
        task: TaskId,
    },
    Reset {
        summary: String,
    },
    /// The task has finished. `end` is given when the runner could not record it (a full
    /// disk): then it is the only record the caller gets.
    Finished {
        task: TaskId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end: Option<Box<TaskEnd>>,
    },
    Noted,
    Error {
        message: String,
    },
}

/// The largest request line a runner reads; a longer one is refused and its connection closed.
pub const MAX_REQUEST: usize = 64 * 1024;

/// How long a client may take to send its request line before its connection is closed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The runner's end of the socket. Nothing here blocks: connections are accepted and read
/// without waiting, a request arrives in as many pieces as the client likes, and one slow or
/// idle client never holds up another (it is closed after `REQUEST_TIMEOUT`).
pub struct Server {
    listener: uds::Listener,
    /// Connections whose request line has not fully arrived.
    reading: Vec<Partial>,
}

struct Partial {
    stream: UnixStream,
    buf: Vec<u8>,
    since: Instant,
}

/// A request waiting for its reply.
pub struct Incoming {
    pub request: std::result::Result<Request, String>,
    stream: UnixStream,
}

impl Incoming {
    /// Answers and closes the connection. A reply is one short line, which fits in the socket's
    /// buffer; a client that does not read it loses it, and nothing waits for it.
    pub fn reply(mut self, reply: &Reply) {
        if let Ok(mut line) = serde_json::to_vec(reply) {
            line.push(b'\n');
            let _ = self.stream.write_all(&line);
        }
    }

    /// The connection, to watch for its client going away.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    /// True if the client closed its end (or sent more after its request, which it must not).
    pub fn gone(&self) -> bool {
        let mut byte = [0u8; 1];
        !matches!((&self.stream).read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

impl Server {
    /// Listens on `path`. Only the lock holder calls this, so a socket file already there is
    /// stale (its runner died) and is removed first.
    pub fn bind(path: &Path) -> Result<Server, StoreError> {
        crate::protocol::store::check_socket_path(path)?;
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("removing the stale socket", path, e)),
        }
        let name = path
            .to_fs_name::<GenericFilePath>()
            .during("naming the socket", path)?;
        let listener = ListenerOptions::new()
            .name(name)
            .mode(0o600)
            .nonblocking(ListenerNonblockingMode::Accept)
            .reclaim_name(true)
            .create_sync_as::<uds::Listener>()
            .during("listening on", path)?;
        Ok(Server {
            listener,
            reading: Vec::new(),
        })
    }

    /// The descriptors to poll: the listener and every connection still being read.
    pub fn fds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        std::iter::once(self.listener.as_fd()).chain(self.reading.iter().map(|p| p.stream.as_fd()))
    }

    /// When the oldest unfinished request times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.reading.iter().map(|p| p.since + REQUEST_TIMEOUT).min()
    }

    /// Accepts every pending connection and reads what has arrived of each request; returns the
    /// requests that are complete. Refused requests (too long, malformed) are answered with an
    /// error by the caller; timed-out connections are closed.
    pub fn accept(&mut self) -> Vec<Incoming> {
        while let Ok(stream) = crate::sys::sock::accept(self.listener.as_fd()) {
            self.reading.push(Partial {
                stream,
                buf: Vec::new(),
                since: Instant::now(),
            });
        }
        let mut complete = Vec::new();
        let now = Instant::now();
        for mut p in std::mem::take(&mut self.reading) {
            match read_request(&mut p) {
                Some(request) => complete.push(Incoming {
                    request,
                    stream: p.stream,
                }),
                None if now < p.since + REQUEST_TIMEOUT => self.reading.push(p),
                None => {} // too slow: closed
            }
        }
        complete
    }
}

/// Reads what has arrived of a request: `Some` once the line is complete (or cannot be), `None`
/// while more is to come.
fn read_request(p: &mut Partial) -> Option<std::result::Result<Request, String>> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(nl) = p.buf.iter().position(|&b| b == b'\n') {
            return Some(
                serde_json::from_slice(&p.buf[..nl]).map_err(|e| format!("bad request: {e}")),
            );
        }
        if p.buf.len() > MAX_REQUEST {
            return Some(Err(format!(
                "the request is longer than {MAX_REQUEST} bytes"
            )));
        }
        match (&p.stream).read(&mut chunk) {
            Ok(0) if p.buf.is_empty() => return Some(Err("no request".into())),
            Ok(0) => {
                return Some(
                    serde_json::from_slice(&p.buf).map_err(|e| format!("bad request: {e}")),
                )
            }
            Ok(n) => p.buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Some(Err(format!("reading the request: {e}"))),
        }
    }
}

/// What asking a runner over its socket can come to.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No socket file, or nothing listening on it.
    #[error("nothing listens on its control socket")]
    NoListener,
    /// Connected but no well-formed reply within the timeout, or not let connect at all (the
    /// runner accepts nothing: its queue of connections is full).
    #[error("no answer on its control socket ({0})")]
    NoAnswer(String),
    /// The runner answered with an error.
    #[error("{0}")]
    Refused(String),
}

/// Sends one request to the runner listening at `path` and reads its reply.
pub fn call(path: &Path, request: &Request) -> Result<Reply, ControlError> {
    // Not blocking in connect: a runner that has stopped accepting (its queue of connections
    // full) is told at once, never waited for.
    let mut stream = crate::sys::sock::connect(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock => {
            ControlError::NoAnswer("it accepts no connection: its queue is full".into())
        }
        _ => ControlError::NoListener,
    })?;
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let mut line =
        serde_json::to_vec(request).map_err(|e| ControlError::NoAnswer(e.to_string()))?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .map_err(|e| ControlError::NoAnswer(e.to_string()))?;
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .map_err(|e| ControlError::NoAnswer(e.to_string()))?;
    match serde_json::from_str(&reply) {
        Ok(Reply::Error { message }) => Err(ControlError::Refused(message)),
        Ok(reply) => Ok(reply),
        Err(e) => Err(ControlError::NoAnswer(format!("{e} in {reply:?}"))),
    }
}

/// Tells `agent`'s runner (if it listens) that a task it never ran has its `done.json`, so that
/// callers watching that task through the runner wake up. Best effort: they also wake when the
/// runner goes away. Never called by the runner itself.
pub fn tell_finished(agent: &AgentPaths, task: &TaskId) {
    if crate::protocol::store::exists(&agent.sock) {
        let _ = call(&agent.sock, &Request::Finished { task: task.clone() });
    }
}

/// Asks the runner at `path` to tell, on the returned connection, when `task` has finished. The
/// connection is non-blocking; it becomes readable with the reply, or with end-of-file if the
/// runner dies first.
pub fn watch(path: &Path, task: &TaskId) -> std::io::Result<UnixStream> {
    let mut stream = crate::sys::sock::connect(path)?;
    let mut line = serde_json::to_vec(&Request::Watch { task: task.clone() })?;
    line.push(b'\n');
    // A line this short always fits a new connection's buffer: this never blocks, and if it
    // could not be written whole the caller falls back to watching the files.
    stream.write_all(&line)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_to_a_listener_that_accepts_nothing_ends_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sock");
        let _listener = crate::sys::sock::tests::listener_with_a_short_queue(&path);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Its queue filled by connections it never accepts, then one call more.
            let mut held = Vec::new();
            while let Ok(s) = crate::sys::sock::connect(&path) {
                held.push(s);
                assert!(held.len() < 8, "the queue never filled");
            }
            let _ = tx.send(call(&path, &Request::Ping).map(|_| ()));
        });
        let got = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the call waited for a listener that accepts nothing");
        match got {
            Err(ControlError::NoAnswer(why)) => assert!(why.contains("queue is full"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}

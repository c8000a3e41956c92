//! The runner's control socket, `agents/<name>/sock` (an `interprocess` local socket, mode 0600):
//! short JSON-line requests, one per connection. `ping` answers with the runner's live status, so
//! a runner that holds its lock but does not answer can be reported as wedged; `cancel` stops a
//! task; `watch` keeps the connection open until the task has finished (a waiting caller's
//! wake-up, and, if the connection closes without a reply, the news that the runner died);
//! `finished` tells the runner that someone else finished a task (a caller took it back from the
//! inbox), so that it wakes that task's watchers. Files stay the source of truth: every outcome
//! is also written to the task folder, and nothing is lost if no one connects.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use interprocess::local_socket::traits::Listener as _;
use interprocess::local_socket::{
    GenericFilePath, ListenerNonblockingMode, ListenerOptions, ToFsName,
};
use interprocess::os::unix::local_socket::ListenerOptionsExt;
use interprocess::os::unix::uds_local_socket as uds;
use serde::{Deserialize, Serialize};

use super::agent::{AgentPaths, Status};
use super::task::TaskId;
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
    Pong { status: Status },
    Cancelling { task: TaskId },
    NotRunning { task: TaskId },
    Reset { summary: String },
    Finished { task: TaskId },
    Noted,
    Error { message: String },
}

pub struct Server {
    listener: uds::Listener,
}

/// A request waiting for its reply.
pub struct Incoming {
    pub request: std::result::Result<Request, String>,
    stream: UnixStream,
}

impl Incoming {
    pub fn reply(mut self, reply: &Reply) {
        if let Ok(mut line) = serde_json::to_vec(reply) {
            line.push(b'\n');
            let _ = self.stream.write_all(&line);
        }
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
        Ok(Server { listener })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// Accepts every pending connection and reads its request line (bounded by `IO_TIMEOUT`).
    pub fn accept(&self) -> Vec<Incoming> {
        let mut incoming = Vec::new();
        while let Ok(stream) = self.listener.accept() {
            let stream = UnixStream::from(OwnedFd::from(stream));
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
            let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
            let mut line = String::new();
            let request = match stream.try_clone().map(BufReader::new) {
                Ok(mut r) => match r.read_line(&mut line) {
                    Ok(_) => serde_json::from_str(&line).map_err(|e| format!("bad request: {e}")),
                    Err(e) => Err(format!("reading the request: {e}")),
                },
                Err(e) => Err(format!("reading the request: {e}")),
            };
            incoming.push(Incoming { request, stream });
        }
        incoming
    }
}

/// What asking a runner over its socket can come to.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No socket file, or nothing listening on it.
    #[error("nothing listens on its control socket")]
    NoListener,
    /// Connected, but no well-formed reply within the timeout.
    #[error("no answer on its control socket ({0})")]
    NoAnswer(String),
    /// The runner answered with an error.
    #[error("{0}")]
    Refused(String),
}

/// Sends one request to the runner listening at `path` and reads its reply.
pub fn call(path: &Path, request: &Request) -> Result<Reply, ControlError> {
    let mut stream = UnixStream::connect(path).map_err(|_| ControlError::NoListener)?;
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
    let mut stream = UnixStream::connect(path)?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut line = serde_json::to_vec(&Request::Watch { task: task.clone() })?;
    line.push(b'\n');
    stream.write_all(&line)?;
    stream.set_nonblocking(true)?;
    Ok(stream)
}

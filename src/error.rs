//! The errors of the layers that the others build on: the state folder (`StoreError`) and the
//! coordinator (`Error`). Each variant says what was being done and to which path or agent;
//! errnos a user can act on (a full disk, a read-only folder, too many open files, the inotify
//! limits) carry advice in their message. Drivers have `driver::DriverError` and the control
//! socket `protocol::control::ControlError`. Which exit code an error means is decided in one
//! place, `exit::code_of`.

use std::io;
use std::path::PathBuf;

/// What went wrong with the state folder or a protocol file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The OS error is part of the message (not a separate cause in the chain, which would
    /// print it twice).
    #[error("{action} {path}: {cause}{}", advice(cause))]
    Io {
        action: &'static str,
        path: PathBuf,
        cause: io::Error,
    },
    #[error("refusing to use {path}: {why}")]
    Unsafe { path: PathBuf, why: String },
    #[error("{path} is malformed: {why}")]
    Malformed { path: PathBuf, why: String },
    #[error("invalid agent name {name:?}: names are 1 to 32 characters of a-z, 0-9, '_' and '-', starting with a letter or digit")]
    BadName { name: String },
    #[error("invalid task id {id:?}")]
    BadTaskId { id: String },
}

impl StoreError {
    pub fn io(action: &'static str, path: impl Into<PathBuf>, cause: io::Error) -> StoreError {
        StoreError::Io {
            action,
            path: path.into(),
            cause,
        }
    }
}

/// What keeps the coordinator from delegating, or what a command was asked that cannot be.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad usage or bad input: the message says what and how to fix it.
    #[error("{0}")]
    Usage(String),
    #[error("unknown agent {name:?}{near}; {declared}live agents: {live}. Declare it in .baton.toml, or start one with `baton agent start {name}`")]
    UnknownAgent {
        name: String,
        /// " (did you mean …?)", or nothing.
        near: String,
        /// "declared: …; ", or nothing.
        declared: String,
        live: String,
    },
    /// The agent has no live runner (and the caller did not ask to queue).
    #[error("agent {agent} is not running: {hint}")]
    NotRunning { agent: String, hint: String },
    /// A runner could not be started or reached.
    #[error("{0}")]
    Unreachable(String),
    /// The machine refused: a full disk, a read-only folder, too many open files.
    #[error("{0}")]
    Environment(String),
}

/// True for an errno that is the machine's doing rather than the user's input: the disk is
/// full, the folder read-only, permission denied, too many open files, out of memory.
pub fn is_environment(e: &io::Error) -> bool {
    use nix::libc;
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull
            | io::ErrorKind::ReadOnlyFilesystem
            | io::ErrorKind::PermissionDenied
            | io::ErrorKind::QuotaExceeded
            | io::ErrorKind::OutOfMemory
    ) || matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOSPC | libc::EROFS | libc::EDQUOT | libc::EIO)
    )
}

/// Advice for the errnos a user can do something about. Printed after the OS message.
pub fn advice(e: &io::Error) -> &'static str {
    // By kind, not errno: wrappers such as tempfile's keep the kind but not the raw errno.
    match e.kind() {
        io::ErrorKind::StorageFull => " (the disk is full: free some space, or run `baton gc`)",
        io::ErrorKind::ReadOnlyFilesystem => {
            " (the file system is read-only: point BATON_HOME at a writable folder)"
        }
        io::ErrorKind::PermissionDenied => {
            " (permission denied: check the folder's owner and mode)"
        }
        _ if matches!(
            e.raw_os_error(),
            Some(nix::libc::EMFILE) | Some(nix::libc::ENFILE)
        ) =>
        {
            " (too many open files: raise `ulimit -n`)"
        }
        _ => "",
    }
}

/// Adds context to a `Result<T, io::Error>`.
pub trait IoContext<T> {
    fn during(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T, StoreError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn during(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::io(action, path, e))
    }
}

/// Bad usage, as an `anyhow` error.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    Error::Usage(msg.into()).into()
}

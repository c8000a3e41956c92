//! Errors of the state folder and the protocol files. Each variant says what was being done and
//! to which path; errnos a user can act on (a full disk, a read-only folder, the inotify limits)
//! carry advice in their message.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {path}: {source}{}", advice(source))]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
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

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Advice for the errnos a user can do something about. Printed after the OS message.
fn advice(e: &io::Error) -> &'static str {
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
    fn during(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn during(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(action, path, e))
    }
}

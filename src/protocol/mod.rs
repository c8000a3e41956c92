//! The state folder as types: the only place a protocol file is named. `store` is the folder and
//! its safety checks; `task` and `agent` are the files of a task and of an agent; `inbox` is the
//! queue between callers and runners; `lock` is liveness; `control` is a runner's socket;
//! `rewritten` is how a runner replaces its `status.json`; `spare` holds the task folders a
//! runner makes ahead for its callers.
//! Readers never panic on a hand-edited file: a missing file is `None`, a malformed one is an
//! error that names the file and what is wrong.

pub mod agent;
pub mod control;
pub mod inbox;
pub mod lock;
pub mod mail;
pub mod results;
pub mod rewritten;
pub mod spare;
pub mod store;
pub mod task;
pub mod workflow;

use std::io;
use std::path::Path;

use serde::{de::DeserializeOwned, Serialize};

use crate::error::StoreError;

pub use agent::{AgentPaths, AgentState, DriverKind, Spec, Status};
pub use store::Store;
pub use task::{Place, State, Task, TaskEnd, TaskId, TaskPaths};

/// Reads a JSON protocol file: `Ok(None)` if it does not exist, an error naming the file if it
/// cannot be read or parsed.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    let bytes = match store::read_nofollow(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(StoreError::Unsafe {
                path: path.into(),
                why: "it is a symbolic link".into(),
            })
        }
        Err(e) => return Err(StoreError::io("reading", path, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StoreError::Malformed {
            path: path.into(),
            why: e.to_string(),
        })
}

/// Writes a JSON protocol file atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    store::write_atomic(path, &json_line(path, value)?)
}

/// `value` as the one line of JSON a protocol file at `path` holds.
pub fn json_line<T: Serialize>(path: &Path, value: &T) -> Result<Vec<u8>, StoreError> {
    let mut bytes = serde_json::to_vec(value).map_err(|e| StoreError::Malformed {
        path: path.into(),
        why: e.to_string(),
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

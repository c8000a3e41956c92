//! The exit status as a type, and the one place that decides which code an error means. Every
//! command that waits shares these codes; `--help` and the README list them.

use crate::driver::DriverError;
use crate::error::{is_environment, Error, StoreError};
use crate::protocol::control::ControlError;
use crate::protocol::task::{State, TaskEnd};

/// Exit codes shared by every command (see the README's "Exit codes").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The answer was delivered.
    Ok = 0,
    /// The agent finished but reported failure.
    AgentFailed = 1,
    /// Bad usage or bad input (unknown agent, bad directive, bad config, unusable state folder).
    Usage = 2,
    /// Timed out.
    Timeout = 3,
    /// Cancelled or detached, by a signal or a key.
    Cancelled = 4,
    /// The agent died or could not be reached.
    AgentLost = 5,
    /// The environment failed: a full disk, a read-only folder, too many open files, permission.
    Environment = 6,
}

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// The text `--help` shows under "Exit codes".
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  the answer was delivered
  1  the agent finished but reported failure
  2  bad usage or bad input (unknown agent, bad directive, bad config, unusable state folder)
  3  timed out
  4  cancelled or detached (signal or key)
  5  the agent died or could not be reached
  6  the environment failed (disk full, read-only folder, too many open files, permission)";

/// The exit code a task's end means.
pub fn of_state(state: State) -> Exit {
    match state {
        State::Ok => Exit::Ok,
        State::Failed => Exit::AgentFailed,
        State::Timeout => Exit::Timeout,
        State::Cancelled | State::Detached => Exit::Cancelled,
        State::AgentLost => Exit::AgentLost,
    }
}

/// The exit status for a set of ends: that of the first one that did not succeed.
pub fn of_ends(ends: &[TaskEnd]) -> Exit {
    ends.iter()
        .map(|e| of_state(e.state))
        .find(|e| *e != Exit::Ok)
        .unwrap_or(Exit::Ok)
}

/// The exit code an error means: the first error in its chain that baton knows decides. A
/// failing machine (disk full, read-only, too many files) is 6 wherever it happened; anything
/// unknown is bad input (2).
pub fn code_of(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<Error>() {
            return match e {
                Error::Usage(_) | Error::UnknownAgent { .. } => Exit::Usage,
                Error::NotRunning { .. } | Error::Unreachable(_) => Exit::AgentLost,
                Error::Environment(_) => Exit::Environment,
            };
        }
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            return match e {
                StoreError::Io { cause, .. } if is_environment(cause) => Exit::Environment,
                // Not a folder, not there: the setting or the input is wrong.
                StoreError::Io { .. } => Exit::Usage,
                StoreError::Unsafe { .. }
                | StoreError::Malformed { .. }
                | StoreError::BadName { .. }
                | StoreError::BadTaskId { .. } => Exit::Usage,
            };
        }
        if let Some(e) = cause.downcast_ref::<DriverError>() {
            return match e.io_error() {
                Some(io) if is_environment(io) => Exit::Environment,
                _ => Exit::Usage,
            };
        }
        if cause.downcast_ref::<ControlError>().is_some() {
            return Exit::AgentLost;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if is_environment(io) {
                return Exit::Environment;
            }
        }
    }
    Exit::Usage
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn io_err(errno: i32) -> anyhow::Error {
        StoreError::io("writing", "/x", io::Error::from_raw_os_error(errno)).into()
    }

    #[test]
    fn a_full_disk_is_an_environment_failure_not_bad_usage() {
        use nix::libc::*;
        for errno in [ENOSPC, EROFS, EMFILE, ENFILE, EACCES, EDQUOT] {
            assert_eq!(code_of(&io_err(errno)), Exit::Environment, "errno {errno}");
        }
        // Wherever it sits in the chain, under context.
        let wrapped = io_err(ENOSPC).context("delivering the task");
        assert_eq!(code_of(&wrapped), Exit::Environment);
    }

    #[test]
    fn each_kind_of_error_has_its_code() {
        assert_eq!(code_of(&crate::error::usage("bad")), Exit::Usage);
        let unsafe_dir = StoreError::Unsafe {
            path: "/x".into(),
            why: "a link".into(),
        };
        assert_eq!(code_of(&unsafe_dir.into()), Exit::Usage);
        let not_running = Error::NotRunning {
            agent: "a".into(),
            hint: "start it".into(),
        };
        assert_eq!(code_of(&not_running.into()), Exit::AgentLost);
        assert_eq!(code_of(&ControlError::NoListener.into()), Exit::AgentLost);
        assert_eq!(code_of(&anyhow::anyhow!("something else")), Exit::Usage);
    }

    #[test]
    fn every_state_maps_to_its_documented_code() {
        assert_eq!(of_state(State::Ok).code(), 0);
        assert_eq!(of_state(State::Failed).code(), 1);
        assert_eq!(of_state(State::Timeout).code(), 3);
        assert_eq!(of_state(State::Cancelled).code(), 4);
        assert_eq!(of_state(State::Detached).code(), 4);
        assert_eq!(of_state(State::AgentLost).code(), 5);
    }
}

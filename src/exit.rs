//! The exit status as a type. Every command that waits shares these codes; `--help` and the
//! README list them. A `Failure` carries the code with the error chain that explains it, so that
//! `main` prints the reason once and exits with the right number.

use std::fmt;

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
  5  the agent died or could not be reached";

/// An error with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn new(exit: Exit, error: impl Into<anyhow::Error>) -> Self {
        Failure {
            exit,
            error: error.into(),
        }
    }

    pub fn msg(exit: Exit, msg: impl fmt::Display) -> Self {
        Failure::new(exit, anyhow::anyhow!("{msg}"))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

/// Anything that fails without saying otherwise is bad input or an unusable environment (2):
/// the errors that mean something else are raised as `Failure` with their own code.
impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        match error.downcast::<Failure>() {
            Ok(f) => f,
            Err(error) => Failure {
                exit: Exit::Usage,
                error,
            },
        }
    }
}

impl From<crate::error::Error> for Failure {
    fn from(error: crate::error::Error) -> Self {
        Failure::new(Exit::Usage, error)
    }
}

impl std::error::Error for Failure {}

pub type Result<T> = std::result::Result<T, Failure>;

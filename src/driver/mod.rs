//! Drivers run one task at a time for a runner. The runner owns the protocol (claiming, status,
//! `result`, `done.json`); a driver only starts a task, reports when it has finished, and stops it.
//! Every driver writes the task's output to the file the runner hands it.

pub mod exec;
pub mod shell;

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use crate::signals::Signals;

/// What a driver needs to start a task.
pub struct TaskCtx<'a> {
    pub id: &'a str,
    pub prompt: &'a Path,
    /// Where the answer goes (stdout, and for the shell driver stderr too).
    pub output: &'a Path,
}

/// How a task's process ended.
#[derive(Debug)]
pub struct Outcome {
    pub ok: bool,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
}

/// Everything a driver's children are given: the scrubbed environment, the working folder and
/// the agent's log (for stderr that is not part of the answer).
pub struct Setup {
    pub env: Vec<(OsString, OsString)>,
    pub cwd: PathBuf,
    pub log: File,
}

pub trait Driver {
    /// Starts the task. An error fails the task with that reason.
    fn start(&mut self, task: &TaskCtx) -> Result<(), String>;
    /// An extra file descriptor to wake on while the task runs.
    fn fd(&self) -> Option<BorrowedFd<'_>>;
    /// The outcome, once the task has finished. Called after every wake-up.
    fn poll(&mut self) -> Option<Outcome>;
    /// Stops the running task and everything it started.
    fn kill(&mut self, sigs: &Signals);
    /// Notices children that ended while idle; ends everything on shutdown.
    fn idle_check(&mut self) {}
    fn shutdown(&mut self, sigs: &Signals);
}

/// The outcome for a finished process.
pub fn outcome(status: std::process::ExitStatus, what: &str) -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    let error = if status.success() {
        None
    } else if let Some(sig) = status.signal() {
        Some(format!("{what} was killed by signal {sig}"))
    } else {
        Some(format!(
            "{what} exited with status {}",
            status.code().unwrap_or(-1)
        ))
    };
    Outcome {
        ok: status.success(),
        exit_code: status.code(),
        error,
    }
}

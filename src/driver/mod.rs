//! Drivers run one task at a time for a runner. The runner owns the protocol (claiming, status,
//! `result`, `done.json`); a driver only starts a task, reports when it has finished, and stops it.
//! Every driver writes the task's output to the file the runner hands it.

pub mod claude;
pub mod exec;
pub mod shell;
pub mod tmux;

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

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
    /// An extra file descriptor to wake on (a child's output).
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    /// A folder the runner watches with inotify on the driver's behalf (hook events).
    fn watch_dir(&self) -> Option<&Path> {
        None
    }
    /// When the driver next needs to be polled even without an event.
    fn next_deadline(&self) -> Option<Instant> {
        None
    }
    /// The outcome, once the task has finished. Called after every wake-up while a task runs.
    fn poll(&mut self) -> Option<Outcome>;
    /// Stops the running task and everything it started.
    fn kill(&mut self, sigs: &Signals);
    /// Called after every wake-up while no task runs: notices children that ended, takes events.
    fn idle_check(&mut self) {}
    /// Why the agent cannot take a task now (a person is using it, a dialog is open). The runner
    /// reports the agent `blocked` with this reason and leaves tasks queued.
    fn busy(&self) -> Option<String> {
        None
    }
    /// Why a task in flight is held up (reported as `blocked` while it lasts).
    fn held(&self) -> Option<String> {
        None
    }
    /// The tmux window that shows the agent, if any.
    fn window(&self) -> Option<String> {
        None
    }
    /// What the agent's context holds, for `status.json`'s `context_summary`.
    fn summary(&self) -> Option<String> {
        None
    }
    /// Set once the agent is gone for good (its window closed): the runner stops.
    fn ended(&self) -> Option<String> {
        None
    }
    /// Starts a fresh session, forgetting the context. Returns a description of the new one.
    fn reset(&mut self, _sigs: &Signals) -> Result<String, String> {
        Err("this driver keeps no session to reset".into())
    }
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

/// A long-lived child that a driver talks to over pipes (the shell; headless Claude Code): its
/// stdin to write to, its stdout read without blocking into `buf`, its stderr into the log.
pub struct Piped {
    pub child: std::process::Child,
    pub stdin: std::process::ChildStdin,
    stdout: std::process::ChildStdout,
    pub buf: Vec<u8>,
    /// The child closed its stdout (it exited, or will).
    pub eof: bool,
}

impl Piped {
    /// Starts `program args` for an agent (see `spawn::agent_command`). `what` names it in errors.
    pub fn spawn(
        program: &str,
        args: &[String],
        setup: &Setup,
        what: &str,
    ) -> Result<Piped, String> {
        use std::os::fd::AsFd;
        use std::process::Stdio;
        let log = setup
            .log
            .try_clone()
            .map_err(|e| format!("opening the log: {e}"))?;
        let mut child = crate::spawn::agent_command(program, args, &setup.env, &setup.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot start {what} `{program}`: {e}"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(format!("the pipes of {what} are missing"));
        };
        nix::fcntl::fcntl(
            stdout.as_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .map_err(|e| format!("setting up the pipe of {what}: {e}"))?;
        Ok(Piped {
            child,
            stdin,
            stdout,
            buf: Vec::new(),
            eof: false,
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.stdout.as_fd()
    }

    /// Appends to `buf` whatever the child has written so far; sets `eof` when it closed.
    pub fn read_available(&mut self) {
        use std::io::Read;
        let mut chunk = [0u8; 8192];
        loop {
            match self.stdout.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// True once the child has exited or closed its stdout.
    pub fn ended(&mut self) -> bool {
        self.eof || matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Ends the child's process group (see `spawn::kill_group`).
    pub fn kill(mut self, sigs: &Signals) {
        crate::spawn::kill_group(&mut self.child, sigs);
    }

    /// Forgets a child that has exited on its own (noticed while idle), so that the next task
    /// starts a fresh one.
    pub fn forget_if_exited(slot: &mut Option<Piped>) {
        if slot
            .as_mut()
            .is_some_and(|p| matches!(p.child.try_wait(), Ok(Some(_))))
        {
            *slot = None;
        }
    }
}

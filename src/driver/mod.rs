//! Drivers run one task at a time for a runner. The runner owns the protocol (claiming, status,
//! `result`, `done.json`); a driver only starts a task, reports when it has finished, and stops it.
//! Every driver writes the task's output to the file the runner hands it. A driver's errors are
//! `DriverError`s: why it could not start, or why a task failed.

pub mod claude;
pub mod exec;
pub mod shell;
pub mod tmux;

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::protocol::TaskId;
use crate::sys::signals::Signals;

/// What a driver needs to start a task.
pub struct TaskCtx<'a> {
    pub id: &'a TaskId,
    pub prompt: &'a Path,
    /// Where the answer goes (stdout, and for the shell driver stderr too).
    pub output: &'a Path,
    /// `output`, already created (mode 0600) by the runner, open for writing.
    pub output_file: File,
    /// Where a driver that can tell says what the agent does now (`Bash: cargo test`).
    pub progress: &'a Path,
}

/// The longest step written to a task's `progress`.
const MAX_STEP: usize = 160;

/// A tool call as a person reads it on the status line: `Bash: cargo test`, `Edit: src/auth.rs`,
/// the tool's name and its main argument.
pub fn tool_step(name: &str, input: &serde_json::Value) -> String {
    let arg = |k: &str| input.get(k).and_then(|v| v.as_str());
    let detail = arg("command")
        .or_else(|| arg("file_path"))
        .or_else(|| arg("path"))
        .or_else(|| arg("pattern"))
        .or_else(|| arg("url"))
        .or_else(|| arg("description"))
        .or_else(|| arg("query"));
    let line = match detail {
        Some(d) => format!(
            "{name}: {}",
            d.split_whitespace().collect::<Vec<_>>().join(" ")
        ),
        None => name.to_string(),
    };
    line.chars().take(MAX_STEP).collect()
}

/// Says what the agent does now, in the task's `progress` (best effort: a status line is not
/// worth failing a task for).
pub fn write_progress(path: &Path, step: &str) {
    let _ = crate::protocol::store::write_atomic(path, step.as_bytes());
}

/// How a task finished: `Ok` with the exit status of its process (if it had one), or the
/// reason it failed.
pub type Finished = Result<Option<i32>, DriverError>;

/// Why a driver could not start, or why a task failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A program could not be found or started.
    #[error("cannot start {what} `{program}`: {cause}")]
    Spawn {
        what: &'static str,
        program: String,
        cause: std::io::Error,
    },
    /// Setting up a task failed (its files, the pipes).
    #[error("{action}: {cause}{}", crate::error::advice(cause))]
    Io {
        action: &'static str,
        cause: std::io::Error,
    },
    /// The agent's spec cannot work (no command for exec, a program not found).
    #[error("{0}")]
    Config(String),
    /// The task's process ended unsuccessfully.
    #[error("{what} {how}")]
    Exited {
        what: String,
        how: String,
        code: Option<i32>,
    },
    /// The agent (its shell, its session, its window) went away during the task.
    #[error("{0}")]
    Gone(String),
    /// The agent reported that the task failed.
    #[error("{0}")]
    Reported(String),
    /// tmux refused a command.
    #[error("{0}")]
    Tmux(String),
}

impl DriverError {
    pub fn io(action: &'static str, cause: std::io::Error) -> DriverError {
        DriverError::Io { action, cause }
    }

    /// The task's own exit status, if it had one.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            DriverError::Exited { code, .. } => *code,
            _ => None,
        }
    }

    /// The OS error under it, if any (for the exit code: a full disk is the machine's fault).
    pub fn io_error(&self) -> Option<&std::io::Error> {
        match self {
            DriverError::Spawn { cause, .. } | DriverError::Io { cause, .. } => Some(cause),
            _ => None,
        }
    }
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
    fn start(&mut self, task: TaskCtx) -> Result<(), DriverError>;
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
    /// How the task finished, once it has. Called after every wake-up while a task runs.
    fn poll(&mut self) -> Option<Finished>;
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
    fn reset(&mut self, _sigs: &Signals) -> Result<String, DriverError> {
        Err(DriverError::Config(
            "this driver keeps no session to reset".into(),
        ))
    }
    fn shutdown(&mut self, sigs: &Signals);
}

/// How a finished process ended, for a task.
pub fn finished(status: std::process::ExitStatus, what: &str) -> Finished {
    use std::os::unix::process::ExitStatusExt;
    if status.success() {
        return Ok(status.code());
    }
    let how = match status.signal() {
        Some(sig) => format!("was killed by signal {sig}"),
        None => format!("exited with status {}", status.code().unwrap_or(-1)),
    };
    Err(DriverError::Exited {
        what: what.into(),
        how,
        code: status.code(),
    })
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
        what: &'static str,
    ) -> Result<Piped, DriverError> {
        use std::os::fd::AsFd;
        use std::process::Stdio;
        let log = setup
            .log
            .try_clone()
            .map_err(|e| DriverError::io("opening the log", e))?;
        let mut child = crate::sys::spawn::agent_command(program, args, &setup.env, &setup.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|cause| DriverError::Spawn {
                what,
                program: program.into(),
                cause,
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(DriverError::Gone(format!(
                "the pipes of {what} are missing"
            )));
        };
        nix::fcntl::fcntl(
            stdout.as_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .map_err(|e| DriverError::io("setting up a pipe", e.into()))?;
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
        crate::sys::spawn::kill_group(&mut self.child, sigs);
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

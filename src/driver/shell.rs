//! The `shell` driver: one long-lived shell per agent, so `cd` and `export` persist between tasks.
//!
//! Framing: each task is sourced inside a brace group whose stdout and stderr go to the task's
//! output file and whose stdin is `/dev/null`, so nothing the task prints or reads can touch the
//! channel to the runner. The shell's own stdout is that channel: after the group it prints
//! `<nonce> <status>`, where the nonce is fresh random per task and never shown to the task (it
//! is on the command line after the function call, not in the function). The runner accepts only
//! that exact token, so output that imitates a marker cannot end a task.
//!
//! The group lives in a function, `__baton_task`, defined once per shell (read-only in bash), so
//! that each task costs the shell about 70 bytes of input: a shell reads a pipe one byte per
//! system call.
//!
//! A task that ends the shell (`exit`) fails, and the next task gets a fresh shell; so does a task
//! that is cancelled (the whole process group is killed).

use std::io::Write;
use std::os::fd::BorrowedFd;

use super::{finished, Driver, DriverError, Finished, Piped, Setup, TaskCtx};
use crate::protocol::store;
use crate::protocol::task::{OUTPUT, PROMPT};
use crate::sys::signals::Signals;

pub struct Shell {
    program: Vec<String>,
    setup: Setup,
    tasks_dir: std::path::PathBuf,
    proc: Option<Piped>,
    nonce: Option<String>,
}

/// The shell used when none is named: bash if there is one, else sh.
pub fn default_program() -> Vec<String> {
    if which::which("bash").is_ok() {
        vec!["bash".into(), "--noprofile".into(), "--norc".into()]
    } else {
        vec!["sh".into()]
    }
}

/// Quotes `s` for a POSIX shell.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Shell {
    /// Starts the shell at once, so that a bad shell command fails at `agent start`.
    pub fn new(
        program: Vec<String>,
        setup: Setup,
        tasks_dir: std::path::PathBuf,
    ) -> Result<Shell, DriverError> {
        let mut shell = Shell {
            program: if program.is_empty() {
                default_program()
            } else {
                program
            },
            setup,
            tasks_dir,
            proc: None,
            nonce: None,
        };
        shell.ensure()?;
        Ok(shell)
    }

    fn ensure(&mut self) -> Result<&mut Piped, DriverError> {
        if self.proc.is_none() {
            let (program, args) = self
                .program
                .split_first()
                .ok_or_else(|| DriverError::Config("the shell command is empty".into()))?;
            let mut proc = Piped::spawn(program, args, &self.setup, "the shell")?;
            // The task runner, defined once. The folder is baked in, so that a task that changes
            // BATON_HOME cannot misdirect the next one; task ids are [0-9a-f-] only.
            // The runner creates `output` (mode 0600) before each task; `>` keeps its mode.
            let tasks = quote(&self.tasks_dir.to_string_lossy());
            let mut prelude = format!(
                "__baton_task() {{ export BATON_TASK_ID=\"$1\"; set --; {{ . {tasks}\"/$BATON_TASK_ID/{PROMPT}\"; }} </dev/null >{tasks}\"/$BATON_TASK_ID/{OUTPUT}\" 2>&1; }}\n"
            );
            if program.contains("bash") {
                prelude.push_str("readonly -f __baton_task\n");
            }
            proc.stdin
                .write_all(prelude.as_bytes())
                .map_err(|e| DriverError::io("setting up the shell", e))?;
            self.proc = Some(proc);
        }
        self.proc
            .as_mut()
            .ok_or_else(|| DriverError::Gone("no shell".into()))
    }
}

/// The status that follows `nonce` on the channel, once its line is complete.
fn find_status(buf: &[u8], nonce: &str) -> Option<i32> {
    let text = String::from_utf8_lossy(buf);
    let at = text.rfind(nonce)?;
    let rest = &text[at + nonce.len()..];
    let line = rest.strip_prefix(' ')?.split_once('\n')?.0;
    line.trim().parse().ok()
}

impl Driver for Shell {
    fn start(&mut self, task: TaskCtx) -> Result<(), DriverError> {
        // 64 random bits the task never sees: no output can guess them.
        let nonce = format!("bd{:016x}", store::random_u64());
        // A `TaskId` is [0-9a-f-] only: safe on the shell's command line as it is.
        let script = format!("__baton_task {}; echo {nonce} $?\n", task.id);
        let proc = self.ensure()?;
        proc.buf.clear();
        proc.stdin
            .write_all(script.as_bytes())
            .map_err(|e| DriverError::io("the agent's shell is not reading its input", e))?;
        self.nonce = Some(nonce);
        Ok(())
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.proc.as_ref().map(Piped::fd)
    }

    fn poll(&mut self) -> Option<Finished> {
        let nonce = self.nonce.clone()?;
        let proc = self.proc.as_mut()?;
        proc.read_available();
        if let Some(code) = find_status(&proc.buf, &nonce) {
            self.nonce = None;
            if code == 0 {
                return Some(Ok(Some(0)));
            }
            return Some(Err(DriverError::Exited {
                what: "the task's last command".into(),
                how: format!("exited with status {code}"),
                code: Some(code),
            }));
        }
        if !proc.ended() {
            return None;
        }
        // The shell is gone (the task ran `exit`, or something killed it).
        let mut proc = self.proc.take()?;
        self.nonce = None;
        let status = proc.child.wait().ok()?;
        let (why, code) = match finished(status, "the agent's shell") {
            Err(e) => (e.to_string(), e.exit_code()),
            Ok(code) => ("the agent's shell exited".to_string(), code),
        };
        Some(Err(DriverError::Exited {
            what: why,
            how: "while running the task; the next task gets a fresh shell (working folder and variables are reset)".into(),
            code,
        }))
    }

    fn kill(&mut self, sigs: &Signals) {
        self.nonce = None;
        if let Some(proc) = self.proc.take() {
            proc.kill(sigs);
        }
    }

    fn idle_check(&mut self) {
        Piped::forget_if_exited(&mut self.proc);
    }

    fn shutdown(&mut self, sigs: &Signals) {
        self.kill(sigs);
    }
}

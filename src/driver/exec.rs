//! The `exec` driver: one process per task. The prompt is its stdin (the prompt file itself, so a
//! prompt of any size cannot dead-lock a pipe), its stdout is the answer, its stderr goes to the
//! agent's log, and its exit status is the task's success.

use std::ffi::OsStr;

use super::{finished, Driver, DriverError, Finished, Setup, TaskCtx};
use crate::protocol::store;
use crate::sys::signals::Signals;
use crate::sys::spawn;
use crate::sys::vspawn::{Process, Spawner, TaskCommand};

pub struct Exec {
    command: Vec<String>,
    setup: Setup,
    child: Option<Process>,
    /// Made at the first task, kept for the next ones.
    spawner: Option<Spawner>,
}

impl Exec {
    /// `command[0]` is resolved already (`runner::setup`), so that no task pays for the search.
    pub fn new(command: Vec<String>, setup: Setup) -> Exec {
        Exec {
            command,
            setup,
            child: None,
            spawner: None,
        }
    }
}

impl Driver for Exec {
    fn start(&mut self, task: TaskCtx) -> Result<(), DriverError> {
        let (program, args) = self.command.split_first().ok_or_else(|| {
            DriverError::Config("the exec driver needs a command after `--`".into())
        })?;
        let stdin = store::open_nofollow(task.prompt)
            .map_err(|e| DriverError::io("opening the prompt", e))?;
        let stderr = self
            .setup
            .log
            .try_clone()
            .map_err(|e| DriverError::io("opening the log", e))?;
        // What `spawn::agent_command` gives the shell's and Claude Code's processes, started
        // without copying the runner (`vspawn`): each task pays for a process start.
        let env = self
            .setup
            .env
            .iter()
            .filter(|(k, _)| k != "BATON_TASK_ID")
            .map(|(k, v)| (k.as_os_str(), v.as_os_str()))
            .chain([(OsStr::new("BATON_TASK_ID"), OsStr::new(task.id.as_str()))])
            .collect();
        let spawner = match &mut self.spawner {
            Some(spawner) => spawner,
            None => self
                .spawner
                .insert(Spawner::new().map_err(|e| DriverError::io("starting the task", e))?),
        };
        let child = spawner
            .spawn(TaskCommand {
                program,
                args,
                env,
                cwd: &self.setup.cwd,
                stdio: [stdin.into(), task.output_file.into(), stderr.into()],
            })
            .map_err(|cause| DriverError::Spawn {
                what: "the task",
                program: program.clone(),
                cause,
            })?;
        self.child = Some(child);
        Ok(())
    }

    fn poll(&mut self) -> Option<Finished> {
        let child = self.child.as_mut()?;
        let ended = match child.try_wait() {
            Ok(None) => return None,
            Ok(Some(status)) => finished(status, &format!("`{}`", self.command.join(" "))),
            Err(e) => Err(DriverError::io("waiting for the task's process", e)),
        };
        self.child = None;
        Some(ended)
    }

    fn kill(&mut self, sigs: &Signals) {
        if let Some(mut child) = self.child.take() {
            spawn::kill_group(&mut child, sigs);
        }
    }

    fn shutdown(&mut self, sigs: &Signals) {
        self.kill(sigs);
    }
}

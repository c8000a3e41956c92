//! The `exec` driver: one process per task. The prompt is its stdin (the prompt file itself, so a
//! prompt of any size cannot dead-lock a pipe), its stdout is the answer, its stderr goes to the
//! agent's log, and its exit status is the task's success.

use std::fs::File;
use std::process::{Child, Stdio};

use super::{outcome, Driver, Outcome, Setup, TaskCtx};
use crate::signals::Signals;
use crate::spawn;

pub struct Exec {
    command: Vec<String>,
    setup: Setup,
    child: Option<Child>,
}

impl Exec {
    pub fn new(command: Vec<String>, setup: Setup) -> Exec {
        Exec {
            command,
            setup,
            child: None,
        }
    }
}

impl Driver for Exec {
    fn start(&mut self, task: &TaskCtx) -> Result<(), String> {
        let (program, args) = self
            .command
            .split_first()
            .ok_or("the exec driver needs a command after `--`")?;
        let stdin = crate::store::open_nofollow(task.prompt)
            .map_err(|e| format!("opening the prompt: {e}"))?;
        let stdout = File::create(task.output).map_err(|e| format!("creating the output: {e}"))?;
        let stderr = self
            .setup
            .log
            .try_clone()
            .map_err(|e| format!("opening the log: {e}"))?;
        let mut cmd = spawn::agent_command(program, args, &self.setup.env, &self.setup.cwd);
        cmd.env("BATON_TASK_ID", task.id)
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        self.child = Some(child);
        Ok(())
    }

    fn poll(&mut self) -> Option<Outcome> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Some(outcome(status, &format!("`{}`", self.command.join(" "))))
            }
            Ok(None) => None,
            Err(e) => {
                self.child = None;
                Some(Outcome {
                    ok: false,
                    exit_code: None,
                    error: Some(format!("waiting for the task's process: {e}")),
                })
            }
        }
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

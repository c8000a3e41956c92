//! The `claude` driver: one persistent headless Claude Code per agent,
//! `claude -p --input-format stream-json --output-format stream-json --verbose`. Each task is one
//! user line on its stdin; the turn's `result` line is the answer (`is_error`, or a `subtype`
//! other than `success`, fails the task with that reason).
//!
//! The session survives the process: its id and turn count are kept in the agent's
//! `claude.json`; the first process starts the session with `--session-id`, every later one
//! (after a crash or a cancelled turn) continues it with `--resume`, so the context is kept.
//! `reset` starts a new session.

use std::io::Write;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Driver, DriverError, Finished, Piped, Setup, TaskCtx};
use crate::protocol::{store, AgentPaths};
use crate::sys::signals::Signals;

/// What the agent's session is, kept in `agents/<name>/claude.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Session {
    pub session_id: String,
    pub turns: u64,
}

pub struct Claude {
    program: PathBuf,
    extra: Vec<String>,
    setup: Setup,
    /// `claude.json`, where the session is kept.
    session_file: PathBuf,
    log: PathBuf,
    session: Session,
    proc: Option<Piped>,
    output: Option<PathBuf>,
    progress: Option<PathBuf>,
}

impl Claude {
    /// `program` is the claude binary (found at start, so that its absence is an error then).
    pub fn new(
        program: PathBuf,
        extra: Vec<String>,
        setup: Setup,
        agent: &AgentPaths,
        first_id: &str,
    ) -> Result<Claude, DriverError> {
        let session = match crate::protocol::read_json::<Session>(&agent.claude) {
            Ok(Some(s)) => s,
            Ok(None) => Session {
                session_id: first_id.to_string(),
                turns: 0,
            },
            Err(e) => return Err(DriverError::Config(e.to_string())),
        };
        let claude = Claude {
            program,
            extra,
            setup,
            session_file: agent.claude.clone(),
            log: agent.log.clone(),
            session,
            proc: None,
            output: None,
            progress: None,
        };
        claude.save()?;
        Ok(claude)
    }

    fn save(&self) -> Result<(), DriverError> {
        crate::protocol::write_json(&self.session_file, &self.session)
            .map_err(|e| DriverError::Config(e.to_string()))
    }

    fn ensure(&mut self) -> Result<&mut Piped, DriverError> {
        if self.proc.is_none() {
            let mut args: Vec<String> = [
                "-p",
                "--input-format",
                "stream-json",
                "--output-format",
                "stream-json",
                "--verbose",
            ]
            .map(String::from)
            .to_vec();
            // A session that has had a turn exists: continue it; else start it under our id.
            let flag = if self.session.turns > 0 {
                "--resume"
            } else {
                "--session-id"
            };
            args.extend([flag.to_string(), self.session.session_id.clone()]);
            args.extend(self.extra.iter().cloned());
            let program = self.program.to_string_lossy().into_owned();
            self.proc = Some(Piped::spawn(&program, &args, &self.setup, "Claude Code")?);
        }
        self.proc
            .as_mut()
            .ok_or_else(|| DriverError::Gone("no claude process".into()))
    }

    /// Writes the turn's text as the task's output and ends the task.
    fn finish(&mut self, text: &str, ended: Finished) -> Finished {
        if let Some(out) = self.output.take() {
            if let Err(e) = write_output(&out, text) {
                return Err(DriverError::io("writing the answer", e));
            }
        }
        ended
    }

    /// Writes the task's progress from an assistant message's tool calls (the last one wins).
    fn note_tools(&self, v: &serde_json::Value) {
        let (Some(path), Some(content)) = (
            self.progress.as_deref(),
            v.pointer("/message/content").and_then(|c| c.as_array()),
        ) else {
            return;
        };
        let step = content
            .iter()
            .rev()
            .filter(|c| c.get("type").and_then(|t| t.as_str()) == Some("tool_use"))
            .filter_map(|c| {
                let name = c.get("name")?.as_str()?;
                Some(super::tool_step(
                    name,
                    c.get("input").unwrap_or(&serde_json::Value::Null),
                ))
            })
            .next();
        if let Some(step) = step {
            super::write_progress(path, &step);
        }
    }

    /// Handles one stdout line; `Some` when it ends the turn.
    fn line(&mut self, line: &[u8]) -> Option<Finished> {
        let v: serde_json::Value = serde_json::from_slice(line).ok()?;
        if let Some(id) = v.get("session_id").and_then(|s| s.as_str()) {
            if id != self.session.session_id {
                self.session.session_id = id.to_string();
                let _ = self.save();
            }
        }
        match v.get("type").and_then(|t| t.as_str()) {
            Some("result") => {}
            Some("assistant") => {
                self.note_tools(&v);
                return None;
            }
            _ => return None,
        }
        let text = v
            .get("result")
            .and_then(|r| r.as_str())
            .unwrap_or_default()
            .to_string();
        let subtype = v.get("subtype").and_then(|s| s.as_str()).unwrap_or("?");
        let is_error = v.get("is_error").and_then(|e| e.as_bool()).unwrap_or(false);
        self.session.turns += 1;
        let _ = self.save();
        if is_error || subtype != "success" {
            let why = format!(
                "claude reported {subtype}: {}",
                if text.is_empty() { "no detail" } else { &text }
            );
            return Some(self.finish(&text, Err(DriverError::Reported(why))));
        }
        Some(self.finish(&text, Ok(Some(0))))
    }
}

/// Writes a task's output file (mode 0600, never through a link).
pub fn write_output(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    store::create_private(path)?.write_all(text.as_bytes())
}

impl Driver for Claude {
    fn start(&mut self, task: TaskCtx) -> Result<(), DriverError> {
        let prompt = store::read_nofollow(task.prompt)
            .map_err(|e| DriverError::io("reading the prompt", e))?;
        let message = serde_json::json!({
            "type": "user",
            "message": {"role": "user", "content": String::from_utf8_lossy(&prompt)},
        });
        let mut line = serde_json::to_vec(&message)
            .map_err(|e| DriverError::io("encoding the prompt", e.into()))?;
        line.push(b'\n');
        self.output = Some(task.output.to_path_buf());
        self.progress = Some(task.progress.to_path_buf());
        let proc = self.ensure()?;
        proc.buf.clear();
        proc.stdin
            .write_all(&line)
            .map_err(|e| DriverError::io("claude is not reading its input", e))
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.proc.as_ref().map(Piped::fd)
    }

    fn poll(&mut self) -> Option<Finished> {
        self.proc.as_mut()?.read_available();
        while let Some(nl) = self.proc.as_ref()?.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.proc.as_mut()?.buf.drain(..=nl).collect();
            if let Some(outcome) = self.line(&line) {
                return Some(outcome);
            }
        }
        if !self.proc.as_mut()?.ended() {
            return None;
        }
        let mut proc = self.proc.take()?;
        let status = proc.child.wait().ok();
        let why = format!(
            "claude exited ({}) during the turn; the next task resumes session {}. Its log: {}",
            status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown status".into()),
            self.session.session_id,
            store::last_line(&self.log).unwrap_or_default()
        );
        Some(self.finish("", Err(DriverError::Gone(why))))
    }

    fn kill(&mut self, sigs: &Signals) {
        self.output = None;
        if let Some(proc) = self.proc.take() {
            proc.kill(sigs);
        }
    }

    fn idle_check(&mut self) {
        Piped::forget_if_exited(&mut self.proc);
    }

    fn summary(&self) -> Option<String> {
        Some(format!(
            "claude session {}, {} turn(s)",
            self.session.session_id, self.session.turns
        ))
    }

    fn reset(&mut self, sigs: &Signals) -> Result<String, DriverError> {
        self.kill(sigs);
        self.session = Session {
            session_id: store::new_uuid(),
            turns: 0,
        };
        self.save()?;
        Ok(format!("new claude session {}", self.session.session_id))
    }

    fn shutdown(&mut self, sigs: &Signals) {
        // SIGTERM lets Claude Code save its session; SIGKILL follows if it lingers.
        self.kill(sigs);
    }
}

//! The `claude` driver: one persistent headless Claude Code per agent,
//! `claude -p --input-format stream-json --output-format stream-json --verbose`. Each task is one
//! user line on its stdin; the turn's `result` line is the answer (`is_error`, or a `subtype`
//! other than `success`, fails the task with that reason).
//!
//! The session survives the process: its id and turn count are kept in the agent's
//! `claude.json`; the first process starts the session with `--session-id`, every later one
//! (after a crash or a cancelled turn) continues it with `--resume`, so the context is kept.
//! `reset` starts a new session.

use std::fs;
use std::io::Write;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Driver, Outcome, Piped, Setup, TaskCtx};
use crate::signals::Signals;
use crate::store;

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
    state_dir: PathBuf,
    session: Session,
    proc: Option<Piped>,
    output: Option<PathBuf>,
}

impl Claude {
    /// `program` is the claude binary (found at start, so that its absence is an error then).
    pub fn new(
        program: PathBuf,
        extra: Vec<String>,
        setup: Setup,
        agent_dir: PathBuf,
        first_id: &str,
    ) -> Result<Claude, String> {
        let path = agent_dir.join("claude.json");
        let session = match crate::protocol::read_json::<Session>(&path) {
            Ok(Some(s)) => s,
            Ok(None) => Session {
                session_id: first_id.to_string(),
                turns: 0,
            },
            Err(e) => return Err(e.to_string()),
        };
        let claude = Claude {
            program,
            extra,
            setup,
            state_dir: agent_dir,
            session,
            proc: None,
            output: None,
        };
        claude.save()?;
        Ok(claude)
    }

    fn save(&self) -> Result<(), String> {
        crate::protocol::write_json(&self.state_dir, "claude.json", &self.session)
            .map_err(|e| e.to_string())
    }

    fn ensure(&mut self) -> Result<&mut Piped, String> {
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
        self.proc.as_mut().ok_or_else(|| "no claude process".into())
    }

    fn finish(&mut self, ok: bool, text: &str, error: Option<String>) -> Outcome {
        if let Some(out) = self.output.take() {
            let _ = fs::write(out, text);
        }
        Outcome {
            ok,
            exit_code: Some(if ok { 0 } else { 1 }),
            error,
        }
    }

    /// Handles one stdout line; `Some` when it ends the turn.
    fn line(&mut self, line: &[u8]) -> Option<Outcome> {
        let v: serde_json::Value = serde_json::from_slice(line).ok()?;
        if let Some(id) = v.get("session_id").and_then(|s| s.as_str()) {
            if id != self.session.session_id {
                self.session.session_id = id.to_string();
                let _ = self.save();
            }
        }
        if v.get("type").and_then(|t| t.as_str()) != Some("result") {
            return None;
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
            return Some(self.finish(false, &text, Some(why)));
        }
        Some(self.finish(true, &text, None))
    }
}

impl Driver for Claude {
    fn start(&mut self, task: &TaskCtx) -> Result<(), String> {
        let prompt = fs::read(task.prompt).map_err(|e| format!("reading the prompt: {e}"))?;
        let message = serde_json::json!({
            "type": "user",
            "message": {"role": "user", "content": String::from_utf8_lossy(&prompt)},
        });
        let mut line = serde_json::to_vec(&message).map_err(|e| e.to_string())?;
        line.push(b'\n');
        self.output = Some(task.output.to_path_buf());
        let proc = self.ensure()?;
        proc.buf.clear();
        if let Err(e) = proc.stdin.write_all(&line) {
            return Err(format!("claude is not reading its input: {e}"));
        }
        Ok(())
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.proc.as_ref().map(Piped::fd)
    }

    fn poll(&mut self) -> Option<Outcome> {
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
            store::last_line(&self.state_dir.join("log")).unwrap_or_default()
        );
        Some(self.finish(false, "", Some(why)))
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

    fn reset(&mut self, sigs: &Signals) -> Result<String, String> {
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

//! The `tmux` driver: an interactive Claude Code in a tmux window that a person can watch and type
//! into at any time. baton never reads the screen. A prompt is delivered by bracketed paste and a
//! separate Enter, and proven delivered by the agent's `UserPromptSubmit` hook; completion comes
//! from its `Stop` hook (the answer is `last_assistant_message`), failure from `StopFailure`. The
//! hooks (`baton hook …`) drop events into `agents/<name>/events/`, which this driver reads.
//!
//! A `UserPromptSubmit` with no baton task being delivered is a person at the keyboard: the agent
//! is busy ("in use by a person") until that turn ends, and tasks wait in the inbox. A permission
//! dialog holds the agent likewise; baton never types into it. A turn interrupted with Esc fires
//! no `Stop`: a task in flight then fails once the agent is idle again (its next prompt, or the
//! `idle_prompt` notification), or at its deadline.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{claude::write_output, shell::quote, Driver, DriverError, Finished, Setup, TaskCtx};
use crate::hook::{self, Event};
use crate::protocol::AgentPaths;
use crate::sys::signals::Signals;

/// How long a pasted prompt may take to be submitted before Enter is sent once more, and then
/// before the task fails. `BATON_TMUX_SUBMIT_WAIT` (in the runner's environment) changes it.
pub const SUBMIT_WAIT: Duration = Duration::from_secs(5);

fn wait_setting(var: &str, default: Duration) -> Duration {
    std::env::var(var)
        .ok()
        .and_then(|v| crate::sys::time::parse_duration(&v).ok())
        .unwrap_or(default)
}

/// Where the agent's window lives, kept in `agents/<name>/tmux.json` for `baton attach`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Place {
    pub socket: String,
    pub window_id: String,
    pub label: String,
}

/// How long a new window may take to report `SessionStart` before baton delivers anyway (and
/// lets the delivery proof say whether the hooks work). `BATON_TMUX_START_WAIT` changes it.
pub const START_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, PartialEq)]
enum Phase {
    /// The TUI has not said it is up yet (its `SessionStart` hook).
    Starting {
        deadline: Instant,
    },
    Idle,
    /// A person submitted a prompt; their turn has not ended.
    Person,
    Delivering {
        deadline: Instant,
        retried: bool,
    },
    Working,
}

pub struct Tmux {
    submit_wait: Duration,
    tmux: PathBuf,
    place: Place,
    events: PathBuf,
    phase: Phase,
    permission: bool,
    output: Option<PathBuf>,
    /// The task in flight's `progress`.
    progress: Option<PathBuf>,
    gone: Option<String>,
    buffer: String,
}

pub struct Options<'a> {
    pub name: &'a str,
    pub session: &'a str,
    pub command: Vec<String>,
    pub agent: &'a AgentPaths,
    pub baton: PathBuf,
}

/// The command that shows the agent's window on this terminal: `switch-client` inside tmux,
/// `attach-session` outside.
pub fn attach_command(place: &Place) -> Command {
    let inside = std::env::var_os("TMUX").is_some_and(|v| !v.is_empty());
    let mut cmd = Command::new("tmux");
    cmd.args([
        "-S",
        &place.socket,
        if inside {
            "switch-client"
        } else {
            "attach-session"
        },
        "-t",
        &place.label,
    ]);
    cmd
}

fn run(tmux: &Path, args: &[&str]) -> Result<String, DriverError> {
    let out = Command::new(tmux)
        .args(args)
        .output()
        .map_err(|cause| DriverError::Spawn {
            what: "tmux",
            program: tmux.display().to_string(),
            cause,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(DriverError::Tmux(format!(
            "tmux {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl Tmux {
    /// Opens (or adopts) the agent's window in `session`, creating the session if needed.
    pub fn new(opts: Options, setup: &Setup) -> Result<Tmux, DriverError> {
        let tmux = which::which("tmux").map_err(|_| {
            DriverError::Config("the tmux driver needs tmux, which is not on PATH".into())
        })?;
        let events = opts.agent.events.clone();
        crate::protocol::store::ensure_dir(&events)
            .map_err(|e| DriverError::Config(e.to_string()))?;
        for stale in hook::take_events(&events) {
            drop(stale); // events of an earlier window mean nothing now
        }
        let home = setup
            .env
            .iter()
            .find(|(k, _)| k == "BATON_HOME")
            .map(|(_, v)| v.to_string_lossy().into_owned())
            .unwrap_or_default();
        let env: Vec<String> = setup
            .env
            .iter()
            .map(|(k, v)| quote(&format!("{}={}", k.to_string_lossy(), v.to_string_lossy())))
            .collect();
        let command: Vec<String> = opts.command.iter().map(|a| quote(a)).collect();
        // The agent runs with exactly its scrubbed environment; when it exits, the window's last
        // act tells the runner.
        let script = format!(
            "env -i {} {}; BATON_HOME={} BATON_AGENT={} exec {} hook tmux-exit",
            env.join(" "),
            command.join(" "),
            quote(&home),
            quote(opts.name),
            quote(&opts.baton.to_string_lossy())
        );
        let cwd = setup.cwd.to_string_lossy().into_owned();
        let target = format!("={}", opts.session);
        let existing = run(
            &tmux,
            &[
                "list-windows",
                "-t",
                &target,
                "-F",
                "#{window_id} #{window_name}",
            ],
        )
        .ok();
        let adopted = existing.as_deref().and_then(|list| {
            list.lines()
                .filter_map(|l| l.split_once(' '))
                .find(|(_, name)| *name == opts.name)
                .map(|(id, _)| id.to_string())
        });
        let phase = if adopted.is_some() {
            Phase::Idle
        } else {
            Phase::Starting {
                deadline: Instant::now() + wait_setting("BATON_TMUX_START_WAIT", START_WAIT),
            }
        };
        // Where the window goes: a new window in the session, or a new session around it.
        let window_target = format!("{target}:");
        let placement: [&str; 3] = match existing {
            Some(_) => ["new-window", "-t", &window_target],
            None => ["new-session", "-s", opts.session],
        };
        let window_id = match adopted {
            Some(id) => id,
            None => {
                let mut args = vec![placement[0], "-d", placement[1], placement[2]];
                args.extend([
                    "-n",
                    opts.name,
                    "-c",
                    &cwd,
                    "-P",
                    "-F",
                    "#{window_id}",
                    &script,
                ]);
                run(&tmux, &args)?
            }
        };
        let socket = run(
            &tmux,
            &["display-message", "-p", "-t", &window_id, "#{socket_path}"],
        )?;
        let place = Place {
            socket,
            window_id,
            label: format!("{}:{}", opts.session, opts.name),
        };
        crate::protocol::write_json(&opts.agent.tmux, &place)
            .map_err(|e| DriverError::Config(e.to_string()))?;
        Ok(Tmux {
            submit_wait: wait_setting("BATON_TMUX_SUBMIT_WAIT", SUBMIT_WAIT),
            tmux,
            place,
            events,
            phase,
            permission: false,
            output: None,
            progress: None,
            gone: None,
            buffer: format!("baton-{}", opts.name),
        })
    }

    fn tmux(&self, args: &[&str]) -> Result<String, DriverError> {
        let mut all = vec!["-S", self.place.socket.as_str()];
        all.extend_from_slice(args);
        run(&self.tmux, &all)
    }

    fn enter(&self) -> Result<(), DriverError> {
        self.tmux(&["send-keys", "-t", &self.place.window_id, "Enter"])
            .map(drop)
    }

    /// Ends the task in flight: its output is `text`.
    fn done(&mut self, text: &str, ended: Finished) -> Finished {
        self.phase = Phase::Idle;
        self.permission = false;
        if let Some(out) = self.output.take() {
            if let Err(e) = write_output(&out, text) {
                return Err(DriverError::io("writing the answer", e));
            }
        }
        ended
    }

    fn failed(&mut self, why: String) -> Finished {
        self.done("", Err(DriverError::Gone(why)))
    }

    fn interrupted(&mut self, how: &str) -> Finished {
        self.failed(format!(
            "the turn was interrupted in tmux window {} (no Stop hook fired); {how}",
            self.place.label
        ))
    }

    /// Applies the pending hook events; returns how the task in flight finished, if it did.
    fn events(&mut self) -> Option<Finished> {
        let mut outcome = None;
        for Event { event, data } in hook::take_events(&self.events) {
            let in_flight = matches!(self.phase, Phase::Delivering { .. } | Phase::Working);
            let text = |k: &str| {
                data.get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            match event.as_str() {
                "SessionStart" if matches!(self.phase, Phase::Starting { .. }) => {
                    self.phase = Phase::Idle
                }
                "UserPromptSubmit" => match self.phase {
                    Phase::Delivering { .. } => self.phase = Phase::Working,
                    Phase::Working => {
                        outcome =
                            Some(self.interrupted("then a person submitted a prompt of their own"));
                        self.phase = Phase::Person;
                    }
                    _ => self.phase = Phase::Person,
                },
                "Stop" if in_flight => {
                    outcome = Some(self.done(&text("last_assistant_message"), Ok(None)))
                }
                "StopFailure" if in_flight => {
                    let why = format!(
                        "Claude Code stopped with an error: {}",
                        data.get("error")
                            .map(|e| e.to_string())
                            .unwrap_or_else(|| "unknown".into())
                    );
                    let why = why.replace('"', "");
                    outcome = Some(self.done("", Err(DriverError::Reported(why))));
                }
                "Stop" | "StopFailure" => {
                    self.phase = Phase::Idle;
                    self.permission = false;
                }
                "Notification" => match text("notification_type").as_str() {
                    "permission_prompt" => self.permission = true,
                    "idle_prompt" if in_flight => {
                        outcome = Some(self.interrupted("the agent is idle again"))
                    }
                    "idle_prompt" => {
                        self.phase = Phase::Idle;
                        self.permission = false;
                    }
                    _ => {}
                },
                "PreToolUse" | "PostToolUse" if in_flight => {
                    if let (Some(path), Some(name)) = (
                        self.progress.as_deref(),
                        data.get("tool_name").and_then(|n| n.as_str()),
                    ) {
                        let step = super::tool_step(
                            name,
                            data.get("tool_input").unwrap_or(&serde_json::Value::Null),
                        );
                        let step = if event == "PostToolUse" {
                            format!("thinking (after {step})")
                        } else {
                            step
                        };
                        super::write_progress(path, &step);
                    }
                }
                "TmuxExit" => {
                    self.gone = Some(format!(
                        "the agent's tmux window {} closed",
                        self.place.label
                    ));
                    if let (true, Some(gone)) = (in_flight, self.gone.clone()) {
                        outcome = Some(self.failed(gone));
                    }
                }
                _ => {}
            }
        }
        outcome
    }
}

impl Driver for Tmux {
    fn start(&mut self, task: TaskCtx) -> Result<(), DriverError> {
        if let Some(gone) = &self.gone {
            return Err(DriverError::Gone(gone.clone()));
        }
        let prompt = task.prompt.to_string_lossy();
        let win = self.place.window_id.clone();
        self.tmux(&["load-buffer", "-b", &self.buffer, &prompt])?;
        self.tmux(&["paste-buffer", "-p", "-d", "-b", &self.buffer, "-t", &win])?;
        self.enter()?;
        self.output = Some(task.output.to_path_buf());
        self.progress = Some(task.progress.to_path_buf());
        self.phase = Phase::Delivering {
            deadline: Instant::now() + self.submit_wait,
            retried: false,
        };
        Ok(())
    }

    fn watch_dir(&self) -> Option<&Path> {
        Some(&self.events)
    }

    fn next_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Delivering { deadline, .. } | Phase::Starting { deadline } => Some(deadline),
            _ => None,
        }
    }

    fn poll(&mut self) -> Option<Finished> {
        if let Some(outcome) = self.events() {
            return Some(outcome);
        }
        if let Phase::Delivering { deadline, retried } = self.phase {
            if Instant::now() >= deadline {
                if retried {
                    let why = format!(
                        "the prompt was pasted into tmux window {} but never submitted: no UserPromptSubmit hook fired within {} of two Enters (are baton's hooks installed? `baton install claude`)",
                        self.place.label,
                        crate::sys::time::human(self.submit_wait * 2)
                    );
                    return Some(self.failed(why));
                }
                if let Err(e) = self.enter() {
                    return Some(self.done("", Err(e)));
                }
                self.phase = Phase::Delivering {
                    deadline: Instant::now() + self.submit_wait,
                    retried: true,
                };
            }
        }
        None
    }

    fn kill(&mut self, _sigs: &Signals) {
        // Esc interrupts the turn; the session and its context stay.
        if matches!(self.phase, Phase::Delivering { .. } | Phase::Working) && self.gone.is_none() {
            let _ = self.tmux(&["send-keys", "-t", &self.place.window_id, "Escape"]);
        }
        self.output = None;
        self.phase = Phase::Idle;
    }

    fn idle_check(&mut self) {
        let _ = self.events();
        if let Phase::Starting { deadline } = self.phase {
            if Instant::now() >= deadline {
                self.phase = Phase::Idle;
            }
        }
    }

    fn busy(&self) -> Option<String> {
        if matches!(self.phase, Phase::Starting { .. }) {
            Some(format!("starting in tmux window {}", self.place.label))
        } else if self.permission {
            Some(format!(
                "waiting for permission in tmux window {}",
                self.place.label
            ))
        } else if self.phase == Phase::Person {
            Some("in use by a person".into())
        } else {
            None
        }
    }

    fn held(&self) -> Option<String> {
        self.permission
            .then(|| format!("waiting for permission in tmux window {}", self.place.label))
    }

    fn window(&self) -> Option<String> {
        Some(self.place.label.clone())
    }

    fn ended(&self) -> Option<String> {
        self.gone.clone()
    }

    fn shutdown(&mut self, _sigs: &Signals) {
        if self.gone.is_none() {
            let _ = self.tmux(&["kill-window", "-t", &self.place.window_id]);
        }
    }
}

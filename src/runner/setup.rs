//! What a runner needs before it serves: its spec resolved (an absolute working folder that
//! exists), its driver, its agent's scrubbed environment, and the agent's stable session id.

use std::ffi::OsString;
use std::path::PathBuf;

use super::BASE_ENV;
use crate::driver::{self, Driver, DriverError, Setup};
use crate::error::{usage, IoContext, StoreError};
use crate::protocol::{store, AgentPaths, DriverKind, Spec, Store};

/// `spec` with its working folder made absolute (the current one if it names none), checked.
pub(super) fn resolve(spec: &Spec) -> anyhow::Result<Spec> {
    let cwd = match &spec.cwd {
        Some(c) => std::path::absolute(c).during("resolving the working folder", c)?,
        None => std::env::current_dir().during("reading the current folder", ".")?,
    };
    if !cwd.is_dir() {
        return Err(usage(format!(
            "the working folder {} of agent {} does not exist",
            cwd.display(),
            spec.name
        )));
    }
    Ok(Spec {
        cwd: Some(cwd),
        ..spec.clone()
    })
}

/// The driver for `spec`, checked now so that a missing program fails `agent start`, not a task.
pub(super) fn make_driver(
    store: &Store,
    spec: &Spec,
    paths: &AgentPaths,
    setup: Setup,
    session: &str,
) -> Result<Box<dyn Driver>, DriverError> {
    Ok(match spec.driver {
        DriverKind::Exec => {
            let Some(program) = spec.command.first() else {
                return Err(DriverError::Config("the exec driver needs a command: baton agent run NAME --driver exec -- CMD ARGS...".into()));
            };
            // Resolved once, against the agent's own PATH, so that no task pays for the search.
            let agent_path = setup
                .env
                .iter()
                .find(|(k, _)| k == "PATH")
                .map(|(_, v)| v.clone());
            let Ok(resolved) = which::which_in(program, agent_path, &setup.cwd) else {
                return Err(DriverError::Config(format!(
                    "cannot find the command {program:?} for agent {}",
                    spec.name
                )));
            };
            let mut command = spec.command.clone();
            command[0] = resolved.to_string_lossy().into_owned();
            Box::new(driver::exec::Exec::new(command, setup))
        }
        DriverKind::Shell => Box::new(driver::shell::Shell::new(
            spec.command.clone(),
            setup,
            store.tasks_dir(),
        )?),
        DriverKind::Claude => Box::new(driver::claude::Claude::new(
            find_claude(spec)?,
            spec.command.clone(),
            setup,
            paths,
            session,
        )?),
        DriverKind::Tmux => {
            let mut command = spec.command.clone();
            if command.is_empty() || command[0].starts_with('-') {
                command.insert(0, find_claude(spec)?.to_string_lossy().into_owned());
            }
            let opts = driver::tmux::Options {
                name: &spec.name,
                session: &spec.tmux_session,
                command,
                agent: paths,
                baton: std::env::current_exe()
                    .map_err(|e| DriverError::io("finding the baton binary", e))?,
            };
            Box::new(driver::tmux::Tmux::new(opts, &setup)?)
        }
    })
}

/// The claude binary: `--claude PATH`, else `claude` on PATH. Missing is an error at start.
pub(super) fn find_claude(spec: &Spec) -> Result<PathBuf, DriverError> {
    let wanted = spec
        .claude
        .clone()
        .unwrap_or_else(|| PathBuf::from("claude"));
    which::which(&wanted).map_err(|_| {
        DriverError::Config(format!(
            "cannot find Claude Code ({}) for agent {}: install it (npm install -g @anthropic-ai/claude-code) or pass --claude PATH",
            wanted.display(),
            spec.name
        ))
    })
}

/// The agent's stable session id, created on its first run.
pub(super) fn session_id(paths: &AgentPaths) -> Result<String, StoreError> {
    match store::read_nofollow(&paths.session) {
        Ok(b) => {
            let s = String::from_utf8_lossy(&b).trim().to_string();
            if s.len() == 36 {
                return Ok(s);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io("reading", &paths.session, e)),
    }
    let id = store::new_uuid();
    store::write_atomic(&paths.session, format!("{id}\n").as_bytes())?;
    Ok(id)
}

/// The scrubbed environment: the base variables, `pass_env`, `env`, and baton's own.
pub(super) fn agent_env(
    store: &Store,
    spec: &Spec,
    session: &str,
) -> anyhow::Result<Vec<(OsString, OsString)>> {
    let mut env: Vec<(OsString, OsString)> = Vec::new();
    let mut set = |k: OsString, v: OsString| {
        env.retain(|(key, _)| *key != k);
        env.push((k, v));
    };
    for k in BASE_ENV
        .iter()
        .copied()
        .chain(spec.pass_env.iter().map(String::as_str))
    {
        if let Some(v) = std::env::var_os(k) {
            set(k.into(), v);
        }
    }
    for kv in &spec.env {
        let Some((k, v)) = kv.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(usage(format!("--env takes KEY=VALUE, not {kv:?}")));
        };
        set(k.into(), v.into());
    }
    set("BATON_AGENT".into(), spec.name.clone().into());
    set("BATON_HOME".into(), store.root().into());
    set("BATON_SESSION_ID".into(), session.into());
    // A project's agent names its peers by their names in that project, wherever it runs (its
    // worktree is not under the project's folder).
    if let Some(project) = &spec.project {
        set("BATON_PROJECT".into(), project.into());
    }
    Ok(env)
}

//! `baton agent run|start|stop|list|reset` and `baton attach`: the runner's life cycle.

use std::os::unix::process::CommandExt;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::driver::tmux::Place;
use crate::error::{usage, Error};
use crate::exit::Exit;
use crate::protocol::control::{self, Reply, Request};
use crate::protocol::{lock, store, AgentPaths, Spec, Store};
use crate::runner;

/// How long `agent stop` waits after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub fn run(store: &Store, spec: &Spec, notify_ready: bool) -> anyhow::Result<Exit> {
    runner::run(store, spec, notify_ready)?;
    Ok(Exit::Ok)
}

/// Starts the runner detached from `spec` and returns once it holds its lock.
pub fn start(store: &Store, spec: &Spec) -> anyhow::Result<Exit> {
    let started = runner::start_runner(store, spec)?;
    println!(
        "agent {} started (pid {}, driver {}); log: {}",
        spec.name,
        started.pid,
        spec.driver.as_str(),
        started.log.display()
    );
    Ok(Exit::Ok)
}

/// The paths of a known agent, or a usage error naming it.
fn known(store: &Store, name: &str) -> anyhow::Result<AgentPaths> {
    store
        .agent(name)?
        .ok_or_else(|| usage(format!("unknown agent {name:?}")))
}

fn running_pid(paths: &AgentPaths) -> Option<u32> {
    lock::holder_pid(&paths.lock).or_else(|| paths.read_status().ok().flatten().map(|s| s.pid))
}

pub fn stop(store: &Store, name: &str) -> anyhow::Result<Exit> {
    let paths = known(store, name)?;
    if !lock::is_alive(&paths.lock) {
        println!("agent {name} is not running");
        return Ok(Exit::Ok);
    }
    let Some(pid) = running_pid(&paths) else {
        return Err(Error::Unreachable(format!(
            "agent {name} is running but its pid cannot be found"
        ))
        .into());
    };
    let pid = Pid::from_raw(pid as i32);
    let _ = kill(pid, Signal::SIGTERM);
    if lock::wait_free(&paths.lock, STOP_TIMEOUT) {
        println!("agent {name} stopped");
        return Ok(Exit::Ok);
    }
    let _ = kill(pid, Signal::SIGKILL);
    if lock::wait_free(&paths.lock, Duration::from_secs(2)) {
        println!(
            "agent {name} killed (it did not stop within {}s of SIGTERM)",
            STOP_TIMEOUT.as_secs()
        );
        return Ok(Exit::Ok);
    }
    Err(Error::Unreachable(format!("agent {name} (pid {pid}) did not stop")).into())
}

pub fn list(store: &Store) -> anyhow::Result<Exit> {
    for name in store.agent_names()? {
        let paths = store.agent_paths(&name)?;
        let alive = lock::is_alive(&paths.lock);
        let driver = paths
            .read_spec()
            .ok()
            .flatten()
            .map(|s| s.driver.as_str())
            .unwrap_or("?");
        println!(
            "{name}\t{}\t{driver}",
            if alive { "running" } else { "stopped" }
        );
    }
    Ok(Exit::Ok)
}

/// Starts a fresh session for an agent that keeps one (the claude driver): through the runner if
/// it lives, else by recording a new session id for its next start.
pub fn reset(store: &Store, name: &str) -> anyhow::Result<Exit> {
    let paths = known(store, name)?;
    if lock::is_alive(&paths.lock) {
        return match control::call(&paths.sock, &Request::Reset) {
            Ok(Reply::Reset { summary }) => {
                println!("agent {name}: {summary}");
                Ok(Exit::Ok)
            }
            Err(control::ControlError::Refused(message)) => Err(usage(message)),
            Ok(other) => Err(Error::Unreachable(format!(
                "unexpected reply from agent {name}: {other:?}"
            ))
            .into()),
            Err(e) => Err(Error::Unreachable(format!("agent {name} did not answer: {e}")).into()),
        };
    }
    let session = crate::driver::claude::Session {
        session_id: store::new_uuid(),
        turns: 0,
    };
    crate::protocol::write_json(&paths.claude, &session)?;
    println!(
        "agent {name}: its next start begins claude session {}",
        session.session_id
    );
    Ok(Exit::Ok)
}

/// Switches this terminal's tmux client to the agent's window (or attaches to it).
pub fn attach(store: &Store, name: &str) -> anyhow::Result<Exit> {
    let paths = known(store, name)?;
    let place: Place = crate::protocol::read_json(&paths.tmux)?.ok_or_else(|| {
        usage(format!(
            "agent {name} has no tmux window (only --driver tmux agents have one)"
        ))
    })?;
    if !lock::is_alive(&paths.lock) {
        return Err(Error::NotRunning {
            agent: name.into(),
            hint: format!("`baton agent start {name} --driver tmux`"),
        }
        .into());
    }
    let err = crate::driver::tmux::attach_command(&place).exec();
    Err(Error::Unreachable(format!("running tmux: {err}")).into())
}

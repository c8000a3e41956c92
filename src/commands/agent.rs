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

/// Runs agent `name`'s runner in the foreground, from `given` or its recorded spec.
pub fn run(store: &Store, name: &str, given: Option<Spec>) -> anyhow::Result<Exit> {
    let spec = spec_to_start(store, name, given)?;
    runner::run(store, &spec, false)?;
    Ok(Exit::Ok)
}

/// The spec to start agent `name` from: `given` (which replaces what was recorded, and says
/// so), else the spec recorded the last time it ran, else a new shell agent. A restart never
/// turns an agent into another kind.
fn spec_to_start(store: &Store, name: &str, given: Option<Spec>) -> anyhow::Result<Spec> {
    let recorded = match store.agent(name)? {
        Some(paths) => paths.read_spec()?,
        None => None,
    };
    Ok(match (given, recorded) {
        (None, Some(recorded)) => recorded,
        (None, None) => Spec::new(name, crate::protocol::DriverKind::Shell),
        (Some(given), Some(recorded)) => {
            if !same_kind(&given, &recorded) {
                eprintln!(
                    "baton: agent {name}: replacing its recorded spec ({}) with the one given ({})",
                    describe(&recorded),
                    describe(&given)
                );
            }
            given
        }
        (Some(given), None) => given,
    })
}

/// Two specs that run the same agent (the working folder aside, which a restart may resolve
/// anew).
fn same_kind(a: &Spec, b: &Spec) -> bool {
    Spec {
        cwd: None,
        ..a.clone()
    } == Spec {
        cwd: None,
        ..b.clone()
    }
}

/// A spec in a few words: its driver and command.
pub fn describe(spec: &Spec) -> String {
    if spec.command.is_empty() {
        spec.driver.as_str().to_string()
    } else {
        format!("{} `{}`", spec.driver.as_str(), spec.command.join(" "))
    }
}

/// Starts agent `name`'s runner detached, from `given` or its recorded spec, and returns once it
/// holds its lock.
pub fn start(store: &Store, name: &str, given: Option<Spec>) -> anyhow::Result<Exit> {
    let spec = spec_to_start(store, name, given)?;
    let started = runner::start_runner(store, &spec)?;
    println!(
        "agent {} started (pid {}, {}); log: {}",
        spec.name,
        started.pid,
        describe(&spec),
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
        // What a runner that died left behind is ended all the same (not a tmux window).
        let tmux = paths
            .read_spec()
            .ok()
            .flatten()
            .is_some_and(|s| s.driver == crate::protocol::DriverKind::Tmux);
        let left = if tmux {
            0
        } else {
            crate::sys::spawn::kill_marked(&runner::agent_marks(store, &paths))
        };
        match left {
            0 => println!("agent {name} is not running"),
            n => println!(
                "agent {name} is not running; ended {n} process(es) its last runner left behind"
            ),
        }
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

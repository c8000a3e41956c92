//! `baton agent run|start|stop|list`: the runner's life cycle.

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::control::{self, Reply, Request};
use crate::driver::tmux::Place;
use crate::error::IoContext;
use crate::exit::{Exit, Failure, Result};
use crate::protocol::{self, Status};
use crate::runner::{self, Spec};
use crate::store::{self, Store};
use crate::{lock, spawn};

/// How long `agent start` waits for the runner to hold its lock.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `agent stop` waits after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub fn run(store: &Store, spec: &Spec, notify_ready: bool) -> Result<Exit> {
    runner::run(store, spec, notify_ready)?;
    Ok(Exit::Ok)
}

fn running_pid(paths: &store::AgentPaths) -> Option<u32> {
    lock::holder_pid(&paths.lock).or_else(|| {
        protocol::read_json::<Status>(&paths.status)
            .ok()
            .flatten()
            .map(|s| s.pid)
    })
}

/// Starts the runner detached and returns once it holds its lock.
pub fn start(store: &Store, spec: &Spec) -> Result<Exit> {
    let paths = store.ensure_agent(&spec.name)?;
    if lock::is_alive(&paths.lock) {
        let pid = running_pid(&paths)
            .map(|p| p.to_string())
            .unwrap_or_else(|| "unknown".into());
        return Err(Failure::msg(
            Exit::Usage,
            format!("agent {} is already running, pid {pid}", spec.name),
        ));
    }
    let log = store::open_append(&paths.log)?;
    let cwd = match &spec.cwd {
        Some(c) => std::path::absolute(c).during("resolving the working folder", c)?,
        None => std::env::current_dir().during("reading the current folder", ".")?,
    };
    let exe = std::env::current_exe().during("finding the baton binary", "/proc/self/exe")?;
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Failure::msg(Exit::Usage, format!("creating a pipe: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "agent",
        "run",
        &spec.name,
        "--notify-ready",
        "--driver",
        spec.driver.as_str(),
    ])
    .arg("--cwd")
    .arg(&cwd);
    for e in &spec.env {
        cmd.arg("--env").arg(e);
    }
    for e in &spec.pass_env {
        cmd.arg("--pass-env").arg(e);
    }
    if let Some(claude) = &spec.claude {
        cmd.arg("--claude").arg(claude);
    }
    cmd.arg("--tmux-session").arg(&spec.tmux_session);
    if !spec.command.is_empty() {
        cmd.arg("--").args(&spec.command);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(ready_w))
        .stderr(Stdio::from(log));
    spawn::detached(&mut cmd);
    let mut child = cmd.spawn().during("starting the runner for", &paths.dir)?;
    drop(cmd); // closes our copy of the pipe's write end, so the runner's exit reads as EOF
    let mut fds = [nix::poll::PollFd::new(
        ready_r.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    let timeout =
        nix::poll::PollTimeout::try_from(START_TIMEOUT).unwrap_or(nix::poll::PollTimeout::MAX);
    let ready = matches!(nix::poll::poll(&mut fds, timeout), Ok(n) if n > 0);
    let mut line = String::new();
    if ready {
        let _ = std::fs::File::from(ready_r)
            .take(64)
            .read_to_string(&mut line);
    }
    if let Some(pid) = line.strip_prefix("ready ") {
        println!(
            "agent {} started (pid {}, driver {}); log: {}",
            spec.name,
            pid.trim(),
            spec.driver.as_str(),
            paths.log.display()
        );
        return Ok(Exit::Ok);
    }
    let _ = child.kill();
    let status = child.wait().ok();
    let last = store::last_line(&paths.log).unwrap_or_default();
    let why = if ready || status.is_some_and(|s| !s.success()) {
        format!("agent {} failed to start: {last}", spec.name)
    } else {
        format!(
            "agent {} did not report ready within {}s: {last}",
            spec.name,
            START_TIMEOUT.as_secs()
        )
    };
    Err(Failure::msg(Exit::Usage, why))
}

pub fn stop(store: &Store, name: &str) -> Result<Exit> {
    let Some(paths) = store.agent(name)? else {
        return Err(Failure::msg(Exit::Usage, format!("unknown agent {name:?}")));
    };
    if !lock::is_alive(&paths.lock) {
        println!("agent {name} is not running");
        return Ok(Exit::Ok);
    }
    let Some(pid) = running_pid(&paths) else {
        return Err(Failure::msg(
            Exit::AgentLost,
            format!("agent {name} is running but its pid cannot be found"),
        ));
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
    Err(Failure::msg(
        Exit::AgentLost,
        format!("agent {name} (pid {pid}) did not stop"),
    ))
}

pub fn list(store: &Store) -> Result<Exit> {
    for name in store.agent_names()? {
        let paths = store.agent_dir(&name);
        let alive = lock::is_alive(&paths.join("lock"));
        let config: Option<protocol::AgentConfig> = protocol::read_json(&paths.join("agent.json"))
            .ok()
            .flatten();
        let driver = config.map(|c| c.driver).unwrap_or_else(|| "?".into());
        println!(
            "{name}\t{}\t{driver}",
            if alive { "running" } else { "stopped" }
        );
    }
    Ok(Exit::Ok)
}

/// Starts a fresh session for an agent that keeps one (the claude driver): through the runner if
/// it lives, else by recording a new session id for its next start.
pub fn reset(store: &Store, name: &str) -> Result<Exit> {
    let Some(paths) = store.agent(name)? else {
        return Err(Failure::msg(Exit::Usage, format!("unknown agent {name:?}")));
    };
    if lock::is_alive(&paths.lock) {
        return match control::call(&control::socket_path(&paths.dir), &Request::Reset) {
            Ok(Reply::Reset { summary }) => {
                println!("agent {name}: {summary}");
                Ok(Exit::Ok)
            }
            Ok(Reply::Error { message }) => Err(Failure::msg(Exit::Usage, message)),
            Ok(other) => Err(Failure::msg(
                Exit::AgentLost,
                format!("unexpected reply from agent {name}: {other:?}"),
            )),
            Err(e) => Err(Failure::msg(
                Exit::AgentLost,
                format!("agent {name} did not answer: {e:?}"),
            )),
        };
    }
    let session = crate::driver::claude::Session {
        session_id: store::new_uuid(),
        turns: 0,
    };
    protocol::write_json(&paths.dir, "claude.json", &session)?;
    println!(
        "agent {name}: its next start begins claude session {}",
        session.session_id
    );
    Ok(Exit::Ok)
}

/// Switches this terminal's tmux client to the agent's window (or attaches to it).
pub fn attach(store: &Store, name: &str) -> Result<Exit> {
    let Some(paths) = store.agent(name)? else {
        return Err(Failure::msg(Exit::Usage, format!("unknown agent {name:?}")));
    };
    let place: Place = protocol::read_json(&paths.dir.join("tmux.json"))?.ok_or_else(|| {
        Failure::msg(
            Exit::Usage,
            format!("agent {name} has no tmux window (only --driver tmux agents have one)"),
        )
    })?;
    if !lock::is_alive(&paths.lock) {
        return Err(Failure::msg(
            Exit::AgentLost,
            format!("agent {name} is not running: `baton agent start {name} --driver tmux`"),
        ));
    }
    let err = crate::driver::tmux::attach_command(&place).exec();
    Err(Failure::msg(Exit::Usage, format!("running tmux: {err}")))
}

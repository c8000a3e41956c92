//! `baton agent run|start|stop|list|reset` and `baton attach`: the runner's life cycle.

use std::os::unix::process::CommandExt;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::config::{Config, Decl};
use crate::coordinator::team;
use crate::driver::tmux::Place;
use crate::error::{usage, Error};
use crate::exit::Exit;
use crate::protocol::control::{self, Reply, Request};
use crate::protocol::{lock, store, AgentPaths, Spec, Store};
use crate::runner;

/// How long `agent stop` waits after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What a name given to an agent command stands for: its id in the state folder, and its
/// declaration (with the spec that starts it) if the config declares it.
pub struct Named {
    pub id: String,
    pub declared: Option<(Decl, Spec)>,
}

/// Resolves `name` as the agent commands do: a declared agent, a member of a declared pool
/// (`coding-2`), else the agent of that id. A declared pool is not an agent.
pub fn named(config: &Config, name: &str) -> anyhow::Result<Named> {
    if let Some(decl) = config.decl(name) {
        if decl.is_pool() {
            return Err(usage(format!(
                "{name} is a pool ({}): name a member, e.g. {name}-1, or use `baton up`",
                decl.origin
            )));
        }
        return Ok(Named {
            id: decl.agent_id(None),
            declared: Some((decl.clone(), team::spec_of(decl, None, config))),
        });
    }
    if let Some((decl, n)) = config.pool_member(name) {
        return Ok(Named {
            id: decl.agent_id(Some(n)),
            declared: Some((decl.clone(), team::spec_of(decl, Some(n), config))),
        });
    }
    crate::protocol::agent::validate_id(name)?;
    Ok(Named {
        id: name.to_string(),
        declared: None,
    })
}

/// Runs agent `name`'s runner in the foreground (see `start` for which spec).
pub fn run(
    store: &Store,
    config: &Config,
    name: &str,
    given: Option<Spec>,
) -> anyhow::Result<Exit> {
    let named = named(config, name)?;
    let spec = spec_to_start(store, &named, given)?;
    runner::run(store, &spec, false)?;
    Ok(Exit::Ok)
}

/// The spec to start an agent from: `given` (which replaces what was recorded, and says so),
/// else its declaration, else the spec recorded the last time it ran, else a new shell agent. A
/// restart never turns an agent into another kind.
fn spec_to_start(store: &Store, named: &Named, given: Option<Spec>) -> anyhow::Result<Spec> {
    let recorded = match store.agent(&named.id)? {
        Some(paths) => paths.read_spec()?,
        None => None,
    };
    let id = &named.id;
    Ok(match (given, &named.declared, recorded) {
        (Some(mut given), _, recorded) => {
            given.name = id.clone();
            if let Some(recorded) = recorded.filter(|r| !same_kind(&given, r)) {
                eprintln!(
                    "baton: agent {id}: replacing its recorded spec ({}) with the one given ({})",
                    describe(&recorded),
                    describe(&given)
                );
            }
            given
        }
        (None, Some((_, spec)), _) => spec.clone(),
        (None, None, Some(recorded)) => recorded,
        (None, None, None) => Spec::new(id, crate::protocol::DriverKind::Shell),
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

/// Starts agent `name`'s runner detached (see `spec_to_start` for which spec), and returns once
/// it holds its lock.
pub fn start(
    store: &Store,
    config: &Config,
    name: &str,
    given: Option<Spec>,
) -> anyhow::Result<Exit> {
    let named = named(config, name)?;
    let spec = spec_to_start(store, &named, given)?;
    let started = match (&named.declared, &spec) {
        // A declared agent starts as it would on demand (its worktree, one starter at a time).
        (Some((decl, declared)), spec) if declared == spec => {
            if let Some(paths) = store.agent(&spec.name)? {
                if lock::runner_alive(&paths.lock) {
                    let pid = lock::holder_pid(&paths.lock)
                        .map_or_else(|| "unknown".into(), |p| p.to_string());
                    return Err(usage(format!(
                        "agent {} is already running, pid {pid}",
                        spec.name
                    )));
                }
            }
            team::ensure_running(store, decl, spec)?;
            let paths = store.agent_paths(&spec.name)?;
            runner::start::Started {
                pid: lock::holder_pid(&paths.lock).unwrap_or_default(),
                log: paths.log,
            }
        }
        _ => runner::start_runner(store, &spec)?,
    };
    println!(
        "agent {} started (pid {}, {}); log: {}",
        spec.name,
        started.pid,
        describe(&spec),
        started.log.display()
    );
    Ok(Exit::Ok)
}

/// The paths of a known agent (by the name a person gives it), or a usage error naming it.
pub fn known(store: &Store, config: &Config, name: &str) -> anyhow::Result<AgentPaths> {
    store
        .agent(&named(config, name)?.id)?
        .ok_or_else(|| usage(format!("unknown agent {name:?}: it has never run")))
}

fn running_pid(paths: &AgentPaths) -> Option<u32> {
    lock::holder_pid(&paths.lock).or_else(|| paths.read_status().ok().flatten().map(|s| s.pid))
}

pub fn stop(store: &Store, config: &Config, name: &str) -> anyhow::Result<Exit> {
    let paths = known(store, config, name)?;
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

/// `--help` examples of `baton agent list`.
pub const LIST_EXAMPLES: &str = "\
Examples:
  baton agent list | xargs -rn1 baton agent stop    stop every runner
  baton agent list --long                           name, running|stopped, driver";

/// Every agent in the state folder, for scripts: by default its name (its id: `name.<project>`
/// for a project's agent), one a line; `long`: name, state and driver, tab-separated; `json`: an
/// array of objects.
pub fn list(store: &Store, long: bool, json: bool) -> anyhow::Result<Exit> {
    let mut out = String::new();
    let mut all = Vec::new();
    for name in store.agent_names()? {
        if !long && !json {
            out.push_str(&name);
            out.push('\n');
            continue;
        }
        let paths = store.agent_paths(&name)?;
        let state = if lock::is_alive(&paths.lock) {
            "running"
        } else {
            "stopped"
        };
        let spec = paths.read_spec().ok().flatten();
        let driver = spec.as_ref().map_or("?", |s| s.driver.as_str());
        if json {
            all.push(serde_json::json!({
                "name": name, "state": state, "driver": spec.as_ref().map(|s| s.driver.as_str()),
                "project": spec.as_ref().and_then(|s| s.project.clone()),
                "pool": spec.as_ref().and_then(|s| s.pool.clone()),
                "is_pool": paths.is_pool(),
            }));
        } else {
            out.push_str(&format!("{name}\t{state}\t{driver}\n"));
        }
    }
    if json {
        out = serde_json::Value::Array(all).to_string() + "\n";
    }
    super::print_out(out.as_bytes())
}

/// Starts a fresh session for an agent that keeps one (the claude driver): through the runner if
/// it lives, else by recording a new session id for its next start.
pub fn reset(store: &Store, config: &Config, name: &str) -> anyhow::Result<Exit> {
    let paths = known(store, config, name)?;
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
pub fn attach(store: &Store, config: &Config, name: &str) -> anyhow::Result<Exit> {
    let paths = known(store, config, name)?;
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

/// Removes a stopped agent: its folder (state and history) and its git worktree, which must be
/// clean (what is uncommitted is listed, and nothing is removed).
pub fn remove(store: &Store, config: &Config, name: &str) -> anyhow::Result<Exit> {
    let paths = known(store, config, name)?;
    if lock::is_alive(&paths.lock) {
        return Err(usage(format!(
            "agent {name} is running: stop it first (`baton agent stop {name}`)"
        )));
    }
    let worktree = store.worktrees_dir().join(paths.name());
    if worktree.join(".git").exists() {
        let dirty = team::git(&worktree, &["status", "--porcelain"])
            .map_err(|e| usage(format!("checking the worktree {}: {e}", worktree.display())))?;
        if !dirty.is_empty() {
            return Err(usage(format!(
                "agent {name}'s worktree {} has uncommitted changes; commit or discard them, then remove it:\n{dirty}",
                worktree.display()
            )));
        }
        let common = team::git(
            &worktree,
            &["rev-parse", "--path-format=absolute", "--git-common-dir"],
        )
        .map_err(|e| {
            usage(format!(
                "finding the repository of {}: {e}",
                worktree.display()
            ))
        })?;
        let repo = std::path::Path::new(&common)
            .parent()
            .unwrap_or(std::path::Path::new("/"))
            .to_path_buf();
        let target = worktree.to_string_lossy().into_owned();
        team::git(&repo, &["worktree", "remove", &target])
            .map_err(|e| usage(format!("removing the worktree {target}: {e}")))?;
        println!("removed the worktree {target} (its branch is kept)");
    }
    std::fs::remove_dir_all(&paths.dir)
        .map_err(|e| crate::error::StoreError::io("removing", &paths.dir, e))?;
    println!("removed agent {name}");
    Ok(Exit::Ok)
}

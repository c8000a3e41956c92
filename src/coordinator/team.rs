//! The declared team, as the coordinator uses it: a declaration becomes a `Spec` (data) from
//! which a runner is started on demand; racing callers start one runner (a lock on the agent's
//! `start.lock`); a pool's tasks go to its own inbox, from which its members take them, and the
//! pool starts members (up to `max`) while tasks wait and no member is free; an agent or pool
//! with `worktree = true` runs in its own git worktree.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::config::{Config, Decl};
use crate::error::Error;
use crate::protocol::inbox::{self, Delivered, Request};
use crate::protocol::{lock, store, AgentPaths, AgentState, DriverKind, Spec, Store};
use crate::runner::start::{start_runner, START_TIMEOUT};

/// The spec that declaration `decl` starts its agent (or pool member `member`) from.
pub fn spec_of(decl: &Decl, member: Option<u32>, config: &Config) -> Spec {
    let mut spec = Spec::new(&decl.agent_id(member), decl.driver);
    match decl.driver {
        // The claude driver's command is the extra arguments for `claude`; a declared command
        // names the claude binary.
        DriverKind::Claude => {
            spec.claude = decl.command.first().map(PathBuf::from);
            spec.command = decl.args.clone();
        }
        _ => {
            spec.command = decl.command.iter().chain(&decl.args).cloned().collect();
        }
    }
    spec.cwd = Some(decl.cwd.clone());
    spec.env = decl.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    spec.pass_env = decl.pass_env.clone();
    spec.project = decl.project.as_ref().map(|p| p.root.clone());
    spec.pool = member.map(|_| decl.agent_id(None));
    spec.max_concurrent = config.max_concurrent.as_ref().map(|s| s.value);
    spec
}

/// Starts the runner of `spec` unless one runs. Racing callers start exactly one: the first
/// takes the agent's start lock, the others wait for it and find the runner alive.
pub fn ensure_running(store: &Store, decl: &Decl, spec: &Spec) -> anyhow::Result<()> {
    let existed = store.agent(&spec.name)?.is_some();
    let paths = store.ensure_agent(&spec.name)?;
    // A runner killed a moment ago may still hold its lock: it is waited out, not counted.
    if lock::runner_alive(&paths.lock) {
        return Ok(());
    }
    let Some(_starting) = lock::take(&paths.start_lock, START_TIMEOUT + Duration::from_secs(1))?
    else {
        return Err(Error::Unreachable(format!(
            "agent {} is being started by another caller, which has not finished within {}s",
            spec.name,
            START_TIMEOUT.as_secs()
        ))
        .into());
    };
    if lock::runner_alive(&paths.lock) {
        return Ok(()); // started by the caller we waited for
    }
    let mut spec = spec.clone();
    if decl.worktree {
        let (cwd, branch) = worktree(store, decl, &spec)?;
        spec.cwd = Some(cwd);
        spec.branch = Some(branch);
    }
    let started = start_runner(store, &spec).map(drop).map_err(|e| {
        Error::Unreachable(format!(
            "agent {} ({}) could not be started on demand: {e:#}",
            spec.name, decl.origin
        ))
        .into()
    });
    if started.is_err() && !existed {
        let _ = std::fs::remove_dir_all(&paths.dir);
    }
    started
}

/// Makes sure `target` has a runner again after its runner died (for a retry): a declared
/// on-demand agent is started as on demand; an agent started by hand is started again from its
/// recorded spec (`agent.json`), one starter at a time; a pool starts members by itself.
pub fn restart(store: &Store, target: &super::resolve::Target) -> anyhow::Result<()> {
    let super::resolve::Target::Agent { paths, declared } = target else {
        return Ok(());
    };
    match declared.as_deref() {
        Some((decl, spec)) if decl.start == crate::config::Start::OnDemand => {
            ensure_running(store, decl, spec)
        }
        Some((decl, _)) => Err(Error::NotRunning {
            agent: decl.name.clone(),
            hint: format!(
                "it is declared start = \"manual\" ({}): `baton agent start {}`",
                decl.origin, decl.name
            ),
        }
        .into()),
        None => {
            if lock::runner_alive(&paths.lock) {
                return Ok(());
            }
            let Some(_starting) =
                lock::take(&paths.start_lock, START_TIMEOUT + Duration::from_secs(1))?
            else {
                return Err(Error::Unreachable(format!(
                    "agent {} is being started by another caller, which has not finished",
                    paths.name()
                ))
                .into());
            };
            if lock::runner_alive(&paths.lock) {
                return Ok(());
            }
            let spec = paths.read_spec()?.ok_or_else(|| {
                Error::Unreachable(format!(
                    "agent {} has no recorded spec to start it again from",
                    paths.name()
                ))
            })?;
            start_runner(store, &spec).map(drop).map_err(|e| {
                Error::Unreachable(format!(
                    "agent {} could not be started again: {e:#}",
                    paths.name()
                ))
                .into()
            })
        }
    }
}

/// Delivers to pool `decl`: the task goes to the pool's inbox, and members are started (up to
/// `max`) while more tasks wait there than members are free to take them.
pub fn deliver_to_pool(
    store: &Store,
    config: &Config,
    decl: &Decl,
    req: &Request,
) -> anyhow::Result<Delivered> {
    let pool = store.ensure_agent(&decl.agent_id(None))?;
    if !store::exists(&pool.pool_marker) {
        store::write_atomic(&pool.pool_marker, decl.name.as_bytes())?;
    }
    // One caller at a time decides which members to start.
    let _deciding = lock::take(&pool.start_lock, START_TIMEOUT + Duration::from_secs(1))?;
    let delivered = inbox::deliver(store, &pool, req)?;
    let max = decl.pool_max.unwrap_or(1);
    let members: Vec<(u32, Option<AgentPaths>)> = (1..=max)
        .map(|n| (n, store.agent(&decl.agent_id(Some(n))).ok().flatten()))
        .collect();
    let alive = |p: &Option<AgentPaths>| p.as_ref().is_some_and(|p| lock::runner_alive(&p.lock));
    let free = members
        .iter()
        .filter(|(_, p)| alive(p) && p.as_ref().is_some_and(is_free))
        .count();
    let waiting = inbox::depth(&pool.inbox_new);
    let mut to_start = waiting.saturating_sub(free);
    for (n, paths) in &members {
        if to_start == 0 {
            break;
        }
        if !alive(paths) {
            let spec = spec_of(decl, Some(*n), config);
            if let Err(e) = ensure_running(store, decl, &spec) {
                // Nothing can take the task: take it back and say why.
                if inbox::withdraw(&pool, &delivered.task.id)? {
                    let _ = std::fs::remove_dir_all(&delivered.task.dir);
                }
                return Err(e);
            }
            to_start -= 1;
        }
    }
    Ok(delivered)
}

/// True if the member is idle with nothing of its own queued.
fn is_free(member: &AgentPaths) -> bool {
    member
        .read_status()
        .ok()
        .flatten()
        .is_some_and(|s| s.status == AgentState::Idle)
        && inbox::depth(&member.inbox_new) == 0
}

/// The agent's own git worktree, made the first time on branch `baton/<name>` from the
/// repository's HEAD, reused after (and made again if it was deleted by hand). Returns the folder
/// to run in (the declared folder's place in the worktree) and the branch.
fn worktree(store: &Store, decl: &Decl, spec: &Spec) -> anyhow::Result<(PathBuf, String)> {
    let cwd = spec.cwd.clone().unwrap_or_else(|| decl.cwd.clone());
    let top = git(&cwd, &["rev-parse", "--show-toplevel"]).map_err(|e| {
        Error::Usage(format!(
            "{}: {} {} has worktree = true, but its folder {} is not in a git repository ({e})",
            decl.origin,
            decl.kind(),
            decl.name,
            cwd.display()
        ))
    })?;
    let top = PathBuf::from(top);
    let branch = format!("baton/{}", crate::protocol::agent::name_of(&spec.name));
    store::ensure_dir(&store.worktrees_dir())?;
    let path = store.worktrees_dir().join(&spec.name);
    if !path.join(".git").exists() {
        // A worktree deleted by hand is still known to git until pruned.
        let _ = git(&top, &["worktree", "prune"]);
        let has_branch = git(
            &top,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/heads/{branch}"),
            ],
        )
        .is_ok();
        let target = path.to_string_lossy().into_owned();
        let args: Vec<&str> = if has_branch {
            vec!["worktree", "add", &target, &branch]
        } else {
            vec!["worktree", "add", "-b", &branch, &target, "HEAD"]
        };
        git(&top, &args).map_err(|e| {
            Error::Unreachable(format!(
                "making the worktree {} for {}: {e}",
                path.display(),
                spec.name
            ))
        })?;
    }
    let within = cwd.strip_prefix(&top).unwrap_or(Path::new(""));
    Ok((path.join(within), branch))
}

/// Runs `git ARGS` in `dir`; its trimmed output, or its error message.
pub fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new("git");
    // Not the repository of a `git commit` that may have started this (baton as its editor).
    for name in crate::git::COMMIT_ENV {
        cmd.env_remove(name);
    }
    let out = cmd
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("running git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

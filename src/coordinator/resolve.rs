//! Names to targets. A name a caller gives (`planning`, `coding`, `coding-2`) is, in this order:
//! an agent or pool declared by the project the caller stands in, one declared in the user's
//! file, a member of a declared pool, a full agent id (`planning.3f2a1c9b`), or an agent started
//! by hand (it has a folder). Anything else is unknown, and the error lists what is known.

use crate::config::{Config, Decl, Start};
use crate::error::Error;
use crate::protocol::{lock, AgentPaths, Spec, Store};

use super::team;

/// Where a task for one name goes.
#[derive(Clone, Debug)]
pub enum Target {
    /// An agent: declared (with the spec it starts from), or known by its folder.
    Agent {
        paths: AgentPaths,
        declared: Option<Box<(Decl, Spec)>>,
    },
    /// A pool: its tasks go to its own inbox, and its members take them.
    Pool { decl: Decl },
}

impl Target {
    /// The declaration behind the target, if any.
    pub fn decl(&self) -> Option<&Decl> {
        match self {
            Target::Agent { declared, .. } => declared.as_deref().map(|(d, _)| d),
            Target::Pool { decl } => Some(decl),
        }
    }
}

/// The target of each name; unknown → exit 2 with what is known.
pub fn resolve(store: &Store, config: &Config, names: &[String]) -> anyhow::Result<Vec<Target>> {
    names
        .iter()
        .map(|name| resolve_one(store, config, name))
        .collect()
}

/// True if `name` names something a task can go to (for editor mode's directives).
pub fn is_known(store: &Store, config: &Config, name: &str) -> bool {
    config.decl(name).is_some()
        || config.pool_member(name).is_some()
        || store.agent(name).ok().flatten().is_some()
}

fn resolve_one(store: &Store, config: &Config, name: &str) -> anyhow::Result<Target> {
    if let Some(decl) = config.decl(name) {
        if decl.is_pool() {
            return Ok(Target::Pool { decl: decl.clone() });
        }
        let spec = team::spec_of(decl, None, config);
        return Ok(Target::Agent {
            paths: store.agent_paths(&spec.name)?,
            declared: Some(Box::new((decl.clone(), spec))),
        });
    }
    if let Some((decl, n)) = config.pool_member(name) {
        let spec = team::spec_of(decl, Some(n), config);
        return Ok(Target::Agent {
            paths: store.agent_paths(&spec.name)?,
            declared: Some(Box::new((decl.clone(), spec))),
        });
    }
    if let Some(paths) = store.agent(name)? {
        return Ok(Target::Agent {
            paths,
            declared: None,
        });
    }
    Err(unknown(store, config, name).into())
}

/// The error for an unknown name: what is declared (with its description) and what runs.
fn unknown(store: &Store, config: &Config, name: &str) -> Error {
    let declared: Vec<String> = config
        .effective()
        .iter()
        .map(|d| match &d.description {
            Some(text) => format!("{} ({} — {text})", d.name, d.kind()),
            None => format!("{} ({})", d.name, d.kind()),
        })
        .collect();
    let live: Vec<String> = live_agents(store)
        .iter()
        .filter_map(|id| reachable_name(config, id))
        .collect();
    let names: Vec<String> = config
        .effective()
        .iter()
        .map(|d| d.name.clone())
        .chain(
            store
                .agent_names()
                .unwrap_or_default()
                .iter()
                .filter_map(|id| reachable_name(config, id)),
        )
        .collect();
    Error::UnknownAgent {
        name: name.into(),
        near: crate::suggest::closest(name, names.iter().map(String::as_str))
            .map(|n| format!(" (did you mean {n:?}?)"))
            .unwrap_or_default(),
        declared: if declared.is_empty() {
            String::new()
        } else {
            format!("declared: {}; ", declared.join(", "))
        },
        live: if live.is_empty() {
            "none".into()
        } else {
            live.join(", ")
        },
    }
}

/// The name a caller standing where `config` was read uses for agent `id`: a global agent's id is
/// its name, an agent of the caller's project is known by its name; another project's agent is
/// not reachable by name from here (`None`).
pub fn reachable_name(config: &Config, id: &str) -> Option<String> {
    match id.split_once('.') {
        None => Some(id.to_string()),
        Some((name, project)) => config
            .project
            .as_ref()
            .filter(|p| p.id == project)
            .map(|_| name.to_string()),
    }
}

/// The names of the agents whose runner is alive.
pub fn live_agents(store: &Store) -> Vec<String> {
    store
        .agent_names()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| store.agent_paths(n).is_ok_and(|p| lock::is_alive(&p.lock)))
        .collect()
}

/// Makes sure each agent target can take its task now: a declared on-demand agent is started if
/// it is not running; any other agent that is not running is an error (exit 5) with the command
/// that starts it, unless the caller queues.
pub fn ready(
    store: &Store,
    targets: &[Target],
    queue: bool,
    offer_queue: bool,
) -> anyhow::Result<()> {
    check(store, targets, queue, offer_queue, true)
}

/// What `ready` would refuse, found without starting anything (for the later stages of a
/// pipeline, checked before the first is delivered).
pub fn check_ready(
    store: &Store,
    targets: &[Target],
    queue: bool,
    offer_queue: bool,
) -> anyhow::Result<()> {
    check(store, targets, queue, offer_queue, false)
}

fn check(
    store: &Store,
    targets: &[Target],
    queue: bool,
    offer_queue: bool,
    start: bool,
) -> anyhow::Result<()> {
    for t in targets {
        let Target::Agent { paths, declared } = t else {
            continue; // a pool starts its members when it is given the task
        };
        if lock::is_alive(&paths.lock) {
            continue;
        }
        match declared.as_deref() {
            Some((decl, spec)) if decl.start == Start::OnDemand => {
                if start {
                    team::ensure_running(store, decl, spec)?;
                }
            }
            _ if queue => {}
            _ => {
                let name = crate::protocol::agent::name_of(paths.name());
                let manual = declared
                    .as_deref()
                    .map(|(d, _)| format!(" (it is declared start = \"manual\", {})", d.origin))
                    .unwrap_or_default();
                let queue_hint = if offer_queue {
                    " (or pass --queue to leave the task for its next runner)"
                } else {
                    ""
                };
                return Err(Error::NotRunning {
                    agent: name.into(),
                    hint: format!("start it with `baton agent start {name}`{manual}{queue_hint}"),
                }
                .into());
            }
        }
    }
    Ok(())
}

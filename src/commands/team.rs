//! The declared team: `baton up` and `baton down` (every declared agent, and pools' members),
//! `baton config check` (every error at once) and `baton config show` (what is in effect, and
//! where each setting came from).

use std::path::Path;

use crate::config::{Config, Decl, Start};
use crate::coordinator::team;
use crate::exit::Exit;
use crate::protocol::{lock, Store};

/// Starts every declared agent that is not running, and the first member of every pool.
pub fn up(store: &Store, config: &Config) -> anyhow::Result<Exit> {
    let decls = config.effective();
    if decls.is_empty() {
        println!("nothing is declared here: see `baton config check`");
        return Ok(Exit::Ok);
    }
    for decl in decls {
        let member = decl.is_pool().then_some(1);
        let spec = team::spec_of(decl, member, config);
        let paths = store.agent_paths(&spec.name)?;
        let alive =
            lock::is_alive(&paths.lock) || (decl.is_pool() && any_member_alive(store, decl));
        if alive {
            println!("{} {} is running", decl.kind(), decl.name);
            continue;
        }
        team::ensure_running(store, decl, &spec)?;
        println!("{} {} started ({})", decl.kind(), decl.name, spec.name);
    }
    Ok(Exit::Ok)
}

fn any_member_alive(store: &Store, decl: &Decl) -> bool {
    (1..=decl.pool_max.unwrap_or(0)).any(|n| {
        store
            .agent_paths(&decl.agent_id(Some(n)))
            .is_ok_and(|p| lock::is_alive(&p.lock))
    })
}

/// Stops every declared agent, and every member of every pool.
pub fn down(store: &Store, config: &Config) -> anyhow::Result<Exit> {
    for decl in config.effective() {
        let members: Vec<String> = match decl.pool_max {
            Some(max) => (1..=max).map(|n| format!("{}-{n}", decl.name)).collect(),
            None => vec![decl.name.clone()],
        };
        for name in members {
            let id = super::agent::named(config, &name)?.id;
            if store
                .agent_paths(&id)
                .is_ok_and(|p| lock::is_alive(&p.lock))
            {
                super::agent::stop(store, config, &name)?;
            }
        }
    }
    println!("every declared agent is stopped");
    Ok(Exit::Ok)
}

/// Checks the config files: every error (exit 2), else what they declare.
pub fn check(project: Option<&Path>) -> anyhow::Result<Exit> {
    let config = match super::load_config(project) {
        Ok(c) => c,
        Err(e) => {
            match e.downcast_ref::<crate::config::ConfigError>() {
                Some(errors) => {
                    for err in &errors.errors {
                        eprintln!("{}: {}", err.origin, err.message);
                    }
                    let n = errors.errors.len();
                    eprintln!("{n} error(s) in the config");
                }
                None => eprintln!("baton: {e:#}"),
            }
            return Ok(Exit::Usage);
        }
    };
    let decls = config.effective();
    let agents = decls.iter().filter(|d| !d.is_pool()).count();
    let pools = decls.len() - agents;
    let files: Vec<String> = config
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    if files.is_empty() {
        println!("ok: no config file (none in this folder or above, and no user file)");
    } else {
        println!(
            "ok: {agents} agent(s), {pools} pool(s) ({})",
            files.join(", ")
        );
    }
    Ok(Exit::Ok)
}

/// Prints the settings in effect, each with where it came from.
pub fn show(config: &Config) -> anyhow::Result<Exit> {
    let mut out = String::new();
    let line = |out: &mut String, text: String, origin: &dyn std::fmt::Display| {
        out.push_str(&format!("{text:<44} # {origin}\n"));
    };
    if let Some(s) = &config.editor {
        line(&mut out, format!("editor = {:?}", s.value), &s.origin);
    }
    if let Some(s) = &config.max_concurrent {
        line(&mut out, format!("max_concurrent = {}", s.value), &s.origin);
    }
    if let Some(s) = &config.message_retention {
        line(
            &mut out,
            format!("message_retention = {:?}", crate::sys::time::human(s.value)),
            &s.origin,
        );
    }
    if let Some(s) = &config.default_timeout {
        line(
            &mut out,
            format!("default_timeout = {:?}", crate::sys::time::human(s.value)),
            &s.origin,
        );
    }
    for (text, origin) in config.git.lines() {
        line(&mut out, text, origin);
    }
    for d in config.effective() {
        let scope = match &d.project {
            Some(p) => format!("{} (project {})", d.origin, p.root.display()),
            None => format!("{} (yours, every project)", d.origin),
        };
        line(&mut out, format!("\n[{}.{}]", d.kind(), d.name), &scope);
        for (key, value) in decl_lines(d) {
            out.push_str(&format!("{key} = {value}\n"));
        }
    }
    if out.is_empty() {
        println!("nothing is set: no config file applies here");
    } else {
        print!("{out}");
    }
    Ok(Exit::Ok)
}

fn decl_lines(d: &Decl) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("driver", format!("{:?}", d.driver.as_str())),
        ("cwd", format!("{:?}", d.cwd.display().to_string())),
        (
            "start",
            format!(
                "{:?}",
                if d.start == Start::Manual {
                    "manual"
                } else {
                    "on-demand"
                }
            ),
        ),
    ];
    if !d.command.is_empty() {
        v.push(("command", format!("{:?}", d.command)));
    }
    if !d.args.is_empty() {
        v.push(("args", format!("{:?}", d.args)));
    }
    if !d.env.is_empty() {
        let pairs: Vec<String> = d.env.iter().map(|(k, v)| format!("{k} = {v:?}")).collect();
        v.push(("env", format!("{{ {} }}", pairs.join(", "))));
    }
    if !d.pass_env.is_empty() {
        v.push(("pass_env", format!("{:?}", d.pass_env)));
    }
    if let Some(t) = d.timeout {
        v.push(("timeout", format!("{:?}", crate::sys::time::human(t))));
    }
    if let Some(p) = d.priority {
        v.push(("priority", p.to_string()));
    }
    if d.worktree {
        v.push(("worktree", "true".into()));
    }
    if let Some(max) = d.pool_max {
        v.push(("max", max.to_string()));
    }
    if let Some(text) = &d.description {
        v.push(("description", format!("{text:?}")));
    }
    if let Some(r) = d.retries {
        v.push(("retries", r.to_string()));
    }
    if let Some(g) = &d.gate {
        v.push(("gate", format!("{g:?}")));
    }
    if let Some(r) = d.gate_rounds {
        v.push(("gate_rounds", r.to_string()));
    }
    v
}

//! The checks of what was set up: baton's hooks where git and Claude Code run them, the runners
//! that hold their locks and answer, and the config files.

use super::{fail, note, ok, Ctx, Finding};
use crate::protocol::{lock, AgentState, DriverKind};

/// baton's git hooks in the repository of the folder checked: needed when a commit or review
/// agent is configured there.
pub(super) fn git_hooks(ctx: &Ctx) -> Vec<Finding> {
    use crate::commands::git::HookState;
    const CHECK: &str = "git hooks";
    let Some(crate::commands::git::Installed {
        folder,
        hooks,
        wanted,
    }) = crate::commands::git::state(&ctx.dir)
    else {
        return vec![note(CHECK, "not in a git repository")];
    };
    let missing: Vec<&str> = hooks
        .iter()
        .filter(|(_, s)| !matches!(s, HookState::Ours { .. }))
        .map(|(n, _)| *n)
        .collect();
    let broken: Vec<String> = hooks
        .iter()
        .filter_map(|(n, s)| match s {
            HookState::Ours { runs, there: false } => Some(format!(
                "{n} runs {}, which is not there",
                runs.as_deref().unwrap_or("baton on PATH")
            )),
            _ => None,
        })
        .collect();
    if !broken.is_empty() {
        return vec![fail(
            CHECK,
            format!("{}: {}", folder.display(), broken.join("; ")),
            "`baton install git` again from the baton you use",
        )];
    }
    match (missing.is_empty(), wanted) {
        (true, _) => vec![ok(CHECK, format!("installed in {}", folder.display()))],
        (false, true) => vec![fail(
            CHECK,
            format!(
                "a commit or review agent is configured, but {} not baton's in {}",
                missing.join(" and "),
                folder.display()
            ),
            "`baton install git`",
        )],
        (false, false) => vec![note(
            CHECK,
            "not installed (`baton install git` to have agents draft and review commit messages)",
        )],
    }
}

/// baton's hooks in Claude Code's settings, which the tmux driver depends on.
pub(super) fn claude_hooks(ctx: &Ctx) -> Vec<Finding> {
    const CHECK: &str = "Claude Code hooks";
    let mut files = Vec::new();
    if let Ok(user) = crate::commands::install::settings_file(None) {
        files.push((user, "baton install claude".to_string()));
    }
    if let Some(project) = ctx.config.as_ref().ok().and_then(|c| c.project.as_ref()) {
        let dir = project.root.clone();
        if let Ok(file) = crate::commands::install::settings_file(Some(&dir)) {
            files.push((
                file,
                format!("baton install claude --project {}", dir.display()),
            ));
        }
    }
    let mut findings = Vec::new();
    let mut complete = None;
    for (file, fix) in &files {
        let hooks = match crate::commands::install::installed(file) {
            Ok(Some(h)) => h,
            Ok(None) => continue,
            Err(e) => {
                findings.push(fail(
                    CHECK,
                    format!("{e:#}"),
                    format!("repair the file, then `{fix}`"),
                ));
                continue;
            }
        };
        let missing: Vec<&str> = hooks
            .iter()
            .filter(|(_, c)| c.is_none())
            .map(|(e, _)| *e)
            .collect();
        if missing.len() == hooks.len() {
            continue;
        }
        if !missing.is_empty() {
            findings.push(fail(
                CHECK,
                format!(
                    "{}: {} of {} hooks are missing: {}",
                    file.display(),
                    missing.len(),
                    hooks.len(),
                    missing.join(", ")
                ),
                format!("`{fix}`"),
            ));
            continue;
        }
        let programs: Vec<String> = hooks
            .iter()
            .filter_map(|(_, c)| c.as_deref()?.split_whitespace().next().map(str::to_string))
            .collect();
        if let Some(gone) = programs.iter().find(|p| which::which(p).is_err()) {
            findings.push(fail(
                CHECK,
                format!(
                    "{}: the hooks run {gone}, which is not there",
                    file.display()
                ),
                format!("`{fix}` again from the baton you use"),
            ));
            continue;
        }
        complete = Some((file.clone(), hooks.len()));
    }
    if let Some((file, n)) = complete {
        findings.push(ok(CHECK, format!("all {n} in {}", file.display())));
    } else if findings.is_empty() {
        match ctx.user_of(&[DriverKind::Tmux]) {
            Some(agent) => findings.push(fail(
                CHECK,
                format!("not installed, and agent {agent} (--driver tmux) needs them"),
                "`baton install claude`",
            )),
            None => findings.push(note(
                CHECK,
                "not installed (needed only for --driver tmux agents: `baton install claude`)",
            )),
        }
    }
    findings
}

/// Runners that died and left state behind: a status.json that still says they run, tasks they
/// had claimed, processes still running; and runners that hold their lock but do not answer.
pub(super) fn runners(ctx: &Ctx) -> Vec<Finding> {
    const CHECK: &str = "runners";
    let Some(store) = &ctx.store else {
        return match &ctx.root {
            Ok(root) if root.exists() => vec![note(
                CHECK,
                "not checked: the state folder cannot be read (see above)",
            )],
            _ => Vec::new(),
        };
    };
    let rows = match crate::commands::status::rows(store) {
        Ok(rows) => rows,
        Err(e) => return vec![fail(CHECK, format!("{e:#}"), "see the state folder check")],
    };
    let mut findings = Vec::new();
    let mut running = 0;
    for row in &rows {
        let Ok(Some(paths)) = store.agent(&row.name) else {
            continue;
        };
        let name = crate::protocol::agent::name_of(&row.name);
        let alive = lock::is_alive(&paths.lock);
        if row.state == "wedged" {
            let pid = lock::holder_pid(&paths.lock).map_or("?".into(), |p| p.to_string());
            findings.push(fail(
                CHECK,
                format!("agent {name}: its runner (pid {pid}) holds its lock but does not answer"),
                format!("kill {pid}, then `baton agent start {name}`"),
            ));
            continue;
        }
        if alive {
            running += 1;
            if let Some(problem) = &row.problem {
                findings.push(fail(
                    CHECK,
                    format!("agent {name}: {problem}"),
                    format!("`baton agent stop {name}`, then `baton agent start {name}`"),
                ));
            }
            continue;
        }
        let mut left = Vec::new();
        let mut pid = String::new();
        if let Ok(Some(status)) = paths.read_status() {
            if status.status != AgentState::Stopped {
                pid = format!(" (pid {})", status.pid);
                left.push(format!("status.json saying {}", status.status.as_str()));
            }
        }
        let claimed = crate::protocol::inbox::depth(&paths.inbox_cur);
        if claimed > 0 {
            left.push(format!("{claimed} task(s) it had claimed"));
        }
        let tmux = paths
            .read_spec()
            .ok()
            .flatten()
            .is_some_and(|s| s.driver == DriverKind::Tmux);
        let processes = if tmux {
            0
        } else {
            crate::sys::spawn::marked_processes(&crate::runner::agent_marks(store, &paths)).len()
        };
        if processes > 0 {
            left.push(format!("{processes} process(es) still running"));
        }
        if !left.is_empty() {
            findings.push(fail(
                CHECK,
                format!("agent {name}: its runner{pid} died and left {}", left.join(", ")),
                format!(
                    "`baton agent start {name}` (it records the lost tasks and ends what was left), then `baton agent stop {name}` if it should not run"
                ),
            ));
        }
    }
    if findings.is_empty() {
        findings.push(ok(
            CHECK,
            format!(
                "{} agent(s), {running} running; no runner died leaving state behind",
                rows.len()
            ),
        ));
    }
    findings
}

pub(super) fn config(ctx: &Ctx) -> Vec<Finding> {
    const CHECK: &str = "config";
    match &ctx.config {
        Ok(config) if config.files.is_empty() => {
            vec![ok(CHECK, "no config files (none is needed)")]
        }
        Ok(config) => {
            let files: Vec<String> = config
                .files
                .iter()
                .map(|f| f.display().to_string())
                .collect();
            let decls = config.effective();
            let pools = decls.iter().filter(|d| d.is_pool()).count();
            vec![ok(
                CHECK,
                format!(
                    "{}: {} agent(s), {pools} pool(s) declared",
                    files.join(", "),
                    decls.len() - pools
                ),
            )]
        }
        Err(e) => e
            .errors
            .iter()
            .map(|located| {
                fail(
                    CHECK,
                    format!("{}: {}", located.origin, located.message),
                    "edit that line (`baton config check` lists every error)",
                )
            })
            .collect(),
    }
}

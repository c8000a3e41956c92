//! `baton doctor [--json]`: what could be wrong with this setup, one line per finding, each `✓`
//! (fine), `✗` (wrong, with the fix) or `–` (a note: nothing is wrong, but it is worth knowing,
//! e.g. tmux missing while no agent needs it). Exit 0 when nothing is wrong, 1 otherwise.
//!
//! The checks are a list (`CHECKS`): each is a function from what was gathered once (`Ctx`: the
//! state folder, the config, which drivers are in use) to its findings, so one more check is one
//! more entry. Doctor only looks: it creates nothing (not even a missing state folder), writes
//! nothing, and every program it runs (`tmux -V`, `claude --version`) is given a few seconds.

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::config::{Config, ConfigError};
use crate::exit::Exit;
use crate::poll::Poll;
use crate::protocol::{lock, store, AgentPaths, AgentState, DriverKind, Store};

type Result<T> = anyhow::Result<T>;

/// `--help` examples of `baton doctor`.
pub const EXAMPLES: &str = "\
Examples:
  baton doctor                      every check, one line each, with the fix for each ✗
  baton doctor --json | jq '.checks[] | select(.status == \"fail\")'";

/// The checks, in the order they are shown.
const CHECKS: &[fn(&Ctx) -> Vec<Finding>] = &[
    state_folder,
    free_space,
    inotify_limits,
    editor,
    pass_through_editor,
    tmux,
    claude,
    claude_hooks,
    git_hooks,
    runners,
    config,
];

/// The free space below which the state folder's disk is reported as too full.
const MIN_FREE_BYTES: u64 = 64 << 20;
/// How long a program asked for its version may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    Ok,
    Fail,
    Note,
}

struct Finding {
    check: &'static str,
    mark: Mark,
    detail: String,
    fix: Option<String>,
}

fn ok(check: &'static str, detail: impl Into<String>) -> Finding {
    Finding {
        check,
        mark: Mark::Ok,
        detail: detail.into(),
        fix: None,
    }
}

fn note(check: &'static str, detail: impl Into<String>) -> Finding {
    Finding {
        check,
        mark: Mark::Note,
        detail: detail.into(),
        fix: None,
    }
}

fn fail(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        check,
        mark: Mark::Fail,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

/// What the checks look at, gathered once.
struct Ctx {
    root: std::result::Result<PathBuf, String>,
    /// The state folder, if it exists and is safe to read.
    store: Option<Store>,
    config: std::result::Result<Config, ConfigError>,
    /// The drivers of the agents recorded in the state folder and declared in the config, with
    /// an agent that uses each.
    drivers: Vec<(DriverKind, String)>,
    /// The claude binaries recorded agents were given with `--claude`.
    claudes: Vec<PathBuf>,
    /// The folder the checks are about (`--project DIR`, else the current one).
    dir: PathBuf,
}

impl Ctx {
    fn gather(project: Option<&Path>) -> Ctx {
        let root = store::default_root().map_err(|e| e.to_string());
        let store = root
            .as_ref()
            .ok()
            .filter(|r| store::check_dir(r).is_ok())
            // Opening the store makes these when they are missing: doctor makes nothing.
            .filter(|r| r.join("agents").is_dir() && r.join("tasks").is_dir())
            .and_then(|r| Store::open_at(r.clone()).ok());
        let dir = match project {
            Some(p) => std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()),
            None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        };
        let config = crate::config::load(&dir);
        let mut drivers = Vec::new();
        let mut claudes = Vec::new();
        if let Ok(config) = &config {
            for decl in config.effective() {
                drivers.push((decl.driver, decl.name.clone()));
            }
        }
        for paths in agents(store.as_ref()) {
            if let Some(spec) = paths.read_spec().ok().flatten() {
                drivers.push((spec.driver, paths.name().to_string()));
                claudes.extend(spec.claude);
            }
        }
        Ctx {
            root,
            store,
            config,
            drivers,
            claudes,
            dir,
        }
    }

    /// An agent that uses one of `kinds`, if any does.
    fn user_of(&self, kinds: &[DriverKind]) -> Option<&str> {
        self.drivers
            .iter()
            .find(|(d, _)| kinds.contains(d))
            .map(|(_, name)| name.as_str())
    }
}

/// The folders of the agents in the state folder.
fn agents(store: Option<&Store>) -> Vec<AgentPaths> {
    let Some(store) = store else {
        return Vec::new();
    };
    store
        .agent_names()
        .unwrap_or_default()
        .iter()
        .filter_map(|n| store.agent(n).ok().flatten())
        .collect()
}

pub fn doctor(project: Option<&Path>, json_out: bool) -> Result<Exit> {
    let ctx = Ctx::gather(project);
    let findings: Vec<Finding> = CHECKS.iter().flat_map(|check| check(&ctx)).collect();
    let wrong = findings.iter().any(|f| f.mark == Mark::Fail);
    let text = if json_out {
        let checks: Vec<_> = findings
            .iter()
            .map(|f| {
                json!({
                    "check": f.check,
                    "status": match f.mark { Mark::Ok => "ok", Mark::Fail => "fail", Mark::Note => "note" },
                    "detail": f.detail,
                    "fix": f.fix,
                })
            })
            .collect();
        format!("{}\n", json!({ "ok": !wrong, "checks": checks }))
    } else {
        render(&findings, crate::sys::color::wanted(std::io::stdout()))
    };
    super::print_out(text.as_bytes())?;
    Ok(if wrong { Exit::AgentFailed } else { Exit::Ok })
}

/// One line per finding: the mark, the check, what was found, and for a `✗` the fix.
fn render(findings: &[Finding], color: bool) -> String {
    let paint = |code: &str, s: &str| {
        if color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    };
    let width = findings.iter().map(|f| f.check.len()).max().unwrap_or(0);
    let mut out = String::new();
    for f in findings {
        let mark = match f.mark {
            Mark::Ok => paint("32", "✓"),
            Mark::Fail => paint("31;1", "✗"),
            Mark::Note => paint("2", "–"),
        };
        let fix = f
            .fix
            .as_deref()
            .map(|fix| format!(" — fix: {fix}"))
            .unwrap_or_default();
        out.push_str(&format!("{mark} {:<width$}  {}{fix}\n", f.check, f.detail));
    }
    let failed = findings.iter().filter(|f| f.mark == Mark::Fail).count();
    out.push_str(&match failed {
        0 => "all is well\n".to_string(),
        n => format!("{n} problem(s) found\n"),
    });
    out
}

fn state_folder(ctx: &Ctx) -> Vec<Finding> {
    const CHECK: &str = "state folder";
    let root = match &ctx.root {
        Ok(root) => root,
        Err(e) => {
            return vec![fail(
                CHECK,
                e.clone(),
                "set BATON_HOME to a folder of yours",
            )]
        }
    };
    let meta = match std::fs::symlink_metadata(root) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return vec![ok(
                CHECK,
                format!(
                    "{} does not exist yet: it is made (mode 0700) on first use",
                    root.display()
                ),
            )]
        }
        Err(e) => {
            return vec![fail(
                CHECK,
                format!("cannot read {}: {e}", root.display()),
                "point BATON_HOME at a folder of yours",
            )]
        }
    };
    // The root, and every folder in it that baton uses.
    let mut folders = vec![root.clone()];
    for sub in ["agents", "tasks", "queue", "slots", "worktrees"] {
        folders.push(root.join(sub));
    }
    if let Ok(rd) = std::fs::read_dir(root.join("agents")) {
        for entry in rd.flatten() {
            let paths = AgentPaths::new(entry.path());
            folders.extend(paths.folders().iter().map(|p| p.to_path_buf()));
        }
    }
    let mut findings = Vec::new();
    for dir in folders.iter().filter(|d| store::exists(d)) {
        if let Err(e) = store::check_dir(dir) {
            let fix = match std::fs::symlink_metadata(dir) {
                Ok(m) if m.file_type().is_symlink() || !m.is_dir() => {
                    format!(
                        "remove {} (baton makes it again), or point BATON_HOME elsewhere",
                        dir.display()
                    )
                }
                Ok(m) if m.uid() != nix::unistd::geteuid().as_raw() => format!(
                    "chown -R $(id -u) {} — or point BATON_HOME at a folder of yours",
                    dir.display()
                ),
                _ => format!("chmod 700 {}", dir.display()),
            };
            findings.push(fail(CHECK, e.to_string(), fix));
        }
    }
    if findings.is_empty() {
        findings.push(ok(
            CHECK,
            format!(
                "{}: yours, mode {:04o}",
                root.display(),
                meta.mode() & 0o7777
            ),
        ));
    }
    findings
}

/// The nearest folder that exists at or above `path`.
fn existing(path: &Path) -> Option<&Path> {
    path.ancestors().find(|p| p.exists())
}

fn free_space(ctx: &Ctx) -> Vec<Finding> {
    const CHECK: &str = "free space";
    let Some(dir) = ctx.root.as_ref().ok().and_then(|r| existing(r)) else {
        return Vec::new();
    };
    let stat = match nix::sys::statvfs::statvfs(dir) {
        Ok(s) => s,
        Err(e) => {
            return vec![note(
                CHECK,
                format!("cannot measure {}: {e}", dir.display()),
            )]
        }
    };
    let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
    let inodes = stat.files_available() as u64;
    let shown = format!("{} MiB free", free >> 20);
    if stat.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
        return vec![fail(
            CHECK,
            format!("{} is on a read-only file system", dir.display()),
            "point BATON_HOME at a writable folder",
        )];
    }
    if free < MIN_FREE_BYTES || (stat.files() > 0 && inodes < 1000) {
        return vec![fail(
            CHECK,
            format!("{shown} and {inodes} inodes free under {}", dir.display()),
            "free some space; `baton gc` removes finished tasks older than a week",
        )];
    }
    vec![ok(CHECK, format!("{shown} under {}", dir.display()))]
}

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn inotify_limits(ctx: &Ctx) -> Vec<Finding> {
    const CHECK: &str = "inotify limits";
    let watches = read_number("/proc/sys/fs/inotify/max_user_watches");
    let instances = read_number("/proc/sys/fs/inotify/max_user_instances");
    let (Some(watches), Some(instances)) = (watches, instances) else {
        return vec![note(CHECK, "cannot read /proc/sys/fs/inotify (not Linux?)")];
    };
    // Each runner and each waiting caller holds an instance; a live view watches two folders
    // per agent.
    let agents = agents(ctx.store.as_ref()).len() as u64;
    let shown = format!("max_user_watches {watches}, max_user_instances {instances}");
    let mut findings = Vec::new();
    if watches < 8192.max(agents * 4) {
        findings.push(fail(
            CHECK,
            format!("{shown}: too few watches"),
            "sudo sysctl fs.inotify.max_user_watches=524288",
        ));
    }
    if instances < 128.max(agents + 32) {
        findings.push(fail(
            CHECK,
            format!("{shown}: too few instances for {agents} agent(s) and their callers"),
            "sudo sysctl fs.inotify.max_user_instances=1024",
        ));
    }
    if findings.is_empty() {
        findings.push(ok(CHECK, shown));
    }
    findings
}

/// True if `program` (a name on PATH or a path) is this very baton.
fn is_this_baton(program: &Path) -> bool {
    let me = std::env::current_exe().and_then(std::fs::canonicalize);
    let it = which::which(program)
        .ok()
        .and_then(|p| std::fs::canonicalize(p).ok());
    matches!((it, me), (Some(a), Ok(b)) if a == b)
}

/// What Claude Code and git run on a prompt: `VISUAL`, else `EDITOR`.
fn editor(_: &Ctx) -> Vec<Finding> {
    const CHECK: &str = "editor (VISUAL/EDITOR)";
    let (var, value) = match (std::env::var("VISUAL"), std::env::var("EDITOR")) {
        (Ok(v), _) if !v.trim().is_empty() => ("VISUAL", v),
        (_, Ok(e)) if !e.trim().is_empty() => ("EDITOR", e),
        _ => {
            return vec![note(
                CHECK,
                "neither is set: Ctrl-G in Claude Code does not reach baton (INSTALL.md: make it the editor)",
            )]
        }
    };
    let program = value.split_whitespace().next().unwrap_or_default();
    let named_baton = Path::new(program).file_name().is_some_and(|n| n == "baton");
    if !named_baton {
        return vec![note(
            CHECK,
            format!("{var}={value}: Ctrl-G opens it directly; baton is not in the way (INSTALL.md makes baton the editor)"),
        )];
    }
    match which::which(program) {
        Err(_) => vec![fail(
            CHECK,
            format!("{var}={value}, but there is no {program} on PATH"),
            "install baton on PATH (INSTALL.md), or give its full path",
        )],
        Ok(path) if !is_this_baton(Path::new(program)) => vec![note(
            CHECK,
            format!("{var}={value} runs {}, not this baton", path.display()),
        )],
        Ok(_) => vec![ok(
            CHECK,
            format!("{var}={value}: Ctrl-G delegates @agent prompts"),
        )],
    }
}

/// The editor a prompt not addressed to an agent opens: it must be a real editor, not baton.
fn pass_through_editor(_: &Ctx) -> Vec<Finding> {
    const CHECK: &str = "pass-through editor";
    let source = if std::env::var("BATON_EDITOR").is_ok_and(|v| !v.trim().is_empty()) {
        "BATON_EDITOR"
    } else {
        "BATON_EDITOR is unset: the first of nvim, vim, vi, nano"
    };
    match crate::editor::real_editor() {
        Ok(cmd) => vec![ok(CHECK, format!("{} ({source})", cmd.join(" ")))],
        Err(e) => vec![fail(
            CHECK,
            format!("{e:#}"),
            "export BATON_EDITOR=vim (your real editor) in your shell profile",
        )],
    }
}

/// Runs `program ARGS` and returns the first line it prints, waiting at most `PROBE_TIMEOUT`.
fn version_of(program: &Path, args: &[&str]) -> std::result::Result<String, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run it: {e}"))?;
    let mut out = Vec::new();
    let deadline = Instant::now() + PROBE_TIMEOUT;
    if let Some(mut stdout) = child.stdout.take() {
        loop {
            let ready = {
                let mut poll = Poll::new();
                let i = poll.add(stdout.as_fd());
                let _ = poll.wait(Some(deadline));
                poll.ready(i)
            };
            if !ready {
                break;
            }
            let mut buf = [0u8; 4096];
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) if out.len() < 65536 => out.extend_from_slice(&buf[..n]),
                Ok(_) => break,
            }
        }
    }
    let timed_out = Instant::now() >= deadline;
    if timed_out {
        let _ = child.kill();
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if timed_out {
        return Err(format!(
            "it did not answer within {}s",
            PROBE_TIMEOUT.as_secs()
        ));
    }
    let text = String::from_utf8_lossy(&out);
    match text.lines().map(str::trim).find(|l| !l.is_empty()) {
        Some(line) if status.success() => Ok(line.to_string()),
        _ => Err(format!(
            "`{} {}` failed ({status})",
            program.display(),
            args.join(" ")
        )),
    }
}

/// A program that some drivers need: present and answering, or why not.
fn program_check(
    check: &'static str,
    found: std::result::Result<PathBuf, String>,
    version_args: &[&str],
    needed_by: Option<&str>,
    purpose: &str,
    install: &str,
) -> Vec<Finding> {
    match found {
        Ok(path) => match version_of(&path, version_args) {
            Ok(version) => vec![ok(check, format!("{version} ({})", path.display()))],
            Err(why) => vec![fail(
                check,
                format!("{}: {why}", path.display()),
                format!("reinstall it: {install}"),
            )],
        },
        Err(why) => match needed_by {
            Some(agent) => vec![fail(
                check,
                format!("{why}; agent {agent} needs it ({purpose})"),
                install.to_string(),
            )],
            None => vec![note(check, format!("{why} (needed only {purpose})"))],
        },
    }
}

fn tmux(ctx: &Ctx) -> Vec<Finding> {
    program_check(
        "tmux",
        which::which("tmux").map_err(|_| "not on PATH".to_string()),
        &["-V"],
        ctx.user_of(&[DriverKind::Tmux]),
        "for --driver tmux and `baton attach`",
        "install tmux (e.g. `apt install tmux`) and put it on PATH",
    )
}

fn claude(ctx: &Ctx) -> Vec<Finding> {
    let given = ctx.claudes.first().cloned();
    let found = match given {
        Some(path) if path.exists() => Ok(path),
        Some(path) => Err(format!(
            "{} (given with --claude) does not exist",
            path.display()
        )),
        None => which::which("claude").map_err(|_| "not on PATH".to_string()),
    };
    program_check(
        "claude",
        found,
        &["--version"],
        ctx.user_of(&[DriverKind::Claude, DriverKind::Tmux]),
        "for --driver claude and --driver tmux",
        "install Claude Code (`npm install -g @anthropic-ai/claude-code`), or give --claude PATH",
    )
}

/// baton's hooks in Claude Code's settings, which the tmux driver depends on.
/// baton's git hooks in the repository of the folder checked: needed when a commit or review
/// agent is configured there.
fn git_hooks(ctx: &Ctx) -> Vec<Finding> {
    use super::git::HookState;
    const CHECK: &str = "git hooks";
    let Some(super::git::Installed {
        folder,
        hooks,
        wanted,
    }) = super::git::state(&ctx.dir)
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

fn claude_hooks(ctx: &Ctx) -> Vec<Finding> {
    const CHECK: &str = "Claude Code hooks";
    let mut files = Vec::new();
    if let Ok(user) = super::install::settings_file(None) {
        files.push((user, "baton install claude".to_string()));
    }
    if let Some(project) = ctx.config.as_ref().ok().and_then(|c| c.project.as_ref()) {
        let dir = project.root.clone();
        if let Ok(file) = super::install::settings_file(Some(&dir)) {
            files.push((
                file,
                format!("baton install claude --project {}", dir.display()),
            ));
        }
    }
    let mut findings = Vec::new();
    let mut complete = None;
    for (file, fix) in &files {
        let hooks = match super::install::installed(file) {
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
fn runners(ctx: &Ctx) -> Vec<Finding> {
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
    let rows = match super::status::rows(store) {
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

fn config(ctx: &Ctx) -> Vec<Finding> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_finding_with_the_fix_and_no_colour_unless_asked() {
        let findings = [
            ok("a", "fine"),
            fail("bb", "broken", "mend it"),
            note("c", "fyi"),
        ];
        let text = render(&findings, false);
        assert_eq!(
            text,
            "✓ a   fine\n✗ bb  broken — fix: mend it\n– c   fyi\n1 problem(s) found\n"
        );
        assert!(!text.contains('\x1b'));
        assert!(render(&findings, true).contains("\x1b[31;1m✗\x1b[0m"));
    }
}

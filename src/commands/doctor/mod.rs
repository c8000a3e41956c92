//! `baton doctor [--json]`: what could be wrong with this setup, one line per finding, each `✓`
//! (fine), `✗` (wrong, with the fix) or `–` (a note: nothing is wrong, but it is worth knowing,
//! e.g. tmux missing while no agent needs it). Exit 0 when nothing is wrong, 1 otherwise.
//!
//! The checks are a list (`CHECKS`): each is a function from what was gathered once (`Ctx`: the
//! state folder, the config, which drivers are in use) to its findings, so one more check is one
//! more entry; they live by what they look at (`machine`, `programs`, `setup`). Doctor only
//! looks: it creates nothing (not even a missing state folder), writes nothing, and every
//! program it runs (`tmux -V`, `claude --version`) is given a few seconds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::config::{Config, ConfigError};
use crate::exit::Exit;
use crate::protocol::{store, AgentPaths, DriverKind, Store};

mod machine;
mod programs;
mod setup;

use machine::{free_space, inotify_limits, state_folder};
use programs::{claude, editor, pass_through_editor, tmux};
use setup::{claude_hooks, config, git_hooks, runners};

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

//! The checks of the programs baton runs or is run by: the editor it passes through to, and
//! tmux and Claude Code, each asked for its version within `PROBE_TIMEOUT`.

use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::{fail, note, ok, Ctx, Finding, PROBE_TIMEOUT};
use crate::poll::Poll;
use crate::protocol::DriverKind;

/// True if `program` (a name on PATH or a path) is this very baton, or the `baton-edit` beside
/// it.
fn is_this_baton(program: &Path) -> bool {
    which::which(program).is_ok_and(|p| crate::editor::is_self(&p))
}

/// What Claude Code and git run on a prompt: `VISUAL`, else `EDITOR`.
pub(super) fn editor(_: &Ctx) -> Vec<Finding> {
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
    let named_baton = Path::new(program)
        .file_name()
        .is_some_and(|n| n == "baton" || n == crate::editor::FRONT);
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
pub(super) fn pass_through_editor(_: &Ctx) -> Vec<Finding> {
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
            // Woken early by a signal, it waits on; at the deadline, it is done.
            let ready = {
                let mut poll = Poll::new();
                let i = poll.add(stdout.as_fd());
                poll.wait_for(i, Some(deadline)).unwrap_or(false)
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

pub(super) fn tmux(ctx: &Ctx) -> Vec<Finding> {
    program_check(
        "tmux",
        which::which("tmux").map_err(|_| "not on PATH".to_string()),
        &["-V"],
        ctx.user_of(&[DriverKind::Tmux]),
        "for --driver tmux and `baton attach`",
        "install tmux (e.g. `apt install tmux`) and put it on PATH",
    )
}

pub(super) fn claude(ctx: &Ctx) -> Vec<Finding> {
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

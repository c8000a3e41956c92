//! Editor mode: `baton FILE`, as Claude Code (Ctrl-G), git and anything that runs `$EDITOR FILE`
//! call it. A prompt that starts with `@agent` is delegated and the answer written into the file;
//! anything else is handed to the real editor by `exec`, so the PID the caller waits on is kept.
//!
//! The invariant of this module: the file is written once, atomically, and only with a complete
//! answer. Every other way out (failure, signal, key, panic) leaves it byte for byte as it was.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::commands::{self, Answer, DETACHED};
use crate::deliver::Request;
use crate::directive;
use crate::exit::{Exit, Failure, Result};
use crate::protocol::State;
use crate::signals::Signals;
use crate::store::{self, AgentPaths, Store};
use crate::term::Tty;
use crate::wait::Pending;

pub struct EditArgs {
    /// The file to edit (the last argument).
    pub file: PathBuf,
    /// Every argument as given, handed unchanged to the real editor on pass-through.
    pub passthrough: Vec<OsString>,
    /// Send the whole prompt to this agent, without a directive.
    pub agent: Option<String>,
    pub timeout: Option<Duration>,
}

pub fn run(args: EditArgs) -> Result<Exit> {
    let inside_agent = std::env::var_os("BATON_AGENT").is_some_and(|v| !v.is_empty());
    if inside_agent {
        // An agent that runs `git commit` must not delegate to itself (or wait on a peer).
        return passthrough(&args.passthrough);
    }
    let original = fs::read(&args.file).map_err(|e| {
        Failure::msg(
            Exit::Usage,
            format!("reading the prompt file {}: {e}", args.file.display()),
        )
    })?;
    let text = String::from_utf8_lossy(&original);
    let prompt = directive::prompt_region(&text);
    let (store, agents, task) = match &args.agent {
        Some(name) => {
            let store = Store::open()?;
            let agents = commands::resolve_agents(&store, std::slice::from_ref(name))?;
            (store, agents, prompt.trim().to_string())
        }
        None => {
            if !directive::may_route(prompt) {
                return passthrough(&args.passthrough);
            }
            let store = Store::open()?;
            let known = |n: &str| store.agent(n).ok().flatten().is_some();
            let Some(d) = directive::parse(prompt, known) else {
                return passthrough(&args.passthrough);
            };
            let agents = commands::resolve_agents(&store, &d.agents)?;
            (store, agents, d.task)
        }
    };
    if task.trim().is_empty() {
        let names: Vec<String> = agents.iter().map(|a| format!("@{}", a.name())).collect();
        return Err(Failure::msg(
            Exit::Usage,
            format!(
                "nothing to send to {}: the prompt is empty",
                names.join(" ")
            ),
        ));
    }
    delegate(&store, &agents, &task, &args)
}

/// Delivers, waits and writes the answer; on a terminal, offers retry / edit / back on failure.
fn delegate(store: &Store, agents: &[AgentPaths], task: &str, args: &EditArgs) -> Result<Exit> {
    let sigs = commands::installed_signals()?;
    let mut tty = Tty::open();
    loop {
        let failure = match attempt(store, agents, task, args.timeout, &sigs, tty.as_mut()) {
            Ok(answers) => match answers.iter().find(|a| a.done.state != State::Ok) {
                None => {
                    crate::test_hooks::pause_point(crate::test_hooks::BEFORE_WRITE);
                    write_answer(&args.file, &answers)?;
                    return Ok(Exit::Ok);
                }
                Some(a) => failure_of(a),
            },
            Err(f) => f,
        };
        let Some(t) = tty.as_mut() else {
            return Err(failure);
        };
        let message = failure.to_string();
        if failure.exit == Exit::Cancelled && !message.starts_with(DETACHED) {
            return Err(failure); // Ctrl-C or a signal: the person wants out now
        }
        if message.starts_with(DETACHED) {
            t.say(&format!("baton: {message}\r\npress any key to go back"));
            let _ = read_choice(t, &sigs);
            return Err(failure);
        }
        let editor = real_editor()
            .map(|e| e[0].clone())
            .unwrap_or_else(|_| "the editor".into());
        t.say(&format!(
            "baton: {message}\r\n[r] retry   [e] edit the prompt in {editor}   [any other key] back (the prompt is unchanged)"
        ));
        match read_choice(t, &sigs) {
            Some(b'r') | Some(b'R') => continue,
            Some(b'e') | Some(b'E') => {
                t.restore();
                return passthrough(&args.passthrough);
            }
            _ => return Err(failure),
        }
    }
}

fn attempt(
    store: &Store,
    agents: &[AgentPaths],
    task: &str,
    timeout: Option<Duration>,
    sigs: &Signals,
    tty: Option<&mut Tty>,
) -> Result<Vec<Answer>> {
    commands::require_live(agents)?;
    let req = Request {
        prompt: task.as_bytes(),
        priority: 5,
        timeout,
    };
    let delivered = commands::deliver_all(store, agents, &req)?;
    let mut pending: Vec<Pending> = commands::pending_for(&delivered, agents);
    commands::await_answers(
        store,
        &mut pending,
        sigs,
        &commands::How {
            deadline: commands::deadline(timeout),
            watch_liveness: true,
            owned: true,
        },
        tty,
    )
}

fn failure_of(a: &Answer) -> Failure {
    let last = String::from_utf8_lossy(&a.answer)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(" (last output: {})", l.trim()))
        .unwrap_or_default();
    Failure::msg(
        a.done.state.exit(),
        format!(
            "agent {} {}: {}{last}",
            a.agent,
            a.done.state.as_str(),
            a.done.error.as_deref().unwrap_or("no reason given")
        ),
    )
}

/// Waits for one key on the terminal; `None` if a signal comes first.
fn read_choice(tty: &mut Tty, sigs: &Signals) -> Option<u8> {
    loop {
        if sigs.take().is_some() {
            return None;
        }
        let mut fds = [
            PollFd::new(sigs.fd(), PollFlags::POLLIN),
            PollFd::new(tty.fd(), PollFlags::POLLIN),
        ];
        let _ = nix::poll::poll(&mut fds, PollTimeout::NONE);
        let key_ready = fds[1].revents().is_some_and(|r| !r.is_empty());
        sigs.drain();
        if key_ready {
            return tty.read_keys().first().copied();
        }
    }
}

/// git's own message and to-do files: there the answer is the content itself (a commit message,
/// a rebase plan), so a lone answer is written without the line that names its agent.
fn is_git_file(file: &Path) -> bool {
    const GIT_FILES: [&str; 7] = [
        "COMMIT_EDITMSG",
        "MERGE_MSG",
        "TAG_EDITMSG",
        "SQUASH_MSG",
        "EDIT_DESCRIPTION",
        "git-rebase-todo",
        "NOTES_EDITMSG",
    ];
    file.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| GIT_FILES.contains(&n))
}

/// The text written into the file: each answer headed by the agent that gave it (but a lone
/// answer into one of git's files is written as it is).
pub fn format_answers(answers: &[Answer], headed: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, a) in answers.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\n");
        }
        if headed || answers.len() > 1 {
            out.extend_from_slice(format!("@{} replied:\n", a.agent).as_bytes());
        }
        let body = a.answer.trim_ascii_end();
        out.extend_from_slice(body);
        out.push(b'\n');
    }
    out
}

/// Replaces the file's content with the answers, atomically, keeping its permissions.
fn write_answer(file: &Path, answers: &[Answer]) -> Result<()> {
    let target = fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let ids: Vec<&str> = answers.iter().map(|a| a.task_id.as_str()).collect();
    let fail = |what: String| {
        Failure::msg(
            Exit::Usage,
            format!(
                "{what}; the prompt is unchanged and the answer is kept: `baton result {}`",
                ids.join(" ")
            ),
        )
    };
    let perms = fs::metadata(&target).map(|m| m.permissions()).ok();
    let mut tmp = tempfile::Builder::new()
        .prefix(".baton-")
        .tempfile_in(dir)
        .map_err(|e| {
            fail(format!(
                "writing the answer next to {}: {e}",
                target.display()
            ))
        })?;
    tmp.write_all(&format_answers(answers, !is_git_file(file)))
        .map_err(|e| {
            fail(format!(
                "writing the answer next to {}: {e}",
                target.display()
            ))
        })?;
    if let Some(p) = perms {
        let _ = fs::set_permissions(tmp.path(), p);
    }
    tmp.persist(&target)
        .map_err(|e| fail(format!("replacing {}: {}", target.display(), e.error)))?;
    Ok(())
}

/// Replaces this process with the real editor on the same arguments (the PID is kept).
pub fn passthrough(args: &[OsString]) -> Result<Exit> {
    let editor = real_editor()?;
    let err = Command::new(&editor[0])
        .args(&editor[1..])
        .args(args)
        .exec();
    Err(Failure::msg(
        Exit::Usage,
        format!("running the editor {}: {err}", editor[0]),
    ))
}

fn is_self(path: &Path) -> bool {
    let me = std::env::current_exe().and_then(fs::canonicalize);
    matches!((fs::canonicalize(path), me), (Ok(a), Ok(b)) if a == b)
}

/// The real editor: `$BATON_EDITOR`, else the configured one, else the first of nvim, vim, vi,
/// nano on PATH. Never baton itself.
pub fn real_editor() -> Result<Vec<String>> {
    let checked = |source: &str, value: &str| -> Result<Vec<String>> {
        let mut parts: Vec<String> = value.split_whitespace().map(String::from).collect();
        let Some(program) = parts.first() else {
            return Err(Failure::msg(Exit::Usage, format!("{source} is empty")));
        };
        let path = which::which(program).map_err(|_| {
            Failure::msg(Exit::Usage, format!("{source} is {value:?}, which names no program; set it to your real editor, e.g. vim"))
        })?;
        if is_self(&path) {
            return Err(Failure::msg(Exit::Usage, format!("{source} is {value:?}, which is baton itself; set it to your real editor, e.g. vim")));
        }
        parts[0] = path.to_string_lossy().into_owned();
        Ok(parts)
    };
    if let Some(v) = std::env::var("BATON_EDITOR")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        return checked("BATON_EDITOR", &v);
    }
    if let Some(v) = configured_editor()? {
        return checked("the editor in config.json", &v);
    }
    for candidate in ["nvim", "vim", "vi", "nano"] {
        if let Ok(path) = which::which(candidate) {
            if !is_self(&path) {
                return Ok(vec![path.to_string_lossy().into_owned()]);
            }
        }
    }
    Err(Failure::msg(
        Exit::Usage,
        "no editor found: set BATON_EDITOR to your editor, e.g. BATON_EDITOR=vim",
    ))
}

/// `editor` from `$BATON_HOME/config.json`, if that file exists.
fn configured_editor() -> Result<Option<String>> {
    #[derive(serde::Deserialize)]
    struct Config {
        editor: Option<String>,
    }
    let Ok(root) = store::default_root() else {
        return Ok(None);
    };
    let config: Option<Config> = crate::protocol::read_json(&root.join("config.json"))
        .map_err(|e| Failure::msg(Exit::Usage, format!("bad config: {e}")))?;
    Ok(config.and_then(|c| c.editor))
}

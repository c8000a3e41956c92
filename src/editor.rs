//! Editor mode: `baton FILE`, as Claude Code (Ctrl-G), git and anything that runs `$EDITOR FILE`
//! call it. A prompt that starts with `@agent` is delegated through the coordinator and the
//! answer written into the file; anything else is handed to the real editor by `exec`, so the
//! PID the caller waits on is kept. An entry point beside the commands: it parses the file and
//! prints, the coordinator delegates.
//!
//! The invariant of this module: the file is written once, atomically, and only with a complete
//! answer. Every other way out (failure, signal, key, panic) leaves it byte for byte as it was.
//! Only regular files are read (a FIFO or a device is refused untouched), and at most
//! `MAX_PROMPT_FILE` bytes of them.

use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use crate::config::Config;
use crate::coordinator::{self, resolve, Caller, Plan};
use crate::directive;
use crate::error::usage;
use crate::exit::{self, Exit};
use crate::poll::Poll;
use crate::protocol::{State, Store, TaskEnd};
use crate::sys::signals::Signals;
use crate::sys::term::Tty;

/// The lines that make baton the editor, for a shell profile: `baton-edit`, which passes a
/// prompt without a directive to the real editor without starting baton. They keep the editor
/// that was set in `BATON_EDITOR`, and can be sourced twice (the second time `VISUAL` is baton's
/// already and `BATON_EDITOR` is left alone).
pub const PROFILE_LINES: &str = r#"case "${VISUAL:-}" in *baton | *baton-edit) ;; *) export BATON_EDITOR="${VISUAL:-${EDITOR:-vi}}" ;; esac
export VISUAL=baton-edit"#;

/// The largest prompt file editor mode reads (16 MiB).
pub const MAX_PROMPT_FILE: u64 = 16 << 20;

pub struct EditArgs {
    /// The file to edit (the last argument).
    pub file: PathBuf,
    /// Every argument as given, handed unchanged to the real editor on pass-through.
    pub passthrough: Vec<OsString>,
    /// Send the whole prompt to this agent, without a directive.
    pub agent: Option<String>,
    pub timeout: Option<Duration>,
}

pub fn run(args: EditArgs) -> anyhow::Result<Exit> {
    let inside_agent = std::env::var_os("BATON_AGENT").is_some_and(|v| !v.is_empty());
    if inside_agent {
        // An agent that runs `git commit` must not delegate to itself (or wait on a peer).
        return passthrough(&args.passthrough);
    }
    let Some(original) = read_prompt_file(&args.file)? else {
        // A file that does not exist yet: the editor creates it, as with any editor.
        return passthrough(&args.passthrough);
    };
    let prompt = directive::prompt_region(&original);
    if args.agent.is_none() && !directive::may_route(prompt) {
        return passthrough(&args.passthrough);
    }
    // Claude Code runs its editor in the project's folder: the same agents as `baton ask`.
    let config = crate::commands::load_config(None)?;
    let store = Store::open()?;
    let known = |n: &str| resolve::is_known(&store, &config, n);
    if args.agent.is_none() && directive::first_name(prompt) == Some(RESULTS) && !known(RESULTS) {
        return results(&store, &config, &args.file);
    }
    let plan = match &args.agent {
        Some(name) => Plan {
            timeout: args.timeout,
            ..Plan::new(vec![name.clone()], prompt.trim_ascii().to_vec())
        },
        None => {
            let d = match directive::parse(prompt, known) {
                Ok(Some(d)) => d,
                Ok(None) => {
                    refuse_a_typo(&store, &config, prompt)?;
                    return passthrough(&args.passthrough);
                }
                Err(why) => return Err(usage(format!("{why}; the prompt is unchanged"))),
            };
            Plan {
                stages: d.stages,
                priority: d.urgent.then_some(0),
                timeout: args.timeout,
                any: d.any,
                wait: !d.background,
                ..Plan::new(Vec::new(), d.task)
            }
        }
    };
    if plan.prompt.trim_ascii().is_empty() {
        let names: Vec<String> = plan.names().map(|a| format!("@{a}")).collect();
        return Err(usage(format!(
            "nothing to send to {}: the prompt is empty",
            names.join(" ")
        )));
    }
    plan.check()?;
    if !plan.wait {
        return background(&store, &config, &plan, &args.file);
    }
    delegate(&store, &config, &plan, &args)
}

/// `@results`: the name that asks for the finished background results instead of an agent
/// (unless an agent of that name is known).
pub const RESULTS: &str = "results";

/// `@results`: every finished background result not seen yet goes into the file, and is marked
/// seen.
fn results(store: &Store, config: &Config, file: &Path) -> anyhow::Result<Exit> {
    let inbox = coordinator::background::results_inbox(store, config);
    let taken = crate::commands::results::take_unseen(store, &inbox)?;
    // Seen only once they are in the file: a failed write gives them back.
    write_file(file, taken.text.as_bytes())?;
    taken.delivered();
    Ok(Exit::Ok)
}

/// `@agent & task`: delivered, and the file gets one line saying who took it, at once.
fn background(store: &Store, config: &Config, plan: &Plan, file: &Path) -> anyhow::Result<Exit> {
    let mut caller = Caller::new(false)?;
    let ends = coordinator::delegate(store, config, plan, &mut caller)?;
    // Stopped by a signal as it was handed over (taken back, or cancelled by the supervisor
    // the signal was passed on to): the file is left as it was, and the end says which.
    if let Some(end) = coordinator::stopped_end(&ends) {
        eprintln!("baton: {}", failure_message(end));
        return Ok(exit::of_state(end.state));
    }
    let who: Vec<String> = ends
        .iter()
        .map(|e| {
            format!(
                "@{} took it in the background (task {})",
                crate::protocol::agent::name_of(&e.agent),
                e.task_id
            )
        })
        .collect();
    let line = format!(
        "{}; its answer will be in @results (`baton results`)\n",
        who.join("; ")
    );
    write_file(file, line.as_bytes())?;
    Ok(Exit::Ok)
}

/// The file's bytes; `None` if it does not exist. Refuses what is not a regular file (a FIFO, a
/// device, a link to one) and files larger than `MAX_PROMPT_FILE`, leaving them untouched.
fn read_prompt_file(file: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    let meta = match fs::metadata(file) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(usage(format!(
                "reading the prompt file {}: {e}",
                file.display()
            )))
        }
    };
    if !meta.is_file() {
        return Err(usage(format!(
            "{} is not a regular file (a FIFO, a device or a folder): baton edits only regular files, and left it untouched",
            file.display()
        )));
    }
    let mut bytes = Vec::new();
    fs::File::open(file)
        .and_then(|f| f.take(MAX_PROMPT_FILE + 1).read_to_end(&mut bytes))
        .map_err(|e| usage(format!("reading the prompt file {}: {e}", file.display())))?;
    if bytes.len() as u64 > MAX_PROMPT_FILE {
        return Err(usage(format!(
            "{} is larger than {} MiB, the most editor mode reads; it was left untouched",
            file.display(),
            MAX_PROMPT_FILE >> 20
        )));
    }
    Ok(Some(bytes))
}

/// `@plannign` one typo away from a known agent is a mistake, not a file mention: refuse it
/// (the prompt stays as it is) rather than open the editor without a word.
fn refuse_a_typo(store: &Store, config: &Config, prompt: &[u8]) -> anyhow::Result<()> {
    let Some(name) = directive::first_name(prompt) else {
        return Ok(());
    };
    let mut agents: Vec<String> = store
        .agent_names()
        .unwrap_or_default()
        .iter()
        .filter_map(|id| resolve::reachable_name(config, id))
        .collect();
    agents.extend(config.effective().iter().map(|d| d.name.clone()));
    match crate::suggest::closest(name, agents.iter().map(String::as_str)) {
        Some(near) => Err(usage(format!(
            "unknown agent @{name}: did you mean @{near}? The prompt is unchanged"
        ))),
        None => Ok(()),
    }
}

/// How one attempt at delegating ended, when it did not deliver an answer.
enum Failed {
    /// A task ended without success.
    Ended(Box<TaskEnd>),
    /// Delegation could not happen.
    Error(anyhow::Error),
}

impl Failed {
    fn message(&self) -> String {
        match self {
            Failed::Ended(end) => failure_message(end),
            Failed::Error(e) => format!("{e:#}"),
        }
    }

    /// Ends the program: the reason on stderr (by `main` for an error), its exit code.
    fn exit(self) -> anyhow::Result<Exit> {
        match self {
            Failed::Ended(end) => {
                eprintln!("baton: {}", failure_message(&end));
                Ok(exit::of_state(end.state))
            }
            Failed::Error(e) => Err(e),
        }
    }
}

/// Delegates, waits and writes the answer; on a terminal, offers retry / edit / back on failure.
fn delegate(store: &Store, config: &Config, plan: &Plan, args: &EditArgs) -> anyhow::Result<Exit> {
    let mut caller = Caller::new(true)?;
    loop {
        let failed = match coordinator::delegate(store, config, plan, &mut caller) {
            // No end at all is no answer: the file is not touched.
            Ok(ends) if ends.is_empty() => {
                Failed::Error(anyhow::anyhow!("the delegation ended without an answer"))
            }
            Ok(mut ends) => match ends.iter().position(|e| !e.is_ok()) {
                Some(i) => Failed::Ended(Box::new(ends.swap_remove(i))),
                None => {
                    crate::test_hooks::pause_point(crate::test_hooks::BEFORE_WRITE);
                    write_answer(&args.file, &ends)?;
                    return Ok(Exit::Ok);
                }
            },
            Err(e) => Failed::Error(e),
        };
        let Caller { sigs, tty } = &mut caller;
        let Some(t) = tty.as_mut() else {
            return failed.exit();
        };
        let message = failed.message();
        match &failed {
            // Ctrl-C or a signal: the person wants out now.
            Failed::Ended(end) if end.state == State::Cancelled => return failed.exit(),
            Failed::Ended(end) if end.state == State::Detached => {
                t.say(&format!("baton: {message}\r\npress any key to go back"));
                let _ = read_choice(t, sigs);
                return failed.exit();
            }
            _ => {}
        }
        let editor = real_editor()
            .map(|e| e[0].clone())
            .unwrap_or_else(|_| "the editor".into());
        t.say(&format!(
            "baton: {message}\r\n[r] retry   [e] edit the prompt in {editor}   [any other key] back (the prompt is unchanged)"
        ));
        match read_choice(t, sigs) {
            Some(b'r') | Some(b'R') => continue,
            Some(b'e') | Some(b'E') => {
                t.restore();
                return passthrough(&args.passthrough);
            }
            _ => return failed.exit(),
        }
    }
}

/// What a failed end says: the agent, the state, the reason and the last line of output.
fn failure_message(end: &TaskEnd) -> String {
    let last = String::from_utf8_lossy(&end.answer)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(" (last output: {})", l.trim()))
        .unwrap_or_default();
    format!(
        "agent {} {}: {}{last}",
        end.agent,
        end.state.as_str(),
        end.error.as_deref().unwrap_or("no reason given")
    )
}

/// Waits for one key on the terminal; `None` if a signal comes first.
fn read_choice(tty: &mut Tty, sigs: &Signals) -> Option<u8> {
    loop {
        if sigs.take().is_some() {
            return None;
        }
        let key_ready = {
            let mut poll = Poll::new();
            poll.add(sigs.fd());
            let key = poll.add(tty.fd());
            let _ = poll.wait(None);
            poll.ready(key)
        };
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
pub fn format_answers(ends: &[TaskEnd], headed: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, end) in ends.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\n");
        }
        if headed || ends.len() > 1 {
            let name = crate::protocol::agent::name_of(&end.agent);
            out.extend_from_slice(format!("@{name} replied:\n").as_bytes());
        }
        out.extend_from_slice(end.answer.trim_ascii_end());
        out.push(b'\n');
    }
    out
}

/// What the answers become in `file`: headed answers; in one of git's files, the answer above
/// git's comment block, which is kept as it was (git strips it when it reads the file back).
fn answer_text(file: &Path, ends: &[TaskEnd]) -> Vec<u8> {
    let answers = format_answers(ends, !is_git_file(file));
    if !is_git_file(file) {
        return answers;
    }
    let Ok(original) = fs::read(file) else {
        return answers;
    };
    let comment = crate::git::comment(&crate::git::entries(Path::new(".")));
    let comment = crate::git::message::comment_for(&comment, &original);
    let (_, block) = crate::git::message::split(&original, &comment);
    crate::git::message::compose(&answers, b"", block)
}

/// Replaces the file's content with the answers, atomically, keeping its permissions. On
/// failure the file is unchanged and the answers stay in their task folders.
fn write_answer(file: &Path, ends: &[TaskEnd]) -> anyhow::Result<()> {
    let ids: Vec<String> = ends.iter().map(|e| e.task_id.to_string()).collect();
    write_file(file, &answer_text(file, ends)).with_context(|| {
        format!(
            "the prompt is unchanged and the answer is kept: `baton result {}`",
            ids.join(" ")
        )
    })
}

/// Replaces the file's content with `bytes`: a temp file in its folder, then rename, keeping the
/// file's permissions. On failure the file is unchanged.
fn write_file(file: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let target = fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let perms = fs::metadata(&target).map(|m| m.permissions()).ok();
    let written = (|| -> std::io::Result<()> {
        let mut tmp = tempfile::Builder::new()
            .prefix(".baton-")
            .tempfile_in(dir)?;
        tmp.write_all(bytes)?;
        if let Some(p) = perms {
            let _ = fs::set_permissions(tmp.path(), p);
        }
        tmp.persist(&target).map_err(|e| e.error)?;
        Ok(())
    })();
    written.with_context(|| format!("writing into {}", target.display()))
}

/// Replaces this process with the real editor on the same arguments (the PID is kept).
pub fn passthrough(args: &[OsString]) -> anyhow::Result<Exit> {
    let editor = real_editor()?;
    let err = Command::new(&editor[0])
        .args(&editor[1..])
        .args(args)
        .exec();
    Err(usage(format!("running the editor {}: {err}", editor[0])))
}

/// The editor-mode program installed beside baton (`src/front`): what `$VISUAL` names.
pub const FRONT: &str = "baton-edit";

/// Whether `path` is the program running now or the `baton-edit` beside it (the same file, by
/// device and inode, whatever links lead to it): either as the editor would call baton again.
pub fn is_self(path: &Path) -> bool {
    let Ok(it) = fs::metadata(path) else {
        return false;
    };
    let me = Path::new("/proc/self/exe");
    let front = fs::read_link(me).ok().map(|exe| exe.with_file_name(FRONT));
    [Some(me.to_path_buf()), front]
        .into_iter()
        .flatten()
        .filter_map(|p| fs::metadata(p).ok())
        .any(|mine| crate::protocol::store::same_file(&it, &mine))
}

/// The real editor: `$BATON_EDITOR`, else the configured one, else the first of nvim, vim, vi,
/// nano on PATH. Never baton itself.
pub fn real_editor() -> anyhow::Result<Vec<String>> {
    let checked = |source: &str, value: &str| -> anyhow::Result<Vec<String>> {
        let mut parts: Vec<String> = value.split_whitespace().map(String::from).collect();
        let Some(program) = parts.first() else {
            return Err(usage(format!("{source} is empty")));
        };
        let path = which::which(program).map_err(|_| {
            usage(format!("{source} is {value:?}, which names no program; set it to your real editor, e.g. vim"))
        })?;
        if is_self(&path) {
            return Err(usage(format!("{source} is {value:?}, which is baton itself; set it to your real editor, e.g. vim")));
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
    if let Some(setting) = crate::commands::load_config(None)?.editor {
        return checked(&format!("`editor` ({})", setting.origin), &setting.value);
    }
    for candidate in ["nvim", "vim", "vi", "nano"] {
        if let Ok(path) = which::which(candidate) {
            if !is_self(&path) {
                return Ok(vec![path.to_string_lossy().into_owned()]);
            }
        }
    }
    Err(usage(
        "no editor found: set BATON_EDITOR to your editor, e.g. BATON_EDITOR=vim",
    ))
}

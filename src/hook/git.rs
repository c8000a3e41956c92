//! git's commit hooks (`hooks/git/`, installed by `baton install git`) call these:
//! - `baton hook git-prepare FILE [SOURCE [COMMIT]]` (prepare-commit-msg): the commit agent
//!   drafts the message from the staged diff (bounded, `git::diff`) and the branch, and the
//!   draft is written into FILE above git's comment block;
//! - `baton hook git-commit-msg FILE` (commit-msg): the review agent reads the message and the
//!   staged diff; an answer whose first non-blank line starts with `REJECT:` rejects it.
//!
//! Their contract with git: nothing here holds up a commit longer than the timeout (default
//! 60 s; plus, for an agent started on demand, its start, which has its own bound), and nothing
//! aborts one except the gate's rejection (and, when configured, its failure). Whatever goes wrong — no agent, an unreachable or failing agent, a timeout,
//! nothing staged, a bad setting — is one line on stderr and the commit goes on. Delegation goes
//! through the coordinator like any other task, so an agent declared `start = "on-demand"` is
//! started. The sh hooks decide the cheap cases (git's own message sources, a rebase) before
//! starting baton; these check them again for callers that run them directly.

use std::fs;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use crate::config::{Config, OnFailure};
use crate::coordinator::{self, Caller, Plan};
use crate::exit::Exit;
use crate::git::{self, diff, message, Settings};
use crate::protocol::Store;

/// The hook kinds of this family.
pub const KINDS: [&str; 2] = ["git-prepare", "git-commit-msg"];

/// The largest message file read (git's messages are small; this bounds a mistake).
const MAX_MESSAGE: u64 = 1 << 20;

/// What an answer starts with to reject a message.
pub const REJECT: &str = "REJECT:";

/// Runs git hook `kind` with git's arguments; `None` if `kind` is not one of `KINDS`.
pub fn run(kind: &str, args: &[String]) -> Option<anyhow::Result<Exit>> {
    match kind {
        "git-prepare" => Some(prepare(args)),
        "git-commit-msg" => Some(commit_msg(args)),
        _ => None,
    }
}

/// One line on stderr, prefixed as baton's.
fn say(line: &str) {
    eprintln!("baton: {}", line.replace('\n', "; "));
}

/// What the hooks know before asking: the settings and, if the config files could be read,
/// the config (else why not).
struct Context {
    settings: Settings,
    config: Result<Config, String>,
    comment: git::Comment,
}

fn context() -> Context {
    let entries = git::entries(Path::new("."));
    let config = crate::commands::load_config(None).map_err(|e| format!("{e:#}"));
    let settings = git::settings(&entries, config.as_ref().ok());
    Context {
        settings,
        config,
        comment: git::comment(&entries),
    }
}

fn message_file(args: &[String], kind: &str, usage: &str) -> anyhow::Result<String> {
    args.first().cloned().ok_or_else(|| {
        crate::error::usage(format!(
            "baton hook {kind} {usage}: git's {} hook runs it with git's arguments",
            if kind == "git-prepare" {
                "prepare-commit-msg"
            } else {
                "commit-msg"
            }
        ))
    })
}

fn prepare(args: &[String]) -> anyhow::Result<Exit> {
    let file = message_file(args, "git-prepare", "MESSAGE-FILE [SOURCE [COMMIT]]")?;
    let source = args.get(1).map(String::as_str).unwrap_or("");
    let commit = args.get(2).map(String::as_str);
    if let Err(why) = draft(context(), &file, source, commit) {
        say(&format!("no draft: {why}; the commit goes on"));
    }
    Ok(Exit::Ok)
}

/// Asks the commit agent for a draft and writes it into `file`. `Ok` also when there is nothing
/// to do; `Err` says why there is no draft.
fn draft(cx: Context, file: &str, source: &str, commit: Option<&str>) -> Result<(), String> {
    let Some(agent) = cx.settings.commit_agent else {
        return cx.config.map(drop); // no commit agent; a broken config is worth saying
    };
    if !source.is_empty() && !cx.settings.draft_for.iter().any(|s| s == source) {
        return Ok(()); // git has a message already (-m, -t, a merge, --amend, …)
    }
    let here = Path::new(".");
    if git::busy(here, false) {
        return Ok(());
    }
    for problem in &cx.settings.problems {
        say(problem);
    }
    let config = cx.config?;
    let name = &agent.value;
    if let Some(why) = inside(name) {
        return Err(why);
    }
    // An amend drafts for the whole commit: its changes against its parent.
    let base = (source == "commit" && commit == Some("HEAD")).then(|| amend_base(here));
    let staged = diff::staged(here, base.as_deref())
        .map_err(|why| format!("reading the staged changes: {why}"))?
        .ok_or("nothing is staged")?;
    let original = read_message(file)?;
    let comment = message::comment_for(&cx.comment, &original);
    let (kept, block) = message::split(&original, &comment);
    let prompt = draft_prompt(&git::branch(here), kept, &comment, &staged);
    git::forget_commit_env();
    let timeout = cx.settings.timeout.value;
    tell_waiting(&format!("@{name} is drafting the commit message"), timeout);
    let answer = ask(&config, name, prompt, timeout)?;
    if answer.trim_ascii().is_empty() {
        return Err(format!("@{name} answered nothing"));
    }
    write_message(file, &message::compose(&answer, kept, block))
}

/// What became of a message at the gate.
enum Verdict {
    Accepted,
    Rejected {
        agent: String,
        reason: String,
    },
    /// Not reviewed, for a reason that is no failure of the review.
    Skipped(String),
}

fn commit_msg(args: &[String]) -> anyhow::Result<Exit> {
    let file = message_file(args, "git-commit-msg", "MESSAGE-FILE")?;
    let cx = context();
    let on_failure = cx.settings.on_failure.value;
    Ok(match review(cx, &file) {
        Ok(Verdict::Accepted) => Exit::Ok,
        Ok(Verdict::Skipped(why)) => {
            say(&format!("no review: {why}; the message is accepted"));
            Exit::Ok
        }
        Ok(Verdict::Rejected { agent, reason }) => {
            say(&format!("@{agent} rejected the commit message: {reason}"));
            say(&format!(
                "the message is kept in {file}: `git commit -e -F {file}` edits it again; `git commit --no-verify` skips the review"
            ));
            Exit::AgentFailed
        }
        Err(why) => failed(on_failure, &why),
    })
}

/// Asks the review agent about the message in `file`. `Err` says why the review failed.
fn review(cx: Context, file: &str) -> Result<Verdict, String> {
    let Some(agent) = cx.settings.review_agent else {
        return cx.config.map(|_| Verdict::Accepted); // no review agent: the gate is open
    };
    let here = Path::new(".");
    if git::busy(here, true) {
        return Ok(Verdict::Accepted);
    }
    for problem in &cx.settings.problems {
        say(problem);
    }
    let config = cx.config?;
    let name = agent.value;
    if let Some(why) = inside(&name) {
        return Ok(Verdict::Skipped(why));
    }
    let original = read_message(file)?;
    let comment = message::comment_for(&cx.comment, &original);
    let text = message::strip(&original, &comment);
    if text.is_empty() {
        return Ok(Verdict::Accepted); // git refuses an empty message itself
    }
    let staged =
        diff::staged(here, None).map_err(|why| format!("reading the staged changes: {why}"))?;
    let prompt = review_prompt(&git::branch(here), &text, staged.as_ref());
    git::forget_commit_env();
    let timeout = cx.settings.timeout.value;
    tell_waiting(&format!("@{name} is reviewing the commit message"), timeout);
    let answer = ask(&config, &name, prompt, timeout)?;
    Ok(match rejection(&answer) {
        Some(reason) => Verdict::Rejected {
            agent: name,
            reason,
        },
        None => Verdict::Accepted,
    })
}

/// On a terminal, says what the commit waits for (and for how long at most).
fn tell_waiting(what: &str, timeout: Duration) {
    if std::io::stderr().is_terminal() {
        say(&format!(
            "{what} (at most {})…",
            crate::sys::time::human(timeout)
        ));
    }
}

/// A review that did not happen: accepted with a warning, or rejected if so configured.
fn failed(on_failure: OnFailure, why: &str) -> Exit {
    match on_failure {
        OnFailure::Accept => {
            say(&format!("no review: {why}; the message is accepted"));
            Exit::Ok
        }
        OnFailure::Reject => {
            say(&format!(
                "the commit is rejected: no review ({why}), and baton.onFailure is reject (`git commit --no-verify` skips the review)"
            ));
            Exit::AgentFailed
        }
    }
}

/// Why not to delegate to `name` from here: the hook runs inside that very agent (an agent
/// baton started that commits), which would wait on itself until the timeout.
fn inside(name: &str) -> Option<String> {
    let me = std::env::var("BATON_AGENT").ok()?;
    is_same(&me, name).then(|| {
        format!(
            "this commit is made inside agent {}, which would wait on itself",
            crate::protocol::agent::name_of(&me)
        )
    })
}

/// True if agent id `me` is agent `name`, or a member of pool `name` (`name-2`).
fn is_same(me: &str, name: &str) -> bool {
    let me = crate::protocol::agent::name_of(me);
    let member = me
        .strip_prefix(name)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    me == name || member
}

/// The commit an amended commit's changes are counted from: its parent, else the empty tree.
fn amend_base(dir: &Path) -> String {
    git::text(dir, &["rev-parse", "-q", "--verify", "HEAD^"])
        .or_else(|_| git::text(dir, &["hash-object", "-t", "tree", "/dev/null"]))
        .unwrap_or_else(|_| "HEAD".into())
}

fn read_message(file: &str) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    fs::File::open(file)
        .and_then(|f| f.take(MAX_MESSAGE + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("reading the message file {file}: {e}"))?;
    if bytes.len() as u64 > MAX_MESSAGE {
        return Err(format!(
            "the message file {file} is larger than {} KiB",
            MAX_MESSAGE >> 10
        ));
    }
    Ok(bytes)
}

/// Replaces the message file atomically (git reads it once the hook exits).
fn write_message(file: &str, text: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let path = Path::new(file);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fail = |e: std::io::Error| format!("writing the draft into {file}: {e}");
    let perms = fs::metadata(path).map(|m| m.permissions()).ok();
    let mut tmp = tempfile::Builder::new()
        .prefix(".baton-")
        .tempfile_in(dir)
        .map_err(fail)?;
    tmp.write_all(text).map_err(fail)?;
    if let Some(p) = perms {
        let _ = fs::set_permissions(tmp.path(), p);
    }
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// Asks `agent` and waits at most `timeout`: its answer, or one line saying why there is none.
fn ask(
    config: &Config,
    agent: &str,
    prompt: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let store = Store::open().map_err(|e| format!("{e:#}"))?;
    let plan = Plan {
        timeout: Some(timeout),
        // The timeout bounds the whole wait: no retries or gate rounds on top of it.
        once: true,
        ..Plan::new(vec![agent.to_string()], prompt)
    };
    let mut caller = Caller::new(false).map_err(|e| format!("{e:#}"))?;
    let mut ends =
        coordinator::delegate(&store, config, &plan, &mut caller).map_err(|e| format!("{e:#}"))?;
    let end = ends.pop().ok_or_else(|| format!("@{agent} gave no end"))?;
    if end.is_ok() {
        Ok(end.answer)
    } else {
        Err(crate::commands::describe(&end))
    }
}

/// The reason in an answer that rejects: its first non-blank line starts with `REJECT:`; the
/// reason is the rest of that line and the lines after it.
pub fn rejection(answer: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(answer);
    let rest = text.trim_start().strip_prefix(REJECT)?;
    let reason = rest.trim();
    Some(if reason.is_empty() {
        "(no reason given)".into()
    } else {
        reason.lines().map(str::trim).collect::<Vec<_>>().join(" ")
    })
}

fn draft_prompt(branch: &str, kept: &[u8], comment: &str, staged: &diff::Staged) -> Vec<u8> {
    let mut p = format!(
        "Write the commit message for the staged changes below. Answer with the message alone: \
         a subject line of at most 72 characters, then, if the change needs one, a blank line \
         and a body wrapped at 72 columns. No Markdown fences, and no line may start with \
         {comment:?} (git removes those lines).\n\nBranch: {branch}\n"
    )
    .into_bytes();
    let kept = kept.trim_ascii();
    if !kept.is_empty() {
        p.extend_from_slice(b"\nThe message so far (it is kept below your draft):\n");
        p.extend_from_slice(kept);
        p.push(b'\n');
    }
    p.push(b'\n');
    p.extend_from_slice(&staged.describe());
    p
}

fn review_prompt(branch: &str, text: &[u8], staged: Option<&diff::Staged>) -> Vec<u8> {
    let mut p = format!(
        "Review this commit message against the staged changes below. If it should not be \
         committed as it is (it does not describe the change, or it is wrong or misleading), \
         answer with a first line that starts with \"{REJECT}\" followed by the reason, in one \
         line. Any other answer accepts the message.\n\nBranch: {branch}\n\nThe message:\n"
    )
    .into_bytes();
    p.extend_from_slice(text);
    p.extend_from_slice(b"\n\n");
    match staged {
        Some(s) => p.extend_from_slice(&s.describe()),
        None => p.extend_from_slice(b"Nothing is staged: the commit changes no file.\n"),
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_follow_the_contract() {
        assert_eq!(
            rejection(b"REJECT: the subject says nothing\n"),
            Some("the subject says nothing".into())
        );
        assert_eq!(
            rejection(b"\n  REJECT:   too vague\nsay which file\n"),
            Some("too vague say which file".into())
        );
        assert_eq!(rejection(b"REJECT:"), Some("(no reason given)".into()));
        assert_eq!(rejection(b"Looks good. REJECT: nothing"), None);
        assert_eq!(rejection(b"reject: lower case accepts"), None);
        assert_eq!(rejection(b""), None);
    }

    #[test]
    fn an_agent_never_waits_on_itself() {
        assert!(is_same("writer", "writer"));
        assert!(is_same("writer.0a1b2c3d", "writer"));
        assert!(is_same("writers-2.0a1b2c3d", "writers"));
        assert!(!is_same("writer-x", "writer"));
        assert!(!is_same("rewriter", "writer"));
    }
}

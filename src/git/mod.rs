//! What baton asks of git, for its git hooks (`hook::git`), `baton install git` and editor mode
//! on git's files: running git, reading its settings, and which agents the hooks delegate to.
//!
//! git runs hooks and the editor in the top folder of the work tree, with an environment that
//! says which repository and which index a commit is about (`GIT_DIR` in a linked worktree,
//! `GIT_INDEX_FILE` for `git commit -a` or `git commit PATH`): git is run here in the caller's
//! folder with that environment, so it sees what the commit sees. `forget_commit_env` takes
//! that environment away before anything long-lived (an agent's runner started on demand) is
//! started from the hook.
//!
//! The parts: `settings` (git config over the `[git]` table of the config files), `diff` (the
//! staged changes, bounded), `message` (git's message files and their comment block).

pub mod diff;
pub mod message;
mod settings;

pub use settings::{settings, Settings, Sourced, DEFAULT_TIMEOUT, SOURCES};

use std::path::Path;
use std::process::{Command, Stdio};

/// `git ARGS` in `dir`: its standard output, or what went wrong (git's own message).
pub fn run(dir: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running git {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(if why.is_empty() {
            format!("git {} failed ({})", args.join(" "), out.status)
        } else {
            why
        })
    }
}

/// `git ARGS` in `dir`, its output as text without the final line end.
pub fn text(dir: &Path, args: &[&str]) -> Result<String, String> {
    run(dir, args).map(|out| {
        String::from_utf8_lossy(&out)
            .trim_end_matches(['\n', '\r'])
            .to_string()
    })
}

/// One setting as git reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Where it was set: `file:.git/config`, `command line:`, …
    pub origin: String,
    /// The key, lower case as git gives it: `baton.commitagent`.
    pub key: String,
    /// `None` for a key written without `= value`.
    pub value: Option<String>,
}

/// Every `baton.*` and `core.comment*` setting git sees in `dir`, in the order git reads them
/// (a later one wins). Not a repository, or no such settings: none.
pub fn entries(dir: &Path) -> Vec<Entry> {
    let out = run(
        dir,
        &[
            "config",
            "-z",
            "--show-origin",
            "--get-regexp",
            r"^(baton\.|core\.comment(char|string)$)",
        ],
    )
    .unwrap_or_default();
    let mut fields = out.split(|&b| b == 0).map(String::from_utf8_lossy);
    let mut found = Vec::new();
    while let (Some(origin), Some(kv)) = (fields.next(), fields.next()) {
        let (key, value) = match kv.split_once('\n') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (kv.to_string(), None),
        };
        found.push(Entry {
            origin: origin.into_owned(),
            key,
            value,
        });
    }
    found
}

/// What marks a comment line in git's message files (`core.commentString`, else
/// `core.commentChar`, whichever git read last; `#` if neither).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Comment {
    Fixed(String),
    /// `auto`: git chose a character the message does not start a line with; read it from the
    /// file (`message::auto_comment`).
    Auto,
}

pub fn comment(entries: &[Entry]) -> Comment {
    let set = entries
        .iter()
        .rev()
        .find(|e| e.key == "core.commentchar" || e.key == "core.commentstring")
        .and_then(|e| e.value.clone())
        .filter(|v| !v.is_empty());
    match set.as_deref() {
        None => Comment::Fixed("#".into()),
        Some("auto") => Comment::Auto,
        Some(v) => Comment::Fixed(v.into()),
    }
}

/// The variables git sets for its hooks and editor that tie a process to this one commit (its
/// repository, index and options). `git rev-parse --local-env-vars` lists the repository's;
/// the editor and the author's identity are the commit's.
pub const COMMIT_ENV: [&str; 22] = [
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_OBJECT_DIRECTORY",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_GRAFT_FILE",
    "GIT_INDEX_FILE",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_REPLACE_REF_BASE",
    "GIT_PREFIX",
    "GIT_INTERNAL_SUPER_PREFIX",
    "GIT_SHALLOW_FILE",
    "GIT_COMMON_DIR",
    "GIT_EDITOR",
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_AUTHOR_DATE",
    "GIT_COMMITTER_DATE",
    "GIT_REFLOG_ACTION",
];

/// Removes the commit's environment from this process, once git has been asked everything: an
/// agent's runner started on demand from here outlives the commit, and must not carry its
/// index or repository (a runner that runs git, for a worktree, would act on them).
pub fn forget_commit_env() {
    for name in COMMIT_ENV {
        // Single-threaded here: the hook has started no thread yet.
        std::env::remove_var(name);
    }
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("GIT_CONFIG_KEY_")
            || name.to_string_lossy().starts_with("GIT_CONFIG_VALUE_")
        {
            std::env::remove_var(name);
        }
    }
}

/// The branch the commit goes on: its name, or `detached HEAD at <abbrev>`.
pub fn branch(dir: &Path) -> String {
    if let Ok(name) = text(dir, &["symbolic-ref", "--short", "-q", "HEAD"]) {
        if !name.is_empty() {
            return name;
        }
    }
    match text(dir, &["rev-parse", "--short", "-q", "--verify", "HEAD"]) {
        Ok(id) if !id.is_empty() => format!("detached HEAD at {id}"),
        _ => "none yet".into(),
    }
}

/// True while git is rebasing (or applying patches with `git am`): then no hook drafts or
/// reviews anything. With `merge`, a merge in progress counts too.
pub fn busy(dir: &Path, merge: bool) -> bool {
    let mut args = vec![
        "rev-parse",
        "--git-path",
        "rebase-merge",
        "--git-path",
        "rebase-apply",
    ];
    if merge {
        args.extend(["--git-path", "MERGE_HEAD"]);
    }
    let Ok(paths) = text(dir, &args) else {
        return false;
    };
    paths.lines().any(|p| {
        let p = dir.join(p);
        p.is_dir() || (p.ends_with("MERGE_HEAD") && p.is_file())
    })
}

/// A config entry as if `.git/config` set it (for tests here and in `settings`).
#[cfg(test)]
pub(crate) fn entry(key: &str, value: &str) -> Entry {
    Entry {
        origin: "file:.git/config".into(),
        key: key.into(),
        value: Some(value.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_comment_string_is_the_last_one_set() {
        assert_eq!(comment(&[]), Comment::Fixed("#".into()));
        assert_eq!(
            comment(&[
                entry("core.commentchar", ";"),
                entry("core.commentstring", "//")
            ]),
            Comment::Fixed("//".into())
        );
        assert_eq!(comment(&[entry("core.commentchar", "auto")]), Comment::Auto);
    }
}

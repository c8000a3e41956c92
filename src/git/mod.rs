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
//! Settings: git config (`baton.commitAgent`, `baton.reviewAgent`, `baton.timeout`,
//! `baton.onFailure`, `baton.draftFor`, at any level git reads) wins over the `[git]` table of
//! the project's `.baton.toml`, which wins over the user's `config.toml`. An empty value turns a
//! setting off, whatever the files below it say.

pub mod diff;
pub mod message;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::config::{Config, OnFailure};

/// How long a hook waits for its agent when nothing says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The sources of a message (the second argument of prepare-commit-msg) that `baton.draftFor`
/// may name; a plain `git commit` (no source) is always drafted for.
pub const SOURCES: [&str; 5] = ["message", "template", "merge", "squash", "commit"];

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

/// The last value of `key` (lower case), with where it was set.
fn last<'a>(entries: &'a [Entry], key: &str) -> Option<&'a Entry> {
    entries.iter().rev().find(|e| e.key == key)
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

/// A setting and where it came from, for messages and `baton install git --check`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sourced<T> {
    pub value: T,
    pub from: String,
}

/// What the hooks do, from git config and the config files.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The agent that drafts messages (prepare-commit-msg).
    pub commit_agent: Option<Sourced<String>>,
    /// The agent that reviews them (commit-msg).
    pub review_agent: Option<Sourced<String>>,
    pub timeout: Sourced<Duration>,
    /// What the gate does when the review fails or times out.
    pub on_failure: Sourced<OnFailure>,
    /// Sources of a message besides a plain commit that the commit agent drafts for.
    pub draft_for: Vec<String>,
    /// Settings that could not be used, each one line (the default is used instead).
    pub problems: Vec<String>,
}

fn from_git(e: &Entry) -> String {
    let origin = e.origin.strip_prefix("file:").unwrap_or(&e.origin);
    let origin = if origin.is_empty() || origin == "command line:" {
        "the command line".to_string()
    } else {
        origin.to_string()
    };
    format!("git config {} in {origin}", display_key(&e.key))
}

/// `baton.commitagent` as the README writes it: `baton.commitAgent`.
fn display_key(key: &str) -> &str {
    const NAMES: [&str; 5] = [
        "baton.commitAgent",
        "baton.reviewAgent",
        "baton.timeout",
        "baton.onFailure",
        "baton.draftFor",
    ];
    NAMES
        .iter()
        .find(|n| n.eq_ignore_ascii_case(key))
        .copied()
        .unwrap_or(key)
}

/// The settings in effect: git config over `config` (the files, if they could be read).
pub fn settings(entries: &[Entry], config: Option<&Config>) -> Settings {
    let mut problems = Vec::new();
    let git = config.map(|c| &c.git);
    let agent =
        |key: &str, file: Option<&crate::config::Setting<String>>, problems: &mut Vec<String>| {
            if let Some(e) = last(entries, key) {
                let name = e.value.clone().unwrap_or_default();
                if name.is_empty() {
                    return None; // turned off here, whatever the files say
                }
                if let Err(err) = crate::protocol::agent::validate_name(&name) {
                    problems.push(format!("{}: {err}; it is ignored", from_git(e)));
                    return None;
                }
                return Some(Sourced {
                    value: name,
                    from: from_git(e),
                });
            }
            file.filter(|s| !s.value.is_empty()).map(|s| Sourced {
                value: s.value.clone(),
                from: s.origin.to_string(),
            })
        };
    let commit_agent = agent(
        "baton.commitagent",
        git.and_then(|g| g.commit_agent.as_ref()),
        &mut problems,
    );
    let review_agent = agent(
        "baton.reviewagent",
        git.and_then(|g| g.review_agent.as_ref()),
        &mut problems,
    );
    let file_timeout = git.and_then(|g| g.timeout.as_ref()).map(|s| Sourced {
        value: s.value,
        from: s.origin.to_string(),
    });
    let default_timeout = || Sourced {
        value: DEFAULT_TIMEOUT,
        from: "the default".into(),
    };
    let timeout = match last(entries, "baton.timeout") {
        Some(e) => match crate::sys::time::parse_duration(e.value.as_deref().unwrap_or("")) {
            Ok(d) => Sourced {
                value: d,
                from: from_git(e),
            },
            Err(why) => {
                problems.push(format!("{}: {why}; using {}", from_git(e), "the default"));
                file_timeout.unwrap_or_else(default_timeout)
            }
        },
        None => file_timeout.unwrap_or_else(default_timeout),
    };
    let file_on_failure = git.and_then(|g| g.on_failure.as_ref()).map(|s| Sourced {
        value: s.value,
        from: s.origin.to_string(),
    });
    let default_on_failure = || Sourced {
        value: OnFailure::Accept,
        from: "the default".into(),
    };
    let on_failure = match last(entries, "baton.onfailure") {
        Some(e) => match e.value.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("accept") => Sourced {
                value: OnFailure::Accept,
                from: from_git(e),
            },
            Some("reject") => Sourced {
                value: OnFailure::Reject,
                from: from_git(e),
            },
            _ => {
                problems.push(format!(
                    "{}: expected accept or reject, found {:?}; it is ignored",
                    from_git(e),
                    e.value.as_deref().unwrap_or("")
                ));
                file_on_failure.unwrap_or_else(default_on_failure)
            }
        },
        None => file_on_failure.unwrap_or_else(default_on_failure),
    };
    let mut draft_for = Vec::new();
    if let Some(e) = last(entries, "baton.draftfor") {
        for word in e.value.as_deref().unwrap_or("").split_whitespace() {
            if SOURCES.contains(&word) {
                draft_for.push(word.to_string());
            } else {
                problems.push(format!(
                    "{}: {word:?} is not a source; expected some of {}, separated by spaces",
                    from_git(e),
                    SOURCES.join(" ")
                ));
            }
        }
    }
    Settings {
        commit_agent,
        review_agent,
        timeout,
        on_failure,
        draft_for,
        problems,
    }
}

/// The variables git sets for its hooks and editor that tie a process to this one commit (its
/// repository, index and options). `git rev-parse --local-env-vars` lists the repository's;
/// the editor and the author's identity are the commit's.
const COMMIT_ENV: [&str; 22] = [
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: &str) -> Entry {
        Entry {
            origin: "file:.git/config".into(),
            key: key.into(),
            value: Some(value.into()),
        }
    }

    #[test]
    fn git_config_wins_and_an_empty_value_turns_a_setting_off() {
        let mut config = Config::default();
        config.git.commit_agent = Some(crate::config::Setting {
            value: "from-file".into(),
            origin: crate::config::Origin {
                file: "/p/.baton.toml".into(),
                line: 2,
                column: 16,
            },
        });
        config.git.review_agent = config.git.commit_agent.clone();
        let s = settings(&[entry("baton.commitagent", "writer")], Some(&config));
        assert_eq!(s.commit_agent.as_ref().unwrap().value, "writer");
        assert!(s.commit_agent.unwrap().from.contains("baton.commitAgent"));
        assert_eq!(s.review_agent.as_ref().unwrap().value, "from-file");
        assert_eq!(s.review_agent.unwrap().from, "/p/.baton.toml:2:16");
        let off = settings(&[entry("baton.commitagent", "")], Some(&config));
        assert!(off.commit_agent.is_none());
    }

    #[test]
    fn bad_values_are_reported_and_defaults_used() {
        let s = settings(
            &[
                entry("baton.timeout", "soon"),
                entry("baton.onfailure", "maybe"),
                entry("baton.draftfor", "commit amend"),
                entry("baton.reviewagent", "Not A Name"),
            ],
            None,
        );
        assert_eq!(s.timeout.value, DEFAULT_TIMEOUT);
        assert_eq!(s.on_failure.value, OnFailure::Accept);
        assert_eq!(s.draft_for, ["commit"]);
        assert!(s.review_agent.is_none());
        assert_eq!(s.problems.len(), 4, "{:?}", s.problems);
    }

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

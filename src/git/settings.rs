//! The settings of baton's git hooks, each from the first place that sets it: git config (at any
//! level git reads: `-c`, the repository's, the global one; the last value wins), else the
//! `[git]` table of the config files (the project's over the user's), else the default. An
//! empty agent name in git config turns that hook off whatever the files say. A value that
//! cannot be used is reported (one line) and the next place's value used instead.

use std::time::Duration;

use super::Entry;
use crate::config::{Config, OnFailure, Setting};

/// How long a hook waits for its agent when nothing says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The sources of a message (the second argument of prepare-commit-msg) that `baton.draftFor`
/// may name; a plain `git commit` (no source) is always drafted for.
pub const SOURCES: [&str; 5] = ["message", "template", "merge", "squash", "commit"];

/// A setting and where it came from, for messages and `baton install git --check`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sourced<T> {
    pub value: T,
    pub from: String,
}

/// What the hooks do.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The agent that drafts messages (prepare-commit-msg).
    pub commit_agent: Option<Sourced<String>>,
    /// The agent that reviews them (commit-msg).
    pub review_agent: Option<Sourced<String>>,
    pub timeout: Sourced<Duration>,
    /// What the gate does when the review fails or times out.
    pub on_failure: Sourced<OnFailure>,
    /// Sources of a message besides a plain commit that the commit agent drafts for (git
    /// config only: the sh hook reads it without starting baton).
    pub draft_for: Vec<String>,
    /// Settings that could not be used, each one line.
    pub problems: Vec<String>,
}

/// The settings in effect: git config over `config` (the files, if they could be read).
pub fn settings(entries: &[Entry], config: Option<&Config>) -> Settings {
    let mut problems = Vec::new();
    let file = config.map(|c| &c.git);
    let agent = |key, set: Option<&Setting<String>>, problems: &mut Vec<String>| {
        let set = set.map(|s| Setting {
            value: Some(s.value.clone()).filter(|v| !v.is_empty()),
            origin: s.origin.clone(),
        });
        let chosen = layered(entries, key, parse_agent, set.as_ref(), None, problems);
        chosen.value.map(|value| Sourced {
            value,
            from: chosen.from,
        })
    };
    let commit_agent = agent(
        "baton.commitagent",
        file.and_then(|g| g.commit_agent.as_ref()),
        &mut problems,
    );
    let review_agent = agent(
        "baton.reviewagent",
        file.and_then(|g| g.review_agent.as_ref()),
        &mut problems,
    );
    let timeout = layered(
        entries,
        "baton.timeout",
        crate::sys::time::parse_duration,
        file.and_then(|g| g.timeout.as_ref()),
        DEFAULT_TIMEOUT,
        &mut problems,
    );
    let on_failure = layered(
        entries,
        "baton.onfailure",
        parse_on_failure,
        file.and_then(|g| g.on_failure.as_ref()),
        OnFailure::Accept,
        &mut problems,
    );
    let draft_for = draft_for(entries, &mut problems);
    Settings {
        commit_agent,
        review_agent,
        timeout,
        on_failure,
        draft_for,
        problems,
    }
}

/// One setting: git config's last value of `key` (lower case, as git gives it), else the
/// file's, else `default`. A git value that `parse` refuses is a problem, and is passed over.
fn layered<T: Clone>(
    entries: &[Entry],
    key: &str,
    parse: impl Fn(&str) -> Result<T, String>,
    file: Option<&Setting<T>>,
    default: T,
    problems: &mut Vec<String>,
) -> Sourced<T> {
    if let Some(e) = entries.iter().rev().find(|e| e.key == key) {
        match parse(e.value.as_deref().unwrap_or("")) {
            Ok(value) => {
                return Sourced {
                    value,
                    from: from_git(e),
                }
            }
            Err(why) => problems.push(format!("{}: {why}; it is ignored", from_git(e))),
        }
    }
    match file {
        Some(s) => Sourced {
            value: s.value.clone(),
            from: s.origin.to_string(),
        },
        None => Sourced {
            value: default,
            from: "the default".into(),
        },
    }
}

/// An agent's name, or nothing for "" (the hook is off).
fn parse_agent(v: &str) -> Result<Option<String>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    crate::protocol::agent::validate_name(v).map_err(|e| e.to_string())?;
    Ok(Some(v.to_string()))
}

fn parse_on_failure(v: &str) -> Result<OnFailure, String> {
    match v.to_ascii_lowercase().as_str() {
        "accept" => Ok(OnFailure::Accept),
        "reject" => Ok(OnFailure::Reject),
        _ => Err(format!("expected accept or reject, found {v:?}")),
    }
}

/// `baton.draftFor`: the sources named, each known one (the others are problems).
fn draft_for(entries: &[Entry], problems: &mut Vec<String>) -> Vec<String> {
    let Some(e) = entries.iter().rev().find(|e| e.key == "baton.draftfor") else {
        return Vec::new();
    };
    let mut sources = Vec::new();
    for word in e.value.as_deref().unwrap_or("").split_whitespace() {
        if SOURCES.contains(&word) {
            sources.push(word.to_string());
        } else {
            problems.push(format!(
                "{}: {word:?} is not a source; expected some of {}, separated by spaces",
                from_git(e),
                SOURCES.join(" ")
            ));
        }
    }
    sources
}

/// "git config baton.commitAgent in .git/config", for messages.
fn from_git(e: &Entry) -> String {
    let origin = e.origin.strip_prefix("file:").unwrap_or(&e.origin);
    let origin = if origin.is_empty() || origin == "command line:" {
        "the command line"
    } else {
        origin
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::entry;

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
}

//! The `[git]` table of a config file: which agents baton's git hooks delegate to, how long they
//! wait, and what the commit-msg gate does when the review fails. git config (`baton.*`) wins
//! over it where both are set (`crate::git::settings`); a project's table wins over the user's,
//! key by key.

use std::time::Duration;

use super::Setting;

/// What the commit-msg gate does with a review that failed, timed out or could not be asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFailure {
    /// The message is accepted, with a warning (the default).
    Accept,
    /// The commit is aborted, saying why.
    Reject,
}

impl OnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Accept => "accept",
            OnFailure::Reject => "reject",
        }
    }
}

/// The keys of `[git]`.
pub const GIT_KEYS: [&str; 4] = ["commit_agent", "review_agent", "timeout", "on_failure"];

/// What one file's `[git]` says (an empty agent name turns that hook off).
#[derive(Clone, Debug, Default)]
pub struct GitConfig {
    pub commit_agent: Option<Setting<String>>,
    pub review_agent: Option<Setting<String>>,
    pub timeout: Option<Setting<Duration>>,
    pub on_failure: Option<Setting<OnFailure>>,
}

impl GitConfig {
    /// Each key that is set, as `git.key = value`, with where it was set (for `config show`).
    pub fn lines(&self) -> Vec<(String, &super::Origin)> {
        let mut out = Vec::new();
        for (key, s) in [
            ("commit_agent", &self.commit_agent),
            ("review_agent", &self.review_agent),
        ] {
            if let Some(s) = s {
                out.push((format!("git.{key} = {:?}", s.value), &s.origin));
            }
        }
        if let Some(s) = &self.timeout {
            let human = crate::sys::time::human(s.value);
            out.push((format!("git.timeout = {human:?}"), &s.origin));
        }
        if let Some(s) = &self.on_failure {
            out.push((
                format!("git.on_failure = {:?}", s.value.as_str()),
                &s.origin,
            ));
        }
        out
    }

    /// This table (a later file's) over `under` (an earlier file's), key by key.
    pub fn over(self, under: GitConfig) -> GitConfig {
        GitConfig {
            commit_agent: self.commit_agent.or(under.commit_agent),
            review_agent: self.review_agent.or(under.review_agent),
            timeout: self.timeout.or(under.timeout),
            on_failure: self.on_failure.or(under.on_failure),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> (super::super::FileConfig, Vec<super::super::Located>) {
        super::super::parse::parse(Path::new("/p/.baton.toml"), text, None)
    }

    #[test]
    fn the_git_table_reads() {
        let (c, errors) = parse(
            "[git]\ncommit_agent = \"writer\"\nreview_agent = \"\"\ntimeout = \"90s\"\non_failure = \"reject\"\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let agent = c.git.commit_agent.unwrap();
        assert_eq!(agent.value, "writer");
        assert_eq!((agent.origin.line, agent.origin.column), (2, 16));
        assert_eq!(c.git.review_agent.unwrap().value, "");
        assert_eq!(c.git.timeout.unwrap().value, Duration::from_secs(90));
        assert_eq!(c.git.on_failure.unwrap().value, OnFailure::Reject);
    }

    #[test]
    fn every_error_in_the_git_table_has_its_place() {
        let (_, errors) = parse(
            "[git]\ncommit_agent = \"Writer!\"\ntimeout = 5\non_failure = \"maybe\"\nreveiw_agent = \"r\"\n",
        );
        let lines: Vec<String> = errors
            .iter()
            .map(|e| format!("{}:{} {}", e.origin.line, e.origin.column, e.message))
            .collect();
        assert_eq!(errors.len(), 4, "{lines:#?}");
        assert!(lines
            .iter()
            .any(|l| l.starts_with("2:16") && l.contains("git.commit_agent")));
        assert!(lines
            .iter()
            .any(|l| l.starts_with("3:11") && l.contains("duration")));
        assert!(lines
            .iter()
            .any(|l| l.starts_with("4:14") && l.contains("\"reject\"")));
        assert!(lines
            .iter()
            .any(|l| l.starts_with("5:16") && l.contains("did you mean `review_agent`")));
        let (_, errors) = parse("git = 3\n");
        assert!(errors[0].message.contains("expected a table"), "{errors:?}");
    }

    #[test]
    fn the_project_wins_key_by_key() {
        let (user, _) = parse("[git]\ncommit_agent = \"a\"\ntimeout = \"5s\"\n");
        let (project, _) = parse("[git]\ncommit_agent = \"b\"\n");
        let both = project.git.over(user.git);
        assert_eq!(both.commit_agent.unwrap().value, "b");
        assert_eq!(both.timeout.unwrap().value, Duration::from_secs(5));
    }
}

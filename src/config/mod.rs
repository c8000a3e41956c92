//! The team, declared once: the user's config file (`$BATON_CONFIG`, else
//! `$XDG_CONFIG_HOME/baton/config.toml`, else `~/.config/baton/config.toml`) and the project's
//! `.baton.toml`, found by walking up from the caller's folder. The project's settings override
//! the user's; an agent or pool declared in the project file belongs to that project.
//!
//! A config with an error never half-applies: loading fails with every error found, each
//! naming its file, line and column. A config file (or the file a link points to) must be owned
//! by you (or root) and not writable by group or others: it says which commands run.

mod git;
mod parse;

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::protocol::DriverKind;

pub use git::{GitConfig, OnFailure};
pub use parse::{FileConfig, MAX_RETRIES};

/// Where something was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// A setting and where it came from.
#[derive(Clone, Debug)]
pub struct Setting<T> {
    pub value: T,
    pub origin: Origin,
}

/// One error in a config file.
#[derive(Clone, Debug)]
pub struct Located {
    pub origin: Origin,
    pub message: String,
}

/// Every error found in the config files.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub errors: Vec<Located>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.origin, e.message))
            .collect();
        write!(f, "bad config: {}", lines.join("\n"))
    }
}

/// A project: the folder that holds a `.baton.toml`, and the short id its agents carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Project {
    pub root: PathBuf,
    pub id: String,
}

impl Project {
    pub fn new(root: PathBuf) -> Project {
        // FNV-1a, 32 bits of it: enough to tell a person's projects apart.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in root.as_os_str().as_encoded_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Project {
            id: format!("{:08x}", (h ^ (h >> 32)) as u32),
            root,
        }
    }

    /// The name its agent `name` has in the state folder: `name.<id>`.
    pub fn agent_id(&self, name: &str) -> String {
        format!("{name}.{}", self.id)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// A task for the agent starts its runner if it is not running.
    OnDemand,
    /// Only `baton agent start` (or `baton up`) starts it.
    Manual,
}

/// An `[agent.NAME]` or a `[pool.NAME]`.
#[derive(Clone, Debug)]
pub struct Decl {
    pub name: String,
    /// A pool's `max` (its members run at most this many at once); `None` for an agent.
    pub pool_max: Option<u32>,
    pub driver: DriverKind,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    pub pass_env: Vec<String>,
    pub timeout: Option<Duration>,
    pub priority: Option<u8>,
    pub start: Start,
    pub worktree: bool,
    pub description: Option<String>,
    /// A failed task is delivered again at most this many more times.
    pub retries: Option<u32>,
    /// The done-gate its answers must pass (`sh -c` in its folder).
    pub gate: Option<String>,
    /// How many times the gate may send an answer back.
    pub gate_rounds: Option<u32>,
    /// The project that declared it (`None`: the user's file).
    pub project: Option<Project>,
    pub origin: Origin,
}

impl Decl {
    fn new(name: &str, origin: Origin, folder: &Path, project: Option<&Project>) -> Decl {
        Decl {
            name: name.into(),
            pool_max: None,
            driver: DriverKind::Shell,
            command: Vec::new(),
            args: Vec::new(),
            cwd: folder.to_path_buf(),
            env: Vec::new(),
            pass_env: Vec::new(),
            timeout: None,
            priority: None,
            start: Start::OnDemand,
            worktree: false,
            description: None,
            retries: None,
            gate: None,
            gate_rounds: None,
            project: project.cloned(),
            origin,
        }
    }

    /// The id of the agent it declares (or of member `n` of the pool it declares) in the
    /// state folder: its name, with its project's id for a project's.
    pub fn agent_id(&self, member: Option<u32>) -> String {
        let name = match member {
            Some(n) => format!("{}-{n}", self.name),
            None => self.name.clone(),
        };
        match &self.project {
            Some(p) => p.agent_id(&name),
            None => name,
        }
    }

    pub fn is_pool(&self) -> bool {
        self.pool_max.is_some()
    }

    /// "agent planning" / "pool coding", for messages.
    pub fn kind(&self) -> &'static str {
        if self.is_pool() {
            "pool"
        } else {
            "agent"
        }
    }
}

/// The effective config for a folder: the user's file, then the project's over it.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// The files read, user's first.
    pub files: Vec<PathBuf>,
    pub project: Option<Project>,
    pub editor: Option<Setting<String>>,
    pub max_concurrent: Option<Setting<u32>>,
    pub default_timeout: Option<Setting<Duration>>,
    /// How long agent mail is kept (`baton gc` purges older messages); 24 h if unset.
    pub message_retention: Option<Setting<Duration>>,
    /// Every declaration; a project's shadows the user's of the same name.
    pub decls: Vec<Decl>,
    /// `[git]`: the git hooks' agents and limits.
    pub git: GitConfig,
}

impl Config {
    /// The declaration named `name` (the project's, else the user's).
    pub fn decl(&self, name: &str) -> Option<&Decl> {
        let of = |project: bool| {
            self.decls
                .iter()
                .find(|d| d.name == name && d.project.is_some() == project)
        };
        of(true).or_else(|| of(false))
    }

    /// The declarations in effect (shadowed ones left out), in name order.
    pub fn effective(&self) -> Vec<&Decl> {
        let mut out: Vec<&Decl> = self
            .decls
            .iter()
            .filter(|d| self.decl(&d.name).is_some_and(|e| std::ptr::eq(e, *d)))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The pool a member name (`coding-2`) belongs to, with the member's number.
    pub fn pool_member(&self, name: &str) -> Option<(&Decl, u32)> {
        let (pool, n) = name.rsplit_once('-')?;
        let n: u32 = n.parse().ok()?;
        let decl = self.decl(pool).filter(|d| d.is_pool())?;
        (1..=decl.pool_max.unwrap_or(0))
            .contains(&n)
            .then_some((decl, n))
    }
}

/// The user's config file, if there is one. `BATON_CONFIG` names it explicitly (it must exist).
pub fn user_file() -> Result<Option<PathBuf>, ConfigError> {
    if let Some(named) = std::env::var_os("BATON_CONFIG").filter(|v| !v.is_empty()) {
        let path = PathBuf::from(named);
        if !path.exists() {
            return Err(single(
                &path,
                "BATON_CONFIG names this file, which does not exist",
            ));
        }
        return Ok(Some(path));
    }
    let dir = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    Ok(dir
        .map(|d| d.join("baton/config.toml"))
        .filter(|p| p.exists()))
}

/// The project file for `cwd`: the first `.baton.toml` in `cwd` or a folder above it.
pub fn project_file(cwd: &Path) -> Option<PathBuf> {
    cwd.ancestors()
        .map(|d| d.join(".baton.toml"))
        .find(|p| std::fs::symlink_metadata(p).is_ok())
}

fn single(path: &Path, message: &str) -> ConfigError {
    ConfigError {
        errors: vec![Located {
            origin: Origin {
                file: path.to_path_buf(),
                line: 1,
                column: 1,
            },
            message: message.into(),
        }],
    }
}

/// Reads a config file, refusing one that someone else could have written.
fn read_trusted(path: &Path) -> Result<String, ConfigError> {
    let me = nix::unistd::geteuid().as_raw();
    let link = std::fs::symlink_metadata(path)
        .map_err(|e| single(path, &format!("cannot read it: {e}")))?;
    let target =
        std::fs::metadata(path).map_err(|e| single(path, &format!("cannot read it: {e}")))?;
    for (what, meta) in [("the link", &link), ("the file", &target)] {
        if meta.uid() != me && meta.uid() != 0 {
            return Err(single(
                path,
                &format!(
                    "refusing it: {what} is owned by uid {}, not by you",
                    meta.uid()
                ),
            ));
        }
        if !meta.file_type().is_symlink() && meta.mode() & 0o022 != 0 {
            return Err(single(
                path,
                &format!(
                    "refusing it: {what} is writable by group or others (`chmod go-w {}`)",
                    path.display()
                ),
            ));
        }
    }
    std::fs::read_to_string(path).map_err(|e| single(path, &format!("cannot read it: {e}")))
}

/// The effective config for `cwd` (an absolute folder).
pub fn load(cwd: &Path) -> Result<Config, ConfigError> {
    let mut config = Config::default();
    let mut errors = Vec::new();
    let mut files: Vec<(PathBuf, Option<Project>)> = Vec::new();
    if let Some(user) = user_file()? {
        files.push((user, None));
    }
    if let Some(file) = project_file(cwd) {
        let root = parse::folder_of(&file);
        files.push((file, Some(Project::new(root))));
    }
    for (file, project) in files {
        let text = match read_trusted(&file) {
            Ok(t) => t,
            Err(e) => {
                errors.extend(e.errors);
                continue;
            }
        };
        let (read, found) = parse::parse(&file, &text, project.as_ref());
        errors.extend(found);
        config.editor = read.editor.or(config.editor);
        config.max_concurrent = read.max_concurrent.or(config.max_concurrent);
        config.default_timeout = read.default_timeout.or(config.default_timeout);
        config.message_retention = read.message_retention.or(config.message_retention);
        config.decls.extend(read.decls);
        config.git = read.git.over(std::mem::take(&mut config.git));
        if project.is_some() {
            config.project = project;
        }
        config.files.push(file);
    }
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError { errors })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> (FileConfig, Vec<Located>) {
        parse::parse(Path::new("/p/.baton.toml"), text, None)
    }

    #[test]
    fn a_complete_file_reads() {
        let (c, errors) = parse_text(
            r#"
max_concurrent = 3
default_timeout = "10m"
[agent.planning]
driver = "claude"
args = ["--append-system-prompt", "You plan."]
description = "plans"
[agent.tests]
cwd = "sub"
env = { FOO = "bar" }
worktree = true
start = "manual"
[pool.coding]
driver = "tmux"
command = ["claude"]
max = 3
"#,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(c.max_concurrent.unwrap().value, 3);
        assert_eq!(c.default_timeout.unwrap().value, Duration::from_secs(600));
        assert_eq!(c.decls.len(), 3);
        let tests = c.decls.iter().find(|d| d.name == "tests").unwrap();
        assert_eq!(tests.cwd, Path::new("/p/sub"));
        assert_eq!(tests.env, [("FOO".to_string(), "bar".to_string())]);
        assert_eq!(tests.start, Start::Manual);
        let coding = c.decls.iter().find(|d| d.name == "coding").unwrap();
        assert_eq!(coding.pool_max, Some(3));
    }

    #[test]
    fn every_error_is_found_with_its_line_and_column() {
        let (_, errors) = parse_text(
            "max_concurent = 3\n[agent.a]\ndriver = \"bash\"\ntimeout = \"soon\"\n[pool.p]\nmax = 0\ncolour = 1\n",
        );
        let lines: Vec<String> = errors
            .iter()
            .map(|e| format!("{}:{} {}", e.origin.line, e.origin.column, e.message))
            .collect();
        assert_eq!(errors.len(), 5, "{lines:#?}");
        assert!(
            lines[0].starts_with("1:") && lines[0].contains("did you mean `max_concurrent`"),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("3:10") && l.contains("\"shell\"")),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("4:11") && l.contains("invalid duration")),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("6:7") && l.contains("from 1 to 99")),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("7:10") && l.contains("pool.p.colour")),
            "{lines:#?}"
        );
    }

    #[test]
    fn a_syntax_error_has_its_position() {
        let (_, errors) = parse_text("[agent.a]\ndriver = \n");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].origin.line, 2);
    }

    #[test]
    fn project_ids_are_stable_and_distinct() {
        let a = Project::new(PathBuf::from("/src/shop"));
        let b = Project::new(PathBuf::from("/src/blog"));
        assert_eq!(a.id.len(), 8);
        assert_ne!(a.id, b.id);
        assert_eq!(a, Project::new(PathBuf::from("/src/shop")));
        assert_eq!(a.agent_id("planning"), format!("planning.{}", a.id));
    }
}

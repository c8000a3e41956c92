//! One config file, TOML, read with the `toml` crate into values that keep where they were
//! written, then checked key by key, so that every error is found at once and each names its
//! file, line and column and what was expected.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::{Spanned, Value};

use super::git::{GitConfig, OnFailure, GIT_KEYS};
use super::{Decl, Located, Origin, Project, Setting, Start};
use crate::protocol::DriverKind;

type Entry = Spanned<BTreeMap<String, Spanned<Value>>>;

/// The most retries (and gate rounds) a task may have.
pub const MAX_RETRIES: i64 = 10;

/// The tables that hold declarations (their keys are checked below).
#[derive(Deserialize, Default)]
struct Sections {
    #[serde(default)]
    agent: BTreeMap<String, Entry>,
    #[serde(default)]
    pool: BTreeMap<String, Entry>,
}

/// What one file says.
#[derive(Default)]
pub struct FileConfig {
    pub editor: Option<Setting<String>>,
    pub max_concurrent: Option<Setting<u32>>,
    pub default_timeout: Option<Setting<Duration>>,
    pub message_retention: Option<Setting<Duration>>,
    pub decls: Vec<Decl>,
    pub git: GitConfig,
}

const TOP_KEYS: [&str; 7] = [
    "editor",
    "max_concurrent",
    "default_timeout",
    "message_retention",
    "agent",
    "pool",
    "git",
];
const DECL_KEYS: [&str; 14] = [
    "driver",
    "command",
    "args",
    "cwd",
    "env",
    "pass_env",
    "timeout",
    "priority",
    "start",
    "worktree",
    "description",
    "retries",
    "gate",
    "gate_rounds",
];

/// Reads the text of `file` (whose folder relative `cwd`s are resolved against), belonging to
/// `project` (or the user, if `None`). Returns what it says and every error found.
pub fn parse(file: &Path, text: &str, project: Option<&Project>) -> (FileConfig, Vec<Located>) {
    let mut p = Parser {
        file,
        text,
        errors: Vec::new(),
    };
    let mut out = FileConfig::default();
    let top: BTreeMap<String, Spanned<Value>> = match toml::from_str(text) {
        Ok(top) => top,
        Err(e) => {
            p.error(e.span().unwrap_or(0..0), e.message().to_string());
            return (out, p.errors);
        }
    };
    for (key, value) in &top {
        match key.as_str() {
            "editor" => out.editor = p.setting(value, key, p_string),
            "max_concurrent" => {
                out.max_concurrent = p.setting(value, key, |v| p_count(v, 1, 10_000))
            }
            "default_timeout" => out.default_timeout = p.setting(value, key, p_duration),
            "message_retention" => out.message_retention = p.setting(value, key, p_duration),
            "agent" | "pool" => {}
            "git" => out.git = p.git(value),
            other => p.unknown(value.span(), other, "", &TOP_KEYS),
        }
    }
    let sections: Sections = match toml::from_str(text) {
        Ok(s) => s,
        Err(e) => {
            p.error(
                e.span().unwrap_or(0..0),
                format!(
                    "{}: `agent` and `pool` hold tables, e.g. [agent.planning]",
                    e.message()
                ),
            );
            return (out, p.errors);
        }
    };
    let folder = file.parent().unwrap_or(Path::new("/")).to_path_buf();
    for (kind, entries) in [("agent", &sections.agent), ("pool", &sections.pool)] {
        for (name, entry) in entries {
            if let Some(decl) = p.decl(kind, name, entry, &folder, project) {
                out.decls.push(decl);
            }
        }
    }
    (out, p.errors)
}

struct Parser<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<Located>,
}

impl Parser<'_> {
    fn origin(&self, span: Range<usize>) -> Origin {
        let before = &self.text[..span.start.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Origin {
            file: self.file.to_path_buf(),
            line,
            column,
        }
    }

    fn error(&mut self, span: Range<usize>, message: String) {
        let origin = self.origin(span);
        self.errors.push(Located { origin, message });
    }

    fn unknown(&mut self, span: Range<usize>, key: &str, within: &str, known: &[&str]) {
        let near = crate::suggest::closest(key, known.iter().copied())
            .map(|n| format!(" (did you mean `{n}`?)"))
            .unwrap_or_default();
        self.error(
            span,
            format!(
                "unknown key `{within}{key}`{near}: expected one of {}",
                known.join(", ")
            ),
        );
    }

    /// A top-level setting, converted by `convert`; an error is recorded, not returned.
    fn setting<T>(
        &mut self,
        value: &Spanned<Value>,
        key: &str,
        convert: impl Fn(&Value) -> Result<T, String>,
    ) -> Option<Setting<T>> {
        match convert(value.get_ref()) {
            Ok(v) => Some(Setting {
                value: v,
                origin: self.origin(value.span()),
            }),
            Err(why) => {
                self.error(value.span(), format!("`{key}`: {why}"));
                None
            }
        }
    }

    /// One `[agent.NAME]` or `[pool.NAME]`.
    fn decl(
        &mut self,
        kind: &str,
        name: &str,
        entry: &Entry,
        folder: &Path,
        project: Option<&Project>,
    ) -> Option<Decl> {
        let errors_before = self.errors.len();
        let at = entry.span();
        if let Err(e) = crate::protocol::agent::validate_name(name) {
            self.error(at.clone(), format!("[{kind}.{name}]: {e}"));
        } else if kind == "pool" && name.len() > 28 {
            self.error(
                at.clone(),
                format!("[pool.{name}]: a pool's name is at most 28 characters (its members are named {name}-1, {name}-2, …)"),
            );
        }
        let mut decl = Decl::new(name, self.origin(at.clone()), folder, project);
        let mut max = None;
        for (key, value) in entry.get_ref() {
            let path = format!("{kind}.{name}.");
            let v = value.get_ref();
            let result: Result<(), String> = match key.as_str() {
                "driver" => p_driver(v).map(|d| decl.driver = d),
                "command" => p_strings(v).map(|c| decl.command = c),
                "args" => p_strings(v).map(|a| decl.args = a),
                "cwd" => p_string(v).map(|c| decl.cwd = folder.join(c)),
                "env" => p_env(v).map(|e| decl.env = e),
                "pass_env" => p_strings(v).map(|e| decl.pass_env = e),
                "timeout" => p_duration(v).map(|t| decl.timeout = Some(t)),
                "priority" => p_count(v, 0, 9).map(|p| decl.priority = Some(p as u8)),
                "start" => p_start(v).map(|s| decl.start = s),
                "worktree" => p_bool(v).map(|w| decl.worktree = w),
                "description" => p_string(v).map(|d| decl.description = Some(d)),
                "retries" => p_count(v, 0, MAX_RETRIES).map(|r| decl.retries = Some(r)),
                "gate" => p_string(v).map(|g| decl.gate = Some(g)),
                "gate_rounds" => p_count(v, 1, MAX_RETRIES).map(|r| decl.gate_rounds = Some(r)),
                "max" if kind == "pool" => p_count(v, 1, 99).map(|m| max = Some(m)),
                other => {
                    let mut known = DECL_KEYS.to_vec();
                    if kind == "pool" {
                        known.push("max");
                    }
                    self.unknown(value.span(), other, &path, &known);
                    continue;
                }
            };
            if let Err(why) = result {
                self.error(value.span(), format!("`{path}{key}`: {why}"));
            }
        }
        if kind == "pool" {
            match max {
                Some(m) => decl.pool_max = Some(m),
                None if self.errors.len() == errors_before => self.error(
                    at,
                    format!("[pool.{name}]: `max` is missing: how many members the pool may run at once (1 or more)"),
                ),
                None => {}
            }
        }
        (self.errors.len() == errors_before).then_some(decl)
    }
}

impl Parser<'_> {
    /// The `[git]` table (`value`, its place in the file): its keys are read again from the
    /// text, where they keep their positions.
    fn git(&mut self, value: &Spanned<Value>) -> GitConfig {
        #[derive(Deserialize)]
        struct Only {
            git: Entry,
        }
        let mut out = GitConfig::default();
        if !value.get_ref().is_table() {
            self.error(
                value.span(),
                format!(
                    "`git`: expected a table, e.g. [git] commit_agent = \"writer\", found {}",
                    found(value.get_ref())
                ),
            );
            return out;
        }
        let table = match toml::from_str::<Only>(self.text) {
            Ok(only) => only.git,
            Err(e) => {
                self.error(
                    e.span().unwrap_or(value.span()),
                    format!("[git]: {}", e.message()),
                );
                return out;
            }
        };
        for (key, value) in table.get_ref() {
            let v = value.get_ref();
            let at = self.origin(value.span());
            let result: Result<(), String> = match key.as_str() {
                "commit_agent" => p_agent(v).map(|a| out.commit_agent = placed(a, at)),
                "review_agent" => p_agent(v).map(|a| out.review_agent = placed(a, at)),
                "timeout" => p_duration(v).map(|t| out.timeout = placed(t, at)),
                "on_failure" => p_on_failure(v).map(|f| out.on_failure = placed(f, at)),
                other => {
                    self.unknown(value.span(), other, "git.", &GIT_KEYS);
                    continue;
                }
            };
            if let Err(why) = result {
                self.error(value.span(), format!("`git.{key}`: {why}"));
            }
        }
        out
    }
}

fn placed<T>(value: T, origin: Origin) -> Option<Setting<T>> {
    Some(Setting { value, origin })
}

/// An agent's name, or "" (the hook is off).
fn p_agent(v: &Value) -> Result<String, String> {
    let name = p_string(v)?;
    if !name.is_empty() {
        crate::protocol::agent::validate_name(&name).map_err(|e| e.to_string())?;
    }
    Ok(name)
}

fn p_on_failure(v: &Value) -> Result<OnFailure, String> {
    match v.as_str() {
        Some("accept") => Ok(OnFailure::Accept),
        Some("reject") => Ok(OnFailure::Reject),
        _ => Err(format!(
            "expected \"accept\" or \"reject\", found {}",
            found(v)
        )),
    }
}

fn found(v: &Value) -> String {
    match v {
        Value::String(s) => format!("the string {s:?}"),
        Value::Integer(i) => format!("the number {i}"),
        Value::Float(f) => format!("the number {f}"),
        Value::Boolean(b) => format!("{b}"),
        Value::Datetime(d) => format!("the date {d}"),
        Value::Array(_) => "a list".into(),
        Value::Table(_) => "a table".into(),
    }
}

fn p_string(v: &Value) -> Result<String, String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("expected a string, found {}", found(v)))
}

fn p_bool(v: &Value) -> Result<bool, String> {
    v.as_bool()
        .ok_or_else(|| format!("expected true or false, found {}", found(v)))
}

fn p_strings(v: &Value) -> Result<Vec<String>, String> {
    let want = || format!("expected a list of strings, found {}", found(v));
    v.as_array()
        .ok_or_else(want)?
        .iter()
        .map(|s| s.as_str().map(str::to_string).ok_or_else(want))
        .collect()
}

fn p_count(v: &Value, min: i64, max: i64) -> Result<u32, String> {
    match v.as_integer() {
        Some(n) if (min..=max).contains(&n) => Ok(n as u32),
        Some(n) => Err(format!("expected a number from {min} to {max}, found {n}")),
        None => Err(format!(
            "expected a number from {min} to {max}, found {}",
            found(v)
        )),
    }
}

fn p_duration(v: &Value) -> Result<Duration, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("expected a duration such as \"10m\", found {}", found(v)))?;
    crate::sys::time::parse_duration(s)
}

fn p_driver(v: &Value) -> Result<DriverKind, String> {
    let want = || {
        format!(
            "expected one of \"shell\", \"exec\", \"claude\", \"tmux\", found {}",
            found(v)
        )
    };
    match v.as_str().ok_or_else(want)? {
        "shell" => Ok(DriverKind::Shell),
        "exec" => Ok(DriverKind::Exec),
        "claude" => Ok(DriverKind::Claude),
        "tmux" => Ok(DriverKind::Tmux),
        _ => Err(want()),
    }
}

fn p_start(v: &Value) -> Result<Start, String> {
    match v.as_str() {
        Some("on-demand") => Ok(Start::OnDemand),
        Some("manual") => Ok(Start::Manual),
        _ => Err(format!(
            "expected \"on-demand\" or \"manual\", found {}",
            found(v)
        )),
    }
}

fn p_env(v: &Value) -> Result<Vec<(String, String)>, String> {
    let want = || {
        format!(
            "expected a table of strings, e.g. {{ FOO = \"bar\" }}, found {}",
            found(v)
        )
    };
    let table = v.as_table().ok_or_else(want)?;
    table
        .iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) if !k.is_empty() && !k.contains('=') => Ok((k.clone(), s.to_string())),
            _ => Err(want()),
        })
        .collect()
}

/// The folder a declaration's file is in (for messages).
pub fn folder_of(file: &Path) -> PathBuf {
    file.parent().unwrap_or(Path::new("/")).to_path_buf()
}

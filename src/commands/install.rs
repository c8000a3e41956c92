//! `baton install claude` and `baton uninstall claude`: merge baton's hook entries into Claude
//! Code's `settings.json` (user or project), and take exactly those out again. Every other
//! setting and hook is kept; the file is backed up before it is changed and replaced atomically;
//! `--dry-run` shows the change as a diff and writes nothing. Installing twice changes nothing.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::error::usage;
use crate::exit::Exit;

type Result<T> = anyhow::Result<T>;

/// One hook baton installs: Claude Code's event, the `baton hook` kind that receives it, and
/// whether it is the chief's (installed with `--chief`).
struct Hook {
    event: &'static str,
    kind: &'static str,
    chief: bool,
}

const fn hook(event: &'static str, kind: &'static str, chief: bool) -> Hook {
    Hook { event, kind, chief }
}

/// Every hook baton installs. The agents' hooks do nothing outside an agent baton started; the
/// chief's do nothing inside one.
const HOOKS: [Hook; 10] = [
    hook("SessionStart", "claude-session-start", false),
    hook("UserPromptSubmit", "claude-prompt", false),
    hook("Stop", "claude-stop", false),
    hook("StopFailure", "claude-stop-failure", false),
    hook("Notification", "claude-notification", false),
    hook("PreToolUse", "claude-pre-tool", false),
    hook("PostToolUse", "claude-post-tool", false),
    hook("UserPromptSubmit", "chief-prompt", true),
    hook("SessionStart", "chief-wait", true),
    hook("Stop", "chief-wait", true),
];

/// The settings entry for hook `kind`: the chief's waiter runs in the background and wakes an
/// idle session when it exits 2 (`asyncRewake`), within the timeout given here.
fn entry(baton: &str, kind: &str) -> Value {
    let command = format!("{baton} hook {kind}");
    if kind == "chief-wait" {
        json!({"type": "command", "command": command, "asyncRewake": true,
               "timeout": crate::hook::chief::WAIT_TIMEOUT_S})
    } else {
        json!({"type": "command", "command": command})
    }
}

fn settings_path(project: Option<&Path>) -> Result<PathBuf> {
    match project {
        Some(dir) => Ok(dir.join(".claude/settings.json")),
        None => std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".claude/settings.json"))
            .ok_or_else(|| usage("HOME is not set: pass --project DIR")),
    }
}

/// `baton` when the `baton` on PATH is this binary, else this binary's full path.
fn baton_command() -> String {
    let me = std::env::current_exe().and_then(fs::canonicalize).ok();
    let on_path = which::which("baton")
        .ok()
        .and_then(|p| fs::canonicalize(p).ok());
    match me {
        Some(me) if on_path.as_ref() != Some(&me) => me.to_string_lossy().into_owned(),
        _ => "baton".into(),
    }
}

/// True for a hook command that `install` wrote: `<…/baton> hook <kind>`.
fn is_ours(command: &str, kind: &str) -> bool {
    let words: Vec<&str> = command.split_whitespace().collect();
    words.len() == 3
        && Path::new(words[0])
            .file_name()
            .is_some_and(|n| n == "baton")
        && words[1] == "hook"
        && words[2] == kind
}

fn load(path: &Path) -> Result<(Option<String>, Value)> {
    let text = match fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(usage(format!("reading {}: {e}", path.display()))),
    };
    let value = match &text {
        None => json!({}),
        Some(t) if t.trim().is_empty() => json!({}),
        Some(t) => serde_json::from_str(t).map_err(|e| {
            usage(format!(
                "{} is not valid JSON ({e}); it was not changed",
                path.display()
            ))
        })?,
    };
    if !value.is_object() {
        return Err(usage(format!(
            "{} does not hold a JSON object; it was not changed",
            path.display()
        )));
    }
    Ok((text, value))
}

fn object<'a>(v: &'a mut Value, key: &str, path: &Path) -> Result<&'a mut Map<String, Value>> {
    let map = v
        .as_object_mut()
        .ok_or_else(|| usage(format!("{}: expected an object", path.display())))?;
    map.entry(key).or_insert_with(|| json!({}));
    map.get_mut(key)
        .and_then(Value::as_object_mut)
        .ok_or_else(|| {
            usage(format!(
                "{}: \"{key}\" is not an object; it was not changed",
                path.display()
            ))
        })
}

/// The settings file `install` changes: the user's, or the project's in `project`.
pub fn settings_file(project: Option<&Path>) -> Result<PathBuf> {
    settings_path(project)
}

/// For each of Claude Code's events, the command of baton's hook on it (`None` if missing).
pub type Installed = Vec<(&'static str, Option<String>)>;

/// baton's hooks as they stand in the settings file at `path`. `Ok(None)` if there is no such
/// file.
pub fn installed(path: &Path) -> Result<Option<Installed>> {
    let (text, value) = load(path)?;
    if text.is_none() {
        return Ok(None);
    }
    let groups = |event: &str| -> Vec<Value> {
        value
            .get("hooks")
            .and_then(|h| h.get(event))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let found = HOOKS
        .iter()
        .filter(|h| !h.chief)
        .map(|Hook { event, kind, .. }| {
            let command = groups(event).iter().find_map(|g| {
                g.get("hooks")?.as_array()?.iter().find_map(|h| {
                    let c = h.get("command")?.as_str()?;
                    is_ours(c, kind).then(|| c.to_string())
                })
            });
            (*event, command)
        })
        .collect();
    Ok(Some(found))
}

pub fn install(project: Option<&Path>, dry_run: bool, chief: bool) -> Result<Exit> {
    let path = settings_path(project)?;
    let (text, before) = load(&path)?;
    let mut after = before.clone();
    let baton = baton_command();
    let hooks = object(&mut after, "hooks", &path)?;
    for Hook { event, kind, .. } in HOOKS.iter().filter(|h| chief || !h.chief) {
        let (event, kind) = (*event, *kind);
        let groups = hooks.entry(event).or_insert_with(|| json!([]));
        let Some(groups) = groups.as_array_mut() else {
            return Err(usage(format!(
                "{}: hooks.{event} is not a list; it was not changed",
                path.display()
            )));
        };
        let present = groups.iter().any(|g| {
            g.get("hooks").and_then(Value::as_array).is_some_and(|hs| {
                hs.iter().any(|h| {
                    h.get("command")
                        .and_then(Value::as_str)
                        .is_some_and(|c| is_ours(c, kind))
                })
            })
        });
        if !present {
            groups.push(json!({"hooks": [entry(&baton, kind)]}));
        }
    }
    let changed = write(&path, text.as_deref(), &before, &after, dry_run)?;
    if !changed && !dry_run {
        println!("baton's hooks are already in {}", path.display());
    }
    println!(
        "\nTo make baton Claude Code's editor (Ctrl-G), add to your shell profile (it keeps your editor in BATON_EDITOR):\n{}",
        crate::editor::PROFILE_LINES
    );
    Ok(Exit::Ok)
}

pub fn uninstall(project: Option<&Path>, dry_run: bool) -> Result<Exit> {
    let path = settings_path(project)?;
    let (text, before) = load(&path)?;
    let mut after = before.clone();
    if let Some(hooks) = after.get_mut("hooks").and_then(Value::as_object_mut) {
        for Hook { event, kind, .. } in &HOOKS {
            let (event, kind) = (*event, *kind);
            let Some(groups) = hooks.get_mut(event).and_then(Value::as_array_mut) else {
                continue;
            };
            for g in groups.iter_mut() {
                if let Some(hs) = g.get_mut("hooks").and_then(Value::as_array_mut) {
                    hs.retain(|h| {
                        !h.get("command")
                            .and_then(Value::as_str)
                            .is_some_and(|c| is_ours(c, kind))
                    });
                }
            }
            groups.retain(|g| {
                g.get("hooks")
                    .and_then(Value::as_array)
                    .is_none_or(|hs| !hs.is_empty())
            });
            if groups.is_empty() {
                hooks.remove(event);
            }
        }
        if hooks.is_empty() {
            if let Some(map) = after.as_object_mut() {
                map.remove("hooks");
            }
        }
    }
    if !write(&path, text.as_deref(), &before, &after, dry_run)? && !dry_run {
        println!("no baton hooks in {}", path.display());
    }
    Ok(Exit::Ok)
}

/// Writes `after` if it differs from `before` (or shows the diff): backup, then atomic replace.
fn write(
    path: &Path,
    text: Option<&str>,
    before: &Value,
    after: &Value,
    dry_run: bool,
) -> Result<bool> {
    if before == after {
        if dry_run {
            println!("{}: no change", path.display());
        }
        return Ok(false);
    }
    let old = text.map(|_| pretty(before)).unwrap_or_default();
    let new = pretty(after);
    if dry_run {
        println!("--- {}\n+++ {} (after)", path.display(), path.display());
        print!("{}", diff(&old, &new));
        return Ok(true);
    }
    let fail = |what: &str, e: std::io::Error| usage(format!("{what} {}: {e}", path.display()));
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| fail("creating the folder of", e))?;
    let mut note = String::new();
    if let Some(original) = text {
        let backup = path.with_extension("json.baton-backup");
        fs::write(&backup, original).map_err(|e| fail("backing up", e))?;
        note = format!(" (backup: {})", backup.display());
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".settings-")
        .tempfile_in(dir)
        .map_err(|e| fail("writing next to", e))?;
    tmp.write_all(new.as_bytes())
        .map_err(|e| fail("writing next to", e))?;
    tmp.persist(path).map_err(|e| fail("replacing", e.error))?;
    println!("updated {}{note}", path.display());
    Ok(true)
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

/// A line diff (longest common subsequence): ` ` kept, `-` removed, `+` added.
pub fn diff(a: &str, b: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out += &format!("  {}\n", a[i]);
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out += &format!("- {}\n", a[i]);
            i += 1;
        } else {
            out += &format!("+ {}\n", b[j]);
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_marks_changes() {
        assert_eq!(diff("a\nb\nc\n", "a\nx\nc\n"), "  a\n- b\n+ x\n  c\n");
        assert_eq!(diff("", "a\n"), "+ a\n");
    }

    #[test]
    fn recognises_its_own_commands() {
        assert!(is_ours("baton hook claude-stop", "claude-stop"));
        assert!(is_ours("/opt/bin/baton hook claude-stop", "claude-stop"));
        assert!(!is_ours("baton hook claude-stop --x", "claude-stop"));
        assert!(!is_ours("mybaton hook claude-stop", "claude-stop"));
        assert!(!is_ours("echo baton hook claude-stop", "claude-stop"));
    }
}

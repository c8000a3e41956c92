//! Where `baton install git` works: the hooks folder git runs hooks from (for a repository,
//! `git rev-parse --git-path hooks`, so `core.hooksPath` and linked worktrees are respected; for
//! `--global`, the global `core.hooksPath`, else baton's own folder, which install makes it), and
//! the git config scope that goes with it. Also `core.editor` for `--editor`: the value it
//! replaces is kept in `baton.editorBefore`, so that uninstall can put it back.

use std::fs;
use std::path::{Path, PathBuf};

use super::files::sh_quote;
use super::GitArgs;
use crate::error::usage;
use crate::git;

type Result<T> = anyhow::Result<T>;

/// The git config key that keeps the `core.editor` that `--editor` replaced ("" for none).
const EDITOR_BEFORE: &str = "baton.editorBefore";

/// Where the hooks go, and the git config scope that goes with it.
pub(super) struct Place {
    pub(super) hooks: PathBuf,
    /// Why git runs hooks from there.
    pub(super) why: String,
    pub(super) global: bool,
    /// The folder git is asked in.
    pub(super) dir: PathBuf,
    /// The folder is the global one baton made: its hooks also run each repository's own.
    pub(super) stands_in: bool,
    /// The global `core.hooksPath` is not set yet: install sets it to `hooks`.
    pub(super) set_hooks_path: bool,
    /// A repository's hooks folder that is not its own (a `core.hooksPath` it does not set):
    /// taking hooks out of it is `--global`'s business.
    pub(super) shared: bool,
}

impl Place {
    pub(super) fn scope(&self) -> &'static str {
        if self.global {
            "--global"
        } else {
            "--local"
        }
    }

    pub(super) fn get(&self, key: &str) -> Option<String> {
        git::text(&self.dir, &["config", self.scope(), "--get", key]).ok()
    }

    pub(super) fn set(&self, key: &str, value: &str) -> Result<()> {
        git::run(&self.dir, &["config", self.scope(), key, value])
            .map(drop)
            .map_err(|e| usage(format!("setting git config {key}: {e}")))
    }

    pub(super) fn unset(&self, key: &str) -> Result<()> {
        git::run(&self.dir, &["config", self.scope(), "--unset-all", key])
            .map(drop)
            .map_err(|e| usage(format!("unsetting git config {key}: {e}")))?;
        // `--unset` leaves an empty `[section]` behind: take it out if nothing else is in it.
        let section = key.split_once('.').map_or(key, |(s, _)| s);
        let pattern = format!("^{section}\\.");
        if git::run(
            &self.dir,
            &["config", self.scope(), "--get-regexp", &pattern],
        )
        .is_err()
        {
            let _ = git::run(
                &self.dir,
                &["config", self.scope(), "--remove-section", section],
            );
        }
        Ok(())
    }
}

/// The folder `--global` installs into when no global `core.hooksPath` is set.
pub(super) fn baton_global_dir() -> Result<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .ok_or_else(|| {
            usage("neither XDG_CONFIG_HOME nor HOME is set: nowhere to put global hooks")
        })?;
    Ok(base.join("baton/git-hooks"))
}

pub(super) fn place(args: &GitArgs) -> Result<Place> {
    if args.global {
        let dir = std::env::current_dir()
            .map_err(|e| usage(format!("reading the current folder: {e}")))?;
        let ours = baton_global_dir()?;
        let set = git::text(
            &dir,
            &["config", "--global", "--path", "--get", "core.hooksPath"],
        )
        .ok()
        .filter(|v| !v.is_empty());
        return Ok(match set {
            Some(p) if Path::new(&p).is_relative() => {
                return Err(usage(format!(
                    "your global core.hooksPath is {p:?}, a folder inside each repository: install in each one with `baton install git --repo PATH`"
                )))
            }
            Some(p) => Place {
                stands_in: Path::new(&p) == ours,
                hooks: PathBuf::from(&p),
                why: "your global core.hooksPath".into(),
                global: true,
                dir,
                set_hooks_path: false,
                shared: false,
            },
            None => Place {
                hooks: ours,
                why: "baton's global hooks folder, made your global core.hooksPath".into(),
                global: true,
                dir,
                stands_in: true,
                set_hooks_path: true,
                shared: false,
            },
        });
    }
    let given = match &args.repo {
        Some(p) => p.clone(),
        None => std::env::current_dir()
            .map_err(|e| usage(format!("reading the current folder: {e}")))?,
    };
    let dir =
        fs::canonicalize(&given).map_err(|e| usage(format!("--repo {}: {e}", given.display())))?;
    git::text(&dir, &["rev-parse", "--git-dir"]).map_err(|e| {
        usage(format!(
            "{} is not in a git repository ({e}); give one with --repo PATH, or use --global",
            dir.display()
        ))
    })?;
    let hooks = git::text(
        &dir,
        &["rev-parse", "--path-format=absolute", "--git-path", "hooks"],
    )
    .map_err(|e| {
        usage(format!(
            "asking git where {} runs hooks: {e}",
            dir.display()
        ))
    })?;
    let hooks = PathBuf::from(hooks);
    let set = git::text(
        &dir,
        &["config", "--show-origin", "--get", "core.hooksPath"],
    );
    // Set, but not by this repository: the folder is every repository's.
    let shared = set.is_ok()
        && git::text(&dir, &["config", "--local", "--get", "core.hooksPath"]).is_err()
        && git::text(&dir, &["config", "--worktree", "--get", "core.hooksPath"]).is_err();
    let mut why = match set {
        Ok(line) => {
            let (origin, value) = line.split_once('\t').unwrap_or(("", &line));
            let origin = origin.strip_prefix("file:").unwrap_or(origin);
            format!("core.hooksPath = {value}, set in {origin}")
        }
        Err(_) => "the repository's hooks folder".into(),
    };
    if shared {
        why.push_str(": shared by every repository that does not set its own");
    }
    // A folder under the work tree is one git may track (`.husky/`), unless it is in the git
    // folder itself (`.git/hooks`), which git never tracks.
    let top = git::text(&dir, &["rev-parse", "--show-toplevel"]).ok();
    let git_dir = git::text(
        &dir,
        &["rev-parse", "--path-format=absolute", "--git-common-dir"],
    )
    .ok();
    let tracked = top.is_some_and(|t| !t.is_empty() && hooks.starts_with(t))
        && !git_dir.is_some_and(|g| hooks.starts_with(g));
    if tracked {
        why.push_str("; inside the work tree, so git may track the hooks there");
    }
    Ok(Place {
        stands_in: baton_global_dir().is_ok_and(|g| g == hooks),
        hooks,
        why,
        global: false,
        dir,
        set_hooks_path: false,
        shared,
    })
}

/// The baton this binary is, as the hooks should run it.
pub(super) fn baton_path() -> Result<PathBuf> {
    std::env::current_exe()
        .and_then(fs::canonicalize)
        .map_err(|e| usage(format!("finding baton's own path: {e}")))
}

/// True for a `core.editor` that runs baton (`…/baton` or `…/baton-edit`, maybe after
/// `BATON_EDITOR=…`).
pub(super) fn is_baton_editor(value: &str) -> bool {
    value
        .split_whitespace()
        .last()
        .map(|w| w.trim_matches('\''))
        .and_then(|w| {
            Path::new(w)
                .file_name()
                .map(|n| n == "baton" || n == crate::editor::FRONT)
        })
        .unwrap_or(false)
}

/// `core.editor` for baton, keeping `before` as the editor it opens on pass-through.
fn editor_value(baton: &Path, before: &str) -> String {
    let path = baton.to_string_lossy();
    let baton = if path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b))
    {
        path.into_owned()
    } else {
        sh_quote(&path)
    };
    if before.is_empty() {
        baton
    } else {
        // git runs an editor that has spaces or `=` through the shell.
        format!("BATON_EDITOR={} {baton}", sh_quote(before))
    }
}

pub(super) fn set_editor(place: &Place, baton: &Path) -> Result<String> {
    let current = place.get("core.editor");
    if let Some(v) = current.as_deref().filter(|v| is_baton_editor(v)) {
        return Ok(format!("core.editor already runs baton ({v})"));
    }
    let before = current.unwrap_or_default();
    place.set(EDITOR_BEFORE, &before)?;
    place.set("core.editor", &editor_value(baton, &before))?;
    Ok(if before.is_empty() {
        let fallback = if std::env::var_os("BATON_EDITOR").is_some() {
            ""
        } else {
            " (set BATON_EDITOR to yours: baton does not open $EDITOR)"
        };
        format!(
            "core.editor is baton: a message that starts with @agent goes to that agent; any other opens $BATON_EDITOR, else nvim, vim, vi or nano{fallback}"
        )
    } else {
        format!(
            "core.editor is baton: a message that starts with @agent goes to that agent; any other opens {before}, as before"
        )
    })
}

pub(super) fn restore_editor(place: &Place) -> Result<Option<String>> {
    let Some(before) = place.get(EDITOR_BEFORE) else {
        return Ok(None);
    };
    let current = place.get("core.editor");
    let note = if current.as_deref().is_some_and(is_baton_editor) {
        if before.is_empty() {
            place.unset("core.editor")?;
            "core.editor: unset again".to_string()
        } else {
            place.set("core.editor", &before)?;
            format!("core.editor: {before} again")
        }
    } else {
        "core.editor was changed since baton set it: left alone".to_string()
    };
    place.unset(EDITOR_BEFORE)?;
    Ok(Some(note))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editors_that_run_baton() {
        assert!(is_baton_editor("baton"));
        assert!(is_baton_editor("/usr/local/bin/baton"));
        assert!(is_baton_editor("BATON_EDITOR='code --wait' /x/baton"));
        assert!(!is_baton_editor("vim"));
        assert!(!is_baton_editor("batonx"));
        assert!(is_baton_editor("/usr/local/bin/baton-edit"));
        assert_eq!(
            editor_value(Path::new("/x/baton"), "code --wait"),
            "BATON_EDITOR='code --wait' /x/baton"
        );
        assert_eq!(editor_value(Path::new("/a b/baton"), ""), "'/a b/baton'");
    }
}

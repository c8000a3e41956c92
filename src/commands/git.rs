//! `baton install git [--global] [--repo PATH] [--editor] [--check]` and `baton uninstall git`:
//! baton's git hooks (`hooks/git/`, built into the binary) put where git runs hooks, and taken
//! out again.
//!
//! Where: the folder `git rev-parse --git-path hooks` names, so a `core.hooksPath` (husky, a
//! shared folder) is respected and a linked worktree gets its repository's hooks. `--global`
//! installs into the global `core.hooksPath`, setting it to baton's own folder
//! (`~/.config/baton/git-hooks`) only if none is set; since git then no longer runs each
//! repository's `.git/hooks`, hooks installed there run them.
//!
//! The invariants: a hook of the user's is never overwritten — it is renamed to
//! `NAME.baton-orig` (bytes, mode and all) and run first by baton's hook — and uninstall renames
//! it back, so it is restored byte for byte. Installing twice changes nothing. Every hook file
//! is written to a temp file in its folder and renamed into place. git config is changed only
//! where asked (`core.editor` with `--editor`, the previous value kept in `baton.editorBefore`
//! to be put back) or needed (the global `core.hooksPath`), and uninstall undoes exactly that.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::usage;
use crate::exit::Exit;
use crate::git;

type Result<T> = anyhow::Result<T>;

/// The hooks, as `hooks/git/` holds them.
const HOOKS: [(&str, &str); 2] = [
    (
        "prepare-commit-msg",
        include_str!("../../hooks/git/prepare-commit-msg"),
    ),
    ("commit-msg", include_str!("../../hooks/git/commit-msg")),
];

/// The line that marks a hook as baton's.
const MARKER: &str = "# baton-git-hook";

/// The suffix a user's hook is kept under while baton's runs in its place.
pub const KEPT: &str = ".baton-orig";

/// The git config key that keeps the `core.editor` that `--editor` replaced ("" for none).
const EDITOR_BEFORE: &str = "baton.editorBefore";

pub struct GitArgs {
    pub global: bool,
    pub repo: Option<PathBuf>,
    pub editor: bool,
    pub check: bool,
}

/// Where the hooks go, and the git config scope that goes with it.
struct Place {
    hooks: PathBuf,
    /// Why git runs hooks from there.
    why: String,
    global: bool,
    /// The folder git is asked in.
    dir: PathBuf,
    /// The folder is the global one baton made: its hooks also run each repository's own.
    stands_in: bool,
    /// The global `core.hooksPath` is not set yet: install sets it to `hooks`.
    set_hooks_path: bool,
}

impl Place {
    fn scope(&self) -> &'static str {
        if self.global {
            "--global"
        } else {
            "--local"
        }
    }

    fn get(&self, key: &str) -> Option<String> {
        git::text(&self.dir, &["config", self.scope(), "--get", key]).ok()
    }

    fn set(&self, key: &str, value: &str) -> Result<()> {
        git::run(&self.dir, &["config", self.scope(), key, value])
            .map(drop)
            .map_err(|e| usage(format!("setting git config {key}: {e}")))
    }

    fn unset(&self, key: &str) -> Result<()> {
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
fn baton_global_dir() -> Result<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .ok_or_else(|| {
            usage("neither XDG_CONFIG_HOME nor HOME is set: nowhere to put global hooks")
        })?;
    Ok(base.join("baton/git-hooks"))
}

fn place(args: &GitArgs) -> Result<Place> {
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
            },
            None => Place {
                hooks: ours,
                why: "baton's global hooks folder, made your global core.hooksPath".into(),
                global: true,
                dir,
                stands_in: true,
                set_hooks_path: true,
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
    let why = match git::text(
        &dir,
        &["config", "--show-origin", "--get", "core.hooksPath"],
    ) {
        Ok(line) => {
            let (origin, value) = line.split_once('\t').unwrap_or(("", &line));
            let origin = origin.strip_prefix("file:").unwrap_or(origin);
            format!("core.hooksPath = {value}, set in {origin}")
        }
        Err(_) => "the repository's hooks folder".into(),
    };
    Ok(Place {
        stands_in: baton_global_dir().is_ok_and(|g| g == hooks),
        hooks,
        why,
        global: false,
        dir,
        set_hooks_path: false,
    })
}

/// The baton this binary is, as the hooks should run it.
fn baton_path() -> Result<PathBuf> {
    std::env::current_exe()
        .and_then(fs::canonicalize)
        .map_err(|e| usage(format!("finding baton's own path: {e}")))
}

/// `s` quoted for sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A hook's text as installed: the template with the baton path and the stand-in flag filled in.
fn hook_text(template: &str, baton: &Path, stands_in: bool) -> String {
    let recorded = format!("\nrecorded={}\n", sh_quote(&baton.to_string_lossy()));
    let global = if stands_in {
        "\nglobal=1\n"
    } else {
        "\nglobal=\n"
    };
    template
        .replacen("\nrecorded=\n", &recorded, 1)
        .replacen("\nglobal=\n", global, 1)
}

/// A hook file that is baton's: a regular file (not a link) with the marker line.
fn is_ours(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
        && fs::read_to_string(path).is_ok_and(|t| t.lines().any(|l| l.starts_with(MARKER)))
}

fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// The baton an installed hook runs (its `recorded=` line).
fn recorded(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let line = text.lines().find_map(|l| l.strip_prefix("recorded="))?;
    let unquoted = line
        .strip_prefix('\'')
        .and_then(|l| l.strip_suffix('\''))
        .unwrap_or(line);
    Some(unquoted.replace(r"'\''", "'")).filter(|p| !p.is_empty())
}

fn write_hook(path: &Path, text: &str) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let fail = |e: std::io::Error| usage(format!("writing {}: {e}", path.display()));
    let mut tmp = tempfile::Builder::new()
        .prefix(".baton-")
        .tempfile_in(dir)
        .map_err(fail)?;
    tmp.write_all(text.as_bytes()).map_err(fail)?;
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// Installs one hook; says what it did.
fn install_hook(dir: &Path, name: &str, text: &str) -> Result<String> {
    let path = dir.join(name);
    let kept = dir.join(format!("{name}{KEPT}"));
    if is_ours(&path) {
        if fs::read_to_string(&path).is_ok_and(|t| t == text) {
            return Ok(format!("{name}: already installed"));
        }
        write_hook(&path, text)?;
        return Ok(format!("{name}: updated"));
    }
    if !exists(&path) {
        write_hook(&path, text)?;
        return Ok(format!("{name}: installed"));
    }
    if exists(&kept) {
        return Err(usage(format!(
            "{} is not baton's, and {} is there too (kept from an earlier install): move one of them away, then install again",
            path.display(),
            kept.display()
        )));
    }
    fs::rename(&path, &kept).map_err(|e| {
        usage(format!(
            "keeping your hook {} as {}: {e}",
            path.display(),
            kept.display()
        ))
    })?;
    if let Err(e) = write_hook(&path, text) {
        let _ = fs::rename(&kept, &path); // your hook back where it was
        return Err(e);
    }
    Ok(format!(
        "{name}: installed; your hook is kept as {name}{KEPT} and runs first"
    ))
}

/// Takes one hook out, putting back the one it displaced; says what it did.
fn uninstall_hook(dir: &Path, name: &str) -> Result<String> {
    let path = dir.join(name);
    let kept = dir.join(format!("{name}{KEPT}"));
    let restore = || {
        fs::rename(&kept, &path).map_err(|e| {
            usage(format!(
                "putting back {} as {}: {e}",
                kept.display(),
                path.display()
            ))
        })
    };
    if is_ours(&path) {
        if exists(&kept) {
            restore()?;
            return Ok(format!("{name}: removed; your hook is back"));
        }
        fs::remove_file(&path).map_err(|e| usage(format!("removing {}: {e}", path.display())))?;
        return Ok(format!("{name}: removed"));
    }
    match (exists(&path), exists(&kept)) {
        (true, true) => Ok(format!(
            "{name}: left alone: {} is not baton's any more (and {} is still there)",
            path.display(),
            kept.display()
        )),
        (true, false) => Ok(format!("{name}: not baton's; left alone")),
        (false, true) => {
            restore()?;
            Ok(format!("{name}: baton's was gone; your hook is back"))
        }
        (false, false) => Ok(format!("{name}: not installed")),
    }
}

/// True for a `core.editor` that runs baton (`…/baton`, maybe after `BATON_EDITOR=…`).
fn is_baton_editor(value: &str) -> bool {
    value
        .split_whitespace()
        .last()
        .map(|w| w.trim_matches('\''))
        .and_then(|w| Path::new(w).file_name().map(|n| n == "baton"))
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

fn set_editor(place: &Place, baton: &Path) -> Result<String> {
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

fn restore_editor(place: &Place) -> Result<Option<String>> {
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

pub fn install(args: GitArgs) -> Result<Exit> {
    let place = place(&args)?;
    if args.check {
        return check(&place);
    }
    let baton = baton_path()?;
    fs::create_dir_all(&place.hooks)
        .map_err(|e| usage(format!("creating {}: {e}", place.hooks.display())))?;
    println!("hooks folder: {} ({})", place.hooks.display(), place.why);
    for (name, template) in HOOKS {
        let text = hook_text(template, &baton, place.stands_in);
        println!("  {}", install_hook(&place.hooks, name, &text)?);
    }
    if place.set_hooks_path {
        place.set("core.hooksPath", &place.hooks.to_string_lossy())?;
        println!(
            "core.hooksPath (global) is now {}: git runs these hooks in every repository (and they run each repository's own .git/hooks)",
            place.hooks.display()
        );
    }
    println!("the hooks run {} (else baton on PATH)", baton.display());
    if args.editor {
        println!("{}", set_editor(&place, &baton)?);
    }
    print_settings(&place);
    Ok(Exit::Ok)
}

pub fn uninstall(args: GitArgs) -> Result<Exit> {
    if args.check || args.editor {
        return Err(usage(
            "--check and --editor are for `baton install git`; `baton uninstall git` takes out everything install did",
        ));
    }
    let place = place(&args)?;
    if place.global && place.set_hooks_path {
        println!("no global core.hooksPath: no global hooks of baton's to take out");
    } else {
        println!("hooks folder: {} ({})", place.hooks.display(), place.why);
        for (name, _) in HOOKS {
            println!("  {}", uninstall_hook(&place.hooks, name)?);
        }
    }
    let ours = baton_global_dir()?;
    if place.global && !place.set_hooks_path && place.hooks == ours {
        let empty = fs::read_dir(&ours).is_ok_and(|mut rd| rd.next().is_none());
        if empty {
            let _ = fs::remove_dir(&ours);
            place.unset("core.hooksPath")?;
            println!("core.hooksPath (global): unset again");
        } else {
            println!(
                "core.hooksPath (global) stays {}: other files are in it",
                ours.display()
            );
        }
    }
    if let Some(note) = restore_editor(&place)? {
        println!("{note}");
    }
    Ok(Exit::Ok)
}

/// `--check`: what is installed where, and the settings in effect. Exit 0 if both hooks are
/// baton's and the baton they run is there, else 2.
fn check(place: &Place) -> Result<Exit> {
    let mut sound = true;
    println!("hooks folder: {} ({})", place.hooks.display(), place.why);
    if place.global && place.set_hooks_path {
        println!("  no global core.hooksPath: baton's global hooks are not installed");
        sound = false;
    }
    for (name, _) in HOOKS {
        let path = place.hooks.join(name);
        let kept = place.hooks.join(format!("{name}{KEPT}"));
        let chained = if exists(&kept) {
            format!("; runs your {name}{KEPT} first")
        } else {
            String::new()
        };
        if is_ours(&path) {
            match recorded(&path) {
                Some(b) if is_executable(Path::new(&b)) => {
                    println!("  {name}: baton's, runs {b}{chained}")
                }
                Some(b) => {
                    let on_path = which::which("baton")
                        .map(|p| format!("falls back to {}", p.display()))
                        .unwrap_or_else(|_| "and no baton is on PATH".into());
                    println!("  {name}: baton's, but {b} is missing: it {on_path}{chained}");
                    sound = false;
                }
                None => println!("  {name}: baton's, runs baton on PATH{chained}"),
            }
        } else if exists(&path) {
            println!("  {name}: not baton's (a hook of your own)");
            sound = false;
        } else {
            println!("  {name}: not installed");
            sound = false;
        }
    }
    match place.get("core.editor") {
        Some(v) if is_baton_editor(&v) => println!("core.editor: baton ({v})"),
        Some(v) => println!("core.editor: {v} (`--editor` makes it baton)"),
        None => println!("core.editor: not set here (`--editor` makes it baton)"),
    }
    print_settings(place);
    if !sound {
        println!(
            "not fully installed: `baton install git{}` installs the hooks",
            if place.global { " --global" } else { "" }
        );
    }
    Ok(if sound { Exit::Ok } else { Exit::Usage })
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The agents the hooks use, seen from the place's folder.
fn print_settings(place: &Place) {
    let entries = git::entries(&place.dir);
    let config = crate::config::load(&place.dir);
    if let Err(e) = &config {
        println!("config: {e}");
    }
    let s = git::settings(&entries, config.as_ref().ok());
    let show = |what: &str, agent: &Option<git::Sourced<String>>, hint: &str| match agent {
        Some(a) => println!("{what}: {} (from {})", a.value, a.from),
        None => println!("{what}: none: {hint}"),
    };
    show(
        "commit agent",
        &s.commit_agent,
        "`git config baton.commitAgent NAME`, or [git] commit_agent in .baton.toml",
    );
    show(
        "review agent",
        &s.review_agent,
        "the gate is open (`git config baton.reviewAgent NAME` to close it)",
    );
    println!(
        "timeout: {} (from {}); a failed review is {}ed (from {})",
        crate::sys::time::human(s.timeout.value),
        s.timeout.from,
        s.on_failure.value.as_str(),
        s.on_failure.from
    );
    for p in &s.problems {
        println!("problem: {p}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_installed_text_records_baton() {
        let text = hook_text(HOOKS[0].1, Path::new("/opt/it's/baton"), true);
        assert!(
            text.contains("\nrecorded='/opt/it'\\''s/baton'\n"),
            "{text}"
        );
        assert!(text.contains("\nglobal=1\n"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prepare-commit-msg");
        fs::write(&path, &text).unwrap();
        assert_eq!(recorded(&path).as_deref(), Some("/opt/it's/baton"));
        assert!(is_ours(&path));
    }

    #[test]
    fn editors_that_run_baton() {
        assert!(is_baton_editor("baton"));
        assert!(is_baton_editor("/usr/local/bin/baton"));
        assert!(is_baton_editor("BATON_EDITOR='code --wait' /x/baton"));
        assert!(!is_baton_editor("vim"));
        assert!(!is_baton_editor("batonx"));
        assert_eq!(
            editor_value(Path::new("/x/baton"), "code --wait"),
            "BATON_EDITOR='code --wait' /x/baton"
        );
        assert_eq!(editor_value(Path::new("/a b/baton"), ""), "'/a b/baton'");
    }
}

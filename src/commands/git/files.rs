//! The hook files of `baton install git`: baton's hooks (`hooks/git/`, built into the binary)
//! written where git runs hooks, and taken out again. A hook of the user's is never overwritten:
//! it is renamed `NAME.baton-orig` (bytes, mode and all), baton's hook runs it first, and
//! uninstall renames it back. A hook is baton's if it is a regular file with the marker line.
//! Every hook file is written to a temp file in its folder and renamed into place.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::usage;

type Result<T> = anyhow::Result<T>;

/// The hooks, as `hooks/git/` holds them.
pub(super) const HOOKS: [(&str, &str); 2] = [
    (
        "prepare-commit-msg",
        include_str!("../../../hooks/git/prepare-commit-msg"),
    ),
    ("commit-msg", include_str!("../../../hooks/git/commit-msg")),
];

/// The line that marks a hook as baton's.
const MARKER: &str = "# baton-git-hook";

/// The hooks git runs besides baton's two. In the global hooks folder that baton makes (and
/// sets as `core.hooksPath`, which makes git stop running each repository's `.git/hooks`), each
/// gets a relay to the repository's own. Not relayed: `reference-transaction` and
/// `post-index-change`, which git runs for nearly every command (a relay would cost a shell
/// each time), `proc-receive`, which talks a protocol with git on its standard input and output,
/// and `fsmonitor-watchman`, which is named by `core.fsmonitor`, not found there.
pub(super) const RELAYED: [&str; 20] = [
    "applypatch-msg",
    "pre-applypatch",
    "post-applypatch",
    "pre-commit",
    "pre-merge-commit",
    "post-commit",
    "pre-rebase",
    "post-checkout",
    "post-merge",
    "pre-push",
    "pre-receive",
    "update",
    "post-receive",
    "post-update",
    "push-to-checkout",
    "pre-auto-gc",
    "post-rewrite",
    "sendemail-validate",
    "p4-pre-submit",
    "p4-post-changelist",
];

/// The relay for hook `name` (see `RELAYED`): it runs a hook of that name that was in the folder
/// before (kept as `NAME.baton-orig`; its refusal stands), then the repository's own, each with
/// git's arguments and standard input, and passes on the status.
pub(super) fn relay_text(name: &str) -> String {
    format!(
        "#!/bin/sh\n\
         {MARKER} relay {name}: this folder is your global core.hooksPath, made by\n\
         # `baton install git --global`, so git runs its hooks instead of each repository's own\n\
         # .git/hooks. This one runs the one that was here before (kept as {name}{KEPT}), then\n\
         # the repository's own {name}, if they exist.\n\
         own=\"$(git rev-parse --git-common-dir 2>/dev/null)/hooks/{name}\"\n\
         [ -x \"$own\" ] && ! grep -q '^{MARKER}' \"$own\" || own=\n\
         if [ -x \"$0{KEPT}\" ]; then\n\
         \x20 [ -z \"$own\" ] && exec \"$0{KEPT}\" \"$@\"\n\
         \x20 # Both read git's input: each gets its own copy.\n\
         \x20 input=$(mktemp) || exit 1\n\
         \x20 trap 'rm -f \"$input\"' EXIT\n\
         \x20 cat > \"$input\"\n\
         \x20 \"$0{KEPT}\" \"$@\" < \"$input\" || exit\n\
         \x20 \"$own\" \"$@\" < \"$input\"\n\
         \x20 exit\n\
         fi\n\
         [ -n \"$own\" ] && exec \"$own\" \"$@\"\n\
         exit 0\n"
    )
}

/// The suffix a user's hook is kept under while baton's runs in its place.
pub(super) const KEPT: &str = ".baton-orig";

/// A file operation that failed: the machine's doing (a full disk, a read-only folder: exit 6)
/// or the user's (a path that is not a folder: exit 2).
pub(super) fn io_failure(what: String, e: std::io::Error) -> anyhow::Error {
    let message = format!("{what}: {e}");
    if crate::error::is_environment(&e) {
        crate::error::Error::Environment(message).into()
    } else {
        usage(message)
    }
}

/// `s` quoted for sh.
pub(super) fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A hook's text as installed: the template with the baton path and the stand-in flag filled in.
pub(super) fn hook_text(template: &str, baton: &Path, stands_in: bool) -> String {
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
pub(super) fn is_ours(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
        && fs::read_to_string(path).is_ok_and(|t| t.lines().any(|l| l.starts_with(MARKER)))
}

pub(super) fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// The baton an installed hook runs (its `recorded=` line).
pub(super) fn recorded(path: &Path) -> Option<String> {
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
    let fail = |e: std::io::Error| io_failure(format!("writing {}", path.display()), e);
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
pub(super) fn install_hook(dir: &Path, name: &str, text: &str) -> Result<String> {
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
        io_failure(
            format!("keeping your hook {} as {}", path.display(), kept.display()),
            e,
        )
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
pub(super) fn uninstall_hook(dir: &Path, name: &str) -> Result<String> {
    let path = dir.join(name);
    let kept = dir.join(format!("{name}{KEPT}"));
    let restore = || {
        fs::rename(&kept, &path).map_err(|e| {
            io_failure(
                format!("putting back {} as {}", kept.display(), path.display()),
                e,
            )
        })
    };
    if is_ours(&path) {
        if exists(&kept) {
            restore()?;
            return Ok(format!("{name}: removed; your hook is back"));
        }
        fs::remove_file(&path)
            .map_err(|e| io_failure(format!("removing {}", path.display()), e))?;
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
}

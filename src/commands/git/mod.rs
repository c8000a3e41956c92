//! `baton install git [--global] [--repo PATH] [--editor] [--check]` and `baton uninstall git`:
//! baton's git hooks put where git runs hooks (`place`), written and taken out (`files`).
//!
//! The invariants: a hook of the user's is never overwritten — it is kept as `NAME.baton-orig`
//! and run first by baton's hook — and uninstall puts it back byte for byte. Installing twice
//! changes nothing. git config is changed only where asked (`core.editor` with `--editor`, the
//! value it replaces kept to be put back) or needed (the global `core.hooksPath`, set only if
//! none is), and uninstall undoes exactly that.

mod files;
mod place;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::usage;
use crate::exit::Exit;
use crate::git;
use files::{exists, install_hook, is_ours, recorded, uninstall_hook, HOOKS, KEPT, RELAYED};
use place::{
    baton_global_dir, baton_path, is_baton_editor, place, restore_editor, set_editor, Place,
};

type Result<T> = anyhow::Result<T>;

pub struct GitArgs {
    pub global: bool,
    pub repo: Option<PathBuf>,
    pub editor: bool,
    pub check: bool,
}

pub fn install(args: GitArgs) -> Result<Exit> {
    let place = place(&args)?;
    if args.check {
        return check(&place);
    }
    let baton = baton_path()?;
    fs::create_dir_all(&place.hooks)
        .map_err(|e| files::io_failure(format!("creating {}", place.hooks.display()), e))?;
    println!("hooks folder: {} ({})", place.hooks.display(), place.why);
    for (name, template) in HOOKS {
        let text = files::hook_text(template, &baton, place.stands_in);
        println!("  {}", install_hook(&place.hooks, name, &text)?);
    }
    if place.stands_in {
        for name in RELAYED {
            let did = install_hook(&place.hooks, name, &files::relay_text(name))?;
            // A hook of yours that was here is kept and run first: said, as for baton's two.
            if did.contains(KEPT) {
                println!("  {did}");
            }
        }
        println!(
            "  {} other hooks: relays to each repository's own .git/hooks (all but reference-transaction, post-index-change and proc-receive)",
            RELAYED.len()
        );
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
    if place.shared {
        return Err(usage(format!(
            "the hooks here are in {} ({}): taking them out would take them out of every repository; `baton uninstall git --global` does that",
            place.hooks.display(),
            place.why
        )));
    }
    if place.global && place.set_hooks_path {
        println!("no global core.hooksPath: no global hooks of baton's to take out");
    } else {
        println!("hooks folder: {} ({})", place.hooks.display(), place.why);
        for (name, _) in HOOKS {
            println!("  {}", uninstall_hook(&place.hooks, name)?);
        }
        if place.stands_in {
            for name in RELAYED {
                uninstall_hook(&place.hooks, name)?;
            }
            println!("  the relays to each repository's own hooks: removed");
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
/// How one of baton's git hooks stands in a hooks folder.
pub enum HookState {
    /// baton's, running `runs` (else the baton on PATH), which is there or not.
    Ours {
        runs: Option<String>,
        there: bool,
    },
    /// A hook of the user's own.
    Foreign,
    Missing,
}

/// Each of baton's git hooks in `hooks`, as it stands.
fn hook_states(hooks: &Path) -> Vec<(&'static str, HookState)> {
    HOOKS
        .iter()
        .map(|(name, _)| {
            let path = hooks.join(name);
            let state = if is_ours(&path) {
                let runs = recorded(&path);
                let there = match &runs {
                    Some(b) => is_executable(Path::new(b)),
                    None => which::which("baton").is_ok(),
                };
                HookState::Ours { runs, there }
            } else if exists(&path) {
                HookState::Foreign
            } else {
                HookState::Missing
            };
            (*name, state)
        })
        .collect()
}

/// baton's git hooks in one repository, as `baton doctor` reports them.
pub struct Installed {
    pub folder: PathBuf,
    pub hooks: Vec<(&'static str, HookState)>,
    /// A commit or review agent is configured there (so the hooks are wanted).
    pub wanted: bool,
}

/// baton's git hooks in the repository at `dir`; `None` outside a git repository.
pub fn state(dir: &Path) -> Option<Installed> {
    git::text(dir, &["rev-parse", "--git-dir"]).ok()?;
    let place = place(&GitArgs {
        global: false,
        repo: Some(dir.to_path_buf()),
        editor: false,
        check: false,
    })
    .ok()?;
    let settings = git::settings(&git::entries(dir), crate::config::load(dir).ok().as_ref());
    let wanted = settings.commit_agent.is_some() || settings.review_agent.is_some();
    Some(Installed {
        folder: place.hooks.clone(),
        hooks: hook_states(&place.hooks),
        wanted,
    })
}

fn check(place: &Place) -> Result<Exit> {
    let mut sound = true;
    println!("hooks folder: {} ({})", place.hooks.display(), place.why);
    if place.global && place.set_hooks_path {
        println!("  no global core.hooksPath: baton's global hooks are not installed");
        sound = false;
    }
    for (name, state) in hook_states(&place.hooks) {
        let kept = place.hooks.join(format!("{name}{KEPT}"));
        let chained = if exists(&kept) {
            format!("; runs your {name}{KEPT} first")
        } else {
            String::new()
        };
        match state {
            HookState::Ours {
                runs: Some(b),
                there: true,
            } => println!("  {name}: baton's, runs {b}{chained}"),
            HookState::Ours { runs: Some(b), .. } => {
                let on_path = which::which("baton")
                    .map(|p| format!("falls back to {}", p.display()))
                    .unwrap_or_else(|_| "and no baton is on PATH".into());
                println!("  {name}: baton's, but {b} is missing: it {on_path}{chained}");
                sound = false;
            }
            HookState::Ours { runs: None, .. } => {
                println!("  {name}: baton's, runs baton on PATH{chained}")
            }
            HookState::Foreign => {
                println!("  {name}: not baton's (a hook of your own)");
                sound = false;
            }
            HookState::Missing => {
                println!("  {name}: not installed");
                sound = false;
            }
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

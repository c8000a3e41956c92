//! `baton completions SHELL` and `baton man`: both made from the clap definitions in `cli`, so
//! neither can go stale.
//!
//! Completions are dynamic, with clap_complete's engine: the script a shell loads is a few lines
//! that, at each Tab, run `BATON_COMPLETE=<shell> baton -- <the words so far>`; baton answers
//! from its own command line definition (commands, options, values) and, for the arguments that
//! name an agent, from the state folder and the config in effect (`agent_names`). Chosen over
//! static scripts because a static script cannot know agent names (they change as agents are
//! started and removed), and because the same engine serves all five shells; the engine sits
//! behind clap_complete's `unstable-dynamic` feature, which means its Rust API may change on an
//! upgrade (Cargo.lock pins it), while the scripts users load call the installed binary and so
//! always match it. The answer is given before anything else runs (`answer_if_asked`), editor
//! mode included; it reads the state folder and the config, and never creates or writes
//! anything.
//!
//! The man page is one page, `baton(1)`: every command with its synopsis, description, options
//! and examples, then the notes of `baton --help` (editor mode, the state folder, exit codes).

use std::ffi::{OsStr, OsString};

use clap_complete::engine::CompletionCandidate;
use clap_complete::env::{CompleteEnv, Shells};
use clap_mangen::roff::{bold, italic, roman, Roff};

use crate::exit::Exit;
use crate::protocol::{agent, lock, store};

type Result<T> = anyhow::Result<T>;

/// The variable that turns a run of baton into a completion request.
pub const VAR: &str = "BATON_COMPLETE";

/// `--help` examples of `baton completions`.
pub const EXAMPLES: &str = "\
Examples:
  source <(baton completions bash)                                  in ~/.bashrc
  baton completions fish > ~/.config/fish/completions/baton.fish";

/// `--help` examples of `baton man`.
pub const MAN_EXAMPLES: &str = "\
Examples:
  baton man | man -l -                                    read it now
  baton man > ~/.local/share/man/man1/baton.1             install it for `man baton`";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

impl Shell {
    fn name(self) -> &'static str {
        match self {
            Shell::Bash => "bash",
            Shell::Zsh => "zsh",
            Shell::Fish => "fish",
            Shell::Elvish => "elvish",
            Shell::Powershell => "powershell",
        }
    }
}

/// Answers a shell's completion request (`BATON_COMPLETE` set), if this run is one.
pub fn answer_if_asked(args: &[OsString]) -> Result<Option<Exit>> {
    if std::env::var_os(VAR).is_none() {
        return Ok(None);
    }
    let argv = std::iter::once(OsString::from("baton")).chain(args.iter().cloned());
    let cwd = std::env::current_dir().ok();
    match CompleteEnv::with_factory(crate::cli::command)
        .var(VAR)
        .try_complete(argv, cwd.as_deref())
    {
        Ok(true) => Ok(Some(Exit::Ok)),
        Ok(false) => Ok(None),
        Err(e) => {
            let _ = e.print();
            Ok(Some(Exit::Usage))
        }
    }
}

/// Prints the script that makes `shell` complete baton.
pub fn completions(shell: Shell) -> Result<Exit> {
    let shells = Shells::builtins();
    let Some(completer) = shells.completer(shell.name()) else {
        return Err(crate::error::usage(format!(
            "no completions for {}",
            shell.name()
        )));
    };
    let mut script = Vec::new();
    completer.write_registration(VAR, "baton", "baton", &self_command(), &mut script)?;
    super::print_out(&script)
}

/// How a script should run this baton: `baton` if that is what PATH finds, else its full path.
fn self_command() -> String {
    let me = std::env::current_exe().and_then(std::fs::canonicalize).ok();
    let on_path = which::which("baton")
        .ok()
        .and_then(|p| std::fs::canonicalize(p).ok());
    match me {
        Some(me) if on_path.as_ref() != Some(&me) => me.to_string_lossy().into_owned(),
        _ => "baton".into(),
    }
}

/// The agents a person can name here, with a word about each: the agents and pools the config
/// in effect declares (by name), and the agents in the state folder — global ones by name, this
/// project's by the name they are declared with; other projects' are left out (they are named
/// with `--project`).
fn known_agents() -> Vec<(String, String)> {
    let config = super::load_config(None).ok();
    let mut names: Vec<(String, String)> = Vec::new();
    let project_id = config
        .as_ref()
        .and_then(|c| c.project.as_ref())
        .map(|p| p.id.clone());
    if let Some(config) = &config {
        for decl in config.effective() {
            names.push((decl.name.clone(), format!("declared {}", decl.kind())));
        }
    }
    let agents = store::default_root().map(|r| r.join("agents"));
    let listed = agents.ok().and_then(|dir| std::fs::read_dir(&dir).ok());
    for entry in listed.into_iter().flatten().flatten() {
        let Some(id) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if agent::validate_id(&id).is_err() {
            continue;
        }
        let name = match id.split_once('.') {
            None => id.clone(),
            Some((name, project)) if Some(project) == project_id.as_deref() => name.to_string(),
            Some(_) => continue,
        };
        let state = if lock::is_alive(&entry.path().join("lock")) {
            "running"
        } else {
            "stopped"
        };
        match names.iter_mut().find(|(n, _)| *n == name) {
            Some(known) => known.1 = state.to_string(),
            None => names.push((name, state.to_string())),
        }
    }
    names.sort();
    names
}

/// Completes an agent's name.
pub fn agent_names(current: &OsStr) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy();
    known_agents()
        .into_iter()
        .filter(|(n, _)| n.starts_with(current.as_ref()))
        .map(|(n, about)| CompletionCandidate::new(n).help(Some(about.into())))
        .collect()
}

/// Completes the last name of a comma-separated list of agents (`ask a,b,<Tab>`).
pub fn agent_lists(current: &OsStr) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy();
    let (done, last) = match current.rsplit_once(',') {
        Some((done, last)) => (format!("{done},"), last.to_string()),
        None => (String::new(), current.to_string()),
    };
    let given: Vec<&str> = done.split(',').collect();
    agent_names(OsStr::new(&last))
        .into_iter()
        .filter(|c| !given.contains(&c.get_value().to_string_lossy().as_ref()))
        .map(|c| c.add_prefix(done.clone()))
        .collect()
}

/// Prints the man page.
pub fn man() -> Result<Exit> {
    let mut cmd = crate::cli::command();
    cmd.build();
    let mut page = Roff::new();
    let version = format!("baton {}", cmd.get_version().unwrap_or_default());
    page.control("TH", ["BATON", "1", "", &version, "User Commands"]);
    page.control("SH", ["NAME"]);
    page.text([roman(format!(
        "baton - {}",
        cmd.get_about().map(|a| a.to_string()).unwrap_or_default()
    ))]);
    page.control("SH", ["SYNOPSIS"]);
    page.text([bold("baton"), roman(" "), italic("FILE")]);
    page.control("br", []);
    page.text([
        bold("baton"),
        roman(" "),
        italic("COMMAND"),
        roman(" ["),
        italic("OPTIONS"),
        roman("]"),
    ]);
    page.control("SH", ["DESCRIPTION"]);
    page.text([roman(DESCRIPTION)]);
    page.control("SH", ["COMMANDS"]);
    for sub in cmd.get_subcommands().filter(shown) {
        command_section(&mut page, sub);
    }
    if let Some(notes) = cmd.get_after_help() {
        page.control("SH", ["NOTES"]);
        verbatim(&mut page, &notes.to_string());
    }
    page.control("SH", ["ENVIRONMENT"]);
    for (name, what) in ENVIRONMENT {
        page.control("TP", []);
        page.text([bold(name.to_string())]);
        page.text([roman(what.to_string())]);
    }
    page.control("SH", ["SEE ALSO"]);
    page.text([
        roman("The README and INSTALL.md of baton's source; "),
        bold("baton"),
        roman(" "),
        italic("COMMAND"),
        roman(" --help."),
    ]);
    let mut out = Vec::new();
    page.to_writer(&mut out)?;
    super::print_out(&out)
}

const DESCRIPTION: &str = "baton hands a prompt to a persistent agent and hands the answer back. \
Installed as $VISUAL (as baton-edit, its editor mode, which passes a prompt without a directive \
straight to the real editor) it is what Claude Code runs on Ctrl-G: a prompt that starts with @agent goes \
to that agent, baton waits for its answer and writes it into the file. At a shell, baton ask AGENT \
PROMPT prints the answer. Everything between callers and agents is a file in the state folder, \
which any process can read and write.";

const ENVIRONMENT: [(&str, &str); 7] = [
    (
        "BATON_HOME",
        "The state folder (else $XDG_STATE_HOME/baton, else ~/.local/state/baton).",
    ),
    (
        "BATON_EDITOR",
        "The real editor that editor mode opens for a prompt not addressed to an agent.",
    ),
    ("BATON_TIMEOUT", "Bounds the wait in editor mode, e.g. 10m."),
    (
        "BATON_CONFIG",
        "The user's config file (else ~/.config/baton/config.toml).",
    ),
    (
        "VISUAL, EDITOR",
        "What Claude Code and git run on a prompt: set to baton to delegate.",
    ),
    (
        "NO_COLOR",
        "Set (to anything but the empty string): no colour in baton's output.",
    ),
    (
        "BATON_COMPLETE",
        "Set by the completion scripts: the run answers a shell's completion request.",
    ),
];

/// A command the page describes: not hidden, and not clap's own `help`.
fn shown(cmd: &&clap::Command) -> bool {
    !cmd.is_hide_set() && cmd.get_name() != "help"
}

/// One command's subsection: synopsis, description, arguments and options, examples; then its
/// own commands.
fn command_section(page: &mut Roff, cmd: &clap::Command) {
    let usage = cmd.clone().render_usage().to_string();
    let usage = usage.trim().strip_prefix("Usage: ").unwrap_or(usage.trim());
    let title = cmd.get_bin_name().unwrap_or(cmd.get_name()).to_string();
    page.control("SS", [title.as_str()]);
    page.text([bold(usage)]);
    page.control("PP", []);
    let about = cmd.get_long_about().or(cmd.get_about());
    let mut about = about.map(|a| a.to_string()).unwrap_or_default();
    if !about.is_empty() && !about.ends_with('.') {
        about.push('.');
    }
    page.text([roman(about)]);
    let described =
        |a: &&clap::Arg| !a.is_hide_set() && !["help", "version"].contains(&a.get_id().as_str());
    for arg in cmd.get_arguments().filter(described) {
        page.control("TP", []);
        page.text(arg_header(arg));
        let help = arg.get_long_help().or(arg.get_help());
        let mut text = help.map(|h| h.to_string()).unwrap_or_default();
        if !text.is_empty() && !text.ends_with('.') {
            text.push('.');
        }
        let takes_values = arg.get_num_args().is_some_and(|n| n.takes_values());
        let values: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| v.get_name().to_string())
            .collect();
        if !values.is_empty() && takes_values {
            text.push_str(&format!(" One of: {}.", values.join(", ")));
        }
        if let Some(default) = arg.get_default_values().first().filter(|_| takes_values) {
            text.push_str(&format!(" Default: {}.", default.to_string_lossy()));
        }
        page.text([roman(text)]);
    }
    if let Some(examples) = cmd.get_after_help() {
        page.control("PP", []);
        verbatim(page, &examples.to_string());
    }
    for sub in cmd.get_subcommands().filter(shown) {
        command_section(page, sub);
    }
}

/// How an argument is named: `-f, --follow`, `--lines N`, or a positional's `NAME`.
fn arg_header(arg: &clap::Arg) -> Vec<clap_mangen::roff::Inline> {
    let value = arg
        .get_value_names()
        .and_then(|v| v.first())
        .map(|v| v.to_string())
        .unwrap_or_else(|| arg.get_id().to_string().to_uppercase());
    if arg.is_positional() {
        return vec![italic(value)];
    }
    let mut header = Vec::new();
    if let Some(short) = arg.get_short() {
        header.push(bold(format!("-{short}")));
    }
    if let Some(long) = arg.get_long() {
        if !header.is_empty() {
            header.push(roman(", "));
        }
        header.push(bold(format!("--{long}")));
    }
    if arg.get_num_args().is_some_and(|n| n.takes_values()) {
        header.push(roman(" "));
        header.push(italic(value));
    }
    header
}

/// Text kept line for line, as `--help` shows it.
fn verbatim(page: &mut Roff, text: &str) {
    page.control("nf", []);
    for line in text.lines() {
        page.text([roman(line)]);
    }
    page.control("fi", []);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_gets_a_script() {
        for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
            let shells = Shells::builtins();
            let c = shells.completer(shell).unwrap();
            let mut out = Vec::new();
            c.write_registration(VAR, "baton", "baton", "baton", &mut out)
                .unwrap();
            assert!(String::from_utf8(out).unwrap().contains(VAR), "{shell}");
        }
    }

    #[test]
    fn the_definitions_are_sound() {
        crate::cli::command().debug_assert();
    }
}

//! Running a parsed command line: editor mode recognised before clap, clap's errors, SIGPIPE's
//! disposition for short-lived commands, and `dispatch`, which hands each command to its module
//! in `commands` (entry points parse and print; the work is in the coordinator).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::{AgentCmd, Cli, Cmd, ConfigCmd, InstallTarget, MsgCmd, Result};
use crate::commands::{self, agent, ask, completions, doctor, logs, status, tasks, watch};
use crate::editor::{self, EditArgs};
use crate::editor_rules;
use crate::error::usage;
use crate::exit::Exit;
use crate::protocol::Store;
use crate::sys::time::parse_duration;

/// Editor mode: exactly one argument is not a flag, it is the last, and it names an existing
/// file or looks like a path (it contains `/` or `.`): what `$EDITOR` callers pass. A lone word
/// that is neither (`baton stauts`) is a command, and clap says what is wrong with it. The rules
/// are `editor_rules`', which `baton-edit` shares.
fn editor_file(args: &[OsString]) -> Option<PathBuf> {
    let file = editor_rules::sole_file(args.iter().map(|a| a.as_encoded_bytes()))?;
    let path = PathBuf::from(args.last()?);
    (editor_rules::looks_like_path(file) || path.is_file()).then_some(path)
}

fn env_timeout() -> Result<Option<Duration>> {
    match std::env::var("BATON_TIMEOUT") {
        Ok(v) if !v.trim().is_empty() => parse_duration(&v)
            .map(Some)
            .map_err(|e| usage(format!("BATON_TIMEOUT: {e}"))),
        _ => Ok(None),
    }
}

/// The whole program: parses `args` (without the program name) and runs the command.
pub fn run(args: Vec<OsString>) -> Result<Exit> {
    // A shell asking for completions (the script `baton completions SHELL` prints) is answered
    // before anything else, editor mode included.
    if let Some(exit) = completions::answer_if_asked(&args)? {
        return Ok(exit);
    }
    if let Some(file) = editor_file(&args) {
        return editor::run(EditArgs {
            file,
            passthrough: args,
            agent: None,
            timeout: env_timeout()?,
        });
    }
    let cli = match Cli::try_parse_from(std::iter::once(OsString::from("baton")).chain(args)) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Ok
            };
            let _ = e.print();
            if e.kind() == clap::error::ErrorKind::InvalidSubcommand {
                if let Some(word) = e.get(clap::error::ContextKind::InvalidSubcommand) {
                    eprintln!("To edit a file named {word}, give its path: baton ./{word}");
                }
            }
            return Ok(code);
        }
    };
    let long_lived = matches!(
        cli.command,
        Cmd::Agent {
            command: AgentCmd::Run { .. } | AgentCmd::Serve
        } | Cmd::Supervise { .. }
            | Cmd::Hook { .. }
            | Cmd::Edit { .. }
            // Mark what they show seen or read: a reader gone gives it back (EPIPE), not a
            // silent death.
            | Cmd::Results { mark: true, .. }
            | Cmd::Msg {
                command: MsgCmd::Read { mark: true, .. }
            }
    );
    if !long_lived {
        crate::sys::signals::default_sigpipe();
    }
    dispatch(cli.command)
}

fn dispatch(cmd: Cmd) -> Result<Exit> {
    match cmd {
        Cmd::Demo => commands::demo::demo(),
        Cmd::Attach { name, project } => agent::attach(&Store::open()?, &project.config()?, &name),
        Cmd::Up { project } => commands::team::up(&Store::open()?, &project.config()?),
        Cmd::Down { project } => commands::team::down(&Store::open()?, &project.config()?),
        Cmd::Config { command } => match command {
            ConfigCmd::Check { project } => commands::team::check(project.project.as_deref()),
            ConfigCmd::Show { project } => commands::team::show(&project.config()?),
        },
        Cmd::Hook { kind, args } => crate::hook::run(&kind, &args),
        Cmd::Install {
            target:
                InstallTarget::Claude {
                    project,
                    user: _,
                    dry_run,
                    chief,
                },
        } => commands::install::install(project.as_deref(), dry_run, chief),
        Cmd::Uninstall {
            target:
                InstallTarget::Claude {
                    project,
                    user: _,
                    dry_run,
                    chief: _,
                },
        } => commands::install::uninstall(project.as_deref(), dry_run),
        Cmd::Install {
            target: InstallTarget::Git(git),
        } => commands::git::install(git.into()),
        Cmd::Uninstall {
            target: InstallTarget::Git(git),
        } => commands::git::uninstall(git.into()),
        Cmd::Edit {
            file,
            agent,
            timeout,
        } => editor::run(EditArgs {
            passthrough: vec![file.clone().into()],
            file,
            agent,
            timeout: match timeout {
                Some(t) => Some(t),
                None => env_timeout()?,
            },
        }),
        Cmd::Ask {
            agents,
            prompt,
            delegate,
            output,
        } => ask::ask(
            &Store::open()?,
            delegate.ask(agents, prompt, output.format()),
        ),
        Cmd::Send {
            agents,
            prompt,
            delegate,
            json,
        } => ask::send(
            &Store::open()?,
            delegate.ask(agents, prompt, commands::Format::from_flags(json, false)),
        ),
        Cmd::Wait {
            tasks: ids,
            timeout,
            output,
        } => tasks::wait(&Store::open()?, &ids, timeout, output.format()),
        Cmd::Result { task, output } => tasks::result(&Store::open()?, &task, output.format()),
        Cmd::Cancel { tasks: ids } => tasks::cancel(&Store::open()?, &ids),
        Cmd::Results {
            json,
            all,
            mark,
            project,
        } => {
            let store = Store::open()?;
            let inbox = crate::coordinator::background::results_inbox(&store, &project.config()?);
            commands::results::results(&store, &inbox, json, all, mark)
        }
        Cmd::Supervise { root } => tasks::supervise(&Store::open()?, &root),
        Cmd::Msg { command } => match command {
            MsgCmd::Send { to, text, project } => {
                commands::msg::send(&Store::open()?, &project.config()?, &to, &text)
            }
            MsgCmd::Read {
                name,
                all,
                mark,
                json,
                project,
            } => commands::msg::read(
                &Store::open()?,
                &project.config()?,
                name.as_deref(),
                all,
                mark,
                json,
            ),
            MsgCmd::List { json } => commands::msg::list(&Store::open()?, json),
        },
        Cmd::Gc { older_than } => tasks::gc(
            &Store::open()?,
            older_than,
            commands::load_config(None)?
                .message_retention
                .map(|s| s.value),
        ),
        Cmd::Status {
            json: _,
            watch: true,
        } => watch::watch(&Store::open()?),
        Cmd::Status { json, watch: false } => status::status(&Store::open()?, json),
        Cmd::Logs {
            name,
            follow,
            lines,
            task,
            project,
        } => logs::logs(
            &Store::open()?,
            &project.config()?,
            logs::LogsArgs {
                name,
                follow,
                lines,
                task,
            },
        ),
        Cmd::Doctor { json, project } => doctor::doctor(project.project.as_deref(), json),
        Cmd::Completions { shell } => completions::completions(shell),
        Cmd::Man => completions::man(),
        Cmd::Agent { command } => match command {
            AgentCmd::Run { spec } => {
                let config = spec.project.config()?;
                let (name, given) = spec.given();
                agent::run(&Store::open()?, &config, &name, given)
            }
            AgentCmd::Start { spec } => {
                let config = spec.project.config()?;
                let (name, given) = spec.given();
                agent::start(&Store::open()?, &config, &name, given)
            }
            AgentCmd::Serve => {
                let spec = crate::runner::start::read_spec_from_stdin()?;
                crate::runner::run(&Store::open()?, &spec, true)?;
                Ok(Exit::Ok)
            }
            AgentCmd::Stop { name, project } => {
                agent::stop(&Store::open()?, &project.config()?, &name)
            }
            AgentCmd::List { long, json } => agent::list(&Store::open()?, long, json),
            AgentCmd::Reset { name, project } => {
                agent::reset(&Store::open()?, &project.config()?, &name)
            }
            AgentCmd::Remove { name, project } => {
                agent::remove(&Store::open()?, &project.config()?, &name)
            }
        },
    }
}

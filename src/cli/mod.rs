//! The command line: editor mode is recognised before clap (callers pass a file, maybe after
//! flags), everything else is a subcommand.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use clap_complete::engine::ArgValueCompleter;

use crate::commands::{self, ask, completions, doctor, logs, watch};
use crate::exit::EXIT_CODES_HELP;
use crate::sys::time::parse_duration;

mod examples;
mod groups;
mod run;

use examples::*;
use groups::*;
pub use run::run;

type Result<T> = anyhow::Result<T>;

#[derive(Parser, Debug)]
#[command(
    name = "baton",
    version,
    about = "Hand a prompt to a persistent agent and hand the answer back."
)]
#[command(after_help = format!("{AFTER_HELP}\n{EXIT_CODES_HELP}"))]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

// `defer`: a subcommand's arguments are made only when it runs (or `--help`, completions and
// the man page build them all), not at every start: 0.1-0.2 ms of each command. The argument
// structs it flattens must then say nothing of the command itself (no doc comment, which clap
// would make the subcommand's description, over the variant's): a test checks the structs it
// lists (`no_argument_struct_describes_a_command`), and a new one is added there.
#[derive(Subcommand, Debug)]
#[command(defer = true)]
enum Cmd {
    /// Send a prompt to agents, wait, print the answers: one agent, a fan-out, or a pipeline.
    ///
    /// A declared agent that is not running is started first. Ctrl-C (or SIGTERM, SIGHUP,
    /// SIGQUIT) withdraws or cancels what is in flight and exits 4. With --any, --retries and
    /// --gate the delegation is a workflow: every task of it is kept, and --json lists them.
    #[command(display_order = 2, after_help = ASK_EXAMPLES)]
    Ask {
        /// AGENT (an agent or a pool, declared or started by hand); A,B,… (a fan-out: the same
        /// prompt to each, every answer headed by its agent); 'A | B,C | D' (a pipeline: each
        /// stage gets the request and the answers of the stage before)
        #[arg(add = ArgValueCompleter::new(completions::agent_lists))]
        agents: String,
        /// The prompt; `-` (or nothing, when stdin is not a terminal) reads standard input.
        prompt: Option<String>,
        #[command(flatten)]
        delegate: DelegateArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Deliver a prompt and print the task id, without waiting; the answer goes to `baton results`.
    ///
    /// A workflow (a pipeline, --retries, --gate) goes on in the background, carried by a
    /// detached supervisor; its first task's id stands for it in `wait` and `result`.
    #[command(display_order = 3, after_help = SEND_EXAMPLES)]
    Send {
        /// AGENT, A,B,… or 'A | B' as for `ask` (a workflow goes on in the background)
        #[arg(add = ArgValueCompleter::new(completions::agent_lists))]
        agents: String,
        /// The prompt; `-` (or nothing, when stdin is not a terminal) reads standard input.
        prompt: Option<String>,
        #[command(flatten)]
        delegate: DelegateArgs,
        /// Print one JSON object per task instead of its id.
        #[arg(long)]
        json: bool,
    },
    /// Wait for tasks and print their answers (Ctrl-C stops waiting; the tasks keep running).
    #[command(display_order = 4, after_help = WAIT_EXAMPLES)]
    Wait {
        /// Task ids, as `send` printed them (a workflow's id waits for its outcome).
        #[arg(required = true, value_name = "TASK")]
        tasks: Vec<String>,
        /// Stop waiting after this long (the tasks keep running). Exit 3.
        #[arg(long, value_parser = parse_duration)]
        timeout: Option<Duration>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Print a finished task's answer (exit 2 if it has not finished).
    ///
    /// Exits with the code the task's end means. A workflow's id prints its outcome; with --json,
    /// every task it ran, each with its stage, attempt and gate round.
    #[command(display_order = 5, after_help = RESULT_EXAMPLES)]
    Result {
        /// The task id.
        task: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// The answers of background work (send, `&`, a detach) of this project that have arrived.
    #[command(display_order = 6, after_help = RESULTS_EXAMPLES)]
    Results {
        /// One JSON object per task's end, with `background` (the work's id) and `seen`.
        #[arg(long)]
        json: bool,
        /// Show those already seen too.
        #[arg(long)]
        all: bool,
        /// Mark what is shown as seen (`@results` and the chief's hooks do).
        #[arg(long)]
        mark: bool,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Agent mail: leave an agent a message, read an agent's messages, list mailboxes.
    #[command(display_order = 15)]
    Msg {
        #[command(subcommand)]
        command: MsgCmd,
    },
    /// Run a workflow to its end from its record (what `send`, `&` and `d` start, detached).
    #[command(hide = true)]
    Supervise { root: String },
    /// Withdraw queued tasks, or ask their agent to stop them.
    ///
    /// A workflow's id (its first task's) cancels the whole workflow: the process that runs it
    /// stops its running tasks and delivers nothing more.
    #[command(display_order = 7, after_help = CANCEL_EXAMPLES)]
    Cancel {
        /// Task ids.
        #[arg(required = true, value_name = "TASK")]
        tasks: Vec<String>,
    },
    /// Every agent: state, pid, driver, queue depth, unread mail, current task; the global queue.
    ///
    /// Read from the kernel (locks) and the files, never from a model; agents grouped by project,
    /// pools with their members, a runner that holds its lock but does not answer shown as
    /// wedged.
    #[command(display_order = 8, after_help = watch::STATUS_EXAMPLES)]
    Status {
        /// One JSON array, an object per agent.
        #[arg(long)]
        json: bool,
        /// Keep the view up to date: full-screen on a terminal, redrawn when something changes
        /// (q or Ctrl-C quits); elsewhere a new snapshot at each change, line by line.
        #[arg(long, conflicts_with = "json")]
        watch: bool,
    },
    /// Remove old finished tasks and old agent mail.
    ///
    /// Finished tasks whose end is older than --older-than (7d) go; unfinished tasks, tasks
    /// someone waits on and the tasks of a workflow that has not ended stay. Agent mail older
    /// than `message_retention` (24h) is purged.
    #[command(display_order = 20, after_help = GC_EXAMPLES)]
    Gc {
        /// Remove tasks that ended longer ago than this (e.g. 12h, 7d; 0s: every finished task).
        #[arg(long, default_value = "7d", value_parser = parse_duration, value_name = "DUR")]
        older_than: Duration,
    },
    /// Editor mode on FILE, as `baton FILE`; --agent sends the whole prompt to AGENT.
    #[command(display_order = 16, after_help = EDIT_EXAMPLES)]
    Edit {
        /// The file to edit (what $EDITOR callers pass).
        file: PathBuf,
        /// Send the whole prompt to this agent, without a directive.
        #[arg(long, add = ArgValueCompleter::new(completions::agent_names))]
        agent: Option<String>,
        /// Give up after this long (else BATON_TIMEOUT); the file is left as it was, exit 3.
        #[arg(long, value_parser = parse_duration)]
        timeout: Option<Duration>,
    },
    /// Run, start, stop, list, reset and remove agents.
    #[command(display_order = 10)]
    Agent {
        #[command(subcommand)]
        command: AgentCmd,
    },
    /// A complete round trip in a throw-away state folder: the first thing to run.
    #[command(display_order = 1, after_help = DEMO_EXAMPLES)]
    Demo,
    /// Start every agent the config declares (and one member of each pool) now.
    #[command(display_order = 11, after_help = UP_EXAMPLES)]
    Up {
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Stop every agent (and pool member) the config declares.
    #[command(display_order = 12, after_help = DOWN_EXAMPLES)]
    Down {
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Check the config files, or show the settings in effect and where each came from.
    #[command(display_order = 13)]
    Config {
        #[command(subcommand)]
        command: ConfigCmd,
    },
    /// Switch this terminal to a tmux agent's window (switch-client inside tmux, else attach).
    #[command(display_order = 14, after_help = ATTACH_EXAMPLES)]
    Attach {
        /// The agent (its driver must be tmux).
        #[arg(add = ArgValueCompleter::new(completions::agent_names))]
        name: String,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// What hooks run (Claude Code's and git's); `baton install` puts them in place.
    ///
    /// Claude Code's, inside an agent baton started: claude-session-start, claude-prompt,
    /// claude-stop, claude-stop-failure, claude-notification, claude-pre-tool, claude-post-tool
    /// (the event's JSON on stdin; always exit 0). The chief's, in the session that delegates:
    /// chief-prompt (prints the background results that arrived) and chief-wait (asyncRewake:
    /// waits for one, prints it on stderr, exits 2). git's (hooks/git/): git-prepare FILE [SOURCE
    /// [COMMIT]] (prepare-commit-msg; exit 0 whatever becomes of the draft) and git-commit-msg
    /// FILE (commit-msg; exit 1 rejects the message).
    #[command(display_order = 23, after_help = HOOK_EXAMPLES)]
    Hook {
        /// Which hook (see above).
        kind: String,
        /// The arguments git gives its hook (git's hooks only).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Install baton's hooks: into Claude Code's settings.json, or where git runs hooks.
    #[command(display_order = 17)]
    Install {
        #[command(subcommand)]
        target: InstallTarget,
    },
    /// Remove exactly the hooks `baton install` added (and, for git, the settings it changed).
    #[command(display_order = 18)]
    Uninstall {
        #[command(subcommand)]
        target: InstallTarget,
    },
    /// Print an agent's log, or one task's output; -f follows it as it grows.
    #[command(display_order = 9, after_help = logs::EXAMPLES)]
    Logs {
        /// The agent (a declared name, a pool member such as coding-2, or an id from `baton
        /// agent list`).
        #[arg(add = ArgValueCompleter::new(completions::agent_names))]
        name: String,
        /// Keep printing what is appended, across the log's rotation and runner restarts, until
        /// Ctrl-C (exit 0). With --task: until the task ends, exiting with its code.
        #[arg(short, long)]
        follow: bool,
        /// Print only the last N lines (`all`: everything). Default: 10 of a log, all of a
        /// task's output.
        #[arg(short = 'n', long = "lines", value_name = "N", value_parser = logs::parse_lines)]
        lines: Option<logs::Lines>,
        /// Show this task's output (while it runs) or its answer (once it has ended) instead of
        /// the agent's log.
        #[arg(long, value_name = "ID")]
        task: Option<String>,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Check the setup, one line per check, with the fix for each that fails (exit 1).
    ///
    /// The state folder (owner, mode, free space, inotify limits), the editors, tmux and claude,
    /// Claude Code's hooks, the git hooks, runners that died, the config.
    #[command(display_order = 19, after_help = doctor::EXAMPLES)]
    Doctor {
        /// Print the checks as one JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Print the shell code that completes baton's commands, options and agent names.
    #[command(display_order = 21, after_help = completions::EXAMPLES)]
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: completions::Shell,
    },
    /// Print baton's man page (roff), made from this help.
    #[command(display_order = 22, after_help = completions::MAN_EXAMPLES)]
    Man,
}

// How a task is delegated.
#[derive(clap::Args, Debug, Clone)]
struct DelegateArgs {
    /// Give up after this long (e.g. 30s, 10m); the task is cancelled, exit 3. Default: the
    /// agent's declared `timeout`, else the config's `default_timeout`, else none.
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Deliver even if the agent has no runner (and is not started on demand); wait for one.
    #[arg(long)]
    queue: bool,
    /// 0 (first) to 9 (last). Default: the agent's declared `priority`, else 5.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9))]
    priority: Option<u8>,
    /// Reach the agents of the project in DIR (the folder of its .baton.toml), from anywhere.
    #[arg(long, value_name = "DIR")]
    project: Option<PathBuf>,
    /// In a fan-out, the first answer that succeeds wins; the other tasks are cancelled.
    #[arg(long)]
    any: bool,
    /// Deliver a task that fails, times out or loses its agent again, at most N more times (0 to
    /// 10), each time with what went wrong. Default: the agent's declared `retries`, else 0.
    #[arg(long, value_name = "N")]
    retries: Option<u32>,
    /// A done-gate: after each answer, run CMD (`sh -c`, in the agent's folder, the answer on
    /// stdin). Exit 0 accepts; exit 2 sends the answer back with CMD's output; anything else
    /// fails the task. Default: the agent's declared `gate`.
    #[arg(long, value_name = "CMD")]
    gate: Option<String>,
    /// How many times the gate may send an answer back (default: declared, else 2).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10))]
    gate_rounds: Option<u32>,
}

impl DelegateArgs {
    fn ask(self, agents: String, prompt: Option<String>, format: commands::Format) -> ask::AskArgs {
        ask::AskArgs {
            agents,
            prompt,
            timeout: self.timeout,
            format,
            queue: self.queue,
            priority: self.priority,
            project: self.project,
            any: self.any,
            retries: self.retries,
            gate: self.gate,
            gate_rounds: self.gate_rounds,
        }
    }
}

// How answers are printed.
#[derive(clap::Args, Debug, Clone, Copy)]
struct OutputArgs {
    /// Print one JSON object per task: agent, state, exit code, error, answer, timings.
    #[arg(long, conflicts_with = "raw")]
    json: bool,
    /// Print the answer byte for byte: no line ending added, no heading per agent.
    #[arg(long)]
    raw: bool,
}

impl OutputArgs {
    fn format(self) -> commands::Format {
        commands::Format::from_flags(self.json, self.raw)
    }
}

/// The command line as clap sees it (for completions and the man page).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every visible command says what it does and shows an example; every argument says what it
    /// is. `--help` is where a person learns baton.
    #[test]
    fn every_command_and_argument_has_help_and_every_command_an_example() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                let name = format!("{path} {}", sub.get_name());
                if sub.get_name() == "help" {
                    continue;
                }
                if sub.get_about().is_none() {
                    missing.push(format!("{name}: no about"));
                }
                let is_group = sub.has_subcommands();
                if !is_group
                    && !sub
                        .get_after_help()
                        .is_some_and(|h| h.to_string().contains("Examples:"))
                {
                    missing.push(format!("{name}: no examples"));
                }
                for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
                    let id = arg.get_id().as_str();
                    if id != "help" && id != "version" && arg.get_help().is_none() {
                        missing.push(format!("{name} <{id}>: no help"));
                    }
                }
                walk(sub, &name, missing);
            }
        }
        // Each subcommand's arguments are added when it is built (`defer`): build them all.
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "baton", &mut missing);
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }

    /// With `defer`, what an argument struct says of a command would replace the description
    /// of every subcommand that flattens it.
    #[test]
    fn no_argument_struct_describes_a_command() {
        use clap::Args;
        let probe = || clap::Command::new("probe");
        let described = [
            ("DelegateArgs", DelegateArgs::augment_args(probe())),
            ("OutputArgs", OutputArgs::augment_args(probe())),
            ("SpecArgs", groups::SpecArgs::augment_args(probe())),
            ("ProjectArg", groups::ProjectArg::augment_args(probe())),
            ("GitOpts", groups::GitOpts::augment_args(probe())),
        ];
        for (name, cmd) in described {
            assert!(
                cmd.get_about().is_none() && cmd.get_long_about().is_none(),
                "{name} has a doc comment (a `//` comment does not describe the command)"
            );
        }
    }
}

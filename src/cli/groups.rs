//! The subcommands' own subcommands (`agent`, `msg`, `config`, `install`) and the argument
//! groups several commands share (an agent's spec, `--project`).

use std::path::PathBuf;

use clap::Subcommand;
use clap_complete::engine::ArgValueCompleter;

use super::examples::*;
use super::Result;
use crate::commands::{self, completions};
use crate::protocol::{DriverKind, Spec};

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub(super) enum InstallTarget {
    /// Claude Code: ~/.claude/settings.json (--user, the default) or DIR/.claude/settings.json.
    ///
    /// Install merges baton's hook entries, keeping every other setting and hook, with a backup;
    /// twice changes nothing. Uninstall takes out exactly baton's entries (the chief's too).
    #[command(after_help = CLAUDE_EXAMPLES)]
    Claude {
        /// The project whose .claude/settings.json to change.
        #[arg(long, value_name = "DIR", conflicts_with = "user")]
        project: Option<PathBuf>,
        /// ~/.claude/settings.json.
        #[arg(long)]
        user: bool,
        /// Show the change without writing it.
        #[arg(long)]
        dry_run: bool,
        /// Also the chief's hooks (for the top-level session that delegates): background
        /// results reach it with the next prompt, and wake it when it is idle.
        #[arg(long)]
        chief: bool,
    },
    /// git: a commit agent drafts messages, a review agent may reject them.
    ///
    /// The prepare-commit-msg hook (the commit agent drafts the message from the staged diff)
    /// and the commit-msg gate (an answer `REJECT: reason` from the review agent aborts the
    /// commit), put where git runs hooks (`git rev-parse --git-path hooks`, so core.hooksPath
    /// is respected). A hook already there is kept as NAME.baton-orig and run first; uninstall
    /// puts it back byte for byte, and undoes the git config install changed.
    #[command(after_help = GIT_AFTER_HELP)]
    Git(GitOpts),
}

// Where `install git` and `uninstall git` act, and how.
#[derive(clap::Args, Debug)]
pub(super) struct GitOpts {
    /// Every repository: the global core.hooksPath (set to ~/.config/baton/git-hooks, or
    /// under $XDG_CONFIG_HOME, only if none is set; else the hooks go where it says).
    #[arg(long, conflicts_with = "repo")]
    global: bool,
    /// The repository (default: the one the current folder is in).
    #[arg(long, value_name = "PATH")]
    repo: Option<PathBuf>,
    /// Also make baton git's core.editor (the editor it replaces still opens messages
    /// without an @agent directive). Install only.
    #[arg(long, conflicts_with = "check")]
    editor: bool,
    /// Say what is installed and which agents the hooks use; change nothing. Exit 2 if the
    /// hooks are not installed. Install only.
    #[arg(long)]
    check: bool,
}

impl From<GitOpts> for commands::git::GitArgs {
    fn from(o: GitOpts) -> Self {
        commands::git::GitArgs {
            global: o.global,
            repo: o.repo,
            editor: o.editor,
            check: o.check,
        }
    }
}

// How to run an agent. With none of these given, an agent that has run before is started
// again exactly as it was (its recorded `agent.json`); a new one is a shell agent. Any of them
// given replace the recorded spec.
#[derive(clap::Args, Debug, Clone)]
pub(super) struct SpecArgs {
    /// Agent name: 1-32 of a-z, 0-9, '_', '-'.
    #[arg(add = ArgValueCompleter::new(completions::agent_names))]
    pub(super) name: String,
    /// shell (the default for a new agent): one persistent shell, each task a script run in
    /// it. exec: one process per task, the prompt on stdin, stdout the answer. claude: one
    /// persistent headless Claude Code session. tmux: an interactive Claude Code in a tmux
    /// window.
    #[arg(long, value_enum)]
    pub(super) driver: Option<DriverKind>,
    /// The agent's working folder (default: the current one).
    #[arg(long)]
    pub(super) cwd: Option<PathBuf>,
    /// Set KEY=VALUE in the agent's environment.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub(super) env: Vec<String>,
    /// Pass this variable through from the caller's environment.
    #[arg(long = "pass-env", value_name = "NAME")]
    pub(super) pass_env: Vec<String>,
    /// The claude binary for the claude and tmux drivers (default: `claude` on PATH).
    #[arg(long, value_name = "PATH")]
    pub(super) claude: Option<PathBuf>,
    /// tmux driver: the tmux session that holds the agent's window (default: baton).
    #[arg(long)]
    pub(super) tmux_session: Option<String>,
    /// exec: the command run per task. shell: the shell (default: bash, else sh). claude: extra
    /// arguments for `claude`. tmux: the command in the window (default: claude; arguments that
    /// start with `-` are given to claude).
    #[arg(last = true)]
    pub(super) command: Vec<String>,
    #[command(flatten)]
    pub(super) project: ProjectArg,
}

impl SpecArgs {
    /// The spec these arguments give, or `None` if they give nothing but the name.
    pub(super) fn given(&self) -> (String, Option<Spec>) {
        let this = self.clone();
        this.into_given()
    }

    pub(super) fn into_given(self) -> (String, Option<Spec>) {
        let nothing = self.driver.is_none()
            && self.cwd.is_none()
            && self.env.is_empty()
            && self.pass_env.is_empty()
            && self.claude.is_none()
            && self.tmux_session.is_none()
            && self.command.is_empty();
        if nothing {
            return (self.name, None);
        }
        let mut spec = Spec::new(&self.name, self.driver.unwrap_or(DriverKind::Shell));
        spec.cwd = self.cwd;
        spec.env = self.env;
        spec.pass_env = self.pass_env;
        spec.command = self.command;
        spec.claude = self.claude;
        if let Some(session) = self.tmux_session {
            spec.tmux_session = session;
        }
        (self.name, Some(spec))
    }
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub(super) enum AgentCmd {
    /// Run the agent's runner in the foreground (its log on stderr; Ctrl-C stops it).
    #[command(after_help = AGENT_RUN_EXAMPLES)]
    Run {
        #[command(flatten)]
        spec: SpecArgs,
    },
    /// Start the runner detached; returns once it holds its lock.
    ///
    /// With nothing but the name, a declared agent starts from its declaration, and an agent
    /// that ran before exactly as it ran (its recorded agent.json); --driver, --cwd, --env,
    /// --pass-env, --claude, --tmux-session or `-- CMD` replace the recorded spec, and say so.
    #[command(after_help = AGENT_START_EXAMPLES)]
    Start {
        #[command(flatten)]
        spec: SpecArgs,
    },
    /// Run a runner from the spec (JSON) on standard input: what `agent start` runs, detached.
    #[command(hide = true)]
    Serve,
    /// Stop a runner (SIGTERM; a task in flight ends as cancelled; SIGKILL after 10 s).
    #[command(after_help = AGENT_STOP_EXAMPLES)]
    Stop {
        /// The agent.
        #[arg(add = ArgValueCompleter::new(completions::agent_names))]
        name: String,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// List the agents in the state folder: their names, one a line (for scripts).
    #[command(after_help = commands::agent::LIST_EXAMPLES)]
    List {
        /// Print name, state (running or stopped) and driver, tab-separated.
        #[arg(short, long, conflicts_with = "json")]
        long: bool,
        /// Print a JSON array: each agent's name, state, driver, project and pool.
        #[arg(long)]
        json: bool,
    },
    /// Forget the agent's context: the claude driver starts a new session.
    #[command(after_help = AGENT_RESET_EXAMPLES)]
    Reset {
        /// The agent (its driver must be claude).
        #[arg(add = ArgValueCompleter::new(completions::agent_names))]
        name: String,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Remove a stopped agent: its state and history, and its git worktree if it is clean.
    #[command(after_help = AGENT_REMOVE_EXAMPLES)]
    Remove {
        /// The agent (stopped: a running one is refused).
        #[arg(add = ArgValueCompleter::new(completions::agent_names))]
        name: String,
        #[command(flatten)]
        project: ProjectArg,
    },
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub(super) enum MsgCmd {
    /// Leave agent TO a message (from the agent this runs in, `BATON_AGENT`, else from `you`).
    ///
    /// A Claude Code agent (the claude and tmux drivers) finds its unread mail before its next
    /// task; any agent can read it with `baton msg read`.
    #[command(after_help = MSG_SEND_EXAMPLES)]
    Send {
        /// The agent (by the name you would `baton ask`).
        to: String,
        /// The message; `-` reads it from standard input (at most 1 MiB).
        text: String,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Print an agent's unread messages (without NAME: those of the agent this runs in).
    #[command(after_help = MSG_READ_EXAMPLES)]
    Read {
        /// The agent whose mail to read (default: `BATON_AGENT`, the agent this runs in).
        name: Option<String>,
        /// Every message kept, not only the unread ones.
        #[arg(long)]
        all: bool,
        /// Mark them read.
        #[arg(long)]
        mark: bool,
        /// The stored objects, one JSON line each: from, to, timestamp, text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Every mailbox: its agent, how many messages, how many unread.
    #[command(after_help = MSG_LIST_EXAMPLES)]
    List {
        /// One JSON object a line: agent, messages, unread.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub(super) enum ConfigCmd {
    /// Report every error in the config files (exit 2 if any), else what they declare.
    #[command(after_help = CONFIG_CHECK_EXAMPLES)]
    Check {
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Print the settings in effect, each with the file (and line) it came from.
    #[command(after_help = CONFIG_SHOW_EXAMPLES)]
    Show {
        #[command(flatten)]
        project: ProjectArg,
    },
}

// `--project DIR`: whose declarations to use.
#[derive(clap::Args, Debug, Clone, Default)]
pub(super) struct ProjectArg {
    /// Use the config of the project in DIR (the folder of its .baton.toml) instead of the
    /// current folder's.
    #[arg(long, value_name = "DIR")]
    pub(super) project: Option<PathBuf>,
}

impl ProjectArg {
    pub(super) fn config(&self) -> Result<crate::config::Config> {
        commands::load_config(self.project.as_deref())
    }
}

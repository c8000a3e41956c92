//! What `--help` shows after each command's options: its examples, and the longer notes of the
//! top-level help and of `install git`. Kept apart from the definitions so that those read as
//! the command line's shape.

pub(super) const ASK_EXAMPLES: &str = "\
Examples:
  baton ask planning \"Plan dark mode\"
  git diff | baton ask review -
  baton ask 'planning | review' \"Plan dark mode\"        # review gets the request and the plan
  baton ask a,b --any \"Find the cause of the auth failure\"
  baton ask coding \"Fix the flaky test\" --retries 2 --gate 'cargo test -q'";

pub(super) const SEND_EXAMPLES: &str = "\
Examples:
  id=$(baton send monitor \"Watch CI on main; answer when it fails\")
  baton results                      # later: what has arrived
  baton wait \"$id\"";

pub(super) const WAIT_EXAMPLES: &str = "\
Examples:
  baton wait 1795274623456789012-1a2b3c4d --timeout 10m
  baton wait \"$(baton send sh1 'make test')\" --json";

pub(super) const RESULT_EXAMPLES: &str = "\
Examples:
  baton result 1795274623456789012-1a2b3c4d
  baton result 1795274623456789012-1a2b3c4d --json   # a workflow: every task it ran";

pub(super) const RESULTS_EXAMPLES: &str = "\
Examples:
  baton results --mark
  baton results --all --json | jq -r .answer";

pub(super) const CANCEL_EXAMPLES: &str = "\
Examples:
  baton cancel 1795274623456789012-1a2b3c4d
  root=$(baton send 'planning | review' \"Plan dark mode\"); baton cancel \"$root\"   # the whole workflow";

pub(super) const GC_EXAMPLES: &str = "\
Examples:
  baton gc
  baton gc --older-than 12h";

pub(super) const EDIT_EXAMPLES: &str = "\
Examples:
  baton edit notes.md --agent planning    # the whole file is the prompt
  git config --global core.editor baton    # then `baton FILE` is what git runs";

pub(super) const DEMO_EXAMPLES: &str = "\
Examples:
  baton demo";

pub(super) const UP_EXAMPLES: &str = "\
Examples:
  baton up
  baton up --project ~/src/shop";

pub(super) const DOWN_EXAMPLES: &str = "\
Examples:
  baton down";

pub(super) const ATTACH_EXAMPLES: &str = "\
Examples:
  baton attach coding-2";

pub(super) const HOOK_EXAMPLES: &str = "\
Examples:
  echo '{\"hook_event_name\":\"UserPromptSubmit\",\"cwd\":\".\"}' | baton hook chief-prompt
  baton install claude --chief     # puts the hooks where Claude Code runs them";

pub(super) const AFTER_HELP: &str = "\
Editor mode:
  baton FILE            what $VISUAL/$EDITOR callers run (Claude Code's Ctrl-G, git). A prompt
                        whose first line starts with @agent is delegated and the answer written
                        into FILE; anything else opens $BATON_EDITOR (else nvim, vim, vi, nano).
                        BATON_TIMEOUT (e.g. 10m) bounds the wait. Directives: @a task, @a @b
                        task (fan-out), @a | @b task (pipeline), @a @b --any task, @a! task
                        (urgent), @a & task (background), @results (what has arrived).
  baton-edit FILE       the same, for $VISUAL (installed beside baton): a prompt with no
                        directive reaches $BATON_EDITOR without baton starting at all.

State folder: $BATON_HOME, else $XDG_STATE_HOME/baton, else ~/.local/state/baton.
";

pub(super) const AGENT_RUN_EXAMPLES: &str = "\
Examples:
  baton agent run sh1                               # watch its log; Ctrl-C stops it";

pub(super) const AGENT_START_EXAMPLES: &str = "\
Examples:
  baton agent start sh1                             # a persistent shell
  baton agent start rev --driver exec -- tr a-z A-Z
  baton agent start planning --driver claude -- --append-system-prompt 'You plan.'
  baton agent start coding --driver tmux            # Claude Code in a tmux window";

pub(super) const AGENT_STOP_EXAMPLES: &str = "\
Examples:
  baton agent stop sh1";

pub(super) const AGENT_RESET_EXAMPLES: &str = "\
Examples:
  baton agent reset planning";

pub(super) const AGENT_REMOVE_EXAMPLES: &str = "\
Examples:
  baton agent stop tests && baton agent remove tests";

pub(super) const MSG_SEND_EXAMPLES: &str = "\
Examples:
  baton msg send review \"the API changed: see docs/api.md\"
  git log -1 --stat | baton msg send planning -";

pub(super) const MSG_READ_EXAMPLES: &str = "\
Examples:
  baton msg read review
  baton msg read --mark            # inside an agent: its own mail, marked read";

pub(super) const MSG_LIST_EXAMPLES: &str = "\
Examples:
  baton msg list";

pub(super) const CONFIG_CHECK_EXAMPLES: &str = "\
Examples:
  baton config check
  baton config check --project ~/src/shop";

pub(super) const CONFIG_SHOW_EXAMPLES: &str = "\
Examples:
  baton config show";

pub(super) const CLAUDE_EXAMPLES: &str = "\
Examples:
  baton install claude --dry-run          # the change, as a diff
  baton install claude --chief            # also the chief's hooks: background results reach it
  baton install claude --project .        # this project's .claude/settings.json only
  baton uninstall claude";

pub(super) const GIT_AFTER_HELP: &str = "\
Examples:
  baton install git && git config baton.commitAgent writer   # drafts for every `git commit`
  git config baton.reviewAgent review     # the gate: an answer `REJECT: why` aborts the commit
  baton install git --global --editor     # every repository; `git commit -e -m '@agent …'` works
  baton install git --check               # what is installed, and the agents in use

Settings: git config baton.commitAgent, baton.reviewAgent, baton.timeout (default 60s),
baton.onFailure (accept|reject), baton.draftFor (sources also drafted for: message template
merge squash commit), over [git] commit_agent, review_agent, timeout, on_failure in .baton.toml.";

//! Starting a runner detached, from a `Spec`: the one way `agent start` (and, later, an on-demand
//! start) brings an agent up. The spec travels as JSON on the new runner's standard input, so
//! nothing is rebuilt from command-line arguments; the runner reports `ready PID` on its standard
//! output once it holds its lock, and everything it says after goes to the agent's log.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::error::{Error, IoContext};
use crate::poll::Poll;
use crate::protocol::{lock, store, Spec, Store};
use crate::sys::{spawn, time};

/// How long `start_runner` waits for the runner to hold its lock and report ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest spec a runner reads from its standard input.
const MAX_SPEC: u64 = 1 << 20;

/// A runner that has started.
pub struct Started {
    pub pid: u32,
    pub log: PathBuf,
}

/// Starts `spec`'s runner detached (`setsid`, output to the agent's log) and returns once it
/// holds its lock. A runner that fails to start leaves no new agent folder behind.
pub fn start_runner(store: &Store, spec: &Spec) -> anyhow::Result<Started> {
    let existed = store.agent(&spec.name)?.is_some();
    let paths = store.ensure_agent(&spec.name)?;
    if lock::runner_alive(&paths.lock) {
        let pid = lock::holder_pid(&paths.lock)
            .map(|p| p.to_string())
            .unwrap_or_else(|| "unknown".into());
        return Err(
            Error::Usage(format!("agent {} is already running, pid {pid}", spec.name)).into(),
        );
    }
    let mut spec = spec.clone();
    spec.cwd = Some(match &spec.cwd {
        Some(c) => std::path::absolute(c).during("resolving the working folder", c)?,
        None => std::env::current_dir().during("reading the current folder", ".")?,
    });
    let started = spawn_runner(store, &spec, &paths.log);
    if started.is_err() && !existed {
        let _ = std::fs::remove_dir_all(&paths.dir);
    }
    started
}

fn spawn_runner(store: &Store, spec: &Spec, log_path: &std::path::Path) -> anyhow::Result<Started> {
    let log = store::open_append(log_path)?;
    let log_len = log.metadata().map(|m| m.len()).unwrap_or(0);
    let exe = std::env::current_exe().during("finding the baton binary", "/proc/self/exe")?;
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::Environment(format!("creating a pipe: {e}")))?;
    let mut cmd = Command::new(exe);
    // A runner started from inside an agent is not that agent's: it carries none of its marks.
    cmd.args(["agent", "serve"])
        .env("BATON_HOME", store.root())
        .env_remove("BATON_AGENT")
        .env_remove("BATON_TASK_ID")
        .env_remove("BATON_SESSION_ID")
        .env_remove("BATON_PROJECT")
        .stdin(Stdio::piped())
        .stdout(Stdio::from(ready_w))
        .stderr(Stdio::from(log));
    // Started from `git commit` (baton as its editor or hook), it must not carry that commit's
    // repository and index: it outlives the commit, and its worktree is another checkout.
    for name in crate::git::COMMIT_ENV {
        cmd.env_remove(name);
    }
    spawn::detached(&mut cmd);
    let mut child = cmd.spawn().during("starting the runner for", log_path)?;
    drop(cmd); // closes our copy of the pipe's write end, so the runner's exit reads as EOF
    if let Some(mut stdin) = child.stdin.take() {
        let json = serde_json::to_vec(spec)?;
        // A broken pipe means the runner died at once; its log says why.
        let _ = stdin.write_all(&json);
    }
    let mut line = String::new();
    // A signal that wakes the wait is not the runner: it is waited for still (the caller looks at
    // its signals once the start is over), to the deadline.
    let reported = {
        let mut poll = Poll::new();
        let ready = poll.add(ready_r.as_fd());
        poll.wait_for(ready, time::deadline_after(START_TIMEOUT))
            .during("waiting for the runner of", log_path)?
    };
    if reported {
        let _ = std::fs::File::from(ready_r)
            .take(64)
            .read_to_string(&mut line);
    }
    if let Some(pid) = line.strip_prefix("ready ") {
        return Ok(Started {
            pid: pid.trim().parse().unwrap_or(child.id()),
            log: log_path.to_path_buf(),
        });
    }
    let _ = child.kill();
    let status = child.wait().ok();
    let why = runner_said(log_path, log_len);
    let message = match status.and_then(|s| s.code()) {
        Some(_) => format!("agent {} failed to start: {why}", spec.name),
        None => format!(
            "agent {} did not report ready within {}s: {why}",
            spec.name,
            START_TIMEOUT.as_secs()
        ),
    };
    // The runner's own exit code says whose fault it was.
    Err(match status.and_then(|s| s.code()) {
        Some(6) => Error::Environment(message),
        Some(2) => Error::Usage(message),
        _ => Error::Unreachable(message),
    }
    .into())
}

/// What a runner that failed to start wrote to the log (after `from`), without the `baton: `
/// that begins its error line.
fn runner_said(log: &std::path::Path, from: u64) -> String {
    let text = store::read_nofollow(log)
        .ok()
        .map(|b| String::from_utf8_lossy(b.get(from as usize..).unwrap_or_default()).into_owned())
        .unwrap_or_default();
    let last = text
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("it said nothing in its log");
    last.strip_prefix("baton: ").unwrap_or(last).to_string()
}

/// Reads the spec a starting runner is handed on its standard input.
pub fn read_spec_from_stdin() -> anyhow::Result<Spec> {
    let mut json = Vec::new();
    std::io::stdin()
        .take(MAX_SPEC)
        .read_to_end(&mut json)
        .during("reading the runner's spec from", "standard input")?;
    Ok(serde_json::from_slice(&json)
        .map_err(|e| Error::Usage(format!("the runner's spec is malformed: {e}")))?)
}

//! Done-gates: a command that judges an agent's answer, so that "done" is decided by a check (the
//! tests pass, the linter is clean), not by the agent's word. The gate runs as `sh -c CMD` in the
//! agent's working folder, in a process group of its own, with the answer on its standard input
//! and `BATON_AGENT`, `BATON_TASK_ID` added to the caller's environment. Exit 0 accepts; exit 2
//! sends the answer back to the agent with the gate's output (Claude Code's hooks use exit 2 the
//! same way); any other end fails the task.
//!
//! The caller waits for it in one `poll` on the gate's pidfd, its output, the signal pipe and
//! the deadline; a gate that outlives the deadline, or a caller that is stopped, kills its whole
//! process group. While it runs, `agents/<id>/gates/<task id>` names it (flocked by the caller,
//! so that `status` can tell a gate that runs from one whose caller died).

use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::poll::Poll;
use crate::protocol::{store, AgentPaths, TaskEnd, TaskPaths};
use crate::sys::signals::Signals;
use crate::sys::term::{Tty, CTRL_C};
use crate::sys::time;

/// The most of a gate's output kept (its end: where a test runner says what failed).
pub const MAX_GATE_OUTPUT: usize = 8 << 10;

/// What the gate said.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    /// Exit 2, with the gate's output.
    Reject(String),
    /// Any other exit (or no gate could run), saying why.
    Fail(String),
    /// The deadline passed; the gate was killed.
    Timeout(String),
    /// The caller was stopped (a signal, or Ctrl-C): the gate was killed.
    Stopped(String),
}

/// Where a gate runs and for whom.
pub struct Gate<'a> {
    pub command: &'a str,
    pub agent: &'a AgentPaths,
    pub task: &'a TaskPaths,
    pub end: &'a TaskEnd,
    pub timeout: Option<Duration>,
}

/// The folder the gate runs in: the agent's own (its worktree, if it has one), as its runner
/// recorded it; else the caller's.
fn folder_of(agent: &AgentPaths) -> Option<std::path::PathBuf> {
    agent
        .read_spec()
        .ok()
        .flatten()
        .and_then(|s| s.cwd)
        .filter(|d| d.is_dir())
}

/// Refuses, before anything is delivered, a gate whose program does not exist: `command -v` of
/// its first word in `sh` (a builtin, a function or a program on PATH all count).
pub fn check_exists(command: &str) -> anyhow::Result<()> {
    // Words are split here at blank space only: a command that quotes, escapes or expands
    // (`RUSTFLAGS="-D warnings" cargo test`) is left to sh, at the run.
    if command.contains(['\'', '"', '\\', '$', '`']) {
        return Ok(());
    }
    // The first word that is not a variable assignment (`RUST_LOG=1 cargo test`).
    let assignment = |w: &&str| {
        w.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    let Some(first) = command.split_whitespace().find(|w| !assignment(w)) else {
        return Ok(());
    };
    // A relative path is found from the agent's folder, where the gate runs, not from here;
    // a word sh opens a group or a subshell with is no command name.
    if (first.contains('/') && !first.starts_with('/')) || first.starts_with('(') {
        return Ok(());
    }
    let found = Command::new("sh")
        .args(["-c", "command -v -- \"$1\" >/dev/null 2>&1", "sh", first])
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        Ok(())
    } else {
        Err(crate::error::usage(format!(
            "the gate `{command}` cannot run: `{first}` is not a command here (not on PATH, not a shell builtin)"
        )))
    }
}

/// Runs the gate on the task's answer and waits for its verdict.
pub fn run(gate: &Gate, sigs: &Signals, mut tty: Option<&mut Tty>) -> Verdict {
    let cwd = folder_of(gate.agent)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| "/".into());
    let stdin = match store::open_nofollow(&gate.task.result) {
        Ok(f) => Stdio::from(f),
        Err(_) => Stdio::null(),
    };
    let (mut out_r, out_w) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => return Verdict::Fail(format!("cannot start the gate: {e}")),
    };
    let err_w = match out_w.try_clone() {
        Ok(w) => w,
        Err(e) => return Verdict::Fail(format!("cannot start the gate: {e}")),
    };
    let mut cmd = Command::new("sh");
    cmd.args(["-c", gate.command])
        .current_dir(&cwd)
        .env("BATON_AGENT", gate.agent.name())
        .env("BATON_TASK_ID", gate.task.id.as_str())
        .env_remove(super::background::LOCK_FD_VAR)
        .stdin(stdin)
        .stdout(out_w)
        .stderr(err_w)
        .process_group(0);
    // It judges the agent's work, in the agent's folder: not a commit that started it.
    for name in crate::git::COMMIT_ENV {
        cmd.env_remove(name);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Verdict::Fail(format!("cannot start the gate `{}`: {e}", gate.command)),
    };
    drop(cmd); // our copies of the pipe's write end: EOF comes when the gate's are closed
    let _marker = Marker::put(gate);
    if let Some(t) = tty.as_deref_mut() {
        // The agent has answered: the wait is the gate's now (it cannot be detached).
        t.status(&format!(
            "baton: the gate `{}` judges @{}'s answer{} · Ctrl-C cancel",
            gate.command,
            crate::protocol::agent::name_of(gate.agent.name()),
            gate.timeout
                .map(|t| format!(" (at most {})", time::human(t)))
                .unwrap_or_default()
        ));
    }
    let _ = set_nonblocking(out_r.as_fd());
    let deadline = gate.timeout.and_then(time::deadline_after);
    let mut output = Tail::default();
    let stopped = wait(
        &mut child,
        &mut out_r,
        &mut output,
        sigs,
        &mut tty,
        deadline,
    );
    let text = output.text();
    match stopped {
        Some(why) => {
            end_group(&mut child);
            match why {
                Stop::Deadline => Verdict::Timeout(format!(
                    "the gate `{}` did not finish within {}; it was killed{}",
                    gate.command,
                    gate.timeout.map(time::human).unwrap_or_default(),
                    tail_note(&text)
                )),
                Stop::Caller(how) => Verdict::Stopped(how),
            }
        }
        None => match child.wait().map(|s| s.code()) {
            Ok(Some(0)) => Verdict::Accept,
            Ok(Some(2)) => Verdict::Reject(text),
            Ok(code) => Verdict::Fail(format!(
                "the gate `{}` {}{}",
                gate.command,
                match code {
                    Some(c) => format!("exited with status {c}"),
                    None => "was killed by a signal".into(),
                },
                tail_note(&text)
            )),
            Err(e) => Verdict::Fail(format!("waiting for the gate: {e}")),
        },
    }
}

fn tail_note(text: &str) -> String {
    if text.trim().is_empty() {
        String::new()
    } else {
        format!("; its output ended:\n{}", text.trim_end())
    }
}

enum Stop {
    Deadline,
    Caller(String),
}

/// Waits until the gate's process has exited (its pidfd) and its output is read, or something
/// stops the wait (`Some`).
fn wait(
    child: &mut Child,
    out: &mut std::io::PipeReader,
    output: &mut Tail,
    sigs: &Signals,
    tty: &mut Option<&mut Tty>,
    deadline: Option<Instant>,
) -> Option<Stop> {
    let pidfd = pidfd_open(child.id());
    let mut eof = false;
    loop {
        if sigs.take().is_some() {
            return Some(Stop::Caller(
                "cancelled by a signal while the gate ran".into(),
            ));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Some(Stop::Deadline);
        }
        let exited = matches!(child.try_wait(), Ok(Some(_)));
        if exited && (eof || pidfd.is_none()) {
            output.read_from(out);
            return None;
        }
        let (key, _) = {
            let mut poll = Poll::new();
            poll.add(sigs.fd());
            let out_at = (!eof).then(|| poll.add(out.as_fd()));
            if let Some(fd) = &pidfd {
                poll.add(fd.as_fd());
            }
            let key = tty.as_deref().and_then(|t| t.keys()).map(|fd| poll.add(fd));
            // Without a pidfd (an old kernel) the gate's end is noticed when its output closes.
            let _ = poll.wait(deadline);
            (
                key.is_some_and(|k| poll.ready(k)),
                out_at.map(|i| poll.ready(i)),
            )
        };
        sigs.drain();
        if output.read_from(out) {
            eof = true;
        }
        // The gate itself has exited but something it started holds the pipe: stop reading.
        if exited && pidfd.is_some() {
            eof = true;
        }
        if let (true, Some(t)) = (key, tty.as_deref_mut()) {
            if t.read_keys().contains(&CTRL_C) {
                return Some(Stop::Caller(
                    "cancelled by Ctrl-C while the gate ran".into(),
                ));
            }
        }
    }
}

/// A pidfd for `pid`, readable once it exits (Linux 5.3 and later).
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1; it touches no
    // memory of ours.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid as nix::libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just gave us this descriptor, and nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn set_nonblocking(fd: std::os::fd::BorrowedFd) -> nix::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map(drop)
}

/// Ends the gate's process group: SIGTERM, then SIGKILL after a grace, and reaps it.
fn end_group(child: &mut Child) {
    let pgid = Pid::from_raw(child.id() as i32);
    let _ = killpg(pgid, Signal::SIGTERM);
    if let Some(fd) = pidfd_open(child.id()) {
        let mut poll = Poll::new();
        poll.add(fd.as_fd());
        let _ = poll.wait(time::deadline_after(crate::sys::spawn::KILL_GRACE));
    }
    let _ = killpg(pgid, Signal::SIGKILL);
    let _ = child.wait();
}

/// The end of what the gate printed, at most `MAX_GATE_OUTPUT` bytes.
#[derive(Default)]
struct Tail {
    bytes: Vec<u8>,
    cut: bool,
}

impl Tail {
    /// Reads what is there; true at end of file.
    fn read_from(&mut self, r: &mut impl Read) -> bool {
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return true,
                Ok(n) => {
                    self.bytes.extend_from_slice(&buf[..n]);
                    if self.bytes.len() > 2 * MAX_GATE_OUTPUT {
                        let drop_n = self.bytes.len() - MAX_GATE_OUTPUT;
                        self.bytes.drain(..drop_n);
                        self.cut = true;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    fn text(&self) -> String {
        let start = self.bytes.len().saturating_sub(MAX_GATE_OUTPUT);
        let text = String::from_utf8_lossy(&self.bytes[start..]).into_owned();
        if self.cut || start > 0 {
            format!("[… the start of the gate's output was cut]\n{text}")
        } else {
            text
        }
    }
}

/// `agents/<id>/gates/<task id>`, holding the command, while the gate runs.
struct Marker {
    path: std::path::PathBuf,
    _held: Option<crate::protocol::lock::Held>,
}

impl Marker {
    fn put(gate: &Gate) -> Option<Marker> {
        store::ensure_dir(&gate.agent.gates).ok()?;
        let path = gate.agent.gates.join(gate.task.id.as_str());
        store::write_atomic(&path, gate.command.as_bytes()).ok()?;
        let held = crate::protocol::lock::take(&path, Duration::ZERO)
            .ok()
            .flatten();
        Some(Marker { path, _held: held })
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The gates that run now for agent `agent`: (task id, command).
pub fn running(agent: &AgentPaths) -> Vec<(String, String)> {
    let Ok(rd) = fs::read_dir(&agent.gates) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| crate::protocol::lock::is_alive(&e.path()))
        .filter_map(|e| {
            let cmd = store::read_nofollow(&e.path()).ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                String::from_utf8_lossy(&cmd).into_owned(),
            ))
        })
        .collect()
}

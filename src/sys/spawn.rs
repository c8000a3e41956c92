//! Starting child processes: the detached runner (`setsid`) and a driver's children (own process
//! group, killed with the runner). The only `pre_exec` hooks in baton live here.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::signals::Signals;
use crate::poll::Poll;

/// A command in its own session, detached from the caller's terminal.
pub fn detached(cmd: &mut Command) -> &mut Command {
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(drop).map_err(Into::into));
    }
    cmd
}

/// A command for a driver: a scrubbed environment, the agent's folder, its own process group (so
/// that cancelling kills the whole task), and SIGKILL when the runner dies.
pub fn agent_command(
    program: &str,
    args: &[String],
    env: &[(OsString, OsString)],
    cwd: &Path,
) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .process_group(0);
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            Ok(())
        });
    }
    cmd
}

/// How long a task's process group gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// A child process that leads its own process group, as a driver's children do.
pub trait GroupLeader {
    fn id(&self) -> u32;
    fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>>;
    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus>;
}

impl GroupLeader for Child {
    fn id(&self) -> u32 {
        Child::id(self)
    }
    fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        Child::try_wait(self)
    }
    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        Child::wait(self)
    }
}

impl GroupLeader for super::vspawn::Process {
    fn id(&self) -> u32 {
        super::vspawn::Process::id(self)
    }
    fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        super::vspawn::Process::try_wait(self)
    }
    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        super::vspawn::Process::wait(self)
    }
}

/// Ends `child`'s process group: SIGTERM, then SIGKILL if it is still there after `KILL_GRACE`.
/// Waits on the signal pipe (SIGCHLD), never on a timer loop. Reaps the child.
pub fn kill_group(child: &mut impl GroupLeader, sigs: &Signals) {
    let pgid = Pid::from_raw(child.id() as i32);
    let _ = killpg(pgid, Signal::SIGTERM);
    let deadline = Instant::now() + KILL_GRACE;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            // The leader is gone; make sure nothing it started lingers in its group.
            let _ = killpg(pgid, Signal::SIGKILL);
            return;
        }
        if Instant::now() >= deadline {
            break;
        }
        let mut poll = Poll::new();
        poll.add(sigs.fd());
        let _ = poll.wait(Some(deadline));
        sigs.drain();
    }
    let _ = killpg(pgid, Signal::SIGKILL);
    let _ = child.wait();
}

/// The processes, other than this one and its ancestors, whose environment holds every one of
/// `marks` (`KEY=VALUE`, as baton gives its agents), leaving out baton's own runners (`baton agent
/// serve|run`), which belong to their own agents. Read from `/proc`; a process that cannot be
/// read (another user's) is not one of ours.
pub fn marked_processes(marks: &[String]) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let spared = ancestors();
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|pid| !spared.contains(pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                marks
                    .iter()
                    .all(|m| env.split(|&b| b == 0).any(|kv| kv == m.as_bytes()))
            })
        })
        .filter(|pid| !is_runner(*pid))
        .collect()
}

/// Kills (SIGKILL) the processes `marked_processes` finds; returns how many there were.
pub fn kill_marked(marks: &[String]) -> usize {
    let found = marked_processes(marks);
    for pid in &found {
        let _ = nix::sys::signal::kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    found.len()
}

/// This process and the processes it descends from.
fn ancestors() -> Vec<i32> {
    let mut chain = vec![std::process::id() as i32];
    while let Some(parent) =
        std::fs::read_to_string(format!("/proc/{}/stat", chain[chain.len() - 1]))
            .ok()
            .and_then(|s| {
                let rest = s
                    .rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .nth(1)?
                    .parse::<i32>()
                    .ok()?;
                Some(rest)
            })
            .filter(|&p| p > 1 && chain.len() < 64)
    {
        chain.push(parent);
    }
    chain
}

/// True for a baton runner (`… agent serve` or `… agent run …`).
fn is_runner(pid: i32) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    matches!(args.get(1..3), Some([b"agent", b"serve" | b"run"]))
}

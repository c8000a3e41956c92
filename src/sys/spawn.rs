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

/// Ends `child`'s process group: SIGTERM, then SIGKILL if it is still there after `KILL_GRACE`.
/// Waits on the signal pipe (SIGCHLD), never on a timer loop. Reaps the child.
pub fn kill_group(child: &mut Child, sigs: &Signals) {
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

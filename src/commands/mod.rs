//! The commands: each parses what it was given, calls the coordinator (or the protocol, for the
//! commands that only look), and prints. What they share is here: reading a prompt, naming
//! agents, and printing ends.

pub mod agent;
pub mod ask;
pub mod completions;
pub mod demo;
pub mod doctor;
pub mod git;
pub mod install;
pub mod logs;
pub mod msg;
pub mod results;
pub mod status;
pub mod tasks;
pub mod team;
pub mod watch;

use std::io::Write;
use std::path::Path;

use crate::config::Config;
use crate::error::usage;
use crate::exit::{self, Exit};
use crate::protocol::TaskEnd;

/// The config in effect for a command: the project of `project` if given (`--project DIR`),
/// else, inside a project's agent, that project's (`BATON_PROJECT`, which its runner sets), else
/// the current folder's.
pub fn load_config(project: Option<&Path>) -> anyhow::Result<Config> {
    let inside = std::env::var_os("BATON_PROJECT")
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from);
    let (dir, from) = match project {
        Some(p) => (Some(p.to_path_buf()), "--project"),
        None => (
            inside,
            "BATON_PROJECT (the project of the agent this runs in)",
        ),
    };
    let dir = match dir {
        Some(dir) => std::fs::canonicalize(&dir)
            .map_err(|e| usage(format!("{from} {}: {e}", dir.display())))?,
        None => std::env::current_dir()
            .map_err(|e| usage(format!("reading the current folder: {e}")))?,
    };
    Ok(crate::config::load(&dir)?)
}

/// How answers are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Each answer as text: a line that the answer leaves open is finished, and several answers
    /// are each headed by their agent.
    Text,
    /// Byte for byte, nothing added (binary answers, exact output).
    Raw,
    /// One JSON object per task (`TaskEnd::to_json`).
    Json,
}

impl Format {
    pub fn from_flags(json: bool, raw: bool) -> Format {
        match (json, raw) {
            (true, _) => Format::Json,
            (_, true) => Format::Raw,
            _ => Format::Text,
        }
    }
}

/// Prints ends in `format`. Every end that is not `ok` is also told on stderr. The exit status
/// is that of the first end that did not succeed.
pub fn print_ends(ends: &[TaskEnd], format: Format) -> anyhow::Result<Exit> {
    let mut out = std::io::stdout().lock();
    let write = |out: &mut std::io::StdoutLock, bytes: &[u8]| -> anyhow::Result<()> {
        match out.write_all(bytes) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            r => r.map_err(|e| anyhow::Error::new(e).context("writing the answer")),
        }
    };
    for end in ends {
        if format == Format::Json {
            write(&mut out, format!("{}\n", end.to_json()).as_bytes())?;
            continue;
        }
        if ends.len() > 1 && format == Format::Text {
            let name = crate::protocol::agent::name_of(&end.agent);
            write(&mut out, format!("==> {name} <==\n").as_bytes())?;
        }
        write(&mut out, &end.answer)?;
        if format == Format::Text && !end.answer.ends_with(b"\n") && !end.answer.is_empty() {
            write(&mut out, b"\n")?;
        }
    }
    let _ = out.flush();
    drop(out);
    for end in ends.iter().filter(|e| !e.is_ok()) {
        eprintln!("baton: {}", describe(end));
    }
    Ok(exit::of_ends(ends))
}

/// Prints every task of a workflow as JSON (one object a line, in the order delivered, then the
/// ends of its outcome that were never delivered) and says on stderr what did not succeed in its
/// outcome, `ends`, whose first failure is the exit status.
pub fn print_history(history: &[TaskEnd], ends: &[TaskEnd]) -> anyhow::Result<Exit> {
    let mut out = String::new();
    for end in history.iter().chain(ends.iter().filter(|e| e.undelivered)) {
        out.push_str(&format!("{}\n", end.to_json()));
    }
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(anyhow::Error::new(e).context("writing the answer"))
        }
        _ => {}
    }
    let _ = stdout.flush();
    for end in ends.iter().filter(|e| !e.is_ok()) {
        eprintln!("baton: {}", describe(end));
    }
    Ok(exit::of_ends(ends))
}

/// One line about an end that is not `ok`: its agent, task, state and reason (the state once:
/// a reason that begins with it, "cancelled by SIGINT", says it already).
pub fn describe(end: &TaskEnd) -> String {
    let state = end.state.as_str();
    let what = match end.error.as_deref() {
        Some(why) if why.starts_with(state) => why.to_string(),
        Some(why) => format!("{state}: {why}"),
        None => state.to_string(),
    };
    let task = match end.shown_id() {
        Some(id) => format!("task {id}"),
        None => "no task".into(),
    };
    format!(
        "agent {} ({task}): {what}",
        crate::protocol::agent::name_of(&end.agent),
    )
}

/// Writes `bytes` to `to` at once and flushes it: `Err` if they did not all reach it (a reader
/// gone, a full disk), for a caller that gives back what it had marked shown.
pub fn write_flushed(mut to: impl Write, bytes: &[u8]) -> std::io::Result<()> {
    to.write_all(bytes).and_then(|()| to.flush())
}

/// Writes `bytes` to standard output at once. A reader that went away (`| head`) is not an
/// error: the command has said what it had to.
pub fn print_out(bytes: &[u8]) -> anyhow::Result<Exit> {
    match write_flushed(std::io::stdout().lock(), bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("writing to standard output"))
        }
        _ => Ok(Exit::Ok),
    }
}

/// Standard output, if it is a pipe: a command that follows something forever polls it too, so
/// that it ends as soon as its reader goes away (`| head -1`) rather than at its next line. (A
/// pipe's write end is never readable; it is ready only when the reader has closed it.)
pub fn stdout_pipe() -> Option<std::os::fd::BorrowedFd<'static>> {
    // SAFETY: descriptor 1 is standard output, open for the life of the process (baton never
    // closes it); the borrow is only polled.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(nix::libc::STDOUT_FILENO) };
    let meta = nix::sys::stat::fstat(fd).ok()?;
    let fifo = nix::sys::stat::SFlag::from_bits_truncate(meta.st_mode)
        & nix::sys::stat::SFlag::S_IFMT
        == nix::sys::stat::SFlag::S_IFIFO;
    fifo.then_some(fd)
}

#[cfg(test)]
mod tests {
    use super::describe;
    use crate::protocol::{State, TaskEnd, TaskId};

    #[test]
    fn an_end_is_described_with_its_state_once() {
        let id = TaskId::new();
        let end = |state, why: Option<&str>| {
            let end = TaskEnd::new(&id, "planning", state);
            match why {
                Some(why) => end.with_error(why),
                None => end,
            }
        };
        let line = describe(&end(State::Cancelled, Some("cancelled by SIGINT")));
        assert_eq!(
            line,
            format!("agent planning (task {id}): cancelled by SIGINT")
        );
        let line = describe(&end(State::Failed, Some("`cat` exited with status 1")));
        assert_eq!(
            line,
            format!("agent planning (task {id}): failed: `cat` exited with status 1")
        );
        let line = describe(&end(State::Timeout, None));
        assert_eq!(line, format!("agent planning (task {id}): timeout"));
    }

    #[test]
    fn an_end_that_never_had_a_task_names_none() {
        let end = TaskEnd::undelivered("planning", State::Cancelled)
            .with_error("cancelled by SIGINT before it was delivered");
        assert_eq!(
            describe(&end),
            "agent planning (no task): cancelled by SIGINT before it was delivered"
        );
        let json = end.to_json();
        assert!(json["task_id"].is_null(), "{json}");
        assert_eq!(json["state"], "cancelled", "{json}");
        // A delivered one names its task, and a done.json never says it was undelivered.
        let delivered = TaskEnd::new(&TaskId::new(), "planning", State::Ok);
        assert!(delivered.to_json()["task_id"].is_string());
        let recorded = serde_json::to_string(&delivered).unwrap();
        assert!(!recorded.contains("undelivered"), "{recorded}");
    }
}

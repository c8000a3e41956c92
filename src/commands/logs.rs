//! `baton logs NAME [-f] [-n N] [--task ID]`: an agent's log (the runner's lines and its
//! processes' stderr, `agents/<name>/log`, with `log.1` before it), or one task's output
//! (`tasks/<id>/output` while it runs, `result` once it has ended).
//!
//! `-f` follows without polling: it sleeps in one `poll` on inotify (the agent's folder, the
//! folder of agents, the task's folder) and the signal pipe. It survives the log's rotation (the
//! runner truncates the log in place, see `runner::log`: a log that shrinks is read again from
//! its start, after the lines not yet read from the end of `log.1`), a runner that restarts
//! (it appends to the same file), and an agent whose folder is removed and made again (a new
//! file is read from its start). A stop signal (Ctrl-C, SIGTERM, SIGHUP) ends a follow with exit
//! 0: following is what was asked for, and nothing was in flight. `--task ID -f` ends when the
//! task does, with the task's exit code, as `baton wait` would; and with exit 5 if the runner
//! that runs it dies.
//!
//! Nothing here writes to the state folder; a reader that goes away (`| head`) ends the command
//! quietly, at once (standard output, when it is a pipe, is polled too).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use inotify::{Inotify, WatchMask};

use crate::config::Config;
use crate::coordinator::wait::{drain_inotify, inotify_error};
use crate::error::{usage, Error, IoContext};
use crate::exit::{self, Exit};
use crate::poll::Poll;
use crate::protocol::{inbox, lock, store, AgentPaths, Store, TaskId, TaskPaths};
use crate::sys::signals::{Signals, STOP_SIGNALS};

type Result<T> = anyhow::Result<T>;

/// `--help` examples of `baton logs`.
pub const EXAMPLES: &str = "\
Examples:
  baton logs planning -f              follow planning's log (Ctrl-C stops)
  baton logs sh1 --task ID -f         a task's output as it is produced, until it ends
  baton logs sh1 -n all | less        the whole log, log.1 included";

/// How many lines to print first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lines {
    All,
    Last(usize),
}

/// `-n N`: a number of lines, or `all`.
pub fn parse_lines(s: &str) -> std::result::Result<Lines, String> {
    match s {
        "all" => Ok(Lines::All),
        n => n
            .parse()
            .map(Lines::Last)
            .map_err(|_| format!("{n:?} is not a number of lines: give e.g. 50, or `all`")),
    }
}

pub struct LogsArgs {
    pub name: String,
    pub follow: bool,
    pub lines: Option<Lines>,
    pub task: Option<String>,
}

pub fn logs(store: &Store, config: &Config, args: LogsArgs) -> Result<Exit> {
    let agent = super::agent::known(store, config, &args.name)?;
    match &args.task {
        None => agent_log(
            store,
            &agent,
            args.lines.unwrap_or(Lines::Last(10)),
            args.follow,
        ),
        Some(id) => {
            let id = TaskId::parse(id)?;
            task_output(
                store,
                &agent,
                &id,
                args.lines.unwrap_or(Lines::All),
                args.follow,
            )
        }
    }
}

/// Where the output goes: standard output, where a reader that left is the end of the command.
struct Out(io::Stdout);

impl Out {
    /// Writes `bytes`; `Ok(false)` if the reader has gone.
    fn put(&mut self, bytes: &[u8]) -> Result<bool> {
        let mut out = self.0.lock();
        match out.write_all(bytes).and_then(|()| out.flush()) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(anyhow::Error::new(e).context("writing to standard output")),
        }
    }
}

/// The last `lines` lines of `bytes` (a final line without its newline counts as one).
pub fn tail(bytes: &[u8], lines: Lines) -> &[u8] {
    let Lines::Last(n) = lines else {
        return bytes;
    };
    if n == 0 {
        return &bytes[bytes.len()..];
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &bytes[i + 1..];
            }
        }
    }
    bytes
}

fn line_count(bytes: &[u8]) -> usize {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if body.is_empty() && bytes.is_empty() {
        0
    } else {
        body.iter().filter(|b| **b == b'\n').count() + 1
    }
}

fn read_or_empty(path: &Path) -> Result<Vec<u8>> {
    match store::read_nofollow(path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(crate::error::StoreError::io("reading", path, e).into()),
    }
}

/// The agent's log: its last lines (reaching back into `log.1` when the log holds fewer), then,
/// with `follow`, what is appended.
fn agent_log(store: &Store, agent: &AgentPaths, lines: Lines, follow: bool) -> Result<Exit> {
    let mut out = Out(io::stdout());
    let current = read_or_empty(&agent.log)?;
    let wanted_more = match lines {
        Lines::All => true,
        Lines::Last(n) => line_count(&current) < n,
    };
    let mut first = Vec::new();
    if wanted_more {
        let old = read_or_empty(&agent.log_old)?;
        let more = match lines {
            Lines::All => Lines::All,
            Lines::Last(n) => Lines::Last(n - line_count(&current)),
        };
        first.extend_from_slice(tail(&old, more));
    }
    first.extend_from_slice(tail(&current, lines));
    if !out.put(&first)? {
        return Ok(Exit::Ok);
    }
    if !follow {
        return Ok(Exit::Ok);
    }
    let mut followed = Followed {
        path: agent.log.clone(),
        old: Some(agent.log_old.clone()),
        file: None,
        ino: 0,
        pos: current.len() as u64,
    };
    // What was printed came from this file (if it was there): go on from where it ended.
    if let Ok(f) = store::open_nofollow(&agent.log) {
        followed.ino = f.metadata().during("reading", &agent.log)?.ino();
        followed.file = Some(f);
    }
    let sigs =
        Signals::install(&STOP_SIGNALS).during("installing signal handlers for", &agent.log)?;
    let mut inotify = Inotify::init().map_err(|e| inotify_error("watching", &agent.dir, e))?;
    let agents_dir = store.agents_dir();
    inotify
        .watches()
        .add(&agents_dir, WatchMask::CREATE | WatchMask::MOVED_TO)
        .map_err(|e| inotify_error("watching", &agents_dir, e))?;
    let in_dir = WatchMask::MODIFY | WatchMask::CREATE | WatchMask::MOVED_TO | WatchMask::DELETE;
    inotify
        .watches()
        .add(&agent.dir, in_dir)
        .map_err(|e| inotify_error("watching", &agent.dir, e))?;
    let pipe = super::stdout_pipe();
    loop {
        if !followed.catch_up(&mut out)? {
            return Ok(Exit::Ok);
        }
        let reader_gone = {
            let mut poll = Poll::new();
            poll.add(sigs.fd());
            poll.add(inotify.as_fd());
            let out = pipe.map(|fd| poll.add(fd));
            poll.wait(None).during("waiting on", &agent.dir)?;
            out.is_some_and(|i| poll.ready(i))
        };
        sigs.drain();
        if sigs.take().is_some() || reader_gone {
            return Ok(Exit::Ok);
        }
        drain_inotify(&mut inotify);
        // The agent's folder may have been removed and made again: watch the new one (adding
        // a watch that exists changes nothing).
        let _ = inotify.watches().add(&agent.dir, in_dir);
    }
}

/// A file being followed by its path: the open file, which one it is (its inode) and how far it
/// has been read.
struct Followed {
    path: PathBuf,
    /// Where a rotation copies the file's lines before it truncates it.
    old: Option<PathBuf>,
    file: Option<File>,
    ino: u64,
    pos: u64,
}

impl Followed {
    /// Prints what has been appended since the last call. A file that shrank was rotated: the
    /// lines not read yet are at the end of `old`, and the file is read again from its start. A
    /// file replaced by another (a new inode) is read from its start. `Ok(false)` if the reader
    /// of the output has gone.
    fn catch_up(&mut self, out: &mut Out) -> Result<bool> {
        let ino = match std::fs::symlink_metadata(&self.path) {
            Ok(m) => m.ino(),
            // Gone (the agent removed): wait for it to come back.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(crate::error::StoreError::io("reading", &self.path, e).into()),
        };
        if self.file.is_none() || ino != self.ino {
            let Ok(file) = store::open_nofollow(&self.path) else {
                return Ok(true);
            };
            self.ino = file.metadata().during("reading", &self.path)?.ino();
            self.file = Some(file);
            self.pos = 0;
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(true);
        };
        let len = file.metadata().during("reading", &self.path)?.len();
        if len < self.pos {
            if let Some(rest) = self.old.as_deref().and_then(|old| unread_in(old, self.pos)) {
                if !out.put(&rest)? {
                    return Ok(false);
                }
            }
            self.pos = 0;
        }
        let fresh = read_from(file, self.pos).during("reading", &self.path)?;
        self.pos += fresh.len() as u64;
        out.put(&fresh)
    }
}

/// What `old` (a rotated copy) holds from `pos` on, if it is at least that long.
fn unread_in(old: &Path, pos: u64) -> Option<Vec<u8>> {
    let mut f = store::open_nofollow(old).ok()?;
    if f.metadata().ok()?.len() < pos {
        return None;
    }
    read_from(&mut f, pos).ok()
}

fn read_from(file: &mut File, pos: u64) -> io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(pos))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The task's output: what it has produced so far (or its answer, once it has ended); with
/// `follow`, what it produces next, until it ends.
fn task_output(
    store: &Store,
    agent: &AgentPaths,
    id: &TaskId,
    lines: Lines,
    follow: bool,
) -> Result<Exit> {
    let (task, _) = crate::coordinator::load(store, id)?;
    let paths = store.task(id);
    let taken_by = store::read_nofollow(&paths.runner)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim().to_string());
    if task.agent != agent.name() && taken_by.as_deref() != Some(agent.name()) {
        let name = taken_by.unwrap_or(task.agent);
        return Err(usage(format!(
            "task {id} is not agent {}'s: it was sent to {name} (`baton logs {name} --task {id}`)",
            agent.name()
        )));
    }
    let mut out = Out(io::stdout());
    if !follow {
        match open_output(&paths) {
            Some(mut f) => {
                let bytes = read_from(&mut f, 0).during("reading", &paths.output)?;
                out.put(tail(&bytes, lines))?;
            }
            None => eprintln!("baton: task {id} has not started yet: it has no output"),
        }
        return Ok(Exit::Ok);
    }
    // Held while following: `baton gc` leaves the folder alone meanwhile.
    let _held = paths.hold();
    let sigs =
        Signals::install(&STOP_SIGNALS).during("installing signal handlers for", &paths.dir)?;
    let mut inotify = Inotify::init().map_err(|e| inotify_error("watching", &paths.dir, e))?;
    let in_task =
        WatchMask::MODIFY | WatchMask::CREATE | WatchMask::MOVED_TO | WatchMask::DELETE_SELF;
    inotify
        .watches()
        .add(&paths.dir, in_task)
        .map_err(|e| inotify_error("watching", &paths.dir, e))?;
    // The runner's death: a thread blocked on a shared lock of its lock file, granted when the
    // kernel releases the runner's (a close event of the lock file can come before that).
    let dead = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let arm = |dead: &std::sync::Arc<std::sync::atomic::AtomicBool>| -> Result<()> {
        let waker = sigs
            .waker()
            .map_err(|e| crate::error::StoreError::io("creating a waker", &agent.lock, e))?;
        Ok(lock::watch_death(
            agent.lock.clone(),
            waker,
            std::sync::Arc::clone(dead),
        )?)
    };
    arm(&dead)?;
    let pipe = super::stdout_pipe();
    let mut following = TaskFollow {
        file: None,
        pos: 0,
        lines,
        said_waiting: false,
    };
    loop {
        // done.json is renamed into place after the answer: once it is seen, the rest is read.
        let done = paths.is_done();
        if !following.catch_up(&paths, &mut out)? {
            return Ok(Exit::Ok);
        }
        if done {
            let end = paths
                .read_end(&task.agent)
                .ok_or_else(|| Error::Unreachable(format!("task {id}: its done.json went away")))?;
            if !end.is_ok() {
                eprintln!("baton: {}", super::describe(&end));
            }
            return Ok(exit::of_state(end.state));
        }
        if !store::exists(&paths.task) {
            return Err(Error::Unreachable(format!(
                "task {id}: its folder {} was removed while it was followed",
                paths.dir.display()
            ))
            .into());
        }
        following.check_runner(agent, id)?;
        // The runner that died was replaced (a restart): watch the new one. (With none, the
        // queued task's folder wakes the loop when a runner takes it.)
        if dead.load(std::sync::atomic::Ordering::SeqCst) && lock::is_alive(&agent.lock) {
            dead.store(false, std::sync::atomic::Ordering::SeqCst);
            arm(&dead)?;
        }
        let reader_gone = {
            let mut poll = Poll::new();
            poll.add(sigs.fd());
            poll.add(inotify.as_fd());
            let out = pipe.map(|fd| poll.add(fd));
            poll.wait(None).during("waiting on", &paths.dir)?;
            out.is_some_and(|i| poll.ready(i))
        };
        sigs.drain();
        if sigs.take().is_some() || reader_gone {
            return Ok(Exit::Ok);
        }
        drain_inotify(&mut inotify);
    }
}

/// The output file of a task: `output` while it runs, `result` once it has ended (the same
/// file, renamed: an open descriptor reads on across the rename).
fn open_output(paths: &TaskPaths) -> Option<File> {
    store::open_nofollow(&paths.output)
        .or_else(|_| store::open_nofollow(&paths.result))
        .ok()
}

struct TaskFollow {
    file: Option<File>,
    pos: u64,
    /// How much of what is there already to print when the output first appears.
    lines: Lines,
    said_waiting: bool,
}

impl TaskFollow {
    /// Prints what the task has produced since the last call. `Ok(false)` if the reader has
    /// gone.
    fn catch_up(&mut self, paths: &TaskPaths, out: &mut Out) -> Result<bool> {
        if self.file.is_none() {
            self.file = open_output(paths);
            if let Some(f) = self.file.as_mut() {
                let bytes = read_from(f, 0).during("reading", &paths.output)?;
                self.pos = bytes.len() as u64;
                return out.put(tail(&bytes, self.lines));
            }
        }
        let Some(f) = self.file.as_mut() else {
            return Ok(true);
        };
        let fresh = read_from(f, self.pos).during("reading", &paths.output)?;
        self.pos += fresh.len() as u64;
        out.put(&fresh)
    }

    /// Fails if the runner running the task has died (its end will be `agent_lost`); says once
    /// that a queued task waits for a runner.
    fn check_runner(&mut self, agent: &AgentPaths, id: &TaskId) -> Result<()> {
        if lock::is_alive(&agent.lock) {
            return Ok(());
        }
        if inbox::is_claimed(agent, id) {
            return Err(Error::Unreachable(format!(
                "agent {}'s runner died while task {id} ran; its end is recorded as agent_lost \
                 when the agent starts again (`baton agent start {}`)",
                agent.name(),
                agent.name()
            ))
            .into());
        }
        if !self.said_waiting && inbox::is_queued(agent, id) {
            self.said_waiting = true;
            eprintln!(
                "baton: agent {} has no runner: task {id} waits in its inbox (`baton agent start {}`)",
                agent.name(),
                agent.name()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails() {
        assert_eq!(tail(b"a\nb\nc\n", Lines::Last(2)), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc", Lines::Last(2)), b"b\nc");
        assert_eq!(tail(b"a\nb\n", Lines::Last(5)), b"a\nb\n");
        assert_eq!(tail(b"a\nb\n", Lines::Last(0)), b"");
        assert_eq!(tail(b"a\nb\n", Lines::All), b"a\nb\n");
        assert_eq!(line_count(b""), 0);
        assert_eq!(line_count(b"a"), 1);
        assert_eq!(line_count(b"a\nb\n"), 2);
        assert_eq!(parse_lines("all"), Ok(Lines::All));
        assert_eq!(parse_lines("7"), Ok(Lines::Last(7)));
        assert!(parse_lines("-3").is_err());
    }
}

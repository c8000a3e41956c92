//! `baton status --watch`: a live view of the agents (name, project, driver, state, current task
//! and how long it has run, queue depth, the last line of the log) and of the queued tasks (each
//! agent's inbox, and the global queue for a slot), built from `status::rows` and
//! `status::global_queue`, so that it shows what `baton status` knows.
//!
//! It is redrawn when the state folder changes, never on a timer for state: inotify on the
//! state folder (new queue or slot folders), `agents/` (agents added or removed), each agent's
//! folder (`status.json` renamed into place, the log growing, the lock closed by a runner that
//! dies), each inbox, `queue/` and `slots/`. Events are coalesced: at most one redraw every
//! 50 ms (20 a second) however busy the folder is. One thing moves without an event: the
//! elapsed time of a running task. While a task runs the full-screen view redraws once a second
//! from what it last read (a display clock, not a poll for state: it reads nothing); when no
//! task runs, nothing wakes it at all.
//!
//! On a terminal (standard output is one) the view is full-screen (`sys::screen`: the alternate
//! screen, raw mode; given back exactly on `q`, Ctrl-C, SIGTERM, SIGHUP and a panic) and follows
//! resizes (SIGWINCH). Elsewhere it prints one snapshot per change, line by line (`baton status
//! --watch | grep working` works): a snapshot is printed only when what it shows differs from
//! the last one. It exits 0 when asked to stop, or as soon as its reader goes away (a pipe's
//! closing is polled too).

use std::fmt::Write as _;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use inotify::{Inotify, WatchMask};
use nix::libc;

use super::status::{self, Row};
use crate::coordinator::wait::{drain_inotify, inotify_error};
use crate::error::IoContext;
use crate::exit::Exit;
use crate::poll::{earliest, Poll};
use crate::protocol::{agent::name_of, inbox, store, Store};
use crate::sys::screen::{Screen, CTRL_C};
use crate::sys::signals::{Signals, STOP_SIGNALS};
use crate::sys::time;

type Result<T> = anyhow::Result<T>;

/// `--help` examples of `baton status`.
pub const STATUS_EXAMPLES: &str = "\
Examples:
  baton status --watch                 a live view; q quits
  baton status --watch | grep working  one snapshot per change, line by line";

/// The shortest time between two redraws (at most 20 a second).
const MIN_GAP: Duration = Duration::from_millis(50);

/// One agent as the view shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct AgentView {
    name: String,
    project: String,
    driver: String,
    state: String,
    task: String,
    /// When the agent entered its state (its status.json's `last_active`), while it is busy.
    since_ms: Option<u64>,
    queued: usize,
    last_log: String,
    problem: Option<String>,
}

/// A task waiting: in an agent's inbox, or for a slot of the global limit.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Queued {
    task: String,
    agent: String,
    priority: u8,
    for_slot: bool,
}

/// Everything the view shows, as read at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
struct Snapshot {
    agents: Vec<AgentView>,
    queued: Vec<Queued>,
}

impl Snapshot {
    fn read(store: &Store) -> Result<Snapshot> {
        let rows = status::rows(store)?;
        let mut snap = Snapshot::default();
        for row in &rows {
            let paths = store.agent_paths(&row.name).ok();
            if let Some(paths) = paths.as_ref().filter(|_| row.queued > 0) {
                for entry in inbox::list(&paths.inbox_new).unwrap_or_default() {
                    snap.queued.push(Queued {
                        task: entry.id.to_string(),
                        agent: name_of(&row.name).to_string(),
                        priority: entry.name.as_bytes()[0].wrapping_sub(b'0'),
                        for_slot: false,
                    });
                }
            }
            let last_log = paths
                .and_then(|p| store::last_line(&p.log))
                .map(|l| without_date(&l))
                .unwrap_or_default();
            snap.agents.push(view_of(row, last_log));
        }
        for w in status::global_queue(store) {
            snap.queued.push(Queued {
                task: w.task.to_string(),
                agent: name_of(&w.agent).to_string(),
                priority: w.priority,
                for_slot: true,
            });
        }
        Ok(snap)
    }

    /// True while some agent is busy (its elapsed time moves).
    fn running(&self) -> bool {
        self.agents.iter().any(|a| a.since_ms.is_some())
    }

    /// The lines of the view at `now_ms`, the agents' table first, then the queued tasks.
    fn lines(&self, now_ms: u64) -> Vec<String> {
        let mut lines = Vec::new();
        if self.agents.is_empty() {
            lines.push("no agents yet: start one with `baton agent start NAME`".to_string());
        } else {
            lines.push(format!(
                "{:<20} {:<12} {:<6} {:<10} {:<28} {:>7} {:>6}  LAST LOG",
                "AGENT", "PROJECT", "DRIVER", "STATE", "TASK", "ELAPSED", "QUEUED"
            ));
        }
        for a in &self.agents {
            let elapsed = a
                .since_ms
                .map(|since| elapsed(now_ms.saturating_sub(since)))
                .unwrap_or_else(|| "-".into());
            lines.push(format!(
                "{:<20} {:<12} {:<6} {:<10} {:<28} {:>7} {:>6}  {}",
                fit(&a.name, 20),
                fit(&a.project, 12),
                a.driver,
                fit(&a.state, 10),
                fit(&a.task, 28),
                elapsed,
                a.queued,
                a.last_log
            ));
            if let Some(p) = &a.problem {
                lines.push(format!("  problem: {p}"));
            }
        }
        if !self.queued.is_empty() {
            lines.push(String::new());
            lines.push(format!("QUEUED TASKS ({})", self.queued.len()));
            for q in &self.queued {
                let place = if q.for_slot {
                    "waiting for a slot (max_concurrent)"
                } else {
                    "in its inbox"
                };
                lines.push(format!(
                    "  {}  for {}  priority {}  {place}",
                    q.task, q.agent, q.priority
                ));
            }
        }
        lines
    }

    /// A one-line summary: how many agents, how many busy, how many tasks queued.
    fn summary(&self) -> String {
        let busy = self.agents.iter().filter(|a| a.since_ms.is_some()).count();
        format!(
            "{} agent(s), {busy} busy, {} task(s) queued",
            self.agents.len(),
            self.queued.len()
        )
    }
}

fn view_of(row: &Row, last_log: String) -> AgentView {
    let busy = row.current.is_some() && row.pid.is_some();
    AgentView {
        name: match &row.branch {
            Some(b) => format!("{} [{b}]", name_of(&row.name)),
            None => name_of(&row.name).to_string(),
        },
        project: row
            .project
            .as_deref()
            .and_then(Path::file_name)
            .map_or_else(|| "-".into(), |n| n.to_string_lossy().into_owned()),
        driver: row.driver.clone(),
        state: row.state.clone(),
        task: row.current.clone().unwrap_or_else(|| "-".into()),
        since_ms: row
            .last_active
            .as_deref()
            .filter(|_| busy)
            .and_then(time::parse_rfc3339_ms),
        queued: row.queued,
        last_log,
        problem: row.problem.clone(),
    }
}

/// A log line without the date its timestamp begins with (the time of day is kept).
fn without_date(line: &str) -> String {
    match line.split_once(' ') {
        Some((stamp, rest)) if time::parse_rfc3339_ms(stamp).is_some() => {
            let clock = stamp.split_once('T').map_or(stamp, |(_, c)| c);
            let clock = clock.split('.').next().unwrap_or(clock);
            format!("{} {rest}", clock.trim_end_matches('Z'))
        }
        _ => line.to_string(),
    }
}

/// `s` cut to `width` characters (the last one an ellipsis), so that the columns stay put.
fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut cut: String = s.chars().take(width - 1).collect();
    cut.push('…');
    cut
}

/// "7s", "3m05s", "2h04m".
fn elapsed(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// The inotify watches on the state folder that tell the view something changed.
struct Watches {
    inotify: Inotify,
    root: PathBuf,
    agents_dir: PathBuf,
    queue: PathBuf,
    slots: PathBuf,
}

impl Watches {
    fn new(store: &Store) -> Result<Watches> {
        let root = store.root().to_path_buf();
        let inotify = Inotify::init().map_err(|e| inotify_error("watching", &root, e))?;
        Ok(Watches {
            inotify,
            agents_dir: store.agents_dir(),
            queue: store.queue_dir(),
            slots: store.slots_dir(),
            root,
        })
    }

    /// Watches every folder the view depends on; called before each read of the state, so
    /// that an agent (or a queue folder) that appeared since is watched from now on. Adding a
    /// watch that exists changes nothing; a folder that is not there yet is skipped.
    fn cover(&mut self, agents: &[PathBuf]) -> Result<()> {
        let entries =
            WatchMask::CREATE | WatchMask::DELETE | WatchMask::MOVED_TO | WatchMask::MOVED_FROM;
        let agent = entries | WatchMask::MODIFY | WatchMask::CLOSE_WRITE;
        self.add(&self.root.clone(), entries, true)?;
        self.add(&self.agents_dir.clone(), entries, true)?;
        for dir in [self.queue.clone(), self.slots.clone()] {
            self.add(&dir, entries | WatchMask::CLOSE_WRITE, false)?;
        }
        for dir in agents {
            self.add(dir, agent, false)?;
            self.add(&dir.join("inbox/new"), entries, false)?;
        }
        Ok(())
    }

    fn add(&mut self, dir: &Path, mask: WatchMask, required: bool) -> Result<()> {
        match self.inotify.watches().add(dir, mask) {
            Ok(_) => Ok(()),
            Err(e) if !required && e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(inotify_error("watching", dir, e).into()),
        }
    }
}

/// Reads the state, watching what it was read from first (so that no change in between is
/// missed).
fn read(store: &Store, watches: &mut Watches) -> Result<Snapshot> {
    let dirs: Vec<PathBuf> = store
        .agent_names()?
        .iter()
        .map(|n| store.agents_dir().join(n))
        .collect();
    watches.cover(&dirs)?;
    Snapshot::read(store)
}

pub fn watch(store: &Store) -> Result<Exit> {
    let sigs = Signals::install(&[
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGWINCH,
    ])
    .during("installing signal handlers for", store.root())?;
    let mut watches = Watches::new(store)?;
    if nix::unistd::isatty(io::stdout()).unwrap_or(false) {
        full_screen(store, &sigs, &mut watches)
    } else {
        snapshots(store, &sigs, &mut watches)
    }
}

/// True if a stop signal has arrived.
fn stop_asked(sigs: &Signals) -> bool {
    STOP_SIGNALS.iter().any(|s| sigs.take_one(*s))
}

/// Not a terminal: one snapshot per change, each headed by the time it was read.
fn snapshots(store: &Store, sigs: &Signals, watches: &mut Watches) -> Result<Exit> {
    let pipe = super::stdout_pipe();
    let mut shown: Option<Snapshot> = None;
    let mut last_read: Option<Instant> = None;
    let mut dirty = true;
    loop {
        let due = last_read.map(|t| t + MIN_GAP);
        if dirty && due.is_none_or(|d| Instant::now() >= d) {
            dirty = false;
            last_read = Some(Instant::now());
            let snap = read(store, watches)?;
            if shown.as_ref() != Some(&snap) {
                let now = time::now_ms();
                let mut text = format!("--- {} {}\n", time::rfc3339(now), snap.summary());
                for line in snap.lines(now) {
                    let _ = writeln!(text, "{line}");
                }
                if !put(text.as_bytes())? {
                    return Ok(Exit::Ok);
                }
                shown = Some(snap);
            }
        }
        let deadline = if dirty { due } else { None };
        let (changed, reader_gone) = {
            let mut poll = Poll::new();
            poll.add(sigs.fd());
            let changes = poll.add(watches.inotify.as_fd());
            let out = pipe.map(|fd| poll.add(fd));
            poll.wait(deadline).during("waiting on", store.root())?;
            (poll.ready(changes), out.is_some_and(|i| poll.ready(i)))
        };
        sigs.drain();
        if stop_asked(sigs) || reader_gone {
            return Ok(Exit::Ok);
        }
        if changed {
            drain_inotify(&mut watches.inotify);
            dirty = true;
        }
    }
}

/// Writes to standard output; `Ok(false)` if its reader has gone.
fn put(bytes: &[u8]) -> Result<bool> {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(anyhow::Error::new(e).context("writing to standard output")),
    }
}

/// A terminal: the full-screen view until `q`, Ctrl-C or a stop signal.
fn full_screen(store: &Store, sigs: &Signals, watches: &mut Watches) -> Result<Exit> {
    let mut screen = Screen::enter().during("taking the terminal for", store.root())?;
    let mut snap = Snapshot::default();
    let mut last_read: Option<Instant> = None;
    let mut dirty = true;
    let mut redraw = true;
    loop {
        let due = last_read.map(|t| t + MIN_GAP);
        if dirty && due.is_none_or(|d| Instant::now() >= d) {
            dirty = false;
            last_read = Some(Instant::now());
            snap = read(store, watches)?;
            redraw = true;
        }
        if redraw {
            redraw = false;
            let now = time::now_ms();
            let mut lines = vec![format!(
                "baton status --watch  {}  {}   q quits",
                snap.summary(),
                time::rfc3339(now).get(11..19).unwrap_or_default()
            )];
            lines.push(String::new());
            lines.extend(snap.lines(now));
            screen
                .draw(&lines)
                .during("drawing on the terminal for", store.root())?;
            crate::test_hooks::panic_point(crate::test_hooks::WATCH_DRAWN);
        }
        // While a task runs its elapsed time moves: redraw at the next whole second.
        let tick = snap.running().then(|| {
            let into_second = time::now_ms() % 1000;
            Instant::now() + Duration::from_millis(1000 - into_second)
        });
        let deadline = earliest([if dirty { due } else { None }, tick]);
        let (changed, keys_ready) = {
            let mut poll = Poll::new();
            poll.add(sigs.fd());
            let changes = poll.add(watches.inotify.as_fd());
            let keys = screen.keys_fd().map(|fd| poll.add(fd));
            poll.wait(deadline).during("waiting on", store.root())?;
            (poll.ready(changes), keys.is_some_and(|k| poll.ready(k)))
        };
        sigs.drain();
        if stop_asked(sigs) {
            return Ok(Exit::Ok);
        }
        if sigs.take_one(libc::SIGWINCH) {
            redraw = true;
        }
        if keys_ready {
            match screen.read_keys() {
                None => return Ok(Exit::Ok),
                Some(keys) if keys.iter().any(|k| matches!(*k, b'q' | b'Q' | CTRL_C)) => {
                    return Ok(Exit::Ok)
                }
                Some(_) => {}
            }
        }
        if changed {
            drain_inotify(&mut watches.inotify);
            dirty = true;
        }
        // The display clock: the time moves, the state is not read again.
        if tick.is_some_and(|t| Instant::now() >= t) {
            redraw = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_and_dates() {
        assert_eq!(elapsed(7_400), "7s");
        assert_eq!(elapsed(185_000), "3m05s");
        assert_eq!(elapsed(7_440_000), "2h04m");
        assert_eq!(
            without_date("2026-11-21T15:47:03.456Z [baton] task x: started"),
            "15:47:03 [baton] task x: started"
        );
        assert_eq!(without_date("plain line"), "plain line");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
    }
}

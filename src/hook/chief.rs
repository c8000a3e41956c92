//! The hooks of the chief: the top-level Claude Code session that delegates (not an agent baton
//! started — inside one, `BATON_AGENT` is set and these do nothing). They bring the answers of
//! background work to the chief, each once, and only in sessions of the project it was sent
//! from (the event's `cwd` decides the project, by the same rules as `baton ask`).
//!
//! - `chief-prompt` (`UserPromptSubmit`): prints the results that have arrived since, which
//!   Claude Code adds to the model's context with the prompt. It never blocks: it reads a folder.
//! - `chief-wait` (`SessionStart` and `Stop`, installed with `asyncRewake`): Claude Code runs it
//!   in the background; it blocks, without polling (inotify on the results inbox and on the
//!   folders of the work still running), until a result arrives, prints it on stderr and exits
//!   2, which wakes an idle session with it. One waiter per session (a lock); it gives up, exit
//!   0, before the timeout the installed settings give it, and on SIGTERM/SIGINT/SIGHUP.

use std::io::Read;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use inotify::{Inotify, WatchMask};

use crate::commands::results;
use crate::coordinator::background;
use crate::exit::Exit;
use crate::poll::Poll;
use crate::protocol::results::Inbox;
use crate::protocol::{lock, Store};
use crate::sys::signals::{Signals, STOP_SIGNALS};

/// The hook kinds of this module.
pub const KINDS: [&str; 2] = ["chief-prompt", "chief-wait"];

/// The timeout (seconds) `baton install claude --chief` gives `chief-wait` in Claude Code's
/// settings; the hook itself gives up a minute before it.
pub const WAIT_TIMEOUT_S: u64 = 3600;

/// At most this much of one answer goes into the chief's context (the rest: `baton result`).
const ANSWER_CAP: usize = 16 << 10;

/// The most of an event read from stdin.
const MAX_EVENT: u64 = 1 << 20;

/// Runs chief hook `kind`; `None` if `kind` is not one of them.
pub fn run(kind: &str) -> Option<anyhow::Result<Exit>> {
    if !KINDS.contains(&kind) {
        return None;
    }
    // Inside an agent baton started, a user-wide hook must not take the chief's results.
    if std::env::var_os("BATON_AGENT").is_some_and(|v| !v.is_empty()) {
        return Some(Ok(Exit::Ok));
    }
    let event = read_event();
    Some(Ok(match kind {
        "chief-prompt" => prompt(&event).unwrap_or(Exit::Ok),
        _ => wait(&event).unwrap_or(Exit::Ok),
    }))
}

/// The event's JSON (an empty object if there is none or it is malformed: the hook then uses
/// the current folder).
fn read_event() -> serde_json::Value {
    let mut input = Vec::new();
    let _ = std::io::stdin().take(MAX_EVENT).read_to_end(&mut input);
    serde_json::from_slice(&input).unwrap_or_else(|_| serde_json::json!({}))
}

/// The store and the results inbox of the session's project.
fn inbox_of(event: &serde_json::Value) -> Option<(Store, Inbox)> {
    let cwd = event
        .get("cwd")
        .and_then(|c| c.as_str())
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())?;
    let config = crate::config::load(&cwd).ok()?;
    let store = Store::open().ok()?;
    let inbox = background::results_inbox(&store, &config);
    Some((store, inbox))
}

/// Writes the results, headed, to Claude Code; false if it did not take them (they are given
/// back, not seen).
fn pass_on(to: impl std::io::Write, text: &str) -> bool {
    let text = format!("baton: background results arrived for this project (each shown once; `baton results --all` lists them again):\n{text}");
    crate::commands::write_flushed(to, text.as_bytes()).is_ok()
}

fn prompt(event: &serde_json::Value) -> Option<Exit> {
    let (store, inbox) = inbox_of(event)?;
    let taken = results::take(&store, &inbox, Some(ANSWER_CAP)).ok()?;
    if !taken.is_empty() && pass_on(std::io::stdout(), &taken.text) {
        taken.delivered();
    }
    Some(Exit::Ok)
}

fn wait(event: &serde_json::Value) -> Option<Exit> {
    let (store, inbox) = inbox_of(event)?;
    inbox.ensure(&store).ok()?;
    let session = event
        .get("session_id")
        .and_then(|s| s.as_str())
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .unwrap_or("unknown");
    // One waiter per session: a second one (armed again by `Stop`) leaves it to the first.
    let _waiting = lock::take(&inbox.waiters.join(session), Duration::ZERO).ok()??;
    let sigs = Signals::install(&STOP_SIGNALS).ok()?;
    let limit = Instant::now() + Duration::from_secs(WAIT_TIMEOUT_S.saturating_sub(60));
    loop {
        // Watches first, then a look: nothing that lands in between is missed.
        let inotify = Inotify::init().ok()?;
        let mask = WatchMask::CREATE | WatchMask::MOVED_TO;
        inotify.watches().add(&inbox.new, mask).ok()?;
        for id in inbox.entries(false) {
            let _ = inotify.watches().add(&store.task(&id).dir, mask);
        }
        let taken = results::take(&store, &inbox, Some(ANSWER_CAP)).ok()?;
        if !taken.is_empty() {
            if !pass_on(std::io::stderr(), &taken.text) {
                return Some(Exit::Ok);
            }
            taken.delivered();
            return Some(Exit::Usage); // exit 2: Claude Code's "wake up with this"
        }
        if Instant::now() >= limit {
            return Some(Exit::Ok);
        }
        let mut poll = Poll::new();
        poll.add(sigs.fd());
        poll.add(inotify.as_fd());
        let _ = poll.wait(Some(limit));
        drop(poll);
        if sigs.take().is_some() {
            return Some(Exit::Ok);
        }
        sigs.drain();
    }
}

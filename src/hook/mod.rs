//! `baton hook KIND`: what hooks run. Each family of hooks has its own module; this one only
//! finds the module a kind belongs to (`claude`: Claude Code's hooks inside an agent, which read
//! their event on stdin; `git`: git's commit hooks, given git's arguments). No hook blocks the
//! program that runs it for longer than its own contract says.

pub mod chief;
pub mod claude;
pub mod git;

pub use claude::{take_events, Event};

use crate::exit::Exit;

/// Runs hook `kind` with the arguments its caller gave (git's hooks pass theirs; Claude Code's
/// pass none).
pub fn run(kind: &str, args: &[String]) -> anyhow::Result<Exit> {
    if let Some(done) = claude::run(kind).or_else(|| chief::run(kind)) {
        return done;
    }
    if let Some(done) = git::run(kind, args) {
        return done;
    }
    Err(crate::error::usage(format!(
        "unknown hook {kind:?}; hooks: {}",
        kinds().join(", ")
    )))
}

/// Every hook kind, for messages and help.
pub fn kinds() -> Vec<&'static str> {
    claude::KINDS
        .iter()
        .map(|(k, _)| *k)
        .chain(chief::KINDS)
        .chain(git::KINDS)
        .collect()
}

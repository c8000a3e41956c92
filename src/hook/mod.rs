//! `baton hook KIND`: what hooks run. Each family of hooks has its own module; this one only
//! finds the module a kind belongs to. Every hook reads its event on stdin and never blocks the
//! program that runs it for longer than its own contract says.

pub mod chief;
pub mod claude;

pub use claude::{take_events, Event};

use crate::exit::Exit;

/// Runs hook `kind`.
pub fn run(kind: &str) -> anyhow::Result<Exit> {
    if let Some(done) = claude::run(kind).or_else(|| chief::run(kind)) {
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
        .collect()
}

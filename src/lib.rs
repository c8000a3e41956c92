//! baton hands a prompt to a persistent agent and hands the answer back. It is at once an
//! `$EDITOR` (for Claude Code's Ctrl-G and git), a command (`baton ask`), and a file protocol in
//! a state folder that any process can speak. `run` is the whole program; `main` only maps its
//! result to an exit code.

// Tests may unwrap; the library itself may not (the `unwrap_used` lint in Cargo.toml).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cli;
pub mod commands;
pub mod control;
pub mod deliver;
pub mod directive;
pub mod driver;
pub mod editor;
pub mod error;
pub mod exit;
#[cfg(test)]
mod fuzz;
pub mod hook;
pub mod lock;
pub mod protocol;
pub mod runner;
pub mod signals;
pub mod spawn;
pub mod store;
pub mod term;
pub mod test_hooks;
pub mod time;
pub mod wait;

pub use cli::run;

//! baton hands a prompt to a persistent agent and hands the answer back. It is at once an
//! `$EDITOR` (for Claude Code's Ctrl-G and git), a command (`baton ask`), and a file protocol in
//! a state folder that any process can speak. `run` is the whole program; `main` only maps its
//! result to an exit code.
//!
//! The layers, data flowing one way: entry points (`cli`, `commands`, `editor`, `hook`) parse
//! and print → the `coordinator` delegates → the `protocol` is the state folder as types → the
//! `runner` and its `driver`s run agents. `poll` is the one way anything waits; `sys` wraps the
//! operating system; `error` and `exit` are the errors of each layer and the one map to exit
//! codes.

// Tests may unwrap; the library itself may not (the `unwrap_used` lint in Cargo.toml).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cli;
pub mod commands;
pub mod config;
pub mod coordinator;
pub mod directive;
pub mod driver;
pub mod editor;
pub mod editor_rules;
pub mod error;
pub mod exit;
#[cfg(test)]
mod fuzz;
pub mod git;
pub mod hook;
pub mod poll;
pub mod protocol;
pub mod runner;
pub mod suggest;
pub mod sys;
pub mod test_hooks;

pub use cli::run;

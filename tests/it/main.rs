//! The integration suite: the real `baton` binary, real processes, signals, tmux and git, each
//! test in its own temp state folder with a hard timeout.

#![allow(clippy::unwrap_used)]

mod util;

mod abuse;
mod claude;
mod claude_code;
mod completions;
mod core;
mod doctor;
mod editor;
mod faults;
mod front;
mod git;
mod hardening;
mod limits;
mod logs;
mod pane;
mod protocol;
mod scripts;
mod streamed;
mod team;
mod tmux_driver;
mod tty;
mod watch;
mod workflows;

//! Thin wrappers over the operating system that the rest of baton shares: signals as events,
//! starting and ending child processes, the terminal (a status line, the whole screen, colour), and
//! time.

pub mod color;
pub mod screen;
pub mod signals;
pub mod sock;
pub mod spawn;
pub mod term;
pub mod time;
pub mod vspawn;

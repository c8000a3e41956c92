//! Thin wrappers over the operating system that the rest of baton shares: signals as events,
//! starting and ending child processes, the terminal, and time.

pub mod signals;
pub mod spawn;
pub mod term;
pub mod time;

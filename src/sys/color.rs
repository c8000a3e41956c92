//! Colour only on a terminal, and never when `NO_COLOR` is set (to anything but the empty
//! string, as no-color.org asks) or the terminal is `dumb`. Commands ask once per stream and
//! print plain text otherwise, so that what a script or a pipe reads has no escape codes.

use std::os::fd::AsFd;

/// True if text written to `stream` may be coloured.
pub fn wanted(stream: impl AsFd) -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
    !no_color && !dumb && nix::unistd::isatty(stream).unwrap_or(false)
}

//! The terminal while a coordinator waits on it. Claude Code runs its editor in its own process
//! group on the real terminal, so a Ctrl-C there would kill Claude Code too: while baton waits it
//! turns off ISIG, ICANON and ECHO, reads keys itself, and draws one status line. On every way out
//! (`Drop` runs on return and on panic) it discards unread input and restores the settings it
//! found, exactly. baton aborts on a panic (no unwinding), so `Drop` does not run then: a panic
//! hook restores the terminal first, from the settings kept when it was taken.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::{Mutex, Once};

use nix::sys::termios::{self, FlushArg, LocalFlags, SetArg, SpecialCharacterIndices, Termios};

pub const CTRL_C: u8 = 0x03;

/// The terminal taken and the settings it had, for the panic hook (`None` when none is taken).
static TAKEN: Mutex<Option<(File, Termios)>> = Mutex::new(None);

/// Gives the terminal back as it was found, if it is taken: what a panic does before its message
/// is printed (and before the process aborts).
fn restore_taken() {
    // try_lock: a panic while the lock is held (never long) must not deadlock the hook.
    let Ok(mut taken) = TAKEN.try_lock() else {
        return;
    };
    if let Some((file, saved)) = taken.take() {
        let _ = write!(&file, "\r\x1b[2K");
        let _ = termios::tcflush(&file, FlushArg::TCIFLUSH);
        let _ = termios::tcsetattr(&file, SetArg::TCSANOW, &saved);
    }
}

/// A panic restores a taken terminal first, then reports as it would have.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_taken();
            previous(info);
        }));
    });
}

pub struct Tty {
    file: File,
    /// The settings found, restored on the way out; `None` for a status line only (the terminal's
    /// settings and its keys are left alone).
    saved: Option<Termios>,
    restored: bool,
}

nix::ioctl_read_bad!(tiocgwinsz, nix::libc::TIOCGWINSZ, nix::libc::winsize);

impl Tty {
    /// Takes the terminal if standard input is one; `None` otherwise (scripts, pipes).
    pub fn open() -> Option<Tty> {
        if !nix::unistd::isatty(io::stdin()).unwrap_or(false) {
            return None;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .ok()?;
        let saved = termios::tcgetattr(&file).ok()?;
        let mut raw = saved.clone();
        raw.local_flags
            .remove(LocalFlags::ISIG | LocalFlags::ICANON | LocalFlags::ECHO);
        raw.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
        raw.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        install_panic_hook();
        if let (Ok(mut taken), Ok(copy)) = (TAKEN.lock(), file.try_clone()) {
            *taken = Some((copy, saved.clone()));
        }
        termios::tcsetattr(&file, SetArg::TCSANOW, &raw).ok()?;
        Some(Tty {
            file,
            saved: Some(saved),
            restored: false,
        })
    }

    /// A status line on the terminal, if standard error is one, leaving its settings and its keys
    /// alone (for `baton ask` at a shell: Ctrl-C stays a signal, typed-ahead keys stay the
    /// shell's).
    pub fn status_only() -> Option<Tty> {
        if !nix::unistd::isatty(io::stderr()).unwrap_or(false) {
            return None;
        }
        let file = OpenOptions::new().write(true).open("/dev/tty").ok()?;
        Some(Tty {
            file,
            saved: None,
            restored: false,
        })
    }

    /// The terminal to read keys from; `None` for a status line only.
    pub fn keys(&self) -> Option<BorrowedFd<'_>> {
        self.saved.as_ref().map(|_| self.file.as_fd())
    }

    /// The terminal (for a prompt that needs a key).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Reads the keys that are waiting (call when `poll` says the terminal is readable).
    pub fn read_keys(&mut self) -> Vec<u8> {
        let mut buf = [0u8; 64];
        match self.file.read(&mut buf) {
            Ok(n) => buf[..n].to_vec(),
            Err(_) => Vec::new(),
        }
    }

    fn width(&self) -> usize {
        let mut ws = nix::libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one `winsize` into the pointer we pass, which is valid.
        match unsafe { tiocgwinsz(self.file.as_raw_fd(), &mut ws) } {
            Ok(_) if ws.ws_col > 0 => ws.ws_col as usize,
            _ => 80,
        }
    }

    /// Replaces the status line.
    pub fn status(&mut self, line: &str) {
        let width = self.width().saturating_sub(1);
        let line: String = line.chars().take(width).collect();
        let _ = write!(self.file, "\r\x1b[2K{line}");
        let _ = self.file.flush();
    }

    /// Prints a message on its own line(s), below which the status line continues.
    pub fn say(&mut self, text: &str) {
        let _ = write!(self.file, "\r\x1b[2K");
        for line in text.lines() {
            let _ = write!(self.file, "{line}\r\n");
        }
        let _ = self.file.flush();
    }

    /// Clears the status line, discards unread input and restores the terminal settings.
    pub fn restore(&mut self) {
        if self.restored {
            return;
        }
        self.restored = true;
        let _ = write!(self.file, "\r\x1b[2K");
        let _ = self.file.flush();
        if let Some(saved) = &self.saved {
            let _ = termios::tcflush(&self.file, FlushArg::TCIFLUSH);
            let _ = termios::tcsetattr(&self.file, SetArg::TCSANOW, saved);
            if let Ok(mut taken) = TAKEN.lock() {
                *taken = None;
            }
        }
    }
}

impl Drop for Tty {
    fn drop(&mut self) {
        self.restore();
    }
}

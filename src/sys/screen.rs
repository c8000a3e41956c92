//! The whole terminal, for a full-screen view (`baton status --watch`): the alternate screen,
//! raw mode (keys arrive one by one, Ctrl-C as a byte rather than a signal), the cursor hidden.
//! crossterm does the terminal's part; keys are read here from `/dev/tty` when the caller's
//! `poll` says it is readable, so the view sleeps in the same one `poll` as everything else.
//!
//! Invariant: once `Screen::enter` has returned, the terminal is given back exactly as it was
//! (the main screen and its contents, the settings crossterm saved, the cursor shown, unread
//! keys discarded) on every way out: `Drop` on return and on unwinding, and a panic hook that
//! restores it before the panic's message is printed, so that the message is seen.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use crossterm::{cursor, queue, style, terminal};

/// True while a `Screen` holds the terminal.
static ACTIVE: AtomicBool = AtomicBool::new(false);

pub const CTRL_C: u8 = 0x03;

pub struct Screen {
    /// The terminal, for keys (`None` if there is no controlling terminal to read).
    keys: Option<File>,
    out: io::Stdout,
}

impl Screen {
    /// Takes the terminal: the alternate screen, raw mode, the cursor hidden.
    pub fn enter() -> io::Result<Screen> {
        install_panic_hook();
        let keys = File::open("/dev/tty").ok();
        terminal::enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        let mut out = io::stdout();
        let entered = crossterm::execute!(out, terminal::EnterAlternateScreen, cursor::Hide);
        let screen = Screen { keys, out };
        entered?;
        Ok(screen)
    }

    /// The descriptor to poll for keys.
    pub fn keys_fd(&self) -> Option<BorrowedFd<'_>> {
        self.keys.as_ref().map(|f| f.as_fd())
    }

    /// The keys that are waiting (call when `poll` says the terminal is readable). `None` if the
    /// terminal has gone (end of file, or an error).
    pub fn read_keys(&mut self) -> Option<Vec<u8>> {
        let mut buf = [0u8; 64];
        match self.keys.as_mut()?.read(&mut buf) {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(buf[..n].to_vec()),
        }
    }

    /// The terminal's width and height, in cells.
    pub fn size(&self) -> (usize, usize) {
        terminal::size().map_or((80, 24), |(w, h)| (w.max(1) as usize, h.max(1) as usize))
    }

    /// Replaces what the screen shows with `lines`, each cut to the width, as many as fit.
    pub fn draw(&mut self, lines: &[String]) -> io::Result<()> {
        let (width, height) = self.size();
        let mut out = self.out.lock();
        queue!(out, cursor::MoveTo(0, 0))?;
        for (row, line) in lines.iter().take(height).enumerate() {
            let cut: String = line.chars().take(width).collect();
            queue!(
                out,
                cursor::MoveTo(0, row as u16),
                style::Print(cut),
                terminal::Clear(terminal::ClearType::UntilNewLine)
            )?;
        }
        if lines.len() < height {
            queue!(
                out,
                cursor::MoveTo(0, lines.len() as u16),
                terminal::Clear(terminal::ClearType::FromCursorDown)
            )?;
        }
        out.flush()
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Gives the terminal back (once): the main screen, the cursor, the saved settings; typed keys
/// that were not read are discarded rather than left for the shell.
fn restore() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let mut out = io::stdout();
    let _ = crossterm::execute!(out, cursor::Show, terminal::LeaveAlternateScreen);
    let _ = terminal::disable_raw_mode();
    if let Ok(tty) = File::open("/dev/tty") {
        let _ = nix::sys::termios::tcflush(&tty, nix::sys::termios::FlushArg::TCIFLUSH);
    }
}

/// A panic restores the terminal first, then reports as it would have.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

//! A command that keeps running while the test reads what it prints: `baton logs -f`, `baton
//! status --watch` without a terminal. A thread collects its standard output as it comes; the
//! test waits (boundedly) for text to appear, signals the command, and waits for its exit. `Drop`
//! kills it, so that no process outlives its test.

#![allow(dead_code)]

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::util::*;

pub struct Streamed {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    what: String,
    /// The threads reading its output; joined once it has exited, so that all it printed is in.
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn collect(
    mut from: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
}

impl Streamed {
    pub fn spawn(mut cmd: Command) -> Streamed {
        let what = format!("{cmd:?}");
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {what}: {e}"));
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), Arc::clone(&out)),
            collect(child.stderr.take().unwrap(), Arc::clone(&err)),
        ];
        Streamed {
            child,
            out,
            err,
            what,
            readers,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it has printed on standard output so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.out.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned()
    }

    /// Waits until its output satisfies `cond`, and panics with the output if it does not in
    /// time.
    #[track_caller]
    pub fn wait_for(&self, what: &str, cond: impl Fn(&str) -> bool) {
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_until(what, secs(15), || cond(&self.text()))
        }));
        if found.is_err() {
            panic!(
                "{}: never printed what was awaited ({what}); stdout:\n{}\nstderr:\n{}",
                self.what,
                self.text(),
                self.stderr()
            );
        }
    }

    /// Waits until its output contains `text`.
    #[track_caller]
    pub fn wait_for_text(&self, text: &str) {
        self.wait_for(&format!("it prints {text:?}"), |out| out.contains(text));
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        signal(self.pid(), sig);
    }

    /// Waits at most `limit` for it to exit.
    #[track_caller]
    pub fn exit(&mut self, limit: Duration) -> ExitStatus {
        let status = wait_child(&mut self.child, limit).unwrap_or_else(|| {
            panic!(
                "{} did not exit within {limit:?}; stdout:\n{}\nstderr:\n{}",
                self.what,
                self.text(),
                self.stderr()
            )
        });
        // Its pipes close as it exits: what it printed last is read by the time they are done.
        let readers = &self.readers;
        wait_until("its output is read to the end", secs(5), || {
            readers.iter().all(|r| r.is_finished())
        });
        status
    }
}

impl Drop for Streamed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

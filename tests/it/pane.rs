//! A real pseudo-terminal for the tests that need one: a tmux server of the test's own (its own
//! socket in the test's folder) running one pane, whose screen the test reads and into which it
//! types. `Drop` ends the server.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

pub struct Pane {
    sock: PathBuf,
}

impl Pane {
    /// Starts a detached tmux server on a private socket, running `script` in its one pane.
    pub fn start(env: &Env, script: &Path) -> Pane {
        let pane = Pane {
            sock: env.path("tmux.sock"),
        };
        pane.run(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "160",
            "-y",
            "30",
            &format!("sh {}", script.display()),
        ]);
        pane
    }

    fn run(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("tmux");
        scrub(&mut cmd);
        let out = cmd
            .arg("-S")
            .arg(&self.sock)
            .args(args)
            .output()
            .expect("running tmux");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "t"])
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Waits (boundedly) until the screen satisfies `cond`; panics with the screen if it never
    /// does.
    #[track_caller]
    pub fn wait_for(&self, what: &str, cond: impl Fn(&str) -> bool) {
        let mut last = String::new();
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_until(what, secs(15), || {
                last = self.screen();
                cond(&last)
            })
        }));
        if found.is_err() {
            panic!("the screen never showed {what}; it shows:\n{last}");
        }
    }

    /// Waits until the screen shows `text`.
    #[track_caller]
    pub fn wait_for_screen(&self, text: &str) {
        self.wait_for(&format!("the screen shows {text:?}"), |s| s.contains(text));
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.sock)
            .arg("kill-server")
            .output();
    }
}

//! The commands: each parses what it was given, calls the coordinator (or the protocol, for the
//! commands that only look), and prints. What they share is here: reading a prompt, naming
//! agents, and printing ends.

pub mod agent;
pub mod ask;
pub mod demo;
pub mod install;
pub mod status;
pub mod tasks;

use std::io::Write;

use crate::exit::{self, Exit};
use crate::protocol::TaskEnd;

/// Prints ends: one answer alone as it is; several each headed by its agent; or JSON lines (one
/// object per task, `TaskEnd::to_json`). Every end that is not `ok` is also told on stderr. The
/// exit status is that of the first end that did not succeed.
pub fn print_ends(ends: &[TaskEnd], json: bool) -> anyhow::Result<Exit> {
    let mut out = std::io::stdout().lock();
    let write = |out: &mut std::io::StdoutLock, bytes: &[u8]| -> anyhow::Result<()> {
        match out.write_all(bytes) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            r => r.map_err(|e| anyhow::Error::new(e).context("writing the answer")),
        }
    };
    for end in ends {
        if json {
            write(&mut out, format!("{}\n", end.to_json()).as_bytes())?;
            continue;
        }
        if ends.len() > 1 {
            write(&mut out, format!("==> {} <==\n", end.agent).as_bytes())?;
        }
        write(&mut out, &end.answer)?;
        // Answers are printed byte for byte; a line is only finished for a person's terminal,
        // or to keep several answers apart.
        let finish_line = ends.len() > 1 || nix::unistd::isatty(std::io::stdout()).unwrap_or(false);
        if finish_line && !end.answer.ends_with(b"\n") && !end.answer.is_empty() {
            write(&mut out, b"\n")?;
        }
    }
    let _ = out.flush();
    drop(out);
    for end in ends.iter().filter(|e| !e.is_ok()) {
        eprintln!("baton: {}", describe(end));
    }
    Ok(exit::of_ends(ends))
}

/// One line about an end that is not `ok`: its agent, task, state and reason.
pub fn describe(end: &TaskEnd) -> String {
    format!(
        "agent {} (task {}): {}{}",
        end.agent,
        end.task_id,
        end.state.as_str(),
        end.error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    )
}

//! The agent's log stays bounded. The runner appends its own lines to `agents/<name>/log`, and
//! every driver hands the same file to the agent's processes as their stderr (`Setup::log`,
//! opened `O_APPEND`), so a long-lived child — the shell driver's bash, a claude session — holds
//! a descriptor of it for as long as it lives. Renaming the log away would leave those children
//! writing into the renamed file, so the log is rotated in place instead:
//!
//! 1. once it is larger than `ROTATE_AT` (1 MiB), its bytes are copied into `log.1` (a temp file
//!    in the agent's folder, then renamed over the previous `log.1`), and
//! 2. the log is truncated to nothing; every `O_APPEND` writer's next line lands at the new end,
//!    whatever descriptor it writes through.
//!
//! The runner does this at start-up and after each task, when no task is running, so the only
//! writers are the runner itself and idle agent processes: a line written between the copy and
//! the truncation (a window of microseconds, with no task in flight) is the only thing that can
//! be lost. A log therefore holds at most `ROTATE_AT` plus one task's worth of lines, and `log.1`
//! the part before. `baton logs -f` notices the shrink and reads on from the start; it finds the
//! lines it had not read yet at the end of `log.1`.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};

use super::Runner;
use crate::error::{IoContext, StoreError};
use crate::protocol::{store, AgentPaths};

/// The size past which the log is rotated: 1 MiB.
pub const ROTATE_AT: u64 = 1 << 20;

impl Runner<'_> {
    /// Rotates the log if it has outgrown `ROTATE_AT`, and says so as the new log's first line;
    /// a failure is logged, never fatal (the log only grows on).
    pub(super) fn bound_log(&mut self) {
        match rotate_if_large(&self.paths, &self.log, ROTATE_AT) {
            Ok(Some(size)) => self.say(&format!(
                "log rotated at {size} bytes: the earlier lines are in {}",
                self.paths.log_old.display()
            )),
            Ok(None) => {}
            Err(e) => self.say(&format!("cannot rotate the log: {e}")),
        }
    }
}

/// Copies the log into `log.1` and truncates it in place if it is larger than `limit`; returns
/// the size it had then, or `None` if it was within the limit. `log` is the runner's own
/// descriptor of the log (it is truncated through it).
pub fn rotate_if_large(
    paths: &AgentPaths,
    log: &File,
    limit: u64,
) -> Result<Option<u64>, StoreError> {
    let size = log.metadata().during("measuring", &paths.log)?.len();
    if size <= limit {
        return Ok(None);
    }
    let mut source = store::open_nofollow(&paths.log).during("reading", &paths.log)?;
    let mut copy = tempfile::Builder::new()
        .prefix(".log.1-")
        .tempfile_in(&paths.dir)
        .during("writing next to", &paths.log_old)?;
    // Copy until the end stops moving, so that a line appended meanwhile is in the copy too.
    let mut copied = 0u64;
    loop {
        copied += copy_from(&mut source, copied, copy.as_file_mut())
            .during("copying the log into", &paths.log_old)?;
        let now = log.metadata().during("measuring", &paths.log)?.len();
        if now <= copied {
            break;
        }
    }
    copy.persist(&paths.log_old)
        .map_err(|e| StoreError::io("renaming into place", &paths.log_old, e.error))?;
    log.set_len(0).during("truncating", &paths.log)?;
    Ok(Some(copied))
}

/// Copies what `source` holds from `from` on to the end of `to`; returns how many bytes.
fn copy_from(source: &mut File, from: u64, to: &mut File) -> io::Result<u64> {
    source.seek(SeekFrom::Start(from))?;
    let n = io::copy(source, to)?;
    to.flush()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_large_log_is_copied_then_truncated_in_place_and_appends_go_on_at_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let paths = AgentPaths::new(dir.path().to_path_buf());
        let mut log = store::open_append(&paths.log).unwrap();
        // A second writer, as a child holding the inherited descriptor would be.
        let mut child = store::open_append(&paths.log).unwrap();
        log.write_all(b"one\ntwo\n").unwrap();
        assert_eq!(rotate_if_large(&paths, &log, 100).unwrap(), None);
        child.write_all(&[b'x'; 200]).unwrap();
        assert_eq!(rotate_if_large(&paths, &log, 100).unwrap(), Some(208));
        assert_eq!(std::fs::read(&paths.log).unwrap(), b"");
        let old = std::fs::read(&paths.log_old).unwrap();
        assert!(old.starts_with(b"one\ntwo\nxxx") && old.len() == 208);
        child.write_all(b"after\n").unwrap();
        assert_eq!(std::fs::read(&paths.log).unwrap(), b"after\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&paths.log_old)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

//! The staged changes, bounded, as the hooks send them to an agent: `git diff --cached --stat`
//! always (every file, however large the change), and the patch itself up to `MAX_PATCH`
//! bytes, cut at a line end, with a line saying how much was left out. A huge change costs the
//! hook no more memory than that: the rest of git's output is counted, not kept.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

/// The most of the patch an agent is sent (64 KiB).
pub const MAX_PATCH: usize = 64 << 10;

/// What is staged.
#[derive(Debug)]
pub struct Staged {
    /// `git diff --cached --stat`.
    pub stat: String,
    /// The patch, at most `MAX_PATCH` bytes of it.
    pub patch: Vec<u8>,
    /// How many bytes of the patch were left out.
    pub omitted: u64,
}

/// The changes staged in `dir` against `base` (default `HEAD`; an amend compares with the
/// commit's parent). `None` if nothing is staged.
pub fn staged(dir: &Path, base: Option<&str>) -> Result<Option<Staged>, String> {
    let mut args = vec!["diff", "--cached", "--no-color", "--no-ext-diff"];
    args.extend(base);
    let mut stat_args = args.clone();
    stat_args.push("--stat=100");
    let stat = super::text(dir, &stat_args)?;
    if stat.trim().is_empty() {
        return Ok(None);
    }
    let (patch, omitted) = bounded(dir, &args, MAX_PATCH)?;
    Ok(Some(Staged {
        stat,
        patch,
        omitted,
    }))
}

/// `git ARGS`'s output up to `limit` bytes, cut after the last line end within it, and how many
/// bytes were left out.
fn bounded(dir: &Path, args: &[&str], limit: usize) -> Result<(Vec<u8>, u64), String> {
    let what = || format!("git {}", args.join(" "));
    let mut child = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("running {}: {e}", what()))?;
    let mut kept = Vec::new();
    let mut total: u64 = 0;
    if let Some(out) = child.stdout.as_mut() {
        let mut buf = [0u8; 16 << 10];
        loop {
            let n = match out.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("reading {}: {e}", what())),
            };
            total += n as u64;
            let room = (limit + 1).saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for {}: {e}", what()))?;
    if !status.success() {
        return Err(format!("{} failed ({status})", what()));
    }
    if kept.len() > limit {
        let end = kept[..limit]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(limit, |i| i + 1);
        kept.truncate(end);
    }
    let omitted = total - kept.len() as u64;
    Ok((kept, omitted))
}

impl Staged {
    /// The changes as a prompt shows them.
    pub fn describe(&self) -> Vec<u8> {
        let mut out = format!(
            "Staged changes (git diff --cached --stat):\n{}\n\nThe patch (git diff --cached):\n",
            self.stat
        )
        .into_bytes();
        out.extend_from_slice(&self.patch);
        if !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        if self.omitted > 0 {
            out.extend_from_slice(
                format!(
                    "[… the patch is cut here, at {} KiB: {} more bytes are not shown; the summary above lists every file]\n",
                    MAX_PATCH >> 10,
                    self.omitted
                )
                .as_bytes(),
            );
        }
        out
    }
}

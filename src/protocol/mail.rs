//! Agent mail: messages agents (and people) leave each other, one JSON object a line in
//! `messages/<agent id>.jsonl` — `{"from", "to", "timestamp" (RFC 3339), "text"}` — with the
//! offset of the first unread byte in `messages/<agent id>.read`.
//!
//! Invariants: a line is appended whole, under an exclusive flock on the file, so concurrent
//! senders never interleave; a line torn by a sender killed mid-write (no final newline) is cut
//! off by the next writer before it appends, and readers never take a line without its newline.
//! A purge (`baton gc`) replaces the file under the lock; a sender that opened the old one sees
//! it is no longer the file at that path once it has the lock, and opens the new one.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::store::{self, Store};
use crate::error::{IoContext, StoreError};
use crate::sys::time;

type Result<T> = std::result::Result<T, StoreError>;

/// The largest message (1 MiB): mail is for notes between agents, not for files.
pub const MAX_MESSAGE: usize = 1 << 20;

/// A test pause point: a sender stops here with half of its line written (debug builds only).
pub const HALF_WRITTEN: &str = "mail-half-written";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub from: String,
    pub to: String,
    pub timestamp: String,
    pub text: String,
}

/// One agent's mailbox.
#[derive(Clone, Debug)]
pub struct Mailbox {
    pub agent: String,
    pub jsonl: PathBuf,
    /// The offset of the first unread message.
    pub read: PathBuf,
}

impl Mailbox {
    pub fn new(store: &Store, agent: &str) -> Mailbox {
        let dir = store.root().join("messages");
        Mailbox {
            agent: agent.to_string(),
            jsonl: dir.join(format!("{agent}.jsonl")),
            read: dir.join(format!("{agent}.read")),
        }
    }
}

/// Every mailbox of the state folder, by agent id.
pub fn all(store: &Store) -> Vec<Mailbox> {
    let Ok(rd) = fs::read_dir(store.root().join("messages")) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".jsonl").map(str::to_string))
        .filter(|n| super::agent::validate_id(n).is_ok())
        .collect();
    ids.sort();
    ids.iter().map(|id| Mailbox::new(store, id)).collect()
}

fn open(path: &std::path::Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .during("opening the mailbox", path)
}

/// The mailbox file, opened and locked exclusively: the one at its path now (a purge may have
/// replaced the one first opened).
fn lock_current(mailbox: &Mailbox) -> Result<Flock<File>> {
    loop {
        let file = open(&mailbox.jsonl)?;
        let held = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| StoreError::io("locking", &mailbox.jsonl, e.into()))?;
        let same = match (held.metadata(), fs::symlink_metadata(&mailbox.jsonl)) {
            (Ok(a), Ok(b)) => store::same_file(&a, &b),
            _ => false,
        };
        if same {
            return Ok(held);
        }
    }
}

/// Cuts off a last line without its newline (left by a writer that was killed mid-line).
fn repair(file: &mut File, path: &std::path::Path) -> Result<()> {
    let len = file.metadata().during("reading", path)?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))
        .during("reading", path)?;
    file.read_exact(&mut last).during("reading", path)?;
    if last[0] == b'\n' {
        return Ok(());
    }
    // Find the last newline, reading back in chunks.
    let mut end = len;
    let mut keep = 0;
    let mut buf = vec![0u8; 8192];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start)).during("reading", path)?;
        file.read_exact(&mut buf[..n]).during("reading", path)?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            keep = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    file.set_len(keep).during("repairing a torn line in", path)
}

/// Appends a message from `from` to `mailbox`, whole, whatever other senders do at once.
pub fn send(store: &Store, mailbox: &Mailbox, from: &str, text: &str) -> Result<Message> {
    store::ensure_dir(&store.root().join("messages"))?;
    let message = Message {
        from: from.to_string(),
        to: mailbox.agent.clone(),
        timestamp: time::now_rfc3339(),
        text: text.to_string(),
    };
    let mut line = serde_json::to_vec(&message).map_err(|e| StoreError::Malformed {
        path: mailbox.jsonl.clone(),
        why: e.to_string(),
    })?;
    line.push(b'\n');
    let mut held = lock_current(mailbox)?;
    repair(&mut held, &mailbox.jsonl)?;
    write_line(&mut held, &line).during("appending to", &mailbox.jsonl)?;
    Ok(message)
}

/// Writes the line in one call (in debug builds in two, with a pause point between, so that a
/// test can kill a sender mid-line).
fn write_line(file: &mut File, line: &[u8]) -> std::io::Result<()> {
    if cfg!(debug_assertions) {
        let half = line.len() / 2;
        file.write_all(&line[..half])?;
        crate::test_hooks::pause_point(HALF_WRITTEN);
        return file.write_all(&line[half..]);
    }
    file.write_all(line)
}

/// The messages from byte `from` on (0: all), and the offset after the last whole line.
fn read_from(mailbox: &Mailbox, from: u64) -> Result<(Vec<Message>, u64)> {
    let bytes = match store::read_nofollow(&mailbox.jsonl) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(StoreError::io("reading", &mailbox.jsonl, e)),
    };
    let start = (from as usize).min(bytes.len());
    let whole = bytes[start..]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(start, |i| start + i + 1);
    let messages = bytes[start..whole]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect();
    Ok((messages, whole as u64))
}

/// Records that everything before byte `at` has been read (under the mailbox's lock).
fn write_mark(mailbox: &Mailbox, at: u64) -> Result<()> {
    store::write_atomic(&mailbox.read, at.to_string().as_bytes())
}

fn read_mark(mailbox: &Mailbox) -> u64 {
    store::read_nofollow(&mailbox.read)
        .ok()
        .and_then(|b| String::from_utf8_lossy(&b).trim().parse().ok())
        .unwrap_or(0)
}

/// The unread messages (with `all`, every message), and the mark that would make them read.
pub fn read(mailbox: &Mailbox, all: bool) -> Result<(Vec<Message>, u64)> {
    read_from(mailbox, if all { 0 } else { read_mark(mailbox) })
}

/// Marks everything before byte `upto` read (under the lock, so that a purge cannot interleave).
pub fn mark(mailbox: &Mailbox, upto: u64) -> Result<()> {
    let _held = lock_current(mailbox)?;
    if upto > read_mark(mailbox) {
        write_mark(mailbox, upto)?;
    }
    Ok(())
}

/// How many messages wait unread.
pub fn unread(mailbox: &Mailbox) -> usize {
    read(mailbox, false).map_or(0, |(m, _)| m.len())
}

/// Unread messages taken by one reader: marked read already, so that no other reader takes
/// them too. `give_back` marks them unread again if the reader could not pass them on.
pub struct Claim {
    pub messages: Vec<Message>,
    from: u64,
    upto: u64,
}

/// Takes the unread messages: reads them and marks them read in one step, under the lock (a
/// purge or another reader cannot come in between).
pub fn claim_unread(mailbox: &Mailbox) -> Result<Claim> {
    // No mailbox, no mail: nothing is created for an agent no one wrote to.
    if !store::exists(&mailbox.jsonl) {
        return Ok(Claim {
            messages: Vec::new(),
            from: 0,
            upto: 0,
        });
    }
    let _held = lock_current(mailbox)?;
    let from = read_mark(mailbox);
    let (messages, upto) = read_from(mailbox, from)?;
    if upto > from {
        write_mark(mailbox, upto)?;
    }
    Ok(Claim {
        messages,
        from,
        upto,
    })
}

/// Marks a claim's messages unread again, unless the mark has moved since (a purge, a later
/// reader): then they stay as they are.
pub fn give_back(mailbox: &Mailbox, claim: &Claim) -> Result<()> {
    let _held = lock_current(mailbox)?;
    if claim.upto > claim.from && read_mark(mailbox) == claim.upto {
        write_mark(mailbox, claim.from)?;
    }
    Ok(())
}

/// Removes the messages older than `older_than`; returns how many went.
pub fn purge(mailbox: &Mailbox, older_than: Duration) -> Result<usize> {
    let held = lock_current(mailbox)?;
    let cutoff =
        time::now_ms().saturating_sub(u64::try_from(older_than.as_millis()).unwrap_or(u64::MAX));
    let bytes = store::read_nofollow(&mailbox.jsonl).during("reading", &mailbox.jsonl)?;
    let mark = read_mark(mailbox);
    let (mut kept, mut new_mark, mut gone, mut at) = (Vec::new(), 0u64, 0usize, 0u64);
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let start = at;
        at += line.len() as u64;
        if !line.ends_with(b"\n") {
            continue; // torn: never a message
        }
        let old = serde_json::from_slice::<Message>(line)
            .ok()
            .and_then(|m| time::parse_rfc3339_ms(&m.timestamp))
            .is_some_and(|ms| ms < cutoff);
        if old {
            gone += 1;
            continue;
        }
        if start < mark {
            new_mark += line.len() as u64;
        }
        kept.extend_from_slice(line);
    }
    if gone > 0 {
        store::write_atomic(&mailbox.jsonl, &kept)?;
        write_mark(mailbox, new_mark)?;
    }
    drop(held);
    Ok(gone)
}

//! The state folder: where it is, the safety checks it must pass, and the one way files in it are
//! written (temp file in the same folder, then rename).
//!
//! Invariants kept here: every folder baton uses under the root is a real directory (not a
//! symlink), owned by the current user, and not writable by group or others; protocol files are
//! opened with `O_NOFOLLOW`; a file another process reads is never seen half-written.
//!
//! fsync: baton does not fsync. The protocol guards against processes dying (rename is atomic),
//! not against power loss; an fsync per file would cost more than the whole round trip it guards.

use std::ffi::OsStr;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// The resolved state folder.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

/// Where the state folder is: `$BATON_HOME`, else `$XDG_STATE_HOME/baton`, else
/// `~/.local/state/baton`.
pub fn default_root() -> Result<PathBuf> {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(home) = nonempty("BATON_HOME") {
        return Ok(PathBuf::from(home));
    }
    if let Some(state) = nonempty("XDG_STATE_HOME") {
        return Ok(PathBuf::from(state).join("baton"));
    }
    match nonempty("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".local/state/baton")),
        None => Err(Error::Unsafe {
            path: PathBuf::from("~"),
            why: "neither BATON_HOME, XDG_STATE_HOME nor HOME is set".into(),
        }),
    }
}

impl Store {
    /// Opens (creating if needed) the state folder at its default place.
    pub fn open() -> Result<Store> {
        Store::open_at(default_root()?)
    }

    pub fn open_at(root: PathBuf) -> Result<Store> {
        if let Some(parent) = root.parent() {
            if !parent.as_os_str().is_empty() {
                fs::create_dir_all(parent)
                    .during("creating the parent of the state folder", parent)?;
            }
        }
        ensure_dir(&root)?;
        let store = Store { root };
        ensure_dir(&store.agents_dir())?;
        ensure_dir(&store.tasks_dir())?;
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn agents_dir(&self) -> PathBuf {
        self.root.join("agents")
    }

    pub fn tasks_dir(&self) -> PathBuf {
        self.root.join("tasks")
    }

    pub fn agent_dir(&self, name: &str) -> PathBuf {
        self.agents_dir().join(name)
    }

    pub fn task_dir(&self, id: &str) -> PathBuf {
        self.tasks_dir().join(id)
    }

    /// Creates (or checks) an agent's folder and its inbox.
    pub fn ensure_agent(&self, name: &str) -> Result<AgentPaths> {
        validate_name(name)?;
        let paths = AgentPaths::new(self.agent_dir(name));
        ensure_dir(&paths.dir)?;
        ensure_dir(&paths.dir.join("inbox"))?;
        for d in [&paths.inbox_tmp, &paths.inbox_new, &paths.inbox_cur] {
            ensure_dir(d)?;
        }
        Ok(paths)
    }

    /// The paths of an agent that is known to this state folder, or `None` if it has never run.
    pub fn agent(&self, name: &str) -> Result<Option<AgentPaths>> {
        validate_name(name)?;
        let dir = self.agent_dir(name);
        match fs::symlink_metadata(&dir) {
            Ok(_) => {
                check_dir(&dir)?;
                Ok(Some(AgentPaths::new(dir)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading", dir, e)),
        }
    }

    /// The names of every agent folder, sorted.
    pub fn agent_names(&self) -> Result<Vec<String>> {
        let dir = self.agents_dir();
        let mut names: Vec<String> = fs::read_dir(&dir)
            .during("listing", &dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|n| validate_name(n).is_ok())
            .collect();
        names.sort();
        Ok(names)
    }
}

/// The files of one agent.
#[derive(Clone, Debug)]
pub struct AgentPaths {
    pub dir: PathBuf,
    pub inbox_tmp: PathBuf,
    pub inbox_new: PathBuf,
    pub inbox_cur: PathBuf,
    pub lock: PathBuf,
    pub status: PathBuf,
    pub log: PathBuf,
    pub config: PathBuf,
    pub session: PathBuf,
}

impl AgentPaths {
    fn new(dir: PathBuf) -> AgentPaths {
        AgentPaths {
            inbox_tmp: dir.join("inbox/tmp"),
            inbox_new: dir.join("inbox/new"),
            inbox_cur: dir.join("inbox/cur"),
            lock: dir.join("lock"),
            status: dir.join("status.json"),
            log: dir.join("log"),
            config: dir.join("agent.json"),
            session: dir.join("session_id"),
            dir,
        }
    }

    pub fn name(&self) -> &str {
        self.dir
            .file_name()
            .and_then(OsStr::to_str)
            .unwrap_or_default()
    }
}

/// Agent names: `[a-z0-9][a-z0-9_-]{0,31}`.
pub fn validate_name(name: &str) -> Result<()> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 32
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::BadName { name: name.into() })
    }
}

/// Task ids: `<ns since epoch, 19 digits>-<8 hex>`; only `[0-9a-f-]`, so an id can never name a
/// path.
pub fn validate_task_id(id: &str) -> Result<()> {
    let ok = (3..=40).contains(&id.len())
        && id
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c) || c == b'-')
        && !id.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::BadTaskId { id: id.into() })
    }
}

/// A new task id, unique across processes: the time in nanoseconds, then 32 random bits. Ids
/// sort in the order they were made, so inbox entries (priority, then id) are first in, first
/// out within a priority, even for tasks made within the same millisecond.
pub fn new_task_id() -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{ns:019}-{:08x}", random_u64() as u32)
}

/// A random version-4 UUID.
pub fn new_uuid() -> String {
    let (a, b) = (random_u64(), random_u64());
    let a = (a & !0xf000) | 0x4000; // version 4
    let b = (b & !(0xc << 60)) | (0x8 << 60); // RFC 4122 variant
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// 64 random bits from the kernel, falling back to std's per-process random hasher keys.
pub fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    if File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok()
    {
        return u64::from_ne_bytes(buf);
    }
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// Creates `dir` with mode 0700 if it is missing, then checks it.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => check_dir(dir),
        Err(e) => Err(Error::io("creating folder", dir, e)),
    }
}

/// Refuses a folder that is a symlink, not a folder, owned by another user, or writable by group
/// or others.
pub fn check_dir(dir: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(dir).during("checking", dir)?;
    let why = if meta.file_type().is_symlink() {
        Some("it is a symbolic link".to_string())
    } else if !meta.is_dir() {
        Some("it is not a folder".to_string())
    } else if meta.uid() != nix::unistd::geteuid().as_raw() {
        Some(format!(
            "it is owned by uid {}, not by you (uid {})",
            meta.uid(),
            nix::unistd::geteuid()
        ))
    } else if meta.mode() & 0o022 != 0 {
        Some(format!(
            "it is writable by group or others (mode {:o}); run `chmod go-w {}`",
            meta.permissions().mode() & 0o7777,
            dir.display()
        ))
    } else {
        None
    };
    match why {
        Some(why) => Err(Error::Unsafe {
            path: dir.into(),
            why,
        }),
        None => Ok(()),
    }
}

/// Writes `bytes` to `dir/name` atomically: a temp file in `dir`, then rename over the target.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let target = dir.join(name);
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .during("creating a temp file in", dir)?;
    // Through the inner File, whose errors are plain (the wrapper repeats the path).
    tmp.as_file_mut()
        .write_all(bytes)
        .during("writing", tmp.path())?;
    tmp.persist(&target)
        .map_err(|e| Error::io("renaming into place", &target, e.error))?;
    Ok(())
}

/// Reads a protocol file without following a symlink at its last component.
pub fn read_nofollow(path: &Path) -> io::Result<Vec<u8>> {
    let mut f = open_nofollow(path)?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(buf)
}

pub fn open_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
}

/// Opens a file for appending (created with mode 0600), refusing a symlink.
pub fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .during("opening", path)
}

/// True if `path` exists (without following a final symlink).
pub fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// The last non-empty line of a file, reading at most its last 4 KiB.
pub fn last_line(path: &Path) -> Option<String> {
    use std::io::{Seek, SeekFrom};
    let mut f = open_nofollow(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.chars().filter(|c| !c.is_control()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "planning", "sh1", "a-b_c", "0x", &"a".repeat(32)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "A",
            "-a",
            "_a",
            "a/b",
            "a b",
            "../x",
            &"a".repeat(33),
            "é",
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn task_ids_are_valid_and_unique() {
        let a = new_task_id();
        let b = new_task_id();
        assert!(a < b, "ids sort in the order they were made: {a} {b}");
        validate_task_id(&a).unwrap();
        assert!(validate_task_id("../etc").is_err());
        assert!(validate_task_id("-x").is_err());
    }

    #[test]
    fn uuid_shape() {
        let u = new_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}

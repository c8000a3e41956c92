//! The state folder: where it is, the safety checks it must pass, and the way files in it are
//! written (temp file in the same folder, then rename; `rewritten` keeps a file its one writer
//! replaces often in two files that take turns). It owns the root path and hands out the
//! typed paths of agents (`AgentPaths`) and tasks (`TaskPaths`); no other module joins a protocol
//! file name onto a folder.
//!
//! Invariants kept here: the root is absolute; every folder baton uses under it is a real
//! directory (not a symlink), owned by the current user, and not writable by group or others;
//! protocol files are opened with `O_NOFOLLOW`; a file another process reads is never seen
//! half-written; every file baton creates is mode 0600.
//!
//! fsync: baton does not fsync. The protocol guards against processes dying (rename is atomic),
//! not against power loss; an fsync per file would cost more than the whole round trip it guards.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::agent::AgentPaths;
use super::task::{TaskId, TaskPaths};
use crate::error::{IoContext, StoreError};

type Result<T> = std::result::Result<T, StoreError>;

/// The longest path a Unix socket address holds.
pub const SOCKET_PATH_MAX: usize = crate::sys::sock::PATH_MAX;

/// The resolved state folder.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

/// Where the state folder is: `$BATON_HOME`, else `$XDG_STATE_HOME/baton`, else
/// `~/.local/state/baton`, made absolute once (an agent that changes its folder must still find
/// it). `BATON_HOME` set but empty is an error, not a silent fallback.
pub fn default_root() -> Result<PathBuf> {
    let set = |k: &str| std::env::var_os(k);
    let root = match set("BATON_HOME") {
        Some(home) if home.is_empty() => {
            return Err(StoreError::Unsafe {
                path: PathBuf::from("$BATON_HOME"),
                why: "BATON_HOME is set but empty: unset it, or name a folder".into(),
            })
        }
        Some(home) => PathBuf::from(home),
        None => match (set("XDG_STATE_HOME").filter(|v| !v.is_empty()), set("HOME")) {
            (Some(state), _) => PathBuf::from(state).join("baton"),
            (None, Some(home)) if !home.is_empty() => {
                PathBuf::from(home).join(".local/state/baton")
            }
            _ => {
                return Err(StoreError::Unsafe {
                    path: PathBuf::from("~"),
                    why: "neither BATON_HOME, XDG_STATE_HOME nor HOME is set".into(),
                })
            }
        },
    };
    std::path::absolute(&root).during("resolving the state folder", &root)
}

impl Store {
    /// Opens (creating if needed) the state folder at its default place.
    pub fn open() -> Result<Store> {
        Store::open_at(default_root()?)
    }

    pub fn open_at(root: PathBuf) -> Result<Store> {
        let root = std::path::absolute(&root).during("resolving the state folder", &root)?;
        // Even an agent with a one-letter name needs its control socket under the root.
        check_socket_path(&root.join("agents/a/sock"))?;
        match ensure_dir(&root) {
            Err(StoreError::Io { cause, .. }) if cause.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = root.parent() {
                    fs::create_dir_all(parent)
                        .during("creating the parent of the state folder", parent)?;
                }
                ensure_dir(&root)?;
            }
            other => other?,
        }
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

    /// The global limit's slots: `slots/<n>`, each flocked by the runner whose task holds it.
    pub fn slots_dir(&self) -> PathBuf {
        self.root.join("slots")
    }

    /// The tasks waiting for a slot: `queue/<priority>-<task id>`, each flocked by its runner.
    pub fn queue_dir(&self) -> PathBuf {
        self.root.join("queue")
    }

    /// Agents' own git worktrees: `worktrees/<agent id>`.
    pub fn worktrees_dir(&self) -> PathBuf {
        self.root.join("worktrees")
    }

    /// The paths of task `id` (nothing is created or checked).
    pub fn task(&self, id: &TaskId) -> TaskPaths {
        TaskPaths::new(&self.tasks_dir(), id)
    }

    /// The paths of agent `name` (an id: a name, or a project's `name.<id>`; validated; nothing is
    /// created or checked).
    pub fn agent_paths(&self, name: &str) -> Result<AgentPaths> {
        super::agent::validate_id(name)?;
        Ok(AgentPaths::new(self.agents_dir().join(name)))
    }

    /// Creates (or checks) an agent's folder and its inbox.
    pub fn ensure_agent(&self, name: &str) -> Result<AgentPaths> {
        let paths = self.agent_paths(name)?;
        for d in paths.folders() {
            ensure_dir(d)?;
        }
        Ok(paths)
    }

    /// The paths of an agent that is known to this state folder, or `None` if it has never run.
    pub fn agent(&self, name: &str) -> Result<Option<AgentPaths>> {
        let paths = self.agent_paths(name)?;
        match fs::symlink_metadata(&paths.dir) {
            Ok(meta) => {
                check_meta(&paths.dir, &meta)?;
                Ok(Some(paths))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("reading", &paths.dir, e)),
        }
    }

    /// The names of every agent folder, sorted.
    pub fn agent_names(&self) -> Result<Vec<String>> {
        let dir = self.agents_dir();
        let mut names: Vec<String> = fs::read_dir(&dir)
            .during("listing", &dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|n| super::agent::validate_id(n).is_ok())
            .collect();
        names.sort();
        Ok(names)
    }
}

/// Refuses a socket path longer than a Unix socket address holds, naming the limit.
pub fn check_socket_path(path: &Path) -> Result<()> {
    let len = path.as_os_str().len();
    if len <= SOCKET_PATH_MAX {
        return Ok(());
    }
    Err(StoreError::Unsafe {
        path: path.into(),
        why: format!(
            "the path is {len} bytes long, and a Unix socket path holds at most {SOCKET_PATH_MAX}: choose a shorter BATON_HOME (or a shorter agent name)"
        ),
    })
}

/// A new random version-4 UUID.
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

/// 64 random bits from the kernel (`getrandom`, no file to open), falling back to std's
/// per-process random hasher keys.
pub fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: getrandom writes at most `buf.len()` bytes into the buffer we own.
    let n = unsafe { nix::libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n == buf.len() as isize {
        return u64::from_ne_bytes(buf);
    }
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(crate::sys::time::now_ns());
    h.write_u32(std::process::id());
    h.finish()
}

/// Creates a folder that must not exist yet (a new task's), mode 0700.
pub fn create_dir(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .during("creating folder", dir)
}

/// Checks `dir`, creating it with mode 0700 if it is missing.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(meta) => return check_meta(dir, &meta),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io("checking", dir, e)),
    }
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => check_dir(dir),
        Err(e) => Err(StoreError::io("creating folder", dir, e)),
    }
}

/// Refuses a folder that is a symlink, not a folder, owned by another user, or writable by group
/// or others.
pub fn check_dir(dir: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(dir).during("checking", dir)?;
    check_meta(dir, &meta)
}

/// Whether two metadata are of the same file (device and inode), whatever names lead to it.
pub fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

/// This process's effective uid, asked of the kernel once.
pub(crate) fn euid() -> u32 {
    static EUID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *EUID.get_or_init(|| nix::unistd::geteuid().as_raw())
}

/// `check_dir` on metadata already read (without following a link).
fn check_meta(dir: &Path, meta: &fs::Metadata) -> Result<()> {
    let why = if meta.file_type().is_symlink() {
        Some("it is a symbolic link".to_string())
    } else if !meta.is_dir() {
        Some("it is not a folder".to_string())
    } else if meta.uid() != euid() {
        Some(format!(
            "it is owned by uid {}, not by you (uid {})",
            meta.uid(),
            euid()
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
        Some(why) => Err(StoreError::Unsafe {
            path: dir.into(),
            why,
        }),
        None => Ok(()),
    }
}

/// A temp file (mode 0600) in `path`'s folder, for a file that will be renamed to `path`.
fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = parent(path);
    tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .during("creating a temp file in", dir)
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes `bytes` to `path` atomically: a temp file in its folder, then rename over the target.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = temp_beside(path)?;
    // Through the inner File, whose errors are plain (the wrapper repeats the path).
    tmp.as_file_mut()
        .write_all(bytes)
        .during("writing", tmp.path())?;
    tmp.persist(path)
        .map_err(|e| StoreError::io("renaming into place", path, e.error))?;
    Ok(())
}

/// Writes `bytes` to `path` atomically only if `path` does not exist yet. `Ok(false)` if it did:
/// a later writer never replaces what an earlier one recorded.
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<bool> {
    let mut tmp = temp_beside(path)?;
    tmp.as_file_mut()
        .write_all(bytes)
        .during("writing", tmp.path())?;
    // persist_noclobber links the temp file into place and fails if the target exists.
    match tmp.persist_noclobber(path) {
        Ok(_) => Ok(true),
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(StoreError::io("writing", path, e.error)),
    }
}

/// Reads a protocol file without following a symlink at its last component. (Protocol files are
/// small: no `stat` first to size the buffer, just reads until the end.)
pub fn read_nofollow(path: &Path) -> io::Result<Vec<u8>> {
    // Room for any protocol file in one read; through `Take`, whose reads grow the buffer as
    // they go (a `File`'s own would stat first).
    let mut buf = Vec::with_capacity(8192);
    open_nofollow(path)?.take(u64::MAX).read_to_end(&mut buf)?;
    Ok(buf)
}

pub fn open_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
}

/// Creates (or truncates) a file for writing, mode 0600, refusing a symlink.
pub fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
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
    fn uuid_shape() {
        let u = new_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(new_uuid(), u);
    }

    #[test]
    fn a_root_too_long_for_a_socket_is_refused_naming_the_limit() {
        let long = PathBuf::from("/tmp").join("x".repeat(100));
        let err = Store::open_at(long).unwrap_err().to_string();
        assert!(err.contains("107"), "{err}");
    }

    #[test]
    fn written_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"x").unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert!(!write_new(&path, b"y").unwrap(), "never replaced");
        assert_eq!(fs::read(&path).unwrap(), b"x");
    }
}

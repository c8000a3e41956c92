//! Task folders made ahead: an agent's `spare/` holds a few empty task folders (each with an
//! empty `prompt` and `task.json`, mode 0600, in a folder of mode 0700), made by its runner while
//! nothing waits on it. A caller delivering to the agent takes one by renaming it to its task's
//! name, and writes into its two files, instead of making a folder and two files of its own.
//! On some disks that is most of a caller's work: ext4 without a journal spends 0.1–0.2 ms on
//! each new inode (see bench/RESULTS.md), a rename costs a tenth of that.
//!
//! A spare is never what a reader sees as a task: it is outside `tasks/` until it is taken, and
//! once taken it holds what a folder the caller made would hold. One that is not what a runner
//! makes (a link, another owner's, files that are not empty, anything else in it) is thrown away
//! and the caller makes its own; so does a caller that finds none (the runner is busy, or it is
//! another disk), or finds `spare/` itself is not a folder of its own.

use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};

use super::store::{self, random_u64};
use super::task::{PROMPT, TASK_JSON};
use crate::error::{IoContext, StoreError};

/// How many spares a runner keeps ready.
pub const KEPT: usize = 2;

/// How the name of a spare being made begins (hidden from callers until it is renamed whole).
const MAKING: &str = ".new-";

/// The two files of a taken spare, open for writing.
pub struct Taken {
    pub prompt: File,
    pub task: File,
}

/// Takes one of the spares in `spare` as the task folder `dir` (which must not exist). `None`
/// if there is none, or the one taken is not what a runner makes (it is removed then).
pub fn take(spare: &Path, dir: &Path) -> Option<Taken> {
    store::check_dir(spare).ok()?;
    let ready = fs::read_dir(spare).ok()?;
    for entry in ready.filter_map(Result::ok) {
        if !in_view(&entry) {
            continue;
        }
        match renameat2(
            AT_FDCWD,
            &entry.path(),
            AT_FDCWD,
            dir,
            RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => {}
            // Another caller took it first.
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(_) => return None,
        }
        return match open_taken(dir) {
            Ok(taken) => Some(taken),
            Err(_) => {
                throw_away(dir);
                None
            }
        };
    }
    None
}

/// The files of a spare just taken, checked as a new folder's would be: nothing in it but the
/// two blank files.
fn open_taken(dir: &Path) -> Result<Taken, StoreError> {
    store::check_dir(dir)?;
    for entry in fs::read_dir(dir).during("listing", dir)? {
        let name = entry.during("listing", dir)?.file_name();
        if name != PROMPT && name != TASK_JSON {
            return Err(StoreError::Unsafe {
                path: dir.join(name),
                why: "a task folder made ahead holds nothing but a blank prompt and task.json"
                    .into(),
            });
        }
    }
    Ok(Taken {
        prompt: open_blank(&dir.join(PROMPT))?,
        task: open_blank(&dir.join(TASK_JSON))?,
    })
}

/// Opens a spare's file for writing: it must be a regular file of ours, empty, with one link.
fn open_blank(path: &Path) -> Result<File, StoreError> {
    let file = fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .during("opening", path)?;
    let meta = file.metadata().during("checking", path)?;
    let ours = meta.uid() == store::euid();
    if !(meta.file_type().is_file() && ours && meta.len() == 0 && meta.nlink() == 1) {
        return Err(StoreError::Unsafe {
            path: path.into(),
            why: "it is not an empty file of this user's".into(),
        });
    }
    Ok(file)
}

/// Removes what was taken: a folder and what is in it, or whatever else sits there.
fn throw_away(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            let _ = fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// Makes spares in `spare` until it holds `KEPT`. Each is made under a name starting with `.`
/// (which callers pass over) and renamed into view whole.
pub fn refill(spare: &Path) -> Result<(), StoreError> {
    store::ensure_dir(spare)?;
    let ready = fs::read_dir(spare)
        .during("listing", spare)?
        .filter_map(Result::ok)
        .filter(in_view)
        .count();
    for _ in ready..KEPT {
        let making = spare.join(format!("{MAKING}{:016x}", random_u64()));
        let made = (|| {
            store::create_dir(&making)?;
            for name in [PROMPT, TASK_JSON] {
                super::inbox::write_fresh(&making.join(name), b"")?;
            }
            let ready = spare.join(format!("{:016x}", random_u64()));
            fs::rename(&making, &ready).during("renaming into place", &ready)
        })();
        if let Err(e) = made {
            throw_away(&making);
            return Err(e);
        }
    }
    Ok(())
}

/// A spare ready to be taken: not one being made (`MAKING`), nor anything else hidden.
fn in_view(entry: &fs::DirEntry) -> bool {
    !entry.file_name().as_encoded_bytes().starts_with(b".")
}

/// Removes what a runner that died while making a spare left half made.
pub fn clear_unfinished(spare: &Path) {
    if store::check_dir(spare).is_err() {
        return;
    }
    let Ok(entries) = fs::read_dir(spare) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        if entry
            .file_name()
            .as_encoded_bytes()
            .starts_with(MAKING.as_bytes())
        {
            throw_away(&entry.path());
        }
    }
}

/// Files a runner makes ahead for what it writes into a task's folder (`output` as the task
/// starts, `done.json` as it ends): open and nameless (`O_TMPFILE`) in `tasks/`, and named by a
/// link when needed. Where the filesystem cannot (no `O_TMPFILE`, no `/proc` to link from, the
/// task folder on another disk), none is made from then on and the runner creates its files.
pub struct Unnamed {
    dir: std::path::PathBuf,
    ready: Vec<File>,
    works: bool,
}

impl Unnamed {
    pub fn new(tasks_dir: &Path) -> Unnamed {
        Unnamed {
            dir: tasks_dir.to_path_buf(),
            ready: Vec::new(),
            works: true,
        }
    }

    /// Makes files until `KEPT` are ready.
    pub fn refill(&mut self) {
        while self.works && self.ready.len() < KEPT {
            match fs::OpenOptions::new()
                .read(true)
                .write(true)
                .mode(0o600)
                .custom_flags(nix::libc::O_TMPFILE)
                .open(&self.dir)
            {
                Ok(file) => self.ready.push(file),
                Err(e) => {
                    self.works = !cannot_ever(e.raw_os_error().unwrap_or(0));
                    return;
                }
            }
        }
    }

    /// A file made ahead, holding `bytes`, given the name `path` (which must not exist yet, and
    /// appears whole): `Some((file, true))`, or `Some((_, false))` if `path` exists. `None` if
    /// there is none ready or it cannot be written or linked (then the caller makes the file
    /// itself, and, if it never can be here, no more are made).
    pub fn place(&mut self, path: &Path, bytes: &[u8]) -> Option<(File, bool)> {
        use std::io::Write;
        let mut file = self.ready.pop()?;
        file.write_all(bytes).ok()?;
        let named = self.name(&file, path).ok()?;
        Some((file, named))
    }

    /// Gives `path` to `file`, one made ahead: `Ok(false)` if `path` exists.
    fn name(&mut self, file: &File, path: &Path) -> std::io::Result<bool> {
        use std::os::fd::AsRawFd;
        let from = format!("/proc/self/fd/{}", file.as_raw_fd());
        match nix::unistd::linkat(
            AT_FDCWD,
            from.as_str(),
            AT_FDCWD,
            path,
            nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
        ) {
            Ok(()) => Ok(true),
            Err(nix::errno::Errno::EEXIST) => Ok(false),
            Err(e) => {
                // ENOENT: the task's folder is gone, or there is no /proc to link from.
                let no_proc =
                    e == nix::errno::Errno::ENOENT && !Path::new("/proc/self/fd").is_dir();
                self.works = !(no_proc || cannot_ever(e as i32));
                Err(e.into())
            }
        }
    }
}

/// Whether an error making or naming a nameless file says it never works here (no `O_TMPFILE`
/// on this filesystem or kernel, which then reads it as a folder, no links on another disk),
/// rather than not now (a full disk, no free descriptor).
fn cannot_ever(errno: i32) -> bool {
    use nix::libc::{EINVAL, EISDIR, EOPNOTSUPP, EPERM, EXDEV};
    matches!(errno, EOPNOTSUPP | EINVAL | EISDIR | EXDEV | EPERM)
}

//! A small file that its one writer replaces often (a runner's `status.json`, twice a task),
//! kept whole for its readers as `store::write_atomic` keeps any file, but without making the
//! filesystem allocate one inode and free another for every version.
//!
//! Why: a temp file renamed over the old version costs little on most filesystems, but on ext4
//! without a journal every file created skips, one by one, each inode freed in the last minutes
//! (the scan grows with every version thrown away), and on a disk mounted `-o discard`, freeing
//! a version whose data were already allocated (ext4 allocates a file renamed over another at
//! once, its `auto_da_alloc`) waits for a discard. On such a disk a task's file work was ~1.5 ms
//! with a temp file per version and ~0.25 ms with this (bench/RESULTS.md).
//!
//! How: the version replaced is kept beside the file under a hidden name (`.<name>.spare`); the
//! next version is written into it and swapped in with `renameat2(RENAME_EXCHANGE)`, atomic like
//! a rename: whoever opens the file gets one whole version or the other. A reader that opened
//! the old version may still be reading it, so the spare is written only under a write lease
//! (`F_SETLEASE`), which the kernel grants only while no one else has the file open, and which
//! makes anyone opening it meanwhile wait until the lease is given back. A spare someone holds
//! open, or that has another name (a hard link someone keeps), is let go and a new one is made.
//! Where the filesystem has no leases or no exchange, every version is a temp file and a rename.
//! Seen from outside: a watcher of the folder sees each swap as two renames (the spare's name
//! and the file's trade places), and an `O_NONBLOCK` open of the spare while it is written
//! fails with EWOULDBLOCK instead of waiting.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
use nix::libc;

use super::store;
use crate::error::{IoContext, StoreError};

/// A file replaced whole, again and again, by one writer.
pub struct Rewritten {
    path: PathBuf,
    spare: PathBuf,
    /// This process's user, who must own the spare.
    uid: u32,
    /// False once the filesystem has shown it cannot lease or exchange.
    reuse: bool,
}

/// What an attempt to write the spare and swap it in came to.
enum Swap {
    Done,
    /// This time a temp file does it (the spare was held open, or was not a plain file).
    NotNow,
    /// Never here: the filesystem has no leases or no exchange.
    Never,
}

impl Rewritten {
    pub fn new(path: &Path) -> Rewritten {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        Rewritten {
            path: path.to_path_buf(),
            spare: path.with_file_name(format!(".{name}.spare")),
            uid: nix::unistd::geteuid().as_raw(),
            // Someone opening a leased spare makes the kernel send SIGIO: without a handler
            // for it, a lease would be fatal.
            reuse: crate::sys::signals::quiet_sigio(),
        }
    }

    /// Replaces the file with `bytes`: a reader sees the previous version or this one, whole.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        if self.reuse {
            match self.swap_in(bytes)? {
                Swap::Done => return Ok(()),
                Swap::NotNow => {}
                Swap::Never => self.reuse = false,
            }
        }
        store::write_atomic(&self.path, bytes)
    }

    fn swap_in(&self, bytes: &[u8]) -> Result<Swap, StoreError> {
        let Some((spare, len, made)) = self.open_spare()? else {
            return Ok(Swap::NotNow);
        };
        match lease(&spare, libc::F_WRLCK) {
            Ok(()) => {}
            // A spare made just now that no one can have open, refused anyway: this filesystem
            // never grants the lease.
            Err(_) if made => {
                let _ = fs::remove_file(&self.spare);
                return Ok(Swap::Never);
            }
            // Someone has the old version open (or it is not ours to lease): it stays as it
            // is, and the next write makes a new spare.
            Err(Errno::EAGAIN) | Err(Errno::EBUSY) | Err(Errno::EACCES) => {
                let _ = fs::remove_file(&self.spare);
                return Ok(Swap::NotNow);
            }
            Err(_) => return Ok(Swap::Never),
        }
        if !made {
            crate::test_hooks::pause_point(crate::test_hooks::SPARE_LEASED);
        }
        // Cut to length only if it is shorter than the last version.
        let written = spare.write_all_at(bytes, 0).and_then(|()| {
            let new_len = bytes.len() as u64;
            if new_len < len {
                spare.set_len(new_len)
            } else {
                Ok(())
            }
        });
        // Given back whatever happened: an opener waiting for it goes on, and reads this
        // version, which is the next one the file will hold. (Only if this process dies between
        // the write and the truncation, or is stopped longer than the kernel's lease-break-time,
        // 45 s by default, can such an opener — one that looked the name up before the last
        // swap — read a version with the end of the one before: `AgentPaths::read_status`
        // reads the file again when what it read does not parse.)
        let _ = lease(&spare, libc::F_UNLCK);
        written.during("writing", &self.spare)?;
        drop(spare);
        match renameat2(
            AT_FDCWD,
            &self.spare,
            AT_FDCWD,
            &self.path,
            RenameFlags::RENAME_EXCHANGE,
        ) {
            Ok(()) => Ok(Swap::Done),
            // No file to exchange with (the first version, or someone removed it): the spare
            // becomes the file.
            Err(Errno::ENOENT) => self.rename_spare().map(|()| Swap::Done),
            Err(Errno::EINVAL) | Err(Errno::ENOSYS) | Err(Errno::EOPNOTSUPP) => {
                self.rename_spare().map(|()| Swap::Never)
            }
            Err(e) => Err(StoreError::io(
                "renaming into place",
                &self.path,
                io::Error::from(e),
            )),
        }
    }

    /// The spare, its length, and whether it was made now (there was none). `None` if its name
    /// holds something other than a plain file of ours with no other name (a symlink, a folder,
    /// a hard link someone made to keep a version): that is removed if it can be (a hard link's
    /// other names keep their content), and a temp file does this version.
    fn open_spare(&self) -> Result<Option<(File, u64, bool)>, StoreError> {
        let open = |create: bool| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(create)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(&self.spare)
        };
        let ours = |m: &fs::Metadata| m.is_file() && m.nlink() == 1 && m.uid() == self.uid;
        match open(false).and_then(|f| f.metadata().map(|m| (f, m))) {
            Ok((f, m)) if ours(&m) => Ok(Some((f, m.len(), false))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => match open(true) {
                Ok(f) => Ok(Some((f, 0, true))),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
                Err(e) => Err(StoreError::io("creating", &self.spare, e)),
            },
            _ => {
                let _ = fs::remove_file(&self.spare);
                Ok(None)
            }
        }
    }

    fn rename_spare(&self) -> Result<(), StoreError> {
        fs::rename(&self.spare, &self.path).during("renaming into place", &self.path)
    }
}

fn lease(file: &File, kind: libc::c_int) -> Result<(), Errno> {
    // SAFETY: F_SETLEASE takes an int and touches no memory of ours; the fd is open.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, kind) };
    Errno::result(r).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn each_version_replaces_the_last_and_a_held_one_is_never_written_into() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        let inode = || fs::metadata(&path).unwrap().ino();
        let mut file = Rewritten::new(&path);
        file.write(b"one, a longer version\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one, a longer version\n");
        let first = inode();
        file.write(b"two\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two\n");
        let second = inode();
        // With no reader holding one, the two files take turns: no new one per version.
        file.write(b"one again\n").unwrap();
        assert_eq!(inode(), first);
        file.write(b"two\n").unwrap();
        assert_eq!(inode(), second);
        // A reader holds version two open across the next two versions.
        let mut held = File::open(&path).unwrap();
        file.write(b"three\n").unwrap();
        file.write(b"four\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"four\n");
        let mut seen = String::new();
        held.read_to_string(&mut seen).unwrap();
        assert_eq!(seen, "two\n");
    }

    #[test]
    fn a_version_someone_kept_a_hard_link_to_is_never_written_into() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        let mut file = Rewritten::new(&path);
        file.write(b"one\n").unwrap();
        let kept = dir.path().join("kept");
        fs::hard_link(&path, &kept).unwrap();
        for v in ["two\n", "three\n", "four\n"] {
            file.write(v.as_bytes()).unwrap();
            assert_eq!(fs::read_to_string(&path).unwrap(), v);
        }
        assert_eq!(fs::read(&kept).unwrap(), b"one\n");
    }

    #[test]
    fn a_link_planted_as_the_spare_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        let outside = dir.path().join("outside");
        fs::write(&outside, "untouched").unwrap();
        std::os::unix::fs::symlink(&outside, dir.path().join(".status.json.spare")).unwrap();
        let mut file = Rewritten::new(&path);
        file.write(b"one\n").unwrap();
        file.write(b"two\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two\n");
        assert_eq!(fs::read(&outside).unwrap(), b"untouched");
        // Nor a hard link to a file of the user's.
        fs::remove_file(dir.path().join(".status.json.spare")).unwrap();
        fs::hard_link(&outside, dir.path().join(".status.json.spare")).unwrap();
        file.write(b"three\n").unwrap();
        file.write(b"four\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"four\n");
        assert_eq!(fs::read(&outside).unwrap(), b"untouched");
    }
}

//! The results inbox: where the answers of work that no caller waits for (`baton send`, `d` while
//! waiting, the `&` directive) are kept until the chief has seen them. One inbox per project
//! (`results/<project id>/`, or `results/global/` outside any project), so that a result reaches
//! the sessions of the project it was sent from and no other.
//!
//! An entry is an empty file named for the work's first task (a task, or a workflow's root) in
//! `new/`; seeing it is renaming it into `seen/`, which is atomic: of two readers racing (two
//! hooks, `baton results --mark` and `@results`), exactly one shows it. An entry is *finished*
//! when its task has its `done.json`, or its workflow's record has its end; until then it is
//! left where it is.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::store::{self, Store};
use super::task::TaskId;
use crate::error::{IoContext, StoreError};

/// The folders of one results inbox.
#[derive(Clone, Debug)]
pub struct Inbox {
    pub key: String,
    pub dir: PathBuf,
    pub new: PathBuf,
    pub seen: PathBuf,
    /// `waiters/<session>`: held (flock) by the one `chief-wait` hook of a session.
    pub waiters: PathBuf,
}

impl Inbox {
    pub fn new(store: &Store, key: &str) -> Inbox {
        let dir = store.root().join("results").join(key);
        Inbox {
            key: key.to_string(),
            new: dir.join("new"),
            seen: dir.join("seen"),
            waiters: dir.join("waiters"),
            dir,
        }
    }

    /// Creates the inbox's folders (checked like every folder of the state folder).
    pub fn ensure(&self, store: &Store) -> Result<(), StoreError> {
        store::ensure_dir(&store.root().join("results"))?;
        for d in [&self.dir, &self.new, &self.seen, &self.waiters] {
            store::ensure_dir(d)?;
        }
        Ok(())
    }

    /// Adds the work that starts with task `id`.
    pub fn add(&self, store: &Store, id: &TaskId) -> Result<(), StoreError> {
        self.ensure(store)?;
        let path = self.new.join(id.as_str());
        store::create_private(&path)
            .map(drop)
            .during("adding a background result to", path)
    }

    /// The entries not seen yet (or, with `seen`, those seen), oldest first.
    pub fn entries(&self, seen: bool) -> Vec<TaskId> {
        list(if seen { &self.seen } else { &self.new })
    }

    /// Marks `id` seen. `Ok(false)` if someone else did first (or it is not there).
    pub fn claim(&self, id: &TaskId) -> Result<bool, StoreError> {
        let from = self.new.join(id.as_str());
        match fs::rename(&from, self.seen.join(id.as_str())) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::io("marking a result seen", from, e)),
        }
    }

    /// Marks `id` not seen again: a reader that claimed it could not pass it on.
    pub fn give_back(&self, id: &TaskId) {
        let _ = fs::rename(self.seen.join(id.as_str()), self.new.join(id.as_str()));
    }

    /// Removes a seen entry (the task it names is gone).
    pub fn forget(&self, id: &TaskId) {
        let _ = fs::remove_file(self.seen.join(id.as_str()));
        let _ = fs::remove_file(self.new.join(id.as_str()));
    }
}

/// Every results inbox of the state folder.
pub fn all(store: &Store) -> Vec<Inbox> {
    let dir = store.root().join("results");
    let Ok(rd) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut keys: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|k| k == "global" || (k.len() == 8 && k.bytes().all(|b| b.is_ascii_hexdigit())))
        .collect();
    keys.sort();
    keys.iter().map(|k| Inbox::new(store, k)).collect()
}

fn list(dir: &Path) -> Vec<TaskId> {
    let mut ids: Vec<TaskId> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().and_then(|n| TaskId::parse(n).ok()))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

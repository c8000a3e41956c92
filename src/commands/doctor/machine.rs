//! The checks of the machine under baton: the state folder (there, private, a folder), the free
//! space of its disk, and the inotify limits every waiter and runner needs.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{agents, fail, note, ok, Ctx, Finding, MIN_FREE_BYTES};
use crate::protocol::{store, AgentPaths};

pub(super) fn state_folder(ctx: &Ctx) -> Vec<Finding> {
    const CHECK: &str = "state folder";
    let root = match &ctx.root {
        Ok(root) => root,
        Err(e) => {
            return vec![fail(
                CHECK,
                e.clone(),
                "set BATON_HOME to a folder of yours",
            )]
        }
    };
    let meta = match std::fs::symlink_metadata(root) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return vec![ok(
                CHECK,
                format!(
                    "{} does not exist yet: it is made (mode 0700) on first use",
                    root.display()
                ),
            )]
        }
        Err(e) => {
            return vec![fail(
                CHECK,
                format!("cannot read {}: {e}", root.display()),
                "point BATON_HOME at a folder of yours",
            )]
        }
    };
    // The root, and every folder in it that baton uses.
    let mut folders = vec![root.clone()];
    for sub in ["agents", "tasks", "queue", "slots", "worktrees"] {
        folders.push(root.join(sub));
    }
    if let Ok(rd) = std::fs::read_dir(root.join("agents")) {
        for entry in rd.flatten() {
            let paths = AgentPaths::new(entry.path());
            folders.extend(paths.folders().iter().map(|p| p.to_path_buf()));
        }
    }
    let mut findings = Vec::new();
    for dir in folders.iter().filter(|d| store::exists(d)) {
        if let Err(e) = store::check_dir(dir) {
            let fix = match std::fs::symlink_metadata(dir) {
                Ok(m) if m.file_type().is_symlink() || !m.is_dir() => {
                    format!(
                        "remove {} (baton makes it again), or point BATON_HOME elsewhere",
                        dir.display()
                    )
                }
                Ok(m) if m.uid() != nix::unistd::geteuid().as_raw() => format!(
                    "chown -R $(id -u) {} — or point BATON_HOME at a folder of yours",
                    dir.display()
                ),
                _ => format!("chmod 700 {}", dir.display()),
            };
            findings.push(fail(CHECK, e.to_string(), fix));
        }
    }
    if findings.is_empty() {
        findings.push(ok(
            CHECK,
            format!(
                "{}: yours, mode {:04o}",
                root.display(),
                meta.mode() & 0o7777
            ),
        ));
    }
    findings
}

/// The nearest folder that exists at or above `path`.
fn existing(path: &Path) -> Option<&Path> {
    path.ancestors().find(|p| p.exists())
}

pub(super) fn free_space(ctx: &Ctx) -> Vec<Finding> {
    const CHECK: &str = "free space";
    let Some(dir) = ctx.root.as_ref().ok().and_then(|r| existing(r)) else {
        return Vec::new();
    };
    let stat = match nix::sys::statvfs::statvfs(dir) {
        Ok(s) => s,
        Err(e) => {
            return vec![note(
                CHECK,
                format!("cannot measure {}: {e}", dir.display()),
            )]
        }
    };
    let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
    let inodes = stat.files_available() as u64;
    let shown = format!("{} MiB free", free >> 20);
    if stat.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
        return vec![fail(
            CHECK,
            format!("{} is on a read-only file system", dir.display()),
            "point BATON_HOME at a writable folder",
        )];
    }
    if free < MIN_FREE_BYTES || (stat.files() > 0 && inodes < 1000) {
        return vec![fail(
            CHECK,
            format!("{shown} and {inodes} inodes free under {}", dir.display()),
            "free some space; `baton gc` removes finished tasks older than a week",
        )];
    }
    vec![ok(CHECK, format!("{shown} under {}", dir.display()))]
}

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub(super) fn inotify_limits(ctx: &Ctx) -> Vec<Finding> {
    const CHECK: &str = "inotify limits";
    let watches = read_number("/proc/sys/fs/inotify/max_user_watches");
    let instances = read_number("/proc/sys/fs/inotify/max_user_instances");
    let (Some(watches), Some(instances)) = (watches, instances) else {
        return vec![note(CHECK, "cannot read /proc/sys/fs/inotify (not Linux?)")];
    };
    // Each runner and each waiting caller holds an instance; a live view watches two folders
    // per agent.
    let agents = agents(ctx.store.as_ref()).len() as u64;
    let shown = format!("max_user_watches {watches}, max_user_instances {instances}");
    let mut findings = Vec::new();
    if watches < 8192.max(agents * 4) {
        findings.push(fail(
            CHECK,
            format!("{shown}: too few watches"),
            "sudo sysctl fs.inotify.max_user_watches=524288",
        ));
    }
    if instances < 128.max(agents + 32) {
        findings.push(fail(
            CHECK,
            format!("{shown}: too few instances for {agents} agent(s) and their callers"),
            "sudo sysctl fs.inotify.max_user_instances=1024",
        ));
    }
    if findings.is_empty() {
        findings.push(ok(CHECK, shown));
    }
    findings
}

//! Failures: a runner killed mid-task, timeouts, hand-corrupted protocol files, unsafe state
//! folders, a full and a read-only file system.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Instant;

use nix::sys::signal::Signal;

use crate::util::*;

#[test]
fn a_runner_killed_mid_task_fails_the_waiting_ask_within_two_seconds() {
    let env = Env::new();
    env.start_gated("g");
    let mut ask = env
        .cmd(["ask", "g", "work"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the task runs", secs(10), || env.started_count() == 1);
    let pid = env.runner_pid("g");
    let killed = Instant::now();
    signal(pid as u32, Signal::SIGKILL);
    let status = wait_child(&mut ask, secs(10)).expect("ask exits");
    let took = killed.elapsed();
    assert_eq!(status.code(), Some(5));
    assert!(took < secs(2), "noticed in {took:?}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(ask.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("agent g died") && stderr.contains("log said last"),
        "{stderr}"
    );
    let id = env.task_ids().pop().unwrap();
    assert_eq!(env.done_json(&id)["state"], "agent_lost");
    // The claimed entry is still in cur/ until the next runner recovers it.
    assert_eq!(env.inbox("g", "cur").len(), 1);
    env.start_gated("g");
    assert!(
        env.inbox("g", "cur").is_empty(),
        "recovered by the next runner"
    );
    assert_eq!(
        env.done_json(&id)["state"],
        "agent_lost",
        "the first outcome is kept"
    );
}

#[test]
fn a_restarted_runner_fails_what_a_dead_one_had_claimed_and_never_drops_it() {
    let env = Env::new();
    env.start_gated("g");
    let id = env.send("g", "work");
    wait_until("the task runs", secs(10), || env.started_count() == 1);
    signal(env.runner_pid("g") as u32, Signal::SIGKILL);
    wait_until("the runner is gone", secs(10), || {
        !runner_alive(&env.agent_dir("g").join("lock"))
    });
    assert!(!env.task_dir(&id).join("done.json").exists());
    env.start_gated("g");
    let done = env.done_json(&id);
    assert_eq!(done["state"], "agent_lost");
    assert!(done["error"].as_str().unwrap().contains("not re-run"));
    assert!(env.inbox("g", "cur").is_empty());
    assert!(env
        .run(["result", &id])
        .expect(5)
        .stderr
        .contains("agent_lost"));
}

#[test]
fn timeout_exits_3_and_the_runner_cancels_the_task() {
    let env = Env::new();
    env.start("slow", &["--driver", "exec", "--", "sleep", "30"]);
    let out = env.run(["ask", "slow", "x", "--timeout", "1s"]).expect(3);
    assert!(
        out.elapsed >= secs(1) && out.elapsed < secs(5),
        "{:?}",
        out.elapsed
    );
    let id = env.task_ids().pop().unwrap();
    wait_until("the runner records the timeout", secs(10), || {
        env.task_dir(&id).join("done.json").exists()
    });
    assert_eq!(env.done_json(&id)["state"], "timeout");
    wait_until("the agent is idle again", secs(10), || {
        env.status_json("slow")["status"] == "idle"
    });
    // No `sleep 30` of this test's agent is left behind (other tests' processes are theirs).
    let left: Vec<i32> = processes_with_home(&env.home)
        .into_iter()
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == b"sleep\x0030\x00")
        })
        .collect();
    assert!(left.is_empty(), "a sleep survived: {left:?}");
}

#[test]
fn ctrl_c_on_ask_cancels_the_running_task() {
    let env = Env::new();
    env.start_gated("g");
    let mut ask = env
        .cmd(["ask", "g", "work"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the task runs", secs(10), || env.started_count() == 1);
    signal(ask.id(), Signal::SIGINT);
    assert_eq!(wait_child(&mut ask, secs(10)).unwrap().code(), Some(4));
    let id = env.task_ids().pop().unwrap();
    wait_until("the runner records it", secs(10), || {
        env.task_dir(&id).join("done.json").exists()
    });
    assert_eq!(env.done_json(&id)["state"], "cancelled");
    wait_until("the agent is idle", secs(10), || {
        env.status_json("g")["status"] == "idle"
    });
}

#[test]
fn hand_corrupted_protocol_files_are_reported_never_a_panic() {
    let env = Env::new();
    env.start("sh1", &[]);
    let id = env.send("sh1", "echo x");
    env.run(["wait", &id]).ok();
    // done.json
    fs::write(env.task_dir(&id).join("done.json"), "{not json").unwrap();
    let out = env.run(["result", &id]).expect(1);
    assert!(out.stderr.contains("malformed"), "{}", out.stderr);
    // task.json
    fs::write(env.task_dir(&id).join("task.json"), "[]").unwrap();
    assert!(env
        .run(["result", &id])
        .expect(2)
        .stderr
        .contains("malformed"));
    // a task dropped by hand with a broken task.json: the runner fails it and keeps serving
    let bad = "1000000000000-0badf00d";
    fs::create_dir_all(env.task_dir(bad)).unwrap();
    fs::write(env.task_dir(bad).join("task.json"), "garbage").unwrap();
    fs::write(
        env.agent_dir("sh1")
            .join("inbox/new")
            .join(format!("5-{bad}")),
        "",
    )
    .unwrap();
    wait_until("the runner fails the broken task", secs(10), || {
        env.task_dir(bad).join("done.json").exists()
    });
    assert_eq!(env.done_json(bad)["state"], "failed");
    // inbox entries that name nothing valid are ignored
    fs::write(env.agent_dir("sh1").join("inbox/new/not-an-entry"), "").unwrap();
    assert_eq!(
        env.run(["ask", "sh1", "echo still serving"]).ok().stdout,
        "still serving\n"
    );
    // status.json
    fs::write(env.agent_dir("sh1").join("status.json"), "{\"agent_id\": 3").unwrap();
    let out = env.run(["status"]).ok();
    assert!(
        out.stdout.contains("problem:") && out.stdout.contains("malformed"),
        "{}",
        out.stdout
    );
}

#[test]
fn unsafe_state_folders_are_refused_with_the_reason() {
    let env = Env::new();
    // a symlink
    let real = env.path("real");
    fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, &env.home).unwrap();
    let out = env.run(["status"]).expect(2);
    assert!(
        out.stderr.contains("symbolic link")
            && out.stderr.contains(&env.home.display().to_string()),
        "{}",
        out.stderr
    );
    fs::remove_file(&env.home).unwrap();
    // a folder under the root that is group-writable
    env.run(["status"]).ok();
    fs::set_permissions(env.home.join("agents"), fs::Permissions::from_mode(0o775)).unwrap();
    let out = env.run(["status"]).expect(2);
    assert!(out.stderr.contains("writable by group"), "{}", out.stderr);
    fs::set_permissions(env.home.join("agents"), fs::Permissions::from_mode(0o700)).unwrap();
    // owned by someone else (possible to set up only as root)
    if nix::unistd::geteuid().is_root() {
        nix::unistd::chown(&env.home, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let out = env.run(["status"]).expect(2);
        assert!(out.stderr.contains("owned by uid 65534"), "{}", out.stderr);
        nix::unistd::chown(&env.home, Some(nix::unistd::geteuid()), None).unwrap();
    } else {
        skipped(
            "faults::unsafe_state_folders (the other-owner case)",
            "it needs root to chown",
        );
    }
    // the state folder is created 0700
    let mode = fs::metadata(&env.home).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn a_symlink_planted_as_a_protocol_file_is_not_followed() {
    let env = Env::new();
    env.start("sh1", &[]);
    let id = env.send("sh1", "echo x");
    env.run(["wait", &id]).ok();
    let secret = env.path("secret.json");
    fs::write(
        &secret,
        r#"{"task_id":"x","state":"ok","exit_code":0,"finished_at":"now","error":null}"#,
    )
    .unwrap();
    fs::remove_file(env.task_dir(&id).join("done.json")).unwrap();
    std::os::unix::fs::symlink(&secret, env.task_dir(&id).join("done.json")).unwrap();
    let out = env.run(["result", &id]).expect(1);
    assert!(out.stderr.contains("symbolic link"), "{}", out.stderr);
}

/// Mounts a small tmpfs for the state folder; `None` (with the reason printed) where mounting is
/// not permitted.
struct Mount(std::path::PathBuf);

impl Mount {
    fn tmpfs(at: &std::path::Path, size: &str) -> Option<Mount> {
        fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Mount(at.to_path_buf())),
            Ok(o) => {
                skipped(
                    "a test on a small tmpfs",
                    &format!(
                        "cannot mount a tmpfs here: {}",
                        String::from_utf8_lossy(&o.stderr).trim()
                    ),
                );
                None
            }
            Err(e) => {
                skipped("a test on a small tmpfs", &format!("cannot run mount: {e}"));
                None
            }
        }
    }

    fn bind_read_only(at: &std::path::Path) -> Option<Mount> {
        let bind = Command::new("mount")
            .arg("--bind")
            .arg(at)
            .arg(at)
            .output()
            .ok()?;
        if !bind.status.success() {
            skipped(
                "a test on a read-only bind mount",
                &format!(
                    "cannot bind-mount here: {}",
                    String::from_utf8_lossy(&bind.stderr).trim()
                ),
            );
            return None;
        }
        let mount = Mount(at.to_path_buf());
        let ro = Command::new("mount")
            .args(["-o", "remount,bind,ro"])
            .arg(at)
            .status()
            .unwrap();
        assert!(ro.success(), "remounting read-only");
        Some(mount)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_while_delivering_exits_6_and_keeps_the_prompt() {
    let env = Env::new();
    let Some(_mount) = Mount::tmpfs(&env.home, "256k") else {
        return;
    };
    env.start("sh1", &[]);
    // Fill the file system.
    let filler = env.home.join("filler");
    let _ = fs::write(&filler, vec![b'x'; 512 * 1024]);
    let text = "@sh1 echo this must survive";
    let file = env.path("prompt.md");
    fs::write(&file, text).unwrap();
    let big = vec![b'x'; 300 * 1024];
    let out = env.run_stdin(["ask", "sh1", "-"], &big).expect(6);
    assert!(out.stderr.contains("disk is full"), "{}", out.stderr);
    let out = env.run([&file]).expect(6);
    assert!(
        out.stderr.contains("disk is full") || out.stderr.contains("No space"),
        "{}",
        out.stderr
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), text);
    // Nothing half-delivered is left in the inbox.
    assert!(env.inbox("sh1", "new").is_empty());
    let _ = fs::remove_file(&filler);
}

#[test]
fn a_read_only_state_folder_exits_6_and_keeps_the_prompt() {
    let env = Env::new();
    env.start("sh1", &[]);
    // The runner keeps files open under agents/; make tasks/ read-only under it.
    let Some(_mount) = Mount::bind_read_only(&env.home.join("tasks")) else {
        return;
    };
    let text = "@sh1 echo this must survive";
    let file = env.path("prompt.md");
    fs::write(&file, text).unwrap();
    let out = env.run([&file]).expect(6);
    assert!(out.stderr.contains("read-only"), "{}", out.stderr);
    assert_eq!(fs::read_to_string(&file).unwrap(), text);
    let out = env.run(["ask", "sh1", "echo x"]).expect(6);
    assert!(out.stderr.contains("read-only"), "{}", out.stderr);
    assert!(env.inbox("sh1", "new").is_empty());
}

#[test]
fn at_results_into_a_read_only_folder_keeps_the_prompt_and_the_results() {
    let env = Env::new();
    env.start(
        "sh1",
        &["--driver", "exec", "--", "echo", "a background answer"],
    );
    let id = env.send("sh1", "work");
    wait_until("the task ends", secs(10), || {
        env.task_dir(&id).join("done.json").exists()
    });
    let prompts = env.path("prompts");
    fs::create_dir_all(&prompts).unwrap();
    let file = prompts.join("prompt.md");
    fs::write(&file, "@results").unwrap();
    let Some(_mount) = Mount::bind_read_only(&prompts) else {
        return;
    };
    let out = env.run([&file]).expect(6);
    assert!(
        out.stderr.to_lowercase().contains("read-only"),
        "{}",
        out.stderr
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), "@results");
    // Not written, so not seen: it is still there to be read.
    assert!(env
        .run(["results"])
        .ok()
        .stdout
        .contains("a background answer"));
}

#[test]
fn install_git_into_a_read_only_hooks_folder_exits_6() {
    if !have(&["git"]) {
        return;
    }
    let env = Env::new();
    let dir = env.path("repo");
    let init = Command::new("git")
        .args(["init", "-q"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(init.success());
    let hooks = dir.join(".git/hooks");
    fs::create_dir_all(&hooks).unwrap();
    let Some(_mount) = Mount::bind_read_only(&hooks) else {
        return;
    };
    let out = env
        .run(["install", "git", "--repo", dir.to_str().unwrap()])
        .expect(6);
    assert!(
        out.stderr.to_lowercase().contains("read-only"),
        "{}",
        out.stderr
    );
}

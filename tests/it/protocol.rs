//! The file protocol is enough for an agent written in sh: `scripts/example-agent.sh`.

use std::process::{Command, Stdio};

use crate::util::*;

#[test]
fn the_example_shell_agent_speaks_the_protocol() {
    let env = Env::new();
    // Create the state folder with baton's checks, as a user would have it.
    env.run(["status"]).ok();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/example-agent.sh");
    let mut cmd = Command::new("sh");
    scrub(&mut cmd);
    let mut agent = cmd
        .arg(script)
        .arg("shouty")
        .env("BATON_HOME", &env.home)
        .stdin(Stdio::null())
        .spawn()
        .expect("starting the example agent");
    let lock = env.agent_dir("shouty").join("lock");
    wait_until("the example agent holds its lock", secs(10), || {
        runner_alive(&lock)
    });
    let out = env.run(["ask", "shouty", "hello from the protocol"]).ok();
    assert_eq!(out.stdout, "HELLO FROM THE PROTOCOL\n");
    // A second copy is refused, as with baton's own runner.
    let second = Command::new("sh")
        .arg(script)
        .arg("shouty")
        .env("BATON_HOME", &env.home)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2));
    // Fan-out mixes it with a baton runner.
    env.start("sh1", &[]);
    let out = env.run(["ask", "shouty,sh1", "echo mixed"]).ok();
    assert_eq!(
        out.stdout,
        "==> shouty <==\nECHO MIXED\n==> sh1 <==\nmixed\n"
    );
    // Its death is noticed like any runner's.
    let _ = agent.kill();
    let _ = agent.wait();
    wait_until("the lock is free", secs(10), || !runner_alive(&lock));
    env.run(["ask", "shouty", "anyone?"]).expect(5);
}

/// What a task costs the filesystem: its entry is its `task.json` linked into the inbox, and
/// the runner's `status.json` takes turns between two files instead of a new one each time.
#[test]
fn an_entry_is_its_task_json_linked_and_the_status_takes_turns_in_two_files() {
    use std::collections::BTreeSet;
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    env.start("sh1", &[]);
    env.run(["agent", "stop", "sh1"]).ok();
    let id = env
        .run(["send", "sh1", "echo linked", "--queue"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let entry = env.agent_dir("sh1").join(format!("inbox/new/5-{id}"));
    let inode = |p: &std::path::Path| std::fs::metadata(p).unwrap().ino();
    assert_eq!(inode(&entry), inode(&env.task_dir(&id).join("task.json")));
    env.start("sh1", &[]);
    assert_eq!(env.run(["wait", &id]).ok().stdout, "linked\n");
    let status = env.agent_dir("sh1").join("status.json");
    let spare = env.agent_dir("sh1").join(".status.json.spare");
    let mut seen = BTreeSet::new();
    for n in 0..4 {
        let out = env.run(["ask", "sh1", &format!("echo {n}")]).ok();
        assert_eq!(out.stdout, format!("{n}\n"));
        seen.extend([inode(&status), inode(&spare)]);
        assert_eq!(env.status_json("sh1")["status"], "idle");
    }
    // Eight versions written, in the same two files.
    assert_eq!(seen.len(), 2, "the files status.json was: {seen:?}");
}

fn spares(env: &Env, agent: &str) -> Vec<std::path::PathBuf> {
    let dir = env.agent_dir(agent).join("spare");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    found.sort();
    found
}

/// A caller's task folder is one its agent's runner made while idle, renamed into `tasks/`, and
/// the answer and `done.json` are files the runner held open and nameless, linked into it; all
/// are what new ones would be, and the runner makes more once it is idle again.
#[test]
fn a_task_folder_is_one_the_runner_made_ahead_and_reads_as_a_new_one() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let env = Env::new();
    env.start("sh1", &[]);
    let ready = spares(&env, "sh1");
    assert_eq!(ready.len(), 2, "{ready:?}");
    let inode = |p: &std::path::Path| std::fs::symlink_metadata(p).unwrap().ino();
    let made: Vec<u64> = ready.iter().map(|p| inode(p)).collect();
    // The files its runner holds open and nameless, for the next task's answer and end.
    let fds = format!("/proc/{}/fd", env.runner_pid("sh1"));
    let nameless: Vec<u64> = std::fs::read_dir(&fds)
        .unwrap()
        .filter_map(|e| {
            let fd = e.ok()?.path();
            let target = std::fs::read_link(&fd).ok()?;
            let target = target.to_string_lossy();
            (target.contains("/tasks/#") && target.ends_with("(deleted)"))
                .then(|| std::fs::metadata(&fd).unwrap().ino())
        })
        .collect();
    assert_eq!(nameless.len(), 2, "{nameless:?}");
    let id = env.send("sh1", "echo ahead");
    let dir = env.task_dir(&id);
    assert!(made.contains(&inode(&dir)), "{id} was made by the caller");
    assert_eq!(env.run(["wait", &id]).ok().stdout, "ahead\n");
    assert_eq!(
        std::fs::read_to_string(dir.join("prompt")).unwrap(),
        "echo ahead"
    );
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    for name in ["prompt", "task.json", "result", "done.json"] {
        let meta = std::fs::symlink_metadata(dir.join(name)).unwrap();
        assert!(meta.is_file(), "{name}");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
        assert_eq!(meta.nlink(), 1, "{name}");
    }
    assert_eq!(env.done_json(&id)["state"], "ok");
    for name in ["result", "done.json"] {
        assert!(nameless.contains(&inode(&dir.join(name))), "{name}");
    }
    wait_until("the runner makes another", secs(10), || {
        let now = spares(&env, "sh1");
        now.len() == 2 && now != ready
    });
}

/// An agent that has run once and is stopped (its spares left as they are): its `spare/`.
fn stopped_agents_spares(env: &Env) -> std::path::PathBuf {
    env.start("sh1", &[]);
    env.run(["agent", "stop", "sh1"]).ok();
    env.agent_dir("sh1").join("spare")
}

/// Makes `dir` as a runner makes a spare: a folder with an empty `prompt` and `task.json`.
fn blank_spare(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("prompt"), "").unwrap();
    std::fs::write(dir.join("task.json"), "").unwrap();
}

/// A spare that is not what a runner makes (a link to somewhere else, a folder with a prompt
/// in it, one with an answer in it already) is thrown away without touching what it points at,
/// and the caller makes its own; a runner that died making one leaves nothing once it starts
/// again.
#[test]
fn a_planted_spare_is_thrown_away_and_the_task_is_the_callers() {
    let env = Env::new();
    let spare = stopped_agents_spares(&env);
    for old in spares(&env, "sh1") {
        std::fs::remove_dir_all(old).unwrap();
    }
    let elsewhere = env.path("elsewhere");
    blank_spare(&elsewhere);
    std::os::unix::fs::symlink(&elsewhere, spare.join("aaaa")).unwrap();
    let filled = spare.join("bbbb");
    blank_spare(&filled);
    std::fs::write(filled.join("prompt"), "echo planted").unwrap();
    let answered = spare.join("dddd");
    blank_spare(&answered);
    std::fs::write(answered.join("result"), "forged").unwrap();
    std::fs::write(answered.join("done.json"), r#"{"state":"ok"}"#).unwrap();
    std::fs::create_dir(spare.join(".new-cccc")).unwrap();
    let ids: Vec<String> = (0..3)
        .map(|n| {
            let out = env.run(["send", "sh1", &format!("echo mine {n}"), "--queue"]);
            out.ok().stdout.trim().to_string()
        })
        .collect();
    assert_eq!(spares(&env, "sh1"), vec![spare.join(".new-cccc")]);
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 2);
    assert_eq!(std::fs::read(elsewhere.join("prompt")).unwrap(), b"");
    env.start("sh1", &[]);
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(env.run(["wait", id]).ok().stdout, format!("mine {n}\n"));
    }
    let now = spares(&env, "sh1");
    assert_eq!(now.len(), 2, "{now:?}");
    assert!(!now.contains(&spare.join(".new-cccc")), "{now:?}");
}

/// An agent's `spare/` that is a link is never used, listed or cleared: callers make their
/// own folders, and what it points at is left as it is.
#[test]
fn a_spare_folder_that_is_a_link_is_left_alone() {
    let env = Env::new();
    let spare = stopped_agents_spares(&env);
    std::fs::remove_dir_all(&spare).unwrap();
    let elsewhere = env.path("elsewhere");
    let ready = elsewhere.join("aaaa");
    blank_spare(&ready);
    std::fs::create_dir(elsewhere.join(".new-bbbb")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &spare).unwrap();
    env.start("sh1", &[]);
    let out = env.run(["ask", "sh1", "echo still answered"]).ok();
    assert_eq!(out.stdout, "still answered\n");
    let mut left: Vec<_> = std::fs::read_dir(&elsewhere)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, [".new-bbbb", "aaaa"]);
    assert_eq!(std::fs::read_dir(&ready).unwrap().count(), 2);
}

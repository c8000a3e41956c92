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

//! `baton logs`: the last lines of an agent's log, a task's output, `-f` following appends
//! across the log's rotation and a runner restart, and stopping on SIGINT; the runner keeping
//! its log bounded.

use std::fs;
use std::time::Instant;

use nix::sys::signal::Signal;

use crate::streamed::Streamed;
use crate::util::*;

/// How large the runner lets a log grow before it rotates it (`runner::log::ROTATE_AT`).
const ROTATE_AT: usize = 1 << 20;

#[test]
fn logs_prints_the_last_lines_and_a_tasks_output() {
    let env = Env::new();
    env.start("sh1", &[]);
    let id = env.send("sh1", "echo the answer");
    env.run(["wait", &id]).ok();
    let all = env.run(["logs", "sh1", "-n", "all"]).ok().stdout;
    assert!(all.contains("runner started"), "{all}");
    assert!(all.contains(&format!("task {id}: ok")), "{all}");
    let last = env.run(["logs", "sh1", "-n", "1"]).ok().stdout;
    assert_eq!(last.lines().count(), 1, "{last}");
    assert!(all.ends_with(&last));
    assert_eq!(
        env.run(["logs", "sh1", "--task", &id]).ok().stdout,
        "the answer\n"
    );
    // Someone else's task, an unknown agent, a bad count: usage errors that say what to do.
    env.start("other", &[]);
    let out = env.run(["logs", "other", "--task", &id]).expect(2);
    assert!(
        out.stderr.contains(&format!("baton logs sh1 --task {id}")),
        "{}",
        out.stderr
    );
    assert!(env
        .run(["logs", "nosuch"])
        .expect(2)
        .stderr
        .contains("nosuch"));
    assert!(env
        .run(["logs", "sh1", "-n", "many"])
        .expect(2)
        .stderr
        .contains("`all`"));
}

#[test]
fn logs_follow_sees_appends_across_rotation_and_a_runner_restart_and_stops_on_sigint() {
    let env = Env::new();
    // An agent that writes more than the log's bound to its stderr (the log) for a task that
    // asks for it, and answers its prompt.
    let chatty = env.script(
        "chatty.sh",
        &format!(
            "#!/bin/sh\nread p\nif [ \"$p\" = flood ]; then head -c {n} /dev/zero | tr '\\0' % >&2; echo >&2; fi\necho \"$p\"\n",
            n = ROTATE_AT + 1000
        ),
    );
    let agent = ["--driver", "exec", "--", &chatty.display().to_string()];
    env.start("c", &agent);
    // The last line first: once it is printed the follower is at the end, and sees what comes.
    let mut follow = Streamed::spawn(env.cmd(["logs", "c", "-f", "-n", "1"]));
    follow.wait_for_text("runner started");
    let first = env.send("c", "hello");
    follow.wait_for_text(&format!("task {first}: ok"));

    // The flood takes the log past its bound; the runner rotates it after the task.
    let flood = env.send("c", "flood");
    env.run(["wait", &flood]).ok();
    let log = env.agent_dir("c").join("log");
    // The copy is renamed into place, then the log truncated: both, and the log starts again.
    wait_until("the runner has rotated the log", secs(10), || {
        env.agent_dir("c").join("log.1").exists() && fs::metadata(&log).unwrap().len() < 4096
    });
    let old = fs::read(env.agent_dir("c").join("log.1")).unwrap();
    assert!(old.len() > ROTATE_AT, "log.1 holds the part before");
    let after = env.send("c", "after the rotation");
    follow.wait_for_text(&format!("task {after}: ok"));
    follow.wait_for_text("log rotated");
    // The flood is made of `%`, which no path (a temp folder's random name) or runner line has.
    let seen = follow.bytes();
    let xs = seen.iter().filter(|b| **b == b'%').count();
    assert_eq!(xs, ROTATE_AT + 1000, "every byte of the flood, once");

    // A runner restart: the follower goes on.
    env.run(["agent", "stop", "c"]).ok();
    follow.wait_for_text("runner stopped");
    env.start("c", &[]);
    let restarted = env.send("c", "again");
    follow.wait_for_text(&format!("task {restarted}: ok"));

    let asked = Instant::now();
    follow.signal(Signal::SIGINT);
    let status = follow.exit(secs(10));
    assert_eq!(status.code(), Some(0), "Ctrl-C ends a follow with exit 0");
    assert!(asked.elapsed() < secs(5));
}

#[test]
fn logs_follow_of_a_task_streams_its_output_and_exits_with_its_code() {
    let env = Env::new();
    env.start("sh1", &[]);
    let gate = env.path("gate");
    nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let id = env.send(
        "sh1",
        &format!(
            "echo first; cat '{}' > /dev/null; echo second; false",
            gate.display()
        ),
    );
    let mut follow = Streamed::spawn(env.cmd(["logs", "sh1", "--task", &id, "-f"]));
    follow.wait_for_text("first\n");
    assert!(!follow.text().contains("second"));
    // The task is at the gate once a writer can open it without blocking.
    wait_until("the task waits at its gate", secs(10), || {
        use std::os::unix::fs::OpenOptionsExt;
        fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&gate)
            .is_ok()
    });
    let status = follow.exit(secs(15));
    assert_eq!(follow.text(), "first\nsecond\n");
    assert_eq!(
        status.code(),
        Some(1),
        "the task failed: exit 1, as `wait` says"
    );
    assert!(follow.stderr().contains("failed"), "{}", follow.stderr());
}

#[test]
fn logs_follow_of_a_task_whose_runner_dies_says_so_and_exits_5() {
    let env = Env::new();
    let gate = env.path("gate");
    nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // Says something, then blocks at the gate (which nobody opens).
    let held = env.script(
        "held.sh",
        &format!(
            "#!/bin/sh\necho under way\nexec 3<> '{}'\nread _ <&3\n",
            gate.display()
        ),
    );
    env.start(
        "h",
        &["--driver", "exec", "--", &held.display().to_string()],
    );
    let id = env.send("h", "x");
    let mut follow = Streamed::spawn(env.cmd(["logs", "h", "--task", &id, "-f"]));
    // Printed: the follower is in its loop, waiting for more.
    follow.wait_for_text("under way");
    let killed = Instant::now();
    signal(env.runner_pid("h") as u32, Signal::SIGKILL);
    let status = follow.exit(secs(15));
    assert_eq!(status.code(), Some(5), "{}", follow.stderr());
    assert!(follow.stderr().contains("died"), "{}", follow.stderr());
    assert!(
        killed.elapsed() < secs(5),
        "noticed without waiting for anything else"
    );
}

#[test]
fn a_follow_whose_reader_goes_away_ends_at_once() {
    use std::io::Read;
    let env = Env::new();
    env.start("sh1", &[]);
    for args in [&["logs", "sh1", "-f"][..], &["status", "--watch"][..]] {
        let mut cmd = env.cmd(args);
        cmd.stdout(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 16];
        stdout.read_exact(&mut first).unwrap();
        // `| head -c 16`: the reader leaves while nothing new is written.
        drop(stdout);
        let status = wait_child(&mut child, secs(10))
            .unwrap_or_else(|| panic!("{args:?} went on after its reader left"));
        assert_eq!(status.code(), Some(0), "{args:?}");
    }
}

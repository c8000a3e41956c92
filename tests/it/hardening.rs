//! Nothing lost under restarts, gc, a full disk, hostile files and load; the rough edges a new
//! user hits. One test (or more) per item of the hardening issue, each of which failed before.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use nix::sys::signal::Signal;

use crate::util::*;

/// A process whose command line contains `marker` is running.
fn running(marker: &str) -> bool {
    !processes_with(marker).is_empty()
}

/// A marker unique to this test process, for `sleep` commands the test looks for.
fn marker(n: u32) -> String {
    format!("{}{:05}", n, std::process::id() % 100_000)
}

// 1. A waiter follows its task, not the runner it was delivered to.
#[test]
fn a_wait_follows_its_task_to_the_runner_started_after_a_crash() {
    let env = Env::new();
    env.start_gated("g");
    let blocker = env.send("g", "blocker");
    wait_until("the blocker runs", secs(10), || env.started_count() == 1);
    let mut cmd = env.cmd(["ask", "g", "queued"]);
    cmd.env("BATON_TEST_PAUSE", "runner-gone")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let ask = cmd.spawn().unwrap();
    wait_until("the task is queued", secs(10), || {
        env.inbox("g", "new").len() == 1
    });
    signal(env.runner_pid("g") as u32, Signal::SIGKILL);
    // The caller has learnt of the death; before it looks, a new runner takes the agent over.
    wait_stopped(ask.id());
    env.start_gated("g");
    wait_until("the new runner runs the queued task", secs(10), || {
        env.started_count() == 2
    });
    signal(ask.id(), Signal::SIGCONT);
    env.open_gate();
    let (status, stdout, stderr) = finish(ask, None, secs(10)).expect("ask ends");
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&stderr)
    );
    assert_eq!(stdout, b"queued\n");
    // The task the dead runner had claimed is the one truly lost.
    assert_eq!(env.done_json(&blocker)["state"], "agent_lost");
}

// 2. Starting right after kill -9 works, every time.
#[test]
fn starting_right_after_kill_9_always_works() {
    let env = Env::new();
    env.start("sh1", &[]);
    for round in 0..10 {
        signal(env.runner_pid("sh1") as u32, Signal::SIGKILL);
        let out = env.run(["agent", "start", "sh1"]);
        assert_eq!(out.code(), 0, "round {round}: {}", out.context);
        assert_eq!(
            env.run(["ask", "sh1", "echo alive"]).ok().stdout,
            "alive\n",
            "round {round}"
        );
    }
}

// 3. gc never removes a task someone waits on; a waiter whose task is gone says so.
#[test]
fn gc_leaves_a_task_alone_while_someone_reads_it() {
    let env = Env::new();
    env.start("sh1", &[]);
    let id = env.send("sh1", "echo kept");
    env.run(["wait", &id]).ok();
    let waiter = spawn_paused(env.cmd(["wait", &id]), "waited");
    let gc = env.run(["gc", "--older-than", "0s"]).ok();
    assert!(
        gc.stdout.contains("removed 0") && gc.stdout.contains("1 someone is waiting on"),
        "{}",
        gc.stdout
    );
    signal(waiter.id(), Signal::SIGCONT);
    let (status, stdout, _) = finish(waiter, None, secs(10)).expect("wait ends");
    assert_eq!(status.code(), Some(0));
    assert_eq!(stdout, b"kept\n");
    // Once no one reads it, it goes.
    assert!(env
        .run(["gc", "--older-than", "0s"])
        .ok()
        .stdout
        .contains("removed 1"));
}

#[test]
fn a_waiter_whose_task_folder_is_removed_says_so() {
    let env = Env::new();
    env.start_gated("g");
    let id = env.send("g", "work");
    wait_until("the task runs", secs(10), || env.started_count() == 1);
    let waiter = env
        .cmd(["wait", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the waiter is connected to the runner (it holds the task's lock then).
    wait_until("the waiter holds the task", secs(10), || {
        fs::read_to_string("/proc/locks")
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains(&format!(" {} ", waiter.id())))
    });
    // The runner notices and writes the task's end into the folder while it goes: removing it
    // may have to be done again, as with `rm -rf` by hand.
    let dir = env.task_dir(&id);
    wait_until("the task folder is removed", secs(10), || {
        let _ = fs::remove_dir_all(&dir);
        !dir.exists()
    });
    let (status, _, stderr) = finish(waiter, None, secs(10)).expect("wait ends");
    let stderr = String::from_utf8_lossy(&stderr);
    assert_ne!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("removed"), "{stderr}");
    // The runner stopped the task and serves on.
    wait_until("the agent is idle", secs(10), || {
        env.status_json("g")["status"] == "idle"
    });
}

/// A small tmpfs as the state folder; `None` where mounting is not permitted (said so).
fn small_state_folder(env: &Env, size: &str) -> Option<TmpMount> {
    mount_state_folder(env, &format!("size={size}"))
}

/// The state folder on a tmpfs mounted with `options` (and mode 0700).
fn mount_state_folder(env: &Env, options: &str) -> Option<TmpMount> {
    fs::create_dir_all(&env.home).unwrap();
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("{options},mode=0700")])
        .arg("tmpfs")
        .arg(&env.home)
        .output();
    match out {
        Ok(o) if o.status.success() => Some(TmpMount(env.home.clone())),
        Ok(o) => {
            skipped(
                "hardening (full disk)",
                &format!(
                    "cannot mount a tmpfs: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
            );
            None
        }
        Err(e) => {
            skipped("hardening (full disk)", &format!("cannot run mount: {e}"));
            None
        }
    }
}

struct TmpMount(std::path::PathBuf);

impl Drop for TmpMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` to the last byte.
fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut f = fs::File::create(&filler).unwrap();
    let block = vec![b'x'; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.write_all(b"x");
    filler
}

// 4. A full disk while the answer is written: the task ends failed with the cause, the runner
// keeps serving, and the agent starts again.
#[test]
fn a_full_disk_while_the_answer_is_written_fails_the_task_and_the_runner_serves_on() {
    let env = Env::new();
    let Some(_mount) = small_state_folder(&env, "512k") else {
        return;
    };
    env.start("up", &["--driver", "exec", "--", "tr", "a-z", "A-Z"]);
    assert_eq!(env.run(["ask", "up", "before"]).ok().stdout, "BEFORE\n");
    // Deliver first (the caller needs room for the task's folder), then fill the disk while
    // the agent holds the task.
    env.start_gated("g");
    let id = env.send("g", "some answer");
    wait_until("the task runs", secs(10), || env.started_count() == 1);
    let filler = fill(&env.home);
    let waiter = env
        .cmd(["wait", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    env.open_gate();
    let (status, _, stderr) = finish(waiter, None, secs(20)).expect("wait ends");
    let stderr = String::from_utf8_lossy(&stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("could not be recorded") && stderr.contains("disk is full"),
        "{stderr}"
    );
    assert!(
        runner_alive(&env.agent_dir("g").join("lock")),
        "the runner serves on"
    );
    // Room again: tasks are answered, and the end is recorded when the runner next wakes
    // (here, for the ping of `baton status`).
    fs::remove_file(&filler).unwrap();
    assert_eq!(env.run(["ask", "up", "after"]).ok().stdout, "AFTER\n");
    env.run(["status"]).ok();
    wait_until("the end is recorded", secs(10), || {
        env.task_dir(&id).join("done.json").exists()
    });
    let out = env.run(["result", &id]).expect(1);
    assert!(out.stderr.contains("disk is full"), "{}", out.stderr);
    assert!(env.inbox("g", "cur").is_empty());
    // The agent stops and starts again cleanly.
    env.run(["agent", "stop", "g"]).ok();
    env.start_gated("g");
    let id = env.send("g", "again");
    wait_until("the task runs", secs(10), || env.started_count() == 2);
    env.open_gate();
    assert_eq!(env.run(["wait", &id]).ok().stdout, "again\n");
}

#[test]
fn too_many_open_files_is_an_environment_failure() {
    let env = Env::new();
    env.start("sh1", &[]);
    let mut cmd = Command::new("sh");
    scrub(&mut cmd);
    cmd.arg("-c")
        .arg(format!("ulimit -n 4; exec '{BIN}' ask sh1 'echo x'"))
        .env("BATON_HOME", &env.home)
        .current_dir(env.dir.path())
        .stdin(Stdio::null());
    let out = env.output(cmd, None);
    assert_eq!(out.code(), 6, "{}", out.context);
    assert!(out.stderr.contains("ulimit -n"), "{}", out.stderr);
}

// 5. Orphans: stop, a crash (the next start) and a cancel leave no process behind.
#[test]
fn a_crashed_agents_background_jobs_end_at_its_next_start() {
    let env = Env::new();
    env.start("sh1", &[]);
    let job = format!("sleep 4{}", marker(1));
    env.run(["ask", "sh1", &format!("{job} >/dev/null 2>&1 &")])
        .ok();
    wait_until("the background job runs", secs(10), || running(&job));
    signal(env.runner_pid("sh1") as u32, Signal::SIGKILL);
    wait_until("the runner is gone", secs(10), || {
        !runner_alive(&env.agent_dir("sh1").join("lock"))
    });
    assert!(
        running(&job),
        "the job outlived its runner (as it did before)"
    );
    env.start("sh1", &[]);
    wait_until("the job is ended", secs(10), || !running(&job));
    let log = fs::read_to_string(env.agent_dir("sh1").join("log")).unwrap();
    assert!(log.contains("left behind"), "{log}");
}

#[test]
fn an_exec_agents_pipeline_ends_with_a_crash_and_the_next_start() {
    let env = Env::new();
    let job = format!("sleep 5{}", marker(2));
    let script = env.script(
        "pipe.sh",
        &format!("#!/bin/sh\n{job} | cat >/dev/null &\nwait\n"),
    );
    env.start(
        "p",
        &["--driver", "exec", "--", &script.display().to_string()],
    );
    env.run(["send", "p", "go"]).ok();
    wait_until("the pipeline runs", secs(10), || running(&job));
    signal(env.runner_pid("p") as u32, Signal::SIGKILL);
    env.start(
        "p",
        &["--driver", "exec", "--", &script.display().to_string()],
    );
    wait_until("the pipeline is ended", secs(10), || !running(&job));
}

#[test]
fn an_exec_agents_task_dies_with_its_runner() {
    let env = Env::new();
    let job = format!("sleep 8{}", marker(5));
    let script = env.script("long.sh", &format!("#!/bin/sh\nexec {job}\n"));
    env.start(
        "l",
        &["--driver", "exec", "--", &script.display().to_string()],
    );
    env.run(["send", "l", "go"]).ok();
    wait_until("the task runs", secs(10), || running(&job));
    signal(env.runner_pid("l") as u32, Signal::SIGKILL);
    // No next start: the kernel ends the task's process as its runner dies.
    wait_until("the task's process is ended", secs(10), || !running(&job));
}

#[test]
fn an_exec_agents_task_starts_with_default_signals_and_its_own_group() {
    let env = Env::new();
    // Whether the task's process leads its own process group, and the signals it was given
    // blocked and ignored (read by what it execs, which inherits them: the shell itself blocks
    // every signal for a moment each time it starts a command).
    let script = env.script(
        "signals.sh",
        "#!/bin/sh\n[ \"$(ps -o pgid= -p $$ | tr -d ' ')\" = \"$$\" ] && echo leader\n\
         exec grep -E '^Sig(Blk|Ign)' /proc/self/status\n",
    );
    env.start(
        "s",
        &["--driver", "exec", "--", &script.display().to_string()],
    );
    let out = env.run(["ask", "s", "go"]).ok();
    // The standard signals (1 to 31; the C library keeps some real-time ones for itself).
    let standard = |field: &str| {
        let line = out.stdout.lines().find(|l| l.starts_with(field)).unwrap();
        u64::from_str_radix(line[field.len()..].trim(), 16).unwrap() & 0x7fff_ffff
    };
    assert_eq!(standard("SigBlk:"), 0, "blocked: {}", out.stdout);
    // SIGPIPE among them: baton ignores it, its agents must not.
    assert_eq!(standard("SigIgn:"), 0, "ignored: {}", out.stdout);
    assert!(out.stdout.contains("leader"), "{}", out.stdout);
}

/// A script without a `#!` line is run by `/bin/sh`, as a shell or `execvp` would run it; a
/// file that is neither a program nor a script goes to `/bin/sh` too, which fails the task
/// (127: what it names is not a command).
#[test]
fn an_exec_agents_script_without_a_shebang_line_is_run_by_sh() {
    let env = Env::new();
    let script = env.script("plain.sh", "read line\necho \"got $line from $0 $1\"\n");
    env.start(
        "plain",
        &["--driver", "exec", "--", &script.display().to_string(), "x"],
    );
    let out = env.run(["ask", "plain", "it"]).ok();
    assert_eq!(out.stdout, format!("got it from {} x\n", script.display()));
    let binary = env.path("binary");
    fs::write(&binary, b"\x7fELF\x02\x01\x01 not really").unwrap();
    fs::set_permissions(&binary, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    env.start(
        "broken",
        &["--driver", "exec", "--", &binary.display().to_string()],
    );
    let out = env.run(["ask", "broken", "it"]).expect(1);
    assert!(out.stderr.contains("status 127"), "{}", out.stderr);
}

/// A runner whose state folder is removed (`rm -rf` of it, to start afresh) cannot be reached
/// or stopped by anyone any more: it stops on its own, with its agent, instead of living on
/// and looking again every second.
#[test]
fn a_runner_whose_state_folder_is_removed_stops_with_its_agent() {
    let env = Env::new();
    env.start("sh1", &[]);
    env.start("ex", &["--driver", "exec", "--", "cat"]);
    assert_eq!(env.run(["ask", "sh1", "echo up"]).ok().stdout, "up\n");
    // The two runners and the shell.
    assert!(processes_with_home(&env.home).len() >= 3);
    // As `rm -rf` does it, again if a runner wrote a file into it meanwhile.
    wait_until("the state folder is removed", secs(10), || {
        fs::remove_dir_all(&env.home).is_ok() || !env.home.exists()
    });
    wait_until(
        "every process of the state folder is gone",
        secs(10),
        || processes_with_home(&env.home).is_empty(),
    );
}

#[test]
fn stop_and_cancel_leave_no_process_behind() {
    let env = Env::new();
    env.start("sh1", &[]);
    let job = format!("sleep 6{}", marker(3));
    env.run(["ask", "sh1", &format!("{job} >/dev/null 2>&1 &")])
        .ok();
    wait_until("the background job runs", secs(10), || running(&job));
    env.run(["agent", "stop", "sh1"]).ok();
    wait_until("stop ended the job", secs(10), || !running(&job));
    // A task that escapes its process group (setsid) is ended when it is cancelled.
    let escaped = format!("sleep 7{}", marker(4));
    let script = env.script(
        "escape.sh",
        &format!("#!/bin/sh\nsetsid {escaped} &\nwait\nsleep 100\n"),
    );
    env.start(
        "e",
        &["--driver", "exec", "--", &script.display().to_string()],
    );
    let out = env.run(["ask", "e", "x", "--timeout", "1s"]).expect(3);
    assert!(out.stderr.contains("timeout"), "{}", out.stderr);
    wait_until("the escaped process is ended", secs(10), || {
        !running(&escaped)
    });
}

// 6, 7. Broken and hostile inbox entries and task folders are put aside, never followed.
#[test]
fn a_claimed_entry_without_a_task_folder_is_put_aside_and_the_agent_starts() {
    let env = Env::new();
    env.start("sh1", &[]);
    env.run(["agent", "stop", "sh1"]).ok();
    let ghost = "5-1000000000000000000-0000abcd";
    fs::write(env.agent_dir("sh1").join("inbox/cur").join(ghost), "").unwrap();
    // A claimed task whose folder is a link to somewhere else.
    let elsewhere = env.path("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let linked = "1000000000000000000-0000abce";
    std::os::unix::fs::symlink(&elsewhere, env.task_dir(linked)).unwrap();
    fs::write(
        env.agent_dir("sh1")
            .join("inbox/cur")
            .join(format!("5-{linked}")),
        "",
    )
    .unwrap();
    env.start("sh1", &[]);
    assert_eq!(env.run(["ask", "sh1", "echo fine"]).ok().stdout, "fine\n");
    let bad = env.inbox("sh1", "bad");
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(env.inbox("sh1", "cur").is_empty());
    assert!(
        fs::read_dir(&elsewhere).unwrap().next().is_none(),
        "nothing written through the link"
    );
    let log = fs::read_to_string(env.agent_dir("sh1").join("log")).unwrap();
    assert!(log.contains("refused, put aside"), "{log}");
}

#[test]
fn cancel_refuses_a_task_folder_that_is_a_link() {
    let env = Env::new();
    env.start("sh1", &[]);
    env.run(["agent", "stop", "sh1"]).ok();
    let id = env
        .run(["send", "sh1", "echo x", "--queue"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let moved = env.path("moved");
    fs::rename(env.task_dir(&id), &moved).unwrap();
    std::os::unix::fs::symlink(&moved, env.task_dir(&id)).unwrap();
    let out = env.run(["cancel", &id]).expect(2);
    assert!(out.stderr.contains("symbolic link"), "{}", out.stderr);
    assert!(
        !moved.join("cancel").exists() && !moved.join("done.json").exists(),
        "nothing written through the link"
    );
    assert_eq!(
        env.inbox("sh1", "new").len(),
        1,
        "the entry is left as it was"
    );
}

// 8. Editor mode refuses what is not a regular file, bounds what it reads, keeps bytes.
#[test]
fn editor_mode_refuses_fifos_and_devices_and_leaves_them_alone() {
    let env = Env::new();
    env.start("sh1", &[]);
    let fifo = env.path("p.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let out = env.run([&fifo]).expect(2);
    assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);
    assert!(fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo_like());
    let link = env.path("zero.md");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    let out = env.run([&link]).expect(2);
    assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);
    assert_eq!(
        fs::read_link(&link).unwrap(),
        std::path::Path::new("/dev/zero")
    );
    let big = env.path("big.md");
    fs::write(&big, vec![b'a'; 17 << 20]).unwrap();
    let out = env.run([&big]).expect(2);
    assert!(out.stderr.contains("larger than 16 MiB"), "{}", out.stderr);
    assert_eq!(fs::metadata(&big).unwrap().len(), 17 << 20);
}

trait FifoLike {
    fn is_fifo_like(&self) -> bool;
}

impl FifoLike for fs::FileType {
    fn is_fifo_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_fifo()
    }
}

#[test]
fn prompt_bytes_are_kept_and_a_byte_order_mark_is_no_obstacle() {
    let env = Env::new();
    env.start("echo", &["--driver", "exec", "--", "cat"]);
    let file = env.path("p.md");
    fs::write(&file, b"\xEF\xBB\xBF@echo caf\xE9 \xFF\xFE na\xEFve").unwrap();
    env.run([&file]).ok();
    assert_eq!(
        fs::read(&file).unwrap(),
        b"@echo replied:\ncaf\xE9 \xFF\xFE na\xEFve\n"
    );
}

// 9. The control socket: bounded requests, no client blocks another, no fd leaks.
#[test]
fn the_control_socket_bounds_requests_and_no_client_blocks_another() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let env = Env::new();
    env.start("sh1", &[]);
    let sock = env.agent_dir("sh1").join("sock");
    let pid = env.runner_pid("sh1");
    let fds = || fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    let sockets = || {
        let fd = fs::read_dir(format!("/proc/{pid}/fd")).unwrap();
        fd.filter_map(|e| fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.to_string_lossy().starts_with("socket:"))
            .count()
    };
    let before = fds();
    let sockets_before = sockets();
    // Twenty idle clients that never send a line hold up no one.
    let idle: Vec<UnixStream> = (0..20)
        .map(|_| UnixStream::connect(&sock).unwrap())
        .collect();
    let out = env.run(["status"]).ok();
    assert!(out.elapsed < secs(2), "{:?}", out.elapsed);
    assert!(out.stdout.contains("idle"), "{}", out.stdout);
    assert_eq!(
        env.run(["ask", "sh1", "echo through"]).ok().stdout,
        "through\n"
    );
    // A request far beyond the limit is refused, and the runner does not grow for it.
    let mut huge = UnixStream::connect(&sock).unwrap();
    huge.set_write_timeout(Some(secs(5))).unwrap();
    let chunk = vec![b'x'; 1 << 20];
    let mut sent = 0;
    while sent < 100 << 20 && huge.write_all(&chunk).is_ok() {
        sent += chunk.len();
    }
    let mut reply = String::new();
    huge.set_read_timeout(Some(secs(5))).unwrap();
    let _ = huge.read_to_string(&mut reply);
    assert!(reply.contains("longer than"), "{reply:?}");
    let rss_kib: u64 = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(rss_kib < 32 << 10, "peak RSS {rss_kib} KiB");
    // Watchers that go away are closed; idle clients time out: the runner ends where it began.
    drop(idle);
    wait_until("the idle clients are closed", secs(10), || {
        sockets() <= sockets_before
    });
    let task = env.send("sh1", "sleep 1");
    let mut watcher = env
        .cmd(["wait", &task])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the watcher connects", secs(10), || {
        sockets() > sockets_before
    });
    signal(watcher.id(), Signal::SIGKILL);
    wait_child(&mut watcher, secs(10)).expect("the watcher is gone");
    env.run(["wait", &task]).ok();
    wait_until(
        "the runner holds no more connections than at first",
        secs(10),
        || {
            env.run(["status"]).ok();
            fds() <= before
        },
    );
}

// 10. Many concurrent waiters on one agent all get their answers.
#[test]
fn two_hundred_waiters_on_one_task_all_get_the_answer() {
    let env = Env::new();
    env.start_gated("g");
    let id = env.send("g", "for everyone");
    wait_until("the task runs", secs(10), || env.started_count() == 1);
    let waiters: Vec<_> = (0..200)
        .map(|_| {
            env.cmd(["wait", &id])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let pid = env.runner_pid("g");
    wait_until("every waiter is connected", secs(20), || {
        fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count() >= 200
    });
    env.open_gate();
    for w in waiters {
        let (status, stdout, _) = finish(w, None, secs(20)).expect("a waiter ends");
        assert_eq!(status.code(), Some(0));
        assert_eq!(stdout, b"for everyone\n");
    }
}

// 11. A huge timeout is no timeout, or an error; never an instant timeout or a panic.
#[test]
fn huge_timeouts_neither_panic_nor_expire() {
    let env = Env::new();
    env.start("sh1", &[]);
    assert_eq!(
        env.run(["ask", "sh1", "echo ok", "--timeout", "100000000000d"])
            .ok()
            .stdout,
        "ok\n"
    );
    let out = env
        .run([
            "ask",
            "sh1",
            "echo ok",
            "--timeout",
            "99999999999999999999d",
        ])
        .expect(2);
    assert!(
        out.stderr.contains("invalid duration") || out.stderr.contains("too large"),
        "{}",
        out.stderr
    );
    // Beyond what a deadline in milliseconds holds: no deadline at all.
    let mut cmd = env.cmd(["ask", "sh1", "echo fine"]);
    cmd.env("BATON_TIMEOUT", "18446744073709551s");
    assert_eq!(env.output(cmd, None).ok().stdout, "fine\n");
}

// 12. BATON_HOME: relative is made absolute once; empty is an error; too long says the limit.
#[test]
fn a_relative_baton_home_survives_an_agent_that_changes_folder() {
    let env = Env::new();
    let rel = |args: &[&str]| {
        let mut cmd = Command::new(BIN);
        scrub(&mut cmd);
        cmd.args(args)
            .env("BATON_HOME", "rel-state")
            .current_dir(env.dir.path())
            .stdin(Stdio::null());
        env.output(cmd, None)
    };
    rel(&["agent", "start", "sh1"]).ok();
    rel(&["ask", "sh1", "cd /tmp"]).ok();
    let out = rel(&["ask", "sh1", "echo $BATON_HOME"]).ok();
    assert_eq!(
        out.stdout.trim(),
        env.path("rel-state").display().to_string()
    );
    rel(&["agent", "stop", "sh1"]).ok();
    for pid in processes_with_home(&env.path("rel-state")) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    }
}

#[test]
fn an_empty_or_too_long_baton_home_is_refused_clearly() {
    let env = Env::new();
    let mut cmd = env.cmd(["status"]);
    cmd.env("BATON_HOME", "");
    let out = env.output(cmd, None).expect(2);
    assert!(out.stderr.contains("set but empty"), "{}", out.stderr);
    let mut cmd = env.cmd(["status"]);
    cmd.env("BATON_HOME", env.path(&"x".repeat(110)));
    let out = env.output(cmd, None).expect(2);
    assert!(out.stderr.contains("at most 107"), "{}", out.stderr);
}

// 13. Every file of a task is private.
#[test]
fn task_files_are_private() {
    let env = Env::new();
    env.start("sh1", &[]);
    let id = env.send("sh1", "echo secret");
    env.run(["wait", &id]).ok();
    for file in ["prompt", "task.json", "result", "done.json"] {
        let mode = fs::metadata(env.task_dir(&id).join(file))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
}

// 14. A restart without arguments starts the same agent; new arguments replace, and say so.
#[test]
fn a_restart_without_arguments_keeps_the_recorded_spec() {
    let env = Env::new();
    env.start("up", &["--driver", "exec", "--", "tr", "a-z", "A-Z"]);
    env.run(["agent", "stop", "up"]).ok();
    let out = env.run(["ask", "up", "x"]).expect(5);
    assert!(
        out.stderr.contains("baton agent start up"),
        "{}",
        out.stderr
    );
    let out = env.run(["agent", "start", "up"]).ok();
    assert!(out.stdout.contains("exec `tr a-z A-Z`"), "{}", out.stdout);
    assert_eq!(env.run(["ask", "up", "hello"]).ok().stdout, "HELLO\n");
    env.run(["agent", "stop", "up"]).ok();
    let out = env
        .run(["agent", "start", "up", "--driver", "exec", "--", "rev"])
        .ok();
    assert!(
        out.stderr.contains("replacing its recorded spec"),
        "{}",
        out.stderr
    );
    assert_eq!(env.run(["ask", "up", "abc"]).ok().stdout, "cba\n");
}

// 15, 16. A file that does not exist is edited; a mistyped command is a usage error.
#[test]
fn a_new_file_is_edited_and_a_mistyped_command_is_an_error() {
    let env = Env::new();
    let editor = env.script(
        "ed.sh",
        &format!(
            "#!/bin/sh\necho written > \"$1\"\necho $$ > '{}'\n",
            env.path("ed.pid").display()
        ),
    );
    let mut cmd = env.cmd(["notes.md"]);
    cmd.env("BATON_EDITOR", &editor);
    env.output(cmd, None).ok();
    assert_eq!(
        fs::read_to_string(env.path("notes.md")).unwrap(),
        "written\n"
    );
    let out = env.run(["stauts"]).expect(2);
    assert!(out.stderr.contains("'status'"), "{}", out.stderr);
    assert!(!env.path("stauts").exists());
    let mut cmd = env.cmd(["./stauts"]);
    cmd.env("BATON_EDITOR", &editor);
    env.output(cmd, None).ok();
    assert!(env.path("stauts").exists(), "a path is always edited");
}

// 17. Messages a new user meets.
#[test]
fn messages_say_the_right_thing() {
    let env = Env::new();
    env.start("planning", &[]);
    env.start("dead", &[]);
    env.run(["agent", "stop", "dead"]).ok();
    let file = env.path("p.md");
    // Editor mode has no --queue to offer.
    fs::write(&file, "@dead do it").unwrap();
    let out = env.run([&file]).expect(5);
    assert!(
        out.stderr.contains("baton agent start dead") && !out.stderr.contains("--queue"),
        "{}",
        out.stderr
    );
    // One typo away from an agent: an error, prompt intact; far from every agent: the editor.
    fs::write(&file, "@plannign make a plan").unwrap();
    let out = env.run([&file]).expect(2);
    assert!(
        out.stderr.contains("did you mean @planning?"),
        "{}",
        out.stderr
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), "@plannign make a plan");
    fs::write(&file, "@docs/readme.md explain").unwrap();
    let mut cmd = env.cmd([&file]);
    cmd.env("BATON_EDITOR", "true");
    env.output(cmd, None).ok();
    // A failed start: one "baton:", and no agent folder left behind.
    let out = env
        .run(["agent", "start", "nope", "--cwd", "/no/such/folder"])
        .expect(2);
    assert_eq!(out.stderr.matches("baton:").count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("/no/such/folder"), "{}", out.stderr);
    assert!(!env.agent_dir("nope").exists());
}

// 18. The profile lines we print can be sourced twice.
#[test]
fn the_profile_lines_are_idempotent() {
    let env = Env::new();
    let install = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/INSTALL.md")).unwrap();
    let block: String = install
        .split("```sh\n# in ~/.bashrc or ~/.zshrc\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("INSTALL.md has the profile block")
        .to_string();
    let demo = env.run(["demo"]).ok().stdout;
    let printed: String = demo
        .lines()
        .filter(|l| l.trim_start().starts_with("export ") || l.trim_start().starts_with("case "))
        .map(|l| format!("{}\n", l.trim()))
        .collect();
    for (what, lines) in [("INSTALL.md", block), ("the demo", printed)] {
        let script = format!("VISUAL=nano\n{lines}{lines}echo \"$BATON_EDITOR $VISUAL\"\n");
        let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "nano baton-edit",
            "{what}: {script}"
        );
    }
    let cargo = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let msrv = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap();
    assert!(
        install.contains(&format!("Rust toolchain ({msrv} or newer)")),
        "INSTALL.md names Rust {msrv}"
    );
}

// A workflow that cannot be written down as it starts (its lock, who runs it, its record, its
// results entry: no inode left for one of them) would run with nothing telling `wait`, `cancel`
// and `gc` that someone runs it, or with no one to hear how it ended. It is refused, as an
// environment failure, and its first task taken back before any agent sees it; with room for
// all of it, it is handed to the background whole. Tried with every number of inodes left from
// what the first task needs up.
#[test]
fn a_workflow_that_cannot_be_written_down_is_refused_and_its_first_task_taken_back() {
    let mut refused = 0;
    for spare in 0..12 {
        let env = Env::new();
        let Some(_mount) = mount_state_folder(&env, "size=4m,nr_inodes=400") else {
            return;
        };
        for name in ["a", "b"] {
            env.start(name, &["--driver", "exec", "--", "cat"]);
            env.run(["agent", "stop", name]).ok();
        }
        // The first task needs four inodes (its folder, prompt and task.json, and its inbox
        // entry, which tmpfs counts as one); leave `spare` more.
        let filler = env.home.join("filler");
        fs::create_dir(&filler).unwrap();
        let free = || nix::sys::statvfs::statvfs(&env.home).unwrap().files_free();
        let mut n = 0;
        while free() > 4 + spare {
            fs::File::create(filler.join(n.to_string())).unwrap();
            n += 1;
        }
        let out = env.run(["send", "a | b", "two stages", "--queue"]);
        let root = env.task_ids().first().cloned();
        match out.code() {
            6 => {
                refused += 1;
                assert!(
                    out.stderr.contains("disk is full"),
                    "{spare}: {}",
                    out.stderr
                );
                assert!(env.inbox("a", "new").is_empty(), "{spare}: taken back");
            }
            0 => {
                let root = root.expect("the workflow's first task");
                assert_eq!(out.stdout.trim(), root);
                let dir = env.task_dir(&root);
                assert!(dir.join("workflow.json").exists() && dir.join("workflow.pid").exists());
                assert!(
                    runner_alive(&dir.join("workflow.lock")),
                    "{spare}: its supervisor holds it"
                );
                assert_eq!(env.inbox("a", "new").len(), 1);
            }
            other => panic!("{spare}: exit {other:?}: {}", out.stderr),
        }
        drop(_mount);
    }
    assert!(refused > 0, "no run was short of room");
}

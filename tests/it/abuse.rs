//! Breaking baton on purpose: processes killed at every step, signals in every phase, hostile
//! sizes and bytes, planted files, racing callers. Each ends with the prompt file intact (or
//! holding the answer), no answer lost from tasks/, no orphan process, nothing stuck in cur/.

use std::fs;
use std::process::Stdio;

use nix::sys::signal::Signal;

use crate::util::*;

fn start_paused(env: &Env, name: &str, point: &str, args: &[&str]) {
    let mut all = vec!["agent", "start", name];
    all.extend_from_slice(args);
    let mut cmd = env.cmd(all);
    cmd.env("BATON_TEST_PAUSE", point);
    env.output(cmd, None).ok();
}

/// Starts shell agent sh1 to stop at `point`, and an `ask` of `prompt` whose task takes it
/// there: the ask (its output piped) and the runner's pid, once the runner has stopped.
fn ask_until_paused(env: &Env, point: &str, prompt: &str) -> (std::process::Child, u32) {
    start_paused(env, "sh1", point, &[]);
    let ask = env
        .cmd(["ask", "sh1", prompt])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let runner = env.runner_pid("sh1") as u32;
    wait_stopped(runner);
    (ask, runner)
}

#[test]
fn runner_killed_between_result_and_done_keeps_the_answer() {
    let env = Env::new();
    let (ask, runner) = ask_until_paused(&env, "after-result", "echo precious");
    signal(runner, Signal::SIGKILL);
    let (status, _, stderr) = finish(ask, None, secs(10)).expect("ask ends");
    assert_eq!(
        status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&stderr)
    );
    let id = env.task_ids().pop().unwrap();
    // The answer was published before the runner died: it is not lost.
    let out = env.run(["result", &id]).expect(5);
    assert_eq!(out.stdout, "precious\n");
    env.start("sh1", &[]);
    assert!(env.inbox("sh1", "cur").is_empty(), "recovered");
    assert_eq!(env.done_json(&id)["state"], "agent_lost");
    assert!(processes_with(&env.home.display().to_string())
        .iter()
        .all(|p| !p.contains("bash")));
}

#[test]
fn a_reader_opening_the_status_file_the_runner_is_rewriting_waits_and_reads_it_whole() {
    let env = Env::new();
    // The runner stops while it writes a status into the file it replaced last (the first
    // such write is the idle one at the end of this task), holding the lease on it.
    let (ask, runner) = ask_until_paused(&env, "spare-leased", "echo whole");
    let spare = env.agent_dir("sh1").join(".status.json.spare");
    let reader = std::process::Command::new("cat")
        .arg(&spare)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Its open makes the kernel send the runner SIGIO, which would end it by default.
    wait_until("the reader's open breaks the lease", secs(10), || {
        fs::read_to_string(format!("/proc/{runner}/status"))
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("ShdPnd:"))?.to_string();
                u64::from_str_radix(line.split_whitespace().nth(1)?, 16).ok()
            })
            .is_some_and(|pending| pending & (1 << (nix::libc::SIGIO - 1)) != 0)
    });
    signal(runner, Signal::SIGCONT);
    let (status, seen, _) = finish(reader, None, secs(10)).expect("the reader ends");
    assert!(status.success());
    let seen: serde_json::Value = serde_json::from_slice(&seen).expect("a whole status");
    assert_eq!(seen["agent_id"], "sh1");
    let (status, out, err) = finish(ask, None, secs(10)).expect("ask ends");
    assert_eq!(status.code(), Some(0), "{}", String::from_utf8_lossy(&err));
    assert_eq!(out, b"whole\n");
    assert!(runner_alive(&env.agent_dir("sh1").join("lock")));
    assert!(fs::metadata(format!("/proc/{runner}")).is_ok());
    assert_eq!(env.status_json("sh1")["status"], "idle");
}

/// Whether `pid` sleeps reading its standard input (x86-64 and arm64 numbers of read(2)).
fn reads_stdin(pid: u32) -> bool {
    in_syscall(pid, &["0 0x0 ", "63 0x0 "])
}

#[test]
fn a_caller_whose_request_is_unread_when_its_task_ends_is_told_before_the_runner_makes_spares() {
    let env = Env::new();
    // The runner stops once it has handed the task to its shell, and again before it makes the
    // spares the task used; the caller stops after delivering, before it asks to be told.
    start_paused(&env, "sh1", "task-started,before-spares", &[]);
    let runner = env.runner_pid("sh1") as u32;
    let ask = spawn_paused(env.cmd(["ask", "sh1", "echo quick"]), "before-watch");
    wait_stopped(runner);
    // Now the caller asks (its request waits, unread, on the runner's socket) and sleeps; the
    // shell runs the task and waits for its next one: the task has ended, unseen.
    signal(ask.id(), Signal::SIGCONT);
    wait_until("the caller sleeps, its request sent", secs(10), || {
        sleeps_in_poll(ask.id())
    });
    let shell: u32 = fs::read_to_string(format!("/proc/{runner}/task/{runner}/children"))
        .unwrap()
        .split_whitespace()
        .next()
        .expect("the agent's shell")
        .parse()
        .unwrap();
    wait_until("the shell has run the task", secs(10), || {
        reads_stdin(shell)
    });
    signal(runner, Signal::SIGCONT);
    // The runner stops before its spares: the caller must have its answer by then, not after.
    let (status, out, err) = finish(ask, None, secs(10)).expect("the ask ends");
    assert_eq!(status.code(), Some(0), "{}", String::from_utf8_lossy(&err));
    assert_eq!(out, b"quick\n");
    wait_stopped(runner);
    signal(runner, Signal::SIGCONT);
}

#[test]
fn runner_killed_right_after_claiming_fails_the_task_once() {
    let env = Env::new();
    start_paused(&env, "sh1", "after-claim", &[]);
    let id = env.send("sh1", "echo never");
    let runner = env.runner_pid("sh1") as u32;
    wait_stopped(runner);
    assert_eq!(env.inbox("sh1", "cur").len(), 1);
    signal(runner, Signal::SIGKILL);
    wait_until("the lock is free", secs(10), || {
        !runner_alive(&env.agent_dir("sh1").join("lock"))
    });
    env.start("sh1", &[]);
    assert_eq!(env.done_json(&id)["state"], "agent_lost");
    assert!(env.inbox("sh1", "cur").is_empty() && env.inbox("sh1", "new").is_empty());
    assert!(!env.task_dir(&id).join("output").exists(), "it never ran");
}

#[test]
fn runner_killed_before_claiming_fails_the_waiting_ask_and_withdraws_the_task() {
    let env = Env::new();
    env.start_gated("g");
    env.run(["send", "g", "blocker"]).ok();
    wait_until("the blocker runs", secs(10), || env.started_count() == 1);
    let ask = env
        .cmd(["ask", "g", "queued"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the task is queued", secs(10), || {
        env.inbox("g", "new").len() == 1
    });
    let queued_for_later = env
        .run(["send", "g", "later", "--queue"])
        .ok()
        .stdout
        .trim()
        .to_string();
    signal(env.runner_pid("g") as u32, Signal::SIGKILL);
    let (status, _, _) = finish(ask, None, secs(10)).expect("ask ends");
    assert_eq!(status.code(), Some(5));
    // The asked task was taken back; the one sent with --queue waits for the next runner.
    assert_eq!(env.inbox("g", "new").len(), 1);
    env.start_gated("g");
    wait_until("the next runner runs it", secs(10), || {
        env.started_count() == 2
    });
    env.open_gate();
    assert_eq!(env.run(["wait", &queued_for_later]).ok().stdout, "later\n");
    assert!(env.inbox("g", "cur").is_empty());
}

#[test]
fn a_coordinator_killed_while_waiting_leaves_the_answer_retrievable() {
    let env = Env::new();
    env.start_gated("g");
    let mut ask = env
        .cmd(["ask", "g", "keep this"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the task runs", secs(10), || env.started_count() == 1);
    signal(ask.id(), Signal::SIGKILL);
    wait_child(&mut ask, secs(10)).unwrap();
    env.open_gate();
    let id = env.task_ids().pop().unwrap();
    wait_until("the task finishes", secs(10), || {
        env.task_dir(&id).join("done.json").exists()
    });
    assert_eq!(env.run(["result", &id]).ok().stdout, "keep this\n");
}

/// Editor mode with a signal at each phase: before delivery, queued, running, answered but not
/// yet written, and a second SIGINT while cancelling. The file is whole every time.
#[test]
fn signals_in_every_phase_leave_the_file_whole() {
    let text = "@g the prompt\nwith two lines";
    let check = |env: &Env, file: &std::path::Path, code: Option<i32>| {
        let now = fs::read_to_string(file).unwrap();
        match code {
            Some(0) => assert!(now.starts_with("@g replied:"), "{now}"),
            Some(4) => assert_eq!(now, text),
            other => panic!("unexpected exit {other:?}; file: {now}\n{}", env.listing()),
        }
    };
    for (phase, point) in [
        ("before delivery", Some("before-deliver")),
        ("answered, before the write", Some("before-write")),
        ("cancelling", Some("cancelling")),
    ] {
        let env = Env::new();
        env.start_gated("g");
        let file = env.path("p.md");
        fs::write(&file, text).unwrap();
        let mut cmd = env.cmd([&file]);
        cmd.env("BATON_TEST_PAUSE", point.unwrap())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        match phase {
            "before delivery" => {
                wait_stopped(child.id());
                signal(child.id(), Signal::SIGTERM);
            }
            "answered, before the write" => {
                wait_until("the task runs", secs(10), || env.started_count() == 1);
                env.open_gate();
                wait_stopped(child.id());
                signal(child.id(), Signal::SIGINT);
            }
            _ => {
                wait_until("the task runs", secs(10), || env.started_count() == 1);
                signal(child.id(), Signal::SIGINT);
                wait_stopped(child.id());
                signal(child.id(), Signal::SIGINT); // a second Ctrl-C while cancelling
            }
        }
        signal(child.id(), Signal::SIGCONT);
        let status =
            wait_child(&mut child, secs(10)).unwrap_or_else(|| panic!("{phase}: baton exits"));
        check(&env, &file, status.code());
        assert!(
            env.inbox("g", "new").is_empty(),
            "{phase}: nothing left queued"
        );
    }
}

#[test]
fn a_child_that_ignores_sigterm_is_killed_with_its_group() {
    let env = Env::new();
    let marker = format!("sleep 424242{}", std::process::id());
    let script = env.script(
        "stubborn.sh",
        &format!("#!/bin/sh\ntrap '' TERM\n{marker} &\nwait\n"),
    );
    env.start(
        "stub",
        &["--driver", "exec", "--", &script.display().to_string()],
    );
    let out = env
        .run(["ask", "stub", "x", "--timeout", "500ms"])
        .expect(3);
    assert!(out.elapsed < secs(5));
    let id = env.task_ids().pop().unwrap();
    wait_until("the runner records the timeout", secs(10), || {
        env.task_dir(&id).join("done.json").exists()
    });
    assert_eq!(env.done_json(&id)["state"], "timeout");
    wait_until("no stubborn process is left", secs(5), || {
        processes_with(&marker).is_empty()
    });
}

#[test]
fn huge_and_binary_output_huge_prompts_and_empty_answers() {
    let env = Env::new();
    env.start(
        "big",
        &[
            "--driver",
            "exec",
            "--",
            "sh",
            "-c",
            "head -c 52428800 /dev/zero | tr '\\0' x",
        ],
    );
    let out = env.run(["ask", "big", "go", "--raw"]).ok();
    assert_eq!(out.stdout_bytes.len(), 52_428_800);
    assert!(out.stdout_bytes.iter().all(|&b| b == b'x'));
    env.start("count", &["--driver", "exec", "--", "wc", "-c"]);
    let prompt = vec![b'p'; 10 << 20];
    assert_eq!(
        env.run_stdin(["ask", "count", "-"], &prompt)
            .ok()
            .stdout
            .trim(),
        "10485760"
    );
    env.start(
        "bin",
        &["--driver", "exec", "--", "printf", "\\377\\376\\000\\001"],
    );
    assert_eq!(
        env.run(["ask", "bin", "x", "--raw"]).ok().stdout_bytes,
        b"\xff\xfe\x00\x01"
    );
    let file = env.path("bin.md");
    fs::write(&file, "@bin give bytes").unwrap();
    env.run([&file]).ok();
    assert_eq!(
        fs::read(&file).unwrap(),
        b"@bin replied:\n\xff\xfe\x00\x01\n"
    );
    env.start("none", &["--driver", "exec", "--", "true"]);
    let file = env.path("empty.md");
    fs::write(&file, "@none say nothing").unwrap();
    env.run([&file]).ok();
    assert_eq!(fs::read_to_string(&file).unwrap(), "@none replied:\n\n");
}

#[test]
fn planted_links_and_broken_inbox_entries_are_refused_never_followed() {
    let env = Env::new();
    env.start("sh1", &[]);
    let secret = env.path("secret");
    fs::write(&secret, "echo leaked").unwrap();
    // A task whose prompt is a link: failed, not run.
    let id = "1000000000000000000-0000000a";
    fs::create_dir_all(env.task_dir(id)).unwrap();
    std::os::unix::fs::symlink(&secret, env.task_dir(id).join("prompt")).unwrap();
    let task = format!(
        r#"{{"task_id":"{id}","agent":"sh1","created_at":"x","created_ms":0,"priority":5,"deadline_ms":null,"caller_pid":1}}"#
    );
    fs::write(env.task_dir(id).join("task.json"), &task).unwrap();
    fs::write(env.agent_dir("sh1").join(format!("inbox/new/5-{id}")), "").unwrap();
    wait_until("the runner refuses the task", secs(10), || {
        env.task_dir(id).join("done.json").exists()
    });
    let done = env.done_json(id);
    assert_eq!(done["state"], "failed");
    assert!(
        done["error"]
            .as_str()
            .unwrap()
            .contains("not a regular file"),
        "{done}"
    );
    assert_ne!(
        fs::read(env.task_dir(id).join("result")).unwrap_or_default(),
        b"leaked\n"
    );
    // A task folder that is a link: refused.
    let real = env.path("elsewhere");
    fs::create_dir(&real).unwrap();
    fs::write(real.join("prompt"), "echo leaked").unwrap();
    fs::write(real.join("task.json"), task.replace("000a", "000b")).unwrap();
    let linked = "1000000000000000000-0000000b";
    std::os::unix::fs::symlink(&real, env.task_dir(linked)).unwrap();
    fs::write(
        env.agent_dir("sh1").join(format!("inbox/new/5-{linked}")),
        "",
    )
    .unwrap();
    // An entry for a task that does not exist, and names that are no entries at all.
    fs::write(
        env.agent_dir("sh1")
            .join("inbox/new/5-1000000000000000000-0000000c"),
        "",
    )
    .unwrap();
    fs::write(env.agent_dir("sh1").join("inbox/new/garbage"), "").unwrap();
    fs::write(env.agent_dir("sh1").join("inbox/new/5-../../x"), "").unwrap_or(());
    assert_eq!(env.run(["ask", "sh1", "echo alive"]).ok().stdout, "alive\n");
    assert!(
        !real.join("done.json").exists() && !real.join("result").exists(),
        "the linked folder was not touched"
    );
    let log = fs::read_to_string(env.agent_dir("sh1").join("log")).unwrap();
    assert!(
        log.contains(&format!("task {linked}: refused")) && log.contains("symbolic link"),
        "{log}"
    );
    assert!(env.inbox("sh1", "cur").is_empty());
    // status.json planted as a link is reported, not read through.
    fs::remove_file(env.agent_dir("sh1").join("status.json")).unwrap();
    std::os::unix::fs::symlink(&secret, env.agent_dir("sh1").join("status.json")).unwrap();
    assert!(env.run(["status"]).ok().stdout.contains("symbolic link"));
}

#[test]
fn racing_callers_get_exactly_once_and_fifo_within_a_priority() {
    let env = std::sync::Arc::new(Env::new());
    env.start_gated("g");
    env.run(["send", "g", "blocker"]).ok();
    wait_until("the blocker runs", secs(10), || env.started_count() == 1);
    // 64 callers race to queue behind it.
    let ids: Vec<String> = (0..64)
        .map(|i| {
            let env = std::sync::Arc::clone(&env);
            std::thread::spawn(move || {
                env.run(["send", "g", &format!("racer {i}")])
                    .ok()
                    .stdout
                    .trim()
                    .to_string()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    for n in 1..=65 {
        wait_until("the next task waits at the gate", secs(10), || {
            env.started_count() == n
        });
        env.open_gate();
    }
    wait_until("all 65 ran", secs(30), || {
        env.status_json("g")["tasks_done"] == 65
    });
    let started: Vec<String> = fs::read_to_string(env.path("started"))
        .unwrap()
        .lines()
        .skip(1)
        .map(String::from)
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(started, sorted, "claimed in the order they were queued");
    for id in &ids {
        // status.json is written before each sentinel: wait for the sentinel itself.
        wait_until("the task's done.json", secs(10), || {
            env.task_dir(id).join("done.json").exists()
        });
        assert_eq!(env.done_json(id)["state"], "ok");
    }
}

#[test]
fn sixty_four_callers_and_eight_agents_answer_each_task_exactly_once() {
    let env = std::sync::Arc::new(Env::new());
    for i in 0..8 {
        env.start(&format!("w{i}"), &["--driver", "exec", "--", "cat"]);
    }
    let threads: Vec<_> = (0..64)
        .map(|t| {
            let env = std::sync::Arc::clone(&env);
            std::thread::spawn(move || {
                for k in 0..4 {
                    let prompt = format!("caller {t} task {k}");
                    assert_eq!(
                        env.run(["ask", &format!("w{}", (t + k) % 8), &prompt])
                            .ok()
                            .stdout,
                        format!("{prompt}\n")
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let done: u64 = (0..8)
        .map(|i| {
            env.status_json(&format!("w{i}"))["tasks_done"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(done, 256);
    assert_eq!(env.task_ids().len(), 256);
}

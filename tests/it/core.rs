//! Agents, asking, fan-out, status and the shell driver's persistence and framing.

use std::fs;

use crate::util::*;

#[test]
fn shell_agent_keeps_its_folder_and_variables_between_tasks() {
    let env = Env::new();
    env.start("sh1", &[]);
    env.run(["ask", "sh1", "cd /tmp && export X=42"]).ok();
    let out = env.run(["ask", "sh1", "pwd; echo $X"]).ok();
    assert_eq!(out.stdout, "/tmp\n42\n");
    assert_eq!(env.status_json("sh1")["tasks_done"], 2);
    assert_eq!(env.status_json("sh1")["status"], "idle");
}

#[test]
fn exec_agent_reads_the_prompt_on_stdin() {
    let env = Env::new();
    env.start("rev", &["--driver", "exec", "--", "tr", "a-z", "A-Z"]);
    let out = env.run_stdin(["ask", "rev", "-"], b"hello\n").ok();
    assert_eq!(out.stdout, "HELLO\n");
}

#[test]
fn fan_out_heads_each_answer_with_its_agent() {
    let env = Env::new();
    env.start("sh1", &[]);
    env.start("rev", &["--driver", "exec", "--", "tr", "a-z", "A-Z"]);
    let out = env.run(["ask", "sh1,rev", "echo hi"]).ok();
    assert_eq!(out.stdout, "==> sh1 <==\nhi\n==> rev <==\nECHO HI\n");
}

#[test]
fn ask_json_reports_state_code_answer_and_timings() {
    let env = Env::new();
    env.start("sh1", &[]);
    let out = env
        .run([
            "ask",
            "sh1",
            "echo out; exit_code() { return 3; }; exit_code",
            "--json",
        ])
        .expect(1);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("one JSON object");
    assert_eq!(v["agent"], "sh1");
    assert_eq!(v["state"], "failed");
    assert_eq!(v["exit_code"], 3);
    assert_eq!(v["answer"], "out\n");
    assert!(v["elapsed_ms"].as_u64().is_some());
    assert!(v["started_ms"].as_u64() >= v["created_ms"].as_u64());
}

#[test]
fn send_then_wait_then_result() {
    let env = Env::new();
    env.start("sh1", &[]);
    let id = env.send("sh1", "echo later");
    assert_eq!(env.run(["wait", &id]).ok().stdout, "later\n");
    assert_eq!(env.run(["result", &id]).ok().stdout, "later\n");
    let done = env.done_json(&id);
    assert_eq!(done["state"], "ok");
    assert_eq!(done["task_id"], id.as_str());
    assert!(env
        .run(["result", "1-00000000"])
        .expect(2)
        .stderr
        .contains("no such task"));
    assert!(env
        .run(["result", "../x"])
        .expect(2)
        .stderr
        .contains("invalid task id"));
}

#[test]
fn status_shows_state_queue_and_current_task() {
    let env = Env::new();
    env.start_gated("g");
    let first = env.send("g", "one");
    env.run(["send", "g", "two"]).ok();
    wait_until("the first task has started", secs(10), || {
        env.started_count() == 1
    });
    let out = env.run(["status", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(v[0]["agent"], "g");
    assert_eq!(v[0]["state"], "working");
    assert_eq!(v[0]["queued"], 1);
    assert_eq!(v[0]["current_task"], first.as_str());
    let table = env.run(["status"]).ok().stdout;
    assert!(
        table.contains("working") && table.contains(&first),
        "{table}"
    );
    env.open_gate();
    wait_until("the second task has started", secs(10), || {
        env.started_count() == 2
    });
    env.open_gate();
}

#[test]
fn agents_get_a_scrubbed_environment() {
    let env = Env::new();
    let mut cmd = env.cmd([
        "agent",
        "start",
        "e",
        "--env",
        "FOO=bar",
        "--pass-env",
        "KEEP_ME",
    ]);
    cmd.env("KEEP_ME", "yes").env("SECRET_TOKEN", "leak");
    env.output(cmd, None).ok();
    let out = env.run(["ask", "e", "env | cut -d= -f1 | sort"]).ok();
    let mut names: Vec<&str> = out.stdout.lines().collect();
    // Variables the shell sets for itself are not inherited.
    names.retain(|n| !["PWD", "SHLVL", "_", "OLDPWD"].contains(n));
    for n in &names {
        assert!(
            [
                "PATH",
                "HOME",
                "USER",
                "LANG",
                "TERM",
                "TMPDIR",
                "FOO",
                "KEEP_ME",
                "BATON_AGENT",
                "BATON_HOME",
                "BATON_TASK_ID",
                "BATON_SESSION_ID"
            ]
            .contains(n),
            "unexpected variable {n} in {names:?}"
        );
    }
    let out = env
        .run([
            "ask",
            "e",
            "echo $FOO $KEEP_ME $BATON_AGENT ${SECRET_TOKEN:-none}; echo $BATON_SESSION_ID",
        ])
        .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "bar yes e none");
    assert_eq!(lines[1].len(), 36, "a UUID: {}", lines[1]);
    let again = env.run(["ask", "e", "echo $BATON_SESSION_ID"]).ok();
    assert_eq!(again.stdout.trim(), lines[1], "the session id is stable");
}

#[test]
fn a_second_runner_for_the_same_agent_is_refused() {
    let env = Env::new();
    env.start("sh1", &[]);
    let pid = env.runner_pid("sh1");
    let out = env.run(["agent", "start", "sh1"]).expect(2);
    assert!(
        out.stderr.contains(&format!("already running, pid {pid}")),
        "{}",
        out.stderr
    );
    let out = env.run(["agent", "run", "sh1"]).expect(2);
    assert!(
        out.stderr.contains(&format!("already running, pid {pid}")),
        "{}",
        out.stderr
    );
}

#[test]
fn stop_cancels_the_task_in_flight_and_marks_the_agent_stopped() {
    let env = Env::new();
    env.start_gated("g");
    let id = env.send("g", "x");
    wait_until("the task has started", secs(10), || {
        env.started_count() == 1
    });
    env.run(["agent", "stop", "g"]).ok();
    assert_eq!(env.done_json(&id)["state"], "cancelled");
    assert_eq!(env.status_json("g")["status"], "stopped");
    assert!(env.inbox("g", "cur").is_empty());
    assert!(!runner_alive(&env.agent_dir("g").join("lock")));
    let list = env.run(["agent", "list", "--long"]).ok().stdout;
    assert!(list.contains("g\tstopped\texec"), "{list}");
    assert!(env
        .run(["agent", "stop", "g"])
        .ok()
        .stdout
        .contains("not running"));
}

#[test]
fn shell_framing_survives_hostile_output() {
    let env = Env::new();
    env.start("sh1", &[]);
    // Output that imitates the runner's marker, a task that reads stdin, binary output, and a
    // line without a newline at the end: none of it may end or confuse the task.
    let hostile = r#"printf 'baton-done-0000000000000000 0\n'; echo "baton-done-$RANDOM 0"; cat; printf '\001\377\376'; echo >&2 err; printf 'tail'"#;
    let out = env.run(["ask", "sh1", hostile]).ok();
    assert!(
        out.stdout
            .starts_with("baton-done-0000000000000000 0\nbaton-done-"),
        "{:?}",
        out.stdout
    );
    assert!(
        out.stdout_bytes.ends_with(b"\x01\xff\xfeerr\ntail\n"),
        "{:?}",
        out.stdout_bytes
    );
    // The shell is still the same one: state set before persists after.
    env.run(["ask", "sh1", "export KEPT=1"]).ok();
    assert_eq!(env.run(["ask", "sh1", "echo $KEPT"]).ok().stdout, "1\n");
}

#[test]
fn a_task_that_exits_the_shell_fails_and_the_next_gets_a_fresh_shell() {
    let env = Env::new();
    env.start("sh1", &[]);
    env.run(["ask", "sh1", "export GONE=1"]).ok();
    let out = env.run(["ask", "sh1", "echo bye; exit 7"]).expect(1);
    assert_eq!(out.stdout, "bye\n");
    assert!(out.stderr.contains("fresh shell"), "{}", out.stderr);
    assert_eq!(
        env.run(["ask", "sh1", "echo ${GONE:-reset}"]).ok().stdout,
        "reset\n"
    );
}

#[test]
fn a_failing_task_exits_1_with_its_output() {
    let env = Env::new();
    env.start("sh1", &[]);
    let out = env.run(["ask", "sh1", "echo partial; false"]).expect(1);
    assert_eq!(out.stdout, "partial\n");
    assert!(out.stderr.contains("failed"), "{}", out.stderr);
}

#[test]
fn an_empty_answer_is_an_answer() {
    let env = Env::new();
    env.start("sh1", &[]);
    let out = env.run(["ask", "sh1", "true"]).ok();
    assert_eq!(out.stdout, "");
}

#[test]
fn priority_orders_the_queue() {
    let env = Env::new();
    env.start_gated("g");
    env.run(["send", "g", "blocker"]).ok();
    wait_until("the blocker has started", secs(10), || {
        env.started_count() == 1
    });
    let low = env
        .run(["send", "g", "low", "--priority", "9"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let high = env
        .run(["send", "g", "high", "--priority", "1"])
        .ok()
        .stdout
        .trim()
        .to_string();
    env.open_gate();
    wait_until("a second task has started", secs(10), || {
        env.started_count() == 2
    });
    let started = fs::read_to_string(env.path("started")).unwrap_or_default();
    assert_eq!(
        started.lines().nth(1),
        Some(high.as_str()),
        "priority 1 first"
    );
    env.open_gate();
    wait_until("the third task has started", secs(10), || {
        env.started_count() == 3
    });
    env.open_gate();
    assert_eq!(env.run(["wait", &low]).ok().stdout, "low\n");
}

#[test]
fn bad_input_gets_a_clear_error() {
    let env = Env::new();
    env.start("sh1", &[]);
    let out = env.run(["ask", "nosuch", "hi"]).expect(2);
    assert!(
        out.stderr.contains("unknown agent \"nosuch\"") && out.stderr.contains("live agents: sh1"),
        "{}",
        out.stderr
    );
    for bad in ["a/b", "has space", &"x".repeat(64), "UPPER"] {
        let out = env.run(["ask", bad, "hi"]).expect(2);
        assert!(
            out.stderr.contains("invalid agent name"),
            "{bad}: {}",
            out.stderr
        );
        env.run(["agent", "start", bad]).expect(2);
    }
    assert!(env
        .run(["ask", "sh1", "  \n"])
        .expect(2)
        .stderr
        .contains("empty"));
    assert!(env
        .run_stdin(["ask", "sh1", "-"], b"")
        .expect(2)
        .stderr
        .contains("empty"));
    assert!(env
        .run(["ask", "sh1", "x", "--timeout", "soon"])
        .expect(2)
        .stderr
        .contains("invalid duration"));
    assert!(env
        .run([
            "agent",
            "start",
            "x",
            "--driver",
            "exec",
            "--",
            "/no/such/cmd"
        ])
        .expect(2)
        .stderr
        .contains("cannot find"));
    assert!(env
        .run(["agent", "start", "y", "--env", "NOEQUALS"])
        .expect(2)
        .stderr
        .contains("KEY=VALUE"));
    assert!(env
        .run(["nosuchcommand-but-no-file", "x"])
        .expect(2)
        .stderr
        .contains("unrecognized"));
}

#[test]
fn asking_a_stopped_agent_fails_at_once_unless_queued() {
    let env = Env::new();
    env.start("sh1", &[]);
    env.run(["agent", "stop", "sh1"]).ok();
    let out = env.run(["ask", "sh1", "echo hi"]).expect(5);
    assert!(
        out.stderr.contains("baton agent start sh1"),
        "{}",
        out.stderr
    );
    assert!(env.task_ids().is_empty(), "nothing was queued");
    // --queue leaves it for the next runner, which answers it.
    let id = env
        .run(["send", "sh1", "echo queued", "--queue"])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_eq!(env.inbox("sh1", "new").len(), 1);
    env.start("sh1", &[]);
    assert_eq!(env.run(["wait", &id]).ok().stdout, "queued\n");
}

#[test]
fn gc_removes_only_old_finished_tasks() {
    let env = Env::new();
    env.start("sh1", &[]);
    let id = env.send("sh1", "echo x");
    env.run(["wait", &id]).ok();
    assert!(env.run(["gc"]).ok().stdout.contains("removed 0"));
    assert!(env.task_dir(&id).exists());
    assert!(env
        .run(["gc", "--older-than", "0s"])
        .ok()
        .stdout
        .contains("removed 1"));
    assert!(!env.task_dir(&id).exists());
}

#[test]
fn help_lists_commands_and_exit_codes() {
    let env = Env::new();
    let out = env.run(["--help"]).ok();
    for word in [
        "ask",
        "send",
        "wait",
        "result",
        "cancel",
        "status",
        "gc",
        "agent",
        "demo",
        "Exit codes",
        "5  the agent died",
        "6  the environment failed",
    ] {
        assert!(
            out.stdout.contains(word),
            "--help lacks {word}:\n{}",
            out.stdout
        );
    }
}

#[test]
fn demo_runs_the_whole_round_trip() {
    let env = Env::new();
    let out = env.run(["demo"]).ok();
    assert!(
        out.stdout
            .contains("@demo replied:\n  | hello from agent demo\n  | 2 + 3 = 5"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("export VISUAL=baton"));
    assert!(out.stdout.contains("agent demo stopped"));
}

#[test]
fn two_hundred_asks_from_sixteen_callers_to_four_agents_are_each_answered_once() {
    let env = Env::new();
    for i in 0..4 {
        env.start(&format!("w{i}"), &["--driver", "exec", "--", "cat"]);
    }
    let env = std::sync::Arc::new(env);
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let env = std::sync::Arc::clone(&env);
            std::thread::spawn(move || {
                for k in 0..13 {
                    let n = t * 13 + k;
                    if n >= 200 {
                        break;
                    }
                    let prompt = format!("task {n} from caller {t}");
                    let out = env.run(["ask", &format!("w{}", n % 4), &prompt]).ok();
                    assert_eq!(out.stdout, format!("{prompt}\n"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("caller thread");
    }
    assert_eq!(env.task_ids().len(), 200);
    let done: u64 = (0..4)
        .map(|i| {
            env.status_json(&format!("w{i}"))["tasks_done"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(done, 200, "every task ran exactly once");
    for i in 0..4 {
        assert!(
            env.inbox(&format!("w{i}"), "new").is_empty()
                && env.inbox(&format!("w{i}"), "cur").is_empty()
        );
    }
}

#[test]
fn a_runner_that_holds_its_lock_but_does_not_answer_is_reported_wedged() {
    let env = Env::new();
    env.start("sh1", &[]);
    let pid = env.runner_pid("sh1") as u32;
    assert!(env.run(["status"]).ok().stdout.contains("idle"));
    signal(pid, nix::sys::signal::Signal::SIGSTOP);
    let out = env.run(["status"]).ok();
    signal(pid, nix::sys::signal::Signal::SIGCONT);
    assert!(
        out.stdout.contains("wedged") && out.stdout.contains("control socket"),
        "{}",
        out.stdout
    );
    assert!(env.run(["status"]).ok().stdout.contains("idle"));
}

#[test]
fn the_control_socket_answers_ping_and_cancel() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixStream;
    let env = Env::new();
    env.start_gated("g");
    let sock = env.agent_dir("g").join("sock");
    assert_eq!(
        fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let call = |line: &str| {
        let mut s = UnixStream::connect(&sock).unwrap();
        s.set_read_timeout(Some(secs(5))).unwrap();
        s.write_all(line.as_bytes()).unwrap();
        let mut reply = String::new();
        BufReader::new(s).read_line(&mut reply).unwrap();
        serde_json::from_str::<serde_json::Value>(&reply).unwrap()
    };
    let pong = call("{\"op\":\"ping\"}\n");
    assert_eq!(pong["reply"], "pong");
    assert_eq!(pong["status"]["status"], "idle");
    let id = env.send("g", "x");
    wait_until("the task runs", secs(10), || env.started_count() == 1);
    assert_eq!(
        call("{\"op\":\"ping\"}\n")["status"]["current_task"],
        id.as_str()
    );
    let reply = call(&format!("{{\"op\":\"cancel\",\"task\":\"{id}\"}}\n"));
    assert_eq!(reply["reply"], "cancelling");
    wait_until("the task is cancelled", secs(10), || {
        env.task_dir(&id).join("done.json").exists()
    });
    assert_eq!(env.done_json(&id)["state"], "cancelled");
    assert_eq!(call("{\"op\":\"nonsense\"}\n")["reply"], "error");
    // A stale socket left by a killed runner is replaced by the next one.
    signal(
        env.runner_pid("g") as u32,
        nix::sys::signal::Signal::SIGKILL,
    );
    wait_until("the runner is gone", secs(10), || {
        !runner_alive(&env.agent_dir("g").join("lock"))
    });
    assert!(sock.exists());
    env.start_gated("g");
    assert_eq!(call("{\"op\":\"ping\"}\n")["reply"], "pong");
}

/// The JSON of a task's end with what differs between two runs of the same task (its id and
/// its times) blanked out.
fn end_shape(line: &str) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(line.trim()).expect("one JSON object");
    for k in [
        "task_id",
        "created_ms",
        "started_ms",
        "finished_ms",
        "finished_at",
        "elapsed_ms",
    ] {
        assert!(v.get(k).is_some(), "{k} is missing from {line}");
        v[k] = serde_json::Value::Null;
    }
    v
}

#[test]
fn ask_send_wait_editor_mode_and_the_demo_report_one_shape_of_end() {
    let env = Env::new();
    env.start("up", &["--driver", "exec", "--", "tr", "a-z", "A-Z"]);
    let asked = end_shape(&env.run(["ask", "up", "same task", "--json"]).ok().stdout);
    let id = env.send("up", "same task");
    let waited = end_shape(&env.run(["wait", &id, "--json"]).ok().stdout);
    let sent = env.run(["send", "up", "same task", "--json"]).ok().stdout;
    let sent: serde_json::Value = serde_json::from_str(sent.trim()).unwrap();
    assert_eq!(sent["state"], "detached", "send returns at once: {sent}");
    let file = env.path("p.md");
    fs::write(&file, "@up same task").unwrap();
    let before = env.task_ids();
    env.run([&file]).ok();
    let edited_id = env
        .task_ids()
        .into_iter()
        .find(|t| !before.contains(t))
        .expect("editor mode made a task");
    let edited = end_shape(&env.run(["result", &edited_id, "--json"]).ok().stdout);
    assert_eq!(asked["answer"], "SAME TASK");
    assert_eq!(asked["state"], "ok");
    assert_eq!(asked, waited);
    assert_eq!(asked, edited);
    // The demo shows its task's end the same way.
    let demo = env.run(["demo"]).ok().stdout;
    let line = demo
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("the demo prints its task's end");
    let shown = end_shape(line);
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&shown), keys(&asked));
    assert_eq!(shown["state"], "ok");
    assert_eq!(shown["agent"], "demo");
}

/// Every start of baton loads the C library and nothing else: the unwinder is linked in
/// (build.rs), so no start pays for loading `libgcc_s.so` and its constructor.
#[test]
fn a_start_loads_only_the_c_library() {
    if option_env!("BATON_STATIC_UNWINDER").is_none() {
        skipped(
            "a_start_loads_only_the_c_library",
            "this build links the C compiler's unwinder dynamically (no libgcc_eh.a)",
        );
        return;
    }
    let env = Env::new();
    let mut cmd = env.cmd(["--version"]);
    cmd.env("LD_DEBUG", "libs");
    let out = env.output(cmd, None).expect(0);
    assert!(out.stdout.starts_with("baton "), "{}", out.stdout);
    // The loader's own trace of what it loads, which names libc: the probe works.
    assert!(
        out.stderr.contains("find library=libc.so.6"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("libgcc_s"), "{}", out.stderr);
}

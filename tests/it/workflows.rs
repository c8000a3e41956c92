//! Workflows: pipelines and fan-out phases, first answer wins, retries with the previous
//! attempt's end, done-gates, background results that reach the chief, agent mail, progress.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use nix::sys::signal::Signal;

use crate::util::*;

/// An exec agent declaration running `script` (a shell command line) per task.
fn agent(name: &str, script: &str) -> String {
    format!(
        "[agent.{name}]\ndriver = \"exec\"\ncommand = [\"sh\", \"-c\", {}]\n",
        toml_string(script)
    )
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Waits until task `id` has its end (without `baton wait`, which would mark its result seen).
fn until_done(env: &Env, id: &str) {
    let done = env.task_dir(id.trim()).join("done.json");
    wait_until(&format!("task {} has its end", id.trim()), secs(10), || {
        done.exists()
    });
}

/// Waits until the workflow rooted at `root` has its outcome recorded.
fn until_workflow_done(env: &Env, root: &str) {
    let record = env.task_dir(root).join("workflow.json");
    wait_until(&format!("workflow {root} has ended"), secs(20), || {
        fs::read(&record)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|r| !r["state"].is_null())
    });
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn a_three_stage_pipeline_hands_each_stage_the_request_and_the_answers_before() {
    let env = Env::new();
    let dir = project(
        &env,
        "shop",
        &[
            agent("planning", "echo PLANNED: step one"),
            agent("review", "cat; echo REVIEWED"),
            agent("merge", "cat"),
        ]
        .concat(),
    );
    let out = run_in(
        &env,
        &dir,
        &["ask", "planning | review | merge", "Plan dark mode"],
    )
    .ok();
    // The last stage saw the request and, through the review's answer, both earlier answers,
    // each headed by its agent.
    let text = &out.stdout;
    assert!(
        text.starts_with("=== baton: the request ===\nPlan dark mode\n=== baton: the answer of review (stage 2 of 3) ===\n"),
        "{text}"
    );
    assert!(
        text.contains("=== baton: the answer of planning (stage 1 of 3) ===\nPLANNED: step one\n"),
        "{text}"
    );
    assert!(text.contains("REVIEWED\n"), "{text}");
    // --json: every stage's end, with its place.
    let out = run_in(
        &env,
        &dir,
        &["ask", "planning | review | merge", "again", "--json"],
    )
    .ok();
    let ends = json_lines(&out.stdout);
    let stages: Vec<i64> = ends.iter().map(|e| e["stage"].as_i64().unwrap()).collect();
    assert_eq!(stages, [1, 2, 3], "{}", out.stdout);
    assert!(ends
        .iter()
        .all(|e| e["state"] == "ok" && e["workflow"] == ends[0]["task_id"]));
    // `baton result ROOT` keeps every stage's answer.
    let root = ends[0]["task_id"].as_str().unwrap();
    let kept = json_lines(&env.run(["result", root, "--json"]).ok().stdout);
    assert_eq!(kept.len(), 3);
    assert_eq!(kept[0]["answer"], "PLANNED: step one\n");
    assert_eq!(
        env.run(["result", root]).ok().stdout,
        out_last_answer(&ends)
    );
}

fn out_last_answer(ends: &[serde_json::Value]) -> String {
    ends.last().unwrap()["answer"].as_str().unwrap().to_string()
}

#[test]
fn a_fan_out_phase_waits_for_every_member_and_the_next_stage_gets_all_their_answers() {
    let env = Env::new();
    let dir = project(
        &env,
        "shop",
        &[
            agent("planning", "echo the plan"),
            agent("a", "echo from a"),
            agent("b", "echo from b"),
            agent("c", "echo from c"),
            agent("merge", "cat"),
        ]
        .concat(),
    );
    let text = run_in(&env, &dir, &["ask", "planning | a,b,c | merge", "x"])
        .ok()
        .stdout;
    for who in ["a", "b", "c"] {
        assert!(
            text.contains(&format!(
                "=== baton: the answer of {who} (stage 2 of 3) ===\nfrom {who}\n"
            )),
            "{text}"
        );
    }
    // The fan-out's answers come in the order the agents were named.
    let at = |w: &str| text.find(&format!("from {w}")).unwrap();
    assert!(at("a") < at("b") && at("b") < at("c"), "{text}");
}

#[test]
fn the_first_success_wins_and_the_slow_agent_is_cancelled_and_idle_again() {
    let env = Env::new();
    env.start("fast", &["--driver", "exec", "--", "echo", "found it"]);
    env.start_gated("slow");
    let started = Instant::now();
    let out = env
        .run(["ask", "fast,slow", "--any", "find the cause"])
        .ok();
    assert_eq!(out.stdout, "found it\n");
    // The slow agent never answers on its own: the ask did not wait for it.
    assert!(started.elapsed() < secs(10), "{:?}", started.elapsed());
    let slow = env.tasks_of("slow");
    assert_eq!(slow.len(), 1);
    wait_until("the slow task has its end", secs(10), || {
        env.task_dir(&slow[0]).join("done.json").exists()
    });
    assert_eq!(env.done_json(&slow[0])["state"], "cancelled");
    wait_until("the slow agent is idle again", secs(10), || {
        env.status_json("slow")["status"] == "idle"
    });
}

#[test]
fn once_one_answer_has_won_the_others_are_neither_gated_nor_retried() {
    let env = Env::new();
    // Each agent answers when its own FIFO is written to.
    for agent in ["a", "b"] {
        let fifo = env.path(&format!("go-{agent}"));
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let script = format!(
            "echo $BATON_TASK_ID >> '{started}'; read _ < '{fifo}'; echo {agent} said",
            started = env.path("started").display(),
            fifo = fifo.display()
        );
        env.start(agent, &["--driver", "exec", "--", "sh", "-c", &script]);
    }
    let g = gate(&env, &[0]);
    let mut cmd = env.cmd(["ask", "a,b", "--any", "--gate", &g, "--retries", "2", "go"]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let ask = cmd.spawn().unwrap();
    wait_until("both tasks run", secs(10), || env.started_count() == 2);
    // Both answers are in before the coordinator looks again: it sees them in one look.
    signal(ask.id(), Signal::SIGSTOP);
    wait_stopped(ask.id());
    for agent in ["a", "b"] {
        fs::write(env.path(&format!("go-{agent}")), "go\n").unwrap();
        wait_until(&format!("{agent} has answered"), secs(10), || {
            env.tasks_of(agent)
                .iter()
                .any(|id| env.task_dir(id).join("done.json").exists())
        });
    }
    signal(ask.id(), Signal::SIGCONT);
    let (st, out, err) = finish(ask, None, secs(20)).expect("ask ends");
    let out = String::from_utf8_lossy(&out);
    assert_eq!(st.code(), Some(0), "{}", String::from_utf8_lossy(&err));
    assert!(out == "a said\n" || out == "b said\n", "{out}");
    // The winner's answer alone went through the gate; the other was kept as it was.
    assert_eq!(gate_runs(&env).len(), 1, "{:?}", gate_runs(&env));
    assert_eq!(env.tasks_of("a").len() + env.tasks_of("b").len(), 2);
}

#[test]
fn when_every_member_fails_the_exit_code_is_the_first_failure() {
    let env = Env::new();
    env.start("broken", &["--driver", "exec", "--", "sh", "-c", "exit 9"]);
    env.start_gated("slow");
    // broken fails at once (exit 1); slow then times out (exit 3): the first failure decides.
    let out = env
        .run(["ask", "broken,slow", "--any", "x", "--timeout", "1s"])
        .expect(1);
    assert!(out.stderr.contains("broken"), "{}", out.stderr);
    assert!(out.stderr.contains("timeout"), "{}", out.stderr);
}

#[test]
fn a_failed_attempt_is_retried_with_what_went_wrong_and_never_again_after_success() {
    let env = Env::new();
    let log = env.path("attempts");
    let flaky = env.script(
        "flaky.sh",
        &format!(
            "#!/bin/sh\nn=$(cat '{log}' 2>/dev/null | wc -l)\necho x >> '{log}'\ncat > '{log}.prompt.'$n\nif [ \"$n\" = 0 ]; then echo 'error: boom'; exit 3; fi\necho fixed\n",
            log = log.display()
        ),
    );
    env.start(
        "flaky",
        &["--driver", "exec", "--", flaky.to_str().unwrap()],
    );
    let out = env
        .run([
            "ask",
            "flaky",
            "fix the flaky test",
            "--retries",
            "3",
            "--json",
        ])
        .ok();
    let ends = json_lines(&out.stdout);
    assert_eq!(ends.len(), 2, "{}", out.stdout);
    assert_eq!(
        (ends[0]["state"].as_str(), ends[0]["attempt"].as_i64()),
        (Some("failed"), Some(1))
    );
    assert_eq!(
        (ends[1]["state"].as_str(), ends[1]["attempt"].as_i64()),
        (Some("ok"), Some(2))
    );
    assert_eq!(ends[1]["answer"], "fixed\n");
    // Two attempts, not four: no attempt after a success.
    assert_eq!(fs::read_to_string(&log).unwrap().lines().count(), 2);
    let first = fs::read_to_string(env.path("attempts.prompt.0")).unwrap();
    let second = fs::read_to_string(env.path("attempts.prompt.1")).unwrap();
    assert_eq!(first, "fix the flaky test");
    assert!(
        second.starts_with("fix the flaky test\n=== baton: attempt 2 of 4 ===\n"),
        "{second}"
    );
    assert!(
        second.contains("ended failed, exit code 3") && second.contains("error: boom"),
        "{second}"
    );
}

/// A gate script that records each run (its folder, the agent, the task, its stdin) and exits
/// with the codes in `codes`, one per run (the last one repeats).
fn gate(env: &Env, codes: &[i32]) -> String {
    let runs = env.path("gate-runs");
    let list: Vec<String> = codes.iter().map(i32::to_string).collect();
    let script = env.script(
        "gate.sh",
        &format!(
            "#!/bin/sh\nn=$(cat '{runs}' 2>/dev/null | wc -l)\necho \"$PWD $BATON_AGENT $BATON_TASK_ID\" >> '{runs}'\ncat > '{runs}.stdin.'$n\ncode=$(echo {codes} | awk -v n=$n '{{ print (n < NF) ? $(n+1) : $NF }}')\necho \"gate run $n: 1 test failed\"\nexit $code\n",
            runs = runs.display(),
            codes = list.join(" "),
        ),
    );
    script.display().to_string()
}

fn gate_runs(env: &Env) -> Vec<String> {
    fs::read_to_string(env.path("gate-runs"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn a_gate_that_rejects_once_sends_the_answer_back_then_accepts_it() {
    let env = Env::new();
    let work = env.path("work");
    fs::create_dir_all(&work).unwrap();
    let saver = env.script(
        "saver.sh",
        &format!(
            "#!/bin/sh\ncat > '{p}'.$BATON_TASK_ID\necho answer for $BATON_TASK_ID\n",
            p = env.path("prompt").display()
        ),
    );
    env.start(
        "coding",
        &[
            "--driver",
            "exec",
            "--cwd",
            work.to_str().unwrap(),
            "--",
            saver.to_str().unwrap(),
        ],
    );
    let g = gate(&env, &[2, 0]);
    let out = env
        .run(["ask", "coding", "Fix it", "--gate", &g, "--json"])
        .ok();
    let ends = json_lines(&out.stdout);
    assert_eq!(ends.len(), 2, "{}", out.stdout);
    assert_eq!(
        (ends[0]["gate"].as_str(), ends[0]["round"].as_i64()),
        (Some("rejected"), Some(0))
    );
    assert_eq!(
        (ends[1]["gate"].as_str(), ends[1]["round"].as_i64()),
        (Some("accepted"), Some(1))
    );
    let runs = gate_runs(&env);
    assert_eq!(runs.len(), 2);
    // In the agent's folder, told the agent and the task, with the answer on stdin.
    let first_task = ends[0]["task_id"].as_str().unwrap();
    assert_eq!(runs[0], format!("{} coding {first_task}", work.display()));
    assert_eq!(
        fs::read_to_string(env.path("gate-runs.stdin.0")).unwrap(),
        format!("answer for {first_task}\n")
    );
    // The answer went back with the gate's output.
    let second = ends[1]["task_id"].as_str().unwrap();
    let back = fs::read_to_string(env.path(&format!("prompt.{second}"))).unwrap();
    assert!(
        back.starts_with("Fix it\n=== baton: your answer was sent back (round 1 of 2) ===\n"),
        "{back}"
    );
    assert!(back.contains("gate run 0: 1 test failed"), "{back}");
    assert!(back.contains(&format!("answer for {first_task}")), "{back}");
}

#[test]
fn a_gate_that_keeps_rejecting_fails_the_task_after_its_rounds() {
    let env = Env::new();
    env.start("coding", &["--driver", "exec", "--", "echo", "done"]);
    let g = gate(&env, &[2]);
    let out = env.run(["ask", "coding", "x", "--gate", &g]).expect(1);
    assert!(
        out.stderr.contains("sent the answer back 2 time(s)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("gate run 2: 1 test failed"),
        "{}",
        out.stderr
    );
    assert_eq!(gate_runs(&env).len(), 3, "the first answer and two rounds");
    assert_eq!(env.tasks_of("coding").len(), 3);
    // Any other exit fails the task at once.
    let env = Env::new();
    env.start("coding", &["--driver", "exec", "--", "echo", "done"]);
    let g = gate(&env, &[7]);
    let out = env.run(["ask", "coding", "x", "--gate", &g]).expect(1);
    assert!(
        out.stderr.contains("exited with status 7"),
        "{}",
        out.stderr
    );
    assert_eq!(env.tasks_of("coding").len(), 1);
}

#[test]
fn a_hanging_gate_is_bounded_by_the_timeout_and_killed_with_its_process_group() {
    let env = Env::new();
    env.start("coding", &["--driver", "exec", "--", "echo", "done"]);
    let pids = env.path("gate-pids");
    let g = format!(
        "sleep 600 & echo $! > '{p}'; echo $$ >> '{p}'; wait",
        p = pids.display()
    );
    let mut cmd = env.cmd(["ask", "coding", "x", "--gate", &g, "--timeout", "3s"]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let child = cmd.spawn().unwrap();
    wait_until("the gate has started", secs(10), || {
        fs::read_to_string(&pids).is_ok_and(|s| s.lines().count() == 2)
    });
    // While it runs, status says so.
    let status = env.run(["status"]).ok().stdout;
    assert!(status.contains("gate running on task"), "{status}");
    let (st, _, err) = finish(child, None, secs(20)).expect("the ask ends");
    let err = String::from_utf8_lossy(&err);
    assert_eq!(st.code(), Some(3), "{err}");
    assert!(err.contains("did not finish within 3.0s"), "{err}");
    assert!(started.elapsed() >= secs(3), "{:?}", started.elapsed());
    // Killed (a killed orphan may stay a zombie for a moment, until init reaps it).
    for pid in fs::read_to_string(&pids).unwrap().lines() {
        wait_until(&format!("gate process {pid} is gone"), secs(5), || {
            fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
        });
    }
    assert!(!env.run(["status"]).ok().stdout.contains("gate running"));
}

#[test]
fn bad_plans_are_refused_before_anything_is_delivered() {
    let env = Env::new();
    let dir = project(
        &env,
        "shop",
        &[agent("a", "cat"), agent("b", "cat")].concat(),
    );
    let cases: [&[&str]; 7] = [
        &["ask", "a || b", "x"],
        &[
            "ask",
            "a",
            "--gate",
            "MODE=strict no-such-gate-program",
            "x",
        ],
        &["ask", "a | nosuch", "x"],
        &["ask", "a", "--any", "x"],
        &["ask", "a", "--retries", "11", "x"],
        &["ask", "a", "--gate", "no-such-gate-program --check", "x"],
        &["send", "a | | b", "x"],
    ];
    for args in cases {
        let out = run_in(&env, &dir, args).expect(2);
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
    assert!(env.task_ids().is_empty(), "nothing was delivered");
    // Editor mode: the same refusals, the prompt file byte for byte as it was.
    for text in [
        "@a | @nosuch do it",
        "@a --any do it",
        "@a | | @b do it",
        "@a |",
    ] {
        let file = dir.join("prompt.md");
        fs::write(&file, text).unwrap();
        let out = run_in(&env, &dir, &[file.to_str().unwrap()]).expect(2);
        assert_eq!(fs::read_to_string(&file).unwrap(), text, "{}", out.stderr);
    }
    assert!(env.task_ids().is_empty(), "nothing was delivered");
}

#[test]
fn ctrl_c_during_a_pipeline_cancels_the_running_stage_and_delivers_no_later_one() {
    let env = Env::new();
    env.start_gated("g");
    env.start("next", &["--driver", "exec", "--", "cat"]);
    let mut cmd = env.cmd(["ask", "g | next", "x"]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    wait_until("stage 1 has started", secs(10), || env.started_count() == 1);
    signal(child.id(), Signal::SIGINT);
    let (st, _, err) = finish(child, None, secs(20)).expect("the ask ends");
    assert_eq!(st.code(), Some(4), "{}", String::from_utf8_lossy(&err));
    let g = env.tasks_of("g");
    wait_until("stage 1 has its end", secs(10), || {
        env.task_dir(&g[0]).join("done.json").exists()
    });
    assert_eq!(env.done_json(&g[0])["state"], "cancelled");
    assert!(
        env.tasks_of("next").is_empty(),
        "no later stage was delivered"
    );
}

#[test]
fn a_runner_killed_mid_stage_with_retries_left_is_restarted_and_the_pipeline_goes_on() {
    let env = Env::new();
    env.gated_agent();
    // The gated agent, printing a line before it waits at the gate.
    let script = env.script(
        "halfway.sh",
        &format!(
            "#!/bin/sh\necho halfway through\nexec {}\n",
            env.path("gated.sh").display()
        ),
    );
    let dir = project(
        &env,
        "shop",
        &[
            format!(
                "[agent.g]\ndriver = \"exec\"\ncommand = [{}]\n",
                toml_string(&script.display().to_string())
            ),
            agent("tail", "echo tail saw:; cat"),
        ]
        .concat(),
    );
    let mut cmd = env.cmd(["ask", "g | tail", "the request", "--retries", "1"]);
    cmd.current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    wait_until("stage 1 has started", secs(10), || env.started_count() == 1);
    let first = fs::read_to_string(env.path("started")).unwrap();
    let output = env.task_dir(first.trim()).join("output");
    wait_until("stage 1 has printed its line", secs(10), || {
        fs::read_to_string(&output).is_ok_and(|o| o.contains("halfway through"))
    });
    let g = fs::read_dir(env.home.join("agents"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("g."))
        .unwrap();
    let pid = env.runner_pid(&g);
    signal(pid as u32, Signal::SIGKILL);
    // The stage is delivered again to a runner started again, and the pipeline goes on.
    wait_until("the retry has started", secs(20), || {
        env.started_count() == 2
    });
    assert_ne!(env.runner_pid(&g), pid);
    env.open_gate();
    let (st, out, err) = finish(child, None, secs(20)).expect("the ask ends");
    let out = String::from_utf8_lossy(&out);
    assert_eq!(st.code(), Some(0), "{}", String::from_utf8_lossy(&err));
    assert!(out.starts_with("tail saw:\n"), "{out}");
    assert!(out.contains("=== baton: attempt 2 of 2 ==="), "{out}");
    // The retry is told what the lost attempt had printed.
    assert!(
        out.contains("The last lines of its output:\nhalfway through\n"),
        "{out}"
    );
}

#[test]
fn a_pipeline_sent_to_the_background_goes_on_and_wait_follows_it() {
    let env = Env::new();
    let dir = project(
        &env,
        "shop",
        &[agent("a", "echo from a"), agent("b", "echo b got:; cat")].concat(),
    );
    let send = |prompt: &str| {
        run_in(&env, &dir, &["send", "a | b", prompt])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    let root = send("in the background");
    until_workflow_done(&env, &root);
    // Its outcome waits in the project's results inbox, shown once with --mark.
    let results = run_in(&env, &dir, &["results", "--mark"]).ok().stdout;
    assert!(
        results.contains("==> @b (task") && results.contains("b got:"),
        "{results}"
    );
    assert_eq!(run_in(&env, &dir, &["results"]).ok().stdout, "");
    assert!(run_in(&env, &dir, &["results", "--all"])
        .ok()
        .stdout
        .contains("b got:"));
    // `wait` of the workflow's id waits for its outcome, and `result --json` keeps every stage.
    let root = send("again");
    let out = env.run(["wait", &root]).ok();
    assert!(out.stdout.starts_with("b got:\n"), "{}", out.stdout);
    assert!(out.stdout.contains("from a"), "{}", out.stdout);
    let kept = json_lines(&env.run(["result", &root, "--json"]).ok().stdout);
    assert_eq!(kept.len(), 2);
    // An answer someone waited for is seen: it does not reach the chief as well.
    assert_eq!(run_in(&env, &dir, &["results"]).ok().stdout, "");
}

/// Runs `baton hook KIND` with `event` on its stdin.
fn hook(env: &Env, kind: &str, event: &serde_json::Value) -> Out {
    env.run_stdin(["hook", kind], event.to_string().as_bytes())
}

#[test]
fn a_background_answer_reaches_the_chief_once_and_only_in_its_own_project() {
    let env = Env::new();
    let shop = project(&env, "shop", &agent("bg", "echo shop answer"));
    let blog = project(&env, "blog", &agent("bg", "echo blog answer"));
    let id = run_in(&env, &shop, &["send", "bg", "work"]).ok().stdout;
    until_done(&env, &id);
    let event = |dir: &Path| serde_json::json!({"hook_event_name": "UserPromptSubmit", "cwd": dir, "session_id": "s1", "prompt": "next"});
    // The blog's chief never sees the shop's result.
    assert_eq!(hook(&env, "chief-prompt", &event(&blog)).ok().stdout, "");
    let first = hook(&env, "chief-prompt", &event(&shop)).ok().stdout;
    assert!(first.contains("background results arrived"), "{first}");
    assert!(
        first.contains("==> @bg (task") && first.contains("shop answer"),
        "{first}"
    );
    // Once each.
    assert_eq!(hook(&env, "chief-prompt", &event(&shop)).ok().stdout, "");
    // Inside an agent the chief's hooks do nothing.
    let id = run_in(&env, &shop, &["send", "bg", "more"]).ok().stdout;
    until_done(&env, &id);
    let mut cmd = env.cmd(["hook", "chief-prompt"]);
    cmd.env("BATON_AGENT", "bg");
    let out = env
        .output(cmd, Some(event(&shop).to_string().into_bytes()))
        .ok();
    assert_eq!(out.stdout, "");
    assert!(hook(&env, "chief-prompt", &event(&shop))
        .ok()
        .stdout
        .contains("shop answer"));
}

#[test]
fn chief_wait_blocks_until_a_result_arrives_then_wakes_the_session_with_it() {
    let env = Env::new();
    let shop = project(&env, "shop", &agent("bg", "echo the build failed"));
    let event = serde_json::json!({"hook_event_name": "Stop", "cwd": shop, "session_id": "s-1"});
    let mut cmd = env.cmd(["hook", "chief-wait"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut waiter = cmd.spawn().unwrap();
    waiter
        .stdin
        .take()
        .unwrap()
        .write_all(event.to_string().as_bytes())
        .unwrap();
    let lock = env.home.join("results");
    wait_until("the waiter holds its session's lock", secs(10), || {
        fs::read_dir(&lock).is_ok_and(|rd| {
            rd.filter_map(|e| e.ok())
                .any(|e| runner_alive(&e.path().join("waiters/s-1")))
        })
    });
    // A second waiter for the same session leaves it to the first, at once.
    hook(&env, "chief-wait", &event).ok();
    assert!(
        waiter.try_wait().unwrap().is_none(),
        "the first still waits"
    );
    run_in(&env, &shop, &["send", "bg", "watch CI"]).ok();
    let (st, _, err) = finish(waiter, None, secs(20)).expect("the waiter wakes");
    let err = String::from_utf8_lossy(&err);
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(err.contains("the build failed"), "{err}");
}

#[test]
fn an_ampersand_runs_in_the_background_and_at_results_brings_the_answers_back() {
    let env = Env::new();
    env.start_gated("g");
    let file = env.path("prompt.md");
    fs::write(&file, "@g & watch CI and tell me when it fails").unwrap();
    env.run([file.to_str().unwrap()]).ok();
    let line = fs::read_to_string(&file).unwrap();
    assert!(
        line.starts_with("@g took it in the background (task "),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1, "{line}");
    wait_until("the task runs", secs(10), || env.started_count() == 1);
    // Nothing has arrived yet.
    fs::write(&file, "@results").unwrap();
    env.run([file.to_str().unwrap()]).ok();
    assert!(
        fs::read_to_string(&file)
            .unwrap()
            .contains("1 background task(s) still running"),
        "{}",
        fs::read_to_string(&file).unwrap()
    );
    env.open_gate();
    let id = env.tasks_of("g").remove(0);
    until_done(&env, &id);
    fs::write(&file, "@results").unwrap();
    env.run([file.to_str().unwrap()]).ok();
    let text = fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with(&format!(
            "==> @g (task {id}, ok) <==\nwatch CI and tell me when it fails"
        )),
        "{text}"
    );
    fs::write(&file, "@results").unwrap();
    env.run([file.to_str().unwrap()]).ok();
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        "No background results have arrived.\n"
    );
}

#[test]
fn mail_from_eight_concurrent_senders_is_complete_and_in_order() {
    let env = Env::new();
    env.start("review", &["--driver", "exec", "--", "cat"]);
    let threads: Vec<_> = (0..8)
        .map(|s| {
            let cmds: Vec<std::process::Command> = (0..20)
                .map(|m| {
                    let mut c =
                        env.cmd(["msg", "send", "review", &format!("sender {s} message {m}")]);
                    c.env("BATON_AGENT", format!("s{s}"));
                    c
                })
                .collect();
            std::thread::spawn(move || {
                for mut c in cmds {
                    let out = c.output().unwrap();
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let status = env.status_json_all();
    assert_eq!(status[0]["unread"], 160);
    let msgs = json_lines(
        &env.run(["msg", "read", "review", "--json", "--mark"])
            .ok()
            .stdout,
    );
    assert_eq!(msgs.len(), 160);
    for s in 0..8 {
        let mine: Vec<String> = msgs
            .iter()
            .filter(|m| m["from"] == format!("s{s}"))
            .map(|m| m["text"].as_str().unwrap().to_string())
            .collect();
        let want: Vec<String> = (0..20).map(|m| format!("sender {s} message {m}")).collect();
        assert_eq!(mine, want);
    }
    assert!(msgs
        .iter()
        .all(|m| m["to"] == "review" && m["timestamp"].is_string()));
    assert_eq!(env.status_json_all()[0]["unread"], 0);
    assert!(env
        .run(["msg", "list"])
        .ok()
        .stdout
        .contains("review\t160 message(s), 0 unread"));
}

#[test]
fn a_sender_killed_mid_line_leaves_no_torn_line_and_a_huge_message_is_refused() {
    let env = Env::new();
    env.start("review", &["--driver", "exec", "--", "cat"]);
    let mut cmd = env.cmd(["msg", "send", "review", "this one is cut in half"]);
    cmd.env("BATON_TEST_PAUSE", "mail-half-written");
    let sender = cmd.spawn().unwrap();
    wait_stopped(sender.id());
    signal(sender.id(), Signal::SIGKILL);
    let mut sender = sender;
    let _ = sender.wait();
    env.run(["msg", "send", "review", "whole"]).ok();
    let raw = fs::read_to_string(env.home.join("messages/review.jsonl")).unwrap();
    assert!(raw.ends_with('\n'));
    let msgs = json_lines(&raw);
    assert_eq!(msgs.len(), 1, "{raw}");
    assert_eq!(msgs[0]["text"], "whole");
    let big = vec![b'x'; 5 << 20];
    let out = env
        .run_stdin(["msg", "send", "review", "-"], &big)
        .expect(2);
    assert!(
        out.stderr.contains("larger than 1024 KiB"),
        "{}",
        out.stderr
    );
    let out = env.run(["msg", "send", "nosuch", "hi"]).expect(2);
    assert!(out.stderr.contains("unknown agent"), "{}", out.stderr);
    assert_eq!(
        json_lines(&env.run(["msg", "read", "review", "--json"]).ok().stdout).len(),
        1
    );
}

#[test]
fn mail_goes_before_a_claude_agents_next_task_and_gc_purges_old_messages() {
    if !have(&["python3"]) {
        return;
    }
    let env = Env::new();
    let home = format!("HOME={}", env.claude_home().display());
    env.start(
        "pl",
        &["--driver", "claude", "--claude", STANDIN, "--env", &home],
    );
    let mut cmd = env.cmd(["msg", "send", "pl", "the API changed: see docs/api.md"]);
    cmd.env("BATON_AGENT", "review");
    env.output(cmd, None).ok();
    let answer = env.run(["ask", "pl", "go on"]).ok().stdout;
    assert!(
        answer.contains("=== baton: messages for you ==="),
        "{answer}"
    );
    assert!(answer.contains("from review at "), "{answer}");
    assert!(
        answer.contains("the API changed: see docs/api.md"),
        "{answer}"
    );
    assert!(answer.contains("your task follows ===\ngo on"), "{answer}");
    // Read once: the next task has no mail before it (the stand-in's answer starts with the
    // prompt it was given, then what it remembers of earlier turns).
    let next = env.run(["ask", "pl", "again"]).ok().stdout;
    assert!(next.starts_with("turn 2: again (I remember:"), "{next}");
    // An old message (its timestamp a day back) is purged; a new one is kept.
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(env.home.join("messages/pl.jsonl"))
        .unwrap();
    f.write_all(b"{\"from\":\"you\",\"to\":\"pl\",\"timestamp\":\"2020-01-01T00:00:00.000Z\",\"text\":\"old\"}\n").unwrap();
    env.run(["msg", "send", "pl", "new"]).ok();
    assert!(env
        .run(["gc"])
        .ok()
        .stdout
        .contains("1 old message(s) purged"));
    let left = json_lines(
        &env.run(["msg", "read", "pl", "--all", "--json"])
            .ok()
            .stdout,
    );
    let texts: Vec<&str> = left.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["the API changed: see docs/api.md", "new"]);
    // The read mark moved with the purge: only "new" is unread.
    let unread = json_lines(&env.run(["msg", "read", "pl", "--json"]).ok().stdout);
    assert_eq!(unread.len(), 1);
}

#[test]
fn the_progress_of_a_claude_agent_is_the_tool_it_uses() {
    if !have(&["python3"]) {
        return;
    }
    let env = Env::new();
    let gate = claude_with_tool_gate(&env, "pl");
    let id = env.send("pl", "run the TOOL");
    let progress = env.task_dir(&id).join("progress");
    wait_until("the progress names the tool", secs(10), || {
        fs::read_to_string(&progress).is_ok_and(|p| p == "Bash: cargo test -q")
    });
    open_tool_gate(&gate);
    assert!(env.run(["wait", &id]).ok().stdout.contains("run the TOOL"));
}

#[test]
fn a_command_whose_reader_has_gone_ends_quietly() {
    let env = Env::new();
    for i in 0..30 {
        env.start(&format!("a{i}"), &["--driver", "exec", "--", "cat"]);
    }
    let mut cmd = env.cmd(["status"]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take());
    let (st, _, err) = finish(child, None, secs(10)).expect("status ends");
    let err = String::from_utf8_lossy(&err);
    assert!(!err.contains("panicked"), "{err}");
    use std::os::unix::process::ExitStatusExt;
    assert!(
        st.success() || st.signal() == Some(nix::libc::SIGPIPE),
        "{st:?} {err}"
    );
}

#[test]
fn wait_follows_a_background_workflow_that_is_still_running() {
    let env = Env::new();
    env.start_gated("g");
    env.start(
        "next",
        &["--driver", "exec", "--", "sh", "-c", "echo next saw:; cat"],
    );
    // `send` stops once it has handed the workflow over, its supervisor once it holds it: then
    // `send` lets go and exits, and the supervisor must still hold the workflow.
    let send = env.cmd(["send", "g | next", "held at the gate"]);
    let sender = spawn_paused(send, "handed-off,supervising");
    let pid = env.supervisor();
    wait_stopped(pid);
    signal(sender.id(), Signal::SIGCONT);
    let (st, out, _) = finish(sender, None, secs(10)).expect("send ends");
    assert_eq!(st.code(), Some(0));
    let root = String::from_utf8_lossy(&out).trim().to_string();
    signal(pid, Signal::SIGCONT);
    wait_until("stage 1 runs", secs(10), || env.started_count() == 1);
    // A second supervisor started by hand is refused, and leaves the record alone.
    let second = env.run(["supervise", &root]).expect(2);
    assert!(
        second.stderr.contains("being run by another process"),
        "{}",
        second.stderr
    );
    let record: serde_json::Value =
        serde_json::from_slice(&fs::read(env.task_dir(&root).join("workflow.json")).unwrap())
            .unwrap();
    assert!(record["state"].is_null(), "{record}");
    // Its supervisor alone holds the workflow now, and wait knows it.
    let mut cmd = env.cmd(["wait", &root]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let waiter = cmd.spawn().unwrap();
    let status = env.run(["status"]).ok();
    assert!(status.stdout.contains("g"), "{}", status.stdout);
    env.open_gate();
    let (st, out, err) = finish(waiter, None, secs(20)).expect("wait ends");
    let (out, err) = (String::from_utf8_lossy(&out), String::from_utf8_lossy(&err));
    assert_eq!(st.code(), Some(0), "{err}");
    assert!(out.starts_with("next saw:\n"), "{out}");
}

#[test]
fn gc_keeps_every_task_of_a_workflow_that_has_not_ended() {
    let env = Env::new();
    env.start("first", &["--driver", "exec", "--", "echo", "first said"]);
    env.start_gated("g");
    let root = env.send("first | g", "two stages");
    wait_until("stage 2 runs", secs(10), || env.started_count() == 1);
    // Stage 1 has ended; the workflow has not: nothing of it goes, however old.
    let gc = env.run(["gc", "--older-than", "0s"]).ok().stdout;
    assert!(
        gc.contains("removed 0") && gc.contains("1 of a workflow that has not ended"),
        "{gc}"
    );
    assert!(env.task_dir(&root).join("workflow.json").exists());
    env.open_gate();
    let out = env.run(["wait", &root]).ok();
    let kept = json_lines(&env.run(["result", &root, "--json"]).ok().stdout);
    assert_eq!(kept.len(), 2, "{}", out.stdout);
    assert!(kept[0]["answer"]
        .as_str()
        .is_some_and(|a| a.contains("first said")));
    // Once it has ended, its tasks are finished tasks like any other.
    let gc = env.run(["gc", "--older-than", "0s"]).ok().stdout;
    assert!(gc.contains("removed 2"), "{gc}");
}

/// Runs `cmd` with its standard output a pipe no one reads (its read end closed).
fn to_a_gone_reader(mut cmd: std::process::Command, input: &[u8]) -> (i32, String) {
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    drop(cmd);
    let (st, _, err) = finish(child, Some(input.to_vec()), secs(10)).expect("it ends");
    (
        st.code().unwrap_or(-1),
        String::from_utf8_lossy(&err).into(),
    )
}

#[test]
fn a_result_whose_reader_has_gone_is_not_marked_seen() {
    let env = Env::new();
    let shop = project(&env, "shop", &agent("bg", "echo kept for later"));
    let id = run_in(&env, &shop, &["send", "bg", "work"]).ok().stdout;
    until_done(&env, &id);
    let event = serde_json::json!({"hook_event_name": "UserPromptSubmit", "cwd": shop, "session_id": "s1", "prompt": "next"});
    // The chief's hook cannot hand it over, nor can `results --mark`: it stays not seen.
    let (code, err) = to_a_gone_reader(
        env.cmd(["hook", "chief-prompt"]),
        event.to_string().as_bytes(),
    );
    assert_eq!(code, 0, "{err}");
    let mut mark = env.cmd(["results", "--mark"]);
    mark.current_dir(&shop);
    let (code, err) = to_a_gone_reader(mark, b"");
    assert_eq!(code, 0, "{err}");
    assert!(run_in(&env, &shop, &["results"])
        .ok()
        .stdout
        .contains("kept for later"));
    // A reader that takes it marks it seen, once.
    let first = hook(&env, "chief-prompt", &event).ok().stdout;
    assert!(first.contains("kept for later"), "{first}");
    assert_eq!(run_in(&env, &shop, &["results"]).ok().stdout, "");
}

#[test]
fn a_workflow_its_supervisor_cannot_carry_on_says_why_with_the_code_of_its_end() {
    let env = Env::new();
    let dir = project(
        &env,
        "shop",
        &[agent("a", "echo from a"), agent("b", "cat")].concat(),
    );
    let mut send = env.cmd(["send", "a | b", "two stages"]);
    send.current_dir(&dir)
        .env("BATON_TEST_PAUSE", "supervising");
    let out = env.output(send, None).ok();
    let root = out.stdout.trim().to_string();
    let supervisor = env.supervisor();
    wait_stopped(supervisor);
    // The project's config breaks before the supervisor reads it.
    fs::write(dir.join(".baton.toml"), "[agent.a\n").unwrap();
    signal(supervisor, Signal::SIGCONT);
    until_workflow_done(&env, &root);
    let out = env.run(["result", &root]).expect(1);
    assert!(
        out.stderr
            .contains("the workflow could not be carried on: bad config"),
        "{}",
        out.stderr
    );
}

#[test]
fn cancel_of_a_workflow_stops_it_where_it_runs_and_delivers_no_later_stage() {
    let env = Env::new();
    env.start_gated("g");
    env.start("next", &["--driver", "exec", "--", "cat"]);
    let root = env.send("g | next", "two stages");
    wait_until("stage 1 runs", secs(10), || env.started_count() == 1);
    let out = env.run(["cancel", &root]).ok();
    assert!(out.stdout.contains("workflow cancelled"), "{}", out.stdout);
    until_done(&env, &root);
    assert_eq!(env.done_json(&root)["state"], "cancelled");
    until_workflow_done(&env, &root);
    let record: serde_json::Value =
        serde_json::from_slice(&fs::read(env.task_dir(&root).join("workflow.json")).unwrap())
            .unwrap();
    assert_eq!(record["state"], "cancelled", "{record}");
    assert!(env.tasks_of("next").is_empty());
    let out = env.run(["wait", &root]).expect(4);
    assert!(out.stderr.contains("cancelled"), "{}", out.stderr);
    // Once ended, cancel says so.
    let out = env.run(["cancel", &root]).ok();
    assert!(out.stdout.contains("already ended"), "{}", out.stdout);
}

#[test]
fn cancel_that_reaches_the_caller_after_it_handed_the_workflow_over_stops_it() {
    cancel_as_the_workflow_is_handed_over(false);
}

#[test]
fn cancel_that_comes_after_the_caller_handed_the_workflow_over_and_exited_stops_it() {
    cancel_as_the_workflow_is_handed_over(true);
}

/// `baton cancel` reads the runner the record names while that is still the `send` that is
/// about to hand the workflow over; its SIGTERM comes only once `send` has looked for a signal
/// to pass on for the last time (or, `sender_gone`, once it has exited). The workflow still
/// ends cancelled: the supervisor is asked too.
fn cancel_as_the_workflow_is_handed_over(sender_gone: bool) {
    let env = Env::new();
    env.start_gated("g");
    env.start("next", &["--driver", "exec", "--", "cat"]);
    let send = env.cmd(["send", "g | next", "two stages"]);
    let pauses = if sender_gone {
        "handing-off"
    } else {
        "handing-off,letting-go"
    };
    let sender = spawn_paused(send, pauses);
    let root = fs::read_dir(env.home.join("tasks"))
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.path().join("workflow.json").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .expect("the workflow's record");
    let canceller = spawn_paused(env.cmd(["cancel", &root]), "cancel-signals");
    signal(sender.id(), Signal::SIGCONT);
    let sender = if sender_gone {
        let (st, _, err) = finish(sender, None, secs(10)).expect("send ends");
        assert_eq!(st.code(), Some(0), "{}", String::from_utf8_lossy(&err));
        None
    } else {
        wait_stopped(sender.id());
        Some(sender)
    };
    signal(canceller.id(), Signal::SIGCONT);
    let (st, out, err) = finish(canceller, None, secs(20)).expect("cancel ends");
    let (out, err) = (String::from_utf8_lossy(&out), String::from_utf8_lossy(&err));
    assert_eq!(st.code(), Some(0), "{err}");
    assert!(out.contains("workflow cancelled"), "{out}{err}");
    until_workflow_done(&env, &root);
    let record: serde_json::Value =
        serde_json::from_slice(&fs::read(env.task_dir(&root).join("workflow.json")).unwrap())
            .unwrap();
    assert_eq!(record["state"], "cancelled", "{record}");
    if let Some(sender) = sender {
        signal(sender.id(), Signal::SIGCONT);
        let (st, _, err) = finish(sender, None, secs(10)).expect("send ends");
        assert_eq!(st.code(), Some(0), "{}", String::from_utf8_lossy(&err));
    }
    assert!(env.tasks_of("next").is_empty());
}

#[test]
fn cancel_of_a_workflow_no_one_runs_any_more_ends_it_there() {
    let env = Env::new();
    env.start_gated("g");
    env.start("next", &["--driver", "exec", "--", "cat"]);
    let root = env.send("g | next", "two stages");
    wait_until("stage 1 runs", secs(10), || env.started_count() == 1);
    let supervisor = env.supervisor();
    signal(supervisor, Signal::SIGKILL);
    wait_until("the supervisor is gone", secs(10), || {
        !processes_with_home(&env.home).contains(&(supervisor as i32))
    });
    let out = env.run(["cancel", &root]).ok();
    assert!(out.stdout.contains("no one ran it"), "{}", out.stdout);
    until_done(&env, &root);
    assert_eq!(env.done_json(&root)["state"], "cancelled");
    let out = env.run(["wait", &root]).expect(4);
    assert!(out.stderr.contains("cancelled"), "{}", out.stderr);
    assert!(env.tasks_of("next").is_empty());
}

#[test]
fn wait_of_several_workflows_and_a_task_gives_each_ones_outcome() {
    let env = Env::new();
    env.start(
        "a",
        &["--driver", "exec", "--", "sh", "-c", "echo a saw:; cat"],
    );
    env.start(
        "b",
        &["--driver", "exec", "--", "sh", "-c", "echo b saw:; cat"],
    );
    let first = env.send("a | b", "one");
    let second = env.send("a | b", "two");
    let task = env.send("a", "three");
    let out = env.run(["wait", &first, &second, &task, "--json"]).ok();
    let ends = json_lines(&out.stdout);
    let answers: Vec<&str> = ends.iter().map(|e| e["answer"].as_str().unwrap()).collect();
    assert_eq!(ends.len(), 3, "{}", out.stdout);
    assert!(
        answers[0].starts_with("b saw:") && answers[0].contains("one"),
        "{answers:?}"
    );
    assert!(
        answers[1].starts_with("b saw:") && answers[1].contains("two"),
        "{answers:?}"
    );
    assert!(answers[2].starts_with("a saw:\nthree"), "{answers:?}");
}

/// Runs baton with `args`, stopped before it delivers; sends it `sig`, lets it go on, and
/// returns its exit code and stderr.
fn signalled_before_delivery(env: &Env, args: &[&str], sig: Signal) -> (i32, String) {
    let child = spawn_paused(env.cmd(args), "before-deliver");
    signal(child.id(), sig);
    signal(child.id(), Signal::SIGCONT);
    let (st, _, err) = finish(child, None, secs(10)).expect("baton ends");
    (
        st.code().unwrap_or(-1),
        String::from_utf8_lossy(&err).into(),
    )
}

#[test]
fn a_signal_before_send_has_delivered_delivers_nothing() {
    let env = Env::new();
    env.start_gated("g");
    // Ctrl-C while it makes its agents ready: it is seen before anything is delivered.
    let (code, err) = signalled_before_delivery(&env, &["send", "g", "never mind"], Signal::SIGINT);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("cancelled by SIGINT"), "{err}");
    // It names no task, since there is none to look up.
    assert!(err.contains("agent g (no task):"), "{err}");
    assert!(env.task_ids().is_empty(), "{:?}", env.task_ids());
    assert!(env.inbox("g", "new").is_empty());
    // Nothing of it waits in the results.
    assert_eq!(env.run(["results"]).ok().stdout, "");
    // The same for `&` in editor mode, and the file is left as it was.
    let file = env.path("prompt.md");
    fs::write(&file, "@g & never mind").unwrap();
    let (code, err) = signalled_before_delivery(&env, &[file.to_str().unwrap()], Signal::SIGTERM);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("cancelled by SIGTERM"), "{err}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "@g & never mind");
    assert!(env.task_ids().is_empty(), "{:?}", env.task_ids());
    // The agent never began either.
    let started = fs::read_to_string(env.path("started")).unwrap_or_default();
    assert!(started.is_empty(), "{started}");
}

#[test]
fn concurrent_readers_of_mail_each_take_a_message_once_and_a_gone_reader_gives_it_back() {
    let env = Env::new();
    env.start("review", &["--driver", "exec", "--", "cat"]);
    let text = (0..40)
        .map(|m| format!("message {m}"))
        .collect::<Vec<_>>()
        .join("\n");
    for line in text.lines() {
        env.run(["msg", "send", "review", line]).ok();
    }
    // A reader whose output goes nowhere leaves them unread.
    let (code, err) = to_a_gone_reader(env.cmd(["msg", "read", "review", "--mark"]), b"");
    assert_eq!(code, 0, "{err}");
    assert_eq!(env.status_json_all()[0]["unread"], 40);
    let readers: Vec<_> = (0..6)
        .map(|_| {
            let mut c = env.cmd(["msg", "read", "review", "--mark", "--json"]);
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let mut seen: Vec<String> = Vec::new();
    for r in readers {
        let (st, out, _) = finish(r, None, secs(20)).expect("a reader ends");
        assert_eq!(st.code(), Some(0));
        for m in json_lines(&String::from_utf8_lossy(&out)) {
            seen.push(m["text"].as_str().unwrap().to_string());
        }
    }
    seen.sort_by_key(|t| t[8..].parse::<u32>().unwrap());
    let want: Vec<String> = text.lines().map(String::from).collect();
    assert_eq!(seen, want);
    assert_eq!(env.status_json_all()[0]["unread"], 0);
}

#[test]
fn a_gate_run_from_inside_a_commit_carries_none_of_the_commits_environment() {
    let env = Env::new();
    env.start("w", &["--driver", "exec", "--", "echo", "done"]);
    let seen = env.path("gate-env");
    // (A variable set before the command, quoted or not, is no command name: the gate is not
    // refused.)
    let gate = format!(
        "FLAGS=\"-D warnings\" MODE=strict echo \"${{GIT_INDEX_FILE-unset}} ${{GIT_DIR-unset}}\" > '{}'",
        seen.display()
    );
    let mut cmd = env.cmd(["ask", "w", "go", "--gate", &gate]);
    cmd.env("GIT_INDEX_FILE", "/repo/.git/index.lock")
        .env("GIT_DIR", "/repo/.git");
    env.output(cmd, None).ok();
    assert_eq!(fs::read_to_string(&seen).unwrap(), "unset unset\n");
}

#[test]
fn cancel_finds_a_workflows_runner_whatever_baton_binary_started_it() {
    let env = Env::new();
    env.start_gated("g");
    env.start("next", &["--driver", "exec", "--", "cat"]);
    // An older baton, installed in a folder of its own, starts the workflow.
    let old = env.path("v1/baton");
    fs::create_dir_all(old.parent().unwrap()).unwrap();
    env.copy_program(BIN, &old);
    let mut send = std::process::Command::new(&old);
    scrub(&mut send)
        .args(["send", "g | next", "two stages"])
        .env("BATON_HOME", &env.home)
        .current_dir(env.dir.path())
        .stdin(Stdio::null());
    let root = env.output(send, None).ok().stdout.trim().to_string();
    wait_until("stage 1 runs", secs(10), || env.started_count() == 1);
    // The upgrade takes the old one away; the new one cancels what it started.
    fs::remove_dir_all(env.path("v1")).unwrap();
    let out = env.run(["cancel", &root]).ok();
    assert!(out.stdout.contains("workflow cancelled"), "{}", out.stdout);
    until_workflow_done(&env, &root);
    assert!(env.tasks_of("next").is_empty());
}

#[test]
fn cancel_during_a_gate_the_supervisor_runs_on_taking_over_stops_the_whole_stage() {
    let env = Env::new();
    env.start("fast", &["--driver", "exec", "--", "cat"]);
    env.start_gated("slow");
    let hold = env.path("hold");
    nix::unistd::mkfifo(&hold, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let runs = env.path("gate-ran");
    let gate = format!(
        "echo ran >> '{}'; read _ < '{}'",
        runs.display(),
        hold.display()
    );
    // The supervisor stops as it takes over: by then fast has answered, so its gate runs there.
    let mut send = env.cmd(["send", "fast,slow", "--gate", &gate, "hi"]);
    send.env("BATON_TEST_PAUSE", "supervising");
    let root = env.output(send, None).ok().stdout.trim().to_string();
    let supervisor = env.supervisor();
    wait_stopped(supervisor);
    wait_until("slow runs and fast has answered", secs(10), || {
        env.started_count() == 1
            && env
                .tasks_of("fast")
                .iter()
                .any(|id| env.task_dir(id).join("done.json").exists())
    });
    signal(supervisor, Signal::SIGCONT);
    wait_until("the gate judges fast's answer", secs(10), || runs.exists());
    let out = env.run(["cancel", &root]).ok();
    assert!(out.stdout.contains("workflow cancelled"), "{}", out.stdout);
    // slow's task is stopped too, and the outcome is no success.
    let slow = env.tasks_of("slow").remove(0);
    until_done(&env, &slow);
    assert_eq!(env.done_json(&slow)["state"], "cancelled");
    let out = env.run(["wait", &root]).expect(4);
    assert!(out.stderr.contains("cancelled"), "{}", out.stderr);
}

#[test]
fn an_answer_its_gate_failed_is_no_success_when_read_back() {
    let env = Env::new();
    env.start("w", &["--driver", "exec", "--", "cat"]);
    let root = env
        .run(["send", "w", "--gate", "exit 1", "judged"])
        .ok()
        .stdout
        .trim()
        .to_string();
    until_workflow_done(&env, &root);
    let out = env.run(["result", &root]).expect(1);
    assert!(out.stderr.contains("the gate `exit 1`"), "{}", out.stderr);
    let listed = env.run(["results", "--all"]).ok().stdout;
    assert!(
        listed.contains(&format!("(task {root}, failed)")),
        "{listed}"
    );
}

#[test]
fn a_signal_as_send_hands_a_workflow_over_reaches_the_supervisor() {
    let env = Env::new();
    env.start_gated("g");
    env.start("next", &["--driver", "exec", "--", "cat"]);
    let send = spawn_paused(env.cmd(["send", "g | next", "two stages"]), "handed-off");
    // What `baton cancel ROOT` would send if it read send's pid just before the supervisor's.
    signal(send.id(), Signal::SIGTERM);
    signal(send.id(), Signal::SIGCONT);
    let (st, _, err) = finish(send, None, secs(10)).expect("send ends");
    // send says what became of what it sent: cancelled, by the supervisor it passed SIGTERM to.
    let err = String::from_utf8_lossy(&err);
    assert_eq!(st.code(), Some(4), "{err}");
    assert!(
        err.contains("SIGTERM") && err.contains("supervisor"),
        "{err}"
    );
    let root = env
        .task_ids()
        .first()
        .cloned()
        .expect("the workflow's first task");
    assert!(err.contains(&root), "{err}");
    until_workflow_done(&env, &root);
    let record: serde_json::Value =
        serde_json::from_slice(&fs::read(env.task_dir(&root).join("workflow.json")).unwrap())
            .unwrap();
    assert_eq!(record["state"], "cancelled", "{record}");
    assert!(env.tasks_of("next").is_empty());
}

#[test]
fn a_later_member_whose_delivery_failed_stays_in_the_workflows_outcome_when_read_back() {
    let env = Env::new();
    env.start_gated("g");
    for name in ["b", "c"] {
        env.start(name, &["--driver", "exec", "--", "cat"]);
    }
    let root = env.run(["send", "g | b,c", "two stages"]).ok().stdout;
    let root = root.trim();
    wait_until("stage 1 runs", secs(10), || env.started_count() == 1);
    // c's inbox is broken before stage 2 comes: its delivery fails, b's does not.
    let inbox = env.agent_dir("c").join("inbox/new");
    fs::remove_dir(&inbox).unwrap();
    fs::write(&inbox, "not a folder").unwrap();
    env.open_gate();
    let out = env.run(["wait", root]);
    assert_eq!(out.code(), 5, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("two stages"), "{}", out.stdout);
    assert!(out.stderr.contains("agent c (no task):"), "{}", out.stderr);
    // Read back later, the outcome is the same: c's failure is not lost with its missing folder.
    let again = env.run(["result", root]);
    assert_eq!(again.code(), 5, "{}{}", again.stdout, again.stderr);
    assert!(
        again.stderr.contains("agent c (no task):"),
        "{}",
        again.stderr
    );
    let c_of = |json: &str| {
        json_lines(json)
            .into_iter()
            .find(|e| e["agent"] == "c")
            .unwrap_or_else(|| panic!("no end of c in {json}"))
    };
    let c = c_of(&env.run(["result", root, "--json"]).stdout);
    assert_eq!(c["state"], "agent_lost", "{c}");
    assert!(c["task_id"].is_null(), "{c}");
    // It ended once: read back again, it ended at the same time.
    let again = c_of(&env.run(["result", root, "--json"]).stdout);
    assert_eq!(again["finished_at"], c["finished_at"], "{again} {c}");
    assert_eq!(again["finished_ms"], c["finished_ms"], "{again} {c}");
}

//! The tmux driver against real tmux and the interactive stand-in Claude Code: delivery proven by
//! hooks, completion by `Stop`, a person at the keyboard, permission dialogs, interrupted turns,
//! a lost Enter, a closed window, and `baton attach`.

use std::process::{Child, Stdio};

use crate::util::*;

/// Starts agent `coding` (tmux driver) with baton's hooks installed for the stand-in, or not.
fn start_tmux_agent(env: &Env, hooks: bool) {
    let home = env.claude_home();
    if hooks {
        let mut cmd = env.cmd(["install", "claude"]);
        cmd.env("HOME", &home);
        env.output(cmd, None).ok();
    }
    let mut cmd = env.cmd([
        "agent",
        "start",
        "coding",
        "--driver",
        "tmux",
        "--claude",
        STANDIN,
        "--env",
        &format!("HOME={}", home.display()),
    ]);
    cmd.env("TMUX_TMPDIR", env.tmux_dir())
        .env("BATON_TMUX_SUBMIT_WAIT", "700ms")
        .env("BATON_TMUX_START_WAIT", if hooks { "20s" } else { "300ms" });
    env.output(cmd, None).ok();
    if hooks {
        wait_until("the TUI is up", secs(10), || {
            env.status_json("coding")["status"] == "idle"
        });
    }
}

fn keys(env: &Env, keys: &[&str]) {
    let mut args = vec!["send-keys", "-t", "baton:coding"];
    args.extend_from_slice(keys);
    env.tmux(&args).ok();
}

fn ask_in_background(env: &Env, prompt: &str) -> Child {
    env.cmd(["ask", "coding", prompt])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish_ask(child: Child) -> (i32, String, String) {
    let (status, out, err) = finish(child, None, secs(20)).expect("ask finishes");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

/// The agent's UserPromptSubmit hook has fired for `prompt`: the TUI is in the turn.
fn turn_started(env: &Env, prompt: &str) -> bool {
    env.tmux(&["capture-pane", "-p", "-t", "baton:coding"])
        .stdout
        .contains(&format!("working on: {prompt}"))
}

fn current_task(env: &Env) -> String {
    env.status_json("coding")["current_task"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_prompt_is_pasted_submitted_and_answered_through_the_hooks() {
    if !have(&["tmux", "python3"]) {
        return;
    }
    let env = Env::new();
    start_tmux_agent(&env, true);
    let windows = env
        .tmux(&["list-windows", "-t", "baton", "-F", "#{window_name}"])
        .ok();
    assert_eq!(windows.stdout.trim(), "coding");
    assert_eq!(env.status_json("coding")["window_id"], "baton:coding");
    assert_eq!(
        env.run(["ask", "coding", "hello"]).ok().stdout,
        "turn 1: hello (I remember: nothing yet)\n"
    );
    let out = env.run(["ask", "coding", "line one\nline two"]).ok();
    assert!(out.stdout.starts_with("turn 2: line one"), "{}", out.stdout);
    assert!(
        out.stdout.ends_with("(I remember: hello)\n"),
        "{}",
        out.stdout
    );
    // The person sees it all in the window.
    let screen = env
        .tmux(&["capture-pane", "-p", "-t", "baton:coding"])
        .ok()
        .stdout;
    assert!(screen.contains("turn 1: hello"), "{screen}");
    // The agent's environment is scrubbed there too.
    env.run(["agent", "stop", "coding"]).ok();
    assert!(
        env.tmux(&["list-windows", "-t", "baton"]).code() != 0,
        "the window went with the runner"
    );
}

#[test]
fn a_person_at_the_keyboard_blocks_the_agent_and_tasks_wait() {
    if !have(&["tmux", "python3"]) {
        return;
    }
    let env = Env::new();
    start_tmux_agent(&env, true);
    keys(&env, &["STALL typed by hand", "Enter"]);
    wait_until("the agent is blocked by a person", secs(10), || {
        current_task(&env) == "in use by a person"
    });
    assert_eq!(env.status_json("coding")["status"], "blocked");
    let ask = ask_in_background(&env, "queued task");
    wait_until("the task is queued", secs(10), || {
        env.inbox("coding", "new").len() == 1
    });
    assert!(env
        .run(["status"])
        .ok()
        .stdout
        .contains("in use by a person"));
    // Esc interrupts the person's turn (no Stop); the agent is free once it is idle again.
    keys(&env, &["Escape"]);
    assert_eq!(
        env.inbox("coding", "new").len(),
        1,
        "still waiting: no Stop came"
    );
    keys(&env, &["C-n"]); // the idle_prompt notification
    let (code, out, err) = finish_ask(ask);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("turn 1: queued task"), "{out}");
}

#[test]
fn stop_failure_fails_the_task_with_the_error_kind() {
    if !have(&["tmux", "python3"]) {
        return;
    }
    let env = Env::new();
    start_tmux_agent(&env, true);
    let out = env.run(["ask", "coding", "please FAIL"]).expect(1);
    assert!(out.stderr.contains("rate_limit"), "{}", out.stderr);
    assert_eq!(
        env.run(["ask", "coding", "recovered"]).ok().stdout,
        "turn 1: recovered (I remember: nothing yet)\n"
    );
}

#[test]
fn a_permission_dialog_blocks_until_a_person_answers_it() {
    if !have(&["tmux", "python3"]) {
        return;
    }
    let env = Env::new();
    start_tmux_agent(&env, true);
    let ask = ask_in_background(&env, "PERMISSION to run ls");
    wait_until("the agent waits for permission", secs(10), || {
        current_task(&env).contains("waiting for permission in tmux window baton:coding")
    });
    assert_eq!(env.status_json("coding")["status"], "blocked");
    keys(&env, &["y"]);
    let (code, out, err) = finish_ask(ask);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("turn 1: PERMISSION to run ls"), "{out}");
}

#[test]
fn an_interrupted_turn_fails_once_the_agent_is_idle_again() {
    if !have(&["tmux", "python3"]) {
        return;
    }
    let env = Env::new();
    start_tmux_agent(&env, true);
    let ask = ask_in_background(&env, "STALL for ever");
    wait_until("the turn is under way", secs(10), || {
        turn_started(&env, "STALL for ever")
    });
    keys(&env, &["Escape"]);
    keys(&env, &["C-n"]);
    let (code, _, err) = finish_ask(ask);
    assert_eq!(code, 1);
    assert!(err.contains("interrupted"), "{err}");
    assert_eq!(
        env.run(["ask", "coding", "next"]).ok().stdout,
        "turn 1: next (I remember: nothing yet)\n"
    );
}

#[test]
fn a_lost_enter_is_sent_once_more() {
    if !have(&["tmux", "python3"]) {
        return;
    }
    let env = Env::new();
    start_tmux_agent(&env, true);
    let out = env.run(["ask", "coding", "SLOWPASTE hello"]).ok();
    assert!(
        out.stdout.starts_with("turn 1: SLOWPASTE hello"),
        "{}",
        out.stdout
    );
    assert!(
        out.elapsed >= std::time::Duration::from_millis(700),
        "the retry came after the wait"
    );
}

#[test]
fn without_hooks_a_delivery_fails_with_a_clear_reason() {
    if !have(&["tmux", "python3"]) {
        return;
    }
    let env = Env::new();
    start_tmux_agent(&env, false);
    let out = env.run(["ask", "coding", "anyone?"]).expect(1);
    assert!(
        out.stderr.contains("never submitted") && out.stderr.contains("baton install claude"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_closed_window_fails_the_task_and_stops_the_runner() {
    if !have(&["tmux", "python3"]) {
        return;
    }
    let env = Env::new();
    start_tmux_agent(&env, true);
    let ask = ask_in_background(&env, "STALL then quit");
    wait_until("the turn is under way", secs(10), || {
        turn_started(&env, "STALL then quit")
    });
    keys(&env, &["Escape"]);
    keys(&env, &["C-d"]); // the TUI exits; the window closes
    let (code, _, err) = finish_ask(ask);
    assert_ne!(code, 0);
    assert!(
        err.contains("window baton:coding closed") || err.contains("died"),
        "{err}"
    );
    wait_until("the runner stops", secs(10), || {
        !runner_alive(&env.agent_dir("coding").join("lock"))
    });
    assert_eq!(env.status_json("coding")["status"], "stopped");
}

#[test]
fn attach_shows_the_agents_window_on_this_terminal() {
    if !have(&["tmux", "python3"]) {
        return;
    }
    let env = Env::new();
    start_tmux_agent(&env, true);
    env.run(["ask", "coding", "visible work"]).ok();
    // A second, separate tmux server plays the person's terminal: a pane running `baton attach`.
    let viewer = env.path("viewer.sock");
    let mut cmd = std::process::Command::new("tmux");
    scrub(&mut cmd);
    cmd.arg("-S")
        .arg(&viewer)
        .args(["new-session", "-d", "-x", "100", "-y", "30"])
        .arg(format!(
            "env -u TMUX BATON_HOME='{}' '{}' attach coding",
            env.home.display(),
            BIN
        ));
    env.output(cmd, None).ok();
    wait_until(
        "a client is attached to the agent's window",
        secs(10),
        || {
            env.tmux(&["list-clients", "-t", "baton", "-F", "#{client_session}"])
                .stdout
                .contains("baton")
        },
    );
    let _ = std::process::Command::new("tmux")
        .arg("-S")
        .arg(&viewer)
        .arg("kill-server")
        .output();
    assert!(env
        .run(["attach", "nosuch"])
        .expect(2)
        .stderr
        .contains("unknown agent"));
    env.start("sh1", &[]);
    assert!(env
        .run(["attach", "sh1"])
        .expect(2)
        .stderr
        .contains("no tmux window"));
}

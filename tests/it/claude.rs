//! The claude driver (a persistent headless session), `baton hook`, and `baton install claude`,
//! against the stand-in Claude Code.

use std::fs;

use crate::util::*;

fn start_claude(env: &Env, name: &str) {
    let home = format!("HOME={}", env.claude_home().display());
    env.start(
        name,
        &["--driver", "claude", "--claude", STANDIN, "--env", &home],
    );
}

#[test]
fn a_claude_agent_keeps_its_context_and_records_its_session() {
    if !have(&["python3"]) {
        return;
    }
    let env = Env::new();
    start_claude(&env, "pl");
    assert!(env
        .run(["ask", "pl", "plan dark mode"])
        .ok()
        .stdout
        .starts_with("turn 1: plan dark mode"));
    let out = env.run(["ask", "pl", "and tests"]).ok();
    assert_eq!(
        out.stdout,
        "turn 2: and tests (I remember: plan dark mode)\n"
    );
    let session = fs::read_to_string(env.agent_dir("pl").join("session_id")).unwrap();
    let summary = env.status_json("pl")["context_summary"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        summary.contains(session.trim()) && summary.contains("2 turn(s)"),
        "{summary}"
    );
    assert_eq!(env.status_json("pl")["driver"], "claude");
    // One process served both turns.
    assert_eq!(env.claude_starts().len(), 1);
    assert!(env.claude_starts()[0].contains(&format!("--session-id {}", session.trim())));
}

#[test]
fn a_claude_that_dies_fails_the_task_and_the_next_resumes_the_session() {
    if !have(&["python3"]) {
        return;
    }
    let env = Env::new();
    start_claude(&env, "pl");
    env.run(["ask", "pl", "remember the number 7"]).ok();
    let out = env.run(["ask", "pl", "now DIE"]).expect(1);
    assert!(
        out.stderr.contains("claude exited") && out.stderr.contains("resumes session"),
        "{}",
        out.stderr
    );
    let out = env.run(["ask", "pl", "what was it?"]).ok();
    assert!(
        out.stdout.contains("I remember: remember the number 7"),
        "{}",
        out.stdout
    );
    let starts = env.claude_starts();
    assert_eq!(starts.len(), 2);
    assert!(starts[1].contains("--resume"), "{starts:?}");
}

#[test]
fn an_error_result_fails_the_task_with_its_reason() {
    if !have(&["python3"]) {
        return;
    }
    let env = Env::new();
    start_claude(&env, "pl");
    let out = env.run(["ask", "pl", "please FAIL"]).expect(1);
    assert!(
        out.stderr.contains("error_during_execution") && out.stderr.contains("told to fail"),
        "{}",
        out.stderr
    );
    env.run(["ask", "pl", "still here?"]).ok();
}

#[test]
fn a_hung_turn_times_out_and_the_session_goes_on() {
    if !have(&["python3"]) {
        return;
    }
    let env = Env::new();
    start_claude(&env, "pl");
    env.run(["ask", "pl", "first"]).ok();
    env.run(["ask", "pl", "HANG", "--timeout", "1s"]).expect(3);
    let out = env.run(["ask", "pl", "after"]).ok();
    assert!(out.stdout.contains("I remember: first"), "{}", out.stdout);
}

#[test]
fn reset_starts_a_fresh_session_live_or_stopped() {
    if !have(&["python3"]) {
        return;
    }
    let env = Env::new();
    start_claude(&env, "pl");
    env.run(["ask", "pl", "old context"]).ok();
    assert!(env
        .run(["agent", "reset", "pl"])
        .ok()
        .stdout
        .contains("new claude session"));
    assert!(env
        .run(["ask", "pl", "fresh?"])
        .ok()
        .stdout
        .contains("I remember: nothing yet"));
    env.run(["agent", "stop", "pl"]).ok();
    env.run(["agent", "reset", "pl"]).ok();
    start_claude(&env, "pl");
    assert!(env
        .run(["ask", "pl", "fresh again?"])
        .ok()
        .stdout
        .contains("I remember: nothing yet"));
    // Other drivers keep no session.
    env.start("sh1", &[]);
    assert!(env
        .run(["agent", "reset", "sh1"])
        .expect(2)
        .stderr
        .contains("no session"));
}

#[test]
fn a_missing_claude_is_an_error_at_start() {
    if !have(&["python3"]) {
        return;
    }
    let env = Env::new();
    let out = env
        .run([
            "agent",
            "start",
            "pl",
            "--driver",
            "claude",
            "--claude",
            "/no/such/claude",
        ])
        .expect(2);
    assert!(
        out.stderr.contains("cannot find Claude Code"),
        "{}",
        out.stderr
    );
    let out = env
        .run([
            "agent",
            "start",
            "tm",
            "--driver",
            "tmux",
            "--claude",
            "/no/such/claude",
        ])
        .expect(2);
    assert!(
        out.stderr.contains("cannot find Claude Code"),
        "{}",
        out.stderr
    );
}

#[test]
fn hooks_do_nothing_outside_an_agent_and_never_fail() {
    if !have(&["python3"]) {
        return;
    }
    let env = Env::new();
    env.start("sh1", &[]);
    let event = br#"{"hook_event_name":"Stop","last_assistant_message":"hi","session_id":"s"}"#;
    // Outside an agent: nothing happens.
    env.run_stdin(["hook", "claude-stop"], event).ok();
    assert!(!env.agent_dir("sh1").join("events").exists());
    // Inside: malformed input is noted in the log, never an error.
    let mut cmd = env.cmd(["hook", "claude-stop"]);
    cmd.env("BATON_AGENT", "sh1");
    let out = env.output(cmd, Some(b"{not json".to_vec())).ok();
    assert!(out.stdout.is_empty());
    let log = fs::read_to_string(env.agent_dir("sh1").join("log")).unwrap();
    assert!(
        log.contains("hook claude-stop: ignored a malformed event"),
        "{log}"
    );
    let mut cmd = env.cmd(["hook", "claude-stop"]);
    cmd.env("BATON_AGENT", "sh1");
    env.output(cmd, Some(br#"{"hook_event_name":"Notification"}"#.to_vec()))
        .ok();
    let log = fs::read_to_string(env.agent_dir("sh1").join("log")).unwrap();
    assert!(log.contains("expected \"Stop\""), "{log}");
    // A well-formed event is handed over as a file.
    let mut cmd = env.cmd(["hook", "claude-stop"]);
    cmd.env("BATON_AGENT", "sh1");
    let out = env.output(cmd, Some(event.to_vec())).ok();
    assert!(out.elapsed < secs(2));
    assert_eq!(
        fs::read_dir(env.agent_dir("sh1").join("events"))
            .unwrap()
            .count(),
        1
    );
    assert!(env
        .run(["hook", "nonsense"])
        .expect(2)
        .stderr
        .contains("unknown hook"));
}

#[test]
fn install_merges_idempotently_keeps_everything_else_and_uninstall_removes_exactly_it() {
    if !have(&["python3"]) {
        return;
    }
    let env = Env::new();
    let home = env.claude_home();
    let settings = home.join(".claude/settings.json");
    fs::create_dir_all(settings.parent().unwrap()).unwrap();
    let original = r#"{"model": "opus", "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}],
        "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "guard.sh"}]}]}}"#;
    fs::write(&settings, original).unwrap();
    let install = |args: &[&str]| {
        let mut all = vec!["install", "claude"];
        all.extend_from_slice(args);
        let mut cmd = env.cmd(all);
        cmd.env("HOME", &home);
        env.output(cmd, None)
    };
    // --dry-run shows the change and writes nothing.
    let out = install(&["--dry-run"]).ok();
    assert!(
        out.stdout.contains("+ ") && out.stdout.contains("hook claude-stop"),
        "{}",
        out.stdout
    );
    assert_eq!(fs::read_to_string(&settings).unwrap(), original);
    let out = install(&[]).ok();
    assert!(
        out.stdout.contains("VISUAL=baton") && out.stdout.contains("BATON_EDITOR"),
        "{}",
        out.stdout
    );
    let after: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&settings).unwrap()).unwrap();
    assert_eq!(after["model"], "opus");
    assert_eq!(
        after["hooks"]["PreToolUse"][0]["hooks"][0]["command"],
        "guard.sh"
    );
    let stop = after["hooks"]["Stop"].to_string();
    assert!(
        stop.contains("notify-send done") && stop.contains("hook claude-stop"),
        "{stop}"
    );
    for kind in [
        "claude-session-start",
        "claude-prompt",
        "claude-stop-failure",
        "claude-notification",
    ] {
        assert!(
            after["hooks"].to_string().contains(&format!("hook {kind}")),
            "{kind}"
        );
    }
    let backup = fs::read_to_string(home.join(".claude/settings.json.baton-backup")).unwrap();
    assert_eq!(backup, original);
    // Twice changes nothing.
    let before_second = fs::read_to_string(&settings).unwrap();
    assert!(install(&[]).ok().stdout.contains("already"));
    assert_eq!(fs::read_to_string(&settings).unwrap(), before_second);
    // Uninstall takes exactly what was added.
    let mut cmd = env.cmd(["uninstall", "claude"]);
    cmd.env("HOME", &home);
    env.output(cmd, None).ok();
    let restored: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&settings).unwrap()).unwrap();
    assert_eq!(
        restored,
        serde_json::from_str::<serde_json::Value>(original).unwrap()
    );
}

#[test]
fn install_into_a_project_and_refuse_a_malformed_file() {
    if !have(&["python3"]) {
        return;
    }
    let env = Env::new();
    let project = env.path("proj");
    env.run(["install", "claude", "--project", project.to_str().unwrap()])
        .ok();
    let written: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(project.join(".claude/settings.json")).unwrap())
            .unwrap();
    // The shipped fragment lists exactly the events install writes.
    let fragment: serde_json::Value =
        serde_json::from_str(include_str!("../../hooks/claude/settings.json")).unwrap();
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v["hooks"].as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&written), keys(&fragment));
    fs::write(project.join(".claude/settings.json"), "{broken").unwrap();
    let out = env
        .run(["install", "claude", "--project", project.to_str().unwrap()])
        .expect(2);
    assert!(
        out.stderr.contains("not valid JSON") && out.stderr.contains("not changed"),
        "{}",
        out.stderr
    );
    assert_eq!(
        fs::read_to_string(project.join(".claude/settings.json")).unwrap(),
        "{broken"
    );
}

#[test]
fn install_chief_adds_the_chiefs_hooks_as_shipped_and_uninstall_takes_them_out() {
    let env = Env::new();
    let project = env.path("proj");
    let dir = project.to_str().unwrap();
    env.run(["install", "claude", "--project", dir, "--chief"])
        .ok();
    let settings = project.join(".claude/settings.json");
    let written: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&settings).unwrap()).unwrap();
    let chief: serde_json::Value =
        serde_json::from_str(include_str!("../../hooks/claude/chief-settings.json")).unwrap();
    // Each of the chief's entries is there as shipped, with this baton's path for `baton`.
    for (event, groups) in chief["hooks"].as_object().unwrap() {
        let want = &groups[0]["hooks"][0];
        let kind = want["command"]
            .as_str()
            .unwrap()
            .trim_start_matches("baton ");
        let found: Vec<&serde_json::Value> = written["hooks"][event]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["hooks"].as_array().unwrap())
            .filter(|h| h["command"].as_str().unwrap().ends_with(kind))
            .collect();
        assert_eq!(found.len(), 1, "{event}: {written:#}");
        assert_eq!(found[0]["asyncRewake"], want["asyncRewake"], "{event}");
        assert_eq!(found[0]["timeout"], want["timeout"], "{event}");
    }
    let again = env
        .run(["install", "claude", "--project", dir, "--chief"])
        .ok();
    assert!(again.stdout.contains("already"), "{}", again.stdout);
    env.run(["uninstall", "claude", "--project", dir]).ok();
    let left: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&settings).unwrap()).unwrap();
    assert_eq!(left, serde_json::json!({}));
}

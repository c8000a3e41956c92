//! Editor mode: the file after success, after every failure and every signal; pass-through by
//! exec (same PID); routing rules; git as the caller.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use nix::sys::signal::Signal;

use crate::util::*;

/// A stand-in editor that records its PID and arguments, proving pass-through happened.
fn stand_in_editor(env: &Env) -> PathBuf {
    env.script(
        "editor.sh",
        &format!(
            "#!/bin/sh\necho $$ > '{0}/editor.pid'\necho \"$@\" > '{0}/editor.args'\n",
            env.dir.path().display()
        ),
    )
}

fn prompt_file(env: &Env, text: &str) -> PathBuf {
    let p = env.path("claude-prompt-1234.md");
    fs::write(&p, text).expect("writing the prompt");
    p
}

fn edit(env: &Env, file: &PathBuf) -> Out {
    let mut cmd = env.cmd([file]);
    cmd.env("BATON_EDITOR", stand_in_editor(env));
    env.output(cmd, None)
}

#[test]
fn a_directive_is_answered_in_the_file() {
    let env = Env::new();
    env.start("rev", &["--driver", "exec", "--", "tr", "a-z", "A-Z"]);
    let file = prompt_file(&env, "@rev please shout\n");
    edit(&env, &file).ok();
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        "@rev replied:\nPLEASE SHOUT\n"
    );
    assert!(
        !env.path("editor.pid").exists(),
        "the real editor was not run"
    );
}

#[test]
fn fan_out_writes_every_answer() {
    let env = Env::new();
    env.start("up", &["--driver", "exec", "--", "tr", "a-z", "A-Z"]);
    env.start("sh1", &[]);
    let file = prompt_file(&env, "@up @sh1 echo hi");
    edit(&env, &file).ok();
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        "@up replied:\nECHO HI\n\n@sh1 replied:\nhi\n"
    );
}

#[test]
fn a_directive_behind_claude_codes_context_marker_is_found() {
    let env = Env::new();
    env.start("sh1", &[]);
    let text = "# Earlier reply from Claude\n# @notthis\n# ─── Write your reply below this line ─────────\n@sh1 echo routed";
    let file = prompt_file(&env, text);
    edit(&env, &file).ok();
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        "@sh1 replied:\nrouted\n"
    );
}

#[test]
fn pass_through_keeps_the_pid_and_the_arguments() {
    let env = Env::new();
    env.start("sh1", &[]);
    for text in [
        "no directive here",
        "@docs/readme.md explain this",
        "@nosuch hello",
        "  hello @sh1",
    ] {
        let file = prompt_file(&env, text);
        let _ = fs::remove_file(env.path("editor.pid"));
        let mut cmd = env.cmd([&file]);
        cmd.env("BATON_EDITOR", stand_in_editor(&env))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("spawn");
        let status = wait_child(&mut child, HARD_TIMEOUT).expect("the editor exits");
        assert!(status.success(), "{text}");
        let pid: u32 = fs::read_to_string(env.path("editor.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(
            pid,
            child.id(),
            "the editor ran in baton's own process for {text:?}"
        );
        assert_eq!(
            fs::read_to_string(env.path("editor.args")).unwrap().trim(),
            file.display().to_string()
        );
        assert_eq!(fs::read_to_string(&file).unwrap(), text, "untouched");
    }
}

#[test]
fn inside_an_agent_editor_mode_never_routes() {
    let env = Env::new();
    env.start("sh1", &[]);
    let file = prompt_file(&env, "@sh1 echo would deadlock");
    let mut cmd = env.cmd([&file]);
    cmd.env("BATON_EDITOR", stand_in_editor(&env))
        .env("BATON_AGENT", "sh1");
    env.output(cmd, None).ok();
    assert!(env.path("editor.pid").exists(), "passed through");
    assert!(env.task_ids().is_empty(), "nothing delivered");
}

#[test]
fn baton_editor_pointing_at_baton_or_nothing_is_refused() {
    let env = Env::new();
    let file = prompt_file(&env, "plain text");
    let link = env.path("vim");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    for (value, says) in [
        (BIN.to_string(), "baton itself"),
        (link.display().to_string(), "baton itself"),
        ("/no/such/editor".to_string(), "names no program"),
    ] {
        let mut cmd = env.cmd([&file]);
        cmd.env("BATON_EDITOR", &value);
        let out = env.output(cmd, None).expect(2);
        assert!(out.stderr.contains(says), "{}", out.stderr);
        assert_eq!(fs::read_to_string(&file).unwrap(), "plain text");
    }
}

#[test]
fn a_relative_path_or_a_file_named_like_a_command_is_editor_mode() {
    let env = Env::new();
    env.start("sh1", &[]);
    fs::create_dir(env.path(".git")).unwrap();
    fs::write(env.path(".git/COMMIT_EDITMSG"), "@sh1 echo relative").unwrap();
    env.run([".git/COMMIT_EDITMSG"]).ok();
    // git's own files get the answer alone, with no line naming the agent.
    assert_eq!(
        fs::read_to_string(env.path(".git/COMMIT_EDITMSG")).unwrap(),
        "relative\n"
    );
    fs::write(env.path("status"), "@sh1 echo named status").unwrap();
    env.run(["status"]).ok();
    assert_eq!(
        fs::read_to_string(env.path("status")).unwrap(),
        "@sh1 replied:\nnamed status\n"
    );
}

/// Every failure leaves the file byte for byte as it was, with the documented exit code.
#[test]
fn every_failure_leaves_the_file_intact() {
    let env = Env::new();
    env.start("sh1", &[]);
    env.start("dead", &[]);
    env.run(["agent", "stop", "dead"]).ok();
    let original = "@sh1 something\r\nwith odd bytes \u{1F600}\n\n  trailing  ";
    let cases: Vec<(&str, String, i32)> = vec![
        (
            "agent fails",
            "@sh1 echo nope; exit_with() { return 4; }; exit_with".into(),
            1,
        ),
        ("agent not running", "@dead echo hi".into(), 5),
        ("empty task", "@sh1   \n\n".into(), 2),
        ("odd bytes", format!("@sh1 false\n{original}"), 1),
    ];
    for (what, text, code) in cases {
        let file = prompt_file(&env, &text);
        let out = edit(&env, &file).expect(code);
        assert!(!out.stderr.is_empty(), "{what}: the reason is told");
        assert_eq!(fs::read(&file).unwrap(), text.as_bytes(), "{what}");
    }
    // Timeout (exit 3): the task is cancelled in the runner.
    let file = prompt_file(&env, "@sh1 sleep 20");
    let mut cmd = env.cmd([&file]);
    cmd.env("BATON_TIMEOUT", "300ms");
    let out = env.output(cmd, None).expect(3);
    assert_eq!(fs::read_to_string(&file).unwrap(), "@sh1 sleep 20");
    assert!(out.elapsed < secs(10));
}

#[test]
fn a_bad_state_folder_is_refused_and_the_file_kept() {
    let env = Env::new();
    fs::create_dir_all(&env.home).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&env.home, fs::Permissions::from_mode(0o777)).unwrap();
    let file = prompt_file(&env, "@sh1 hi");
    let out = env.run([&file]).expect(2);
    assert!(
        out.stderr.contains("writable by group or others")
            && out.stderr.contains(&env.home.display().to_string()),
        "{}",
        out.stderr
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), "@sh1 hi");
}

#[test]
fn each_signal_cancels_and_leaves_the_file_intact() {
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        let env = Env::new();
        env.start_gated("g");
        let text = "@g keep me\nexactly";
        let file = prompt_file(&env, text);
        let mut child = env
            .cmd([&file])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_until("the agent has the task", secs(10), || {
            env.started_count() == 1
        });
        signal(child.id(), sig);
        let status = wait_child(&mut child, secs(10)).expect("baton exits");
        assert_eq!(status.code(), Some(4), "{sig:?}");
        assert_eq!(fs::read_to_string(&file).unwrap(), text, "{sig:?}");
        let id = env.task_ids().pop().unwrap();
        wait_until("the runner records the cancellation", secs(10), || {
            env.task_dir(&id).join("done.json").exists()
        });
        assert_eq!(env.done_json(&id)["state"], "cancelled", "{sig:?}");
    }
}

#[test]
fn a_signal_before_the_task_is_claimed_withdraws_it() {
    let env = Env::new();
    env.start_gated("g");
    env.run(["send", "g", "blocker"]).ok();
    wait_until("the blocker runs", secs(10), || env.started_count() == 1);
    let file = prompt_file(&env, "@g queued behind");
    let mut child = env
        .cmd([&file])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the task is queued", secs(10), || {
        env.inbox("g", "new").len() == 1
    });
    signal(child.id(), Signal::SIGTERM);
    assert_eq!(wait_child(&mut child, secs(10)).unwrap().code(), Some(4));
    assert!(env.inbox("g", "new").is_empty(), "withdrawn from the inbox");
    assert_eq!(fs::read_to_string(&file).unwrap(), "@g queued behind");
    env.open_gate();
    // The runner never runs the withdrawn task.
    let ids = env.task_ids();
    let withdrawn = ids
        .iter()
        .find(|id| fs::read_to_string(env.task_dir(id).join("prompt")).unwrap() == "queued behind")
        .unwrap();
    assert_eq!(env.done_json(withdrawn)["state"], "cancelled");
    wait_until("the blocker finishes", secs(10), || {
        env.status_json("g")["tasks_done"] == 1
    });
    assert_eq!(env.started_count(), 1);
}

#[test]
fn git_commit_with_baton_as_core_editor() {
    if !have(&["git"]) {
        return;
    }
    let env = Env::new();
    env.start(
        "msg",
        &[
            "--driver",
            "exec",
            "--",
            "sh",
            "-c",
            "echo 'Add the greeting file'",
        ],
    );
    let repo = env.path("repo");
    let git = |args: &[&str]| {
        let mut cmd = Command::new("git");
        scrub(&mut cmd);
        cmd.args(args)
            .current_dir(&repo)
            .env("BATON_HOME", &env.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", env.dir.path())
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com");
        env.output(cmd, None)
    };
    fs::create_dir(&repo).unwrap();
    git(&["init", "-q"]).ok();
    fs::write(repo.join("hello.txt"), "hi\n").unwrap();
    git(&["add", "hello.txt"]).ok();
    // git writes its template into COMMIT_EDITMSG; a hook-free way to start it with a directive
    // is a commit template.
    fs::write(env.path("template"), "@msg write the message\n").unwrap();
    git(&[
        "-c",
        &format!("core.editor={BIN}"),
        "-c",
        &format!("commit.template={}", env.path("template").display()),
        "commit",
        "-q",
    ])
    .ok();
    let log = git(&["log", "-1", "--format=%s"]).ok();
    assert_eq!(log.stdout.trim(), "Add the greeting file");
    // A failing agent aborts the commit: git sees baton's non-zero exit.
    env.start("bad", &["--driver", "exec", "--", "false"]);
    fs::write(repo.join("two.txt"), "2\n").unwrap();
    git(&["add", "two.txt"]).ok();
    fs::write(env.path("template"), "@bad write the message\n").unwrap();
    let out = git(&[
        "-c",
        &format!("core.editor={BIN}"),
        "-c",
        &format!("commit.template={}", env.path("template").display()),
        "commit",
        "-q",
    ]);
    assert_ne!(out.code(), 0, "the commit is aborted");
    assert_eq!(
        git(&["rev-list", "--count", "HEAD"]).ok().stdout.trim(),
        "1"
    );
}

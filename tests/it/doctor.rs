//! `baton doctor`: a good setup passes (exit 0); each broken one — a state folder others can
//! write, `BATON_EDITOR=baton`, tmux missing from PATH while an agent needs it, a runner that
//! died with its state left behind, half of Claude Code's hooks — gets its ✗ and its fix (exit
//! 1); following the fix makes the check pass again.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

/// `baton doctor ARGS` with a HOME of the test's own (no Claude Code settings, no user config)
/// and `extra` variables.
fn doctor(env: &Env, args: &[&str], extra: &[(&str, &str)]) -> Out {
    let home = env.path("home");
    fs::create_dir_all(&home).unwrap();
    let mut cmd = env.cmd(["doctor"].iter().chain(args));
    cmd.env("HOME", &home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("NO_COLOR");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    env.output(cmd, None)
}

/// The line of check `name`, panicking with the whole report if there is none.
#[track_caller]
fn line<'a>(out: &'a Out, mark: &str, name: &str) -> &'a str {
    out.stdout
        .lines()
        .find(|l| l.starts_with(&format!("{mark} {name}")))
        .unwrap_or_else(|| panic!("no `{mark} {name}` line\n{}", out.context))
}

/// An editor for BATON_EDITOR: a script (doctor only checks that it is a program).
fn an_editor(env: &Env) -> String {
    env.script("editor.sh", "#!/bin/sh\nexit 0\n")
        .display()
        .to_string()
}

#[test]
fn a_good_setup_passes_with_exit_0() {
    let env = Env::new();
    env.start("sh1", &[]);
    let editor = an_editor(&env);
    let out = doctor(&env, &[], &[("BATON_EDITOR", &editor)]).ok();
    assert!(out.stdout.ends_with("all is well\n"), "{}", out.stdout);
    assert!(!out.stdout.contains('✗'), "{}", out.stdout);
    assert!(line(&out, "✓", "state folder").contains("mode 0700"));
    assert!(line(&out, "✓", "pass-through editor").contains(&editor));
    assert!(line(&out, "✓", "runners").contains("1 running"));
    assert!(
        !out.stdout.contains('\x1b'),
        "no colour when not on a terminal"
    );
    let json = doctor(&env, &["--json"], &[("BATON_EDITOR", &editor)]).ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert!(v["checks"].as_array().unwrap().len() >= 8);
}

#[test]
fn a_state_folder_others_can_write_is_a_failure_with_its_fix() {
    let env = Env::new();
    env.start("sh1", &[]);
    env.run(["agent", "stop", "sh1"]).ok();
    let agent = env.agent_dir("sh1");
    fs::set_permissions(&agent, fs::Permissions::from_mode(0o770)).unwrap();
    let editor = an_editor(&env);
    let out = doctor(&env, &[], &[("BATON_EDITOR", &editor)]).expect(1);
    let bad = line(&out, "✗", "state folder");
    assert!(bad.contains("writable by group or others"), "{bad}");
    assert!(
        bad.contains(&format!("fix: chmod 700 {}", agent.display())),
        "{bad}"
    );
    let json = doctor(&env, &["--json"], &[("BATON_EDITOR", &editor)]).expect(1);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let failed: Vec<_> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .collect();
    assert_eq!(failed.len(), 1, "{}", json.stdout);
    assert!(failed[0]["fix"].as_str().unwrap().starts_with("chmod 700"));
    // The fix, followed.
    fs::set_permissions(&agent, fs::Permissions::from_mode(0o700)).unwrap();
    doctor(&env, &[], &[("BATON_EDITOR", &editor)]).ok();
}

#[test]
fn baton_editor_set_to_baton_itself_is_caught() {
    let env = Env::new();
    // As a user would have it: baton on PATH, and BATON_EDITOR naming it.
    let bin_dir = Path::new(BIN).parent().unwrap().display().to_string();
    let path = format!("{bin_dir}:{}", std::env::var("PATH").unwrap_or_default());
    let out = doctor(
        &env,
        &[],
        &[
            ("PATH", &path),
            ("BATON_EDITOR", "baton"),
            ("VISUAL", "baton"),
        ],
    )
    .expect(1);
    let bad = line(&out, "✗", "pass-through editor");
    assert!(bad.contains("baton itself"), "{bad}");
    assert!(bad.contains("fix: export BATON_EDITOR="), "{bad}");
    // VISUAL=baton is how it should be.
    assert!(line(&out, "✓", "editor (VISUAL/EDITOR)").contains("VISUAL=baton"));
    // So is VISUAL=baton-edit (INSTALL.md's), and BATON_EDITOR naming it is baton all the same.
    let out = doctor(
        &env,
        &[],
        &[
            ("PATH", &path),
            ("BATON_EDITOR", "baton-edit"),
            ("VISUAL", "baton-edit"),
        ],
    )
    .expect(1);
    assert!(line(&out, "✗", "pass-through editor").contains("baton itself"));
    assert!(line(&out, "✓", "editor (VISUAL/EDITOR)").contains("VISUAL=baton-edit"));
}

/// A PATH with only the programs doctor's other checks use, and no tmux.
fn path_without_tmux(env: &Env) -> String {
    let dir = env.path("bin");
    fs::create_dir_all(&dir).unwrap();
    for program in ["sh", "vi"] {
        if let Ok(found) = Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .output()
        {
            let target = String::from_utf8_lossy(&found.stdout).trim().to_string();
            if !target.is_empty() {
                let _ = std::os::unix::fs::symlink(target, dir.join(program));
            }
        }
    }
    dir.display().to_string()
}

#[test]
fn tmux_missing_from_path_is_a_failure_when_an_agent_needs_it() {
    let env = Env::new();
    let editor = an_editor(&env);
    let path = path_without_tmux(&env);
    let vars = [("PATH", path.as_str()), ("BATON_EDITOR", editor.as_str())];
    // No agent needs tmux: a note, and all is well.
    let out = doctor(&env, &[], &vars).ok();
    assert!(line(&out, "–", "tmux").contains("not on PATH"));
    // A declared tmux agent needs it.
    let project = env.path("proj");
    fs::create_dir_all(&project).unwrap();
    fs::write(
        project.join(".baton.toml"),
        "[agent.tui]\ndriver = \"tmux\"\n",
    )
    .unwrap();
    let mut cmd = env.cmd(["doctor"]);
    cmd.current_dir(&project)
        .env("HOME", env.path("home"))
        .env_remove("XDG_CONFIG_HOME");
    fs::create_dir_all(env.path("home")).unwrap();
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = env.output(cmd, None).expect(1);
    let bad = line(&out, "✗", "tmux");
    assert!(
        bad.contains("not on PATH") && bad.contains("agent tui"),
        "{bad}"
    );
    assert!(bad.contains("fix: install tmux"), "{bad}");
    // And its hooks in Claude Code, which the tmux driver needs.
    let hooks = line(&out, "✗", "Claude Code hooks");
    assert!(hooks.contains("fix: `baton install claude`"), "{hooks}");
    assert!(line(&out, "✓", "config").contains(".baton.toml"));
}

#[test]
fn a_runner_that_died_leaving_its_state_is_reported_and_the_fix_works() {
    let env = Env::new();
    let editor = an_editor(&env);
    let vars = [("BATON_EDITOR", editor.as_str())];
    env.start_gated("g");
    env.send("g", "held");
    wait_until("the task has started", secs(10), || {
        env.started_count() == 1
    });
    // The runner says so once it has started the task (the agent may get there first).
    wait_until("the runner says it is working", secs(10), || {
        env.status_json("g")["status"] == "working"
    });
    let pid = env.runner_pid("g") as u32;
    signal(pid, nix::sys::signal::Signal::SIGKILL);
    wait_until("the runner is gone", secs(10), || {
        !runner_alive(&env.agent_dir("g").join("lock"))
    });
    let out = doctor(&env, &[], &vars).expect(1);
    let bad = line(&out, "✗", "runners");
    assert!(
        bad.contains(&format!("agent g: its runner (pid {pid}) died and left")),
        "{bad}"
    );
    assert!(bad.contains("status.json saying working"), "{bad}");
    assert!(bad.contains("1 task(s) it had claimed"), "{bad}");
    assert!(bad.contains("fix: `baton agent start g`"), "{bad}");
    // The fix, followed: the lost task is recorded, what was left is ended.
    env.start_gated("g");
    env.run(["agent", "stop", "g"]).ok();
    let out = doctor(&env, &[], &vars).ok();
    assert!(line(&out, "✓", "runners").contains("no runner died"));
}

#[test]
fn half_of_claude_codes_hooks_is_a_failure_naming_the_missing_ones() {
    let env = Env::new();
    let editor = an_editor(&env);
    let home = env.path("home");
    fs::create_dir_all(&home).unwrap();
    let mut install = env.cmd(["install", "claude"]);
    install.env("HOME", &home);
    env.output(install, None).ok();
    let settings: PathBuf = home.join(".claude/settings.json");
    let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&settings).unwrap()).unwrap();
    v["hooks"].as_object_mut().unwrap().remove("Stop");
    fs::write(&settings, v.to_string()).unwrap();
    // The hooks run `baton`: have it on PATH, as an installed baton is.
    let bin_dir = Path::new(BIN).parent().unwrap().display().to_string();
    let path = format!("{bin_dir}:{}", std::env::var("PATH").unwrap_or_default());
    let vars = [("BATON_EDITOR", editor.as_str()), ("PATH", path.as_str())];
    let out = doctor(&env, &[], &vars).expect(1);
    let bad = line(&out, "✗", "Claude Code hooks");
    assert!(bad.contains("1 of 7 hooks are missing: Stop"), "{bad}");
    let mut again = env.cmd(["install", "claude"]);
    again.env("HOME", &home);
    env.output(again, None).ok();
    let out = doctor(&env, &[], &vars).ok();
    assert!(line(&out, "✓", "Claude Code hooks").contains("all 7"));
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    if !have(&["tmux"]) {
        return;
    }
    let env = Env::new();
    let home = env.path("home");
    fs::create_dir_all(&home).unwrap();
    let editor = an_editor(&env);
    for (session, no_color, coloured) in [
        ("plain", "export NO_COLOR=1", false),
        ("colour", "unset NO_COLOR", true),
    ] {
        let done = env.path(&format!("{session}.done"));
        let script = env.script(
            &format!("{session}.sh"),
            &format!(
                "export BATON_HOME='{}' HOME='{}' BATON_EDITOR='{editor}'\n{no_color}\n'{BIN}' doctor\ntouch '{}'\nread _\n",
                env.home.display(),
                home.display(),
                done.display()
            ),
        );
        env.tmux(&[
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "200",
            "-y",
            "30",
            &format!("sh {}", script.display()),
        ])
        .ok();
        wait_until("doctor has printed in the pane", secs(15), || done.exists());
        let screen = env
            .tmux(&["capture-pane", "-p", "-e", "-t", session])
            .ok()
            .stdout;
        assert!(screen.contains("all is well"), "{screen}");
        assert_eq!(
            screen.contains("\x1b[32m"),
            coloured,
            "{session}: {screen:?}"
        );
    }
}

#[test]
fn git_hooks_missing_where_a_commit_agent_is_configured_are_a_failure_until_installed() {
    if !have(&["git"]) {
        return;
    }
    let env = Env::new();
    let editor = an_editor(&env);
    let repo = env.path("repo");
    fs::create_dir_all(&repo).unwrap();
    let git = |args: &[&str]| {
        let mut cmd = std::process::Command::new("git");
        scrub(&mut cmd);
        let out = cmd
            .args(args)
            .current_dir(&repo)
            .env("GIT_CONFIG_GLOBAL", env.path("gitconfig"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "-q"]);
    let repo_s = repo.to_str().unwrap();
    let gitconfig = env.path("gitconfig");
    let vars = [
        ("BATON_EDITOR", editor.as_str()),
        ("GIT_CONFIG_GLOBAL", gitconfig.to_str().unwrap()),
        ("GIT_CONFIG_NOSYSTEM", "1"),
    ];
    // Not configured: a note.
    let out = doctor(&env, &["--project", repo_s], &vars);
    assert!(line(&out, "–", "git hooks").contains("not installed"));
    git(&["config", "baton.commitAgent", "commit-writer"]);
    let out = doctor(&env, &["--project", repo_s], &vars).expect(1);
    let bad = line(&out, "✗", "git hooks");
    assert!(
        bad.contains("a commit or review agent is configured"),
        "{bad}"
    );
    assert!(bad.contains("fix: `baton install git`"), "{bad}");
    let mut install = env.cmd(["install", "git", "--repo", repo_s]);
    for (k, v) in &vars {
        install.env(k, v);
    }
    env.output(install, None).ok();
    let out = doctor(&env, &["--project", repo_s], &vars);
    assert!(line(&out, "✓", "git hooks").contains("installed in"));
}

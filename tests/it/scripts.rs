//! The shell wrappers in `scripts/`, run as a user runs them: `baton` found on PATH, real agents,
//! real git. Each with good arguments and bad ones (exit 2 and a message).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

fn script_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

/// `scripts/NAME ARGS` in `dir`, with this test's state folder and baton first on PATH.
fn script_cmd(env: &Env, dir: &Path, name: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(script_path(name));
    scrub(&mut cmd);
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    cmd.args(args)
        .current_dir(dir)
        .env("BATON_HOME", &env.home)
        .env("PATH", path)
        .env("HOME", env.dir.path())
        .env("XDG_CONFIG_HOME", env.path("xdg"))
        .env("GIT_CONFIG_GLOBAL", env.path("gitconfig"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(std::process::Stdio::null());
    cmd
}

fn script(env: &Env, name: &str, args: &[&str]) -> Out {
    env.output(script_cmd(env, env.dir.path(), name, args), None)
}

fn script_stdin(env: &Env, name: &str, args: &[&str], input: &str) -> Out {
    env.output(
        script_cmd(env, env.dir.path(), name, args),
        Some(input.as_bytes().to_vec()),
    )
}

fn script_with(env: &Env, name: &str, args: &[&str], vars: &[(&str, &str)]) -> Out {
    let mut cmd = script_cmd(env, env.dir.path(), name, args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    env.output(cmd, None)
}

/// Every case must exit 2 and say `says` on stderr.
#[track_caller]
fn refused(env: &Env, name: &str, cases: &[(&[&str], &str)]) {
    for (args, says) in cases {
        let out = script(env, name, args).expect(2);
        assert!(
            out.stderr.contains(says),
            "{name} {args:?}: expected {says:?} in\n{}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{name} {args:?}: {}", out.stdout);
    }
}

#[track_caller]
fn helps(env: &Env, name: &str) {
    for flag in ["--help", "-h"] {
        let out = script(env, name, &[flag]).ok();
        assert!(
            out.stdout.starts_with(&format!("usage: {name} ")),
            "{}",
            out.stdout
        );
    }
}

#[test]
fn delegate_asks_with_defaults_from_the_environment() {
    let env = Env::new();
    helps(&env, "delegate");
    refused(
        &env,
        "delegate",
        &[
            (&[], "no agent: give AGENT, or set BATON_AGENT_DEFAULT"),
            (&["a", "b", "c"], "too many arguments"),
            (&["--frobnicate"], "unknown option --frobnicate"),
        ],
    );
    env.start("up", &["--driver", "exec", "--", "tr", "a-z", "A-Z"]);
    assert_eq!(
        script(&env, "delegate", &["up", "hello"]).ok().stdout,
        "HELLO\n"
    );
    assert_eq!(script(&env, "delegate", &["up", "-x"]).ok().stdout, "-X\n");
    assert_eq!(
        script_stdin(&env, "delegate", &["up"], "from stdin")
            .ok()
            .stdout,
        "FROM STDIN\n"
    );
    assert_eq!(
        script_stdin(&env, "delegate", &["up", "-"], "dash")
            .ok()
            .stdout,
        "DASH\n"
    );
    let default = [("BATON_AGENT_DEFAULT", "up")];
    assert_eq!(
        script_with(&env, "delegate", &["", "by default"], &default)
            .ok()
            .stdout,
        "BY DEFAULT\n"
    );
    let mut cmd = script_cmd(&env, env.dir.path(), "delegate", &[]);
    cmd.env("BATON_AGENT_DEFAULT", "up");
    assert_eq!(
        env.output(cmd, Some(b"no arguments".to_vec())).ok().stdout,
        "NO ARGUMENTS\n"
    );
    // baton's exit status, passed through.
    env.start("bad", &["--driver", "exec", "--", "false"]);
    script(&env, "delegate", &["bad", "x"]).expect(1);
    let out = script(&env, "delegate", &["ghost", "x"]).expect(2);
    assert!(
        out.stderr.contains("unknown agent \"ghost\""),
        "{}",
        out.stderr
    );
    env.start("gone", &[]);
    env.run(["agent", "stop", "gone"]).ok();
    script(&env, "delegate", &["gone", "x"]).expect(5);
    env.start_gated("slow");
    let out = script_with(&env, "delegate", &["slow", "x"], &[("BATON_TIMEOUT", "1s")]).expect(3);
    assert!(out.elapsed >= secs(1), "{:?}", out.elapsed);
    let out = script_with(&env, "delegate", &["up", "x"], &[("BATON_TIMEOUT", "soon")]).expect(2);
    assert!(out.stderr.contains("invalid duration"), "{}", out.stderr);
}

#[test]
fn fanout_prints_every_answer_and_names_the_failures() {
    let env = Env::new();
    helps(&env, "fanout");
    refused(
        &env,
        "fanout",
        &[
            (&[], "no agent"),
            (&["a", "b", "hello"], "no -- before the prompt"),
            (&["--", "hello"], "no agent"),
            (&["a", "--"], "one PROMPT after --"),
            (&["a", "--", "one", "two"], "one PROMPT after --"),
            (&["a b", "--", "x"], "is not an agent name"),
            (&["-q", "a", "--", "x"], "unknown option -q"),
        ],
    );
    env.start("up", &["--driver", "exec", "--", "tr", "a-z", "A-Z"]);
    env.start("same", &["--driver", "exec", "--", "cat"]);
    let out = script(&env, "fanout", &["up", "same", "--", "hello"]).ok();
    assert_eq!(out.stdout, "==> up <==\nHELLO\n==> same <==\nhello\n");
    let out = script_stdin(&env, "fanout", &["same", "up", "--", "-"], "piped\n").ok();
    assert_eq!(out.stdout, "==> same <==\npiped\n==> up <==\nPIPED\n");
    // One that fails and one that does not exist: the others still answer, each failure named.
    env.start("bad", &["--driver", "exec", "--", "false"]);
    let out = script(&env, "fanout", &["up", "bad", "ghost", "--", "x"]).expect(1);
    assert_eq!(out.stdout, "==> up <==\nX\n==> bad <==\n==> ghost <==\n");
    assert!(
        out.stderr
            .contains("fanout: failed: bad (exit 1), ghost (exit 2)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("unknown agent \"ghost\""),
        "{}",
        out.stderr
    );
}

#[test]
fn fanout_stopped_cancels_every_task() {
    let env = Env::new();
    env.start_gated("slow");
    env.start("up", &["--driver", "exec", "--", "tr", "a-z", "A-Z"]);
    let mut cmd = script_cmd(&env, env.dir.path(), "fanout", &["up", "slow", "--", "x"]);
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    wait_until("the slow task starts", secs(10), || {
        env.started_count() == 1
    });
    signal(child.id(), nix::sys::signal::Signal::SIGTERM);
    let status = wait_child(&mut child, secs(10)).expect("fanout ends");
    assert_eq!(status.code(), Some(4));
    // Found by its agent: `up`'s task may still be ending when the signal comes.
    let slow = env.tasks_of("slow").pop().expect("the slow task");
    wait_until("the slow task is recorded", secs(10), || {
        env.task_dir(&slow).join("done.json").exists()
    });
    assert_eq!(env.done_json(&slow)["state"], "cancelled");
}

fn git(env: &Env, dir: &Path, args: &[&str]) {
    let mut cmd = Command::new("git");
    scrub(&mut cmd);
    cmd.args(args)
        .current_dir(dir)
        .env("HOME", env.dir.path())
        .env("GIT_CONFIG_GLOBAL", env.path("gitconfig"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com");
    env.output(cmd, None).ok();
}

#[test]
fn review_staged_sends_the_staged_diff() {
    if !have(&["git"]) {
        return;
    }
    let env = Env::new();
    helps(&env, "review-staged");
    refused(
        &env,
        "review-staged",
        &[
            (&["a", "b"], "too many arguments"),
            (&["--all"], "unknown option --all"),
            (&["review"], "not in a git repository"),
        ],
    );
    let repo = env.path("repo");
    fs::create_dir_all(&repo).unwrap();
    git(&env, &repo, &["init", "-q", "-b", "main"]);
    let in_repo = |args: &[&str]| env.output(script_cmd(&env, &repo, "review-staged", args), None);
    let out = in_repo(&[]).expect(2);
    assert!(
        out.stderr.contains("no agent: give AGENT"),
        "{}",
        out.stderr
    );
    let out = in_repo(&["review"]).expect(2);
    assert!(out.stderr.contains("nothing is staged"), "{}", out.stderr);
    let reviewer = env.script(
        "reviewer.sh",
        &format!(
            "#!/bin/sh\ncat > '{}'\necho 'Looks right'\n",
            env.path("review.prompt").display()
        ),
    );
    env.start(
        "review",
        &["--driver", "exec", "--", reviewer.to_str().unwrap()],
    );
    fs::write(repo.join("a.txt"), "alpha\n").unwrap();
    git(&env, &repo, &["add", "a.txt"]);
    assert_eq!(in_repo(&["review"]).ok().stdout, "Looks right\n");
    let prompt = fs::read_to_string(env.path("review.prompt")).unwrap();
    assert!(prompt.starts_with("Review the staged changes"), "{prompt}");
    assert!(prompt.contains(" a.txt | 1 +"), "{prompt}");
    assert!(prompt.contains("+alpha"), "{prompt}");
    // The agent from the [git] table of .baton.toml, then from git config, which wins; and
    // baton's exit status passed through.
    fs::write(
        repo.join(".baton.toml"),
        "[git]\nreview_agent = \"review\"\n",
    )
    .unwrap();
    assert_eq!(in_repo(&[]).ok().stdout, "Looks right\n");
    fs::remove_file(repo.join(".baton.toml")).unwrap();
    git(&env, &repo, &["config", "baton.reviewAgent", "review"]);
    assert_eq!(in_repo(&[]).ok().stdout, "Looks right\n");
    let out = in_repo(&["ghost"]).expect(2);
    assert!(out.stderr.contains("unknown agent"), "{}", out.stderr);
}

#[test]
fn watch_ci_sends_a_failure_to_the_agent_in_the_background() {
    let env = Env::new();
    helps(&env, "watch-ci");
    refused(
        &env,
        "watch-ci",
        &[
            (&[], "give an AGENT and a CMD"),
            (&["fixer"], "give an AGENT and a CMD"),
            (&["--now", "fixer", "true"], "unknown option --now"),
        ],
    );
    let fixer = env.script(
        "fixer.sh",
        &format!(
            "#!/bin/sh\ncat > '{}'\necho 'Fixed it'\n",
            env.path("fixer.prompt").display()
        ),
    );
    env.start(
        "fixer",
        &["--driver", "exec", "--", fixer.to_str().unwrap()],
    );
    let out = script(&env, "watch-ci", &["fixer", "sh", "-c", "echo all good"]).ok();
    assert_eq!(out.stdout, "all good\n");
    assert!(env.task_ids().is_empty(), "a success sends nothing");
    let out = script(
        &env,
        "watch-ci",
        &[
            "fixer",
            "sh",
            "-c",
            "echo building; echo 'error: it broke' >&2; exit 3",
        ],
    )
    .expect(3);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        &lines[..2],
        ["building", "error: it broke"],
        "{}",
        out.stdout
    );
    let id = lines.last().unwrap().to_string();
    assert_eq!(env.task_ids(), std::slice::from_ref(&id));
    assert!(
        out.stderr.contains(&format!("baton wait {id}")),
        "{}",
        out.stderr
    );
    assert_eq!(env.run(["wait", &id]).ok().stdout, "Fixed it\n");
    let prompt = fs::read_to_string(env.path("fixer.prompt")).unwrap();
    assert!(prompt.contains("failed (exit status 3)"), "{prompt}");
    assert!(prompt.contains("sh -c echo building;"), "{prompt}");
    assert!(prompt.contains("error: it broke"), "{prompt}");
    // The agent cannot be reached: the command's status still, and a line saying so.
    let out = script(&env, "watch-ci", &["ghost", "false"]).expect(1);
    assert!(
        out.stderr.contains("could not be sent to ghost"),
        "{}",
        out.stderr
    );
}

#[test]
fn install_puts_the_binary_in_place_and_prints_the_profile_lines() {
    let env = Env::new();
    helps(&env, "install");
    refused(
        &env,
        "install",
        &[
            (&["--prefix"], "--prefix needs a value"),
            (&["--binary", ""], "--binary needs a value"),
            (&["--fast"], "unknown argument --fast"),
            (
                &["--binary", "/nonexistent/baton"],
                "is not an executable file",
            ),
        ],
    );
    let prefix = env.path("prefix");
    let prefix_s = prefix.display().to_string();
    let args = ["--binary", BIN, "--prefix", &prefix_s];
    let first = script(&env, "install", &args).ok();
    let installed = prefix.join("bin/baton");
    assert_eq!(fs::read(&installed).unwrap(), fs::read(BIN).unwrap());
    assert_eq!(
        fs::metadata(&installed).unwrap().permissions().mode() & 0o777,
        0o755
    );
    // The editor mode the profile lines name, from beside the binary.
    let front = prefix.join("bin/baton-edit");
    assert_eq!(fs::read(&front).unwrap(), fs::read(FRONT).unwrap());
    assert!(baton::editor::PROFILE_LINES.contains("export VISUAL=baton-edit"));
    assert!(
        first.stdout.contains(baton::editor::PROFILE_LINES),
        "the profile lines are baton's own: {}",
        first.stdout
    );
    assert!(
        first.stdout.contains("is not on your PATH"),
        "{}",
        first.stdout
    );
    // Completions and the man page exactly when the binary makes them.
    let has_man = Command::new(BIN)
        .arg("man")
        .current_dir(env.path("prefix"))
        .env("BATON_HOME", &env.home)
        .output()
        .unwrap()
        .status
        .success();
    assert_eq!(prefix.join("share/man/man1/baton.1").exists(), has_man);
    let listing = |dir: &Path| -> Vec<String> {
        let mut all = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    all.push(p.display().to_string());
                }
            }
        }
        all.sort();
        all
    };
    let files = listing(&prefix);
    let again = script(&env, "install", &args).ok();
    assert_eq!(again.stdout, first.stdout, "idempotent");
    assert_eq!(listing(&prefix), files, "no file left beside another");
    assert_eq!(fs::read(&installed).unwrap(), fs::read(BIN).unwrap());
}

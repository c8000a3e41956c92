//! git through its own hooks: `baton install git`, the prepare-commit-msg draft, the commit-msg
//! gate, and editor mode on git's files. Real git in temp repositories, with the machine's git
//! config shut out (`GIT_CONFIG_GLOBAL` is a temp file, `GIT_CONFIG_NOSYSTEM`), a fixed author,
//! and the short `PATH` of a GUI client (baton is not on it: the hooks find it by the path
//! recorded at install). The stand-in agents count their calls in a file.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

/// The folders of a short PATH that still has git and sh (and no baton).
fn short_path() -> String {
    let git = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .find(|d| d.join("git").is_file())
        .expect("git on PATH");
    let path = format!("{}:/usr/bin:/bin", git.display());
    for dir in path.split(':') {
        assert!(
            !Path::new(dir).join("baton").exists(),
            "{dir}/baton exists: the test of the recorded path would prove nothing"
        );
    }
    path
}

/// A command with this test's git environment, run in `dir`.
fn with_git_env(env: &Env, mut cmd: Command, dir: &Path) -> Command {
    scrub(&mut cmd);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GIT_") {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(dir)
        .env("BATON_HOME", &env.home)
        .env("HOME", env.dir.path())
        .env("XDG_CONFIG_HOME", env.path("xdg"))
        .env("GIT_CONFIG_GLOBAL", env.path("gitconfig"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("GIT_EDITOR", "true")
        .env("PATH", short_path())
        .stdin(std::process::Stdio::null());
    cmd
}

fn git_cmd(env: &Env, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = with_git_env(env, Command::new("git"), dir);
    cmd.args(args);
    cmd
}

fn git(env: &Env, dir: &Path, args: &[&str]) -> Out {
    env.output(git_cmd(env, dir, args), None)
}

/// `git ARGS` with extra environment (an editor, a sequence editor).
fn git_with(env: &Env, dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Out {
    let mut cmd = git_cmd(env, dir, args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    env.output(cmd, None)
}

/// `baton ARGS` in `dir`, with the test's git environment.
fn baton(env: &Env, dir: &Path, args: &[&str]) -> Out {
    let mut cmd = with_git_env(env, Command::new(BIN), dir);
    cmd.args(args);
    env.output(cmd, None)
}

/// A new repository `name` on branch main, with one commit.
fn repo(env: &Env, name: &str) -> PathBuf {
    let dir = env.path(name);
    fs::create_dir_all(&dir).unwrap();
    git(env, &dir, &["init", "-q", "-b", "main"]).ok();
    fs::write(dir.join("README"), "a repository\n").unwrap();
    git(env, &dir, &["add", "README"]).ok();
    git(env, &dir, &["commit", "-q", "-m", "First"]).ok();
    dir
}

/// A stand-in agent's command: it records each call (one line in `<name>.calls`), keeps the
/// last prompt in `<name>.prompt`, and answers `answer`.
fn counting_agent(env: &Env, name: &str, answer: &str) -> PathBuf {
    env.script(
        &format!("{name}.sh"),
        &format!(
            "#!/bin/sh\necho \"$BATON_TASK_ID\" >> '{calls}'\ncat > '{prompt}'\nprintf '%s\\n' '{answer}'\n",
            calls = env.path(&format!("{name}.calls")).display(),
            prompt = env.path(&format!("{name}.prompt")).display(),
        ),
    )
}

fn calls(env: &Env, name: &str) -> usize {
    fs::read_to_string(env.path(&format!("{name}.calls")))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn prompt_of(env: &Env, name: &str) -> String {
    fs::read_to_string(env.path(&format!("{name}.prompt"))).unwrap_or_default()
}

/// Declares `[agent.NAME]` (exec, started on demand) in the repository's .baton.toml.
fn declare(dir: &Path, name: &str, command: &Path, extra: &str) {
    let file = dir.join(".baton.toml");
    let mut text = fs::read_to_string(&file).unwrap_or_default();
    text.push_str(&format!(
        "[agent.{name}]\ndriver = \"exec\"\ncommand = [\"{}\"]\n{extra}",
        command.display()
    ));
    fs::write(&file, text).unwrap();
}

/// An editor that keeps a copy of the file it was given, as a person would see it.
fn seeing_editor(env: &Env) -> String {
    env.script(
        "seeing-editor.sh",
        &format!(
            "#!/bin/sh\ncp \"$1\" '{}'\n",
            env.path("seen-by-editor").display()
        ),
    )
    .display()
    .to_string()
}

/// An editor that writes `Manual message` above what the file holds (a person typing).
fn typing_editor(env: &Env) -> String {
    env.script(
        "typing-editor.sh",
        "#!/bin/sh\n{ echo 'Manual message'; cat \"$1\"; } > \"$1.new\" && mv \"$1.new\" \"$1\"\n",
    )
    .display()
    .to_string()
}

fn message(env: &Env, dir: &Path) -> String {
    git(env, dir, &["log", "-1", "--format=%B"])
        .ok()
        .stdout
        .trim_end()
        .to_string()
}

fn count(env: &Env, dir: &Path) -> usize {
    git(env, dir, &["rev-list", "--count", "HEAD"])
        .ok()
        .stdout
        .trim()
        .parse()
        .unwrap()
}

fn stage(env: &Env, dir: &Path, file: &str, text: &str) {
    fs::write(dir.join(file), text).unwrap();
    git(env, dir, &["add", file]).ok();
}

/// baton's lines on stderr.
fn baton_lines(out: &Out) -> Vec<String> {
    out.stderr
        .lines()
        .filter(|l| l.starts_with("baton:"))
        .map(String::from)
        .collect()
}

/// Points the installed hooks at a wrapper that notes each start of baton (its arguments, one
/// line each) before running it; returns the file of notes.
fn record_starts(env: &Env, dir: &Path) -> PathBuf {
    let starts = env.path("baton-starts");
    let wrapper = env.script(
        "baton-wrapper",
        &format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{BIN}' \"$@\"\n",
            starts.display()
        ),
    );
    for name in ["prepare-commit-msg", "commit-msg"] {
        let path = dir.join(".git/hooks").join(name);
        let text = fs::read_to_string(&path).unwrap();
        let line = text.lines().find(|l| l.starts_with("recorded=")).unwrap();
        let text = text.replace(line, &format!("recorded='{}'", wrapper.display()));
        fs::write(&path, text).unwrap();
    }
    starts
}

#[test]
fn git_commit_opens_the_editor_on_a_draft_from_the_staged_diff() {
    if !have(&["git"]) {
        return;
    }
    let env = Env::new();
    let dir = repo(&env, "repo");
    let writer = counting_agent(&env, "writer", "Add the greeting\n\nIt says hello.");
    declare(&dir, "writer", &writer, "");
    fs::write(
        dir.join(".baton.toml"),
        format!(
            "[git]\ncommit_agent = \"writer\"\n{}",
            fs::read_to_string(dir.join(".baton.toml")).unwrap()
        ),
    )
    .unwrap();
    let show = baton(&env, &dir, &["config", "show"]).ok();
    assert!(
        show.stdout.contains("git.commit_agent = \"writer\""),
        "{}",
        show.stdout
    );
    let out = baton(&env, &dir, &["install", "git"]).ok();
    assert!(
        out.stdout.contains("prepare-commit-msg: installed"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("commit agent: writer"),
        "{}",
        out.stdout
    );
    stage(&env, &dir, "hello.txt", "hello\n");
    let editor = seeing_editor(&env);
    let out = git_with(&env, &dir, &["commit", "-q"], &[("GIT_EDITOR", &editor)]).ok();
    assert_eq!(out.stderr, "", "a draft is made without a word");
    assert_eq!(calls(&env, "writer"), 1, "started on demand, asked once");
    assert_eq!(message(&env, &dir), "Add the greeting\n\nIt says hello.");
    // The person saw the draft above git's comment block, which git then stripped.
    let seen = fs::read_to_string(env.path("seen-by-editor")).unwrap();
    assert!(
        seen.starts_with("Add the greeting\n\nIt says hello.\n\n# Please enter the commit message"),
        "{seen}"
    );
    assert!(seen.contains("#\tnew file:   hello.txt"), "{seen}");
    let prompt = prompt_of(&env, "writer");
    assert!(prompt.contains("Branch: main"), "{prompt}");
    assert!(prompt.contains(" hello.txt | 1 +"), "{prompt}");
    assert!(prompt.contains("+hello\n"), "{prompt}");
    // git config wins over [git] in .baton.toml; an empty value turns the draft off.
    let other = counting_agent(&env, "other", "From the other agent");
    env.start(
        "other",
        &["--driver", "exec", "--", other.to_str().unwrap()],
    );
    git(&env, &dir, &["config", "baton.commitAgent", "other"]).ok();
    stage(&env, &dir, "two.txt", "2\n");
    git(&env, &dir, &["commit", "-q"]).ok();
    assert_eq!(message(&env, &dir), "From the other agent");
    git(&env, &dir, &["config", "baton.commitAgent", ""]).ok();
    stage(&env, &dir, "three.txt", "3\n");
    let typing = typing_editor(&env);
    git_with(&env, &dir, &["commit", "-q"], &[("GIT_EDITOR", &typing)]).ok();
    assert_eq!(message(&env, &dir), "Manual message");
    assert_eq!((calls(&env, "writer"), calls(&env, "other")), (1, 1));
}

#[test]
fn git_s_own_messages_and_rebases_never_call_the_agent() {
    if !have(&["git"]) {
        return;
    }
    let env = Env::new();
    let dir = repo(&env, "repo");
    let writer = counting_agent(&env, "writer", "Drafted");
    env.start(
        "writer",
        &["--driver", "exec", "--", writer.to_str().unwrap()],
    );
    baton(&env, &dir, &["install", "git"]).ok();
    git(&env, &dir, &["config", "baton.commitAgent", "writer"]).ok();
    let starts = record_starts(&env, &dir);
    for i in 0..20 {
        stage(&env, &dir, &format!("f{i}"), &format!("{i}\n"));
        git(&env, &dir, &["commit", "-q", "-m", &format!("Commit {i}")]).ok(); // message
    }
    git(&env, &dir, &["commit", "-q", "--amend", "--no-edit"]).ok(); // commit
    git(&env, &dir, &["commit", "-q", "--amend"]).ok(); // commit, with the editor
    fs::write(env.path("template"), "From a template\n").unwrap();
    stage(&env, &dir, "t", "t\n");
    let template = env.path("template").display().to_string();
    let typing = typing_editor(&env); // git refuses a template left unedited
    git_with(
        &env,
        &dir,
        &["commit", "-q", "-t", &template],
        &[("GIT_EDITOR", &typing)],
    )
    .ok(); // template
           // Reword every one of 20 commits: each is a `commit` source inside a rebase. With
           // baton.draftFor naming `commit`, only the rebase check keeps the agent out.
    git(&env, &dir, &["config", "baton.draftFor", "commit"]).ok();
    let before = count(&env, &dir);
    git_with(
        &env,
        &dir,
        &["rebase", "-q", "-i", "HEAD~20"],
        &[("GIT_SEQUENCE_EDITOR", "sed -i s/^pick/reword/")],
    )
    .ok();
    assert_eq!(count(&env, &dir), before);
    git(&env, &dir, &["checkout", "-q", "-b", "side"]).ok();
    stage(&env, &dir, "side", "side\n");
    git(&env, &dir, &["commit", "-q", "-m", "Side"]).ok();
    git(&env, &dir, &["checkout", "-q", "main"]).ok();
    git(&env, &dir, &["merge", "-q", "--no-ff", "side"]).ok(); // merge
    git(&env, &dir, &["checkout", "-q", "-b", "side2", "HEAD~1"]).ok();
    stage(&env, &dir, "side2", "side2\n");
    git(&env, &dir, &["commit", "-q", "-m", "Side 2"]).ok();
    git(&env, &dir, &["checkout", "-q", "main"]).ok();
    git(&env, &dir, &["merge", "-q", "--squash", "side2"]).ok();
    git(&env, &dir, &["commit", "-q"]).ok(); // squash
    assert_eq!(
        calls(&env, "writer"),
        0,
        "no source but a plain commit calls it"
    );
    // The hooks decided all that themselves, without starting baton.
    let started = fs::read_to_string(&starts).unwrap_or_default();
    assert!(!started.contains("git-prepare"), "{started}");
    assert_eq!(
        started.lines().count(),
        26,
        "only the gate, once for each commit outside the rebase and the merge (20 with -m, 2 amends, the template's, 2 on the side branches, the squash): {started}"
    );
    // The same hook does draft for a plain commit, and for an amend once draftFor names it: the
    // draft above the message so far, from the whole commit's changes.
    git(&env, &dir, &["commit", "-q", "--amend"]).ok();
    assert_eq!(calls(&env, "writer"), 1);
    assert!(
        message(&env, &dir).starts_with("Drafted\n\nSquashed commit of the following:"),
        "{}",
        message(&env, &dir)
    );
    let prompt = prompt_of(&env, "writer");
    assert!(prompt.contains("The message so far"), "{prompt}");
    assert!(
        prompt.contains("+side2"),
        "the amend's whole change: {prompt}"
    );
}

#[test]
fn a_slow_agent_times_out_and_the_commit_goes_on() {
    if !have(&["git"]) {
        return;
    }
    let env = Env::new();
    let dir = repo(&env, "repo");
    env.start_gated("slow");
    baton(&env, &dir, &["install", "git"]).ok();
    git(&env, &dir, &["config", "baton.commitAgent", "slow"]).ok();
    git(&env, &dir, &["config", "baton.timeout", "1s"]).ok();
    stage(&env, &dir, "a", "a\n");
    let typing = typing_editor(&env);
    let out = git_with(&env, &dir, &["commit", "-q"], &[("GIT_EDITOR", &typing)]).ok();
    assert_eq!(message(&env, &dir), "Manual message");
    let lines = baton_lines(&out);
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(
        lines[0].contains("timeout") && lines[0].contains("the commit goes on"),
        "{lines:?}"
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    // Bounded by the timeout: at least the second it waited, far less than the default minute.
    assert!(
        out.elapsed >= secs(1) && out.elapsed < secs(20),
        "{:?}",
        out.elapsed
    );
    assert_eq!(env.started_count(), 1);
    let ids = env.task_ids();
    wait_until("the slow task is recorded as timed out", secs(10), || {
        env.task_dir(&ids[0]).join("done.json").exists()
    });
    assert_eq!(env.done_json(&ids[0])["state"], "timeout");
}

#[test]
fn a_hook_asks_once_whatever_retries_and_gate_the_agent_declares() {
    if !have(&["git"]) {
        return;
    }
    let env = Env::new();
    let dir = repo(&env, "repo");
    baton(&env, &dir, &["install", "git"]).ok();
    let gate = env.script(
        "gate.sh",
        &format!(
            "#!/bin/sh\necho ran >> '{}'\nexit 1\n",
            env.path("gate.runs").display()
        ),
    );
    let failing = env.script(
        "failing.sh",
        &format!(
            "#!/bin/sh\necho \"$BATON_TASK_ID\" >> '{}'\nexit 1\n",
            env.path("failing.calls").display()
        ),
    );
    let extra = format!("retries = 3\ngate = \"{}\"\n", gate.display());
    declare(&dir, "failing", &failing, &extra);
    declare(
        &dir,
        "drafter",
        &counting_agent(&env, "drafter", "Gated draft"),
        &extra,
    );
    let typing = typing_editor(&env);
    // A failure is not retried: the commit goes on after one attempt.
    git(&env, &dir, &["config", "baton.commitAgent", "failing"]).ok();
    stage(&env, &dir, "a", "a\n");
    let out = git_with(&env, &dir, &["commit", "-q"], &[("GIT_EDITOR", &typing)]).ok();
    assert!(out.stderr.contains("the commit goes on"), "{}", out.stderr);
    assert_eq!(message(&env, &dir), "Manual message");
    assert_eq!(calls(&env, "failing"), 1);
    // An answer is not held at the gate.
    git(&env, &dir, &["config", "baton.commitAgent", "drafter"]).ok();
    stage(&env, &dir, "b", "b\n");
    git(&env, &dir, &["commit", "-q"]).ok();
    assert_eq!(message(&env, &dir), "Gated draft");
    assert_eq!(calls(&env, "drafter"), 1);
    assert!(!env.path("gate.runs").exists());
}

#[test]
fn an_unreachable_agent_costs_one_line_and_the_commit_goes_on() {
    if !have(&["git"]) {
        return;
    }
    let env = Env::new();
    let dir = repo(&env, "repo");
    baton(&env, &dir, &["install", "git"]).ok();
    let typing = typing_editor(&env);
    let commit = |file: &str| {
        stage(&env, &dir, file, "x\n");
        git_with(&env, &dir, &["commit", "-q"], &[("GIT_EDITOR", &typing)]).ok()
    };
    git(&env, &dir, &["config", "baton.commitAgent", "ghost"]).ok();
    let out = commit("a");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("baton: no draft: unknown agent \"ghost\""),
        "{}",
        out.stderr
    );
    // An agent that exists but whose runner is stopped (and not declared, so not started).
    env.start("idle", &[]);
    env.run(["agent", "stop", "idle"]).ok();
    git(&env, &dir, &["config", "baton.commitAgent", "idle"]).ok();
    let out = commit("b");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("agent idle is not running"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("the commit goes on"), "{}", out.stderr);
    // Nothing staged (an empty commit): one line too.
    let out = git_with(
        &env,
        &dir,
        &["commit", "-q", "--allow-empty"],
        &[("GIT_EDITOR", &typing)],
    )
    .ok();
    assert_eq!(
        out.stderr,
        "baton: no draft: nothing is staged; the commit goes on\n"
    );
    // A bad setting says so, and the default is used.
    env.start("fast", &["--driver", "exec", "--", "echo", "Fast draft"]);
    git(&env, &dir, &["config", "baton.commitAgent", "fast"]).ok();
    git(&env, &dir, &["config", "baton.timeout", "soon"]).ok();
    stage(&env, &dir, "c", "c\n");
    let out = git(&env, &dir, &["commit", "-q"]).ok();
    assert!(out.stderr.contains("baton.timeout"), "{}", out.stderr);
    assert_eq!(message(&env, &dir), "Fast draft");
    // Inside the very agent it would ask, the hook does not wait on itself.
    let mut cmd = git_cmd(&env, &dir, &["commit", "-q"]);
    cmd.env("BATON_AGENT", "fast").env("GIT_EDITOR", &typing);
    git(&env, &dir, &["config", "--unset", "baton.timeout"]).ok();
    stage(&env, &dir, "d", "d\n");
    let out = env.output(cmd, None).ok();
    assert!(
        out.stderr.contains("would wait on itself"),
        "{}",
        out.stderr
    );
    assert_eq!(message(&env, &dir), "Manual message");
    assert_eq!(count(&env, &dir), 6);
}

#[test]
fn the_commit_msg_gate_rejects_and_accepts() {
    if !have(&["git"]) {
        return;
    }
    let env = Env::new();
    let dir = repo(&env, "repo");
    let review = env.script(
        "review.sh",
        &format!(
            "#!/bin/sh\necho x >> '{calls}'\ncat > '{prompt}'\nif grep -q '^wip' '{prompt}'; then echo 'REJECT: say what the change does'; else echo 'Fine by me'; fi\n",
            calls = env.path("review.calls").display(),
            prompt = env.path("review.prompt").display(),
        ),
    );
    env.start(
        "review",
        &["--driver", "exec", "--", review.to_str().unwrap()],
    );
    baton(&env, &dir, &["install", "git"]).ok();
    git(&env, &dir, &["config", "baton.reviewAgent", "review"]).ok();
    stage(&env, &dir, "a", "a\n");
    let out = git(&env, &dir, &["commit", "-q", "-m", "wip"]);
    assert_eq!(out.code(), 1, "{}", out.context);
    assert!(
        out.stderr
            .contains("baton: @review rejected the commit message: say what the change does"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--no-verify"), "{}", out.stderr);
    assert_eq!(count(&env, &dir), 1, "the commit was aborted");
    let prompt = prompt_of(&env, "review");
    assert!(prompt.contains("The message:\nwip\n"), "{prompt}");
    assert!(
        !prompt.contains("# Please enter"),
        "comments stripped: {prompt}"
    );
    assert!(prompt.contains(" a | 1 +"), "{prompt}");
    let out = git(&env, &dir, &["commit", "-q", "-m", "Add a"]).ok();
    assert_eq!(out.stderr, "", "accepted without a word");
    assert_eq!(count(&env, &dir), 2);
    // --no-verify: git does not run the gate at all.
    stage(&env, &dir, "b", "b\n");
    git(&env, &dir, &["commit", "-q", "--no-verify", "-m", "wip"]).ok();
    assert_eq!(calls(&env, "review"), 2);
    assert_eq!(count(&env, &dir), 3);
    // A review that fails accepts with a warning, or rejects when so configured.
    env.start("broken", &["--driver", "exec", "--", "false"]);
    git(&env, &dir, &["config", "baton.reviewAgent", "broken"]).ok();
    stage(&env, &dir, "c", "c\n");
    let out = git(&env, &dir, &["commit", "-q", "-m", "Add c"]).ok();
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.starts_with("baton: no review: agent broken")
            && out.stderr.contains("the message is accepted"),
        "{}",
        out.stderr
    );
    git(&env, &dir, &["config", "baton.onFailure", "reject"]).ok();
    stage(&env, &dir, "d", "d\n");
    let out = git(&env, &dir, &["commit", "-q", "-m", "Add d"]);
    assert_eq!(out.code(), 1, "{}", out.context);
    assert!(
        out.stderr.contains("the commit is rejected: no review"),
        "{}",
        out.stderr
    );
    assert_eq!(count(&env, &dir), 4);
}

fn listing(dir: &Path) -> Vec<(String, Vec<u8>, u32)> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = fs::symlink_metadata(e.path()).unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap_or_default(),
                meta.permissions().mode(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn install_chains_to_your_hooks_and_uninstall_restores_them_byte_for_byte() {
    if !have(&["git"]) {
        return;
    }
    let env = Env::new();
    let dir = repo(&env, "repo");
    let hooks = dir.join(".git/hooks");
    let log = env.path("user-hooks.log");
    for name in ["prepare-commit-msg", "commit-msg"] {
        let path = hooks.join(name);
        fs::write(
            &path,
            format!(
                "#!/bin/sh\n# the user's own {name}\necho \"{name} $*\" >> '{}'\n",
                log.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o750)).unwrap();
    }
    let before = listing(&hooks);
    let out = baton(&env, &dir, &["install", "git"]).ok();
    assert!(
        out.stdout
            .contains("prepare-commit-msg: installed; your hook is kept as prepare-commit-msg.baton-orig and runs first"),
        "{}",
        out.stdout
    );
    let kept = fs::read(hooks.join("commit-msg.baton-orig")).unwrap();
    assert_eq!(
        kept,
        before.iter().find(|(n, ..)| n == "commit-msg").unwrap().1
    );
    let installed = listing(&hooks);
    let again = baton(&env, &dir, &["install", "git"]).ok();
    assert!(
        again
            .stdout
            .contains("prepare-commit-msg: already installed")
            && again.stdout.contains("commit-msg: already installed"),
        "{}",
        again.stdout
    );
    assert_eq!(
        listing(&hooks),
        installed,
        "installing twice changes nothing"
    );
    let check = baton(&env, &dir, &["install", "git", "--check"]).ok();
    assert!(
        check
            .stdout
            .contains("runs your prepare-commit-msg.baton-orig first"),
        "{}",
        check.stdout
    );
    // Both run: the user's first, then baton's.
    let writer = counting_agent(&env, "writer", "Drafted");
    env.start(
        "writer",
        &["--driver", "exec", "--", writer.to_str().unwrap()],
    );
    git(&env, &dir, &["config", "baton.commitAgent", "writer"]).ok();
    stage(&env, &dir, "a", "a\n");
    git(&env, &dir, &["commit", "-q"]).ok();
    assert_eq!(message(&env, &dir), "Drafted");
    let ran = fs::read_to_string(&log).unwrap();
    assert!(
        ran.contains("prepare-commit-msg .git/COMMIT_EDITMSG")
            && ran.contains("commit-msg .git/COMMIT_EDITMSG"),
        "{ran}"
    );
    // A user's hook that refuses still stops the commit.
    fs::write(
        hooks.join("commit-msg.baton-orig"),
        "#!/bin/sh\necho 'no, says the user' >&2\nexit 1\n",
    )
    .unwrap();
    stage(&env, &dir, "b", "b\n");
    let out = git(&env, &dir, &["commit", "-q", "-m", "Add b"]);
    assert_eq!(out.code(), 1, "{}", out.context);
    assert!(out.stderr.contains("no, says the user"), "{}", out.stderr);
    fs::write(hooks.join("commit-msg.baton-orig"), &kept).unwrap();
    let out = baton(&env, &dir, &["uninstall", "git"]).ok();
    assert!(
        out.stdout
            .contains("commit-msg: removed; your hook is back"),
        "{}",
        out.stdout
    );
    assert_eq!(
        listing(&hooks),
        before,
        "every hook as it was, byte for byte, mode and all"
    );
    let out = baton(&env, &dir, &["uninstall", "git"]).ok();
    assert!(
        out.stdout.contains("not baton's; left alone"),
        "{}",
        out.stdout
    );
    assert_eq!(listing(&hooks), before);
    // Without hooks of the user's, uninstall leaves the folder as it found it.
    let bare = repo(&env, "plain");
    let before = listing(&bare.join(".git/hooks"));
    baton(&env, &bare, &["install", "git"]).ok();
    baton(&env, &bare, &["uninstall", "git"]).ok();
    assert_eq!(listing(&bare.join(".git/hooks")), before);
}

#[test]
fn core_hooks_path_and_linked_worktrees_get_the_hooks_git_runs() {
    if !have(&["git"]) {
        return;
    }
    let env = Env::new();
    let dir = repo(&env, "repo");
    let writer = counting_agent(&env, "writer", "Drafted");
    env.start(
        "writer",
        &["--driver", "exec", "--", writer.to_str().unwrap()],
    );
    git(&env, &dir, &["config", "baton.commitAgent", "writer"]).ok();
    // A linked worktree: its hooks are its repository's.
    let wt = env.path("wt");
    git(
        &env,
        &dir,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "feature",
            wt.to_str().unwrap(),
        ],
    )
    .ok();
    let out = baton(&env, env.dir.path(), &["install", "git", "--repo", "wt"]).ok();
    let hooks = fs::canonicalize(dir.join(".git/hooks")).unwrap();
    assert!(
        out.stdout
            .contains(&format!("hooks folder: {}", hooks.display())),
        "{}",
        out.stdout
    );
    stage(&env, &wt, "w", "w\n");
    git(&env, &wt, &["commit", "-q"]).ok();
    assert_eq!(message(&env, &wt), "Drafted");
    assert!(prompt_of(&env, "writer").contains("Branch: feature"));
    baton(&env, &dir, &["uninstall", "git"]).ok();
    // core.hooksPath: the hooks go where it says, and .git/hooks is left alone.
    let shared = env.path("shared-hooks");
    git(
        &env,
        &dir,
        &["config", "core.hooksPath", shared.to_str().unwrap()],
    )
    .ok();
    let out = baton(&env, &dir, &["install", "git"]).ok();
    assert!(out.stdout.contains("core.hooksPath = "), "{}", out.stdout);
    assert!(shared.join("prepare-commit-msg").is_file());
    assert!(!hooks.join("prepare-commit-msg").exists());
    stage(&env, &dir, "m", "m\n");
    git(&env, &dir, &["commit", "-q"]).ok();
    assert_eq!(message(&env, &dir), "Drafted");
    assert_eq!(calls(&env, "writer"), 2);
    let check = baton(&env, &dir, &["install", "git", "--check"]).ok();
    assert!(
        check
            .stdout
            .contains(&format!("hooks folder: {}", shared.display())),
        "{}",
        check.stdout
    );
    // A folder inside the work tree: said, since git may track what is put there.
    baton(&env, &dir, &["uninstall", "git"]).ok();
    git(&env, &dir, &["config", "core.hooksPath", ".githooks"]).ok();
    let out = baton(&env, &dir, &["install", "git"]).ok();
    assert!(
        out.stdout.contains("inside the work tree"),
        "{}",
        out.stdout
    );
    assert!(dir.join(".githooks/commit-msg").is_file());
}

#[test]
fn a_directive_in_a_commit_message_through_core_editor() {
    if !have(&["git"]) {
        return;
    }
    let env = Env::new();
    let dir = repo(&env, "repo");
    env.start("msg", &["--driver", "exec", "--", "echo", "Add the file"]);
    let writer = counting_agent(&env, "writer", "Drafted");
    env.start(
        "writer",
        &["--driver", "exec", "--", writer.to_str().unwrap()],
    );
    baton(&env, &dir, &["install", "git"]).ok();
    git(&env, &dir, &["config", "baton.commitAgent", "writer"]).ok();
    let editor = format!("core.editor={BIN}");
    let commit = |args: &[&str]| {
        let mut all = vec!["-c", &editor, "commit", "-q"];
        all.extend_from_slice(args);
        let mut cmd = git_cmd(&env, &dir, &all);
        cmd.env_remove("GIT_EDITOR").env("BATON_EDITOR", "true");
        env.output(cmd, None)
    };
    stage(&env, &dir, "a", "a\n");
    commit(&["-e", "-m", "@msg write the message"]).ok();
    assert_eq!(message(&env, &dir), "Add the file");
    assert_eq!(
        calls(&env, "writer"),
        0,
        "-m: the hook leaves it to the directive"
    );
    // The answer was written above git's comment block, which git then stripped.
    let written = fs::read_to_string(dir.join(".git/COMMIT_EDITMSG")).unwrap();
    assert!(
        written.starts_with("Add the file\n\n# Please enter the commit message"),
        "{written}"
    );
    // Another comment character: its block is the one kept.
    git(&env, &dir, &["config", "core.commentChar", ";"]).ok();
    stage(&env, &dir, "b", "b\n");
    commit(&["-e", "-m", "@msg write it"]).ok();
    git(&env, &dir, &["config", "--unset", "core.commentChar"]).ok();
    assert_eq!(message(&env, &dir), "Add the file");
    let written = fs::read_to_string(dir.join(".git/COMMIT_EDITMSG")).unwrap();
    assert!(written.contains("\n; Please enter"), "{written}");
    // A failing agent: git's own "problem with the editor", baton's reason, no commit.
    env.start("bad", &["--driver", "exec", "--", "false"]);
    stage(&env, &dir, "c", "c\n");
    let before = count(&env, &dir);
    let out = commit(&["-e", "-m", "@bad write it"]);
    assert_ne!(out.code(), 0, "{}", out.context);
    assert!(
        out.stderr.contains("problem with the editor"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("baton: agent bad failed"),
        "{}",
        out.stderr
    );
    assert_eq!(count(&env, &dir), before);
}

#[test]
fn install_global_sets_core_hooks_path_only_if_none_is_set_and_uninstall_undoes_it() {
    if !have(&["git"]) {
        return;
    }
    let env = Env::new();
    let global = env.path("gitconfig");
    fs::write(&global, "[user]\n\tname = Someone\n").unwrap();
    let before = fs::read(&global).unwrap();
    let dir = repo(&env, "repo");
    // The repository's own hook: a global core.hooksPath would silence it, so baton's runs it.
    let own = dir.join(".git/hooks/commit-msg");
    fs::write(
        &own,
        format!(
            "#!/bin/sh\necho \"own $1\" >> '{}'\n",
            env.path("own.log").display()
        ),
    )
    .unwrap();
    fs::set_permissions(&own, fs::Permissions::from_mode(0o755)).unwrap();
    // And its own pre-commit, which git would no longer run at all: a relay runs it.
    let pre = dir.join(".git/hooks/pre-commit");
    fs::write(
        &pre,
        format!(
            "#!/bin/sh\necho pre-commit ran >> '{}'\n",
            env.path("own.log").display()
        ),
    )
    .unwrap();
    fs::set_permissions(&pre, fs::Permissions::from_mode(0o755)).unwrap();
    let out = baton(&env, env.dir.path(), &["install", "git", "--global"]).ok();
    let folder = env.path("xdg/baton/git-hooks");
    assert!(
        out.stdout.contains("core.hooksPath (global) is now"),
        "{}",
        out.stdout
    );
    assert_eq!(
        git(&env, &dir, &["config", "--global", "core.hooksPath"])
            .ok()
            .stdout
            .trim(),
        folder.display().to_string()
    );
    let writer = counting_agent(&env, "writer", "Drafted everywhere");
    env.start(
        "writer",
        &["--driver", "exec", "--", writer.to_str().unwrap()],
    );
    git(
        &env,
        &dir,
        &["config", "--global", "baton.commitAgent", "writer"],
    )
    .ok();
    stage(&env, &dir, "a", "a\n");
    git(&env, &dir, &["commit", "-q"]).ok();
    assert_eq!(message(&env, &dir), "Drafted everywhere");
    assert_eq!(
        fs::read_to_string(env.path("own.log")).unwrap(),
        "pre-commit ran\nown .git/COMMIT_EDITMSG\n"
    );
    // From inside a repository, the folder is the shared one: installing says so, and taking
    // the hooks out of every repository is left to --global.
    let here = baton(&env, &dir, &["install", "git"]).ok();
    assert!(
        here.stdout.contains("shared by every repository")
            && here.stdout.contains("already installed"),
        "{}",
        here.stdout
    );
    let out = baton(&env, &dir, &["uninstall", "git"]).expect(2);
    assert!(
        out.stderr.contains("baton uninstall git --global"),
        "{}",
        out.stderr
    );
    assert!(folder.join("commit-msg").is_file());
    let check = baton(
        &env,
        env.dir.path(),
        &["install", "git", "--global", "--check"],
    )
    .ok();
    assert!(
        check.stdout.contains("prepare-commit-msg: baton's"),
        "{}",
        check.stdout
    );
    let again = baton(&env, env.dir.path(), &["install", "git", "--global"]).ok();
    assert!(
        again.stdout.contains("already installed"),
        "{}",
        again.stdout
    );
    git(
        &env,
        &dir,
        &["config", "--global", "--unset", "baton.commitAgent"],
    )
    .ok();
    let out = baton(&env, env.dir.path(), &["uninstall", "git", "--global"]).ok();
    assert!(
        out.stdout.contains("core.hooksPath (global): unset again"),
        "{}",
        out.stdout
    );
    assert!(!folder.exists());
    assert_eq!(
        String::from_utf8_lossy(&fs::read(&global).unwrap()),
        String::from_utf8_lossy(&before),
        "the global config as it was"
    );
    // A global core.hooksPath of the user's: installed there, and said so.
    let theirs = env.path("their-hooks");
    git(
        &env,
        &dir,
        &[
            "config",
            "--global",
            "core.hooksPath",
            theirs.to_str().unwrap(),
        ],
    )
    .ok();
    let out = baton(&env, env.dir.path(), &["install", "git", "--global"]).ok();
    assert!(
        out.stdout.contains(&format!(
            "hooks folder: {} (your global core.hooksPath)",
            theirs.display()
        )),
        "{}",
        out.stdout
    );
    assert!(theirs.join("commit-msg").is_file());
    baton(&env, env.dir.path(), &["uninstall", "git", "--global"]).ok();
    assert!(!theirs.join("commit-msg").exists());
    assert_eq!(
        git(&env, &dir, &["config", "--global", "core.hooksPath"])
            .ok()
            .stdout
            .trim(),
        theirs.display().to_string(),
        "the user's setting stays"
    );
}

#[test]
fn a_hook_of_yours_in_the_global_folder_is_kept_and_runs_before_the_repositorys_own() {
    if !have(&["git"]) {
        return;
    }
    let env = Env::new();
    let dir = repo(&env, "repo");
    let log = env.path("hooks.log");
    let script = |who: &str| format!("#!/bin/sh\necho {who} >> '{}'\n", log.display());
    baton(&env, env.dir.path(), &["install", "git", "--global"]).ok();
    let folder = env.path("xdg/baton/git-hooks");
    // A hook of the user's own in that folder (where a relay was), and the repository's own.
    fs::write(folder.join("post-commit"), script("global")).unwrap();
    fs::set_permissions(
        folder.join("post-commit"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let own = dir.join(".git/hooks/post-commit");
    fs::write(&own, script("repository")).unwrap();
    fs::set_permissions(&own, fs::Permissions::from_mode(0o755)).unwrap();
    let again = baton(&env, env.dir.path(), &["install", "git", "--global"]).ok();
    assert!(
        again
            .stdout
            .contains("post-commit: installed; your hook is kept as post-commit.baton-orig"),
        "{}",
        again.stdout
    );
    stage(&env, &dir, "a", "a\n");
    git(&env, &dir, &["commit", "-q", "-m", "Both run"]).ok();
    assert_eq!(fs::read_to_string(&log).unwrap(), "global\nrepository\n");
    // Uninstall gives the user's hook its place back, and leaves the folder set: it is not empty.
    let out = baton(&env, env.dir.path(), &["uninstall", "git", "--global"]).ok();
    assert!(
        out.stdout.contains("other files are in it"),
        "{}",
        out.stdout
    );
    assert_eq!(
        fs::read_to_string(folder.join("post-commit")).unwrap(),
        script("global")
    );
}

#[test]
fn install_editor_keeps_the_editor_it_replaces_and_uninstall_puts_it_back() {
    if !have(&["git"]) {
        return;
    }
    let env = Env::new();
    let dir = repo(&env, "repo");
    let opened = env.path("opened");
    let vim = env.script(
        "my-vim",
        &format!(
            "#!/bin/sh\necho \"$1\" > '{}'\necho 'Typed by hand' > \"$1\"\n",
            opened.display()
        ),
    );
    git(
        &env,
        &dir,
        &["config", "core.editor", vim.to_str().unwrap()],
    )
    .ok();
    let config_before = fs::read(dir.join(".git/config")).unwrap();
    let out = baton(&env, &dir, &["install", "git", "--editor"]).ok();
    assert!(out.stdout.contains("as before"), "{}", out.stdout);
    let editor = git(&env, &dir, &["config", "core.editor"]).ok().stdout;
    assert!(editor.trim().ends_with("/baton"), "{editor}");
    // A message without a directive opens the editor it replaced; one with a directive is
    // delegated (the GUI's short PATH has no baton: core.editor names it by its path).
    env.start("msg", &["--driver", "exec", "--", "echo", "From the agent"]);
    let commit = |args: &[&str]| {
        let mut cmd = git_cmd(&env, &dir, args);
        cmd.env_remove("GIT_EDITOR");
        env.output(cmd, None).ok()
    };
    stage(&env, &dir, "a", "a\n");
    commit(&["commit", "-q"]);
    assert_eq!(message(&env, &dir), "Typed by hand");
    assert!(fs::read_to_string(&opened)
        .unwrap()
        .contains("COMMIT_EDITMSG"));
    stage(&env, &dir, "b", "b\n");
    commit(&["commit", "-q", "-e", "-m", "@msg write it"]);
    assert_eq!(message(&env, &dir), "From the agent");
    let again = baton(&env, &dir, &["install", "git", "--editor"]).ok();
    assert!(
        again.stdout.contains("core.editor already runs baton"),
        "{}",
        again.stdout
    );
    let out = baton(&env, &dir, &["uninstall", "git"]).ok();
    assert!(out.stdout.contains("core.editor: "), "{}", out.stdout);
    assert_eq!(
        String::from_utf8_lossy(&fs::read(dir.join(".git/config")).unwrap()),
        String::from_utf8_lossy(&config_before),
        ".git/config as it was"
    );
}

#[test]
fn the_hooks_find_baton_by_its_recorded_path_else_on_path() {
    if !have(&["git"]) {
        return;
    }
    let env = Env::new();
    let dir = repo(&env, "repo");
    env.start("fast", &["--driver", "exec", "--", "echo", "Drafted"]);
    // Installed by a baton that then moves away.
    let moved = env.path("old/baton");
    fs::create_dir_all(moved.parent().unwrap()).unwrap();
    env.copy_program(BIN, &moved);
    let mut cmd = with_git_env(&env, Command::new(&moved), &dir);
    cmd.args(["install", "git"]);
    env.output(cmd, None).ok();
    fs::remove_file(&moved).unwrap();
    git(&env, &dir, &["config", "baton.commitAgent", "fast"]).ok();
    let check = baton(&env, &dir, &["install", "git", "--check"]);
    assert_eq!(check.code(), 2, "{}", check.context);
    assert!(check.stdout.contains("is missing"), "{}", check.stdout);
    // Not on PATH either: one line, the commit goes on.
    stage(&env, &dir, "a", "a\n");
    let typing = typing_editor(&env);
    let out = git_with(&env, &dir, &["commit", "-q"], &[("GIT_EDITOR", &typing)]).ok();
    assert_eq!(
        out.stderr.lines().count(),
        2,
        "one line per hook: {}",
        out.stderr
    );
    assert!(
        out.stderr.starts_with("baton: no draft: baton is not at ")
            && out.stderr.contains("nor on PATH; the commit goes on"),
        "{}",
        out.stderr
    );
    // On PATH: found there.
    let bin = env.path("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("baton")).unwrap();
    stage(&env, &dir, "b", "b\n");
    let path = format!("{}:{}", bin.display(), short_path());
    let out = git_with(&env, &dir, &["commit", "-q"], &[("PATH", &path)]).ok();
    assert_eq!(out.stderr, "");
    assert_eq!(message(&env, &dir), "Drafted");
}

#[test]
fn a_large_change_is_sent_bounded() {
    if !have(&["git"]) {
        return;
    }
    let env = Env::new();
    let dir = repo(&env, "repo");
    let writer = counting_agent(&env, "writer", "Add the big file");
    env.start(
        "writer",
        &["--driver", "exec", "--", writer.to_str().unwrap()],
    );
    baton(&env, &dir, &["install", "git"]).ok();
    git(&env, &dir, &["config", "baton.commitAgent", "writer"]).ok();
    let big: String = (0..8000)
        .map(|i| format!("line {i} of a big file\n"))
        .collect();
    stage(&env, &dir, "big.txt", &big);
    stage(&env, &dir, "small.txt", "small\n");
    git(&env, &dir, &["commit", "-q"]).ok();
    assert_eq!(message(&env, &dir), "Add the big file");
    let prompt = prompt_of(&env, "writer");
    assert!(
        prompt.contains(" big.txt   | 8000 +"),
        "the stat lists every file: {}",
        &prompt[..2000]
    );
    assert!(
        prompt.contains(" small.txt |    1 +"),
        "{}",
        &prompt[..2000]
    );
    assert!(
        prompt.contains("[… the patch is cut here, at 64 KiB: "),
        "{}",
        &prompt[prompt.len() - 500..]
    );
    assert!(prompt.len() < 70 << 10, "{} bytes", prompt.len());
    assert!(
        !prompt.contains("line 7999 of"),
        "the end of the patch is left out"
    );
}

#[test]
fn bad_arguments_are_usage_errors() {
    if !have(&["git"]) {
        return;
    }
    let env = Env::new();
    let plain = env.path("not-a-repo");
    fs::create_dir_all(&plain).unwrap();
    let cases: [(&[&str], &str); 7] = [
        (
            &["install", "git", "--global", "--repo", "x"],
            "cannot be used with",
        ),
        (
            &["install", "git", "--repo", "/nonexistent/place"],
            "--repo /nonexistent/place",
        ),
        (&["install", "git"], "is not in a git repository"),
        (
            &["install", "git", "--check", "--editor"],
            "cannot be used with",
        ),
        (
            &["uninstall", "git", "--check"],
            "are for `baton install git`",
        ),
        (&["hook", "git-prepare"], "MESSAGE-FILE"),
        (&["hook", "git-commit-msg"], "MESSAGE-FILE"),
    ];
    for (args, says) in cases {
        let out = baton(&env, &plain, args).expect(2);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
    }
    let dir = repo(&env, "repo");
    let out = baton(&env, &dir, &["install", "git", "--check"]).expect(2);
    assert!(
        out.stdout.contains("prepare-commit-msg: not installed"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("not fully installed"), "{}", out.stdout);
    // A bad [git] table: every error with its place; the hooks say so and the commit goes on.
    fs::write(
        dir.join(".baton.toml"),
        "[git]\ncommit_agent = \"Bad Name\"\n",
    )
    .unwrap();
    baton(&env, &dir, &["install", "git"]).ok();
    let check = baton(&env, &dir, &["config", "check"]).expect(2);
    assert!(
        check.stderr.contains(".baton.toml:2:16"),
        "{}",
        check.stderr
    );
    stage(&env, &dir, "a", "a\n");
    let typing = typing_editor(&env);
    let out = git_with(&env, &dir, &["commit", "-q"], &[("GIT_EDITOR", &typing)]).ok();
    assert!(
        out.stderr.contains("baton: no draft: bad config: ")
            && out.stderr.contains(".baton.toml:2:16"),
        "{}",
        out.stderr
    );
    assert_eq!(message(&env, &dir), "Manual message");
}

#[test]
fn a_runner_started_from_git_commit_carries_none_of_the_commits_environment() {
    if !have(&["git"]) {
        return;
    }
    let env = Env::new();
    let dir = repo(&env, "repo");
    fs::write(
        dir.join(".baton.toml"),
        "[agent.tests]\ndriver = \"shell\"\nworktree = true\n",
    )
    .unwrap();
    // baton as git's editor: the directive starts the agent on demand, in its own worktree.
    let out = git_with(
        &env,
        &dir,
        &[
            "commit",
            "--allow-empty",
            "-e",
            "-m",
            "@tests git rev-parse --abbrev-ref HEAD",
        ],
        &[("GIT_EDITOR", BIN)],
    )
    .ok();
    assert_eq!(message(&env, &dir).trim(), "baton/tests", "{}", out.stderr);
    let agent = fs::read_dir(env.home.join("agents"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("tests."))
        .unwrap();
    let pid = env.runner_pid(&agent);
    let environ = fs::read(format!("/proc/{pid}/environ")).unwrap();
    for var in environ.split(|&b| b == 0) {
        let var = String::from_utf8_lossy(var);
        for name in ["GIT_DIR=", "GIT_INDEX_FILE=", "GIT_EDITOR=", "GIT_PREFIX="] {
            assert!(!var.starts_with(name), "the runner carries {var}");
        }
    }
}

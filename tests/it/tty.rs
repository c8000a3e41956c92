//! The terminal path, under a real pseudo-terminal (tmux): keys read by baton, Ctrl-C as a byte,
//! the status line, retry / edit / back, and the terminal restored exactly with no typed key left.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::pane::Pane;
use crate::util::*;

/// A pane script: record the terminal settings, run baton on the prompt, record its exit code,
/// the settings again and whatever input is left unread, then wait.
fn pane_script(env: &Env, file: &Path, extra_env: &str) -> PathBuf {
    let d = env.dir.path().display();
    env.script(
        "pane.sh",
        &format!(
            "export BATON_HOME='{home}' {extra_env}\nunset BATON_AGENT VISUAL EDITOR TMUX\ncd '{d}'\nstty -g > before\n'{bin}' '{file}'\necho $? > rc.tmp\nstty -g > after\nstty -icanon min 0 time 0\ndd bs=1 count=100 2>/dev/null > leftover\nmv rc.tmp rc\nread _\n",
            home = env.home.display(),
            bin = BIN,
            file = file.display(),
        ),
    )
}

fn finished(env: &Env) -> i32 {
    wait_until("baton has exited in the pane", secs(15), || {
        env.path("rc").exists()
    });
    fs::read_to_string(env.path("rc"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn assert_terminal_restored(env: &Env) {
    let before = fs::read_to_string(env.path("before")).unwrap();
    let after = fs::read_to_string(env.path("after")).unwrap();
    assert_eq!(before, after, "stty -g before and after");
    assert_eq!(
        fs::read(env.path("leftover")).unwrap(),
        b"",
        "no typed key survives baton"
    );
}

#[test]
fn ctrl_c_is_read_as_a_key_cancels_and_restores_the_terminal() {
    if !have(&["tmux"]) {
        return;
    }
    let env = Env::new();
    env.start_gated("g");
    let text = "@g a prompt\nthat must survive";
    let file = env.path("prompt.md");
    fs::write(&file, text).unwrap();
    let tmux = Pane::start(&env, &pane_script(&env, &file, ""));
    wait_until("the agent has the task", secs(10), || {
        env.started_count() == 1
    });
    tmux.wait_for_screen("baton: @g working");
    tmux.wait_for_screen("Ctrl-C cancel");
    tmux.keys(&["abc", "Enter", "C-c"]);
    assert_eq!(finished(&env), 4);
    assert_terminal_restored(&env);
    assert_eq!(fs::read_to_string(&file).unwrap(), text);
    let id = env.task_ids().pop().unwrap();
    wait_until("the runner records the cancellation", secs(10), || {
        env.task_dir(&id).join("done.json").exists()
    });
    assert_eq!(env.done_json(&id)["state"], "cancelled");
}

#[test]
fn success_on_a_terminal_writes_the_answer_and_restores_the_terminal() {
    if !have(&["tmux"]) {
        return;
    }
    let env = Env::new();
    env.start_gated("g");
    let file = env.path("prompt.md");
    fs::write(&file, "@g echo me").unwrap();
    let tmux = Pane::start(&env, &pane_script(&env, &file, ""));
    tmux.wait_for_screen("baton: @g working");
    tmux.keys(&["x", "y"]);
    env.open_gate();
    assert_eq!(finished(&env), 0);
    assert_terminal_restored(&env);
    assert_eq!(fs::read_to_string(&file).unwrap(), "@g replied:\necho me\n");
}

#[test]
fn failure_on_a_terminal_offers_retry_and_retry_works() {
    if !have(&["tmux"]) {
        return;
    }
    let env = Env::new();
    // Fails the first time, answers the second.
    let flaky = env.script(
        "flaky.sh",
        &format!("#!/bin/sh\nif [ -e '{0}/tried' ]; then tr a-z A-Z; else touch '{0}/tried'; echo 'first try fails' >&2; exit 9; fi\n", env.dir.path().display()),
    );
    env.start(
        "flaky",
        &["--driver", "exec", "--", &flaky.display().to_string()],
    );
    let file = env.path("prompt.md");
    fs::write(&file, "@flaky again").unwrap();
    let tmux = Pane::start(&env, &pane_script(&env, &file, ""));
    tmux.wait_for_screen("[r] retry");
    assert!(
        tmux.screen().contains("status 9"),
        "the reason is on the screen:\n{}",
        tmux.screen()
    );
    assert!(!env.path("rc").exists(), "baton waits for a choice");
    tmux.keys(&["r"]);
    assert_eq!(finished(&env), 0);
    assert_terminal_restored(&env);
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        "@flaky replied:\nAGAIN\n"
    );
}

#[test]
fn failure_on_a_terminal_then_back_leaves_the_file_and_exits_with_the_code() {
    if !have(&["tmux"]) {
        return;
    }
    let env = Env::new();
    env.start("bad", &["--driver", "exec", "--", "false"]);
    let file = env.path("prompt.md");
    fs::write(&file, "@bad nope").unwrap();
    let tmux = Pane::start(&env, &pane_script(&env, &file, ""));
    tmux.wait_for_screen("[any other key] back");
    tmux.keys(&["q"]);
    assert_eq!(finished(&env), 1);
    assert_terminal_restored(&env);
    assert_eq!(fs::read_to_string(&file).unwrap(), "@bad nope");
}

#[test]
fn failure_on_a_terminal_then_edit_opens_the_real_editor_in_the_same_process() {
    if !have(&["tmux"]) {
        return;
    }
    let env = Env::new();
    env.start("bad", &["--driver", "exec", "--", "false"]);
    let file = env.path("prompt.md");
    fs::write(&file, "@bad nope").unwrap();
    let editor = env.script(
        "editor.sh",
        &format!(
            "#!/bin/sh\necho \"$@\" > '{}/edited'\n",
            env.dir.path().display()
        ),
    );
    let tmux = Pane::start(
        &env,
        &pane_script(&env, &file, &format!("BATON_EDITOR='{}'", editor.display())),
    );
    tmux.wait_for_screen("[e] edit the prompt");
    tmux.keys(&["e"]);
    assert_eq!(finished(&env), 0, "the editor's exit status");
    assert_eq!(
        fs::read_to_string(env.path("edited")).unwrap().trim(),
        file.display().to_string()
    );
    assert_terminal_restored(&env);
    assert_eq!(fs::read_to_string(&file).unwrap(), "@bad nope");
}

#[test]
fn detach_leaves_the_task_running_and_the_file_intact() {
    if !have(&["tmux"]) {
        return;
    }
    let env = Env::new();
    env.start_gated("g");
    let file = env.path("prompt.md");
    fs::write(&file, "@g later").unwrap();
    let tmux = Pane::start(&env, &pane_script(&env, &file, ""));
    tmux.wait_for_screen("baton: @g working");
    tmux.keys(&["d"]);
    let id = env.task_ids().pop().unwrap();
    tmux.wait_for_screen(&format!("baton wait {id}"));
    tmux.keys(&["Enter"]);
    assert_eq!(finished(&env), 4);
    assert_terminal_restored(&env);
    assert_eq!(fs::read_to_string(&file).unwrap(), "@g later");
    env.open_gate();
    assert_eq!(env.run(["wait", &id]).ok().stdout, "later\n");
}

#[test]
fn detaching_a_fan_out_keeps_the_answers_already_in() {
    if !have(&["tmux"]) {
        return;
    }
    let env = Env::new();
    env.start_gated("g");
    env.start("fast", &["--driver", "exec", "--", "echo", "fast said"]);
    let file = env.path("prompt.md");
    fs::write(&file, "@fast @g compare").unwrap();
    let tmux = Pane::start(&env, &pane_script(&env, &file, ""));
    let fast = || {
        env.task_ids().into_iter().find(|id| {
            fs::read_to_string(env.task_dir(id).join("task.json"))
                .is_ok_and(|t| t.contains("\"agent\":\"fast\""))
        })
    };
    wait_until("fast has answered", secs(10), || {
        fast().is_some_and(|id| env.task_dir(&id).join("done.json").exists())
    });
    let fast = fast().unwrap();
    tmux.wait_for_screen("@g working");
    tmux.keys(&["d"]);
    tmux.wait_for_screen("baton wait");
    tmux.keys(&["Enter"]);
    assert_eq!(finished(&env), 4);
    assert_eq!(fs::read_to_string(&file).unwrap(), "@fast @g compare");
    // The answer that was in when the wait stopped is in the results, with the other to come.
    let results = env.run(["results"]).ok();
    assert!(
        results
            .stdout
            .contains(&format!("==> @fast (task {fast}, ok) <==\nfast said")),
        "{}",
        results.stdout
    );
    assert!(
        results
            .stderr
            .contains("1 background task(s) still running"),
        "{}",
        results.stderr
    );
    env.open_gate();
}

#[test]
fn while_a_gate_judges_the_status_line_says_so_and_ctrl_c_stops_it() {
    if !have(&["tmux"]) {
        return;
    }
    let env = Env::new();
    let hold = env.path("hold");
    nix::unistd::mkfifo(&hold, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let gate = env.script(
        "gate.sh",
        &format!("#!/bin/sh\nread _ < '{}'\n", hold.display()),
    );
    fs::write(
        env.dir.path().join(".baton.toml"),
        format!(
            "[agent.w]\ndriver = \"exec\"\ncommand = [\"echo\", \"done it\"]\ngate = \"{}\"\n",
            gate.display()
        ),
    )
    .unwrap();
    let text = "@w do it";
    let file = env.path("prompt.md");
    fs::write(&file, text).unwrap();
    let tmux = Pane::start(&env, &pane_script(&env, &file, ""));
    tmux.wait_for_screen("judges @w's answer");
    tmux.keys(&["C-c"]);
    assert_eq!(finished(&env), 4);
    assert_terminal_restored(&env);
    assert_eq!(fs::read_to_string(&file).unwrap(), text);
}

#[test]
fn a_signal_while_waiting_on_a_terminal_restores_it() {
    if !have(&["tmux"]) {
        return;
    }
    let env = Env::new();
    env.start_gated("g");
    let file = env.path("prompt.md");
    fs::write(&file, "@g hold").unwrap();
    let tmux = Pane::start(&env, &pane_script(&env, &file, ""));
    tmux.wait_for_screen("baton: @g working");
    let pgrep = Command::new("pgrep")
        .args(["-f", &format!("{BIN} {}", file.display())])
        .output()
        .unwrap();
    let pid: u32 = String::from_utf8_lossy(&pgrep.stdout)
        .trim()
        .parse()
        .expect("baton's pid");
    signal(pid, nix::sys::signal::Signal::SIGHUP);
    assert_eq!(finished(&env), 4);
    assert_terminal_restored(&env);
    assert_eq!(fs::read_to_string(&file).unwrap(), "@g hold");
}

#[test]
fn detaching_a_pipeline_hands_the_rest_of_it_to_the_background() {
    if !have(&["tmux"]) {
        return;
    }
    let env = Env::new();
    env.start_gated("g");
    env.start(
        "next",
        &["--driver", "exec", "--", "sh", "-c", "echo next saw:; cat"],
    );
    let file = env.path("prompt.md");
    fs::write(&file, "@g | @next do it").unwrap();
    let tmux = Pane::start(&env, &pane_script(&env, &file, ""));
    tmux.wait_for_screen("baton: stage 1/2 @g working");
    tmux.keys(&["d"]);
    tmux.wait_for_screen("as a workflow in the background");
    tmux.keys(&["Enter"]);
    assert_eq!(finished(&env), 4);
    assert_terminal_restored(&env);
    assert_eq!(fs::read_to_string(&file).unwrap(), "@g | @next do it");
    // Nobody waits any more, yet stage 2 runs once stage 1 answers.
    let root = env.task_ids().pop().unwrap();
    env.open_gate();
    let record = env.task_dir(&root).join("workflow.json");
    wait_until("the workflow has ended", secs(20), || {
        fs::read_to_string(&record).is_ok_and(|r| r.contains("\"state\":\"ok\""))
    });
    assert!(env.run(["results"]).ok().stdout.contains("next saw:"));
    let out = env.run(["wait", &root]).ok().stdout;
    assert!(
        out.starts_with("next saw:\n") && out.contains("do it"),
        "{out}"
    );
}

#[test]
fn once_detached_the_caller_is_not_taken_for_the_workflows_runner() {
    if !have(&["tmux"]) {
        return;
    }
    let env = Env::new();
    env.start_gated("g");
    env.start("next", &["--driver", "exec", "--", "cat"]);
    let file = env.path("prompt.md");
    fs::write(&file, "@g | @next do it").unwrap();
    let tmux = Pane::start(&env, &pane_script(&env, &file, ""));
    tmux.wait_for_screen("baton: stage 1/2 @g working");
    tmux.keys(&["d"]);
    tmux.wait_for_screen("as a workflow in the background");
    let root = env.task_ids().pop().unwrap();
    // The supervisor dies while the caller still waits for a key: wait says no one runs the
    // workflow, at once, rather than wait on the caller.
    signal(env.supervisor(), nix::sys::signal::Signal::SIGKILL);
    let out = env.run(["wait", &root, "--timeout", "20s"]).expect(5);
    assert!(
        out.stderr.contains("no one runs workflow"),
        "{}",
        out.stderr
    );
    tmux.keys(&["Enter"]);
    assert_eq!(finished(&env), 4);
    assert_eq!(fs::read_to_string(&file).unwrap(), "@g | @next do it");
    env.open_gate();
}

#[test]
fn ask_on_a_terminal_shows_the_tool_the_agent_uses_on_its_status_line() {
    if !have(&["tmux", "python3"]) {
        return;
    }
    let env = Env::new();
    let gate = claude_with_tool_gate(&env, "pl");
    let script = env.script(
        "ask.sh",
        &format!(
            "export BATON_HOME='{home}'\nunset BATON_AGENT VISUAL EDITOR TMUX\ncd '{d}'\n'{bin}' ask pl 'run the TOOL' > answer\necho $? > rc.tmp\nmv rc.tmp rc\nread _\n",
            home = env.home.display(),
            d = env.dir.path().display(),
            bin = BIN,
        ),
    );
    let tmux = Pane::start(&env, &script);
    tmux.wait_for_screen("baton: @pl working");
    tmux.wait_for_screen("│ Bash: cargo test -q │ Ctrl-C cancels");
    open_tool_gate(&gate);
    assert_eq!(finished(&env), 0);
    assert!(fs::read_to_string(env.path("answer"))
        .unwrap()
        .contains("run the TOOL"));
    // The status line is gone once the answer is printed.
    assert!(!tmux.screen().contains("baton: @pl"), "{}", tmux.screen());
}

#[test]
fn a_panic_while_waiting_on_a_terminal_restores_it_and_leaves_the_file() {
    if !have(&["tmux"]) {
        return;
    }
    let env = Env::new();
    env.start_gated("g");
    let file = env.path("prompt.md");
    fs::write(&file, "@g hold").unwrap();
    let tmux = Pane::start(
        &env,
        &pane_script(&env, &file, "BATON_TEST_PANIC=status-drawn"),
    );
    // baton aborts on a panic: SIGABRT, 128 + 6 as the shell reports it.
    assert_eq!(finished(&env), 134);
    assert_terminal_restored(&env);
    assert_eq!(fs::read_to_string(&file).unwrap(), "@g hold");
    drop(tmux);
}

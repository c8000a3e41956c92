//! `baton status --watch`: full-screen in a real pseudo-terminal (a tmux pane) — redrawn when a
//! task starts and ends, the elapsed time moving, no wake-up while idle, the terminal restored
//! exactly on `q`, Ctrl-C and SIGTERM — and, without a terminal, one snapshot per change.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::pane::Pane;
use crate::streamed::Streamed;
use crate::util::*;

/// The pane's script: the terminal settings before and after `baton status --watch`, its exit
/// code, and whatever typed input it left unread.
fn pane_script(env: &Env) -> PathBuf {
    pane_script_with(env, "")
}

/// `pane_script`, with `extra` variables (`K=V …`) in baton's environment.
fn pane_script_with(env: &Env, extra: &str) -> PathBuf {
    env.script(
        "pane.sh",
        &format!(
            "export BATON_HOME='{home}' {extra}\nunset BATON_AGENT VISUAL EDITOR TMUX\ncd '{dir}'\nstty -g > before\n'{bin}' status --watch\necho $? > rc.tmp\nstty -g > after\nstty -icanon min 0 time 0\ndd bs=1 count=100 2>/dev/null > leftover\nstty \"$(cat before)\"\nmv rc.tmp rc\nread _\n",
            home = env.home.display(),
            dir = env.dir.path().display(),
            bin = BIN,
        ),
    )
}

fn exit_code(env: &Env) -> i32 {
    wait_until("the view has exited in the pane", secs(15), || {
        env.path("rc").exists()
    });
    fs::read_to_string(env.path("rc"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[track_caller]
fn assert_terminal_restored(env: &Env, pane: &Pane) {
    let before = fs::read_to_string(env.path("before")).unwrap();
    let after = fs::read_to_string(env.path("after")).unwrap();
    assert_eq!(before, after, "stty -g before and after");
    assert_eq!(
        fs::read(env.path("leftover")).unwrap(),
        b"",
        "no typed key survives"
    );
    let screen = pane.screen();
    assert!(
        !screen.contains("AGENT"),
        "the main screen is back, without the view:\n{screen}"
    );
}

/// The view's process (in the pane).
fn view_pid(env: &Env) -> u32 {
    let mut found = None;
    wait_until("the view runs", secs(10), || {
        found = processes_with_home(&env.home).into_iter().find(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("--watch"))
        });
        found.is_some()
    });
    found.unwrap() as u32
}

/// How many times process `pid` has gone to sleep of its own accord (each wake-up is one).
fn wakeups(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The line of agent `name` on the screen.
fn agent_line(screen: &str, name: &str) -> Option<String> {
    screen
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .map(str::to_string)
}

#[test]
fn the_live_view_redraws_when_a_task_starts_and_ends_and_q_restores_the_terminal() {
    if !have(&["tmux"]) {
        return;
    }
    let env = Env::new();
    env.start_gated("g");
    let pane = Pane::start(&env, &pane_script(&env));
    pane.wait_for("g idle", |s| {
        agent_line(s, "g").is_some_and(|l| l.contains("idle"))
    });
    assert!(pane.screen().contains("q quits"));

    let id = env.send("g", "a task");
    pane.wait_for("g working on the task", |s| {
        agent_line(s, "g").is_some_and(|l| l.contains("working") && l.contains(&id))
    });
    // The elapsed time moves while it runs.
    pane.wait_for("an elapsed time of 2s", |s| {
        agent_line(s, "g").is_some_and(|l| l.contains(" 2s "))
    });
    env.open_gate();
    pane.wait_for("g idle again", |s| {
        agent_line(s, "g").is_some_and(|l| l.contains("idle") && l.contains(": ok"))
    });
    // A key that is not q changes nothing; q quits.
    pane.keys(&["x"]);
    pane.keys(&["q"]);
    assert_eq!(exit_code(&env), 0);
    assert_terminal_restored(&env, &pane);
}

#[test]
fn an_idle_view_never_wakes_and_a_running_task_wakes_it_once_a_second() {
    if !have(&["tmux"]) {
        return;
    }
    let env = Env::new();
    env.start_gated("g");
    let pane = Pane::start(&env, &pane_script(&env));
    pane.wait_for("g idle", |s| {
        agent_line(s, "g").is_some_and(|l| l.contains("idle"))
    });
    let pid = view_pid(&env);
    // A measurement window, not a synchronisation: what the view does in it is counted.
    let window = Duration::from_millis(1500);
    let before = wakeups(pid);
    std::thread::sleep(window);
    let idle = wakeups(pid) - before;
    assert!(
        idle <= 1,
        "{idle} wake-ups in {window:?} with nothing running"
    );

    env.send("g", "a task");
    pane.wait_for("g working", |s| {
        agent_line(s, "g").is_some_and(|l| l.contains("working"))
    });
    let before = wakeups(pid);
    std::thread::sleep(Duration::from_millis(2500));
    let running = wakeups(pid) - before;
    // The display clock: about one a second (the lower bound shows it ticks; the upper bound
    // that it does nothing more, with room for a loaded machine).
    assert!(
        (2..=8).contains(&running),
        "{running} wake-ups in 2.5 s while a task runs"
    );
    env.open_gate();
    pane.keys(&["C-c"]);
    assert_eq!(exit_code(&env), 0, "Ctrl-C quits");
    assert_terminal_restored(&env, &pane);
}

#[test]
fn sigterm_restores_the_terminal() {
    if !have(&["tmux"]) {
        return;
    }
    let env = Env::new();
    env.start("sh1", &[]);
    let pane = Pane::start(&env, &pane_script(&env));
    pane.wait_for("sh1 idle", |s| {
        agent_line(s, "sh1").is_some_and(|l| l.contains("idle"))
    });
    signal(view_pid(&env), Signal::SIGTERM);
    assert_eq!(exit_code(&env), 0);
    assert_terminal_restored(&env, &pane);
}

#[test]
fn without_a_terminal_it_prints_one_snapshot_per_change() {
    let env = Env::new();
    env.start_gated("g");
    let mut view = Streamed::spawn(env.cmd(["status", "--watch"]));
    view.wait_for("g idle", |t| {
        t.lines().any(|l| l.starts_with("g ") && l.contains("idle"))
    });
    let id = env.send("g", "a task");
    view.wait_for("g working", |t| {
        t.lines()
            .any(|l| l.starts_with("g ") && l.contains("working") && l.contains(&id))
    });
    env.open_gate();
    view.wait_for("g idle after its task", |t| {
        t.lines()
            .any(|l| l.starts_with("g ") && l.contains("idle") && l.contains(&format!("{id}: ok")))
    });
    env.run(["status"]).ok(); // reads only: no snapshot for it
    let second = env.send("g", "another");
    view.wait_for("the second task", |t| t.contains(&second));
    view.signal(Signal::SIGTERM);
    assert_eq!(view.exit(secs(10)).code(), Some(0));
    let text = view.text();
    let snapshots: Vec<&str> = text.split("--- ").filter(|s| !s.is_empty()).collect();
    assert!(snapshots.len() >= 3, "{text}");
    // Each snapshot differs from the one before: printed for a change, never for nothing.
    let bodies: Vec<&str> = snapshots
        .iter()
        .map(|s| s.split_once('\n').map_or("", |(_, body)| body))
        .collect();
    for pair in bodies.windows(2) {
        assert_ne!(pair[0], pair[1], "a snapshot repeated:\n{text}");
    }
    assert!(!text.contains('\x1b'), "no escape codes in a pipe");
}

#[test]
fn a_panic_restores_the_terminal_and_its_message_is_seen() {
    if !have(&["tmux"]) {
        return;
    }
    let env = Env::new();
    let pane = Pane::start(
        &env,
        &pane_script_with(&env, "BATON_TEST_PANIC=watch-drawn"),
    );
    // baton aborts on a panic (SIGABRT: 128 + 6 as the shell reports it).
    assert_eq!(exit_code(&env), 134, "the exit code of a panic");
    assert_terminal_restored(&env, &pane);
    let screen = pane.screen();
    assert!(
        screen.contains("test panic at watch-drawn"),
        "the message is on the main screen:\n{screen}"
    );
}

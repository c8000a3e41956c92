//! A team, declared once: config files, agents started on demand, pools, the global queue,
//! per-project agents, worktrees.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sys::signal::Signal;

use crate::util::*;

/// An exec agent command that records each task it starts (`agent task` in `started`), then
/// waits at a gate of its own (`gates/<task id>`) until the test releases it, then answers
/// `cat` of its prompt.
fn per_task_gate(env: &Env) -> String {
    let gates = env.path("gates");
    fs::create_dir_all(&gates).unwrap();
    let script = env.script(
        "per-task-gate.sh",
        &format!(
            "#!/bin/sh\ng='{gates}'/$BATON_TASK_ID\nmkfifo \"$g\"\nexec 3<> \"$g\"\necho \"$BATON_AGENT $BATON_TASK_ID\" >> '{started}'\nread _ <&3\ncat\n",
            gates = gates.display(),
            started = env.path("started").display()
        ),
    );
    script.display().to_string()
}

/// The tasks started so far, as (agent id, task id).
fn started(env: &Env) -> Vec<(String, String)> {
    fs::read_to_string(env.path("started"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, t)| (a.to_string(), t.to_string()))
        .collect()
}

/// Lets the task `id`, waiting at its own gate, go on.
fn release(env: &Env, id: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(env.path("gates").join(id))
        .expect("the task waits at its gate");
    f.write_all(b"go\n").unwrap();
}

fn send_in(env: &Env, dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["send"];
    all.extend_from_slice(args);
    run_in(env, dir, &all).ok().stdout.trim().to_string()
}

#[test]
fn a_declared_agent_starts_on_demand_from_ask_and_from_editor_mode() {
    let env = Env::new();
    let shop = project(
        &env,
        "shop",
        "[agent.planning]\ndriver = \"exec\"\ncommand = [\"tr\", \"a-z\", \"A-Z\"]\ndescription = \"plans\"\n",
    );
    assert_eq!(
        run_in(&env, &shop, &["ask", "planning", "plan dark mode"])
            .ok()
            .stdout,
        "PLAN DARK MODE\n"
    );
    // Claude Code runs its editor in the project's folder: the same agent answers Ctrl-G.
    run_in(&env, &shop, &["agent", "stop", "planning"]).ok();
    let file = shop.join("prompt.md");
    fs::write(&file, "@planning and the tests").unwrap();
    run_in(&env, &shop, &[file.to_str().unwrap()]).ok();
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        "@planning replied:\nAND THE TESTS\n"
    );
    let status = run_in(&env, &shop, &["status"]).ok().stdout;
    assert!(
        status.contains(&format!("project {}", shop.display())) && status.contains("planning"),
        "{status}"
    );
    // From elsewhere, the project is named explicitly.
    assert_eq!(
        env.run(["ask", "planning", "x", "--project", shop.to_str().unwrap()])
            .ok()
            .stdout,
        "X\n"
    );
    let out = env.run(["ask", "planning", "x"]).expect(2);
    assert!(out.stderr.contains("unknown agent"), "{}", out.stderr);
}

#[test]
fn a_stop_signal_while_an_agent_starts_on_demand_lets_it_start_and_cancels_the_ask() {
    let env = Env::new();
    let shop = project(
        &env,
        "shop",
        "[agent.planning]\ndriver = \"exec\"\ncommand = [\"cat\"]\n",
    );
    // The runner stops before it reports that it is ready; the ask waits for it, in `poll`.
    let mut ask = env.cmd(["ask", "planning", "a plan"]);
    ask.current_dir(&shop)
        .env("BATON_TEST_PAUSE", "before-ready")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let asker = ask.spawn().unwrap();
    let mut found = None;
    wait_until("the runner starts", secs(10), || {
        found = processes_with_home(&env.home).into_iter().find(|&pid| {
            pid != asker.id() as i32
                && fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains("serve"))
        });
        found.is_some()
    });
    let runner = found.unwrap();
    wait_stopped(runner as u32);
    wait_until("the ask waits in poll", secs(10), || {
        sleeps_in_poll(asker.id())
    });
    // The signal wakes that wait. Once the ask has taken it and sleeps again (or has given up
    // on the start), the runner goes on: it must be waited for still, then the ask stops.
    signal(asker.id(), Signal::SIGTERM);
    let ask = asker.id();
    wait_until("the ask has taken the signal", secs(10), || {
        let Ok(status) = fs::read_to_string(format!("/proc/{ask}/status")) else {
            return true;
        };
        let none_pending = ["SigPnd:", "ShdPnd:"].iter().all(|k| {
            status.lines().find(|l| l.starts_with(k)).is_some_and(|l| {
                l.trim_start_matches(k)
                    .trim()
                    .trim_start_matches('0')
                    .is_empty()
            })
        });
        let asleep = sleeps_in_poll(ask);
        let gone = status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'));
        none_pending && (asleep || gone)
    });
    // (A runner that the ask killed is gone already: the asserts below say so.)
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(runner), Signal::SIGCONT);
    let (st, _, err) = finish(asker, None, secs(20)).expect("the ask ends");
    let err = String::from_utf8_lossy(&err);
    assert_eq!(st.code(), Some(4), "{err}");
    assert!(err.contains("SIGTERM"), "{err}");
    assert!(!err.contains("did not report ready"), "{err}");
    assert!(err.contains("agent planning (no task):"), "{err}");
    // Nothing was delivered: the agent never saw what the caller no longer wanted.
    assert!(env.task_ids().is_empty(), "{:?}", env.task_ids());
    // The agent was started, and that runner serves.
    assert_eq!(
        run_in(&env, &shop, &["ask", "planning", "again"])
            .ok()
            .stdout,
        "again\n"
    );
    assert!(
        processes_with_home(&env.home).contains(&runner),
        "the runner started on demand is gone"
    );
}

#[test]
fn sixteen_callers_racing_to_start_an_agent_start_one_runner() {
    let env = std::sync::Arc::new(Env::new());
    let shop = project(
        &env,
        "shop",
        "[agent.racer]\ndriver = \"exec\"\ncommand = [\"cat\"]\n",
    );
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let (env, shop) = (std::sync::Arc::clone(&env), shop.clone());
            std::thread::spawn(move || {
                let prompt = format!("caller {i}");
                assert_eq!(
                    run_in(&env, &shop, &["ask", "racer", &prompt]).ok().stdout,
                    format!("{prompt}\n")
                );
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let agents = fs::read_dir(env.home.join("agents")).unwrap().count();
    assert_eq!(agents, 1);
    let dir = fs::read_dir(env.home.join("agents"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let log = fs::read_to_string(dir.join("log")).unwrap();
    assert_eq!(log.matches("runner started").count(), 1, "{log}");
}

#[test]
fn a_manual_agent_is_not_started_and_a_missing_command_fails_at_once() {
    let env = Env::new();
    let shop = project(
        &env,
        "shop",
        "[agent.by_hand]\ndriver = \"exec\"\ncommand = [\"cat\"]\nstart = \"manual\"\n\n[agent.broken]\ndriver = \"exec\"\ncommand = [\"/no/such/program\"]\n",
    );
    let out = run_in(&env, &shop, &["ask", "by_hand", "x"]).expect(5);
    assert!(
        out.stderr.contains("baton agent start by_hand") && out.stderr.contains("manual"),
        "{}",
        out.stderr
    );
    run_in(&env, &shop, &["agent", "start", "by_hand"]).ok();
    assert_eq!(
        run_in(&env, &shop, &["ask", "by_hand", "y"]).ok().stdout,
        "y\n"
    );
    let out = run_in(&env, &shop, &["ask", "broken", "x"]).expect(5);
    assert!(
        out.stderr.contains("could not be started") && out.stderr.contains("/no/such/program"),
        "{}",
        out.stderr
    );
    let names: Vec<String> = fs::read_dir(env.home.join("agents"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with("broken")), "{names:?}");
}

#[test]
fn a_pool_grows_to_max_and_queues_beyond_it() {
    let env = Env::new();
    let gate = per_task_gate(&env);
    let shop = project(
        &env,
        "shop",
        &format!("[pool.coding]\ndriver = \"exec\"\ncommand = [\"{gate}\"]\nmax = 2\n"),
    );
    let ids: Vec<String> = (0..4)
        .map(|i| send_in(&env, &shop, &["coding", &format!("step {i}")]))
        .collect();
    wait_until("two members run a task each", secs(10), || {
        started(&env).len() == 2
    });
    let running = started(&env);
    let members: std::collections::BTreeSet<&str> =
        running.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(members.len(), 2, "two members: {running:?}");
    assert!(
        members.iter().all(|m| m.starts_with("coding-")),
        "{members:?}"
    );
    // No third member: the other two tasks wait in the pool's queue.
    let agents: Vec<String> = fs::read_dir(env.home.join("agents"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !agents.iter().any(|a| a.starts_with("coding-3")),
        "{agents:?}"
    );
    // Each release lets exactly one queued task start, on the member it freed.
    for n in 2..4 {
        let (_, first) = started(&env)[n - 2].clone();
        release(&env, &first);
        wait_until("the next queued task starts", secs(10), || {
            started(&env).len() == n + 1
        });
    }
    for (_, id) in started(&env).iter().skip(2) {
        release(&env, id);
    }
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            env.run(["wait", id]).ok().stdout,
            format!("step {i}\n"),
            "task {i}"
        );
    }
    // Members are ordinary agents.
    assert_eq!(
        run_in(&env, &shop, &["agent", "stop", "coding-1"])
            .ok()
            .code(),
        0
    );
}

#[test]
fn a_pool_member_killed_mid_task_loses_that_task_and_the_next_gets_a_member() {
    let env = Env::new();
    let gate = per_task_gate(&env);
    let shop = project(
        &env,
        "shop",
        &format!("[pool.coding]\ndriver = \"exec\"\ncommand = [\"{gate}\"]\nmax = 1\n"),
    );
    let id = send_in(&env, &shop, &["coding", "doomed"]);
    wait_until("a member runs it", secs(10), || started(&env).len() == 1);
    let waiter = env
        .cmd(["wait", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let member = started(&env)[0].0.clone();
    let pid = fs::read_to_string(env.home.join("agents").join(&member).join("status.json"))
        .map(|s| {
            serde_json::from_str::<serde_json::Value>(&s).unwrap()["pid"]
                .as_i64()
                .unwrap()
        })
        .unwrap();
    signal(pid as u32, Signal::SIGKILL);
    let (status, _, stderr) = finish(waiter, None, secs(10)).expect("wait ends");
    assert_eq!(
        status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&stderr)
    );
    let next = send_in(&env, &shop, &["coding", "next"]);
    wait_until("a member runs the next task", secs(10), || {
        started(&env).len() == 2
    });
    release(&env, &started(&env)[1].1);
    assert_eq!(env.run(["wait", &next]).ok().stdout, "next\n");
}

#[test]
fn the_global_limit_starts_the_highest_priority_task_next() {
    let env = Env::new();
    let gate = per_task_gate(&env);
    let shop = project(
        &env,
        "shop",
        &format!(
            "max_concurrent = 1\n[agent.a]\ndriver = \"exec\"\ncommand = [\"{gate}\"]\n[agent.b]\ndriver = \"exec\"\ncommand = [\"{gate}\"]\n[agent.c]\ndriver = \"exec\"\ncommand = [\"{gate}\"]\n"
        ),
    );
    let first = send_in(&env, &shop, &["a", "first"]);
    wait_until("a's task holds the slot", secs(10), || {
        started(&env).len() == 1
    });
    let low = send_in(&env, &shop, &["b", "low", "--priority", "7"]);
    let mid = send_in(&env, &shop, &["a", "mid", "--priority", "5"]);
    let urgent = send_in(&env, &shop, &["c", "urgent", "--priority", "0"]);
    let queued = || fs::read_dir(env.home.join("queue")).map_or(0, |d| d.count());
    wait_until("b's and c's tasks wait for the slot", secs(10), || {
        queued() == 2
    });
    // a's second task waits in a's own inbox (a runs one task at a time); b's and c's wait
    // for the slot, c's first.
    let status = run_in(&env, &shop, &["status"]).ok().stdout;
    let (c_at, b_at) = (
        status.find(&format!("task {urgent}")),
        status.find(&format!("task {low}")),
    );
    assert!(c_at.is_some() && b_at.is_some() && c_at < b_at, "{status}");
    assert_eq!(started(&env).len(), 1, "only one task runs at a time");
    release(&env, &first);
    wait_until("the next task starts", secs(10), || {
        started(&env).len() == 2
    });
    assert_eq!(started(&env)[1].1, urgent, "the urgent task first");
    // a has finished its first task and waits for the slot with its second.
    wait_until("a's second task waits for the slot", secs(10), || {
        queued() == 2
    });
    release(&env, &urgent);
    wait_until("the next task starts", secs(10), || {
        started(&env).len() == 3
    });
    assert_eq!(started(&env)[2].1, mid, "then priority 5 before 7");
    release(&env, &mid);
    wait_until("the last task starts", secs(10), || {
        started(&env).len() == 4
    });
    assert_eq!(started(&env)[3].1, low);
    release(&env, &low);
    assert_eq!(env.run(["wait", &low]).ok().stdout, "low\n");
}

#[test]
fn a_killed_slot_holder_frees_its_slot() {
    let env = Env::new();
    let gate = per_task_gate(&env);
    let shop = project(
        &env,
        "shop",
        &format!(
            "max_concurrent = 1\n[agent.a]\ndriver = \"exec\"\ncommand = [\"{gate}\"]\n[agent.b]\ndriver = \"exec\"\ncommand = [\"{gate}\"]\n"
        ),
    );
    send_in(&env, &shop, &["a", "holds the slot"]);
    wait_until("a's task holds the slot", secs(10), || {
        started(&env).len() == 1
    });
    let waiting = send_in(&env, &shop, &["b", "waits"]);
    wait_until("b's task waits for the slot", secs(10), || {
        fs::read_dir(env.home.join("queue")).map_or(0, |d| d.count()) == 1
    });
    let a = started(&env)[0].0.clone();
    let pid = fs::read_to_string(env.home.join("agents").join(&a).join("status.json"))
        .map(|s| {
            serde_json::from_str::<serde_json::Value>(&s).unwrap()["pid"]
                .as_i64()
                .unwrap()
        })
        .unwrap();
    signal(pid as u32, Signal::SIGKILL);
    wait_until("b's task gets the slot", secs(10), || {
        started(&env).len() == 2
    });
    release(&env, &waiting);
    assert_eq!(env.run(["wait", &waiting]).ok().stdout, "waits\n");
}

#[test]
fn two_projects_with_the_same_agent_name_have_their_own_agents() {
    let env = Env::new();
    let shop = project(
        &env,
        "shop",
        "[agent.planning]\ndriver = \"shell\"\nenv = { WHO = \"shop\" }\n",
    );
    let blog = project(
        &env,
        "blog",
        "[agent.planning]\ndriver = \"shell\"\nenv = { WHO = \"blog\" }\n",
    );
    run_in(
        &env,
        &shop,
        &["ask", "planning", "export KEPT=shop-context"],
    )
    .ok();
    run_in(
        &env,
        &blog,
        &["ask", "planning", "export KEPT=blog-context"],
    )
    .ok();
    assert_eq!(
        run_in(&env, &shop, &["ask", "planning", "echo $WHO $KEPT; pwd"])
            .ok()
            .stdout,
        format!("shop shop-context\n{}\n", shop.display())
    );
    assert_eq!(
        run_in(&env, &blog, &["ask", "planning", "echo $WHO $KEPT; pwd"])
            .ok()
            .stdout,
        format!("blog blog-context\n{}\n", blog.display())
    );
    let agents = fs::read_dir(env.home.join("agents")).unwrap().count();
    assert_eq!(agents, 2, "two agents, one per project");
    // An unknown name lists the agents by the names a caller here can use: this project's, not
    // the other project's, and never by their ids in the state folder.
    let err = run_in(&env, &shop, &["ask", "planing", "x"])
        .expect(2)
        .stderr;
    assert!(err.contains("did you mean \"planning\"?"), "{err}");
    assert!(err.contains("live agents: planning. Declare"), "{err}");
}

fn git(dir: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new("git");
    scrub(&mut cmd);
    let out = cmd
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_worktree_agent_runs_on_its_own_branch_and_remove_refuses_a_dirty_worktree() {
    if !have(&["git"]) {
        return;
    }
    let env = Env::new();
    let repo = project(
        &env,
        "repo",
        "[agent.tests]\ndriver = \"shell\"\nworktree = true\n",
    );
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", ".baton.toml"]);
    git(&repo, &["commit", "-q", "-m", "init"]);
    let out = run_in(
        &env,
        &repo,
        &["ask", "tests", "git branch --show-current; pwd"],
    )
    .ok()
    .stdout;
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("baton/tests"));
    let worktree = PathBuf::from(lines.next().unwrap());
    assert_ne!(worktree, repo, "not the main checkout");
    assert_ne!(
        git(&repo, &["branch", "--show-current"]),
        "baton/tests",
        "the main checkout keeps its branch"
    );
    run_in(&env, &repo, &["ask", "tests", "echo draft > notes.txt"]).ok();
    let status = run_in(&env, &repo, &["status"]).ok().stdout;
    assert!(status.contains("[baton/tests]"), "{status}");
    run_in(&env, &repo, &["agent", "stop", "tests"]).ok();
    let out = run_in(&env, &repo, &["agent", "remove", "tests"]).expect(2);
    assert!(
        out.stderr.contains("uncommitted") && out.stderr.contains("notes.txt"),
        "{}",
        out.stderr
    );
    assert!(worktree.exists());
    // A worktree deleted by hand is made again at the next start.
    fs::remove_dir_all(&worktree).unwrap();
    assert_eq!(
        run_in(&env, &repo, &["ask", "tests", "git branch --show-current"])
            .ok()
            .stdout,
        "baton/tests\n"
    );
    run_in(&env, &repo, &["agent", "stop", "tests"]).ok();
    run_in(&env, &repo, &["agent", "remove", "tests"]).ok();
    assert!(!worktree.exists());
    assert!(
        git(&repo, &["branch", "--list", "baton/tests"]).contains("baton/tests"),
        "the branch is kept"
    );
}

#[test]
fn every_config_error_names_its_line_and_nothing_half_applies() {
    let env = Env::new();
    let shop = project(
        &env,
        "shop",
        "max_concurent = 3\n[agent.ok]\ndriver = \"shell\"\n[agent.bad]\ndriver = \"bash\"\ntimeout = \"soon\"\n[pool.none]\nmax = 0\n",
    );
    let file = shop.join(".baton.toml").display().to_string();
    let out = run_in(&env, &shop, &["config", "check"]).expect(2);
    for (line, what) in [
        (1, "max_concurrent"),
        (5, "\"shell\""),
        (6, "invalid duration"),
        (8, "from 1 to 99"),
    ] {
        assert!(
            out.stderr.contains(&format!("{file}:{line}:")) && out.stderr.contains(what),
            "line {line}: {}",
            out.stderr
        );
    }
    // Not even the good agent is usable while the file is wrong; the prompt file is kept.
    let out = run_in(&env, &shop, &["ask", "ok", "echo hi"]).expect(2);
    assert!(out.stderr.contains(&format!("{file}:1:")), "{}", out.stderr);
    let prompt = shop.join("p.md");
    fs::write(&prompt, "@ok echo hi").unwrap();
    run_in(&env, &shop, &[prompt.to_str().unwrap()]).expect(2);
    assert_eq!(fs::read_to_string(&prompt).unwrap(), "@ok echo hi");
    assert!(
        !env.home.join("agents").exists()
            || fs::read_dir(env.home.join("agents")).unwrap().count() == 0
    );
    // Fixed, it checks out.
    fs::write(
        shop.join(".baton.toml"),
        "[agent.ok]\ndriver = \"shell\"\n[pool.p]\nmax = 2\n",
    )
    .unwrap();
    let out = run_in(&env, &shop, &["config", "check"]).ok();
    assert!(
        out.stdout.contains("ok: 1 agent(s), 1 pool(s)"),
        "{}",
        out.stdout
    );
    let out = run_in(&env, &shop, &["config", "show"]).ok();
    assert!(
        out.stdout.contains("[agent.ok]") && out.stdout.contains(&file),
        "{}",
        out.stdout
    );
}

#[test]
fn a_config_file_others_could_write_is_refused() {
    let env = Env::new();
    let shop = project(&env, "shop", "[agent.ok]\ndriver = \"shell\"\n");
    let file = shop.join(".baton.toml");
    fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let out = run_in(&env, &shop, &["config", "check"]).expect(2);
    assert!(
        out.stderr.contains("writable by group or others"),
        "{}",
        out.stderr
    );
    fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    if nix::unistd::geteuid().is_root() {
        let real = env.path("real.toml");
        fs::write(&real, "[agent.ok]\ndriver = \"shell\"\n").unwrap();
        fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink(&real, &file).unwrap();
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            &file,
            Some(nix::unistd::Uid::from_raw(65534)),
            None,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .unwrap();
        let out = run_in(&env, &shop, &["config", "check"]).expect(2);
        assert!(out.stderr.contains("owned by uid 65534"), "{}", out.stderr);
    } else {
        skipped(
            "team::a_config_file_others_could_write (the link case)",
            "it needs root to chown",
        );
    }
}

#[test]
fn up_starts_the_team_and_down_stops_it() {
    let env = Env::new();
    let shop = project(
        &env,
        "shop",
        "[agent.planning]\ndriver = \"shell\"\n[agent.review]\ndriver = \"shell\"\nstart = \"manual\"\n[pool.coding]\ndriver = \"shell\"\nmax = 3\n",
    );
    let out = run_in(&env, &shop, &["up"]).ok();
    assert!(
        out.stdout.contains("agent planning started") && out.stdout.contains("pool coding started"),
        "{}",
        out.stdout
    );
    let live = |env: &Env| -> usize {
        fs::read_dir(env.home.join("agents"))
            .unwrap()
            .filter(|e| runner_alive(&e.as_ref().unwrap().path().join("lock")))
            .count()
    };
    assert_eq!(live(&env), 3, "planning, review and one member of coding");
    assert!(run_in(&env, &shop, &["up"])
        .ok()
        .stdout
        .contains("agent planning is running"));
    run_in(&env, &shop, &["down"]).ok();
    assert_eq!(live(&env), 0);
}

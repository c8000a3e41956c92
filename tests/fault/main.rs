//! The fault suite: long soaks and loads, run on demand (`cargo test --test fault --
//! --nocapture`), not in the quick suite. Each prints what it counted.
//!
//! - `soak_kills_and_restarts`: many callers on several agents while runners are SIGKILLed and
//!   started again at random; every ask ends with exactly its own answer or a true loss.
//!   `BATON_SOAK_ASKS` (default 6000) and `BATON_SOAK_KILLS` (default 15) size it.
//! - `two_thousand_waiters_on_one_agent`: 2,000 concurrent callers wait on one agent's task.

#![allow(clippy::unwrap_used)]

#[path = "../it/util.rs"]
mod util;

use std::fs;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use util::*;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one ask came to.
#[derive(Debug)]
enum Came {
    /// Exactly its own answer.
    Answered,
    /// Exit 5 with its task recorded lost (or taken back): a true loss.
    Lost,
    /// Exit 5 before anything was delivered: the agent was not running at that moment.
    Refused,
    /// Anything else: a wrong answer, a false loss, another exit code.
    Wrong(String),
}

fn one_ask(env: &Env, agent: &str, prompt: &str) -> Came {
    let out = env.run(["ask", agent, prompt, "--json"]);
    let line = out.stdout.lines().next().unwrap_or("");
    let end: Option<serde_json::Value> = serde_json::from_str(line).ok();
    match (out.code(), end) {
        (0, Some(end)) if end["answer"] == prompt && end["state"] == "ok" => Came::Answered,
        (5, None) if out.stderr.contains("is not running") => Came::Refused,
        (5, Some(end)) => {
            let id = end["task_id"].as_str().unwrap_or_default().to_string();
            // The truth is the task's record: a lost task was never answered.
            match fs::read_to_string(env.task_dir(&id).join("done.json"))
                .ok()
                .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
            {
                Some(done) if done["state"] == "agent_lost" => Came::Lost,
                other => Came::Wrong(format!(
                    "exit 5 for task {id}, which ended {other:?}: {}",
                    out.stderr
                )),
            }
        }
        (code, _) => Came::Wrong(format!("exit {code}: {}", out.context)),
    }
}

#[test]
fn soak_kills_and_restarts() {
    let asks = setting("BATON_SOAK_ASKS", 6000);
    let kills = setting("BATON_SOAK_KILLS", 15);
    let (agents, callers) = (4, 16);
    let env = Arc::new(Env::new());
    for a in 0..agents {
        env.start(&format!("s{a}"), &["--driver", "exec", "--", "cat"]);
    }
    let done = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let threads: Vec<_> = (0..callers)
        .map(|_| {
            let (env, next, results) = (Arc::clone(&env), Arc::clone(&next), Arc::clone(&results));
            std::thread::spawn(move || loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                if k >= asks {
                    return;
                }
                let came = one_ask(&env, &format!("s{}", k % agents), &format!("ask {k}"));
                results.lock().unwrap().push(came);
            })
        })
        .collect();
    // The killer: SIGKILL a random runner, start it again at once, spread over the run.
    let killer = {
        let (env, next, done) = (Arc::clone(&env), Arc::clone(&next), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut killed = 0;
            let mut seed = std::process::id() as usize;
            while killed < kills && !done.load(Ordering::SeqCst) {
                // Wait until the callers are this far along, so that kills spread evenly.
                let due = asks * (killed + 1) / (kills + 1);
                wait_until(
                    "the callers reach the next kill",
                    Duration::from_secs(600),
                    || next.load(Ordering::SeqCst) >= due || done.load(Ordering::SeqCst),
                );
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let agent = format!("s{}", (seed >> 33) % agents);
                signal(
                    env.runner_pid(&agent) as u32,
                    nix::sys::signal::Signal::SIGKILL,
                );
                env.run(["agent", "start", &agent]).ok();
                killed += 1;
            }
            killed
        })
    };
    for t in threads {
        t.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let killed = killer.join().unwrap();
    let results = results.lock().unwrap();
    let count = |f: fn(&Came) -> bool| results.iter().filter(|c| f(c)).count();
    let answered = count(|c| matches!(c, Came::Answered));
    let lost = count(|c| matches!(c, Came::Lost));
    let refused = count(|c| matches!(c, Came::Refused));
    let wrong: Vec<&str> = results
        .iter()
        .filter_map(|c| match c {
            Came::Wrong(why) => Some(why.as_str()),
            _ => None,
        })
        .collect();
    println!(
        "soak: {} asks on {agents} agents from {callers} callers, {killed} kill+restart cycles, {:.1} s: {answered} exact answers, {lost} true losses, {refused} refused (agent not running at that instant), {} wrong or false losses",
        results.len(),
        started.elapsed().as_secs_f64(),
        wrong.len()
    );
    assert_eq!(results.len(), asks);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn two_thousand_waiters_on_one_agent() {
    let waiters = setting("BATON_WAITERS", 2000);
    let env = Env::new();
    env.start_gated("g");
    let id = env.send("g", "for everyone");
    wait_until("the task runs", secs(10), || env.started_count() == 1);
    let started = Instant::now();
    let children: Vec<_> = (0..waiters)
        .map(|_| {
            env.cmd(["wait", &id])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let pid = env.runner_pid("g");
    wait_until(
        "every waiter is connected",
        Duration::from_secs(120),
        || fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count() >= waiters,
    );
    env.open_gate();
    let mut answered = 0;
    for c in children {
        let (status, stdout, stderr) = finish(c, None, Duration::from_secs(120)).unwrap();
        assert_eq!(
            (status.code(), stdout.as_slice()),
            (Some(0), &b"for everyone\n"[..]),
            "{}",
            String::from_utf8_lossy(&stderr)
        );
        answered += 1;
    }
    println!(
        "waiters: {answered} of {waiters} concurrent waiters on one agent got the answer ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
}

//! baton's benchmarks (`scripts/bench`, or `cargo bench --bench baton`). Each section measures
//! baton and, where there is one, its baseline in the same run, and reports the ratio, so that the
//! figures hold on any machine. Results go to stdout and to `bench/RESULTS.md`.
//!
//! Sections: round trip (exec and shell agents against the bash polling coordinator of the
//! original design), editor pass-through against running the editor directly, the cost of
//! waiting (context switches and CPU of a waiting caller and an idle runner, from /proc), 10,000
//! tasks through 8 agents from 64 callers (throughput, exactly once), size (binary, peak RSS),
//! and the scale of the state folder (100 agents, 50,000 finished tasks, before and after gc).
//!
//! `BENCH_QUICK=1` runs every section with fewer repetitions (a smoke run, not for the README);
//! naming sections (`scripts/bench round-trip scale`) runs only those. Neither writes RESULTS.md.
//! `BENCH_AB=PATH scripts/bench ab` (only when named) runs the round trip of this build and of
//! another baton binary, interleaved, each against its own floor: a change's before and after.

#![allow(clippy::unwrap_used)]

// Linked for its link directives only: the library links libgcc's unwinder in (src/build.rs), so
// this binary, as the pass-through's exec-only floor, starts as baton does.
extern crate baton as _;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_baton");
/// `baton-edit`, the editor mode `$VISUAL` names.
const FRONT: &str = env!("CARGO_BIN_EXE_baton-edit");

struct Bench {
    home: PathBuf,
    dir: tempfile::TempDir,
    quick: bool,
    report: String,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median and 99th percentile.
fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (p(0.5), p(0.99))
}

impl Bench {
    fn new(quick: bool) -> Bench {
        let dir = tempfile::Builder::new()
            .prefix("baton-bench-")
            .tempdir()
            .expect("temp dir");
        let home = dir.path().join("state");
        Bench {
            home,
            dir,
            quick,
            report: String::new(),
        }
    }

    fn n(&self, full: usize, quick: usize) -> usize {
        if self.quick {
            quick
        } else {
            full
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        baton_command(Path::new(BIN), &self.home, args)
    }

    fn run(&self, args: &[&str]) {
        let out = self
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("running baton");
        assert!(
            out.status.success(),
            "baton {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ask(&self, agent: &str, prompt: &str) -> Duration {
        let t = Instant::now();
        let status = self
            .cmd(&["ask", agent, prompt])
            .status()
            .expect("running baton ask");
        assert!(status.success(), "baton ask {agent} failed");
        t.elapsed()
    }

    fn line(&mut self, s: impl AsRef<str>) {
        println!("{}", s.as_ref());
        self.report.push_str(s.as_ref());
        self.report.push('\n');
    }

    fn pid_of(&self, agent: &str) -> u32 {
        let s = fs::read_to_string(self.home.join("agents").join(agent).join("status.json"))
            .expect("status.json");
        let v: serde_json::Value = serde_json::from_str(&s).expect("status JSON");
        v["pid"].as_u64().expect("pid") as u32
    }

    fn round_trip(&mut self) {
        let n = self.n(300, 30);
        self.run(&["agent", "start", "rt-exec", "--driver", "exec", "--", "cat"]);
        self.run(&["agent", "start", "rt-shell"]);
        for _ in 0..10 {
            self.ask("rt-exec", "warm");
            self.ask("rt-shell", ":");
        }
        // Interleaved, so that a change in the machine's speed touches every series alike.
        let (mut exec, mut shell, mut floor) = (Vec::new(), Vec::new(), Vec::new());
        // The exec agent's own process, as its runner starts it: `cat` with the prompt on stdin.
        let prompt = self.dir.path().join("rt-prompt");
        fs::write(&prompt, "ping").unwrap();
        let mut own = Vec::new();
        for _ in 0..n {
            exec.push(self.ask("rt-exec", "ping"));
            shell.push(self.ask("rt-shell", "echo ping"));
            let t = Instant::now();
            assert!(self.cmd(&["--version"]).status().unwrap().success());
            floor.push(t.elapsed());
            let t = Instant::now();
            let cat = Command::new("cat")
                .stdin(fs::File::open(&prompt).unwrap())
                .stdout(Stdio::null())
                .status();
            assert!(cat.unwrap().success());
            own.push(t.elapsed());
        }
        // The baseline: the original design's bash coordinator and agent, polling every 0.1 s.
        let base_dir = self.dir.path().join("baseline");
        fs::create_dir_all(&base_dir).unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/baseline");
        let mut agent = Command::new("bash")
            .arg(root.join("agent.sh"))
            .arg(&base_dir)
            .spawn()
            .expect("baseline agent");
        let base_n = self.n(200, 10);
        let base: Vec<Duration> = (0..base_n)
            .map(|_| {
                let t = Instant::now();
                let out = Command::new("bash")
                    .arg(root.join("coordinator.sh"))
                    .arg(&base_dir)
                    .arg("ping")
                    .output()
                    .unwrap();
                assert_eq!(out.stdout, b"ping");
                t.elapsed()
            })
            .collect();
        let _ = agent.kill();
        let _ = agent.wait();
        let (e50, e99) = stats(exec);
        let (s50, s99) = stats(shell);
        let (f50, f99) = stats(floor);
        let (c50, c99) = stats(own);
        let (b50, b99) = stats(base);
        self.line("\n## Round trip: `baton ask` to a warm agent that answers at once\n");
        self.line("| coordinator | runs | median | p99 | baseline median ÷ this median | this ÷ the floor |");
        self.line("|---|---:|---:|---:|---:|---:|");
        for (what, runs, m, p) in [
            (
                "baton → exec agent (`cat`, one process per task)",
                n,
                e50,
                e99,
            ),
            ("baton → shell agent (no process per task)", n, s50, s99),
            (
                "bash, polling `.done` every 0.1 s (bench/baseline)",
                base_n,
                b50,
                b99,
            ),
            (
                "the floor: starting and reaping `baton --version`",
                n,
                f50,
                f99,
            ),
            (
                "the exec agent's own process: starting and reaping `cat` with the prompt on stdin",
                n,
                c50,
                c99,
            ),
        ] {
            self.line(format!(
                "| {what} | {runs} | {:.2} ms | {:.2} ms | {:.0}× | {:.2}× |",
                ms(m),
                ms(p),
                ms(b50) / ms(m),
                ms(m) / ms(f50)
            ));
        }
        self.line(format!(
            "\nAbove the floor of starting a process here, a round trip adds {:.2} ms to the exec agent (of which {:.2} ms is starting and reaping its own process, `cat`) and {:.2} ms to the shell agent.",
            ms(e50) - ms(f50),
            ms(c50),
            ms(s50) - ms(f50)
        ));
        self.line(format!(
            "Targets: ≤ 2.0× the floor to the exec agent (measured {:.2}×), ≤ 1.6× to the shell agent (measured {:.2}×), ≥ 50× faster than the baseline.",
            ms(e50) / ms(f50),
            ms(s50) / ms(f50)
        ));
        self.line(format!(
            "The exec round trip starts two processes, the caller and the agent's: it is {:.2}× the two started and reaped one after the other ({:.2} ms), with no coordination.",
            ms(e50) / (ms(f50) + ms(c50)),
            ms(f50) + ms(c50)
        ));
    }

    /// System calls per round trip, counted by strace: the caller's whole life, and the
    /// runner's share per task (attached to it over 20 tasks).
    fn syscalls(&mut self) {
        self.line("\n## System calls per round trip (`strace -c`)\n");
        let Some(strace) = find("strace") else {
            self.line("strace is not installed here: not counted.");
            return;
        };
        let _ = self
            .cmd(&["agent", "start", "rt-exec", "--driver", "exec", "--", "cat"])
            .status();
        let _ = self.cmd(&["agent", "start", "rt-shell"]).status();
        self.line("| agent | the caller (`baton ask`, its whole life) | the runner, per task |");
        self.line("|---|---:|---:|");
        for (agent, prompt) in [("rt-exec", "ping"), ("rt-shell", "echo ping")] {
            let out = self.dir.path().join("strace-caller");
            let mut c = Command::new(&strace);
            c.args(["-f", "-c", "-o"])
                .arg(&out)
                .arg(BIN)
                .args(["ask", agent, prompt]);
            c.env("BATON_HOME", &self.home)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            assert!(c.status().unwrap().success());
            let caller = strace_total(&out);
            let out = self.dir.path().join("strace-runner");
            let mut tracer = Command::new(&strace)
                .args(["-c", "-o"])
                .arg(&out)
                .args(["-p", &self.pid_of(agent).to_string()])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // strace says on stderr when it is attached: the handshake before counting.
            let mut err = std::io::BufReader::new(tracer.stderr.take().unwrap());
            let mut line = String::new();
            while std::io::BufRead::read_line(&mut err, &mut line).unwrap() > 0
                && !line.contains("attached")
            {
                line.clear();
            }
            let n = 20;
            for _ in 0..n {
                self.ask(agent, prompt);
            }
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(tracer.id() as i32),
                nix::sys::signal::Signal::SIGINT,
            );
            let _ = tracer.wait();
            let runner = strace_total(&out) as f64 / n as f64;
            self.line(format!("| {agent} | {caller} | {runner:.0} |"));
        }
        self.line("\nThe runner's count leaves out the exec agent's own process (`cat`); the caller's includes its start-up (about 50 calls: the loader, the C library, the Rust runtime).");
    }

    fn pass_through(&mut self) {
        let n = self.n(500, 50);
        let file = self.dir.path().join("plain.md");
        fs::write(&file, "no directive here").unwrap();
        let editor = which("true");
        let time = |c: &mut Command| {
            let t = Instant::now();
            assert!(c.status().unwrap().success());
            t.elapsed()
        };
        let me = std::env::current_exe().unwrap();
        let front = Path::new(FRONT);
        let (mut direct, mut wrapper, mut via, mut front_via) = (vec![], vec![], vec![], vec![]);
        for _ in 0..n {
            direct.push(time(Command::new(&editor).arg(&file)));
            wrapper.push(time(
                Command::new(&me).arg(&file).env("BENCH_EXEC_ONLY", &editor),
            ));
            via.push(time(
                self.cmd(&[file.to_str().unwrap()])
                    .env("BATON_EDITOR", &editor),
            ));
            front_via.push(time(
                baton_command(front, &self.home, &[file.to_str().unwrap()])
                    .env("BATON_EDITOR", &editor),
            ));
        }
        let (d50, _) = stats(direct);
        let (w50, w99) = stats(wrapper);
        let (v50, v99) = stats(via);
        let (f50, f99) = stats(front_via);
        self.line("\n## Editor pass-through: a prompt with no directive, exec'ing the editor\n");
        self.line("| | runs | median | p99 |");
        self.line("|---|---:|---:|---:|");
        self.line(format!(
            "| the editor (`true`) run directly | {n} | {:.3} ms | |",
            ms(d50)
        ));
        for (what, m50, m99) in [
            ("through `baton-edit FILE` (`$VISUAL` as INSTALL.md sets it)", f50, f99),
            ("through `baton FILE`", v50, v99),
            ("through a program that only execs it (this bench's binary, `execv` first thing in `main`)", w50, w99),
        ] {
            self.line(format!("| {what} | {n} | {:.3} ms | {:.3} ms |", ms(m50), ms(m99)));
        }
        self.line(format!(
            "\n`baton-edit` adds {:.3} ms (target: within 0.5 ms). `baton` adds {:.3} ms, of which a program that does nothing but exec the editor (it loads the C library) adds {:.3} ms here: baton's own work is {:.3} ms of it.",
            ms(f50) - ms(d50),
            ms(v50) - ms(d50),
            ms(w50) - ms(d50),
            ms(v50) - ms(w50)
        ));
    }

    fn waiting_cost(&mut self) {
        let window = Duration::from_secs(if self.quick { 2 } else { 10 });
        let gate = self.dir.path().join("gate");
        nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let script = format!("read _ < '{}'; cat", gate.display());
        self.run(&[
            "agent", "start", "busy", "--driver", "exec", "--", "sh", "-c", &script,
        ]);
        self.run(&["agent", "start", "idle"]);
        let mut waiting: Child = self.cmd(&["ask", "busy", "x"]).spawn().unwrap();
        // Measure once the runner has claimed the task and every thread of the caller sleeps.
        let busy_status = self.home.join("agents/busy/status.json");
        settle("the busy agent claims the task", || {
            fs::read_to_string(&busy_status).is_ok_and(|s| s.contains("\"working\""))
        });
        settle("the caller sleeps", || asleep(waiting.id()));
        let idle = self.pid_of("idle");
        let before = (usage(waiting.id()), usage(idle));
        std::thread::sleep(window); // the measurement window itself
        let after = (usage(waiting.id()), usage(idle));
        let rss = (peak_rss_kib(waiting.id()), peak_rss_kib(idle));
        fs::OpenOptions::new().write(true).open(&gate).unwrap();
        let _ = waiting.wait();
        self.line(format!(
            "\n## Cost of waiting, over {} s (from /proc, all threads)\n",
            window.as_secs()
        ));
        self.line("| process | voluntary switches | involuntary switches | CPU time | peak RSS |");
        self.line("|---|---:|---:|---:|---:|");
        for (what, b, a, r) in [
            (
                "`baton ask` waiting on a busy agent",
                before.0,
                after.0,
                rss.0,
            ),
            ("an idle runner (shell driver)", before.1, after.1, rss.1),
        ] {
            self.line(format!(
                "| {what} | {} | {} | {} ms | {:.1} MiB |",
                a.0 - b.0,
                a.1 - b.1,
                (a.2 - b.2) * 1000 / ticks_per_second(),
                r as f64 / 1024.0
            ));
        }
        self.line("\nTarget: zero wake-ups in both; peak RSS of a waiting caller ≤ 4 MiB.");
    }

    fn throughput(&mut self) {
        let (tasks, agents, callers) = if self.quick {
            (640, 8, 64)
        } else {
            (10_000, 8, 64)
        };
        let home = self.dir.path().join("throughput");
        let me = Arc::new(Bench {
            home: home.clone(),
            dir: tempfile::tempdir().unwrap(),
            quick: self.quick,
            report: String::new(),
        });
        for a in 0..agents {
            me.run(&[
                "agent",
                "start",
                &format!("t{a}"),
                "--driver",
                "exec",
                "--",
                "cat",
            ]);
        }
        // The floor: the same caller and agent processes (`baton --version`, then `cat` with the
        // prompt on stdin), started and reaped by the same callers, with no coordination.
        let cat = which("cat");
        let floor = fan(callers, tasks, |k| {
            let prompt = format!("task {k}");
            assert!(me.cmd(&["--version"]).status().unwrap().success());
            let mut child = Command::new(&cat)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            std::io::Write::write_all(&mut stdin, prompt.as_bytes()).unwrap();
            drop(stdin);
            assert_eq!(child.wait_with_output().unwrap().stdout, prompt.as_bytes());
        });
        let took = fan(callers, tasks, |k| {
            let prompt = format!("task {k}");
            let out = me
                .cmd(&["ask", &format!("t{}", k % agents), &prompt, "--raw"])
                .stdout(Stdio::piped())
                .output()
                .unwrap();
            assert_eq!(out.stdout, prompt.as_bytes(), "task {k} answered wrongly");
        });
        let done: u64 = (0..agents)
            .map(|a| {
                let s = fs::read_to_string(home.join(format!("agents/t{a}/status.json"))).unwrap();
                serde_json::from_str::<serde_json::Value>(&s).unwrap()["tasks_done"]
                    .as_u64()
                    .unwrap()
            })
            .sum();
        let folders = fs::read_dir(home.join("tasks")).unwrap().count();
        let ok = done == tasks as u64 && folders == tasks;
        self.line(format!(
            "\n## Throughput: {tasks} tasks, {agents} exec agents, {callers} concurrent callers\n"
        ));
        self.line(
            "| tasks | time | tasks/s | the floor's time | this ÷ the floor | tasks run by the runners | task folders | exactly once |",
        );
        self.line("|---:|---:|---:|---:|---:|---:|---:|---|");
        self.line(format!(
            "| {tasks} | {:.1} s | {:.0} | {:.1} s | {:.2}× | {done} | {folders} | {} |",
            took.as_secs_f64(),
            tasks as f64 / took.as_secs_f64(),
            floor.as_secs_f64(),
            took.as_secs_f64() / floor.as_secs_f64(),
            if ok { "yes" } else { "NO" }
        ));
        self.line("\nThe floor: the same callers start and reap, per task, the caller process (`baton --version`) and the agent process (`cat` with the prompt on stdin), with no coordination. Target: ≤ 1.2× the floor.");
        for a in 0..agents {
            let _ = me.cmd(&["agent", "stop", &format!("t{a}")]).status();
        }
        assert!(ok, "a task was lost or run twice");
    }

    /// `BENCH_AB=OTHER scripts/bench ab`: the round trip of this build against another baton
    /// binary (another commit's build), interleaved in one run, each against its own floor. Not
    /// part of the full run.
    fn ab(&mut self) {
        let Some(other) = std::env::var_os("BENCH_AB") else {
            self.line(
                "\n`ab` compares with another build: BENCH_AB=PATH-TO-ITS-BATON scripts/bench ab",
            );
            return;
        };
        let n = self.n(300, 30);
        let bins = [PathBuf::from(BIN), PathBuf::from(&other)];
        let homes = [
            self.dir.path().join("ab-this"),
            self.dir.path().join("ab-other"),
        ];
        let timed = |i: usize, args: &[&str]| {
            let t = Instant::now();
            let ok = baton_command(&bins[i], &homes[i], args).status().unwrap();
            assert!(ok.success(), "{args:?}");
            t.elapsed()
        };
        for i in 0..2 {
            timed(
                i,
                &["agent", "start", "ab-exec", "--driver", "exec", "--", "cat"],
            );
            timed(i, &["agent", "start", "ab-shell"]);
            for _ in 0..10 {
                timed(i, &["ask", "ab-exec", "warm"]);
                timed(i, &["ask", "ab-shell", ":"]);
            }
        }
        // [floor, exec, shell] of this build, then of the other.
        let mut series: Vec<Vec<Duration>> = vec![Vec::new(); 6];
        for _ in 0..n {
            for i in 0..2 {
                series[3 * i].push(timed(i, &["--version"]));
                series[3 * i + 1].push(timed(i, &["ask", "ab-exec", "ping"]));
                series[3 * i + 2].push(timed(i, &["ask", "ab-shell", "echo ping"]));
            }
        }
        for i in 0..2 {
            timed(i, &["agent", "stop", "ab-exec"]);
            timed(i, &["agent", "stop", "ab-shell"]);
        }
        let s: Vec<(Duration, Duration)> = series.into_iter().map(stats).collect();
        self.line(format!(
            "\n## This build against {} ({n} runs each, interleaved)\n",
            other.to_string_lossy()
        ));
        self.line(
            "| | this build: median, p99 | ÷ its floor | the other: median, p99 | ÷ its floor |",
        );
        self.line("|---|---:|---:|---:|---:|");
        for (row, what) in [
            "the floor (`baton --version`)",
            "round trip, exec agent (`cat`)",
            "round trip, shell agent",
        ]
        .iter()
        .enumerate()
        {
            let cell = |i: usize| {
                let (m, p) = s[3 * i + row];
                format!(
                    "{:.2} ms, {:.2} ms | {:.2}×",
                    ms(m),
                    ms(p),
                    ms(m) / ms(s[3 * i].0)
                )
            };
            self.line(format!("| {what} | {} | {} |", cell(0), cell(1)));
        }
    }

    fn size(&mut self) {
        let bytes = fs::metadata(BIN).unwrap().len();
        self.line("\n## Size\n");
        self.line(format!("Release binary (stripped): {:.2} MiB (target ≤ 2 MiB). Peak RSS: see the cost of waiting.", bytes as f64 / 1048576.0));
    }

    fn scale(&mut self) {
        let (agents, history) = if self.quick {
            (20, 5_000)
        } else {
            (100, 50_000)
        };
        let home = self.dir.path().join("scale");
        let me = Bench {
            home: home.clone(),
            dir: tempfile::tempdir().unwrap(),
            quick: self.quick,
            report: String::new(),
        };
        let timed =
            |what: &dyn Fn() -> Duration, n: usize| stats((0..n).map(|_| what()).collect()).0;
        let status = || {
            let t = Instant::now();
            assert!(me.cmd(&["status"]).status().unwrap().success());
            t.elapsed()
        };
        let ask = || me.ask("s0", "x");
        let empty = timed(&status, 20);
        me.run(&["agent", "start", "s0", "--driver", "exec", "--", "cat"]);
        let base = (timed(&status, 20), timed(&ask, 50));
        // Many agents (folders with a status, as stopped agents leave them) and a long history.
        for a in 1..agents {
            let dir = home.join(format!("agents/s{a}"));
            for sub in ["inbox/tmp", "inbox/new", "inbox/cur"] {
                fs::create_dir_all(dir.join(sub)).unwrap();
            }
            fs::write(dir.join("status.json"), format!(r#"{{"agent_id":"s{a}","status":"stopped","current_task":null,"context_summary":"","last_active":"2026-01-01T00:00:00.000Z","window_id":null,"pid":1,"driver":"exec","tasks_done":0}}"#)).unwrap();
        }
        let many = (timed(&status, 20), timed(&ask, 50));
        let t = Instant::now();
        for i in 0..history {
            let id = format!("{:019}-{:08x}", 1_000_000_000_000_000_000u64 + i as u64, i);
            let dir = home.join("tasks").join(&id);
            fs::create_dir(&dir).unwrap();
            fs::write(dir.join("done.json"), format!(r#"{{"task_id":"{id}","state":"ok","exit_code":0,"finished_at":"x","error":null}}"#)).unwrap();
            fs::write(dir.join("result"), "old").unwrap();
        }
        let fill = t.elapsed();
        // The history's write-back is the bench's own work, not what is measured.
        nix::unistd::sync();
        let loaded = (timed(&status, 20), timed(&ask, 50));
        let t = Instant::now();
        assert!(me
            .cmd(&["gc", "--older-than", "0s"])
            .status()
            .unwrap()
            .success());
        let gc = t.elapsed();
        nix::unistd::sync();
        let after = (timed(&status, 20), timed(&ask, 50));
        let _ = me.cmd(&["agent", "stop", "s0"]).status();
        self.line(format!(
            "\n## Scale of the state folder: {agents} agents, {history} finished tasks\n"
        ));
        self.line("| state folder | `baton status` median | `baton ask` median |");
        self.line("|---|---:|---:|");
        self.line(format!("| empty | {:.2} ms | |", ms(empty)));
        for (what, (st, ak)) in [
            ("1 agent, empty history".to_string(), base),
            (format!("{agents} agents, empty history"), many),
            (format!("{agents} agents, {history} finished tasks"), loaded),
            (
                format!(
                    "after `baton gc --older-than 0s` ({:.1} s)",
                    gc.as_secs_f64()
                ),
                after,
            ),
        ] {
            self.line(format!("| {what} | {:.2} ms | {:.2} ms |", ms(st), ms(ak)));
        }
        let (st, ak) = (ms(loaded.0) / ms(many.0), ms(loaded.1) / ms(many.1));
        let verdict = if st <= 1.2 && ak <= 1.2 {
            "The history costs nothing"
        } else {
            "The history costs something in this run"
        };
        self.line(format!(
            "\n{verdict}: with {history} finished tasks `status` takes {st:.2}× and `ask` {ak:.2}× their time with none. `status` reads a few small files per agent ({agents} agents: {:.2}× an empty state folder). (Writing the history took {:.1} s; the disk is synced after it and after `gc`, before the timings.) Delivery never lists `tasks/`; only `gc` walks the history.",
            ms(loaded.0) / ms(empty),
            fill.as_secs_f64()
        ));
    }
}

/// `bin ARGS` (a baton binary) with the state folder `home`, silent, with none of the caller's
/// variables that would change what it does.
fn baton_command(bin: &Path, home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.args(args)
        .env("BATON_HOME", home)
        .env_remove("BATON_AGENT")
        .env_remove("BATON_EDITOR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// Runs `task(k)` for every `k < tasks` from `callers` threads at once (caller `c` takes every
/// `callers`-th task from `c`), and returns how long it all took.
fn fan(callers: usize, tasks: usize, task: impl Fn(usize) + Sync) -> Duration {
    let t = Instant::now();
    std::thread::scope(|scope| {
        for c in 0..callers {
            let task = &task;
            scope.spawn(move || {
                let mut k = c;
                while k < tasks {
                    task(k);
                    k += callers;
                }
            });
        }
    });
    t.elapsed()
}

/// Checks `cond` until it holds (at most 10 s), backing off from 1 ms: the bounded wait for
/// another process's state, for which there is no event to wait on.
fn settle(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting until {what}"
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// True when every thread of `pid` is asleep (state S) in the kernel.
fn asleep(pid: u32) -> bool {
    fs::read_dir(format!("/proc/{pid}/task")).is_ok_and(|rd| {
        rd.flatten().all(|t| {
            fs::read_to_string(t.path().join("stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, r)| r.trim_start().starts_with('S'))
                })
                .unwrap_or(false)
        })
    })
}

/// (voluntary, involuntary context switches, CPU ticks) summed over a process's threads.
fn usage(pid: u32) -> (u64, u64, u64) {
    let mut v = (0, 0, 0);
    for task in fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let status = fs::read_to_string(task.path().join("status")).unwrap_or_default();
        for line in status.lines() {
            let num = |l: &str| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            if line.starts_with("voluntary_ctxt_switches") {
                v.0 += num(line);
            } else if line.starts_with("nonvoluntary_ctxt_switches") {
                v.1 += num(line);
            }
        }
        let stat = fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        if let Some((_, rest)) = stat.rsplit_once(')') {
            let f: Vec<&str> = rest.split_whitespace().collect();
            v.2 += f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
                + f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    v
}

fn peak_rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64
}

/// The calls counted on the `total` line of a `strace -c` summary.
fn strace_total(path: &Path) -> u64 {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find(|l| l.trim_end().ends_with("total"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        .unwrap_or(0)
}

fn find(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(program))
            .find(|c| c.is_file())
    })
}

fn which(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(program))
                .find(|c| c.is_file())
        })
        .unwrap_or_else(|| panic!("{program} is not on PATH"))
}

fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':').map(|(_, m)| m.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{} × {cpu}, Linux {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        kernel.trim()
    )
}

/// A section of the report: its name on the command line, and what measures it.
type Section = (&'static str, fn(&mut Bench));

/// The line after which bench/RESULTS.md is written by hand and kept by every run.
const ANALYSIS: &str = "<!-- Written by hand below this line; scripts/bench keeps it. -->";

/// `BENCH_EXEC_ONLY=PROGRAM bench ARGS…`: the least a program run as `$EDITOR` can do, exec
/// the editor first thing (the pass-through's floor for any wrapper, measured in the same run).
fn exec_only_if_asked() {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let Some(program) = std::env::var_os("BENCH_EXEC_ONLY") else {
        return;
    };
    let program = CString::new(program.as_bytes()).unwrap();
    let args: Vec<CString> = std::iter::once(program.clone())
        .chain(
            std::env::args_os()
                .skip(1)
                .map(|a| CString::new(a.as_bytes()).unwrap()),
        )
        .collect();
    let err = nix::unistd::execv(&program, &args).unwrap_err();
    panic!("exec {program:?}: {err}");
}

fn main() {
    exec_only_if_asked();
    // `cargo bench` points the loader at target/ for every process it starts; a user's baton
    // does not search there, so nothing measured here does either.
    std::env::remove_var("LD_LIBRARY_PATH");
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let mut b = Bench::new(quick);
    let mut head = String::new();
    let _ = write!(
        head,
        "# baton benchmarks\n\nMachine: {}. Command: `scripts/bench`{}.",
        machine(),
        if quick {
            " (BENCH_QUICK: a smoke run)"
        } else {
            ""
        }
    );
    b.line(head);
    // `scripts/bench SECTION…` runs only those sections (and writes nothing).
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    // `ab` runs only when named.
    let run = |name: &str| (only.is_empty() && name != "ab") || only.iter().any(|o| o == name);
    let sections: [Section; 8] = [
        ("round-trip", Bench::round_trip),
        ("syscalls", Bench::syscalls),
        ("pass-through", Bench::pass_through),
        ("waiting", Bench::waiting_cost),
        ("throughput", Bench::throughput),
        ("size", Bench::size),
        ("scale", Bench::scale),
        ("ab", Bench::ab),
    ];
    for (name, section) in sections {
        if run(name) {
            section(&mut b);
        }
    }
    let _ = b.cmd(&["agent", "stop", "rt-exec"]).status();
    let _ = b.cmd(&["agent", "stop", "rt-shell"]).status();
    let _ = b.cmd(&["agent", "stop", "busy"]).status();
    let _ = b.cmd(&["agent", "stop", "idle"]).status();
    if !quick && only.is_empty() {
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/RESULTS.md");
        // What follows the marker is written by hand (analysis of the figures) and kept.
        let kept = fs::read_to_string(&out)
            .ok()
            .and_then(|old| old.find(ANALYSIS).map(|at| old[at..].to_string()))
            .unwrap_or_else(|| format!("{ANALYSIS}\n"));
        fs::write(&out, format!("{}\n{kept}", b.report)).expect("writing bench/RESULTS.md");
        println!("\nwritten to {}", out.display());
    }
}

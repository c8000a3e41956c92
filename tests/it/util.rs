//! The test harness: each test gets its own temp `BATON_HOME`, runs the real binary with a
//! scrubbed environment and a hard timeout, and on failure prints the command, its folder, the
//! state folder's listing, the status and both streams. `Drop` stops every runner the test
//! started, so no process outlives its test.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_baton");
/// `baton-edit`, the editor mode INSTALL.md puts in `$VISUAL`.
pub const FRONT: &str = env!("CARGO_BIN_EXE_baton-edit");
/// The hard limit for any one command in the suite.
pub const HARD_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Env {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
}

#[derive(Debug)]
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub stdout_bytes: Vec<u8>,
    pub elapsed: Duration,
    pub context: String,
}

impl Out {
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    /// Panics with the whole story unless the exit code is `code`.
    #[track_caller]
    pub fn expect(self, code: i32) -> Out {
        if self.code() != code {
            panic!(
                "expected exit {code}, got {}\n{}",
                self.code(),
                self.context
            );
        }
        self
    }

    #[track_caller]
    pub fn ok(self) -> Out {
        self.expect(0)
    }
}

/// Removes the variables that change baton's behaviour.
pub fn scrub(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("BATON_")
            || ["EDITOR", "VISUAL", "TMUX", "TMUX_PANE", "XDG_STATE_HOME"].contains(&k.as_str())
        {
            cmd.env_remove(k);
        }
    }
    cmd
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("baton-test-")
            .tempdir()
            .expect("temp dir");
        let home = dir.path().join("state");
        Env { dir, home }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `baton ARGS` with this test's state folder, in the temp folder.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(BIN);
        scrub(&mut cmd);
        cmd.args(args)
            .env("BATON_HOME", &self.home)
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    pub fn run<I, S>(&self, args: I) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.output(self.cmd(args), None)
    }

    pub fn run_stdin<I, S>(&self, args: I, input: &[u8]) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.output(self.cmd(args), Some(input.to_vec()))
    }

    /// Runs `cmd` to completion within the hard timeout.
    pub fn output(&self, mut cmd: Command, input: Option<Vec<u8>>) -> Out {
        let context_cmd = format!("{cmd:?}");
        if input.is_some() {
            cmd.stdin(Stdio::piped());
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let started = Instant::now();
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {context_cmd}: {e}"));
        let out = finish(child, input, HARD_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "timed out after {HARD_TIMEOUT:?}: {context_cmd}\n{}",
                self.listing()
            )
        });
        let (status, stdout_bytes, stderr) = out;
        let stdout = String::from_utf8_lossy(&stdout_bytes).into_owned();
        let stderr = String::from_utf8_lossy(&stderr).into_owned();
        let context = format!(
            "command: {context_cmd}\ncwd: {}\nstatus: {status}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- state folder ---\n{}",
            self.dir.path().display(),
            self.listing()
        );
        Out {
            status,
            stdout,
            stderr,
            stdout_bytes,
            elapsed: started.elapsed(),
            context,
        }
    }

    /// Every path under the state folder, for failure messages.
    pub fn listing(&self) -> String {
        let mut out = String::new();
        fn walk(dir: &Path, out: &mut String, depth: usize) {
            let Ok(rd) = fs::read_dir(dir) else { return };
            let mut entries: Vec<_> = rd.filter_map(|e| e.ok()).collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                out.push_str(&format!(
                    "{}{}\n",
                    "  ".repeat(depth),
                    e.file_name().to_string_lossy()
                ));
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) && depth < 6 {
                    walk(&e.path(), out, depth + 1);
                }
            }
        }
        walk(&self.home, &mut out, 0);
        out
    }

    /// Starts an agent with `baton agent start NAME ARGS`.
    pub fn start(&self, name: &str, args: &[&str]) {
        let mut all = vec!["agent", "start", name];
        all.extend_from_slice(args);
        self.run(all).ok();
    }

    pub fn agent_dir(&self, name: &str) -> PathBuf {
        self.home.join("agents").join(name)
    }

    pub fn task_dir(&self, id: &str) -> PathBuf {
        self.home.join("tasks").join(id)
    }

    /// The runner's pid, from status.json.
    pub fn runner_pid(&self, name: &str) -> i32 {
        let status = fs::read(self.agent_dir(name).join("status.json")).expect("status.json");
        let v: serde_json::Value = serde_json::from_slice(&status).expect("status.json is JSON");
        v["pid"].as_i64().expect("pid") as i32
    }

    pub fn status_json(&self, name: &str) -> serde_json::Value {
        let status = fs::read(self.agent_dir(name).join("status.json")).expect("status.json");
        serde_json::from_slice(&status).expect("status.json is JSON")
    }

    /// `baton status --json`: one object per agent.
    pub fn status_json_all(&self) -> Vec<serde_json::Value> {
        let out = self.run(["status", "--json"]).ok();
        serde_json::from_str(&out.stdout).expect("status --json is JSON")
    }

    pub fn done_json(&self, id: &str) -> serde_json::Value {
        let done = fs::read(self.task_dir(id).join("done.json")).expect("done.json");
        serde_json::from_slice(&done).expect("done.json is JSON")
    }

    /// The entries of an agent's inbox sub-folder (`new`, `cur`, `tmp`).
    pub fn inbox(&self, name: &str, sub: &str) -> Vec<String> {
        fs::read_dir(self.agent_dir(name).join("inbox").join(sub))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Copies the program at `from` to `to` so that it can be run at once: by `cp`, so that no
    /// descriptor of ours open for writing it can be inherited by a process another test
    /// thread starts meanwhile (that would make running it fail, "text file busy").
    pub fn copy_program(&self, from: &str, to: &Path) {
        let ok = Command::new("cp")
            .arg(from)
            .arg(to)
            .status()
            .expect("running cp");
        assert!(ok.success(), "cp {from} {}", to.display());
    }

    /// Writes an executable script into the temp folder and returns its path.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, body).expect("writing script");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    /// A gate: an exec agent command that records each task it starts, then blocks until the
    /// test opens the gate, then answers `cat` of its prompt. Returns the agent's arguments. (It
    /// holds the gate open before it says it started, so that the test can always write to it.)
    pub fn gated_agent(&self) -> Vec<String> {
        let gate = self.path("gate");
        let _ = nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::from_bits_truncate(0o600));
        let script = self.script(
            "gated.sh",
            &format!(
                "#!/bin/sh\nexec 3<> '{gate}'\necho \"$BATON_TASK_ID\" >> '{started}'\nread _ <&3\ncat\n",
                started = self.path("started").display(),
                gate = gate.display()
            ),
        );
        vec![
            "--driver".into(),
            "exec".into(),
            "--".into(),
            script.display().to_string(),
        ]
    }

    /// Starts (or restarts) agent `name` as a gated agent (see `gated_agent`).
    pub fn start_gated(&self, name: &str) {
        let args = self.gated_agent();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.start(name, &args);
    }

    /// The pid of this test's one workflow supervisor (`baton supervise ROOT`; other tests run
    /// theirs at the same time, under their own state folders).
    pub fn supervisor(&self) -> u32 {
        let found: Vec<i32> = processes_with_home(&self.home)
            .into_iter()
            .filter(|pid| {
                fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains("supervise"))
            })
            .collect();
        assert_eq!(found.len(), 1, "one supervisor: {found:?}");
        found[0] as u32
    }

    /// `baton send AGENT PROMPT`, returning the task id.
    pub fn send(&self, agent: &str, prompt: &str) -> String {
        self.run(["send", agent, prompt])
            .ok()
            .stdout
            .trim()
            .to_string()
    }

    /// How many tasks the gated agent has started.
    pub fn started_count(&self) -> usize {
        fs::read_to_string(self.path("started"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// Lets one waiting gated task through. Call it only once that task has started (see
    /// `started_count`): a FIFO has no memory, so an early write could reach the reader before.
    pub fn open_gate(&self) {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        // Non-blocking: with no task waiting at the gate this fails at once (ENXIO) rather than
        // hang the test.
        let mut f = fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(self.path("gate"))
            .expect("opening the gate: no task waits at it");
        f.write_all(b"go\n").expect("writing the gate");
    }

    /// The ids of all tasks in the state folder.
    pub fn task_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = fs::read_dir(self.home.join("tasks"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// The ids of the tasks sent to `agent` (or to a member of pool `agent`), in order.
    pub fn tasks_of(&self, agent: &str) -> Vec<String> {
        self.task_ids()
            .into_iter()
            .filter(|id| {
                fs::read(self.task_dir(id).join("task.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .and_then(|v| v["agent"].as_str().map(str::to_string))
                    .is_some_and(|a| a == agent || a.starts_with(&format!("{agent}.")))
            })
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // This test's tmux server, if it started one.
        if self.path("tmux").exists() {
            let _ = Command::new("tmux")
                .env("TMUX_TMPDIR", self.path("tmux"))
                .arg("kill-server")
                .output();
        }
        // Every process this test started carries its BATON_HOME (runners inherit it, agents are
        // given it): kill them all, whatever state the test left the state folder in.
        for pid in processes_with_home(&self.home) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The processes whose environment has `BATON_HOME=<home>`.
pub fn processes_with_home(home: &Path) -> Vec<i32> {
    let wanted = format!("BATON_HOME={}", home.display());
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|&pid| pid != std::process::id() as i32)
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|&b| b == 0).any(|kv| kv == wanted.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// True if a runner holds the lock (a non-blocking shared lock fails).
pub fn runner_alive(lock: &Path) -> bool {
    let Ok(f) = fs::File::open(lock) else {
        return false;
    };
    matches!(
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockSharedNonblock),
        Err((_, nix::errno::Errno::EWOULDBLOCK))
    )
}

/// Waits for `child` at most `limit`, collecting its output. `None` (after killing it) on timeout.
pub fn finish(
    mut child: Child,
    input: Option<Vec<u8>>,
    limit: Duration,
) -> Option<(ExitStatus, Vec<u8>, Vec<u8>)> {
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&input);
        });
    }
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut b);
        }
        b
    });
    let err_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut b);
        }
        b
    });
    let status = wait_child(&mut child, limit)?;
    Some((
        status,
        out_t.join().unwrap_or_default(),
        err_t.join().unwrap_or_default(),
    ))
}

/// Waits for a child's exit at most `limit`; kills it and returns `None` on timeout. Event
/// driven: a thread blocks in `waitid(WNOWAIT)` and the caller waits on a channel.
pub fn wait_child(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = nix::sys::wait::waitid(
            nix::sys::wait::Id::Pid(pid),
            nix::sys::wait::WaitPidFlag::WEXITED | nix::sys::wait::WaitPidFlag::WNOWAIT,
        );
        let _ = tx.send(r.is_ok());
    });
    match rx.recv_timeout(limit) {
        Ok(_) => child.wait().ok(),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }
}

/// The one bounded wait of the suite: checks `cond` until it holds or `limit` passes, and
/// panics naming the condition. For conditions with no event to wait on (another process's
/// state); it backs off from 1 ms to 20 ms between checks.
#[track_caller]
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    while !cond() {
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting until {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Sends a signal to a process.
pub fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).expect("kill");
}

/// The stand-in for Claude Code (tests/support/claude_standin.py).
pub const STANDIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/claude_standin.py"
);

impl Env {
    /// The HOME the stand-in Claude Code runs with (its sessions and settings live there).
    pub fn claude_home(&self) -> PathBuf {
        let home = self.path("claude-home");
        fs::create_dir_all(&home).expect("creating the stand-in's home");
        home
    }

    /// The tmux server of this test (its own socket folder).
    pub fn tmux_dir(&self) -> PathBuf {
        let dir = self.path("tmux");
        fs::create_dir_all(&dir).expect("creating the tmux folder");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod");
        dir
    }

    /// `tmux ARGS` against this test's server.
    pub fn tmux(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new("tmux");
        scrub(&mut cmd);
        cmd.args(args).env("TMUX_TMPDIR", self.tmux_dir());
        self.output(cmd, None)
    }

    /// The stand-in sessions' starts (one line of arguments per process).
    pub fn claude_starts(&self) -> Vec<String> {
        fs::read_to_string(self.claude_home().join(".claude-standin/starts.log"))
            .map(|s| s.lines().map(String::from).collect())
            .unwrap_or_default()
    }
}

/// Whether `pid`'s main thread is in a system call now whose line in /proc/PID/syscall (its
/// number, then its arguments) begins with one of `calls`.
pub fn in_syscall(pid: u32, calls: &[&str]) -> bool {
    fs::read_to_string(format!("/proc/{pid}/syscall"))
        .is_ok_and(|s| calls.iter().any(|c| s.starts_with(c)))
}

/// Whether `pid`'s main thread sleeps in poll(2) or ppoll(2) now (x86-64 and arm64 numbers), as
/// /proc says.
pub fn sleeps_in_poll(pid: u32) -> bool {
    in_syscall(pid, &["7 ", "271 ", "73 "])
}

/// Waits until `pid` has stopped itself at a test pause point (state `T` in /proc).
#[track_caller]
pub fn wait_stopped(pid: u32) {
    wait_until(
        &format!("process {pid} stops at its pause point"),
        secs(10),
        || {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, rest)| rest.trim_start().starts_with('T'))
                })
                .unwrap_or(false)
        },
    );
}

/// Spawns `cmd`, its output piped, to stop at the test pause points `points` (comma-separated,
/// in the order it reaches them), and waits until it has stopped at the first.
#[track_caller]
pub fn spawn_paused(mut cmd: Command, points: &str) -> Child {
    cmd.env("BATON_TEST_PAUSE", points)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    wait_stopped(child.id());
    child
}

/// Processes whose command line contains `marker` (other than this test process).
pub fn processes_with(marker: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .chars()
                        .all(|c| c.is_ascii_digit())
                })
                .filter(|e| e.file_name().to_string_lossy() != me)
                .filter_map(|e| {
                    fs::read(e.path().join("cmdline"))
                        .ok()
                        .map(|c| (e.file_name(), c))
                })
                .map(|(pid, c)| (pid, String::from_utf8_lossy(&c).replace('\0', " ")))
                .filter(|(_, c)| c.contains(marker))
                .map(|(pid, c)| format!("{} {c}", pid.to_string_lossy()))
                .collect()
        })
        .unwrap_or_default()
}

/// Says, where the test output shows it (not captured by the harness), that `test` was skipped
/// and why, and adds it to `target/tmp/skipped-tests.txt`, which CI prints at the end. A test
/// that cannot run never passes silently.
pub fn skipped(test: &str, why: &str) {
    use std::io::Write;
    let line = format!("SKIPPED {test}: {why}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    let list = Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped-tests.txt");
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(list) {
        let _ = f.write_all(line.as_bytes());
    }
}

/// True if every one of `programs` is on PATH; if not, the running test is reported skipped.
pub fn have(programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| {
            !std::env::var_os("PATH")
                .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(p).is_file()))
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    // The harness names each test's thread after the test.
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    skipped(&test, &format!("{} not installed", missing.join(", ")));
    false
}

/// A project folder `name` holding `toml` as its `.baton.toml`.
pub fn project(env: &Env, name: &str, toml: &str) -> PathBuf {
    let dir = env.path(name);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(".baton.toml"), toml).unwrap();
    dir
}

/// `baton ARGS` run in `dir`.
pub fn run_in(env: &Env, dir: &Path, args: &[&str]) -> Out {
    let mut cmd = env.cmd(args);
    cmd.current_dir(dir);
    env.output(cmd, None)
}

/// Starts agent `name` on the stand-in Claude Code, has it answer one turn (which makes its
/// state folder), and makes its tool gate: a FIFO at which a `TOOL` turn waits, after reporting
/// its tool call, until `open_tool_gate`. Returns the gate.
pub fn claude_with_tool_gate(env: &Env, name: &str) -> PathBuf {
    let home = env.claude_home();
    env.start(
        name,
        &[
            "--driver",
            "claude",
            "--claude",
            STANDIN,
            "--env",
            &format!("HOME={}", home.display()),
        ],
    );
    env.run(["ask", name, "hello"]).ok();
    let gate = home.join(".claude-standin/tool-gate");
    nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    gate
}

/// Lets the `TOOL` turn waiting at `gate` go on.
pub fn open_tool_gate(gate: &Path) {
    use std::io::Write;
    fs::OpenOptions::new()
        .write(true)
        .open(gate)
        .unwrap()
        .write_all(b"go\n")
        .unwrap();
}

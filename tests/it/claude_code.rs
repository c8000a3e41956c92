//! End to end with the real Claude Code (pinned, installed from npm by the test itself), pointed
//! at a stand-in Messages API on 127.0.0.1: Ctrl-G in its TUI delegates to a baton agent and the
//! answer lands in the prompt box; Ctrl-C while baton waits leaves Claude Code alive with the
//! prompt intact. Skipped, saying so, only where npm cannot reach its registry.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use crate::util::*;

const VERSION: &str = "2.1.197";
const API_KEY: &str = "sk-ant-dummy-key-for-baton-tests-0123456789";

/// Installs the pinned Claude Code once per test run; `None` (with the reason printed) where the
/// npm registry cannot be reached.
fn claude_code() -> Option<PathBuf> {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _once = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("claude-code-{VERSION}"));
    let bin = dir.join("node_modules/.bin/claude");
    if bin.exists() {
        return Some(bin);
    }
    let install = Command::new("npm")
        .args(["install", "--no-fund", "--no-audit", "--prefix"])
        .arg(&dir)
        .arg(format!("@anthropic-ai/claude-code@{VERSION}"))
        .output();
    match install {
        Ok(o) if o.status.success() && bin.exists() => Some(bin),
        Ok(o) => {
            let reachable = Command::new("npm")
                .args([
                    "view",
                    &format!("@anthropic-ai/claude-code@{VERSION}"),
                    "version",
                ])
                .output()
                .is_ok_and(|v| v.status.success());
            assert!(
                !reachable,
                "npm reaches the registry but installing Claude Code failed:\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
            skipped(
                "claude_code",
                &format!("npm cannot reach the registry to install Claude Code {VERSION}"),
            );
            None
        }
        Err(e) => {
            skipped(
                "claude_code",
                &format!("npm is not available to install Claude Code {VERSION}: {e}"),
            );
            None
        }
    }
}

/// The bodies of the requests the stand-in API was sent.
type Requests = Arc<Mutex<Vec<String>>>;

/// A stand-in of the Messages API: `HEAD /` is 200; `POST /v1/messages` streams one short text
/// answer as server-sent events; anything else is an empty JSON object. Every request body is
/// kept in `requests`.
fn messages_api(requests: Requests) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the stand-in API");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let requests = Arc::clone(&requests);
            std::thread::spawn(move || serve(stream, &requests));
        }
    });
    port
}

fn serve(stream: TcpStream, requests: &Requests) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
            break;
        }
        if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    let _ = reader.read_exact(&mut body);
    if let Ok(mut kept) = requests.lock() {
        kept.push(String::from_utf8_lossy(&body).into_owned());
    }
    let mut out = stream;
    let (method, path) = {
        let mut parts = request.split_whitespace();
        (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        )
    };
    if method == "POST" && path.starts_with("/v1/messages") && !path.contains("count_tokens") {
        let events = [
            (
                "message_start",
                r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello from the stand-in API."}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":5}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ];
        let mut sse = String::new();
        for (name, data) in events {
            sse += &format!("event: {name}\ndata: {data}\n\n");
        }
        let _ = write!(out, "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{sse}", sse.len());
    } else if method == "HEAD" {
        let _ = write!(
            out,
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
    } else {
        let _ = write!(out, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}");
    }
}

/// Starts the real Claude Code TUI in this test's tmux server, with baton-edit as its editor; returns
/// what its requests to the stand-in API carry.
fn start_claude_code(env: &Env, claude: &Path) -> Requests {
    let home = env.path("cc-home");
    let project = env.path("project");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&project).unwrap();
    let project = project.canonicalize().unwrap();
    let seed = serde_json::json!({
        "hasCompletedOnboarding": true,
        "customApiKeyResponses": {"approved": [&API_KEY[API_KEY.len() - 20..]], "rejected": []},
        "projects": {project.to_string_lossy(): {"hasTrustDialogAccepted": true}},
    });
    std::fs::write(home.join(".claude.json"), seed.to_string()).unwrap();
    let requests: Requests = Arc::default();
    let port = messages_api(Arc::clone(&requests));
    let script = env.script(
        "claude-code.sh",
        &format!(
            "export HOME='{home}' ANTHROPIC_BASE_URL=http://127.0.0.1:{port} ANTHROPIC_API_KEY={API_KEY}\n\
             export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_AUTOUPDATER=1 CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL=1\n\
             export VISUAL='{bin}' BATON_EDITOR=true BATON_HOME='{state}'\n\
             unset EDITOR BATON_AGENT TMUX\n\
             cd '{project}' && exec '{claude}'\n",
            home = home.display(),
            // As INSTALL.md sets it: the front, which hands directives to baton.
            bin = FRONT,
            state = env.home.display(),
            project = project.display(),
            claude = claude.display(),
        ),
    );
    env.tmux(&[
        "new-session",
        "-d",
        "-s",
        "cc",
        "-x",
        "120",
        "-y",
        "40",
        &format!("sh {}", script.display()),
    ])
    .ok();
    wait_for_screen(env, "for shortcuts");
    requests
}

fn screen(env: &Env) -> String {
    env.tmux(&["capture-pane", "-p", "-t", "cc"]).stdout
}

fn wait_for_screen(env: &Env, text: &str) {
    let mut last = String::new();
    let seen = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(&format!("Claude Code shows {text:?}"), secs(30), || {
            last = screen(env);
            last.contains(text)
        })
    }));
    assert!(
        seen.is_ok(),
        "Claude Code never showed {text:?}; the screen:\n{last}"
    );
}

fn keys(env: &Env, keys: &[&str]) {
    let mut args = vec!["send-keys", "-t", "cc"];
    args.extend_from_slice(keys);
    env.tmux(&args).ok();
}

#[test]
fn ctrl_g_in_claude_code_delegates_and_the_answer_lands_in_the_prompt_box() {
    let Some(claude) = claude_code() else { return };
    let env = Env::new();
    env.start("rev", &["--driver", "exec", "--", "tr", "a-z", "A-Z"]);
    let _ = start_claude_code(&env, &claude);
    keys(&env, &["-l", "@rev make this loud"]);
    wait_for_screen(&env, "@rev make this loud");
    keys(&env, &["C-g"]);
    // One capture must show the whole answer in the prompt box (Claude Code redraws in steps).
    let answered = |s: &str| {
        let after_prompt: String = s
            .lines()
            .skip_while(|l| !l.starts_with('❯'))
            .collect::<Vec<_>>()
            .join("\n");
        after_prompt.contains("@rev replied:") && after_prompt.contains("MAKE THIS LOUD")
    };
    let mut last = String::new();
    let seen = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(
            "the answer is in Claude Code's prompt box",
            secs(30),
            || {
                last = screen(&env);
                answered(&last)
            },
        )
    }));
    assert!(
        seen.is_ok(),
        "the answer never reached the prompt box; the screen:\n{last}"
    );
    assert_eq!(env.status_json("rev")["tasks_done"], 1);
}

#[test]
fn ctrl_c_while_baton_waits_leaves_claude_code_alive_with_its_prompt() {
    let Some(claude) = claude_code() else { return };
    let env = Env::new();
    env.start_gated("g");
    let _ = start_claude_code(&env, &claude);
    keys(&env, &["-l", "@g wait for me"]);
    wait_for_screen(&env, "@g wait for me");
    keys(&env, &["C-g"]);
    wait_for_screen(&env, "baton: @g working");
    keys(&env, &["C-c"]);
    // Back in Claude Code, with the prompt in its box (the line after `❯`, which Claude Code
    // follows with a no-break space) and baton's status line gone.
    let prompt_box = |s: &str| {
        s.lines()
            .any(|l| l.starts_with('❯') && l.contains("@g wait for me"))
    };
    wait_until("the prompt is back in Claude Code's box", secs(30), || {
        let s = screen(&env);
        prompt_box(&s) && !s.contains("baton: @g")
    });
    let shown = screen(&env);
    assert!(
        !shown.contains("Press Ctrl-C again"),
        "Claude Code never saw the Ctrl-C:\n{shown}"
    );
    let pane = env
        .tmux(&["list-panes", "-t", "cc", "-F", "#{pane_dead}"])
        .ok();
    assert_eq!(pane.stdout.trim(), "0", "Claude Code is alive");
    let id = env.task_ids().pop().unwrap();
    wait_until("the task is cancelled", secs(10), || {
        env.task_dir(&id).join("done.json").exists()
    });
    assert_eq!(env.done_json(&id)["state"], "cancelled");
}

#[test]
fn a_background_result_wakes_an_idle_claude_code_through_its_chief_hooks() {
    let Some(claude) = claude_code() else { return };
    let env = Env::new();
    // The chief's hooks in the real Claude Code's settings (its schema accepts them, or the
    // session would not run them), and a project whose monitor answers in the background.
    let home = env.path("cc-home");
    std::fs::create_dir_all(&home).unwrap();
    let mut install = env.cmd(["install", "claude", "--chief"]);
    install.env("HOME", &home);
    env.output(install, None).ok();
    let project = env.path("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join(".baton.toml"),
        "[agent.monitor]\ndriver = \"exec\"\ncommand = [\"echo\", \"CI failed on main: test_auth\"]\n",
    )
    .unwrap();
    let requests = start_claude_code(&env, &claude);
    // SessionStart armed the waiter (it holds its session's lock).
    let results = env.home.join("results");
    wait_until("chief-wait is armed", secs(30), || {
        std::fs::read_dir(&results).is_ok_and(|rd| {
            rd.filter_map(|e| e.ok()).any(|e| {
                std::fs::read_dir(e.path().join("waiters"))
                    .is_ok_and(|w| w.filter_map(|f| f.ok()).any(|f| runner_alive(&f.path())))
            })
        })
    });
    let before = requests.lock().unwrap().len();
    let mut send = env.cmd(["send", "monitor", "watch CI; answer when it fails"]);
    send.current_dir(&project);
    env.output(send, None).ok();
    // The idle session wakes with the result: its next request to the model carries it.
    wait_until(
        "Claude Code tells the model of the result",
        secs(30),
        || {
            requests.lock().unwrap()[before..]
                .iter()
                .any(|body| body.contains("CI failed on main: test_auth"))
        },
    );
    // What the person sees: Claude Code's line for an async hook's feedback.
    wait_for_screen(&env, "Stop hook feedback");
    // Seen once: `baton results` has nothing new for the project.
    let mut results = env.cmd(["results"]);
    results.current_dir(&project);
    assert_eq!(env.output(results, None).ok().stdout, "");
}

//! `baton demo`: the whole round trip in a throw-away state folder, needing nothing but this
//! binary: start a shell agent, delegate an editor-mode prompt to it (through the coordinator,
//! as Claude Code's Ctrl-G would), show the file before and after, the task's end as the
//! protocol records it, and `baton status`; stop the agent, clean up.

use std::path::Path;
use std::process::{Command, Output};

use anyhow::Context;

use crate::error::Error;
use crate::exit::Exit;
use crate::protocol::{Store, TaskId};

type Result<T> = anyhow::Result<T>;

fn baton(home: &Path, args: &[&str]) -> Result<Output> {
    let exe = std::env::current_exe().context("finding the baton binary")?;
    Command::new(exe)
        .args(args)
        .env("BATON_HOME", home)
        .env("BATON_TIMEOUT", "30s")
        .env_remove("BATON_AGENT")
        .env_remove("BATON_EDITOR")
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running baton {}", args.join(" ")))
}

fn step(home: &Path, title: &str, args: &[&str]) -> Result<String> {
    println!("$ baton {}", args.join(" "));
    let out = baton(home, args)?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    if !out.status.success() {
        return Err(Error::Unreachable(format!(
            "demo step \"{title}\" failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .into());
    }
    Ok(stdout)
}

fn show(title: &str, path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    println!("--- {title} ({}) ---", path.display());
    for line in text.lines() {
        println!("  | {line}");
    }
}

/// The one task of the demo's state folder.
fn only_task(store: &Store) -> Option<TaskId> {
    std::fs::read_dir(store.tasks_dir())
        .ok()?
        .filter_map(|e| e.ok())
        .find_map(|e| e.file_name().to_str().and_then(|n| TaskId::parse(n).ok()))
}

pub fn demo() -> Result<Exit> {
    let dir = tempfile::Builder::new()
        .prefix("baton-demo-")
        .tempdir()
        .context("creating a temp folder")?;
    let home = dir.path().join("state");
    let prompt = dir.path().join("claude-prompt.md");
    println!(
        "baton demo: a throw-away state folder at {}\n",
        home.display()
    );
    let result = (|| -> Result<()> {
        step(&home, "start", &["agent", "start", "demo"])?;
        println!();
        std::fs::write(
            &prompt,
            "@demo echo \"hello from agent $BATON_AGENT\"; echo \"2 + 3 = $((2 + 3))\"",
        )
        .with_context(|| format!("writing {}", prompt.display()))?;
        show(
            "the prompt file before (what Claude Code hands its editor on Ctrl-G)",
            &prompt,
        );
        let p = prompt.to_string_lossy().into_owned();
        step(&home, "editor mode", &[&p])?;
        show(
            "the prompt file after (what appears in Claude Code's prompt box)",
            &prompt,
        );
        println!();
        // The task's end, as every way of delegating reports it (`ask --json`, `wait --json`).
        let store = Store::open_at(home.clone())?;
        if let Some(id) = only_task(&store) {
            step(&home, "the task's end", &["result", id.as_str(), "--json"])?;
            println!();
        }
        step(&home, "status", &["status"])?;
        println!();
        Ok(())
    })();
    let stopped = step(&home, "stop", &["agent", "stop", "demo"]);
    result?;
    stopped?;
    let lines: String = crate::editor::PROFILE_LINES
        .lines()
        .map(|l| format!("  {l}\n"))
        .collect();
    println!(
        "\nThe round trip works. To use baton as Claude Code's editor (Ctrl-G), add to your shell profile:\n\n{lines}\nthen start an agent (`baton agent start planning`) and begin a prompt with @planning."
    );
    Ok(Exit::Ok)
}

//! `baton demo`: the whole round trip in a throw-away state folder, needing nothing but this
//! binary: start a shell agent, delegate an editor-mode prompt to it, show the file before and
//! after, show `baton status`, stop the agent, clean up.

use std::path::Path;
use std::process::{Command, Output};

use crate::exit::{Exit, Failure, Result};

fn baton(home: &Path, args: &[&str]) -> Result<Output> {
    let exe = std::env::current_exe()
        .map_err(|e| Failure::msg(Exit::Usage, format!("finding the baton binary: {e}")))?;
    Command::new(exe)
        .args(args)
        .env("BATON_HOME", home)
        .env("BATON_TIMEOUT", "30s")
        .env_remove("BATON_AGENT")
        .env_remove("BATON_EDITOR")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            Failure::msg(
                Exit::Usage,
                format!("running baton {}: {e}", args.join(" ")),
            )
        })
}

fn step(home: &Path, title: &str, args: &[&str]) -> Result<String> {
    println!("$ baton {}", args.join(" "));
    let out = baton(home, args)?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    if !out.status.success() {
        return Err(Failure::msg(
            Exit::AgentLost,
            format!(
                "demo step \"{title}\" failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
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

pub fn demo() -> Result<Exit> {
    let dir = tempfile::Builder::new()
        .prefix("baton-demo-")
        .tempdir()
        .map_err(|e| Failure::msg(Exit::Usage, format!("creating a temp folder: {e}")))?;
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
        .map_err(|e| Failure::msg(Exit::Usage, format!("writing {}: {e}", prompt.display())))?;
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
        step(&home, "status", &["status"])?;
        println!();
        Ok(())
    })();
    let stopped = step(&home, "stop", &["agent", "stop", "demo"]);
    result?;
    stopped?;
    println!(
        "\nThe round trip works. To use baton as Claude Code's editor (Ctrl-G), add to your shell profile:\n\n  export BATON_EDITOR=\"${{VISUAL:-${{EDITOR:-vi}}}}\"\n  export VISUAL=baton\n\nthen start an agent (`baton agent start planning`) and begin a prompt with @planning."
    );
    Ok(Exit::Ok)
}

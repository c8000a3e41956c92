//! Shell completions (a script for each shell; in a real bash, commands and agent names
//! completed from the state folder), the man page rendered by `man` without a warning, and
//! `baton agent list` / `baton agent remove` for scripts.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::util::*;

const SHELLS: [&str; 5] = ["bash", "zsh", "fish", "elvish", "powershell"];

#[test]
fn a_completion_script_for_each_shell_calls_this_baton() {
    let env = Env::new();
    for shell in SHELLS {
        let script = env.run(["completions", shell]).ok().stdout;
        assert!(script.contains("BATON_COMPLETE"), "{shell}:\n{script}");
        assert!(script.contains(BIN), "{shell} runs this baton:\n{script}");
    }
    assert!(env
        .run(["completions", "tcsh"])
        .expect(2)
        .stderr
        .contains("possible values"));
    // The scripts parse, in the shells that are installed here.
    for (shell, check) in [("zsh", &["-n"][..]), ("fish", &["--no-execute"][..])] {
        if !have(&[shell]) {
            continue;
        }
        let file = env.path(&format!("baton.{shell}"));
        fs::write(&file, env.run(["completions", shell]).ok().stdout).unwrap();
        let out = Command::new(shell).args(check).arg(&file).output().unwrap();
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Completes the words `line` (the last one being completed) in a real bash that has loaded
/// `baton completions bash`, and returns the candidates, one a line.
fn bash_complete(env: &Env, words: &[&str]) -> String {
    let script = env.path("baton.bash");
    fs::write(&script, env.run(["completions", "bash"]).ok().stdout).unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}'\n\
         complete -p baton >&2\n\
         COMP_WORDS=({})\n\
         COMP_CWORD={}\n\
         COMP_LINE=\"${{COMP_WORDS[*]}}\"\n\
         COMP_POINT=${{#COMP_LINE}}\n\
         _clap_complete_baton baton \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script.display(),
        quoted.join(" "),
        words.len() - 1
    );
    let mut cmd = Command::new("bash");
    scrub(&mut cmd);
    cmd.args(["--norc", "--noprofile", "-c", &program])
        .env("BATON_HOME", &env.home)
        .current_dir(env.dir.path());
    let out = env.output(cmd, None).ok();
    assert!(
        out.stderr.contains("-F _clap_complete_baton baton"),
        "complete -p baton: {}",
        out.stderr
    );
    out.stdout
}

#[test]
fn bash_completes_commands_options_and_agent_names_from_the_state_folder() {
    if !have(&["bash"]) {
        return;
    }
    let env = Env::new();
    env.start("planning", &[]);
    env.start("review", &[]);
    let names = |s: &str| s.lines().map(str::to_string).collect::<Vec<_>>();
    assert!(names(&bash_complete(&env, &["baton", "lo"])).contains(&"logs".to_string()));
    assert_eq!(
        names(&bash_complete(&env, &["baton", "agent", "stop", "pl"])),
        ["planning"]
    );
    let all = names(&bash_complete(&env, &["baton", "logs", ""]));
    assert!(
        all.contains(&"planning".into()) && all.contains(&"review".into()),
        "{all:?}"
    );
    // The last of a comma-separated list, without the ones already given.
    assert_eq!(
        names(&bash_complete(&env, &["baton", "ask", "planning,"])),
        ["planning,review"]
    );
    assert!(
        names(&bash_complete(&env, &["baton", "logs", "planning", "--f"]))
            .contains(&"--follow".to_string())
    );
    // A new agent is completed at once: nothing is generated ahead of time.
    env.start("zeta", &[]);
    assert_eq!(
        names(&bash_complete(&env, &["baton", "attach", "z"])),
        ["zeta"]
    );
}

#[test]
fn the_man_page_renders_without_warnings() {
    if !have(&["man"]) {
        return;
    }
    let env = Env::new();
    let page = env.path("baton.1");
    fs::write(&page, env.run(["man"]).ok().stdout_bytes).unwrap();
    let out = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(&page)
        .env("MANWIDTH", "100")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr, "", "man warns:\n{stderr}");
    for wanted in [
        "BATON(1)",
        "baton logs",
        "--follow",
        "baton status",
        "--watch",
        "Exit codes:",
    ] {
        assert!(text.contains(wanted), "{wanted} missing from:\n{text}");
    }
    assert!(
        !text.contains("baton help"),
        "clap's help command is not a command"
    );
}

#[test]
fn agent_list_prints_names_for_scripts_and_the_uninstall_line_works() {
    let env = Env::new();
    env.start("a1", &[]);
    env.start("b2", &["--driver", "exec", "--", "cat"]);
    assert_eq!(env.run(["agent", "list"]).ok().stdout, "a1\nb2\n");
    let long = env.run(["agent", "list", "--long"]).ok().stdout;
    assert_eq!(long, "a1\trunning\tshell\nb2\trunning\texec\n");
    let json: serde_json::Value =
        serde_json::from_str(&env.run(["agent", "list", "--json"]).ok().stdout).unwrap();
    assert_eq!(json[1]["name"], "b2");
    assert_eq!(json[1]["state"], "running");
    assert_eq!(json[1]["driver"], "exec");
    // INSTALL.md's uninstall line, with baton on PATH.
    let bin_dir = Path::new(BIN).parent().unwrap().display().to_string();
    let mut sh = Command::new("sh");
    scrub(&mut sh);
    sh.args([
        "-c",
        "baton agent list | cut -f1 | xargs -rn1 baton agent stop",
    ])
    .env("BATON_HOME", &env.home)
    .env(
        "PATH",
        format!("{bin_dir}:{}", std::env::var("PATH").unwrap_or_default()),
    );
    let out = env.output(sh, None).ok();
    assert!(out.stdout.contains("agent a1 stopped") && out.stdout.contains("agent b2 stopped"));
    assert_eq!(
        env.run(["agent", "list", "--long"]).ok().stdout,
        "a1\tstopped\tshell\nb2\tstopped\texec\n"
    );
}

#[test]
fn agent_remove_refuses_a_running_agent_and_removes_a_stopped_one() {
    let env = Env::new();
    env.start("sh1", &[]);
    let id = env.send("sh1", "echo kept");
    env.run(["wait", &id]).ok();
    let out = env.run(["agent", "remove", "sh1"]).expect(2);
    assert!(
        out.stderr
            .contains("is running: stop it first (`baton agent stop sh1`)"),
        "{}",
        out.stderr
    );
    assert!(
        env.agent_dir("sh1").join("lock").exists(),
        "nothing removed"
    );
    assert!(runner_alive(&env.agent_dir("sh1").join("lock")));
    env.run(["agent", "stop", "sh1"]).ok();
    assert!(env
        .run(["agent", "remove", "sh1"])
        .ok()
        .stdout
        .contains("removed agent sh1"));
    assert!(!env.agent_dir("sh1").exists());
    assert_eq!(env.run(["agent", "list"]).ok().stdout, "");
    assert!(env
        .run(["agent", "remove", "sh1"])
        .expect(2)
        .stderr
        .contains("never run"));
}

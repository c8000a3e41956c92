//! `baton-edit`, the editor-mode front: for every editor call it does what `baton` does (the same
//! exit, file, editor run, PID, arguments and signal state handed to the editor), and it passes
//! a prompt through to the editor without baton.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};

use crate::util::*;

/// A stand-in editor: records its PID, its arguments and its signal mask and ignored signals.
/// The shell reads its own status with builtins: a child (`grep`) could read it while the shell
/// blocks every signal around a `vfork`, as dash does.
fn recording_editor(env: &Env) -> PathBuf {
    env.script(
        "editor.sh",
        &format!(
            "#!/bin/sh\nd='{}'\necho $$ > \"$d/editor.pid\"\nprintf '%s\\n' \"$0\" \"$@\" > \"$d/editor.args\"\n\
             while read -r k v; do case $k in SigBlk:|SigIgn:) echo \"$k\t$v\";; esac; done \
             < /proc/$$/status > \"$d/editor.signals\"\n",
            env.dir.path().display()
        ),
    )
}

/// What one editor call did, as a person or Claude Code could see it.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    code: i32,
    stderr: String,
    file: Option<String>,
    /// The editor's arguments and signal state, if it ran; it ran in the caller's own process.
    editor: Option<(String, String)>,
}

/// Runs `program ARGS` (baton or the front) as an editor, with SIGPIPE ignored and SIGUSR1
/// blocked, as a parent may leave them.
fn call(env: &Env, program: &str, args: &[&str], vars: &[(&str, &str)], file: &Path) -> Seen {
    for f in ["editor.pid", "editor.args", "editor.signals"] {
        let _ = fs::remove_file(env.path(f));
    }
    let mut cmd = Command::new(program);
    scrub(&mut cmd)
        .args(args)
        .env("BATON_HOME", &env.home)
        .envs(vars.iter().copied())
        .current_dir(env.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let mut usr1 = SigSet::empty();
            usr1.add(Signal::SIGUSR1);
            signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&usr1), None)?;
            signal::signal(Signal::SIGPIPE, SigHandler::SigIgn)?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawning the editor call");
    let status = wait_child(&mut child, HARD_TIMEOUT).expect("the call ends in time");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let editor = fs::read_to_string(env.path("editor.pid")).ok().map(|pid| {
        assert_eq!(
            pid.trim().parse::<u32>().unwrap(),
            child.id(),
            "{program} {args:?}: the editor runs in the caller's process"
        );
        (
            fs::read_to_string(env.path("editor.args")).unwrap(),
            fs::read_to_string(env.path("editor.signals")).unwrap(),
        )
    });
    Seen {
        code: status.code().unwrap_or(-1),
        stderr,
        file: fs::read_to_string(file).ok(),
        editor,
    }
}

/// What the file holds (if it exists), the arguments, the environment.
type Case<'a> = (Option<String>, Vec<&'a str>, Vec<(&'a str, &'a str)>);

#[test]
fn the_front_does_what_baton_does_for_every_editor_call() {
    let env = Env::new();
    env.start("sh1", &[]);
    let editor = recording_editor(&env);
    let editor = editor.to_str().unwrap();
    let bin_dir = Path::new(editor).parent().unwrap().display().to_string();
    let path = format!("{bin_dir}:/usr/bin:/bin");
    fs::write(
        env.path(".baton.toml"),
        "editor = \"editor.sh --from-config\"\n",
    )
    .unwrap();
    let file = env.path("prompt.md");
    let fifo = env.path("fifo.md");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let marker = "quoted\n# ─── Write your reply below this line ───\n";
    let plain: &[(&str, &str)] = &[("BATON_EDITOR", editor)];
    let cases: Vec<Case> = vec![
        (Some("plain text".into()), vec!["prompt.md"], plain.to_vec()),
        (Some(String::new()), vec!["prompt.md"], plain.to_vec()),
        (
            Some("\u{feff} \n@sh1 echo routed".into()),
            vec!["prompt.md"],
            plain.to_vec(),
        ),
        (
            Some(format!("{marker}@sh1 echo behind")),
            vec!["prompt.md"],
            plain.to_vec(),
        ),
        (
            Some(format!("@sh1 above\n{marker}plain")),
            vec!["prompt.md"],
            plain.to_vec(),
        ),
        (
            Some("@nosuch hello".into()),
            vec!["prompt.md"],
            plain.to_vec(),
        ),
        (Some("@sh11 typo".into()), vec!["prompt.md"], plain.to_vec()),
        (
            Some("plain".into()),
            vec!["-R", "+3", "prompt.md"],
            plain.to_vec(),
        ),
        (
            Some("plain".into()),
            vec!["prompt.md", "extra.md"],
            plain.to_vec(),
        ),
        (None, vec!["prompt.md"], plain.to_vec()),
        (None, vec!["no/such/folder/prompt.md"], plain.to_vec()),
        (None, vec!["fifo.md"], plain.to_vec()),
        (None, vec!["."], plain.to_vec()),
        (None, vec![], plain.to_vec()),
        (None, vec!["--version"], plain.to_vec()),
        (
            Some("@sh1 echo inside".into()),
            vec!["prompt.md"],
            vec![("BATON_EDITOR", editor), ("BATON_AGENT", "sh1")],
        ),
        (
            Some("plain".into()),
            vec!["prompt.md"],
            vec![("BATON_AGENT", ""), ("PATH", &path)],
        ),
        (
            Some("plain".into()),
            vec!["prompt.md"],
            vec![("BATON_EDITOR", " editor.sh  -a\t-b "), ("PATH", &path)],
        ),
        (
            Some("plain".into()),
            vec!["prompt.md"],
            vec![("BATON_EDITOR", "editor.sh"), ("PATH", "relative:/usr/bin")],
        ),
        (
            Some("plain".into()),
            vec!["prompt.md"],
            vec![("BATON_EDITOR", "./editor.sh")],
        ),
        (
            Some("plain".into()),
            vec!["prompt.md"],
            vec![("BATON_EDITOR", FRONT)],
        ),
        (
            Some("plain".into()),
            vec!["prompt.md"],
            vec![("BATON_EDITOR", BIN)],
        ),
        (
            Some("plain".into()),
            vec!["prompt.md"],
            vec![("BATON_EDITOR", "/no/such")],
        ),
        (
            Some("plain".into()),
            vec!["prompt.md"],
            vec![("BATON_EDITOR", "  ")],
        ),
        (
            Some("plain".into()),
            vec!["prompt.md"],
            vec![("BATON_EDITOR", editor), ("BATON_TIMEOUT", "soon")],
        ),
        (
            Some("@sh1 echo timed".into()),
            vec!["prompt.md"],
            vec![("BATON_EDITOR", editor), ("BATON_TIMEOUT", "1m")],
        ),
    ];
    for (text, args, vars) in &cases {
        let mut seen = Vec::new();
        for program in [BIN, FRONT] {
            let _ = fs::remove_file(&file);
            if let Some(text) = text {
                fs::write(&file, text).unwrap();
            }
            seen.push(call(&env, program, args, vars, &file));
        }
        assert_eq!(
            seen[0], seen[1],
            "baton, then baton-edit, for {text:?} {args:?} {vars:?}"
        );
    }
    // The cases cover the paths: passed through, answered, refused.
    let editor_ran = |args: &[&str], vars: &[(&str, &str)]| {
        fs::write(&file, "plain").unwrap();
        call(&env, FRONT, args, vars, &file).editor
    };
    let (args, signals) = editor_ran(&["-R", "+3", "prompt.md"], plain).expect("passed through");
    assert_eq!(args, format!("{editor}\n-R\n+3\nprompt.md\n"));
    let mask = |name: &str| {
        let line = signals.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line[name.len()..].trim(), 16).unwrap()
    };
    let bit = |sig: Signal| 1u64 << (sig as i32 - 1);
    // As baton's `exec` does: SIGPIPE's default restored, the mask kept.
    assert_eq!(
        mask("SigIgn:") & bit(Signal::SIGPIPE),
        0,
        "SIGPIPE not ignored: {signals}"
    );
    assert_eq!(mask("SigBlk:"), bit(Signal::SIGUSR1), "{signals}");
    fs::write(&file, "@sh1 echo answered").unwrap();
    let answered = call(&env, FRONT, &["prompt.md"], plain, &file);
    assert_eq!(answered.file.as_deref(), Some("@sh1 replied:\nanswered\n"));
    assert_eq!(answered.editor, None);
}

#[test]
fn the_front_passes_through_without_baton_and_names_a_missing_baton() {
    let env = Env::new();
    let editor = recording_editor(&env);
    let dir = env.path("lonely");
    fs::create_dir(&dir).unwrap();
    let front = dir.join("baton-edit");
    env.copy_program(FRONT, &front);
    let file = env.path("prompt.md");
    fs::write(&file, "plain text").unwrap();
    let plain = [("BATON_EDITOR", editor.to_str().unwrap())];
    // No baton beside it: a prompt without a directive is still handed to the editor...
    let seen = call(&env, front.to_str().unwrap(), &["prompt.md"], &plain, &file);
    assert_eq!(seen.code, 0, "{seen:?}");
    assert!(seen.editor.is_some(), "passed through without baton");
    // ...and one with a directive is refused, naming the baton it looked for, the file intact.
    fs::write(&file, "@sh1 do it").unwrap();
    let seen = call(&env, front.to_str().unwrap(), &["prompt.md"], &plain, &file);
    assert_eq!(seen.code, 2, "{seen:?}");
    assert!(
        seen.stderr
            .contains(&format!("running {}/baton", dir.display())),
        "{}",
        seen.stderr
    );
    assert_eq!(seen.file.as_deref(), Some("@sh1 do it"));
    assert_eq!(seen.editor, None);
}

/// Which program the front handed a call to.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Editor,
    Baton,
}

/// What the file holds, the arguments, the environment, the route expected.
type RouteCase<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>, Route);

#[test]
fn the_front_runs_the_editor_itself_only_in_the_plain_case() {
    let env = Env::new();
    let editor = recording_editor(&env);
    let editor = editor.to_str().unwrap();
    let bin_dir = env.dir.path().display().to_string();
    // A copy of the front beside a stand-in baton that says it ran.
    let dir = env.path("installed");
    fs::create_dir(&dir).unwrap();
    let front = dir.join("baton-edit");
    env.copy_program(FRONT, &front);
    let ran = env.path("baton.ran");
    fs::write(
        dir.join("baton"),
        format!("#!/bin/sh\necho \"$@\" > '{}'\n", ran.display()),
    )
    .unwrap();
    fs::set_permissions(
        dir.join("baton"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let file = env.path("prompt.md");
    nix::unistd::mkfifo(
        &env.path("fifo.md"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    fs::write(env.path("status"), "plain").unwrap();
    let path = format!("{bin_dir}:/usr/bin:/bin");
    let many: Vec<&str> = std::iter::repeat_n("-a", 300)
        .chain(["prompt.md"])
        .collect();
    let front_s = front.to_str().unwrap();
    let stub = dir.join("baton");
    let e = ("BATON_EDITOR", editor);
    use Route::*;
    let cases: Vec<RouteCase> = vec![
        ("plain", vec!["prompt.md"], vec![e], Editor),
        (
            "  \n\u{feff}plain @sh1",
            vec!["-R", "prompt.md"],
            vec![e],
            Editor,
        ),
        ("@sh1 do it", vec!["prompt.md"], vec![e], Baton),
        (
            "plain",
            vec!["prompt.md"],
            vec![e, ("BATON_COMPLETE", "bash")],
            Baton,
        ),
        (
            "plain",
            vec!["prompt.md"],
            vec![e, ("BATON_COMPLETE", "")],
            Baton,
        ),
        (
            "@sh1 do it",
            vec!["prompt.md"],
            vec![e, ("BATON_AGENT", "a")],
            Editor,
        ),
        (
            "@sh1 do it",
            vec!["prompt.md"],
            vec![e, ("BATON_AGENT", "")],
            Baton,
        ),
        (
            "plain",
            vec!["prompt.md"],
            vec![("BATON_EDITOR", "editor.sh -a"), ("PATH", &path)],
            Editor,
        ),
        (
            "plain",
            vec!["prompt.md"],
            vec![("BATON_EDITOR", "editor.sh"), ("PATH", "rel:/bin")],
            Baton,
        ),
        (
            "plain",
            vec!["prompt.md"],
            vec![("BATON_EDITOR", "./editor.sh")],
            Baton,
        ),
        (
            "plain",
            vec!["prompt.md"],
            vec![("BATON_EDITOR", "édit")],
            Baton,
        ),
        ("plain", vec!["prompt.md"], vec![], Baton),
        (
            "plain",
            vec!["prompt.md"],
            vec![("BATON_EDITOR", front_s)],
            Baton,
        ),
        (
            "plain",
            vec!["prompt.md"],
            vec![("BATON_EDITOR", stub.to_str().unwrap())],
            Baton,
        ),
        (
            "plain",
            vec!["prompt.md"],
            vec![e, ("BATON_TIMEOUT", "1m")],
            Baton,
        ),
        (
            "plain",
            vec!["prompt.md"],
            vec![e, ("BATON_TIMEOUT", " ")],
            Editor,
        ),
        ("plain", vec!["missing.md"], vec![e], Editor),
        ("plain", vec!["fifo.md"], vec![e], Baton),
        ("plain", vec!["status"], vec![e], Baton),
        ("plain", vec!["a.md", "b.md"], vec![e], Baton),
        ("plain", many.clone(), vec![e], Baton),
    ];
    for (text, args, vars, route) in &cases {
        fs::write(&file, text).unwrap();
        let _ = fs::remove_file(&ran);
        let seen = call(&env, front_s, args, vars, &file);
        let took = match (seen.editor.is_some(), ran.exists()) {
            (true, false) => Editor,
            (false, true) => Baton,
            both => panic!("{both:?} for {text:?} {args:?} {vars:?}: {seen:?}"),
        };
        assert_eq!(&took, route, "{text:?} {args:?} {vars:?}: {seen:?}");
        assert_eq!(seen.file.as_deref(), Some(*text), "never written");
        if took == Baton {
            let handed = fs::read_to_string(&ran).unwrap();
            assert_eq!(handed.trim_end(), args.join(" "), "the same arguments");
        }
    }
    // The editor's words and the file, the program as found on PATH.
    fs::write(&file, "plain").unwrap();
    let vars = [
        ("BATON_EDITOR", " editor.sh  -a\t-b "),
        ("PATH", path.as_str()),
    ];
    let (args, _) = call(&env, front_s, &["+2", "prompt.md"], &vars, &file)
        .editor
        .unwrap();
    assert_eq!(args, format!("{editor}\n-a\n-b\n+2\nprompt.md\n"));
}

#[test]
fn a_closed_standard_descriptor_reaches_the_editor_as_dev_null() {
    let env = Env::new();
    let editor = env.script(
        "fd0.sh",
        &format!(
            "#!/bin/sh\nreadlink /proc/$$/fd/0 > '{}'\n",
            env.path("fd0").display()
        ),
    );
    let file = env.path("prompt.md");
    fs::write(&file, "plain").unwrap();
    for program in [BIN, FRONT] {
        let _ = fs::remove_file(env.path("fd0"));
        let mut cmd = Command::new(program);
        scrub(&mut cmd)
            .arg(&file)
            .env("BATON_HOME", &env.home)
            .env("BATON_EDITOR", &editor)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: close(2) is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                nix::libc::close(0);
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap();
        assert!(wait_child(&mut child, HARD_TIMEOUT).unwrap().success());
        assert_eq!(
            fs::read_to_string(env.path("fd0")).unwrap().trim(),
            "/dev/null",
            "{program}"
        );
    }
}

//! The inotify limits, exhausted on purpose. They are machine-wide settings, so this test is
//! ignored by the parallel suite and run alone: `cargo test -- --ignored --test-threads=1`.

use std::fs;

use crate::util::*;

/// Sets a sysctl for the life of the guard; `None` (with the reason printed) where that is not
/// permitted.
struct Sysctl {
    path: &'static str,
    old: String,
}

impl Sysctl {
    fn set(path: &'static str, value: &str) -> Option<Sysctl> {
        let old = fs::read_to_string(path).ok()?;
        if let Err(e) = fs::write(path, value) {
            skipped("limits", &format!("cannot set {path}: {e}"));
            return None;
        }
        Some(Sysctl { path, old })
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        let _ = fs::write(self.path, self.old.trim());
    }
}

#[test]
#[ignore = "changes machine-wide inotify limits: run alone with `cargo test -- --ignored --test-threads=1`"]
fn exhausted_inotify_limits_name_the_setting_or_fall_back() {
    let env = Env::new();
    env.start("sh1", &[]);
    env.start("off", &[]);
    env.run(["agent", "stop", "off"]).ok();
    let file = env.path("p.md");
    fs::write(&file, "@sh1 echo hi").unwrap();
    {
        let Some(_watches) = Sysctl::set("/proc/sys/fs/inotify/max_user_watches", "0") else {
            return;
        };
        // A caller of a baton runner needs no watch (the runner's socket wakes it), and the
        // runner, unable to watch the task's folder, falls back to checking once a second.
        assert_eq!(
            env.run(["ask", "sh1", "echo fallback"]).ok().stdout,
            "fallback\n"
        );
        env.run([&file]).ok();
        assert_eq!(fs::read_to_string(&file).unwrap(), "@sh1 replied:\nhi\n");
        let log = fs::read_to_string(env.agent_dir("sh1").join("log")).unwrap();
        assert!(log.contains("once a second instead"), "{log}");
        // A caller that has to watch the folder (no runner to wake it) says which setting to
        // raise, and takes its task back.
        let out = env.run(["ask", "off", "echo hi", "--queue"]).expect(2);
        assert!(
            out.stderr.contains("fs.inotify.max_user_watches")
                && !out.stderr.contains("disk is full"),
            "{}",
            out.stderr
        );
        assert!(env.inbox("off", "new").is_empty());
        // A runner cannot start without its inbox watch.
        let out = env.run(["agent", "start", "other"]).expect(2);
        assert!(
            out.stderr.contains("fs.inotify.max_user_watches"),
            "{}",
            out.stderr
        );
    }
    {
        let Some(_instances) = Sysctl::set("/proc/sys/fs/inotify/max_user_instances", "0") else {
            return;
        };
        assert_eq!(env.run(["ask", "sh1", "echo still"]).ok().stdout, "still\n");
        let out = env.run(["ask", "off", "echo hi", "--queue"]).expect(2);
        assert!(
            out.stderr.contains("fs.inotify.max_user_instances"),
            "{}",
            out.stderr
        );
        let out = env.run(["agent", "start", "other"]).expect(2);
        assert!(
            out.stderr.contains("fs.inotify.max_user_instances"),
            "{}",
            out.stderr
        );
    }
    assert!(env.inbox("off", "new").is_empty());
    assert_eq!(
        env.run(["ask", "sh1", "echo back to normal"]).ok().stdout,
        "back to normal\n"
    );
}

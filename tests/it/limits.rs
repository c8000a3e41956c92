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
            eprintln!("SKIPPED: cannot set {path}: {e}");
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
    let file = env.path("p.md");
    fs::write(&file, "@sh1 echo hi").unwrap();
    {
        let Some(_watches) = Sysctl::set("/proc/sys/fs/inotify/max_user_watches", "0") else {
            return;
        };
        // A caller cannot watch its task: a clear error naming the setting, nothing left queued.
        let out = env.run(["ask", "sh1", "echo hi"]).expect(2);
        assert!(
            out.stderr.contains("fs.inotify.max_user_watches"),
            "{}",
            out.stderr
        );
        let out = env.run([&file]).expect(2);
        assert!(
            out.stderr.contains("fs.inotify.max_user_watches"),
            "{}",
            out.stderr
        );
        assert_eq!(fs::read_to_string(&file).unwrap(), "@sh1 echo hi");
        // The running runner cannot watch a task's folder either: it falls back and answers.
        let id = env
            .run(["send", "sh1", "echo fallback"])
            .ok()
            .stdout
            .trim()
            .to_string();
        wait_until("the runner answers without a watch", secs(10), || {
            env.task_dir(&id).join("done.json").exists()
        });
        assert_eq!(env.run(["result", &id]).ok().stdout, "fallback\n");
        let log = fs::read_to_string(env.agent_dir("sh1").join("log")).unwrap();
        assert!(log.contains("once a second instead"), "{log}");
    }
    {
        let Some(_instances) = Sysctl::set("/proc/sys/fs/inotify/max_user_instances", "0") else {
            return;
        };
        let out = env.run(["ask", "sh1", "echo hi"]).expect(2);
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
    assert!(env.inbox("sh1", "new").is_empty());
    assert_eq!(
        env.run(["ask", "sh1", "echo back to normal"]).ok().stdout,
        "back to normal\n"
    );
}

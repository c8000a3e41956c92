//! Named points at which a test can freeze baton, to reproduce a race on demand (or make it
//! panic there, `panic_point`): when
//! `BATON_TEST_PAUSE` names the point, the process stops itself there (SIGSTOP). The test sees
//! the stopped state in `/proc`, does its damage (SIGKILL, a signal, a file), and lets it go on
//! with SIGCONT. Only debug builds (what `cargo test` runs) have them: in a release build a
//! point is an empty function, whatever the environment says.

/// After a runner has published `result` and before it writes `done.json`.
pub const AFTER_RESULT: &str = "after-result";
/// In a runner started by `agent start` (or on demand), before it reports that it is ready.
pub const BEFORE_READY: &str = "before-ready";
/// After a runner has claimed a task and before it starts it.
pub const AFTER_CLAIM: &str = "after-claim";
/// In a runner that has started a task and said so, before it first looks whether it ended.
pub const TASK_STARTED: &str = "task-started";
/// In a runner with nothing to do after a task, before it makes again the spares the task used.
pub const BEFORE_SPARES: &str = "before-spares";
/// In a coordinator, after its signal handlers are installed and before it delivers.
pub const BEFORE_DELIVER: &str = "before-deliver";
/// In a waiting coordinator, before it asks the runners to tell it when its tasks end.
pub const BEFORE_WATCH: &str = "before-watch";
/// In a coordinator, while it withdraws or cancels what it delivered.
pub const CANCELLING: &str = "cancelling";
/// In editor mode, with the answer in hand and before it is written into the file.
pub const BEFORE_WRITE: &str = "before-write";
/// In a waiting coordinator, when it has learnt that the runner of a task died, before it looks
/// at what became of the task.
pub const RUNNER_GONE: &str = "runner-gone";
/// In a caller about to hand its workflow to a supervisor (its record saved).
pub const HANDING_OFF: &str = "handing-off";
/// In a caller that has handed its workflow to a supervisor, before it lets go of the record.
pub const HANDED_OFF: &str = "handed-off";
/// In a caller that has handed its workflow over, once it has looked for a stop signal to pass
/// on for the last time.
pub const LETTING_GO: &str = "letting-go";
/// In `baton cancel`, once it has read which process runs the workflow, before it signals it.
pub const CANCEL_SIGNALS: &str = "cancel-signals";
/// In a workflow's supervisor, once it holds the record's lock, before it carries on.
pub const SUPERVISING: &str = "supervising";
/// In a waiting coordinator, when every task has ended, before it reads their ends.
pub const WAITED: &str = "waited";
/// In a runner writing its status into the version replaced last, while it holds the lease on
/// it.
pub const SPARE_LEASED: &str = "spare-leased";

#[cfg(debug_assertions)]
pub fn pause_point(name: &str) {
    use std::sync::OnceLock;
    static WANTED: OnceLock<Option<String>> = OnceLock::new();
    let wanted = WANTED.get_or_init(|| std::env::var("BATON_TEST_PAUSE").ok());
    if wanted
        .as_deref()
        .is_some_and(|w| w.split(',').any(|n| n == name))
    {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP);
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn pause_point(_name: &str) {}

/// In a waiting coordinator that draws a status line, once it has drawn it (for `panic_point`).
pub const STATUS_DRAWN: &str = "status-drawn";
/// In `baton status --watch`, once the full-screen view has been drawn (for `panic_point`).
pub const WATCH_DRAWN: &str = "watch-drawn";

/// Panics when `BATON_TEST_PANIC` names the point: how a test shows that a panic still gives
/// the terminal back. Debug builds only, like `pause_point`.
#[cfg(debug_assertions)]
pub fn panic_point(name: &str) {
    if std::env::var("BATON_TEST_PANIC").is_ok_and(|v| v == name) {
        panic!("test panic at {name}");
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn panic_point(_name: &str) {}

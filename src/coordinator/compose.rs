//! The prompts a workflow writes for its agents, in one documented format (the README's
//! "Workflows" shows it): sections headed by lines `=== baton: … ===`, so that an agent — a model
//! or a script — can tell the request from the answers it is given, and each answer from the
//! next. Pure functions of bytes (prompts and answers need not be UTF-8).
//!
//! - A later stage of a pipeline gets the request and the answers of the stage before it, each
//!   headed by its agent.
//! - A retry gets its step's prompt and a section saying which attempt it is, how the previous
//!   one ended, and the end of its output: never the same prompt twice.
//! - An answer a done-gate sent back gets its step's prompt, the gate's output and the answer.

use crate::protocol::agent::name_of;
use crate::protocol::TaskEnd;

/// The most of a previous attempt's output a retry is shown: its last lines.
pub const TAIL_LINES: usize = 40;
/// … and at most this many bytes of them.
pub const TAIL_BYTES: usize = 4 << 10;
/// The most of a rejected answer that goes back with the gate's output.
pub const ANSWER_BYTES: usize = 16 << 10;

fn heading(out: &mut Vec<u8>, text: &str) {
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend_from_slice(format!("=== baton: {text} ===\n").as_bytes());
}

fn body(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(bytes);
    if !bytes.ends_with(b"\n") {
        out.push(b'\n');
    }
}

/// The prompt of stage `stage` (1-based) of `stages`: the request, then the answers `previous`
/// of the stage before.
pub fn stage_prompt(request: &[u8], stage: usize, stages: usize, previous: &[TaskEnd]) -> Vec<u8> {
    let mut out = Vec::new();
    heading(&mut out, "the request");
    body(&mut out, request.trim_ascii_end());
    for end in previous {
        heading(
            &mut out,
            &format!(
                "the answer of {} (stage {} of {stages})",
                name_of(&end.agent),
                stage - 1
            ),
        );
        body(&mut out, end.answer.trim_ascii_end());
    }
    heading(&mut out, "end");
    out
}

/// The prompt of attempt `attempt` of at most `attempts`: `base`, and how the previous attempt
/// ended, with the end of its output.
pub fn retry_prompt(base: &[u8], attempt: u32, attempts: u32, previous: &TaskEnd) -> Vec<u8> {
    let mut out = base.trim_ascii_end().to_vec();
    out.push(b'\n');
    heading(&mut out, &format!("attempt {attempt} of {attempts}"));
    let code = previous
        .exit_code
        .map(|c| format!(", exit code {c}"))
        .unwrap_or_default();
    let why = previous.error.as_deref().unwrap_or("no reason given");
    body(
        &mut out,
        format!(
            "The previous attempt did not succeed: it ended {}{code}: {why}",
            previous.state.as_str()
        )
        .as_bytes(),
    );
    let last = tail(&previous.answer, TAIL_LINES, TAIL_BYTES);
    if last.is_empty() {
        body(&mut out, b"It printed nothing.");
    } else {
        body(&mut out, b"The last lines of its output:");
        body(&mut out, last.as_bytes());
    }
    heading(&mut out, "end");
    out
}

/// The prompt that sends `answer` back to its agent, round `round` of at most `rounds`: `base`,
/// what the gate `command` printed, and the answer it rejected.
pub fn gate_prompt(
    base: &[u8],
    round: u32,
    rounds: u32,
    command: &str,
    output: &str,
    answer: &[u8],
) -> Vec<u8> {
    let mut out = base.trim_ascii_end().to_vec();
    out.push(b'\n');
    heading(
        &mut out,
        &format!("your answer was sent back (round {round} of {rounds})"),
    );
    body(
        &mut out,
        format!("The done-gate `{command}` rejected it (exit 2). What it printed:").as_bytes(),
    );
    body(
        &mut out,
        if output.trim().is_empty() {
            "(nothing)"
        } else {
            output.trim_end()
        }
        .as_bytes(),
    );
    body(&mut out, b"Your answer was:");
    let cut = answer.len() > ANSWER_BYTES;
    body(&mut out, &answer[..answer.len().min(ANSWER_BYTES)]);
    if cut {
        body(&mut out, b"[... the rest of the answer was cut]");
    }
    heading(&mut out, "end");
    out
}

/// The last `lines` lines of `bytes`, at most `max` bytes of them (lossy UTF-8).
pub fn tail(bytes: &[u8], lines: usize, max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end();
    let kept: Vec<&str> = text.lines().rev().take(lines).collect();
    let mut joined: String = kept.into_iter().rev().collect::<Vec<_>>().join("\n");
    if joined.len() > max {
        let mut start = joined.len() - max;
        while !joined.is_char_boundary(start) {
            start += 1;
        }
        joined = joined[start..].to_string();
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{State, TaskId};

    fn end(agent: &str, state: State, answer: &[u8]) -> TaskEnd {
        TaskEnd {
            answer: answer.to_vec(),
            ..TaskEnd::new(&TaskId::new(), agent, state)
        }
    }

    #[test]
    fn a_later_stage_sees_the_request_and_every_answer_headed_by_its_agent() {
        let p = stage_prompt(
            b"Plan dark mode\n",
            2,
            3,
            &[
                end("a.1234abcd", State::Ok, b"use CSS variables"),
                end("b", State::Ok, b"\xff raw\n"),
            ],
        );
        assert_eq!(
            p,
            b"=== baton: the request ===\nPlan dark mode\n=== baton: the answer of a (stage 1 of 3) ===\nuse CSS variables\n=== baton: the answer of b (stage 1 of 3) ===\n\xff raw\n=== baton: end ===\n"
        );
    }

    #[test]
    fn a_retry_says_how_the_last_attempt_ended_and_is_never_the_same_prompt() {
        let mut failed = end("a", State::Failed, b"line 1\nerror: boom\n");
        failed.exit_code = Some(1);
        failed.error = Some("exited with status 1".into());
        let p2 = retry_prompt(b"fix it", 2, 3, &failed);
        let p3 = retry_prompt(b"fix it", 3, 3, &failed);
        let text = String::from_utf8(p2.clone()).unwrap();
        assert!(
            text.starts_with("fix it\n=== baton: attempt 2 of 3 ===\n"),
            "{text}"
        );
        assert!(
            text.contains("ended failed, exit code 1: exited with status 1"),
            "{text}"
        );
        assert!(text.contains("error: boom"), "{text}");
        assert_ne!(p2, p3);
    }

    #[test]
    fn the_tail_is_bounded_in_lines_and_bytes() {
        let many: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let t = tail(many.as_bytes(), 3, 1000);
        assert_eq!(t, "line 97\nline 98\nline 99");
        let t = tail("é".repeat(100).as_bytes(), 5, 11);
        assert!(t.len() <= 11 && t.chars().all(|c| c == 'é'), "{t}");
    }

    #[test]
    fn a_gate_round_carries_the_gate_output_and_the_answer() {
        let p = gate_prompt(b"do it", 1, 2, "cargo test", "1 failed", b"done!");
        let text = String::from_utf8(p).unwrap();
        assert!(text.contains("(round 1 of 2)"), "{text}");
        assert!(text.contains("`cargo test` rejected it"), "{text}");
        assert!(
            text.contains("1 failed\nYour answer was:\ndone!\n"),
            "{text}"
        );
    }
}

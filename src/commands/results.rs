//! `baton results`: the answers of background work (`baton send`, `d`, `&`) of the project the
//! caller stands in, once they have arrived. Also the text that `@results` writes into a prompt
//! file and that the chief's hooks hand to Claude Code: each result headed by its agent and task,
//! each shown once (seeing one marks it, atomically: `protocol::results`).

use serde_json::json;

use crate::coordinator::background;
use crate::exit::Exit;
use crate::protocol::results::Inbox;
use crate::protocol::{agent::name_of, Store, TaskEnd, TaskId};

/// Prints the finished results not seen yet (with `all`, the seen ones too); `mark` marks the
/// printed ones seen.
pub fn results(
    store: &Store,
    inbox: &Inbox,
    json_out: bool,
    all: bool,
    mark: bool,
) -> anyhow::Result<Exit> {
    let mut shown: Vec<(TaskId, bool, Vec<TaskEnd>)> = Vec::new();
    let mut running = 0;
    let mut ids: Vec<(TaskId, bool)> = inbox
        .entries(false)
        .into_iter()
        .map(|i| (i, false))
        .collect();
    if all {
        ids.extend(inbox.entries(true).into_iter().map(|i| (i, true)));
        ids.sort();
    }
    for (id, seen) in ids {
        match background::outcome(store, &id) {
            Some(ends) => shown.push((id, seen, ends)),
            None => running += 1,
        }
    }
    let mut out = String::new();
    for (id, seen, ends) in &shown {
        if json_out {
            for end in ends {
                let mut v = end.to_json();
                if let Some(map) = v.as_object_mut() {
                    map.insert("background".into(), json!(id));
                    map.insert("seen".into(), json!(seen));
                }
                out.push_str(&format!("{v}\n"));
            }
        } else {
            out.push_str(&format_result(id, ends, None));
        }
    }
    print!("{out}");
    if mark {
        for (id, seen, _) in &shown {
            if !seen {
                inbox.claim(id)?;
            }
        }
    }
    if !json_out {
        if shown.is_empty() {
            eprintln!(
                "baton: no background results{}",
                if all { "" } else { " not seen yet" }
            );
        }
        if running > 0 {
            eprintln!("baton: {running} background task(s) still running");
        }
    }
    Ok(Exit::Ok)
}

/// One result as text: each end headed `==> @agent (task ID, state) <==`, then its answer (or
/// why it did not succeed). Answers longer than `cap` bytes are cut, saying where the rest is.
pub fn format_result(id: &TaskId, ends: &[TaskEnd], cap: Option<usize>) -> String {
    let mut out = String::new();
    for end in ends {
        let stage = end
            .place
            .as_ref()
            .filter(|p| p.stage > 1)
            .map(|p| format!(", stage {}", p.stage))
            .unwrap_or_default();
        out.push_str(&format!(
            "==> @{} (task {}{stage}, {}) <==\n",
            name_of(&end.agent),
            end.task_id,
            end.state.as_str()
        ));
        if !end.is_ok() {
            out.push_str(&format!(
                "{}\n",
                end.error.as_deref().unwrap_or("no reason given")
            ));
        }
        let answer = String::from_utf8_lossy(&end.answer);
        let answer = answer.trim_end();
        match cap {
            Some(cap) if answer.len() > cap => {
                let mut at = cap;
                while !answer.is_char_boundary(at) {
                    at -= 1;
                }
                out.push_str(&answer[..at]);
                out.push_str(&format!("\n[… cut: `baton result {id}` has all of it]\n"));
            }
            _ if answer.is_empty() => {}
            _ => {
                out.push_str(answer);
                out.push('\n');
            }
        }
    }
    out
}

/// Takes every finished result not seen yet — marking each seen, so that no one else shows it —
/// and returns them as text (each answer cut at `cap` bytes, if given). Empty if none.
pub fn take(store: &Store, inbox: &Inbox, cap: Option<usize>) -> anyhow::Result<String> {
    let mut out = String::new();
    for id in inbox.entries(false) {
        let Some(ends) = background::outcome(store, &id) else {
            continue;
        };
        if inbox.claim(&id)? {
            out.push_str(&format_result(&id, &ends, cap));
        }
    }
    Ok(out)
}

/// What `@results` writes into the prompt file: the finished results not seen yet (now seen),
/// or a line saying there are none.
pub fn take_unseen(store: &Store, inbox: &Inbox) -> anyhow::Result<Vec<u8>> {
    let text = take(store, inbox, None)?;
    if !text.is_empty() {
        return Ok(text.into_bytes());
    }
    let running = inbox
        .entries(false)
        .iter()
        .filter(|id| background::outcome(store, id).is_none())
        .count();
    Ok(match running {
        0 => "No background results have arrived.\n".into(),
        n => format!(
            "No background results have arrived yet; {n} background task(s) still running.\n"
        ),
    }
    .into_bytes())
}

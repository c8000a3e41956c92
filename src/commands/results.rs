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
    let mut claimed = Taken::new(inbox);
    for (id, seen) in ids {
        let Some(ends) = background::outcome(store, &id) else {
            running += 1;
            continue;
        };
        // Marked before it is shown, so that two readers never both show it.
        if mark && !seen {
            if !inbox.claim(&id)? {
                continue;
            }
            claimed.ids.push(id.clone());
        }
        shown.push((id, seen, ends));
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
    if super::write_flushed(std::io::stdout().lock(), out.as_bytes()).is_err() {
        // The reader has gone: what it did not get is not seen.
        return Ok(Exit::Ok);
    }
    claimed.delivered();
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

/// Results claimed (marked seen) by one reader, with their text. Unless `delivered` is called,
/// dropping it gives them back, not seen: a reader that fails to pass them on (a write that
/// fails, a reader gone) loses none.
pub struct Taken<'a> {
    inbox: &'a Inbox,
    ids: Vec<TaskId>,
    pub text: String,
}

impl<'a> Taken<'a> {
    /// Nothing claimed yet from `inbox`.
    fn new(inbox: &'a Inbox) -> Taken<'a> {
        Taken {
            inbox,
            ids: Vec::new(),
            text: String::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// They reached their reader: they stay seen.
    pub fn delivered(mut self) {
        self.ids.clear();
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        for id in &self.ids {
            self.inbox.give_back(id);
        }
    }
}

/// Takes every finished result not seen yet — marking each seen, so that no one else shows it —
/// with its text (each answer cut at `cap` bytes, if given).
pub fn take<'a>(store: &Store, inbox: &'a Inbox, cap: Option<usize>) -> anyhow::Result<Taken<'a>> {
    let mut taken = Taken::new(inbox);
    for id in inbox.entries(false) {
        let Some(ends) = background::outcome(store, &id) else {
            continue;
        };
        if inbox.claim(&id)? {
            taken.text.push_str(&format_result(&id, &ends, cap));
            taken.ids.push(id);
        }
    }
    Ok(taken)
}

/// What `@results` writes into the prompt file: the finished results not seen yet (claimed), or
/// a line saying there are none.
pub fn take_unseen<'a>(store: &Store, inbox: &'a Inbox) -> anyhow::Result<Taken<'a>> {
    let mut taken = take(store, inbox, None)?;
    if taken.is_empty() {
        let running = inbox
            .entries(false)
            .iter()
            .filter(|id| !background::has_ended(store, id))
            .count();
        taken.text = match running {
            0 => "No background results have arrived.\n".into(),
            n => format!(
                "No background results have arrived yet; {n} background task(s) still running.\n"
            ),
        };
    }
    Ok(taken)
}

//! `baton msg send|read|list`: agent mail (`protocol::mail`). A message goes to an agent by the
//! name a caller here uses (`baton ask`'s rules: the project's agents first); its sender is the
//! agent it is sent from (`BATON_AGENT`), else `you`. Claude Code agents find their unread mail
//! before their next task; any agent can read it with `baton msg read`.

use std::io::Read;

use crate::config::Config;
use crate::coordinator::resolve::{self, Target};
use crate::error::usage;
use crate::exit::Exit;
use crate::protocol::agent::name_of;
use crate::protocol::mail::{self, Mailbox, MAX_MESSAGE};
use crate::protocol::Store;

/// The agent id mail for `name` goes to. A pool is refused: its members are the agents.
fn recipient(store: &Store, config: &Config, name: &str) -> anyhow::Result<String> {
    crate::protocol::agent::validate_id(name)?;
    match resolve::resolve(store, config, &[name.to_string()])?.remove(0) {
        Target::Agent { paths, .. } => Ok(paths.name().to_string()),
        Target::Pool { decl } => Err(usage(format!(
            "{name} is a pool: send to one of its members ({name}-1 … {name}-{})",
            decl.pool_max.unwrap_or(1)
        ))),
    }
}

/// Who is sending: the agent this runs in, else a person.
fn sender() -> String {
    std::env::var("BATON_AGENT")
        .ok()
        .filter(|a| crate::protocol::agent::validate_id(a).is_ok())
        .unwrap_or_else(|| "you".into())
}

pub fn send(store: &Store, config: &Config, to: &str, text: &str) -> anyhow::Result<Exit> {
    let id = recipient(store, config, to)?;
    let text = if text == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .take(MAX_MESSAGE as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(|e| usage(format!("reading the message from standard input: {e}")))?;
        String::from_utf8(buf).map_err(|_| usage("the message is not UTF-8 text"))?
    } else {
        text.to_string()
    };
    if text.len() > MAX_MESSAGE {
        return Err(usage(format!(
            "the message is larger than {} KiB, the most a message may be: put it in a file and send its path",
            MAX_MESSAGE >> 10
        )));
    }
    if text.trim().is_empty() {
        return Err(usage("the message is empty"));
    }
    let m = mail::send(store, &Mailbox::new(store, &id), &sender(), &text)?;
    println!("sent to {} at {}", name_of(&m.to), m.timestamp);
    Ok(Exit::Ok)
}

/// The mailbox `name` names, or, without a name, the one of the agent this runs in.
fn own_or_named(store: &Store, config: &Config, name: Option<&str>) -> anyhow::Result<Mailbox> {
    let id = match name {
        Some(n) => recipient(store, config, n)?,
        None => std::env::var("BATON_AGENT")
            .ok()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| usage("whose mail? name the agent: `baton msg read NAME`"))?,
    };
    Ok(Mailbox::new(store, &id))
}

pub fn read(
    store: &Store,
    config: &Config,
    name: Option<&str>,
    all: bool,
    mark: bool,
    json: bool,
) -> anyhow::Result<Exit> {
    let mailbox = own_or_named(store, config, name)?;
    // Marking the unread ones read takes them in one step, so that no other reader shows them
    // too; a reader gone before they were shown gives them back.
    let claim = match (mark, all) {
        (true, false) => Some(mail::claim_unread(&mailbox)?),
        _ => None,
    };
    let (messages, upto) = match &claim {
        Some(c) => (c.messages.clone(), 0),
        None => mail::read(&mailbox, all)?,
    };
    let mut out = String::new();
    for m in &messages {
        if json {
            out.push_str(&format!("{}\n", serde_json::to_string(m)?));
        } else {
            out.push_str(&format!(
                "from {} at {}:\n{}\n",
                name_of(&m.from),
                m.timestamp,
                m.text.trim_end()
            ));
        }
    }
    if super::write_flushed(std::io::stdout().lock(), out.as_bytes()).is_err() {
        if let Some(c) = &claim {
            mail::give_back(&mailbox, c)?;
        }
        return Ok(Exit::Ok);
    }
    if mark && all && !messages.is_empty() {
        mail::mark(&mailbox, upto)?;
    }
    if messages.is_empty() && !json {
        eprintln!(
            "baton: no {}messages for {}",
            if all { "" } else { "unread " },
            name_of(&mailbox.agent)
        );
    }
    Ok(Exit::Ok)
}

pub fn list(store: &Store, json: bool) -> anyhow::Result<Exit> {
    let mut out = String::new();
    for mb in mail::all(store) {
        let total = mail::read(&mb, true).map_or(0, |(m, _)| m.len());
        let unread = mail::unread(&mb);
        if json {
            out.push_str(&format!(
                "{}\n",
                serde_json::json!({"agent": mb.agent, "messages": total, "unread": unread})
            ));
        } else {
            out.push_str(&format!(
                "{}\t{total} message(s), {unread} unread\n",
                mb.agent
            ));
        }
    }
    print!("{out}");
    Ok(Exit::Ok)
}

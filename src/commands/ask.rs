//! `baton ask` (deliver, wait, print) and `baton send` (deliver, print the task id).

use std::io::Read;
use std::time::Duration;

use crate::deliver::Request;
use crate::exit::{Exit, Failure, Result};
use crate::store::Store;

pub struct AskArgs {
    pub agents: String,
    pub prompt: Option<String>,
    pub timeout: Option<Duration>,
    pub json: bool,
    pub queue: bool,
    pub priority: u8,
}

/// The prompt text: the argument, or standard input for `-` (or when none is given).
pub fn read_prompt(arg: Option<&str>) -> Result<Vec<u8>> {
    let bytes = match arg {
        Some("-") | None => {
            if arg.is_none() && nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
                return Err(Failure::msg(
                    Exit::Usage,
                    "no prompt: give it as an argument, or `-` to read standard input",
                ));
            }
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).map_err(|e| {
                Failure::msg(
                    Exit::Usage,
                    format!("reading the prompt from standard input: {e}"),
                )
            })?;
            buf
        }
        Some(text) => text.as_bytes().to_vec(),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Failure::msg(Exit::Usage, "the prompt is empty"));
    }
    Ok(bytes)
}

/// Splits `a,b,c` into names, refusing empty ones.
pub fn split_agents(list: &str) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for n in list.split(',').map(str::trim) {
        crate::store::validate_name(n)?;
        if !names.iter().any(|x| x == n) {
            names.push(n.to_string());
        }
    }
    Ok(names)
}

pub fn ask(store: &Store, args: AskArgs) -> Result<Exit> {
    let names = split_agents(&args.agents)?;
    let agents = super::resolve_agents(store, &names)?;
    if !args.queue {
        super::require_live(&agents)?;
    }
    let prompt = read_prompt(args.prompt.as_deref())?;
    let sigs = super::installed_signals()?;
    let req = Request {
        prompt: &prompt,
        priority: args.priority,
        timeout: args.timeout,
    };
    let delivered = super::deliver_all(store, &agents, &req)?;
    let mut pending = super::pending_for(&delivered, &agents);
    let answers = super::await_answers(
        store,
        &mut pending,
        &sigs,
        &super::How {
            deadline: super::deadline(args.timeout),
            watch_liveness: !args.queue,
            owned: true,
        },
        None,
    )?;
    super::print_answers(&answers, args.json)
}

pub fn send(
    store: &Store,
    agents: &str,
    prompt: Option<&str>,
    queue: bool,
    priority: u8,
    timeout: Option<Duration>,
) -> Result<Exit> {
    let names = split_agents(agents)?;
    let agents = super::resolve_agents(store, &names)?;
    if !queue {
        super::require_live(&agents)?;
    }
    let prompt = read_prompt(prompt)?;
    let req = Request {
        prompt: &prompt,
        priority,
        timeout,
    };
    for d in super::deliver_all(store, &agents, &req)? {
        println!("{}", d.task_id);
    }
    Ok(Exit::Ok)
}

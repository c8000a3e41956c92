//! `baton ask` (delegate, wait, print) and `baton send` (delegate, print the task ids).

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use super::{print_ends, Format};
use crate::coordinator::{self, Caller, Plan};
use crate::error::usage;
use crate::exit::Exit;
use crate::protocol::Store;

pub struct AskArgs {
    pub agents: String,
    pub prompt: Option<String>,
    pub timeout: Option<Duration>,
    pub format: Format,
    pub queue: bool,
    pub priority: Option<u8>,
    pub project: Option<PathBuf>,
}

/// The prompt text: the argument, or standard input for `-` (or when none is given).
pub fn read_prompt(arg: Option<&str>) -> anyhow::Result<Vec<u8>> {
    let bytes = match arg {
        Some("-") | None => {
            if arg.is_none() && nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
                return Err(usage(
                    "no prompt: give it as an argument, or `-` to read standard input",
                ));
            }
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| usage(format!("reading the prompt from standard input: {e}")))?;
            buf
        }
        Some(text) => text.as_bytes().to_vec(),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(usage("the prompt is empty"));
    }
    Ok(bytes)
}

/// Splits `a,b,c` into names, refusing invalid ones and dropping repeats.
pub fn split_agents(list: &str) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for n in list.split(',').map(str::trim) {
        crate::protocol::agent::validate_id(n)?;
        if !names.iter().any(|x| x == n) {
            names.push(n.to_string());
        }
    }
    Ok(names)
}

fn plan(args: &AskArgs, wait: bool) -> anyhow::Result<Plan> {
    Ok(Plan {
        agents: split_agents(&args.agents)?,
        prompt: read_prompt(args.prompt.as_deref())?,
        priority: args.priority,
        timeout: args.timeout,
        queue: args.queue,
        wait,
        offer_queue: true,
    })
}

pub fn ask(store: &Store, args: AskArgs) -> anyhow::Result<Exit> {
    let config = super::load_config(args.project.as_deref())?;
    let plan = plan(&args, true)?;
    let mut caller = Caller::new(false)?;
    let ends = coordinator::delegate(store, &config, &plan, &mut caller)?;
    print_ends(&ends, args.format)
}

pub fn send(store: &Store, args: AskArgs) -> anyhow::Result<Exit> {
    let config = super::load_config(args.project.as_deref())?;
    let plan = plan(&args, false)?;
    let mut caller = Caller::new(false)?;
    for end in coordinator::delegate(store, &config, &plan, &mut caller)? {
        if args.format == Format::Json {
            println!("{}", end.to_json());
        } else {
            println!("{}", end.task_id);
        }
    }
    Ok(Exit::Ok)
}

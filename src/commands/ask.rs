//! `baton ask` (delegate, wait, print) and `baton send` (delegate, print the task ids; the
//! outcome goes to the results inbox).

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use super::{print_ends, Format};
use crate::coordinator::plan::parse_stages;
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
    pub any: bool,
    pub retries: Option<u32>,
    pub gate: Option<String>,
    pub gate_rounds: Option<u32>,
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

fn plan(args: &AskArgs, wait: bool) -> anyhow::Result<Plan> {
    let plan = Plan {
        stages: parse_stages(&args.agents)?,
        priority: args.priority,
        timeout: args.timeout,
        queue: args.queue,
        wait,
        offer_queue: true,
        any: args.any,
        retries: args.retries,
        gate: args.gate.clone(),
        gate_rounds: args.gate_rounds,
        ..Plan::new(Vec::new(), Vec::new())
    };
    // Checked before the prompt is read: a bad plan never waits on standard input.
    plan.check()?;
    Ok(Plan {
        prompt: read_prompt(args.prompt.as_deref())?,
        ..plan
    })
}

pub fn ask(store: &Store, args: AskArgs) -> anyhow::Result<Exit> {
    let config = super::load_config(args.project.as_deref())?;
    let plan = plan(&args, true)?;
    let mut caller = Caller::watching()?;
    let run = coordinator::workflow::run(store, &config, &plan, &mut caller)?;
    drop(caller); // the status line is cleared before the answer is printed
    if args.format == Format::Json && run.root.is_some() {
        // A workflow: every task it ran, each with its place; the outcome decides the code.
        return super::print_history(&run.history, &run.ends);
    }
    print_ends(&run.ends, args.format)
}

pub fn send(store: &Store, args: AskArgs) -> anyhow::Result<Exit> {
    let config = super::load_config(args.project.as_deref())?;
    let plan = plan(&args, false)?;
    let mut caller = Caller::new(false)?;
    let ends = coordinator::delegate(store, &config, &plan, &mut caller)?;
    if let Some(end) = coordinator::stopped_end(&ends) {
        if args.format == Format::Json {
            println!("{}", end.to_json());
        }
        eprintln!("baton: {}", super::describe(end));
        return Ok(crate::exit::of_state(end.state));
    }
    for end in ends {
        if args.format == Format::Json {
            println!("{}", end.to_json());
        } else {
            println!("{}", end.task_id);
        }
    }
    Ok(Exit::Ok)
}

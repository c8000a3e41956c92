//! A `Plan`: what a caller asks the coordinator to do, as data. One stage is the common case (one
//! agent, a pool, or a fan-out); `|` chains stages into a pipeline. `any`, `retries` and `gate`
//! turn it into a workflow, which keeps a record (`protocol::workflow`). Everything about a plan
//! that can be wrong is found here, before anything is delivered.

use std::time::Duration;

use crate::config::MAX_RETRIES;
use crate::error::usage;
use crate::protocol::workflow::Asked;

/// What to delegate and how.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The stages: each the names of its agents (one agent, a pool, or a fan-out that gets the
    /// same prompt). Stage 1 gets the prompt; each later stage gets the request and the answers
    /// of the stage before it.
    pub stages: Vec<Vec<String>>,
    pub prompt: Vec<u8>,
    /// 0 (first) to 9 (last); else the agent's declared priority, else 5.
    pub priority: Option<u8>,
    /// Each task is cancelled (as `timeout`) after this long; else after the agent's declared
    /// timeout, else the config's `default_timeout`, else never.
    pub timeout: Option<Duration>,
    /// Deliver even if an agent has no live runner, and wait for one to start.
    pub queue: bool,
    /// Wait for the answers (`ask`, editor mode), or return once delivered (`send`, `&`): the
    /// outcome then goes to the results inbox.
    pub wait: bool,
    /// The caller has a `--queue` option to offer when an agent is not running.
    pub offer_queue: bool,
    /// In a fan-out, the first answer that succeeds wins and the others are cancelled.
    pub any: bool,
    /// A task that fails, times out or loses its agent is delivered again at most this many
    /// more times (else the agent's declared `retries`, else never).
    pub retries: Option<u32>,
    /// A done-gate every answer must pass (else the agent's declared `gate`).
    pub gate: Option<String>,
    /// How many times the gate may send an answer back (else declared, else 2).
    pub gate_rounds: Option<u32>,
    /// One attempt and no gate, whatever the agents declare: a caller whose timeout bounds the
    /// whole wait (git's hooks) cannot let retries and gate rounds add up past it.
    pub once: bool,
}

/// How many times a gate may send an answer back, when nothing says.
pub const DEFAULT_GATE_ROUNDS: u32 = 2;

impl Plan {
    /// A plan that sends `prompt` to `agents` (one stage) and waits, with every option at its
    /// default.
    pub fn new(agents: Vec<String>, prompt: Vec<u8>) -> Plan {
        Plan {
            stages: vec![agents],
            prompt,
            priority: None,
            timeout: None,
            queue: false,
            wait: true,
            offer_queue: false,
            any: false,
            retries: None,
            gate: None,
            gate_rounds: None,
            once: false,
        }
    }

    /// Every agent name of every stage.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.stages.iter().flatten()
    }

    /// Refuses what cannot work (exit 2), before anything is delivered.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.stages.is_empty() || self.stages.iter().any(Vec::is_empty) {
            return Err(usage("a stage names no agent"));
        }
        if self.any && self.stages.iter().all(|s| s.len() < 2) {
            return Err(usage(
                "--any needs a fan-out: two agents or more in one stage (a,b)",
            ));
        }
        if let Some(r) = self.retries.filter(|&r| i64::from(r) > MAX_RETRIES) {
            return Err(usage(format!(
                "--retries {r}: at most {MAX_RETRIES} (each retry is a new attempt by an agent)"
            )));
        }
        if let Some(g) = &self.gate {
            if g.trim().is_empty() {
                return Err(usage("--gate names no command"));
            }
        }
        Ok(())
    }

    /// Whether the plan is more than one delivery to each agent of one stage: then it keeps a
    /// record, and `declared` (retries or a gate on an agent) makes it one too.
    pub fn is_workflow(&self, declared: bool) -> bool {
        self.stages.len() > 1
            || self.any
            || self.retries.is_some_and(|r| r > 0)
            || self.gate.is_some()
            || declared
    }

    /// The plan's options as the record keeps them.
    pub fn asked(&self) -> Asked {
        Asked {
            stages: self.stages.clone(),
            any: self.any,
            retries: self.retries,
            gate: self.gate.clone(),
            gate_rounds: self.gate_rounds,
            priority: self.priority,
            timeout_ms: self.timeout.and_then(|t| u64::try_from(t.as_millis()).ok()),
            queue: self.queue,
        }
    }

    /// A plan from a record's options (the prompt is read elsewhere).
    pub fn from_asked(asked: &Asked, prompt: Vec<u8>) -> Plan {
        Plan {
            stages: asked.stages.clone(),
            prompt,
            priority: asked.priority,
            timeout: asked.timeout_ms.map(Duration::from_millis),
            queue: asked.queue,
            wait: true,
            offer_queue: false,
            any: asked.any,
            retries: asked.retries,
            gate: asked.gate.clone(),
            gate_rounds: asked.gate_rounds,
            // Only a caller that waits asks for it; a record is of one that may not.
            once: false,
        }
    }
}

/// Parses an agent spec: stages separated by `|`, each one name or names separated by commas
/// (`planning | a,b,c | merge`). Names are checked; a repeated name in one stage counts once.
pub fn parse_stages(spec: &str) -> anyhow::Result<Vec<Vec<String>>> {
    let mut stages = Vec::new();
    for (i, stage) in spec.split('|').enumerate() {
        if stage.trim().is_empty() {
            let which = if spec.split('|').count() == 1 {
                "no agent is named".to_string()
            } else {
                format!("stage {} of {spec:?} is empty", i + 1)
            };
            return Err(usage(format!(
                "{which}: name an agent, agents separated by commas (a,b), or stages separated by | (a | b)"
            )));
        }
        let mut names: Vec<String> = Vec::new();
        for n in stage.split(',').map(str::trim) {
            if n.is_empty() {
                return Err(usage(format!(
                    "{spec:?}: an empty name between commas in stage {}",
                    i + 1
                )));
            }
            crate::protocol::agent::validate_id(n)?;
            if !names.iter().any(|x| x == n) {
                names.push(n.to_string());
            }
        }
        stages.push(names);
    }
    Ok(stages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_parse_and_refuse_empty_ones() {
        assert_eq!(parse_stages("a").unwrap(), [vec!["a"]]);
        assert_eq!(
            parse_stages(" planning | a, b,c |merge ").unwrap(),
            [vec!["planning"], vec!["a", "b", "c"], vec!["merge"]]
        );
        assert_eq!(parse_stages("a,a").unwrap(), [vec!["a"]]);
        for bad in ["", "a || b", "a |", "| a", "a,,b", "a | B", "a/b"] {
            assert!(parse_stages(bad).is_err(), "{bad:?}");
        }
        let e = parse_stages("a || b").unwrap_err().to_string();
        assert!(e.contains("stage 2"), "{e}");
    }

    #[test]
    fn checks_find_what_cannot_work() {
        let plan = |stages: Vec<Vec<&str>>| Plan {
            stages: stages
                .into_iter()
                .map(|s| s.into_iter().map(String::from).collect())
                .collect(),
            ..Plan::new(Vec::new(), b"x".to_vec())
        };
        assert!(plan(vec![vec!["a"]]).check().is_ok());
        let any_of_one = Plan {
            any: true,
            ..plan(vec![vec!["a"], vec!["b"]])
        };
        assert!(any_of_one.check().is_err());
        let any = Plan {
            any: true,
            ..plan(vec![vec!["a", "b"]])
        };
        assert!(any.check().is_ok() && any.is_workflow(false));
        let too_many = Plan {
            retries: Some(11),
            ..plan(vec![vec!["a"]])
        };
        assert!(too_many.check().is_err());
        assert!(!plan(vec![vec!["a", "b"]]).is_workflow(false));
        assert!(plan(vec![vec!["a"], vec!["b"]]).is_workflow(false));
    }
}

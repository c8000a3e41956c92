//! Reading a prompt file: where the prompt starts (after Claude Code's context marker), and
//! whether its first non-blank line begins with `@name` tokens that name known agents. Pure
//! functions of the bytes (a prompt need not be UTF-8, and its bytes are kept as they are), so
//! that they can be tested and fuzzed alone.

use crate::editor_rules::body;
pub use crate::editor_rules::{may_route, prompt_region, CONTEXT_MARKER};

/// A prompt addressed to agents.
#[derive(Debug, PartialEq, Eq)]
pub struct Directive {
    /// The stages: the agents named before each `|` (one stage without a pipeline; several
    /// agents in a stage are a fan-out).
    pub stages: Vec<Vec<String>>,
    /// An agent was named with a `!` (`@planning!`): the task is urgent (priority 0).
    pub urgent: bool,
    /// `--any` after the names: in a fan-out the first answer that succeeds wins.
    pub any: bool,
    /// A lone `&` after the names: the task runs in the background.
    pub background: bool,
    /// The task: the rest of the directive line and every line after it, blank edges trimmed.
    pub task: Vec<u8>,
}

impl Directive {
    /// Every agent it names, in order.
    pub fn agents(&self) -> Vec<String> {
        self.stages.iter().flatten().cloned().collect()
    }
}

/// The name a token names, if it is `@name` with a valid agent name (a trailing `:` or `,` is
/// allowed), and whether it ends with `!` (urgent).
pub fn token_name(token: &[u8]) -> Option<(&str, bool)> {
    let name = token.strip_prefix(b"@")?;
    let name = name
        .strip_suffix(b":")
        .or_else(|| name.strip_suffix(b","))
        .unwrap_or(name);
    let (name, urgent) = match name.strip_suffix(b"!") {
        Some(n) => (n, true),
        None => (name, false),
    };
    let name = std::str::from_utf8(name).ok()?;
    crate::protocol::agent::validate_name(name)
        .ok()
        .map(|_| (name, urgent))
}

/// The first token of `text` (after leading blanks), and what follows it. Tokens are separated
/// by blanks, and a `|` is a token of its own (`@a|@b` is three tokens).
fn first_token(text: &[u8]) -> (&[u8], &[u8]) {
    let text = text.trim_ascii_start();
    if text.starts_with(b"|") {
        return text.split_at(1);
    }
    let end = text
        .iter()
        .position(|&b| b.is_ascii_whitespace() || b == b'|')
        .unwrap_or(text.len());
    text.split_at(end)
}

/// The first token of the prompt, when it looks like `@name`: what a directive would name.
pub fn first_name(prompt: &[u8]) -> Option<&str> {
    token_name(first_token(body(prompt)).0).map(|(n, _)| n)
}

/// Parses the directive. `Ok(None)` means pass-through: no leading `@name`, or the first names
/// no known agent (`@docs/readme.md`, `@nosuch`). After the names may come `|` and the next
/// stage's names, `--any`, and a lone `&`; the first other token starts the task (an unknown
/// `@word` there is part of it). An error is a directive that cannot be meant any other way (an
/// unknown agent after a `|`, an empty stage): it is refused, never passed through.
pub fn parse(prompt: &[u8], is_known: impl Fn(&str) -> bool) -> Result<Option<Directive>, String> {
    let body = body(prompt);
    let nl = body.iter().position(|&b| b == b'\n');
    let (line, rest) = match nl {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &b""[..]),
    };
    let mut stages: Vec<Vec<String>> = vec![Vec::new()];
    let (mut urgent, mut any, mut background) = (false, false, false);
    let mut remainder = line;
    loop {
        let (token, after) = first_token(remainder);
        if token.is_empty() {
            break;
        }
        let started = !stages[0].is_empty();
        let after_bar = stages.len() > 1 && stages.last().is_some_and(Vec::is_empty);
        if let Some((name, bang)) = token_name(token) {
            if is_known(name) {
                let stage = stages.last_mut().expect("there is always a stage");
                if !stage.iter().any(|a| a == name) {
                    stage.push(name.to_string());
                }
                urgent |= bang;
                remainder = after;
                continue;
            }
            if !started {
                return Ok(None);
            }
            if after_bar {
                return Err(format!(
                    "unknown agent @{name} in stage {} of the pipeline",
                    stages.len()
                ));
            }
            break;
        }
        if !started {
            return Ok(None);
        }
        match token {
            b"|" if after_bar => {
                return Err("an empty stage: a `|` must be followed by @agent names".into())
            }
            b"|" => stages.push(Vec::new()),
            b"--any" => any = true,
            b"&" => background = true,
            _ if after_bar => {
                return Err(format!(
                "stage {} of the pipeline names no agent: a `|` must be followed by @agent names",
                stages.len()
            ))
            }
            _ => break,
        }
        remainder = after;
    }
    if stages[0].is_empty() {
        return Ok(None);
    }
    if stages.last().is_some_and(Vec::is_empty) {
        return Err("the pipeline ends with `|`: name the next stage's @agents".into());
    }
    let mut task = remainder.trim_ascii_start().to_vec();
    if nl.is_some() {
        task.push(b'\n');
        task.extend_from_slice(rest);
    }
    Ok(Some(Directive {
        stages,
        urgent,
        any,
        background,
        task: task.trim_ascii().to_vec(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(n: &str) -> bool {
        matches!(n, "rev" | "planning" | "sh1")
    }

    /// The directive `text` must be.
    fn dir(text: &[u8]) -> Directive {
        parse(text, known).unwrap().unwrap()
    }

    #[test]
    fn a_bar_ends_a_word_so_a_bar_glued_to_an_ampersand_starts_a_stage() {
        // Found by the property test: `&|` reads as `&` then `|`, an empty stage.
        assert!(parse(b"@rev &| go", known).is_err());
        assert!(dir(b"@rev & go").background);
    }

    #[test]
    fn stages_split_at_bars_and_fan_outs_are_names_side_by_side() {
        let p = dir(b"@planning | @rev @sh1 | @rev Plan dark mode");
        assert_eq!(
            p.stages,
            [vec!["planning"], vec!["rev", "sh1"], vec!["rev"]]
        );
        assert_eq!(p.task, b"Plan dark mode");
        assert_eq!(
            dir(b"@planning|@rev go").stages,
            [vec!["planning"], vec!["rev"]]
        );
        // A bar in the task is the task's.
        assert_eq!(dir(b"@rev grep a|b").task, b"grep a|b");
    }

    #[test]
    fn any_and_background_are_words_after_the_names() {
        let p = dir(b"@rev @sh1 --any find the cause");
        assert!(p.any && !p.background);
        assert_eq!(p.task, b"find the cause");
        let p = dir(b"@rev & watch CI");
        assert!(p.background && !p.any);
        assert_eq!(p.task, b"watch CI");
        assert!(
            !dir(b"@rev echo a & b").background,
            "a later & is the task's"
        );
    }

    #[test]
    fn a_broken_pipeline_is_refused_not_passed_through() {
        for bad in [
            &b"@rev | @nosuch go"[..],
            b"@rev | | @sh1 go",
            b"@rev || @sh1 go",
            b"@rev | go",
            b"@rev |",
        ] {
            assert!(
                parse(bad, known).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn routes_a_known_agent() {
        let d = dir(b"@rev please shout\nand more\n");
        assert_eq!(d.stages, [vec!["rev"]]);
        assert_eq!(d.task, b"please shout\nand more");
    }

    #[test]
    fn fans_out_and_dedupes() {
        let d = dir(b"\n  @rev @sh1: @rev do it");
        assert_eq!(d.agents(), ["rev", "sh1"]);
        assert_eq!(d.task, b"do it");
    }

    #[test]
    fn passes_through_paths_and_unknown_names() {
        assert_eq!(parse(b"@docs/readme.md explain", known), Ok(None));
        assert_eq!(parse(b"@nosuch hello", known), Ok(None));
        assert_eq!(parse(b"hello @rev", known), Ok(None));
        assert_eq!(parse(b"", known), Ok(None));
    }

    #[test]
    fn a_bang_makes_the_task_urgent() {
        let d = dir(b"@rev! now");
        assert_eq!((d.agents()[0].as_str(), d.urgent), ("rev", true));
        assert!(!dir(b"@rev later").urgent);
    }

    #[test]
    fn later_unknown_tokens_belong_to_the_task() {
        let d = dir(b"@rev @john said hi");
        assert_eq!(d.task, b"@john said hi");
    }

    #[test]
    fn blank_lines_around_the_task_are_not_part_of_it() {
        assert_eq!(dir(b"@rev\n \n# quoted\n").task, b"# quoted");
    }

    #[test]
    fn empty_task_is_reported_as_empty() {
        assert_eq!(dir(b"@rev   \n\n").task, b"");
    }

    #[test]
    fn a_byte_order_mark_before_the_directive_is_no_obstacle() {
        let d = dir(b"\xEF\xBB\xBF@rev hi");
        assert_eq!(
            (d.agents()[0].as_str(), d.task.as_slice()),
            ("rev", &b"hi"[..])
        );
        assert!(may_route(b"\xEF\xBB\xBF  @rev"));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_kept_as_they_are() {
        let d = dir(b"@rev caf\xE9 \xFF\xFE\nline\x80");
        assert_eq!(d.task, b"caf\xE9 \xFF\xFE\nline\x80");
    }

    #[test]
    fn context_marker() {
        let text = "# last reply\n# more\n# ─── Write your reply below this line ───────\n@rev hi";
        assert_eq!(prompt_region(text.as_bytes()), b"@rev hi");
        assert_eq!(prompt_region(b"@rev hi"), b"@rev hi");
    }

    #[test]
    fn the_first_name_is_what_a_directive_would_name() {
        assert_eq!(first_name(b"  @plannign do it"), Some("plannign"));
        assert_eq!(first_name(b"@docs/x.md"), None);
        assert_eq!(first_name(b"hello"), None);
    }

    #[test]
    fn never_panics_on_odd_text() {
        for t in [
            &b"@"[..],
            b"@@",
            b"@ rev",
            b"\0@rev",
            "@rev\u{2028}x".as_bytes(),
            "@é".as_bytes(),
            b"\r\n@rev\r\nx\r\n",
            b"\xEF\xBB",
        ] {
            let _ = parse(t, known);
            let _ = prompt_region(t);
            let _ = first_name(t);
        }
    }
}

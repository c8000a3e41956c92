//! Reading a prompt file: where the prompt starts (after Claude Code's context marker), and
//! whether its first non-blank line begins with `@name` tokens that name known agents. Pure
//! functions of the text, so that they can be tested and fuzzed alone.

/// Claude Code's marker: everything up to and including this line is its last reply, quoted.
pub const CONTEXT_MARKER: &str = "# ─── Write your reply below this line";

/// The prompt part of the file: the text after the first context marker line, or all of it.
pub fn prompt_region(text: &str) -> &str {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        offset += line.len();
        if line.starts_with(CONTEXT_MARKER) {
            return &text[offset..];
        }
    }
    text
}

/// A prompt addressed to agents.
#[derive(Debug, PartialEq, Eq)]
pub struct Directive {
    pub agents: Vec<String>,
    /// The task: the rest of the directive line and every line after it, blank edges trimmed.
    pub task: String,
}

/// True if the prompt's first non-blank line starts with `@`: the only case in which baton needs
/// to look at its state folder at all.
pub fn may_route(prompt: &str) -> bool {
    prompt.trim_start().starts_with('@')
}

/// The agent name a token names, if it is `@name` (a trailing `:` or `,` is allowed).
fn token_name(token: &str) -> Option<&str> {
    let name = token.strip_prefix('@')?;
    let name = name.strip_suffix([':', ',']).unwrap_or(name);
    crate::store::validate_name(name).ok().map(|_| name)
}

/// Parses the directive. `None` means pass-through: no leading `@name`, or the first names no
/// known agent (`@docs/readme.md`, `@nosuch`). Tokens after the first that do not name a known
/// agent are part of the task.
pub fn parse(prompt: &str, is_known: impl Fn(&str) -> bool) -> Option<Directive> {
    let start = prompt.len() - prompt.trim_start().len();
    let body = &prompt[start..];
    let (line, rest) = body.split_once('\n').unwrap_or((body, ""));
    let mut agents: Vec<String> = Vec::new();
    let mut remainder = line;
    loop {
        let trimmed = remainder.trim_start();
        let token = trimmed.split_whitespace().next().unwrap_or("");
        match token_name(token).filter(|n| is_known(n)) {
            Some(name) => {
                if !agents.iter().any(|a| a == name) {
                    agents.push(name.to_string());
                }
                remainder = &trimmed[token.len()..];
            }
            None => break,
        }
    }
    if agents.is_empty() {
        return None;
    }
    let mut task = remainder.trim_start().to_string();
    if !rest.is_empty() {
        task.push('\n');
        task.push_str(rest);
    }
    Some(Directive {
        agents,
        task: task.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(n: &str) -> bool {
        matches!(n, "rev" | "planning" | "sh1")
    }

    #[test]
    fn routes_a_known_agent() {
        let d = parse("@rev please shout\nand more\n", known).unwrap();
        assert_eq!(d.agents, ["rev"]);
        assert_eq!(d.task, "please shout\nand more");
    }

    #[test]
    fn fans_out_and_dedupes() {
        let d = parse("\n  @rev @sh1: @rev do it", known).unwrap();
        assert_eq!(d.agents, ["rev", "sh1"]);
        assert_eq!(d.task, "do it");
    }

    #[test]
    fn passes_through_paths_and_unknown_names() {
        assert_eq!(parse("@docs/readme.md explain", known), None);
        assert_eq!(parse("@nosuch hello", known), None);
        assert_eq!(parse("hello @rev", known), None);
        assert_eq!(parse("", known), None);
    }

    #[test]
    fn later_unknown_tokens_belong_to_the_task() {
        let d = parse("@rev @john said hi", known).unwrap();
        assert_eq!(d.task, "@john said hi");
    }

    #[test]
    fn blank_lines_around_the_task_are_not_part_of_it() {
        assert_eq!(
            parse("@rev\n \n# quoted\n", known).unwrap().task,
            "# quoted"
        );
    }

    #[test]
    fn empty_task_is_reported_as_empty() {
        assert_eq!(parse("@rev   \n\n", known).unwrap().task, "");
    }

    #[test]
    fn context_marker() {
        let text = "# last reply\n# more\n# ─── Write your reply below this line ───────\n@rev hi";
        assert_eq!(prompt_region(text), "@rev hi");
        assert_eq!(prompt_region("@rev hi"), "@rev hi");
    }

    #[test]
    fn never_panics_on_odd_text() {
        for t in [
            "@",
            "@@",
            "@ rev",
            "\u{0}@rev",
            "@rev\u{2028}x",
            "@é",
            "\r\n@rev\r\nx\r\n",
        ] {
            let _ = parse(t, known);
            let _ = prompt_region(t);
        }
    }
}

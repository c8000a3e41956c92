//! Reading a prompt file: where the prompt starts (after Claude Code's context marker), and
//! whether its first non-blank line begins with `@name` tokens that name known agents. Pure
//! functions of the bytes (a prompt need not be UTF-8, and its bytes are kept as they are), so
//! that they can be tested and fuzzed alone.

/// Claude Code's marker: everything up to and including this line is its last reply, quoted.
pub const CONTEXT_MARKER: &str = "# ─── Write your reply below this line";

/// A UTF-8 byte order mark, which some editors put first in a file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The prompt part of the file: the bytes after the first context marker line, or all of them.
pub fn prompt_region(text: &[u8]) -> &[u8] {
    let mut offset = 0;
    for line in text.split_inclusive(|&b| b == b'\n') {
        offset += line.len();
        if line.starts_with(CONTEXT_MARKER.as_bytes()) {
            return &text[offset..];
        }
    }
    text
}

/// A prompt addressed to agents.
#[derive(Debug, PartialEq, Eq)]
pub struct Directive {
    pub agents: Vec<String>,
    /// An agent was named with a `!` (`@planning!`): the task is urgent (priority 0).
    pub urgent: bool,
    /// The task: the rest of the directive line and every line after it, blank edges trimmed.
    pub task: Vec<u8>,
}

/// The prompt without a leading byte order mark and blank space.
fn body(prompt: &[u8]) -> &[u8] {
    prompt
        .strip_prefix(BOM)
        .unwrap_or(prompt)
        .trim_ascii_start()
}

/// True if the prompt's first non-blank line starts with `@`: the only case in which baton needs
/// to look at its state folder at all.
pub fn may_route(prompt: &[u8]) -> bool {
    body(prompt).starts_with(b"@")
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

/// The first whitespace-separated token of `text` (after leading blanks), and what follows it.
fn first_token(text: &[u8]) -> (&[u8], &[u8]) {
    let text = text.trim_ascii_start();
    let end = text
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(text.len());
    text.split_at(end)
}

/// The first token of the prompt, when it looks like `@name`: what a directive would name.
pub fn first_name(prompt: &[u8]) -> Option<&str> {
    token_name(first_token(body(prompt)).0).map(|(n, _)| n)
}

/// Parses the directive. `None` means pass-through: no leading `@name`, or the first names no
/// known agent (`@docs/readme.md`, `@nosuch`). Tokens after the first that do not name a known
/// agent are part of the task.
pub fn parse(prompt: &[u8], is_known: impl Fn(&str) -> bool) -> Option<Directive> {
    let body = body(prompt);
    let nl = body.iter().position(|&b| b == b'\n');
    let (line, rest) = match nl {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &b""[..]),
    };
    let mut agents: Vec<String> = Vec::new();
    let mut urgent = false;
    let mut remainder = line;
    loop {
        let (token, after) = first_token(remainder);
        match token_name(token).filter(|(n, _)| is_known(n)) {
            Some((name, bang)) => {
                if !agents.iter().any(|a| a == name) {
                    agents.push(name.to_string());
                }
                urgent |= bang;
                remainder = after;
            }
            None => break,
        }
    }
    if agents.is_empty() {
        return None;
    }
    let mut task = remainder.trim_ascii_start().to_vec();
    if nl.is_some() {
        task.push(b'\n');
        task.extend_from_slice(rest);
    }
    Some(Directive {
        agents,
        urgent,
        task: task.trim_ascii().to_vec(),
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
        let d = parse(b"@rev please shout\nand more\n", known).unwrap();
        assert_eq!(d.agents, ["rev"]);
        assert_eq!(d.task, b"please shout\nand more");
    }

    #[test]
    fn fans_out_and_dedupes() {
        let d = parse(b"\n  @rev @sh1: @rev do it", known).unwrap();
        assert_eq!(d.agents, ["rev", "sh1"]);
        assert_eq!(d.task, b"do it");
    }

    #[test]
    fn passes_through_paths_and_unknown_names() {
        assert_eq!(parse(b"@docs/readme.md explain", known), None);
        assert_eq!(parse(b"@nosuch hello", known), None);
        assert_eq!(parse(b"hello @rev", known), None);
        assert_eq!(parse(b"", known), None);
    }

    #[test]
    fn a_bang_makes_the_task_urgent() {
        let d = parse(b"@rev! now", known).unwrap();
        assert_eq!((d.agents[0].as_str(), d.urgent), ("rev", true));
        assert!(!parse(b"@rev later", known).unwrap().urgent);
    }

    #[test]
    fn later_unknown_tokens_belong_to_the_task() {
        let d = parse(b"@rev @john said hi", known).unwrap();
        assert_eq!(d.task, b"@john said hi");
    }

    #[test]
    fn blank_lines_around_the_task_are_not_part_of_it() {
        assert_eq!(
            parse(b"@rev\n \n# quoted\n", known).unwrap().task,
            b"# quoted"
        );
    }

    #[test]
    fn empty_task_is_reported_as_empty() {
        assert_eq!(parse(b"@rev   \n\n", known).unwrap().task, b"");
    }

    #[test]
    fn a_byte_order_mark_before_the_directive_is_no_obstacle() {
        let d = parse(b"\xEF\xBB\xBF@rev hi", known).unwrap();
        assert_eq!(
            (d.agents[0].as_str(), d.task.as_slice()),
            ("rev", &b"hi"[..])
        );
        assert!(may_route(b"\xEF\xBB\xBF  @rev"));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_kept_as_they_are() {
        let d = parse(b"@rev caf\xE9 \xFF\xFE\nline\x80", known).unwrap();
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

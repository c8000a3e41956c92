//! The rules editor mode decides by before it looks at any state: which argument is the file to
//! edit, where the prompt starts in it, and whether it may be addressed to an agent. Only `core`
//! is used: `baton-edit` (`src/front/`) compiles this same file, so the two cannot disagree.

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

/// The prompt without a leading byte order mark and blank space.
pub fn body(prompt: &[u8]) -> &[u8] {
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

/// An option an editor is given (`-R`, `--clean`, `+12`), not a file.
pub fn is_flag(arg: &[u8]) -> bool {
    arg.len() > 1 && (arg[0] == b'-' || arg[0] == b'+')
}

/// The file of an `$EDITOR` call: the last argument, if it is the only one that is not a flag.
/// (baton also asks that it name an existing file or look like a path: `looks_like_path`.)
pub fn sole_file<'a>(args: impl Iterator<Item = &'a [u8]>) -> Option<&'a [u8]> {
    let (mut positional, mut last) = (0, None);
    for arg in args {
        last = Some(arg);
        positional += usize::from(!is_flag(arg));
    }
    last.filter(|arg| positional == 1 && !is_flag(arg))
}

/// A file argument that is a path whatever is on disk: it has a `/` or a `.` (`baton stauts` is
/// a mistyped command, `baton ./stauts` a file).
pub fn looks_like_path(arg: &[u8]) -> bool {
    arg.contains(&b'/') || arg.contains(&b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_the_last_argument_and_the_only_one_that_is_not_a_flag() {
        let file = |args: &[&'static str]| sole_file(args.iter().map(|a| a.as_bytes()));
        assert_eq!(file(&["/tmp/p.md"]), Some(&b"/tmp/p.md"[..]));
        assert_eq!(file(&["-R", "+12", "/tmp/p.md"]), Some(&b"/tmp/p.md"[..]));
        // A lone `-` or `+` is a file name, as editors take it.
        assert_eq!(file(&["-"]), Some(&b"-"[..]));
        assert_eq!(file(&["a", "b"]), None);
        assert_eq!(file(&["/tmp/p.md", "-R"]), None);
        assert_eq!(file(&["--help"]), None);
        assert_eq!(file(&[]), None);
        assert!(looks_like_path(b"./x") && looks_like_path(b"x.md") && !looks_like_path(b"status"));
    }
}

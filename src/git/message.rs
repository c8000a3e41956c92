//! git's message files (`COMMIT_EDITMSG`, `MERGE_MSG`, `TAG_EDITMSG`, `git-rebase-todo`, …)
//! as text: the message, and git's comment block below it (the lines that start with the
//! comment string, the blank lines among them, and with `git commit -v` the scissors line and
//! the diff under it). git strips that block when it reads the file back, so an answer is
//! written above it and the block kept as it was: the person in the editor still sees what git
//! told them. Pure functions of the bytes, tested alone.

use super::Comment;

/// The line git puts above the diff of `git commit -v`, after the comment string.
pub const SCISSORS: &str = " ------------------------ >8 ------------------------";

/// The characters `core.commentChar = auto` chooses from, in git's order.
const AUTO: &str = "#;@!$%^&|:";

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

fn lines(text: &[u8]) -> Vec<&[u8]> {
    text.split_inclusive(|&b| b == b'\n').collect()
}

fn is_scissors(line: &[u8], comment: &str) -> bool {
    let line = line.trim_ascii_end();
    line.strip_prefix(comment.as_bytes())
        .is_some_and(|rest| rest == SCISSORS.as_bytes())
}

/// The comment string of a file git wrote with `core.commentChar = auto`: the one its scissors
/// line starts with, else the first character of its last non-blank line (git's block is at
/// the end), else `#`.
pub fn auto_comment(text: &[u8]) -> String {
    let candidates = || AUTO.chars().map(String::from);
    let all = lines(text);
    if let Some(c) = candidates().find(|c| all.iter().any(|l| is_scissors(l, c))) {
        return c;
    }
    all.iter()
        .rev()
        .find(|l| !is_blank(l))
        .and_then(|l| candidates().find(|c| l.starts_with(c.as_bytes())))
        .unwrap_or_else(|| "#".into())
}

/// The comment string for `text`, resolving `auto`.
pub fn comment_for(comment: &Comment, text: &[u8]) -> String {
    match comment {
        Comment::Fixed(c) => c.clone(),
        Comment::Auto => auto_comment(text),
    }
}

/// Splits a message file into the message and git's comment block at its end. The block starts
/// at the first line of the last run of comment and blank lines (before the scissors line, if
/// any); a run with no comment line in it is not a block.
pub fn split<'a>(text: &'a [u8], comment: &str) -> (&'a [u8], &'a [u8]) {
    let all = lines(text);
    let cut = all
        .iter()
        .position(|l| is_scissors(l, comment))
        .unwrap_or(all.len());
    let mut start = cut;
    while start > 0 && (is_blank(all[start - 1]) || all[start - 1].starts_with(comment.as_bytes()))
    {
        start -= 1;
    }
    let has_comment = all[start..cut]
        .iter()
        .any(|l| l.starts_with(comment.as_bytes()));
    if !has_comment && cut == all.len() {
        return (text, &text[text.len()..]);
    }
    let offset: usize = all[..start].iter().map(|l| l.len()).sum();
    text.split_at(offset)
}

/// `answer` above `block` (git's comment block), and between them, with `kept`, the message
/// that was there: one blank line between each part.
pub fn compose(answer: &[u8], kept: &[u8], block: &[u8]) -> Vec<u8> {
    let mut out = answer.trim_ascii().to_vec();
    out.push(b'\n');
    let kept = kept.trim_ascii();
    if !kept.is_empty() {
        out.push(b'\n');
        out.extend_from_slice(kept);
        out.push(b'\n');
    }
    if !block.is_empty() {
        if !lines(block).first().is_some_and(|l| is_blank(l)) {
            out.push(b'\n');
        }
        out.extend_from_slice(block);
    }
    out
}

/// The message as git will commit it, roughly (git's `strip` cleanup): without comment lines,
/// without the scissors line and what follows it, blank edges trimmed.
pub fn strip(text: &[u8], comment: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines(text) {
        if is_scissors(line, comment) {
            break;
        }
        if !line.starts_with(comment.as_bytes()) {
            out.extend_from_slice(line);
        }
    }
    out.trim_ascii().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = "\n# Please enter the commit message for your changes. Lines starting\n# with '#' will be ignored.\n#\n# On branch main\n# Changes to be committed:\n#\tnew file:   a\n#\n";

    #[test]
    fn a_plain_commit_is_all_block() {
        let (message, block) = split(TEMPLATE.as_bytes(), "#");
        assert_eq!(message, b"");
        assert_eq!(block, TEMPLATE.as_bytes());
        let out = compose(b"Add a\n\nBecause.\n", b"", block);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("Add a\n\nBecause.\n{TEMPLATE}")
        );
    }

    #[test]
    fn a_message_keeps_its_own_hash_lines_above_the_block() {
        let text = format!("@writer draft it\n# not git's: mid-message\nmore\n{TEMPLATE}");
        let (message, block) = split(text.as_bytes(), "#");
        assert_eq!(
            message,
            b"@writer draft it\n# not git's: mid-message\nmore\n"
        );
        assert_eq!(block, TEMPLATE.as_bytes());
        let kept = compose(b"Draft", b"old message\n", block);
        assert!(String::from_utf8(kept)
            .unwrap()
            .starts_with("Draft\n\nold message\n\n# Please"));
    }

    #[test]
    fn the_verbose_diff_belongs_to_the_block() {
        let text = format!(
            "msg\n{TEMPLATE}# ------------------------ >8 ------------------------\n# Do not modify or remove the line above.\ndiff --git a/a b/a\n+hello\n"
        );
        let (message, block) = split(text.as_bytes(), "#");
        assert_eq!(message, b"msg\n");
        assert!(block.ends_with(b"+hello\n"));
        assert_eq!(strip(text.as_bytes(), "#"), b"msg");
    }

    #[test]
    fn no_comment_lines_means_no_block() {
        let (message, block) = split(b"just text\n\n", "#");
        assert_eq!(message, b"just text\n\n");
        assert!(block.is_empty());
        assert_eq!(compose(b"answer", b"", block), b"answer\n");
    }

    #[test]
    fn another_comment_string() {
        let text = TEMPLATE.replace('#', ";");
        let text = format!("# a heading\n{text}");
        let (message, block) = split(text.as_bytes(), ";");
        assert_eq!(message, b"# a heading\n");
        assert_eq!(auto_comment(text.as_bytes()), ";");
        assert_eq!(strip(text.as_bytes(), ";"), b"# a heading");
        let (_, block2) = split(text.as_bytes(), "//");
        assert!(block2.is_empty());
        assert!(block.starts_with(b"\n; Please"));
    }

    #[test]
    fn auto_finds_the_scissors() {
        let text = b"# title\n\n% ------------------------ >8 ------------------------\ndiff\n";
        assert_eq!(auto_comment(text), "%");
        assert_eq!(auto_comment(b""), "#");
    }
}

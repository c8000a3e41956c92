//! "Did you mean …?": the closest of some known words to a mistyped one, if it is close enough
//! to be a typo (an edit or two away, a swap of neighbours counting as one).

/// The candidate closest to `word`, if it is at most one edit away (two for words longer than
/// five letters), and not `word` itself.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = if word.chars().count() > 5 { 2 } else { 1 };
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The optimal string alignment distance: insertions, deletions, substitutions and swaps of
/// neighbours each count one.
pub fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_are_recognised_and_far_words_are_not() {
        let cmds = ["status", "start", "stop", "send", "ask"];
        assert_eq!(closest("stauts", cmds), Some("status"));
        assert_eq!(closest("sned", cmds), Some("send"));
        assert_eq!(
            closest("plannign", ["planning", "review"]),
            Some("planning")
        );
        assert_eq!(closest("notes", cmds), None);
        assert_eq!(closest("status", cmds), None, "not itself");
        assert_eq!(closest("docs", ["planning", "review"]), None);
        assert_eq!(distance("ab", "ba"), 1);
    }
}

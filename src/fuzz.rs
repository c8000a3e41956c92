//! Property tests (proptest) of everything that reads outside input: the directive parser, the
//! protocol file readers, hook events, durations and inbox names. Arbitrary input must never
//! panic, and what is accepted must satisfy the rules the rest of baton relies on. Each property
//! runs a bounded number of cases, so the suite's time stays fixed.

use proptest::prelude::*;

use crate::directive;
use crate::protocol::inbox::Entry;
use crate::protocol::{self, Spec, Status, Task, TaskEnd, TaskId};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 2000,
        // A failing case found here becomes a unit test beside the code it broke (the top level
        // of the repository has no regressions folder).
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text that is likely to look like a prompt: `@` tokens, names, markers, blank lines.
fn prompt_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("@".to_string()),
        Just("@rev".to_string()),
        Just("@sh1:".to_string()),
        Just("@docs/x.md".to_string()),
        Just("\n".to_string()),
        Just(" ".to_string()),
        Just(directive::CONTEXT_MARKER.to_string()),
        Just("# quoted\n".to_string()),
        "[a-z_-]{0,6}",
        any::<String>(),
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn directives_never_panic_and_name_only_known_agents(text in prompt_text()) {
        let known = |n: &str| n == "rev" || n == "sh1";
        let region = directive::prompt_region(text.as_bytes());
        prop_assert!(text.as_bytes().ends_with(region));
        if let Ok(Some(d)) = directive::parse(region, known) {
            prop_assert!(d.stages.iter().all(|s| !s.is_empty()));
            prop_assert!(d.agents().iter().all(|a| known(a)));
            prop_assert!(directive::may_route(region));
            prop_assert!(!d.task.first().is_some_and(u8::is_ascii_whitespace));
        }
    }

    #[test]
    fn a_directive_task_keeps_its_bytes(tail in proptest::collection::vec(any::<u8>(), 0..256)) {
        // A tail that starts with directive words (`@name`, `|`, `&`, `--any`) is not a task.
        let start = tail.trim_ascii_start();
        // A word ends at blank space or a `|`, as the parser reads it (`&|` is `&` then `|`).
        let word = start
            .split(|b| b.is_ascii_whitespace() || *b == b'|')
            .next()
            .unwrap_or_default();
        prop_assume!(!start.starts_with(b"@") && !start.starts_with(b"|"));
        prop_assume!(word != b"&" && word != b"--any");
        let mut prompt = b"@rev ".to_vec();
        prompt.extend_from_slice(&tail);
        let d = directive::parse(&prompt, |n| n == "rev").unwrap().unwrap();
        // Byte for byte (never re-encoded), only the blank edges trimmed.
        prop_assert_eq!(d.task.as_slice(), tail.trim_ascii());
    }

    #[test]
    fn protocol_readers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file.json");
        std::fs::write(&path, &bytes).unwrap();
        let _ = protocol::read_json::<Task>(&path);
        let _ = protocol::read_json::<TaskEnd>(&path);
        let _ = protocol::read_json::<Status>(&path);
        let _ = protocol::read_json::<Spec>(&path);
        let _ = protocol::read_json::<crate::hook::Event>(&path);
    }

    #[test]
    fn json_shaped_protocol_files_never_panic(text in r#"\{("[a-z_]{1,12}": ?("[^"]{0,8}"|[0-9]{1,20}|null|true|\[\]|\{\}), ?){0,10}\}"#) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file.json");
        std::fs::write(&path, &text).unwrap();
        let _ = protocol::read_json::<Task>(&path);
        let _ = protocol::read_json::<TaskEnd>(&path);
        let _ = protocol::read_json::<Status>(&path);
    }

    #[test]
    fn durations_and_inbox_names_never_panic(s in any::<String>()) {
        let _ = crate::sys::time::parse_duration(&s);
        if let Some(entry) = Entry::parse(&s) {
            prop_assert!(TaskId::parse(entry.id.as_str()).is_ok());
            prop_assert!(!entry.id.as_str().contains('/') && !entry.id.as_str().contains(".."));
        }
        if crate::protocol::agent::validate_name(&s).is_ok() {
            prop_assert!(!s.contains('/') && s.len() <= 32);
        }
    }
}

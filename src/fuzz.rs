//! Property tests (proptest) of everything that reads outside input: the directive parser, the
//! protocol file readers, hook events, durations and inbox names. Arbitrary input must never
//! panic, and what is accepted must satisfy the rules the rest of baton relies on. Each property
//! runs a bounded number of cases, so the suite's time stays fixed.

use proptest::prelude::*;

use crate::directive;
use crate::protocol::{self, AgentConfig, Done, Status, Task};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 2000,
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
        let region = directive::prompt_region(&text);
        prop_assert!(text.ends_with(region));
        if let Some(d) = directive::parse(region, known) {
            prop_assert!(!d.agents.is_empty());
            prop_assert!(d.agents.iter().all(|a| known(a)));
            prop_assert!(directive::may_route(region));
            prop_assert!(!d.task.starts_with([' ', '\t', '\n']));
        }
    }

    #[test]
    fn protocol_readers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file.json");
        std::fs::write(&path, &bytes).unwrap();
        let _ = protocol::read_json::<Task>(&path);
        let _ = protocol::read_json::<Done>(&path);
        let _ = protocol::read_json::<Status>(&path);
        let _ = protocol::read_json::<AgentConfig>(&path);
        let _ = protocol::read_json::<crate::hook::Event>(&path);
    }

    #[test]
    fn json_shaped_protocol_files_never_panic(text in r#"\{("[a-z_]{1,12}": ?("[^"]{0,8}"|[0-9]{1,20}|null|true|\[\]|\{\}), ?){0,10}\}"#) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file.json");
        std::fs::write(&path, &text).unwrap();
        let _ = protocol::read_json::<Task>(&path);
        let _ = protocol::read_json::<Done>(&path);
        let _ = protocol::read_json::<Status>(&path);
    }

    #[test]
    fn durations_and_inbox_names_never_panic(s in any::<String>()) {
        let _ = crate::time::parse_duration(&s);
        if let Some(id) = protocol::parse_inbox_entry(&s) {
            prop_assert!(crate::store::validate_task_id(id).is_ok());
            prop_assert!(!id.contains('/') && !id.contains(".."));
        }
        if crate::store::validate_name(&s).is_ok() {
            prop_assert!(!s.contains('/') && s.len() <= 32);
        }
    }
}

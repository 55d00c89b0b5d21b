use super::*;
use crate::config::parse;

fn config(json: &str) -> Config {
    parse("t.json".into(), json).unwrap()
}

fn example() -> Config {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/insecure/example.json")).unwrap();
    config(&text)
}

#[test]
fn the_example_streams_person_events_to_media_and_development() {
    let w = derive(&example()).unwrap();
    let flows: Vec<String> = w.flows.iter().map(Flow::describe).collect();
    assert_eq!(
        flows,
        [
            "stream core → development: thecowboyai.org.person.> (derived)",
            "stream core → media: thecowboyai.org.person.> (derived)",
        ]
    );
    let core = &w.exports["core"];
    assert_eq!(core.len(), 1);
    assert_eq!(
        (core[0].subject.as_str(), core[0].kind, core[0].public),
        ("thecowboyai.org.person.>", FlowType::Stream, false)
    );
    assert!(!w.exports.contains_key("media") && !w.exports.contains_key("development"));
    assert!(w.warnings.is_empty(), "{:?}", w.warnings);
}

const TWO: &str = r#"{"organization": {"name": "acme"},
  "organizational_units": [{"name": "A"}, {"name": "B"}, {"name": "C"}],
  "service_people": [
    {"name": "pa", "organizational_unit": "A", "role": "Service",
     "nats_permissions": {"publish": ["ev.a.x.>", "ev.a.y.>", "req.b.get"], "subscribe": ["ev.a.>", "typo.>"], "allow_responses": true}},
    {"name": "sb", "organizational_unit": "B", "role": "Service",
     "nats_permissions": {"publish": [], "subscribe": ["ev.a.>", "req.b.>", "_INBOX_sb.>"], "allow_responses": true}},
    {"name": "sc", "organizational_unit": "C", "role": "Service",
     "nats_permissions": {"publish": [], "subscribe": ["ev.a.x.one", "ev.a.y.*"], "allow_responses": false}}
  ]}"#;

#[test]
fn streams_services_merging_and_warnings() {
    let w = derive(&config(TWO)).unwrap();
    let flows: Vec<String> = w.flows.iter().map(Flow::describe).collect();
    assert_eq!(
        flows,
        [
            "stream a → b: ev.a.x.> (derived)",
            "stream a → b: ev.a.y.> (derived)",
            "stream a → c: ev.a.x.one (derived)",
            "stream a → c: ev.a.y.* (derived)",
            "service b → a: req.b.get (derived)",
        ]
    );
    // The exports of a cover every import, and never overlap: c's narrower imports are merged into b's.
    let a: Vec<&str> = w.exports["a"].iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(a, ["ev.a.x.>", "ev.a.y.>"]);
    let b = &w.exports["b"];
    assert_eq!(
        (b[0].subject.as_str(), b[0].kind, b[0].response_type.as_str()),
        ("req.b.get", FlowType::Service, "Singleton")
    );
    assert_eq!(w.warnings, ["service_people[0].nats_permissions.subscribe[1]: no service may publish to \"typo.>\""]);
}

#[test]
fn explicit_wiring_uses_only_declarations() {
    let text = TWO
        .replace(
            r#"{"name": "B"}"#,
            r#"{"name": "B", "nats_imports": [{"from_unit": "A", "subject": "ev.a.x.>", "type": "stream"}]}"#,
        )
        .replace(
            r#"{"name": "A"}"#,
            r#"{"name": "A", "nats_exports": [{"subject": "ev.a.>", "type": "stream", "public": true}]}"#,
        )
        .replace(
            r#""organization": {"name": "acme"},"#,
            r#""organization": {"name": "acme"}, "nats_wiring": "explicit","#,
        );
    let w = derive(&config(&text)).unwrap();
    let flows: Vec<String> = w.flows.iter().map(Flow::describe).collect();
    assert_eq!(flows, ["stream a → b: ev.a.x.> (declared)"]);
    assert!(w.exports["a"][0].public);
}

#[test]
fn bad_declarations_are_errors_with_paths() {
    let text = TWO
        .replace(
            r#"{"name": "B"}"#,
            r#"{"name": "B", "nats_imports": [
                {"from_unit": "Nope", "subject": "x", "type": "stream"},
                {"from_unit": "A", "subject": "zz.>", "type": "stream"},
                {"from_unit": "A", "subject": "ev.a.>", "type": "stream", "local_subject": "mine.>"}]}"#,
        )
        .replace(
            r#"{"name": "A"}"#,
            r#"{"name": "A", "nats_exports": [{"subject": "ev.a.>", "type": "stream"}, {"subject": "nobody.>", "type": "stream"},
                {"subject": "ev.a.x", "type": "stream"}]}"#,
        );
    let issues = derive(&config(&text)).unwrap_err();
    let got: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
    let want = [
        "organizational_units[0].nats_exports[1].subject: no service of account \"a\" may publish to \"nobody.>\"",
        "organizational_units[0].nats_exports[2].subject: \"ev.a.x\" overlaps the stream export \"ev.a.>\"",
        "organizational_units[1].nats_imports[0].from_unit: \"Nope\" is not a unit",
        "organizational_units[1].nats_imports[1].subject: account \"a\" (unit \"A\") has no stream export in nats_exports covering \"zz.>\"",
        "organizational_units[1].nats_imports[2].local_subject: no service of account \"b\" has \"mine.>\" in its sub.allow",
    ];
    for w in want {
        assert!(got.iter().any(|g| g.starts_with(w)), "missing {w:?} in {got:#?}");
    }
}

#[test]
fn a_shared_namespace_in_both_directions_is_a_cycle() {
    let text = r#"{"organization": {"name": "acme"},
      "organizational_units": [{"name": "A"}, {"name": "B"}],
      "service_people": [
        {"name": "pa", "organizational_unit": "A", "role": "Service", "nats_permissions": {"publish": ["x.>"], "subscribe": ["x.>"]}},
        {"name": "pb", "organizational_unit": "B", "role": "Service", "nats_permissions": {"publish": ["x.>"], "subscribe": ["x.>"]}}]}"#;
    // Derived: one direction is wired, the other is reported (not an error:
    // the config was valid before wiring existed).
    let w = derive(&config(text)).unwrap();
    assert_eq!(w.flows.iter().map(Flow::describe).collect::<Vec<_>>(), ["stream a → b: x.> (derived)"]);
    assert_eq!(w.unwired.iter().map(Flow::describe).collect::<Vec<_>>(), ["stream b → a: x.> (derived)"]);
    assert_eq!(w.warnings.len(), 1);
    assert!(
        w.warnings[0].starts_with("service_people[0].nats_permissions.subscribe[0]: not wired: stream import"),
        "{:?}",
        w.warnings
    );
    assert!(w.warnings[0].contains("forms a cycle (a ← b ← a)"), "{:?}", w.warnings);
    // Declared: the same cycle is an error at the import's path.
    let declared = text
        .replace(r#"{"name": "A"}"#, r#"{"name": "A", "nats_exports": [{"subject": "x.>", "type": "stream"}], "nats_imports": [{"from_unit": "B", "subject": "x.>", "type": "stream"}]}"#)
        .replace(r#"{"name": "B"}"#, r#"{"name": "B", "nats_exports": [{"subject": "x.>", "type": "stream"}], "nats_imports": [{"from_unit": "A", "subject": "x.>", "type": "stream"}]}"#);
    let issues = derive(&config(&declared)).unwrap_err();
    assert!(
        issues
            .iter()
            .any(|i| i.path == "organizational_units[0].nats_imports[0]" && i.message.contains("forms a cycle")),
        "{issues:?}"
    );
}

#[test]
fn upstream_fixture_wires_without_errors() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cim-keys/clan-bootstrap.json"))
            .unwrap();
    let w = derive(&config(&text)).unwrap();
    for f in &w.flows {
        assert_ne!(f.exporter, f.importer);
    }
}

#[test]
fn diff_lists_added_and_removed() {
    let w = derive(&example()).unwrap();
    let (added, removed) = diff(&w.flows[..1], &w.flows[1..]);
    assert_eq!((added.len(), removed.len()), (1, 1));
}

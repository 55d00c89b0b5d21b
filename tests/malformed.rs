//! Every config in tests/malformed/ through the built binary: `generate` exits 2
//! with the message in tests/malformed/expected.txt (field path included), and
//! neither the store nor the owner identity is created.
//!
//! The corpus covers syntax (empty file, `null`, arrays and strings at the top
//! level, a BOM, trailing garbage, duplicate keys, bad escapes, not UTF-8),
//! 10,000-deep nesting (serde_json's recursion limit answers, no stack
//! overflow), huge and fractional numbers, wrong types and unknown fields at
//! many paths, structs written as positional arrays, and every validation rule.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_clan-nats");

/// This test binary's trust pins, in a temporary directory (never the home directory).
fn pins_file() -> PathBuf {
    static STATE: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    STATE.get_or_init(|| tempfile::tempdir().expect("temp dir")).path().join("pins.json")
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed")
}

/// FILE → expected substrings.
fn expected() -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(corpus().join("expected.txt")).unwrap();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        let (file, want) = line.split_once(" => ").unwrap_or_else(|| panic!("expected.txt: bad line {line:?}"));
        out.entry(file.to_string()).or_default().push(want.to_string());
    }
    out
}

#[test]
fn every_malformed_config_is_refused_with_its_message_and_nothing_is_written() {
    let expected = expected();
    let mut files: Vec<String> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "the corpus has {} configs", files.len());
    let listed: Vec<&String> = expected.keys().collect();
    assert_eq!(listed, files.iter().collect::<Vec<_>>(), "expected.txt must list exactly the corpus files");

    let mut failures = Vec::new();
    for f in &files {
        let tmp = tempfile::tempdir().unwrap();
        let (store, key) = (tmp.path().join("store"), tmp.path().join("k"));
        let config = corpus().join(f);
        let out = Command::new(BIN)
            .env("CLAN_NATS_PINS", pins_file())
            .env("CLAN_NATS_ALLOW_INSECURE_FIXTURE_KEYS", "1")
            .arg("generate")
            .arg("--config")
            .arg(&config)
            .arg("--out")
            .arg(&store)
            .arg("--identity")
            .arg(&key)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut problems = Vec::new();
        if out.status.code() != Some(2) {
            problems.push(format!("exit {:?}, expected 2", out.status.code()));
        }
        let prefix = format!("error: {}: ", config.display());
        if !stderr.starts_with(&prefix) {
            problems.push(format!("the message does not start with {prefix:?}"));
        }
        for want in &expected[f] {
            if !stderr.contains(want.as_str()) {
                problems.push(format!("missing {want:?}"));
            }
        }
        if store.exists() || key.exists() {
            problems.push("the store or the identity was created".into());
        }
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        if !left.is_empty() {
            problems.push(format!("files were left behind: {left:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!("{f}: {}\n  stderr: {stderr}", problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{} of {} configs:\n{}", failures.len(), files.len(), failures.join("\n"));
}

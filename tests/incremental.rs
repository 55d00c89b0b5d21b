//! Issue 12: a re-run costs what changed, not what exists. A store of 6
//! accounts x 20 users: a no-op opens no account, an edit opens only its
//! account and its user's files, and an edit outside clan-nats in an account
//! the run does not open is still refused before anything is written.

mod common;

use std::path::{Path, PathBuf};

use clan_nats::manifest::Manifest;
use common::*;
use serde_json::{json, Value};

const ACCOUNTS: usize = 6;
const USERS: usize = 20;

fn config() -> Value {
    let mut v: Value = serde_json::from_slice(&std::fs::read(example()).unwrap()).unwrap();
    let units: Vec<Value> =
        (0..ACCOUNTS).map(|a| json!({"name": format!("U{a}"), "nats_account_name": format!("a{a}")})).collect();
    let people: Vec<Value> = (0..ACCOUNTS * USERS)
        .map(|i| {
            json!({"name": format!("s{i}-service"), "organizational_unit": format!("U{}", i % ACCOUNTS), "role": "Service",
                   "nats_permissions": {"publish": [format!("s{i}.>")], "subscribe": ["_INBOX.>"]}})
        })
        .collect();
    // Every service on the example's first host, so that creds are sealed to a host too.
    let host = v["hosts"][0].clone();
    let mut host = host;
    host["services"] = json!((0..ACCOUNTS * USERS).map(|i| format!("s{i}-service")).collect::<Vec<_>>());
    v["organizational_units"] = json!(units);
    v["service_people"] = json!(people);
    v["hosts"] = json!([host]);
    v
}

struct Store {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    key: PathBuf,
    config: PathBuf,
    value: Value,
}

impl Store {
    fn new() -> Store {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, key, config) = (tmp.path().join("store"), tmp.path().join("owner.key"), tmp.path().join("org.json"));
        let value = self::config();
        std::fs::write(&config, serde_json::to_vec(&value).unwrap()).unwrap();
        generate(&config, &dir, &key);
        Store { tmp, dir, key, config, value }
    }

    fn edit(&mut self, users: &[usize]) {
        for &i in users {
            self.value["service_people"][i]["nats_permissions"]["publish"] = json!([format!("s{i}.changed.>")]);
        }
        std::fs::write(&self.config, serde_json::to_vec(&self.value).unwrap()).unwrap();
    }

    fn run(&self) -> Value {
        let out = bin().arg("--json").args(generate_args(&self.config, &self.dir, &self.key)).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn try_run(&self) -> std::process::Output {
        bin().args(generate_args(&self.config, &self.dir, &self.key)).output().unwrap()
    }

    fn files(&self) -> usize {
        snapshot(&self.dir).len()
    }

    fn user_files(&self, i: usize) -> Vec<String> {
        let acct = format!("a{}", i % ACCOUNTS);
        let base = format!("nsc/stores/thecowboyai/accounts/{acct}/users/s{i}-service");
        vec![format!("{base}.creds.age"), format!("{base}.jwt")]
    }
}

fn strings(v: &Value) -> Vec<String> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn a_re_run_reads_only_what_it_touches() {
    let mut s = Store::new();
    let total = s.files();
    assert!(total > 3 * ACCOUNTS * USERS, "the store has {total} files");

    // No change: nothing written, no account opened (the operator JWT alone is read).
    let r = s.run();
    assert_eq!(r["written"], json!([]));
    assert!(r["files_read"].as_u64().unwrap() <= 1, "a no-op read {} files", r["files_read"]);

    // One user: its JWT and creds, its account's manifest, the root; a handful of reads.
    s.edit(&[7]);
    let r = s.run();
    let mut want = vec![
        "config.json".to_string(),
        "governance/audit.jsonl".into(),
        format!("manifest.d/a{}.json", 7 % ACCOUNTS),
        "manifest.json".into(),
    ];
    want.extend(s.user_files(7));
    want.sort();
    assert_eq!(strings(&r["written"]), want);
    let read = r["files_read"].as_u64().unwrap();
    // The account manifest, the user's JWT and seed, the account's JWT and signing key,
    // the operator JWT, and the operator key that signs the audit entry.
    assert!(read <= 7, "one edited user read {read} files of {total}");

    // Users in three accounts: exactly those three account manifests.
    s.edit(&[0, 1, 2, 6]);
    let r = s.run();
    let written = strings(&r["written"]);
    let manifests: Vec<&String> = written.iter().filter(|p| p.starts_with("manifest.d/")).collect();
    assert_eq!(manifests, ["manifest.d/a0.json", "manifest.d/a1.json", "manifest.d/a2.json"]);
    for i in [0, 1, 2, 6] {
        for f in s.user_files(i) {
            assert!(written.contains(&f), "{f} not rewritten: {written:?}");
        }
    }
    assert_eq!(written.len(), 3 + 3 + 2 * 4, "{written:?}");
    let read = r["files_read"].as_u64().unwrap();
    assert!(read <= 3 * 4 + 4 * 2 + 2, "{read} files read");

    // The split store is whole: verify checks every file and signature.
    let out = run(&["verify", s.dir.to_str().unwrap(), "--identity", s.key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m = Manifest::read_dir(&s.dir).unwrap();
    assert_eq!(m.accounts.iter().map(|a| a.users.len()).sum::<usize>(), ACCOUNTS * USERS + 1);
    drop(s.tmp);
}

/// A copy of the store with one file changed by `edit`, then a run that
/// changes one user of account a0: it must refuse (exit 3), name `what`, and
/// leave the store as it was.
fn refused_after(edit: impl FnOnce(&Path), what: &str) {
    let mut s = Store::new();
    s.run(); // a clean no-op run first: the moment this machine saw the store whole is recorded
    edit(&s.dir);
    let before = snapshot(&s.dir);
    s.edit(&[0]);
    let out = s.try_run();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains(what), "the refusal must name {what}: {err}");
    assert!(snapshot(&s.dir) == before, "nothing may be written");
}

#[test]
fn an_edit_in_an_account_the_run_does_not_open_is_refused() {
    // Content changed in place (account a3 is not touched by the run).
    let jwt = "nsc/stores/thecowboyai/accounts/a3/users/s3-service.jwt";
    refused_after(
        |d| {
            let p = d.join(jwt);
            let mut t = std::fs::read(&p).unwrap();
            t.push(b'\n');
            std::fs::write(p, t).unwrap();
        },
        &format!("{jwt}: sha256 mismatch"),
    );
    // A file planted beside the users of a4.
    let planted = "nsc/stores/thecowboyai/accounts/a4/users/intruder.jwt";
    refused_after(|d| std::fs::write(d.join(planted), "x").unwrap(), planted);
    // A creds file deleted in a5.
    let gone = "nsc/stores/thecowboyai/accounts/a5/users/s5-service.creds.age";
    refused_after(
        |d| std::fs::remove_file(d.join(gone)).unwrap(),
        "s5-service.creds.age: listed in the signed manifest but missing",
    );
    // Two users' files swapped (same bytes set, different places): a rename.
    let (x, y) = (
        "nsc/stores/thecowboyai/accounts/a3/users/s9-service.jwt",
        "nsc/stores/thecowboyai/accounts/a3/users/s15-service.jwt",
    );
    refused_after(
        |d| {
            let tmp = d.join("swap");
            std::fs::rename(d.join(x), &tmp).unwrap();
            std::fs::rename(d.join(y), d.join(x)).unwrap();
            std::fs::rename(&tmp, d.join(y)).unwrap();
        },
        "sha256 mismatch",
    );
}

/// A fresh checkout (another directory: this machine has never seen its
/// files) is checked whole on its first run.
#[test]
fn a_store_in_a_new_directory_is_checked_whole_once() {
    let s = Store::new();
    let copy = s.tmp.path().join("clone");
    assert!(std::process::Command::new("cp").arg("-a").arg(&s.dir).arg(&copy).status().unwrap().success());
    // An edit made before this machine ever ran on the copy, with the original
    // mtime and ctime older than any stamp... only a whole check finds it.
    let jwt = copy.join("nsc/stores/thecowboyai/accounts/a2/users/s8-service.jwt");
    let mut t = std::fs::read(&jwt).unwrap();
    t.push(b' ');
    std::fs::write(&jwt, t).unwrap();
    let out = bin().args(generate_args(&s.config, &copy, &s.key)).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("s8-service.jwt: sha256 mismatch"), "{err}");
    // The original is untouched and still reconciles without reading its accounts.
    let r = s.run();
    assert_eq!(r["written"], json!([]));
}

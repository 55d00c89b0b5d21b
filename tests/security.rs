//! The store lives in git and anyone who can push may edit it. Each test here
//! plays that attacker: it edits files of a real store, then runs the owner's
//! routine commands, which must refuse (exit 3) before anything is written,
//! because nothing read from DIR is trusted until it is checked against the
//! operator key and audit head pinned on the owner's machine.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clan_nats::manifest::Manifest;
use clan_nats::vault::{self, Identity};
use common::*;
use serde_json::Value;

/// A store generated from the example on "the owner's machine" (its own pin
/// file), with a specialist (bob) and, last in the audit log, a key export.
struct Base {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    owner: PathBuf,
    pins: PathBuf,
    attacker: String,
    attacker_key: PathBuf,
}

/// A copy of the base store and of the owner's pins, to attack.
struct Case {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    owner: PathBuf,
    pins: PathBuf,
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    o
}

fn cp(from: &Path, to: &Path) {
    assert!(Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap().success());
}

impl Base {
    fn new() -> Base {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, owner, pins) = (tmp.path().join("store"), tmp.path().join("owner.key"), tmp.path().join("pins.json"));
        ok(bin_pinned(&pins).args(generate_args(&example(), &dir, &owner)).output().unwrap());
        let (_, bob) = key(tmp.path(), "bob");
        let d = dir.to_str().unwrap();
        let o = owner.to_str().unwrap();
        ok(bin_pinned(&pins)
            .args(["team", "add", "--id", "github:bob", "--name", "Bob", "--recipient", &bob, "--units", "Media"])
            .args(["--dir", d, "--identity", o])
            .output()
            .unwrap());
        ok(bin_pinned(&pins).args(["vault", "request-key", "operator", "--dir", d, "--identity", o]).output().unwrap());
        let (attacker_key, attacker) = key(tmp.path(), "mallory");
        Base { _tmp: tmp, dir, owner, pins, attacker, attacker_key }
    }

    fn case(&self) -> Case {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, owner, pins) = (tmp.path().join("store"), tmp.path().join("owner.key"), tmp.path().join("pins.json"));
        cp(&self.dir, &dir);
        cp(&self.owner, &owner);
        cp(&self.pins, &pins);
        Case { _tmp: tmp, dir, owner, pins }
    }

    fn manifest(&self) -> Manifest {
        Manifest::read_dir(&self.dir).unwrap()
    }
}

fn key(dir: &Path, name: &str) -> (PathBuf, String) {
    let p = dir.join(format!("{name}.key"));
    let (id, _) = Identity::load_or_create(&utf8(&p)).unwrap();
    (p, id.recipients[0].clone())
}

impl Case {
    fn run(&self, args: &[&str]) -> Output {
        bin_pinned(&self.pins).args(args).output().unwrap()
    }

    /// A writing command of the owner's, by name.
    fn owner_command(&self, command: &str, scratch: &Path) -> Output {
        let (d, k) = (self.dir.to_str().unwrap(), self.owner.to_str().unwrap());
        let dir_args = ["--dir", d, "--identity", k];
        let carol = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
        let with = |args: &[&str]| {
            let mut all = args.to_vec();
            all.extend(dir_args);
            self.run(&all)
        };
        match command {
            "generate" => {
                bin_pinned(&self.pins).args(generate_args(&example(), &self.dir, &self.owner)).output().unwrap()
            }
            "rotate" => with(&["rotate", "user", "person-service"]),
            "team add" => with(&[
                "team",
                "add",
                "--id",
                "github:carol",
                "--name",
                "Carol",
                "--recipient",
                carol,
                "--units",
                "Core",
            ]),
            "team remove" => with(&["team", "remove", "--id", "github:bob"]),
            "team invite" => with(&["team", "invite", "--id", "github:dan", "--name", "Dan", "--units", "Core"]),
            "request-key" => with(&["vault", "request-key", "operator"]),
            "export-nsc" => with(&["export-nsc", "--to", scratch.join("export").to_str().unwrap()]),
            other => panic!("unknown command {other}"),
        }
    }
}

fn edit_json(path: &Path, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

fn append(path: &Path, text: &str) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes.extend_from_slice(text.as_bytes());
    std::fs::write(path, bytes).unwrap();
}

/// Each file class of the store, with an edit an attacker could push.
/// Returns (class, the file named in the refusal).
fn tamper(class: &str, dir: &Path, m: &Manifest, attacker: &str) -> String {
    let account = m.accounts.iter().find(|a| a.name == "core").unwrap();
    let user = account.users.iter().find(|u| u.name == "person-service").unwrap();
    let seeds: Vec<&str> = m.keys.iter().map(|k| k.path.as_str()).collect();
    let file = match class {
        "config" => {
            edit_json(&dir.join("config.json"), |v| v["owner"]["age_recipient"] = attacker.into());
            "config.json".to_string()
        }
        "manifest" => {
            edit_json(&dir.join("manifest.json"), |v| v["recipients"]["admin-1"] = attacker.into());
            "manifest.json".into()
        }
        "ownership" => {
            edit_json(&dir.join("governance/ownership.json"), |v| v["owner_name"] = "Mallory".into());
            "governance/ownership.json".into()
        }
        "ownership signature" => {
            edit_json(&dir.join("governance/ownership.sig"), |v| v["signed_at"] = "2020-01-01T00:00:00Z".into());
            "governance/ownership.sig".into()
        }
        "audit log (truncated)" => {
            // The last entry is a key export, which leaves manifest and ownership as they
            // were: only the pinned head can tell that it was cut off.
            let p = dir.join("governance/audit.jsonl");
            let text = std::fs::read_to_string(&p).unwrap();
            let mut lines: Vec<&str> = text.lines().collect();
            assert!(lines.pop().unwrap().contains("\"key-export\""));
            std::fs::write(&p, lines.join("\n") + "\n").unwrap();
            "governance/audit.jsonl".into()
        }
        "seed" => {
            // Another seed file's (valid, owner-readable) ciphertext in place of this one.
            std::fs::copy(dir.join(seeds[1]), dir.join(seeds[0])).unwrap();
            seeds[0].to_string()
        }
        "creds" => {
            let p = dir.join(&user.creds);
            let mut b = std::fs::read(&p).unwrap();
            let n = b.len();
            b[n - 5] ^= 1;
            std::fs::write(&p, b).unwrap();
            user.creds.clone()
        }
        "operator jwt" => {
            append(&dir.join(&m.operator.jwt), "\n");
            m.operator.jwt.clone()
        }
        "account jwt" => {
            append(&dir.join(&account.jwt), "x");
            account.jwt.clone()
        }
        "user jwt" => {
            append(&dir.join(&user.jwt), "x");
            user.jwt.clone()
        }
        "server config" => {
            append(&dir.join("server/nats-server.conf"), "authorization: { users: [ {user: a, password: b} ] }\n");
            "server/nats-server.conf".into()
        }
        "server json" => {
            edit_json(&dir.join("server/server.json"), |v| v["resolver"] = "URL(http://attacker)".into());
            "server/server.json".into()
        }
        "nsc marker" => {
            let p = format!("nsc/stores/{}/.nsc", m.operator.name);
            append(&dir.join(&p), " ");
            p
        }
        other => panic!("unknown class {other}"),
    };
    file
}

const CLASSES: [&str; 13] = [
    "config",
    "manifest",
    "ownership",
    "ownership signature",
    "audit log (truncated)",
    "seed",
    "creds",
    "operator jwt",
    "account jwt",
    "user jwt",
    "server config",
    "server json",
    "nsc marker",
];
const COMMANDS: [&str; 7] =
    ["generate", "rotate", "team add", "team remove", "team invite", "request-key", "export-nsc"];

/// Every file class × every writing command: refused with exit 3, the file
/// named, nothing written (the tree and the pins byte-identical, no export),
/// and `verify` still reports the edit afterwards (it was not laundered).
#[test]
fn every_tampered_file_class_is_refused_by_every_writing_command() {
    let base = Base::new();
    let m = base.manifest();
    let mut failures = Vec::new();
    let mut runs = 0;
    for class in CLASSES {
        for command in COMMANDS {
            let case = base.case();
            let file = tamper(class, &case.dir, &m, &base.attacker);
            let before = snapshot(&case.dir);
            let pins_before = std::fs::read(&case.pins).unwrap();
            let scratch = tempfile::tempdir().unwrap();
            let out = case.owner_command(command, scratch.path());
            runs += 1;
            let err = String::from_utf8_lossy(&out.stderr);
            let mut why = Vec::new();
            if out.status.code() != Some(3) {
                why.push(format!("exit {:?}", out.status.code()));
            }
            if !err.contains(&file) {
                why.push(format!("the refusal does not name {file}"));
            }
            if !err.contains("Nothing was written") {
                why.push("no \"Nothing was written\"".into());
            }
            if snapshot(&case.dir) != before {
                why.push("the store changed".into());
            }
            if std::fs::read(&case.pins).unwrap() != pins_before {
                why.push("the pins changed".into());
            }
            if scratch.path().join("export").exists() || contains_seed(&out.stdout) {
                why.push("secrets were exported".into());
            }
            let v = case.run(&["verify", case.dir.to_str().unwrap()]);
            if v.status.success() || !String::from_utf8_lossy(&v.stderr).contains(&file) {
                why.push("verify no longer reports the edit".into());
            }
            if !why.is_empty() {
                failures.push(format!(
                    "{class} × {command}: {}\n    {}",
                    why.join(", "),
                    err.trim().replace('\n', "\n    ")
                ));
            }
        }
    }
    assert_eq!(runs, CLASSES.len() * COMMANDS.len());
    assert!(failures.is_empty(), "{} of {runs} runs not refused properly:\n{}", failures.len(), failures.join("\n"));
}

/// Recipients from the manifest: an `admin-1` entry with the attacker's
/// recipient. Before, the owner's next `rotate` re-encrypted every seed to it.
#[test]
fn an_admin_added_to_the_manifest_gets_nothing() {
    let base = Base::new();
    let case = base.case();
    tamper("manifest", &case.dir, &base.manifest(), &base.attacker);
    let scratch = tempfile::tempdir().unwrap();
    for command in ["rotate", "team add", "generate"] {
        let out = case.owner_command(command, scratch.path());
        assert_eq!(out.status.code(), Some(3), "{command}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mallory = Identity::load(&utf8(&base.attacker_key)).unwrap();
    for (path, (bytes, _)) in snapshot(&case.dir) {
        if path.ends_with(".age") {
            assert!(mallory.decrypt(&bytes).is_err(), "the attacker can read {path}");
        }
    }
}

/// Members from the record: a removed member flipped back to active by
/// restoring the older (validly signed) ownership record and signature.
#[test]
fn an_older_signed_ownership_record_does_not_bring_a_member_back() {
    let base = Base::new();
    let case = base.case();
    let old_record = std::fs::read(case.dir.join("governance/ownership.json")).unwrap();
    let old_sig = std::fs::read(case.dir.join("governance/ownership.sig")).unwrap();
    let d = case.dir.to_str().unwrap().to_string();
    let k = case.owner.to_str().unwrap().to_string();
    ok(case.run(&["team", "remove", "--id", "github:bob", "--dir", &d, "--identity", &k]));
    std::fs::write(case.dir.join("governance/ownership.json"), &old_record).unwrap();
    std::fs::write(case.dir.join("governance/ownership.sig"), &old_sig).unwrap();
    let before = snapshot(&case.dir);
    let out = bin_pinned(&case.pins).args(generate_args(&example(), &case.dir, &case.owner)).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("ownership.json: is not the ownership record the last signed audit entry"), "{err}");
    assert_eq!(snapshot(&case.dir), before);
    // Both files verify on their own (the signature is genuine): only the chain's commitment catches it.
    let v = case.run(&["verify", &d]);
    let verr = String::from_utf8_lossy(&v.stderr);
    assert!(!verr.contains("signature does not verify") && !verr.contains("state_hash"), "{verr}");
}

/// A rollback in git (an older checkout of the whole store) is refused,
/// naming both heads; `verify` says so too.
#[test]
fn a_rolled_back_store_is_refused_naming_both_heads() {
    let base = Base::new();
    let case = base.case();
    let old = case._tmp.path().join("old");
    cp(&case.dir, &old);
    let d = case.dir.to_str().unwrap().to_string();
    let k = case.owner.to_str().unwrap().to_string();
    ok(case.run(&["rotate", "user", "audio-service", "--dir", &d, "--identity", &k]));
    let pins: Value = serde_json::from_slice(&std::fs::read(&case.pins).unwrap()).unwrap();
    let pin = pins["orgs"].as_object().unwrap().values().next().unwrap().clone();
    let seen = pin["head_seq"].as_u64().unwrap();
    std::fs::remove_dir_all(&case.dir).unwrap();
    cp(&old, &case.dir);
    let before = snapshot(&case.dir);
    let out = bin_pinned(&case.pins).args(generate_args(&example(), &case.dir, &case.owner)).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains(&format!("ends at seq {}", seen - 1)), "{err}");
    assert!(err.contains(&format!("last saw seq {seen} ({})", pin["head_hash"].as_str().unwrap())), "{err}");
    assert!(err.contains("rolled back"), "{err}");
    assert_eq!(snapshot(&case.dir), before);
    let v = case.run(&["verify", &d]);
    assert!(!v.status.success() && String::from_utf8_lossy(&v.stderr).contains("rolled back"));
    // A fork (the old store changed another way than the pinned one) is refused too.
    let fork = case._tmp.path().join("fork-pins.json");
    cp(&base.pins, &fork);
    ok(bin_pinned(&fork).args(["rotate", "user", "video-service", "--dir", &d, "--identity", &k]).output().unwrap());
    let out = bin_pinned(&case.pins).args(generate_args(&example(), &case.dir, &case.owner)).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("forks from what this machine last saw"), "{err}");
}

/// A machine without a pin trusts no store until it is adopted explicitly
/// with its operator key; a store rebuilt under another operator is refused.
#[test]
fn stores_are_adopted_explicitly_and_a_replaced_operator_is_refused() {
    let base = Base::new();
    let case = base.case();
    let d = case.dir.to_str().unwrap().to_string();
    let operator = base.manifest().operator.public_key;
    let fresh = case._tmp.path().join("new-machine-pins.json");
    let out = bin_pinned(&fresh).args(generate_args(&example(), &case.dir, &case.owner)).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("is not pinned on this machine"), "{err}");
    assert!(err.contains(&format!("clan-nats trust --dir {d} --operator {operator}")), "{err}");
    // The wrong key is refused, the right one pins the store, then commands work.
    let other = nkeys::KeyPair::new_operator().public_key();
    let out = bin_pinned(&fresh).args(["trust", "--dir", &d, "--operator", &other]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!fresh.exists(), "nothing is pinned for a wrong key");
    ok(bin_pinned(&fresh).args(["trust", "--dir", &d, "--operator", &operator]).output().unwrap());
    ok(bin_pinned(&fresh).args(generate_args(&example(), &case.dir, &case.owner)).output().unwrap());
    let v = ok(bin_pinned(&fresh).args(["verify", &d]).output().unwrap());
    assert!(String::from_utf8_lossy(&v.stdout).contains("pinned on this machine"));

    // The attacker rebuilds the store under an operator of their own, with every seed
    // also encrypted to the owner's public recipient, and keeps the organization id.
    let evil = case._tmp.path().join("evil");
    let (mallory_key, _) = key(case._tmp.path(), "mallory2");
    let evil_pins = case._tmp.path().join("mallory-pins.json");
    let owner_recipient = base.manifest().recipients["owner"].clone();
    ok(bin_pinned(&evil_pins)
        .args(generate_args(&example(), &evil, &mallory_key))
        .args(["--recipient", &owner_recipient])
        .output()
        .unwrap());
    let org_id = |dir: &Path| -> String {
        let v: Value = serde_json::from_slice(&std::fs::read(dir.join("governance/ownership.json")).unwrap()).unwrap();
        v["org_id"].as_str().unwrap().to_string()
    };
    let real_org = org_id(&case.dir);
    std::fs::remove_dir_all(&case.dir).unwrap();
    cp(&evil, &case.dir);
    // With its own organization id: not pinned, refused.
    let out = bin_pinned(&case.pins).args(generate_args(&example(), &case.dir, &case.owner)).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not pinned on this machine"));
    // With the real organization's id: the pinned operator does not match.
    edit_json(&case.dir.join("governance/ownership.json"), |v| v["org_id"] = real_org.clone().into());
    let before = snapshot(&case.dir);
    let out = bin_pinned(&case.pins).args(generate_args(&example(), &case.dir, &case.owner)).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains(&format!("pinned organization {real_org} to operator {operator}")), "{err}");
    assert_eq!(snapshot(&case.dir), before);
    // verify against the pin (or an operator given by a host) rejects it as well.
    let v = case.run(&["verify", &d]);
    assert!(String::from_utf8_lossy(&v.stderr).contains(&format!("not the trusted operator {operator}")));
    let v = bin_pinned(&fresh).args(["verify", &d, "--operator", &operator]).output().unwrap();
    assert!(!v.status.success());
}

/// Key substitution: an attacker-known account signing seed, encrypted to the
/// owner's public recipient, put in the keystore and named in the manifest.
/// Before, the owner's next `generate` adopted it and re-signed the account, so
/// the attacker could mint users. Now it is refused, and a real nats-server
/// refuses the minted user.
#[test]
fn a_substituted_signing_key_is_never_adopted_and_minted_users_are_refused() {
    use clan_nats::jwt::{creds, UserClaims, UserNats};
    let base = Base::new();
    let case = base.case();
    let m = base.manifest();
    let core = m.account("core").unwrap().clone();
    let evil = nkeys::KeyPair::new_account();
    let owner = vault::parse_recipient(&m.recipients["owner"]).unwrap();
    let ct = vault::encrypt(evil.seed().unwrap().as_bytes(), &[&owner]).unwrap();
    let path = clan_nats::store::key_path(&evil.public_key());
    std::fs::create_dir_all(case.dir.join(&path).parent().unwrap()).unwrap();
    std::fs::write(case.dir.join(&path), &ct).unwrap();
    edit_json(&case.dir.join("manifest.json"), |v| {
        let keys = v["keys"].as_array_mut().unwrap();
        let k = keys.iter_mut().find(|k| k["role"] == "account-signing" && k["account"] == "core").unwrap();
        let old_path = k["path"].as_str().unwrap().to_string();
        k["public_key"] = evil.public_key().into();
        k["path"] = path.clone().into();
        let entry = v["secrets"][&old_path].clone();
        v["secrets"][&path] = entry;
        v["files"][&path] = clan_nats::manifest::file_digest(&ct).into();
    });
    let before = snapshot(&case.dir);
    let out = bin_pinned(&case.pins).args(generate_args(&example(), &case.dir, &case.owner)).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("manifest.json: is not the manifest the last signed audit entry"), "{err}");
    assert_eq!(snapshot(&case.dir), before, "nothing re-signed with the attacker's key");
    let account_jwt = std::fs::read_to_string(case.dir.join(&core.jwt)).unwrap();
    assert!(!account_jwt.contains(&evil.public_key()));
    let claims = clan_nats::jwt::AccountClaims::decode(&account_jwt).unwrap();
    assert!(!claims.signing_key_ids().contains(&evil.public_key()));

    // The attacker mints `pub/sub >` for core with their key: a real server refuses it.
    let victim = nkeys::KeyPair::new_user();
    let mut nats = UserNats { issuer_account: core.public_key.clone(), ..Default::default() };
    nats.permissions.publish.allow = vec![">".into()];
    nats.permissions.subscribe.allow = vec![">".into()];
    let jwt = UserClaims::new(victim.public_key(), "minted", nats).encode(&evil, 1_800_000_000).unwrap();
    let minted = creds::format(&jwt, &victim.seed().unwrap()).unwrap();
    let server = NatsServer::start(&case.dir.join("server/nats-server.conf"), case._tmp.path());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let refused = rt.block_on(async {
        async_nats::ConnectOptions::with_credentials(&minted).unwrap().max_reconnects(1).connect(server.url()).await
    });
    assert!(refused.is_err(), "the server accepted a user minted with the substituted key");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !server.log_text().contains("authentication error") {
        assert!(std::time::Instant::now() < deadline, "{}", server.log_text());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The store's own creds still connect.
    let id = Identity::load(&utf8(&case.owner)).unwrap();
    let user = core.users.iter().find(|u| u.name == "person-service").unwrap();
    let own = String::from_utf8(id.decrypt(&std::fs::read(case.dir.join(&user.creds)).unwrap()).unwrap()).unwrap();
    let client = rt.block_on(async {
        async_nats::ConnectOptions::with_credentials(&own).unwrap().max_reconnects(1).connect(server.url()).await
    });
    assert!(client.is_ok(), "{:?}", client.err());
}

/// A deliberate `--config` change of who can decrypt is shown and needs `--yes`.
#[test]
fn a_config_that_changes_recipients_needs_confirmation() {
    let base = Base::new();
    let case = base.case();
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(example()).unwrap()).unwrap();
    cfg["hosts"][0]["age_recipient"] = base.attacker.clone().into();
    let host = cfg["hosts"][0]["name"].as_str().unwrap().to_string();
    let path = case._tmp.path().join("changed.json");
    std::fs::write(&path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let before = snapshot(&case.dir);
    let out = bin_pinned(&case.pins).args(generate_args(&path, &case.dir, &case.owner)).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("hosts {host:?}: age_recipient")) && err.contains(&base.attacker), "{err}");
    assert!(err.contains("pass --yes to confirm"), "{err}");
    assert_eq!(snapshot(&case.dir), before);
    let out =
        ok(bin_pinned(&case.pins).args(generate_args(&path, &case.dir, &case.owner)).arg("--yes").output().unwrap());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("hosts {host:?}: age_recipient")));
    let m: Manifest = Manifest::read_dir(&case.dir).unwrap();
    assert_eq!(m.recipients[&format!("host:{host}")], base.attacker);
    // The same config again is no change: no question.
    ok(bin_pinned(&case.pins).args(generate_args(&path, &case.dir, &case.owner)).output().unwrap());
}

/// An identity file another user owns is refused, as ssh refuses one (root
/// only: it chowns a file; the Nix build excludes it by name).
#[test]
fn an_identity_owned_by_another_user_is_refused() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root: it chowns a file to another user");
    let tmp = tempfile::tempdir().unwrap();
    let (k, _) = key(tmp.path(), "planted");
    std::os::unix::fs::chown(&k, Some(65534), Some(65534)).unwrap();
    let dir = tmp.path().join("store");
    let out = try_generate(&example(), &dir, &k, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("owned by uid 65534, not by you (uid 0)"), "{err}");
    assert!(!dir.exists());
}

/// Group-readable identities are refused with the fix named; the identity in
/// use is always named.
#[test]
fn a_group_readable_identity_is_refused_and_the_identity_is_named() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let (k, recipient) = key(tmp.path(), "owner");
    let dir = tmp.path().join("store");
    let out = ok(try_generate(&example(), &dir, &k, &[]));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("identity {} ({recipient})", k.display())));
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o640)).unwrap();
    let before = snapshot(&dir);
    let out = try_generate(&example(), &dir, &k, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("accessible by group or others (mode 0640)") && err.contains("chmod 600"), "{err}");
    assert_eq!(snapshot(&dir), before);
}

/// Temporary trees beside DIR that are not this user's are skipped, not a
/// reason to fail (root only: it chowns a directory).
#[test]
fn foreign_leftovers_beside_the_store_are_left_alone() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root: it chowns a directory to another user");
    let tmp = tempfile::tempdir().unwrap();
    let (dir, k) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    generate(&example(), &dir, &k);
    let foreign = tmp.path().join(".store.clan-nats-planted");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("x"), "not ours").unwrap();
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
    let ours = tmp.path().join(".store.clan-nats-killed");
    std::fs::create_dir(&ours).unwrap();
    ok(run(&["rotate", "user", "audio-service", "--dir", dir.to_str().unwrap(), "--identity", k.to_str().unwrap()]));
    assert!(foreign.join("x").exists(), "another user's directory was touched");
    assert!(!ours.exists(), "our own leftover is still removed");
}

/// An interrupted `export-nsc` leaves no plaintext: SIGINT and SIGTERM remove
/// it before exiting; what a SIGKILL leaves is removed by the next export, which says so.
#[test]
fn an_interrupted_export_leaves_no_plaintext() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, k, config) = (tmp.path().join("store"), tmp.path().join("owner.key"), tmp.path().join("big.json"));
    // Enough services that writing the export takes a while.
    let mut v: Value = serde_json::from_slice(&std::fs::read(example()).unwrap()).unwrap();
    let people: Vec<Value> = (0..600)
        .map(|i| serde_json::json!({"name": format!("s{i}-service"), "organizational_unit": "Core", "role": "Service"}))
        .collect();
    v["service_people"] = people.into();
    v["hosts"] = serde_json::json!([]);
    std::fs::write(&config, serde_json::to_vec(&v).unwrap()).unwrap();
    generate(&config, &dir, &k);
    let out_parent = tmp.path().join("exports");
    std::fs::create_dir(&out_parent).unwrap();
    let leftovers = || -> Vec<String> {
        std::fs::read_dir(&out_parent)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".clan-nats-export-"))
            .collect()
    };
    // Start an export and signal it as soon as its temporary directory appears.
    let interrupt = |signal: &str, to: &Path| -> Option<std::process::ExitStatus> {
        let mut child = bin()
            .args(["export-nsc", "--dir", dir.to_str().unwrap(), "--identity", k.to_str().unwrap()])
            .arg("--to")
            .arg(to)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while leftovers().is_empty() {
            if child.try_wait().unwrap().is_some() {
                return None; // finished before it could be caught
            }
            assert!(std::time::Instant::now() < deadline, "no export started");
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        assert!(Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap().success());
        Some(child.wait().unwrap())
    };
    let mut tried = 0;
    let mut caught = BTreeMap::new();
    for signal in ["-INT", "-TERM", "-KILL"] {
        loop {
            tried += 1;
            assert!(tried < 40, "could not interrupt an export in 40 tries");
            let to = out_parent.join(format!("x{tried}"));
            match interrupt(signal, &to) {
                None => {
                    std::fs::remove_dir_all(&to).unwrap();
                    continue;
                }
                Some(status) => {
                    caught.insert(signal, status);
                    assert!(!to.exists(), "{signal}: an interrupted export must not be in place");
                    break;
                }
            }
        }
        if signal != "-KILL" {
            use std::os::unix::process::ExitStatusExt;
            let st = caught[signal];
            let code = st.code().or(st.signal().map(|s| 128 + s)).unwrap();
            assert!(code == 130 || code == 143, "{signal}: exit {st:?}");
            assert_eq!(leftovers(), Vec::<String>::new(), "{signal} left plaintext behind");
        }
    }
    // SIGKILL cannot be handled: the plaintext stays until the next export, which removes it and says so.
    let stale = leftovers();
    assert_eq!(stale.len(), 1, "{stale:?}");
    let to = out_parent.join("final");
    let out = ok(run(&[
        "export-nsc",
        "--dir",
        dir.to_str().unwrap(),
        "--identity",
        k.to_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&stale[0]) && err.contains("plaintext left by an interrupted export"), "{err}");
    assert!(leftovers().is_empty());
    assert!(to.join("keys/.gitignore").exists());
}

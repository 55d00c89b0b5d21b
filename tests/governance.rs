//! Governance: roles enforced by cryptography. The owner signs; a specialist
//! reads only its units' creds and can change nothing; tampering is detected.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clan_nats::governance::{AuditLog, Ownership, OwnershipSig};
use clan_nats::manifest::Manifest;
use clan_nats::vault::Identity;
use common::*;
use serde_json::Value;

struct Org {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    owner: PathBuf,
}

impl Org {
    fn new() -> Org {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, owner) = (tmp.path().join("store"), tmp.path().join("owner.key"));
        generate(&example(), &dir, &owner);
        Org { tmp, dir, owner }
    }

    fn key(&self, name: &str) -> (PathBuf, String) {
        let p = self.tmp.path().join(format!("{name}.key"));
        let (id, _) = Identity::load_or_create(&utf8(&p)).unwrap();
        (p, id.recipients[0].clone())
    }

    fn cli(&self, args: &[&str], identity: &Path) -> Output {
        let mut all = args.to_vec();
        all.extend(["--dir", self.dir.to_str().unwrap(), "--identity", identity.to_str().unwrap()]);
        run(&all)
    }

    fn manifest(&self) -> Manifest {
        Manifest::read_dir(&self.dir).unwrap()
    }

    fn add_bob(&self) -> PathBuf {
        let (bob, recipient) = self.key("bob");
        let out = self.cli(
            &["team", "add", "--id", "github:bob", "--name", "Bob", "--recipient", &recipient, "--units", "Media"],
            &self.owner,
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        bob
    }

    fn verify_problems(&self, identity: Option<&Path>) -> String {
        let mut args = vec!["verify", self.dir.to_str().unwrap()];
        if let Some(i) = identity {
            args.extend(["--identity", i.to_str().unwrap()]);
        }
        let out = run(&args);
        if out.status.success() {
            String::new()
        } else {
            String::from_utf8_lossy(&out.stderr).into_owned()
        }
    }

    fn copy(&self, name: &str) -> Org {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(name);
        assert!(Command::new("cp").arg("-a").arg(&self.dir).arg(&dir).status().unwrap().success());
        std::fs::copy(&self.owner, tmp.path().join("owner.key")).unwrap();
        Org { dir, owner: tmp.path().join("owner.key"), tmp }
    }
}

fn decrypts(identity: &Path, file: &Path) -> bool {
    Identity::load(&utf8(identity)).unwrap().decrypt(&std::fs::read(file).unwrap()).is_ok()
}

fn info_role(org: &Org, identity: Option<&Path>) -> String {
    let mut args = vec!["--json", "info", "--dir", org.dir.to_str().unwrap()];
    if let Some(i) = identity {
        args.extend(["--identity", i.to_str().unwrap()]);
    }
    let out = run(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["app_name"], "clan-nats");
    assert_eq!(v["app_release"], env!("CARGO_PKG_VERSION"));
    v["user_role"].as_str().unwrap().to_string()
}

#[test]
fn generate_creates_a_signed_governance_record() {
    let org = Org::new();
    let o = Ownership::parse(&std::fs::read(org.dir.join("governance/ownership.json")).unwrap()).unwrap();
    assert_eq!(o.owner_id, "github:example-owner");
    assert_eq!(o.owner_name, "Example Owner");
    assert_eq!(o.owner_recipient, Identity::load(&utf8(&org.owner)).unwrap().recipients[0]);
    assert!(uuid::Uuid::parse_str(&o.org_id).is_ok());
    let sig = OwnershipSig::parse(&std::fs::read(org.dir.join("governance/ownership.sig")).unwrap()).unwrap();
    assert_eq!(sig.signing_key, org.manifest().operator.public_key);
    let log = AuditLog::parse(&std::fs::read(org.dir.join("governance/audit.jsonl")).unwrap()).unwrap();
    let actions: Vec<&str> = log.entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["init", "generate"]);
    assert_eq!(org.verify_problems(Some(&org.owner)), "");
    // A no-change re-run appends nothing.
    generate(&example(), &org.dir, &org.owner);
    assert_eq!(AuditLog::parse(&std::fs::read(org.dir.join("governance/audit.jsonl")).unwrap()).unwrap(), log);
}

#[test]
fn init_then_generate_uses_the_initialised_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("alice.key"));
    let out = run(&[
        "init",
        "--dir",
        dir.to_str().unwrap(),
        "--owner-id",
        "github:alice",
        "--owner-name",
        "Alice",
        "--identity",
        key.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("created owner identity"));
    let op = Manifest::read_dir(&dir).unwrap().operator.public_key;
    let v = run(&["verify", dir.to_str().unwrap(), "--identity", key.to_str().unwrap()]);
    assert!(v.status.success(), "an initialised store verifies: {}", String::from_utf8_lossy(&v.stderr));
    generate(&example(), &dir, &key);
    let m = Manifest::read_dir(&dir).unwrap();
    assert_eq!(m.operator.public_key, op, "generate adopts the operator key made by init");
    let o = Ownership::parse(&std::fs::read(dir.join("governance/ownership.json")).unwrap()).unwrap();
    assert_eq!(o.owner_id, "github:alice");
    let v = run(&["verify", dir.to_str().unwrap(), "--identity", key.to_str().unwrap()]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    // init refuses a non-empty directory.
    let again = run(&[
        "init",
        "--dir",
        dir.to_str().unwrap(),
        "--owner-id",
        "x",
        "--owner-name",
        "x",
        "--identity",
        key.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn a_specialist_reads_exactly_its_units_creds() {
    let org = Org::new();
    let bob = org.add_bob();
    let m = org.manifest();
    let mut read = 0;
    for (path, secret) in &m.secrets {
        let media = path.contains("/accounts/media/users/");
        assert_eq!(decrypts(&bob, &org.dir.join(path)), media, "{path}");
        assert_eq!(secret.recipients.contains(&"specialist:github:bob".to_string()), media, "{path}");
        read += usize::from(media);
    }
    assert_eq!(read, 3, "audio, document and video");
    assert!(!m.keys.iter().any(|k| decrypts(&bob, &org.dir.join(&k.path))), "never a seed");
    assert_eq!(org.verify_problems(Some(&org.owner)), "");
    assert_eq!(info_role(&org, Some(&bob)), "specialist");
    assert_eq!(info_role(&org, Some(&org.owner)), "master");
    assert_eq!(info_role(&org, None), "none");
    let (stranger, _) = org.key("stranger");
    assert_eq!(info_role(&org, Some(&stranger)), "none");
}

#[test]
fn a_specialist_can_change_nothing() {
    let org = Org::new();
    let bob = org.add_bob();
    let before = snapshot(&org.dir);
    let (_, carol) = org.key("carol");
    let denied = |out: Output, what: &str| {
        assert_eq!(out.status.code(), Some(3), "{what}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(snapshot(&org.dir), before, "{what} changed the store");
    };
    denied(
        org.cli(
            &["team", "add", "--id", "github:carol", "--name", "Carol", "--recipient", &carol, "--units", "Core"],
            &bob,
        ),
        "team add",
    );
    denied(org.cli(&["team", "remove", "--id", "github:bob"], &bob), "team remove");
    let out = org.cli(&["vault", "request-key", "operator"], &bob);
    assert!(String::from_utf8_lossy(&out.stderr).contains("operation requires master role"));
    denied(out, "request-key");
    denied(org.cli(&["vault", "request-key", "user:audio-service"], &bob), "request-key of its own service");
    denied(org.cli(&["rotate", "user", "audio-service"], &bob), "rotate");
    denied(try_generate(&example(), &org.dir, &bob, &[]), "generate");

    // Forging the ownership record by hand: bob makes himself owner and re-hashes it.
    let path = org.dir.join("governance/ownership.json");
    let mut o = Ownership::parse(&std::fs::read(&path).unwrap()).unwrap();
    o.owner_recipient = Identity::load(&utf8(&bob)).unwrap().recipients[0].clone();
    o.signed_hash = o.compute_hash();
    std::fs::write(&path, o.to_bytes()).unwrap();
    let problems = org.verify_problems(None);
    assert!(problems.contains("ownership.sig: state_hash is not the hash of ownership.json"), "{problems}");
    // `info` does not show a forged record as if it were the owner's: it refuses it (exit 3).
    let out = run(&["--json", "info", "--dir", org.dir.to_str().unwrap(), "--identity", bob.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "an edited file does not make a master: {err}");
    assert!(err.contains("ownership.sig: state_hash is not the hash of ownership.json"), "{err}");
    // Nothing is shown from an untrusted store: --json prints the error only.
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON error");
    assert_eq!(v.as_object().unwrap().keys().collect::<Vec<_>>(), ["error"], "{v}");
    assert_eq!(v["error"]["kind"], "untrusted");
}

#[test]
fn tampering_is_detected() {
    let org = Org::new();
    org.add_bob();
    let audit = |o: &Org| o.dir.join("governance/audit.jsonl");
    let lines =
        |o: &Org| -> Vec<String> { std::fs::read_to_string(audit(o)).unwrap().lines().map(str::to_string).collect() };
    let write = |o: &Org, l: &[String]| std::fs::write(audit(o), l.join("\n") + "\n").unwrap();
    assert!(lines(&org).len() >= 3);

    let t = org.copy("edited");
    let mut l = lines(&t);
    l[1] = l[1].replace("\"generate\"", "\"gen3rate\"");
    write(&t, &l);
    assert!(t.verify_problems(None).contains("line 2: hash does not match"));

    let t = org.copy("deleted");
    let mut l = lines(&t);
    l.remove(1);
    write(&t, &l);
    assert!(t.verify_problems(None).contains("out of order"));

    let t = org.copy("reordered");
    let mut l = lines(&t);
    l.swap(1, 2);
    write(&t, &l);
    assert!(t.verify_problems(None).contains("out of order"));

    let t = org.copy("inserted");
    let mut l = lines(&t);
    let dup = l[1].clone();
    l.insert(2, dup);
    write(&t, &l);
    assert!(!t.verify_problems(None).is_empty());

    let t = org.copy("ownership");
    let p = t.dir.join("governance/ownership.json");
    let text = std::fs::read_to_string(&p).unwrap().replace("Example Owner", "Mallory");
    std::fs::write(&p, text).unwrap();
    assert!(t.verify_problems(None).contains("signed_hash"));

    // A record re-signed with another operator key.
    let t = org.copy("othersig");
    let p = t.dir.join("governance/ownership.json");
    let o = Ownership::parse(&std::fs::read(&p).unwrap()).unwrap();
    let forged = OwnershipSig::sign(&o, &nkeys::KeyPair::new_operator(), 1);
    std::fs::write(t.dir.join("governance/ownership.sig"), forged.to_bytes()).unwrap();
    assert!(t.verify_problems(None).contains("not by the operator identity key"));

    // A creds file re-encrypted to one extra recipient (with the reference age CLI),
    // its sha256 even updated in the manifest.
    let t = org.copy("extra");
    let creds = "nsc/stores/thecowboyai/accounts/core/users/person-service.creds.age";
    let plain = Identity::load(&utf8(&t.owner)).unwrap().decrypt(&std::fs::read(t.dir.join(creds)).unwrap()).unwrap();
    let m = t.manifest();
    let mut args: Vec<String> = vec!["-e".into()];
    for name in &m.secrets[creds].recipients {
        args.extend(["-r".into(), m.recipients[name].clone()]);
    }
    let (_, mallory) = t.key("mallory");
    args.extend(["-r".into(), mallory, "-o".into(), t.dir.join(creds).to_str().unwrap().into()]);
    let mut child = Command::new(require("age")).args(&args).stdin(std::process::Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &plain).unwrap();
    assert!(child.wait().unwrap().success());
    let mp = t.dir.join("manifest.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&mp).unwrap()).unwrap();
    v["files"][creds] =
        format!("sha256:{}", clan_nats::manifest::sha256_hex(&std::fs::read(t.dir.join(creds)).unwrap())).into();
    std::fs::write(&mp, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    let problems = t.verify_problems(None);
    assert!(problems.contains("person-service.creds.age: encrypted to 2 X25519 + 2 ssh-ed25519"), "{problems}");
    assert!(problems.contains("is not the manifest the last signed audit entry (seq 3) commits to"), "{problems}");

    assert_eq!(org.verify_problems(Some(&org.owner)), "", "the original is intact");
}

#[test]
fn team_remove_takes_the_member_out_of_every_file() {
    let org = Org::new();
    let bob = org.add_bob();
    let audio = org
        .manifest()
        .accounts
        .iter()
        .flat_map(|a| &a.users)
        .find(|u| u.name == "audio-service")
        .unwrap()
        .public_key
        .clone();
    let out = run(&[
        "--json",
        "team",
        "remove",
        "--id",
        "github:bob",
        "--rotate",
        "--dir",
        org.dir.to_str().unwrap(),
        "--identity",
        org.owner.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["could_read"], serde_json::json!(["audio-service", "document-service", "video-service"]));
    assert_eq!(v["rotated"], v["could_read"]);
    let m = org.manifest();
    assert!(!m.recipients.contains_key("specialist:github:bob"));
    for path in m.secrets.keys() {
        assert!(!decrypts(&bob, &org.dir.join(path)), "{path} still readable by the removed member");
        assert!(!m.secrets[path].recipients.iter().any(|r| r.contains("bob")));
    }
    let new_audio =
        m.accounts.iter().flat_map(|a| &a.users).find(|u| u.name == "audio-service").unwrap().public_key.clone();
    assert_ne!(new_audio, audio, "--rotate gave audio-service a new key");
    // All three keys in one write: the log ends with the removal and one rotation.
    let log = AuditLog::parse(&std::fs::read(org.dir.join("governance/audit.jsonl")).unwrap()).unwrap();
    let actions: Vec<&str> = log.entries.iter().rev().take(2).map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["rotate", "team-remove"]);
    let old_keys = m.accounts.iter().find(|a| a.name == "media").unwrap();
    let jwt = std::fs::read_to_string(org.dir.join(&old_keys.jwt)).unwrap();
    let payload = jwt.trim().split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&data_encoding::BASE64URL_NOPAD.decode(payload.as_bytes()).unwrap()).unwrap();
    assert!(claims["nats"]["revocations"].as_object().unwrap().contains_key(&audio), "the old key is revoked");
    let list = run(&["--json", "team", "list", "--dir", org.dir.to_str().unwrap()]);
    let members: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(members[0]["id"], "github:bob");
    assert_eq!(members[0]["active"], false, "kept in the history, inactive");
    assert_eq!(info_role(&org, Some(&bob)), "none");
    assert_eq!(org.verify_problems(Some(&org.owner)), "");
}

#[test]
fn the_owner_can_request_a_key_and_it_is_audited() {
    let org = Org::new();
    let out = org.cli(&["vault", "request-key", "account:core"], &org.owner);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seed = String::from_utf8(out.stdout).unwrap();
    let kp = nkeys::KeyPair::from_seed(seed.trim()).unwrap();
    assert_eq!(kp.public_key(), org.manifest().account("core").unwrap().public_key);
    let log = AuditLog::parse(&std::fs::read(org.dir.join("governance/audit.jsonl")).unwrap()).unwrap();
    assert_eq!(log.entries.last().unwrap().action, "key-export");
    assert_eq!(org.verify_problems(Some(&org.owner)), "");
    let status = run(&["vault", "status", "--dir", org.dir.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.lines().any(|l| l.contains("person-service.creds.age") && l.contains("host:core1,host:nats1,owner (")),
        "{text}"
    );
}

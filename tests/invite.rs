//! Invite and join: a specialist joins without the owner handling their secret;
//! every bad request is refused with exit 3 and changes nothing.

mod common;

use std::path::{Path, PathBuf};

use clan_nats::manifest::Manifest;
use clan_nats::vault::Identity;
use common::*;
use serde_json::Value;

struct Org {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    owner: PathBuf,
}

fn org() -> Org {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, owner) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    generate(&example(), &dir, &owner);
    Org { tmp, dir, owner }
}

fn ok(args: &[&str]) -> Value {
    let out = run(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&out.stdout).into()))
}

impl Org {
    fn invite(&self, expires: &str) -> String {
        let v = ok(&[
            "--json",
            "team",
            "invite",
            "--id",
            "github:bob",
            "--name",
            "Bob",
            "--units",
            "Media",
            "--expires",
            expires,
            "--dir",
            self.dir.to_str().unwrap(),
            "--identity",
            self.owner.to_str().unwrap(),
        ]);
        v["token"].as_str().unwrap().to_string()
    }

    fn accept(&self, request: &str, fingerprint: &str) -> std::process::Output {
        run(&[
            "team",
            "accept",
            "--request",
            request,
            "--fingerprint",
            fingerprint,
            "--dir",
            self.dir.to_str().unwrap(),
            "--identity",
            self.owner.to_str().unwrap(),
        ])
    }

    fn bob(&self) -> PathBuf {
        self.tmp.path().join("bob.key")
    }
}

/// bob runs `team join` (with the global --json before the subcommand).
fn join(token: &str, key: &Path) -> (String, String) {
    let v = ok(&["--json", "team", "join", "--token", token, "--identity", key.to_str().unwrap()]);
    (v["request"].as_str().unwrap().to_string(), v["fingerprint"].as_str().unwrap().to_string())
}

fn rejected(
    org: &Org,
    out: std::process::Output,
    needle: &str,
    before: &std::collections::BTreeMap<String, (Vec<u8>, u32)>,
) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert_eq!(&snapshot(&org.dir), before, "a rejected request changed the store");
}

#[test]
fn invite_join_accept_then_the_specialist_reads_its_units() {
    use std::os::unix::fs::PermissionsExt;
    let org = org();
    let token = org.invite("72h");
    let out = run(&["team", "join", "--token", &token, "--identity", org.bob().to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let operator = Manifest::read_dir(&org.dir).unwrap().operator.public_key;
    assert!(
        text.contains(&format!("signed by operator {operator}")),
        "the operator key is shown for an out-of-band check: {text}"
    );
    assert!(text.contains("created your identity"));
    assert_eq!(std::fs::metadata(org.bob()).unwrap().permissions().mode() & 0o777, 0o600);
    let request = text.lines().last().unwrap().to_string();
    let fingerprint = text
        .lines()
        .find_map(|l| l.strip_prefix("your fingerprint: "))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();

    let out = org.accept(&request, &fingerprint.to_lowercase());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m = Manifest::read_dir(&org.dir).unwrap();
    let bob = Identity::load(&utf8(&org.bob())).unwrap();
    assert_eq!(m.recipients["specialist:github:bob"], bob.recipients[0]);
    for path in m.secrets.keys() {
        let readable = bob.decrypt(&std::fs::read(org.dir.join(path)).unwrap()).is_ok();
        assert_eq!(readable, path.contains("/accounts/media/users/"), "{path}");
    }
    let log = std::fs::read_to_string(org.dir.join("governance/audit.jsonl")).unwrap();
    assert!(log.contains("\"team-invite\"") && log.contains("\"team-accept\""));
    let v = run(&["verify", org.dir.to_str().unwrap(), "--identity", org.owner.to_str().unwrap()]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
}

#[test]
fn a_reused_token_is_rejected() {
    let org = org();
    let (request, fp) = join(&org.invite("72h"), &org.bob());
    assert!(org.accept(&request, &fp).status.success());
    let before = snapshot(&org.dir);
    rejected(&org, org.accept(&request, &fp), "the token was used before", &before);
}

#[test]
fn an_expired_token_is_rejected() {
    let org = org();
    let token = org.invite("1s");
    let (request, fp) = join(&token, &org.bob());
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let before = snapshot(&org.dir);
    rejected(&org, org.accept(&request, &fp), "expired", &before);
    let out =
        run(&["team", "join", "--token", &token, "--identity", org.tmp.path().join("late.key").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expired"));
    assert!(!org.tmp.path().join("late.key").exists(), "no identity is made for a dead token");
}

#[test]
fn a_token_from_another_organization_is_rejected() {
    let ours = org();
    let theirs = org();
    let (request, fp) = join(&theirs.invite("72h"), &ours.bob());
    let before = snapshot(&ours.dir);
    rejected(&ours, ours.accept(&request, &fp), "another organization", &before);
}

#[test]
fn a_tampered_token_is_rejected() {
    let org = org();
    let token = org.invite("72h");
    // Widen the units in the signed body: Media -> Core.
    let body = token.trim_start_matches("clan-nats-invite.v1.").split('.').next().unwrap().to_string();
    let json = data_encoding::BASE64URL_NOPAD.decode(body.as_bytes()).unwrap();
    let forged_json = String::from_utf8(json).unwrap().replace("Media", "Core");
    let forged = token.replace(&body, &data_encoding::BASE64URL_NOPAD.encode(forged_json.as_bytes()));
    let out = run(&["team", "join", "--token", &forged, "--identity", org.bob().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("signature does not verify"));
    // A request built around the forged token by hand is refused by accept too.
    let bob = Identity::load_or_create(&utf8(&org.bob())).unwrap().0;
    let request =
        clan_nats::governance::invite::JoinRequest { token: forged, recipient: bob.recipients[0].clone() }.encode();
    let fp = clan_nats::governance::invite::fingerprint(&bob.recipients[0]);
    let before = snapshot(&org.dir);
    rejected(&org, org.accept(&request, &fp), "signature does not verify", &before);
}

#[test]
fn a_wrong_fingerprint_is_rejected() {
    let org = org();
    let (request, _) = join(&org.invite("72h"), &org.bob());
    let before = snapshot(&org.dir);
    rejected(&org, org.accept(&request, "AAAA-BBBB-CCCC-DDDD"), "fingerprint was not confirmed", &before);
    // Without --fingerprint and without a terminal, accept refuses instead of guessing.
    let out = run(&[
        "team",
        "accept",
        "--request",
        &request,
        "--dir",
        org.dir.to_str().unwrap(),
        "--identity",
        org.owner.to_str().unwrap(),
    ]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --fingerprint"));
    assert_eq!(snapshot(&org.dir), before);
}

#[test]
fn only_the_owner_can_invite_or_accept() {
    let org = org();
    let (stranger, _) = Identity::load_or_create(&utf8(&org.tmp.path().join("stranger.key"))).unwrap();
    let before = snapshot(&org.dir);
    let out = run(&[
        "team",
        "invite",
        "--id",
        "x",
        "--name",
        "X",
        "--units",
        "Core",
        "--dir",
        org.dir.to_str().unwrap(),
        "--identity",
        stranger.path.as_str(),
    ]);
    rejected(&org, out, "operation requires master role", &before);
    let (request, fp) = join(&org.invite("72h"), &org.bob());
    let before = snapshot(&org.dir);
    let out = run(&[
        "team",
        "accept",
        "--request",
        &request,
        "--fingerprint",
        &fp,
        "--dir",
        org.dir.to_str().unwrap(),
        "--identity",
        stranger.path.as_str(),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(snapshot(&org.dir), before);
}

//! Inspecting a store (issue 13): `list`, `describe`, `vault status`, `info`,
//! and every command on a directory that holds no store.

mod common;

use std::path::Path;

use clan_nats::manifest::Manifest;
use common::*;
use serde_json::Value;

fn ok(o: std::process::Output) -> std::process::Output {
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    o
}

fn json(args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    serde_json::from_slice(&ok(run(&a)).stdout).expect("JSON")
}

fn manifest(dir: &Path) -> Manifest {
    Manifest::read_dir(dir).unwrap()
}

/// The claims of a JWT file, decoded here independently of the library.
fn claims(path: &Path) -> Value {
    use data_encoding::BASE64URL_NOPAD;
    let token = std::fs::read_to_string(path).unwrap();
    let payload = token.trim().split('.').nth(1).unwrap();
    serde_json::from_slice(&BASE64URL_NOPAD.decode(payload.as_bytes()).unwrap()).unwrap()
}

fn config_json() -> Value {
    serde_json::from_slice(&std::fs::read(example()).unwrap()).unwrap()
}

/// `list users|accounts|hosts` agree with the config and the manifest, in JSON
/// and text, and with every spelling of the store argument.
#[test]
fn list_shows_every_entity_of_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    generate(&example(), &dir, &key);
    let d = dir.to_str().unwrap();
    let cfg = config_json();

    let users = json(&["list", "users", "--dir", d]);
    let mut listed: Vec<&str> = users.as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap()).collect();
    listed.sort();
    let mut expected: Vec<&str> =
        cfg["service_people"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    expected.push("sys");
    expected.sort();
    assert_eq!(listed, expected);
    let audio = users.as_array().unwrap().iter().find(|u| u["name"] == "audio-service").unwrap();
    assert_eq!(audio["account"], "media");
    assert_eq!(audio["hosts"], serde_json::json!(["media1"]));
    let m = manifest(&dir);
    let key_in_manifest =
        &m.accounts.iter().flat_map(|a| &a.users).find(|u| u.name == "audio-service").unwrap().public_key;
    assert_eq!(audio["public_key"].as_str().unwrap(), key_in_manifest);

    let accounts = json(&["list", "accounts", "--dir", d]);
    let names: Vec<&str> = accounts.as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["SYS", "core", "development", "media"]);
    let core = &accounts[1];
    assert_eq!(core["users"], 5);
    assert_eq!(core["exports"], 2, "core's person stream is imported by two accounts");

    let hosts = json(&["list", "hosts", "--dir", d]);
    assert_eq!(hosts.as_array().unwrap().len(), cfg["hosts"].as_array().unwrap().len());
    let nats1 = hosts.as_array().unwrap().iter().find(|h| h["name"] == "nats1").unwrap();
    assert_eq!(nats1["nats_server"], true);
    assert_eq!(nats1["services"], serde_json::json!(["person-service"]));

    // Text: a header and one line per user; positional DIR and --out say the same.
    let text = String::from_utf8(ok(run(&["list", "users", d])).stdout).unwrap();
    assert!(text.starts_with("NAME\tACCOUNT\tUNIT\tPUBLIC KEY\tHOSTS\n"), "{text}");
    assert_eq!(text.lines().count(), expected.len() + 1);
    assert!(text.lines().any(|l| l.starts_with("audio-service\tmedia\tMedia\t")), "{text}");
    assert_eq!(ok(run(&["list", "users", "--out", d])).stdout, text.as_bytes());
    let flows = String::from_utf8(ok(run(&["list", "flows", "--dir", d])).stdout).unwrap();
    assert!(flows.contains("core") && flows.contains("media"), "{flows}");
}

/// `describe user` gives the JWT's permissions, limits, issue time and who can
/// read the creds; after a permission change it shows the new state.
#[test]
fn describe_user_matches_the_jwt_and_follows_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    generate(&example(), &dir, &key);
    let d = dir.to_str().unwrap();

    let v = json(&["describe", "user", "audio-service", "--dir", d]);
    let c = claims(&dir.join(v["jwt"].as_str().unwrap()));
    assert_eq!(v["public_key"], c["sub"]);
    assert_eq!(v["issuer"], c["iss"]);
    assert_eq!(v["permissions"]["publish"], c["nats"]["pub"]);
    assert_eq!(v["permissions"]["subscribe"], c["nats"]["sub"]);
    let publish: Vec<&str> =
        v["permissions"]["publish"]["allow"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert!(publish.contains(&"thecowboyai.media.audio.>"), "{publish:?}");
    assert_eq!(v["limits"]["payload"], 10485760);
    assert_eq!(v["limits"]["payload"], c["nats"]["payload"]);
    let readers: Vec<&str> = v["creds_readers"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert!(readers.contains(&"host:media1"), "{readers:?}");
    assert!(readers.iter().any(|r| r.starts_with("owner (")), "the owner by name: {readers:?}");
    let iat = v["issued_at"].as_str().unwrap().to_string();
    assert!(iat.ends_with('Z') && iat.len() == 20, "{iat}");

    // Text form carries the same values.
    let text = String::from_utf8(ok(run(&["describe", "user", "audio-service", d])).stdout).unwrap();
    assert!(text.contains("account: media\n"), "{text}");
    assert!(text.contains("  payload: 10485760\n"), "{text}");
    assert!(text.contains("  - host:media1\n"), "{text}");

    // Change audio-service's publish permission: describe shows it and a newer iat.
    let mut cfg = config_json();
    let p = cfg["service_people"].as_array_mut().unwrap().iter_mut().find(|p| p["name"] == "audio-service").unwrap();
    p["nats_permissions"]["publish"] = serde_json::json!(["thecowboyai.media.audio.v2.>"]);
    let edited = tmp.path().join("edited.json");
    std::fs::write(&edited, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    ok(try_generate(&edited, &dir, &key, &[]));
    let after = json(&["describe", "user", "audio-service", "--dir", d]);
    let allow: Vec<&str> =
        after["permissions"]["publish"]["allow"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert!(
        allow.contains(&"thecowboyai.media.audio.v2.>") && !allow.contains(&"thecowboyai.media.audio.>"),
        "{allow:?}"
    );
    assert!(after["issued_at"].as_str().unwrap() > iat.as_str(), "re-issued: {} > {iat}", after["issued_at"]);
    assert_eq!(after["public_key"], v["public_key"], "same key");
}

/// `describe account` shows keys, flows and the revocation of a removed user.
#[test]
fn describe_account_shows_keys_flows_and_revocations() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    generate(&example(), &dir, &key);
    let d = dir.to_str().unwrap();
    let before = json(&["describe", "account", "media", "--dir", d]);
    assert_eq!(before["revocations"], serde_json::json!([]));
    let roles: Vec<&str> = before["keys"].as_array().unwrap().iter().map(|k| k["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["account", "account-signing"], "{before}");
    assert!(before["keys"][0]["seed"].as_str().unwrap().ends_with(".nk.age"));
    assert_eq!(before["users"], serde_json::json!(["audio-service", "document-service", "video-service"]));
    assert_eq!(before["imports"].as_array().unwrap().len(), 1, "{before}");
    assert!(before["flows"][0].as_str().unwrap().contains("core → media"), "{before}");
    let old_key = json(&["describe", "user", "video-service", "--dir", d])["public_key"].as_str().unwrap().to_string();

    // Remove video-service from the config: its key shows up as revoked.
    let mut cfg = config_json();
    cfg["service_people"].as_array_mut().unwrap().retain(|p| p["name"] != "video-service");
    for h in cfg["hosts"].as_array_mut().unwrap() {
        if let Some(s) = h["services"].as_array_mut() {
            s.retain(|x| x != "video-service");
        }
    }
    let edited = tmp.path().join("edited.json");
    std::fs::write(&edited, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    ok(try_generate(&edited, &dir, &key, &["--yes"]));
    let after = json(&["describe", "account", "media", "--dir", d]);
    let revoked: Vec<&str> =
        after["revocations"].as_array().unwrap().iter().map(|r| r["public_key"].as_str().unwrap()).collect();
    assert_eq!(revoked, [old_key.as_str()]);
    assert_eq!(after["users"], serde_json::json!(["audio-service", "document-service"]));
    let text = String::from_utf8(ok(run(&["describe", "account", "media", "--dir", d])).stdout).unwrap();
    assert!(text.contains(&format!("revocations:\n  - public_key={old_key} revoked_before=")), "{text}");
}

/// A name that is not there: exit 2, the closest name and the known ones.
#[test]
fn describe_an_unknown_name_suggests_the_closest() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    generate(&example(), &dir, &key);
    let d = dir.to_str().unwrap();
    let o = run(&["describe", "user", "audio-servce", "--dir", d]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("no user named \"audio-servce\"") && err.contains("did you mean \"audio-service\"?"), "{err}");
    assert!(err.contains("known: ") && err.contains("video-service"), "{err}");
    let o = run(&["describe", "account", "Medai", "--dir", d]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("did you mean \"media\"?"), "{err}");
}

/// `vault status` names the entity of every secret, and its readers by name.
#[test]
fn vault_status_names_every_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    generate(&example(), &dir, &key);
    let d = dir.to_str().unwrap();
    let rows = json(&["vault", "status", "--dir", d]);
    let m = manifest(&dir);
    assert_eq!(rows.as_array().unwrap().len(), m.secrets.len());
    for r in rows.as_array().unwrap() {
        let entity = r["entity"].as_str().unwrap();
        let path = r["path"].as_str().unwrap();
        assert_ne!(entity, r["kind"].as_str().unwrap(), "{path} has no entity name");
        if path.ends_with(".creds.age") {
            let user = path.rsplit('/').next().unwrap().trim_end_matches(".creds.age");
            assert!(entity.starts_with(&format!("creds of user {user} (account ")), "{path}: {entity}");
        } else {
            let pk = path.rsplit('/').next().unwrap().trim_end_matches(".nk.age");
            let k = m.keys.iter().find(|k| k.public_key == pk).unwrap();
            assert!(entity.starts_with(&k.role), "{path}: {entity}");
        }
    }
    assert!(rows.as_array().unwrap().iter().any(|r| r["entity"] == "user audio-service (account media)"));
    let text = String::from_utf8(ok(run(&["vault", "status", d])).stdout).unwrap();
    assert!(text.starts_with("ENTITY\tKIND\tREADERS\tPATH\n"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("creds of user audio-service (account media)\tcreds\t")), "{text}");
}

/// `info` in text mode is text; on a directory without a store, every reading
/// command says so with exit 2 instead of printing nulls.
#[test]
fn info_is_text_and_no_store_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    generate(&example(), &dir, &key);
    let d = dir.to_str().unwrap();
    let text = String::from_utf8(ok(run(&["info", "--dir", d, "--identity", key.to_str().unwrap()])).stdout).unwrap();
    assert!(!text.contains('{'), "no JSON in text mode: {text}");
    assert!(text.contains("organization: thecowboyai (org id "), "{text}");
    assert!(text.contains("your role: master"), "{text}");
    assert!(text.contains("accounts: 4, users: 12"), "{text}");

    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = empty.to_str().unwrap();
    for args in [
        vec!["info", "--dir", e],
        vec!["list", "users", "--dir", e],
        vec!["describe", "user", "x", "--dir", e],
        vec!["vault", "status", "--dir", e],
        vec!["team", "list", "--dir", e],
        vec!["--json", "info", "--dir", e],
    ] {
        let o = run(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("not a clan-nats store"), "{args:?}: {err}");
        if args[0] == "--json" {
            let v: Value = serde_json::from_slice(&o.stdout).expect("a JSON error");
            assert_eq!(v["error"]["exit_code"], 2, "{v}");
            assert!(v.get("organization").is_none(), "{v}");
        } else {
            assert!(o.stdout.is_empty(), "{args:?} printed {:?}", String::from_utf8_lossy(&o.stdout));
        }
    }
}

//! `generate` as a reconciler: targeted changes, revocation and rotation against
//! a real nats-server, crash safety under SIGKILL, and nsc export/import.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::ConnectOptions;
use clan_nats::jwt::{AccountClaims, UserClaims};
use clan_nats::manifest::Manifest;
use clan_nats::vault::Identity;
use common::*;
use serde_json::{json, Value};

struct Fixture {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    key: PathBuf,
    config: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, key, config) = (tmp.path().join("store"), tmp.path().join("owner.key"), tmp.path().join("org.json"));
        std::fs::copy(example(), &config).unwrap();
        generate(&config, &dir, &key);
        Fixture { tmp, dir, key, config }
    }

    fn edit(&self, f: impl FnOnce(&mut Value)) {
        let mut v: Value = serde_json::from_slice(&std::fs::read(&self.config).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(&self.config, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }

    fn generate(&self) {
        generate(&self.config, &self.dir, &self.key);
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend([
            "--config",
            self.config.to_str().unwrap(),
            "--out",
            self.dir.to_str().unwrap(),
            "--identity",
            self.key.to_str().unwrap(),
        ]);
        run(&all)
    }

    fn manifest(&self) -> Manifest {
        Manifest::read_dir(&self.dir).unwrap()
    }

    fn files(&self) -> BTreeMap<String, Vec<u8>> {
        snapshot(&self.dir).into_iter().filter(|(k, _)| !k.ends_with('/')).map(|(k, v)| (k, v.0)).collect()
    }

    fn creds(&self, user: &str) -> String {
        let m = self.manifest();
        let u = m.accounts.iter().flat_map(|a| &a.users).find(|u| u.name == user).unwrap();
        let id = Identity::load(&utf8(&self.key)).unwrap();
        String::from_utf8(id.decrypt(&std::fs::read(self.dir.join(&u.creds)).unwrap()).unwrap()).unwrap()
    }

    fn user_key(&self, user: &str) -> String {
        self.manifest().accounts.iter().flat_map(|a| &a.users).find(|u| u.name == user).unwrap().public_key.clone()
    }

    fn verify(&self) {
        let out = run(&["verify", self.dir.to_str().unwrap(), "--identity", self.key.to_str().unwrap()]);
        assert!(out.status.success(), "verify failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn server(&self) -> NatsServer {
        NatsServer::start(&self.dir.join("server/nats-server.conf"), self.tmp.path())
    }
}

fn changed(before: &BTreeMap<String, Vec<u8>>, after: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter().filter(|k| before.get(*k) != after.get(*k)).cloned().collect()
}

fn person_index(v: &Value, name: &str) -> usize {
    v["service_people"].as_array().unwrap().iter().position(|p| p["name"] == name).unwrap()
}

const CORE: &str = "nsc/stores/thecowboyai/accounts/core";

#[test]
fn a_permission_change_reissues_exactly_that_user() {
    let f = Fixture::new();
    let before = f.files();
    let old =
        UserClaims::decode(std::str::from_utf8(&before[&format!("{CORE}/users/person-service.jwt")]).unwrap()).unwrap();
    f.edit(|v| {
        let i = person_index(v, "person-service");
        v["service_people"][i]["nats_permissions"]["publish"] =
            json!(["thecowboyai.org.person.>", "thecowboyai.org.people.>"]);
    });
    f.generate();
    let after = f.files();
    assert_eq!(
        changed(&before, &after),
        [
            "config.json".to_string(),
            "governance/audit.jsonl".to_string(),
            "manifest.d/core.json".to_string(),
            "manifest.json".to_string(),
            format!("{CORE}/users/person-service.creds.age"),
            format!("{CORE}/users/person-service.jwt"),
        ]
    );
    let new =
        UserClaims::decode(std::str::from_utf8(&after[&format!("{CORE}/users/person-service.jwt")]).unwrap()).unwrap();
    assert!(new.std.iat > old.std.iat, "a re-issued JWT needs a newer iat ({} vs {})", new.std.iat, old.std.iat);
    assert_ne!(new.std.jti, old.std.jti);
    assert_eq!(new.std.sub, old.std.sub, "the key is kept");
    assert_eq!(new.nats.permissions.publish.allow.len(), 2);
    f.verify();
}

#[test]
fn adding_and_removing_a_host_re_encrypts_only_that_service() {
    let f = Fixture::new();
    let before = f.files();
    f.edit(|v| v["hosts"][2]["services"].as_array_mut().unwrap().push(json!("git-service")));
    f.generate();
    let after = f.files();
    let git = "nsc/stores/thecowboyai/accounts/development/users/git-service.creds.age";
    let expected = ["config.json", "governance/audit.jsonl", "manifest.d/development.json", "manifest.json", git];
    assert_eq!(changed(&before, &after), expected);
    assert!(f.manifest().secrets[git].recipients.contains(&"host:media1".to_string()));
    f.edit(|v| {
        let s = v["hosts"][2]["services"].as_array_mut().unwrap();
        s.retain(|x| x != "git-service");
    });
    f.generate();
    let again = f.files();
    assert_eq!(changed(&after, &again), expected);
    assert!(!f.manifest().secrets[git].recipients.contains(&"host:media1".to_string()));
    // Same recipients and plaintext as at first, but a fresh ciphertext: age is randomized.
    assert_eq!(f.manifest().secrets[git], Manifest::from_tree(&before).unwrap().secrets[git]);
}

async fn connects(url: &str, creds: &str) -> bool {
    let opts = ConnectOptions::with_credentials(creds).unwrap().max_reconnects(1);
    match tokio::time::timeout(Duration::from_secs(5), opts.connect(url)).await {
        Ok(Ok(client)) => {
            // The server may close a revoked connection right after CONNECT: make a round trip.
            tokio::time::timeout(Duration::from_secs(3), client.flush()).await.is_ok_and(|r| r.is_ok())
        }
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_user_is_revoked_and_a_re_added_one_gets_a_new_key() {
    let f = Fixture::new();
    let server = f.server();
    let old_creds = f.creds("agent-service");
    let old_key = f.user_key("agent-service");
    assert!(connects(&server.url(), &old_creds).await);

    let removed: std::cell::RefCell<Value> = Default::default();
    f.edit(|v| {
        let i = person_index(v, "agent-service");
        *removed.borrow_mut() = v["service_people"].as_array_mut().unwrap().remove(i);
        let s = v["hosts"][1]["services"].as_array_mut().unwrap();
        s.retain(|x| x != "agent-service");
    });
    f.generate();
    f.verify();
    assert!(!f.dir.join(format!("{CORE}/users/agent-service.jwt")).exists());
    assert!(!f.dir.join(format!("{CORE}/users/agent-service.creds.age")).exists());
    let acct =
        AccountClaims::decode(&std::fs::read_to_string(f.dir.join(format!("{CORE}/core.jwt"))).unwrap()).unwrap();
    assert!(acct.nats.revocations.contains_key(&old_key), "the removed user's key is revoked");
    server.reload();
    assert!(!connects(&server.url(), &old_creds).await, "old creds must be refused after the reload");

    let person = removed.into_inner();
    f.edit(|v| v["service_people"].as_array_mut().unwrap().push(person));
    f.generate();
    f.verify();
    let new_key = f.user_key("agent-service");
    assert_ne!(new_key, old_key);
    server.reload();
    assert!(connects(&server.url(), &f.creds("agent-service")).await, "the re-added user connects");
    assert!(!connects(&server.url(), &old_creds).await, "and the old creds stay revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_replaces_keys_and_old_creds_stop_working() {
    let f = Fixture::new();
    let server = f.server();
    let old_creds = f.creds("person-service");
    let old_key = f.user_key("person-service");
    let out = f.cli(&["rotate", "user", "person-service"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    f.verify();
    assert_ne!(f.user_key("person-service"), old_key);
    let m = f.manifest();
    assert!(!m.keys.iter().any(|k| k.public_key == old_key), "the old seed leaves the keystore");
    server.reload();
    assert!(connects(&server.url(), &f.creds("person-service")).await);
    assert!(!connects(&server.url(), &old_creds).await, "rotated-out creds are revoked");

    // The operator signing key: every account is re-signed, user creds stay valid.
    let before = f.files();
    let old_sk = f.manifest().operator.signing_keys.clone();
    let out = f.cli(&["rotate", "operator-signing-key"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    f.verify();
    assert_ne!(f.manifest().operator.signing_keys, old_sk);
    let after = f.files();
    let diff = changed(&before, &after);
    assert!(diff.iter().any(|p| p.ends_with("core/core.jwt")) && diff.iter().any(|p| p.ends_with("thecowboyai.jwt")));
    assert!(!diff.iter().any(|p| p.contains("/users/")), "users are signed by account keys: unchanged");
    // nats-server cannot reload a changed operator JWT: this one needs a restart.
    drop(server);
    let server = f.server();
    assert!(connects(&server.url(), &f.creds("person-service")).await);

    // An account: new identity, all its users re-issued under it.
    let media_creds = f.creds("audio-service");
    let old_media = f.manifest().account("media").unwrap().public_key.clone();
    let out = f.cli(&["rotate", "account", "media"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    f.verify();
    assert_ne!(f.manifest().account("media").unwrap().public_key, old_media);
    server.reload();
    assert!(connects(&server.url(), &f.creds("audio-service")).await);
    assert!(!connects(&server.url(), &media_creds).await, "creds of the old account identity are gone");

    // The operator identity: refused, nothing changed.
    let before = f.files();
    let out = f.cli(&["rotate", "operator"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("root of trust"));
    assert_eq!(f.files(), before);
    let out = f.cli(&["rotate", "user", "nobody"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user named \"nobody\""));
}

/// SIGKILL `generate` at many moments of a run that changes keys; after each,
/// `verify` passes and the store is entirely the old one or the new one.
///
/// The longest test (about a minute on 2 cores): a developer may leave it out
/// with `CLAN_NATS_SKIP_KILL_SERIES=1`, which tests/run.sh reports as not run
/// and CI refuses.
#[test]
fn sigkill_at_any_moment_leaves_the_old_or_the_new_store() {
    if std::env::var_os("CLAN_NATS_SKIP_KILL_SERIES").is_some_and(|v| v == "1") {
        eprintln!("NOT RUN: sigkill_at_any_moment_leaves_the_old_or_the_new_store (CLAN_NATS_SKIP_KILL_SERIES=1)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key, config) = (tmp.path().join("store"), tmp.path().join("owner.key"), tmp.path().join("big.json"));
    // A config large enough that writing takes a while: 8 units x 40 services.
    let mut v: Value = serde_json::from_slice(&std::fs::read(example()).unwrap()).unwrap();
    let units: Vec<Value> =
        (0..8).map(|i| json!({"name": format!("U{i}"), "nats_account_name": format!("u{i}")})).collect();
    let people: Vec<Value> = (0..320)
        .map(|i| json!({"name": format!("svc{i}-service"), "organizational_unit": format!("U{}", i % 8), "role": "Service"}))
        .collect();
    v["organizational_units"] = json!(units);
    v["service_people"] = json!(people);
    v["hosts"] = json!([]);
    std::fs::write(&config, serde_json::to_vec(&v).unwrap()).unwrap();
    // Every round restores the old store and this machine's pins as they were
    // before the command (restoring the store alone is a rollback, refused).
    let (pins, pristine_pins) = (tmp.path().join("pins.json"), tmp.path().join("pins.pristine.json"));
    let o = bin_pinned(&pins).args(generate_args(&config, &dir, &key)).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::copy(&pins, &pristine_pins).unwrap();
    let old_keys: Vec<String> = Manifest::read_dir(&dir).unwrap().keys.into_iter().map(|k| k.public_key).collect();

    // How long a full rotation of every user of one account takes, to spread the kills over it.
    let args = |d: &Path| {
        vec![
            "rotate".to_string(),
            "account".into(),
            "u3".into(),
            "--config".into(),
            config.to_str().unwrap().into(),
            "--out".into(),
            d.to_str().unwrap().into(),
            "--identity".into(),
            key.to_str().unwrap().into(),
        ]
    };
    let probe = tmp.path().join("probe");
    assert!(std::process::Command::new("cp").arg("-a").arg(&dir).arg(&probe).status().unwrap().success());
    let t = std::time::Instant::now();
    assert!(bin_pinned(&pins).args(args(&probe)).stdout(std::process::Stdio::null()).status().unwrap().success());
    let full = t.elapsed();
    let new_keys: Vec<String> = Manifest::read_dir(&probe).unwrap().keys.into_iter().map(|k| k.public_key).collect();

    let pristine = tmp.path().join("pristine");
    assert!(std::process::Command::new("cp").arg("-a").arg(&dir).arg(&pristine).status().unwrap().success());
    // One round: restore the old store, start a rotation, SIGKILL it after `delay`,
    // then check the store. Returns whether it holds the new keys.
    let round = |delay: std::time::Duration, decrypt: bool| -> bool {
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(std::process::Command::new("cp").arg("-a").arg(&pristine).arg(&dir).status().unwrap().success());
        std::fs::copy(&pristine_pins, &pins).unwrap();
        let mut child = bin_pinned(&pins).args(args(&dir)).stdout(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        // Signatures, chain, layout and every sha256; decrypting every secret too on some rounds.
        let mut verify = vec!["verify", dir.to_str().unwrap()];
        if decrypt {
            verify.extend(["--identity", key.to_str().unwrap()]);
        }
        let out = bin_pinned(&pins).args(&verify).output().unwrap();
        assert!(out.status.success(), "kill after {delay:?}: verify failed: {}", String::from_utf8_lossy(&out.stderr));
        let keys: Vec<String> = Manifest::read_dir(&dir).unwrap().keys.into_iter().map(|k| k.public_key).collect();
        if keys == old_keys {
            return false;
        }
        // A complete rotation: every key but u3's as before, and none of u3's old ones.
        let kept = keys.iter().filter(|k| old_keys.contains(k)).count();
        assert_eq!(kept, old_keys.len() - 2, "kill after {delay:?}: a mix of old and new keys");
        assert_eq!(keys.len(), new_keys.len());
        true
    };
    let (mut saw_old, mut saw_new) = (0, 0);
    let points = 30;
    for i in 0..points {
        let delay = full.mul_f64(i as f64 / points as f64 * 2.0);
        if round(delay, i % 10 == 0) {
            saw_new += 1;
        } else {
            saw_old += 1;
        }
    }
    // On a loaded machine a killed run can be slower than the probe: wait longer
    // until a run completes, so both outcomes are seen.
    let mut factor = 4.0;
    while saw_new == 0 && factor <= 64.0 {
        if round(full.mul_f64(factor), false) {
            saw_new += 1;
        }
        factor *= 2.0;
    }
    assert!(
        saw_old > 0 && saw_new > 0,
        "the kills must hit both before and after the swap (old {saw_old}, new {saw_new}, run {full:?})"
    );
    // Leftovers of killed runs are cleaned by the next run.
    let o = bin_pinned(&pins).args(generate_args(&config, &dir, &key)).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".store.clan-nats-"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn export_nsc_writes_a_real_nsc_tree_and_import_keeps_every_key() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    let to = f.tmp.path().join("nsc-export");
    let out = run(&[
        "export-nsc",
        "--dir",
        f.dir.to_str().unwrap(),
        "--identity",
        f.key.to_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let snap = snapshot(&to);
    assert_eq!(snap["keys/.gitignore"].0, b"# ignore all nk files \n**/*.nk\n\n# ignore all creds files\n**/*.creds\n");
    for (path, (bytes, mode)) in &snap {
        assert_eq!(*mode, if path.ends_with('/') { 0o700 } else { 0o600 }, "{path}");
        if path.ends_with(".nk") {
            let kp = nkeys::KeyPair::from_seed(std::str::from_utf8(bytes).unwrap()).unwrap();
            assert!(path.ends_with(&format!("{}.nk", kp.public_key())));
        }
        if path.ends_with(".creds") {
            clan_nats::jwt::creds::parse_checked(std::str::from_utf8(bytes).unwrap()).unwrap();
        }
    }
    assert!(snap.contains_key("stores/thecowboyai/.nsc"));
    assert!(snap.contains_key("keys/creds/thecowboyai/core/person-service.creds"));
    assert_eq!(snap.keys().filter(|k| k.ends_with(".nk")).count(), 22);
    assert!(std::fs::metadata(&to).unwrap().permissions().mode() & 0o077 == 0);
    // Refuses to write into a non-empty directory.
    let again = run(&[
        "export-nsc",
        "--dir",
        f.dir.to_str().unwrap(),
        "--identity",
        f.key.to_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(2));

    // A manifest edited to point a user outside the export is refused before anything is written.
    let evil = f.tmp.path().join("evil");
    assert!(std::process::Command::new("cp").arg("-a").arg(&f.dir).arg(&evil).status().unwrap().success());
    let mp = evil.join("manifest.d/core.json");
    let text = std::fs::read_to_string(&mp)
        .unwrap()
        .replace("\"name\": \"person-service\"", "\"name\": \"../../../../escaped\"");
    assert!(text.contains("escaped"));
    std::fs::write(&mp, text).unwrap();
    let to2 = f.tmp.path().join("nsc-export-2");
    let out = run(&[
        "export-nsc",
        "--dir",
        evil.to_str().unwrap(),
        "--identity",
        f.key.to_str().unwrap(),
        "--to",
        to2.to_str().unwrap(),
    ]);
    // The edit is caught by the check every writing command runs first (exit 3);
    // the export's own path check is `nsc::tests::paths_outside_the_export_are_refused`.
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("manifest.d/core.json: sha256 mismatch"), "{err}");
    assert!(!to2.exists() && !f.tmp.path().join("escaped.creds").exists());

    // Import into a new store: every entity keeps its key.
    let (dir2, key2) = (f.tmp.path().join("imported"), f.tmp.path().join("owner2.key"));
    let out = run(&[
        "import-nsc",
        "--from",
        to.to_str().unwrap(),
        "--keys",
        to.join("keys").to_str().unwrap(),
        "--config",
        f.config.to_str().unwrap(),
        "--out",
        dir2.to_str().unwrap(),
        "--identity",
        key2.to_str().unwrap(),
        "--new-identity",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let keys = |m: Manifest| -> Vec<(String, String, String, String)> {
        m.keys.into_iter().map(|k| (k.role, k.account, k.user, k.public_key)).collect()
    };
    let m2 = Manifest::read_dir(&dir2).unwrap();
    assert_eq!(keys(m2), keys(f.manifest()));
    let out = run(&["verify", dir2.to_str().unwrap(), "--identity", key2.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_flat_format_puts_creds_in_nats_and_stays_flat() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("flat"), tmp.path().join("owner.key"));
    let out = try_generate(&example(), &dir, &key, &["--format", "flat"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m = Manifest::read_dir(&dir).unwrap();
    assert_eq!(m.layout, clan_nats::store::Format::Flat);
    let id = Identity::load(&utf8(&key)).unwrap();
    for u in m.accounts.iter().flat_map(|a| &a.users) {
        assert_eq!(u.creds, format!("nats/{}.creds.age", u.name));
        let plain = id.decrypt(&std::fs::read(dir.join(&u.creds)).unwrap()).unwrap();
        clan_nats::jwt::creds::parse_checked(std::str::from_utf8(&plain).unwrap()).unwrap();
    }
    assert!(!snapshot(&dir).keys().any(|k| k.contains("/users/") && k.ends_with(".creds.age")));
    let v = run(&["verify", dir.to_str().unwrap(), "--identity", key.to_str().unwrap()]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    // A re-run without --format keeps the layout and changes nothing.
    let before = snapshot(&dir);
    generate(&example(), &dir, &key);
    assert_eq!(snapshot(&dir), before);
}

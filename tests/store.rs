//! The generated store on disk: layout, modes, no plaintext, interop with the
//! reference `age` CLI, who can decrypt what, re-runs, and `verify`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use clan_nats::jwt::{creds, UserClaims};
use clan_nats::manifest::Manifest;
use common::*;

fn manifest(dir: &Path) -> Manifest {
    Manifest::read_dir(dir).unwrap()
}

fn age_decrypt(identity: &Path, file: &Path) -> Result<Vec<u8>, String> {
    let out = Command::new(require("age")).arg("-d").arg("-i").arg(identity).arg(file).output().unwrap();
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn age_files(dir: &Path) -> Vec<String> {
    snapshot(dir).into_keys().filter(|k| k.ends_with(".age")).collect()
}

#[test]
fn layout_modes_and_no_plaintext_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    let out = generate(&example(), &dir, &key);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("created owner identity"), "{stdout}");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);

    let snap = snapshot(&dir);
    let op = "nsc/stores/thecowboyai";
    for f in [
        format!("{op}/.nsc"),
        format!("{op}/thecowboyai.jwt"),
        format!("{op}/accounts/core/core.jwt"),
        format!("{op}/accounts/core/users/person-service.jwt"),
        format!("{op}/accounts/core/users/person-service.creds.age"),
        format!("{op}/accounts/SYS/SYS.jwt"),
        format!("{op}/accounts/SYS/users/sys.jwt"),
        format!("{op}/accounts/SYS/users/sys.creds.age"),
        "server/nats-server.conf".into(),
        "server/server.json".into(),
        "manifest.json".into(),
    ] {
        assert!(snap.contains_key(&f), "missing {f}");
    }
    assert_eq!(
        snap[&format!("{op}/.nsc")].0,
        br#"{"managed":false,"name":"thecowboyai","kind":"operator","version":"1"}"#
    );
    let m = manifest(&dir);
    // 1 operator + 1 signing key, 4 accounts x 2 keys, 12 users: 22 seeds.
    assert_eq!(m.keys.len(), 22);
    for k in &m.keys {
        let p = &k.public_key;
        assert_eq!(k.path, format!("nsc/keys/keys/{}/{}/{p}.nk.age", &p[..1], &p[1..3]));
        assert!(snap.contains_key(&k.path));
    }
    for (path, (bytes, mode)) in &snap {
        if path.ends_with('/') {
            assert_eq!(*mode, 0o755, "{path}");
            continue;
        }
        assert_eq!(*mode, 0o644, "{path}");
        assert!(!contains_seed(bytes), "{path} contains a plaintext nkey seed");
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains("NKEY SEED") && !text.contains("AGE-SECRET-KEY"), "{path} holds a plaintext secret");
        if path.ends_with(".age") {
            assert!(bytes.starts_with(b"age-encryption.org/v1\n"), "{path} is not an age file");
        }
    }
}

#[test]
fn reference_age_cli_decrypts_everything_for_the_owner() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    generate(&example(), &dir, &key);
    let m = manifest(&dir);
    let files = age_files(&dir);
    assert_eq!(files.len(), 22 + 12);
    for k in &m.keys {
        let seed = age_decrypt(&key, &dir.join(&k.path)).unwrap();
        let kp = nkeys::KeyPair::from_seed(std::str::from_utf8(&seed).unwrap()).unwrap();
        assert_eq!(kp.public_key(), k.public_key, "{}", k.path);
        assert!(!seed.ends_with(b"\n"), "nsc writes seeds without a newline");
    }
    for u in m.accounts.iter().flat_map(|a| &a.users) {
        let plain = age_decrypt(&key, &dir.join(&u.creds)).unwrap();
        let (claims, kp) = creds::parse_checked(std::str::from_utf8(&plain).unwrap()).unwrap();
        let jwt = std::fs::read_to_string(dir.join(&u.jwt)).unwrap();
        assert_eq!(claims, UserClaims::decode(&jwt).unwrap());
        assert_eq!(kp.public_key(), u.public_key);
    }
}

#[test]
fn each_host_decrypts_exactly_its_services() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    generate(&example(), &dir, &key);
    let m = manifest(&dir);
    let keys = [
        ("nats1", insecure("nats1.ssh_host_ed25519_key")),
        ("core1", insecure("core1.ssh_host_ed25519_key")),
        ("media1", insecure("media1.agekey")),
        ("dev1", insecure("dev1.agekey")),
    ];
    for (host, hkey) in &keys {
        // age refuses private key files readable by others.
        std::fs::copy(hkey, tmp.path().join(host)).unwrap();
        let hkey = tmp.path().join(host);
        std::fs::set_permissions(&hkey, std::fs::Permissions::from_mode(0o600)).unwrap();
        let entry = m.hosts.iter().find(|h| h.name == *host).unwrap();
        assert!(!entry.creds.is_empty());
        for f in age_files(&dir) {
            let result = age_decrypt(&hkey, &dir.join(&f));
            if entry.creds.contains(&f) {
                let plain = result.unwrap_or_else(|e| panic!("{host} cannot read its {f}: {e}"));
                creds::parse_checked(std::str::from_utf8(&plain).unwrap()).unwrap();
            } else {
                assert!(result.is_err(), "{host} can read {f}, which is not assigned to it");
            }
        }
    }
    // person-service runs on two hosts.
    let person = m.accounts.iter().flat_map(|a| &a.users).find(|u| u.name == "person-service").unwrap();
    assert_eq!(person.hosts, ["core1", "nats1"]);
    assert_eq!(m.secrets[&person.creds].recipients, ["host:core1", "host:nats1", "owner"]);
}

#[test]
fn user_jwts_carry_exactly_the_configured_permissions() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    generate(&example(), &dir, &key);
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(example()).unwrap()).unwrap();
    let m = manifest(&dir);
    for p in cfg["service_people"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let account = p["organizational_unit"].as_str().unwrap().to_lowercase();
        let a = m.accounts.iter().find(|a| a.name == account).unwrap();
        let u = a.users.iter().find(|u| u.name == name).unwrap();
        let claims = UserClaims::decode(&std::fs::read_to_string(dir.join(&u.jwt)).unwrap()).unwrap();
        let perms = &p["nats_permissions"];
        let list = |v: &serde_json::Value| -> Vec<String> {
            v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
        };
        assert_eq!(claims.nats.permissions.publish.allow, list(&perms["publish"]), "{name}");
        let mut sub = list(&perms["subscribe"]);
        sub.push(format!("_INBOX_{name}.>"));
        assert_eq!(claims.nats.permissions.subscribe.allow, sub, "{name}");
        assert_eq!(claims.nats.permissions.resp.map(|r| r.max), Some(1), "{name}");
        assert_eq!(claims.nats.payload, perms["max_payload"].as_i64().unwrap(), "{name}");
        assert_eq!(claims.nats.issuer_account, a.public_key, "{name}");
        assert!(a.signing_keys.contains(&claims.std.iss), "{name} is signed by the account signing key");
    }
}

#[test]
fn upstream_fixture_generates_and_verifies() {
    let shared = repo("../shared/fixtures/cim-keys/clan-bootstrap.json");
    if shared.exists() {
        assert_eq!(std::fs::read(&shared).unwrap(), std::fs::read(upstream()).unwrap(), "tests/fixtures copy drifted");
    }
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    generate(&upstream(), &dir, &key);
    let out = run(&["verify", dir.to_str().unwrap(), "--identity", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("4 account(s), 12 user(s)") && text.contains("34 secret(s) decrypted"), "{text}");
    // No hosts in the upstream file: every creds is the owner's alone.
    let m = manifest(&dir);
    assert!(m.hosts.is_empty());
    assert!(m.secrets.values().all(|s| s.recipients == ["owner"]));
}

#[test]
fn a_rerun_changes_no_byte_and_writes_nothing() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    generate(&example(), &dir, &key);
    let before = snapshot(&dir);
    let inode = std::fs::metadata(dir.join("manifest.json")).unwrap().ino();
    let out = generate(&example(), &dir, &key);
    assert!(String::from_utf8_lossy(&out.stdout).contains("unchanged"));
    assert_eq!(snapshot(&dir), before);
    assert_eq!(std::fs::metadata(dir.join("manifest.json")).unwrap().ino(), inode);
}

#[test]
fn admin_recipients_read_everything_the_owner_can() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key, admin) = (tmp.path().join("store"), tmp.path().join("owner.key"), tmp.path().join("admin.key"));
    let (admin_id, _) = clan_nats::vault::Identity::load_or_create(&utf8(&admin)).unwrap();
    let out = try_generate(&example(), &dir, &key, &["--recipient", &admin_id.recipients[0]]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for f in age_files(&dir) {
        age_decrypt(&admin, &dir.join(&f)).unwrap_or_else(|e| panic!("admin cannot read {f}: {e}"));
    }
    assert_eq!(manifest(&dir).recipients["admin-1"], admin_id.recipients[0]);
}

#[test]
fn another_identity_cannot_regenerate_an_existing_store() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key, other) = (tmp.path().join("store"), tmp.path().join("owner.key"), tmp.path().join("other.key"));
    generate(&example(), &dir, &key);
    let before = snapshot(&dir);
    // A missing identity is not created for an existing store.
    let out = try_generate(&example(), &dir, &other, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!other.exists());
    // Another existing identity cannot decrypt the keystore.
    clan_nats::vault::Identity::load_or_create(&utf8(&other)).unwrap();
    let out = try_generate(&example(), &dir, &other, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot be decrypted with identity") && err.contains("other.key"), "{err}");
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn a_directory_that_is_not_a_store_is_not_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("precious.txt"), "keep me").unwrap();
    let out = try_generate(&example(), &dir, &key, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no clan-nats store (it has precious.txt)"));
    assert_eq!(std::fs::read_to_string(dir.join("precious.txt")).unwrap(), "keep me");
    assert!(!key.exists(), "no identity is created when nothing can be generated");
}

fn verify_fails(dir: &Path, key: Option<&Path>, needle: &str) {
    let mut args = vec!["verify", dir.to_str().unwrap()];
    if let Some(k) = key {
        args.extend(["--identity", k.to_str().unwrap()]);
    }
    let out = run(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "verify must fail: {err}");
    assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
}

#[test]
fn verify_detects_tampering() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("owner.key");
    let pristine = tmp.path().join("pristine");
    generate(&example(), &pristine, &key);
    let fresh = |name: &str| {
        let d = tmp.path().join(name);
        let status = Command::new("cp").arg("-a").arg(&pristine).arg(&d).status().unwrap();
        assert!(status.success());
        d
    };
    let acct = "nsc/stores/thecowboyai/accounts/core";
    let user_jwt = format!("{acct}/users/person-service.jwt");

    // A re-signed or edited JWT: the signature no longer verifies.
    let d = fresh("edited");
    let tok = std::fs::read_to_string(d.join(&user_jwt)).unwrap();
    let mut parts: Vec<String> = tok.split('.').map(str::to_string).collect();
    parts[2] = format!("A{}", &parts[2][1..]);
    std::fs::write(d.join(&user_jwt), parts.join(".")).unwrap();
    verify_fails(&d, None, &format!("{user_jwt}: sha256 mismatch"));
    verify_fails(&d, None, "signature does not verify");

    // A missing file and an unexpected one.
    let d = fresh("missing");
    std::fs::remove_file(d.join(&user_jwt)).unwrap();
    verify_fails(&d, None, &format!("{user_jwt}: listed in the manifest but missing"));
    let d = fresh("extra");
    std::fs::write(d.join(format!("{acct}/users/intruder.jwt")), "x").unwrap();
    verify_fails(&d, None, "intruder.jwt: not listed in the manifest");

    // Creds swapped between two users: only an identity can tell.
    let d = fresh("swapped");
    std::fs::copy(
        d.join(format!("{acct}/users/agent-service.creds.age")),
        d.join(format!("{acct}/users/person-service.creds.age")),
    )
    .unwrap();
    verify_fails(&d, None, "person-service.creds.age: sha256 mismatch");
    let m = d.join("manifest.json");
    let text = std::fs::read_to_string(&m).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let digest = format!(
        "sha256:{}",
        clan_nats::manifest::sha256_hex(
            &std::fs::read(d.join(format!("{acct}/users/person-service.creds.age"))).unwrap()
        )
    );
    // The creds' digest lives in the account's manifest, whose digest is in the root.
    let am = d.join("manifest.d/core.json");
    let mut a: serde_json::Value = serde_json::from_slice(&std::fs::read(&am).unwrap()).unwrap();
    a["files"][format!("{acct}/users/person-service.creds.age")] = digest.into();
    let bytes = serde_json::to_vec_pretty(&a).unwrap();
    std::fs::write(&am, &bytes).unwrap();
    let core = v["accounts"].as_array_mut().unwrap().iter_mut().find(|x| x["name"] == "core").unwrap();
    core["manifest_sha256"] = format!("sha256:{}", clan_nats::manifest::sha256_hex(&bytes)).into();
    std::fs::write(&m, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    verify_fails(&d, Some(&key), "person-service.creds.age: embedded JWT is not");

    // An identity that is no recipient reads nothing: every secret is "not yours".
    let other = tmp.path().join("other.key");
    clan_nats::vault::Identity::load_or_create(&utf8(&other)).unwrap();
    let out = run(&["--json", "verify", pristine.to_str().unwrap(), "--identity", other.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decrypted"], 0, "{v}");
    assert!(v["not_yours"].as_u64().unwrap() > 0, "{v}");

    // And the pristine store passes.
    let out = run(&["verify", pristine.to_str().unwrap(), "--identity", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

//! `clan:<machine>` host recipients, taken from a clan directory (`--clan-dir`,
//! else `$CLAN_NATS_CLAN_DIR`): the host's creds are encrypted to the key
//! clan keeps for the machine, and a machine clan does not know is a config
//! error (exit 2) naming the file, the field and every file looked for.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

/// The example config with media1's recipient written `clan:media1`.
fn clan_config(dir: &Path) -> std::path::PathBuf {
    let mut v: Value = serde_json::from_slice(&std::fs::read(example()).unwrap()).unwrap();
    let hosts = v["hosts"].as_array_mut().unwrap();
    let media = hosts.iter_mut().find(|h| h["name"] == "media1").unwrap();
    media["age_recipient"] = "clan:media1".into();
    let p = dir.join("org.json");
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    p
}

fn public_key(identity: &Path) -> String {
    let out = Command::new("age-keygen").arg("-y").arg(identity).output().expect("age-keygen runs");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_clan_age_key_becomes_the_hosts_recipient_and_decrypts_its_creds() {
    let age = require("age");
    let tmp = tempfile::tempdir().unwrap();
    let config = clan_config(tmp.path());
    let clan = tmp.path().join("clan");
    let media_key = insecure("media1.agekey");
    let pub_file = clan.join("secrets/age-keys/machines/media1/pub");
    std::fs::create_dir_all(pub_file.parent().unwrap()).unwrap();
    std::fs::write(&pub_file, format!("{}\n", public_key(&media_key))).unwrap();

    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    let out = try_generate(&config, &dir, &key, &["--clan-dir", clan.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m: Value = serde_json::to_value(clan_nats::manifest::Manifest::read_dir(&dir).unwrap()).unwrap();
    let host = m["hosts"].as_array().unwrap().iter().find(|h| h["name"] == "media1").unwrap();
    assert_eq!(host["recipient"], public_key(&media_key).as_str());
    let creds = host["creds"].as_array().unwrap();
    assert!(!creds.is_empty());
    for c in creds {
        let out =
            Command::new(&age).args(["-d", "-i"]).arg(&media_key).arg(dir.join(c.as_str().unwrap())).output().unwrap();
        assert!(out.status.success(), "{c}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("BEGIN NATS USER JWT"));
    }

    // The same from $CLAN_NATS_CLAN_DIR (what `nix run .#generate` sets): nothing changes.
    let before = snapshot(&dir);
    let out = bin().args(generate_args(&config, &dir, &key)).env("CLAN_NATS_CLAN_DIR", &clan).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(snapshot(&dir) == before, "the same key from the environment is no change");
}

#[test]
fn an_unknown_clan_machine_is_a_config_error_naming_what_was_looked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let config = clan_config(tmp.path());
    let clan = tmp.path().join("clan");
    std::fs::create_dir_all(&clan).unwrap();
    let dir = tmp.path().join("store");
    let out = try_generate(&config, &dir, &tmp.path().join("owner.key"), &["--clan-dir", clan.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(config.to_str().unwrap()), "names the file: {err}");
    assert!(err.contains("hosts[2].age_recipient"), "names the field: {err}");
    for f in [
        "sops/machines/media1/key.json",
        "secrets/age-keys/machines/media1/pub",
        "vars/per-machine/media1/openssh/ssh.id_ed25519.pub/value",
    ] {
        assert!(err.contains(f), "names {f}: {err}");
    }
    assert!(!dir.exists(), "nothing is written");

    // Without any clan directory: the error says how to give one.
    let out = bin()
        .args(generate_args(&config, &dir, &tmp.path().join("owner.key")))
        .env_remove("CLAN_NATS_CLAN_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("hosts[2].age_recipient") && err.contains("--clan-dir"), "{err}");
}

#[test]
fn the_sops_key_wins_over_the_openssh_var() {
    let tmp = tempfile::tempdir().unwrap();
    let config = clan_config(tmp.path());
    let clan = tmp.path().join("clan");
    let ssh = std::fs::read_to_string(insecure("core1.ssh_host_ed25519_key.pub")).unwrap();
    let var = clan.join("vars/per-machine/media1/openssh/ssh.id_ed25519.pub/value");
    std::fs::create_dir_all(var.parent().unwrap()).unwrap();
    std::fs::write(&var, &ssh).unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    let out = try_generate(&config, &dir, &key, &["--clan-dir", clan.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let recipient = |dir: &Path| -> String {
        let m: Value = serde_json::to_value(clan_nats::manifest::Manifest::read_dir(dir).unwrap()).unwrap();
        m["hosts"].as_array().unwrap().iter().find(|h| h["name"] == "media1").unwrap()["recipient"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(recipient(&dir).starts_with("ssh-ed25519 "), "the openssh var when it is the only one");

    let sops = clan.join("sops/machines/media1/key.json");
    std::fs::create_dir_all(sops.parent().unwrap()).unwrap();
    let age_pub = public_key(&insecure("media1.agekey"));
    std::fs::write(&sops, format!(r#"[{{"publickey": "{age_pub}", "type": "age"}}]"#)).unwrap();
    let dir2 = tmp.path().join("store2");
    let out = try_generate(&config, &dir2, &tmp.path().join("owner2.key"), &["--clan-dir", clan.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(recipient(&dir2), age_pub, "sops/machines/<m>/key.json comes first");
}

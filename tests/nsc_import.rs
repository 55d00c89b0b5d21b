//! Issue 14: `import-nsc` against an operator the real nsc 2.14.0 built
//! (../shared/tools/outside/nsc): what the config cannot express (deny rules,
//! account limits, extra signing keys, an extra user) is listed and the import
//! refuses (exit 2) unless `--drop-unsupported`; a missing seed is an error
//! naming the key; our own export imports with nothing lost.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::json;

fn nsc_bin() -> PathBuf {
    let p = repo("../shared/tools/outside/nsc");
    assert!(
        p.exists(),
        "{} is missing: this test needs the real nsc (see ../shared/tools/outside/README.md)",
        p.display()
    );
    p
}

struct Nsc {
    tmp: tempfile::TempDir,
}

impl Nsc {
    fn new() -> Nsc {
        // nsc keeps plaintext seeds: only on tmpfs, removed when dropped.
        Nsc { tmp: tempfile::tempdir_in("/dev/shm").unwrap() }
    }
    fn data(&self) -> PathBuf {
        self.tmp.path().join("nsc/stores")
    }
    fn keys(&self) -> PathBuf {
        self.tmp.path().join("nsc/keys")
    }
    fn run(&self, args: &[&str]) {
        let home = self.tmp.path().join("home");
        let out = Command::new(nsc_bin())
            .env("NSC_HOME", &home)
            .env("XDG_CONFIG_HOME", &home)
            .env("XDG_DATA_HOME", &home)
            .env("HOME", &home)
            .arg("--data-dir")
            .arg(self.data())
            .arg("--keystore-dir")
            .arg(self.keys())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "nsc {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

fn config(dir: &Path) -> PathBuf {
    let c = json!({
        "organization": {"name": "nscop"},
        "nats_wiring": "explicit",
        "organizational_units": [{"name": "App", "nats_account_name": "app"}],
        "service_people": [{"name": "svc", "organizational_unit": "App", "role": "Service",
            "nats_permissions": {"publish": ["a.>"], "subscribe": ["a.>"]}}]
    });
    let p = dir.join("org.json");
    std::fs::write(&p, serde_json::to_vec(&c).unwrap()).unwrap();
    p
}

fn import(n: &Nsc, cfg: &Path, out: &Path, extra: &[&str]) -> (i32, String) {
    let o = bin()
        .args(["import-nsc", "--from"])
        .arg(n.data())
        .arg("--keys")
        .arg(n.keys())
        .arg("--config")
        .arg(cfg)
        .arg("--out")
        .arg(out)
        .arg("--identity")
        .arg(n.tmp.path().join("owner.key"))
        .arg("--new-identity")
        .args(extra)
        .output()
        .unwrap();
    (o.status.code().unwrap(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn nsc_operator() -> Nsc {
    let n = Nsc::new();
    n.run(&["add", "operator", "-n", "nscop"]);
    n.run(&["edit", "operator", "--sk", "generate"]);
    n.run(&["edit", "operator", "--sk", "generate"]);
    n.run(&["add", "account", "-n", "app"]);
    n.run(&["edit", "account", "-n", "app", "--sk", "generate", "--conns", "10"]);
    n.run(&["edit", "account", "-n", "app", "--sk", "generate"]);
    n.run(&[
        "add",
        "user",
        "-a",
        "app",
        "-n",
        "svc",
        "--allow-pub",
        "a.>",
        "--allow-sub",
        "a.>",
        "--deny-pub",
        "a.secret.>",
    ]);
    n.run(&["add", "user", "-a", "app", "-n", "extra"]);
    n
}

#[test]
fn an_nsc_operator_with_more_than_the_config_is_refused_naming_each_loss() {
    let n = nsc_operator();
    let cfg = config(n.tmp.path());
    let out = n.tmp.path().join("store");
    let (code, err) = import(&n, &cfg, &out, &[]);
    assert_eq!(code, 2, "{err}");
    for needle in [
        "import-nsc would drop",
        "operator nscop: signing key O",
        "account app: signing key A",
        "account app: limits",
        "\"conn\":10",
        "user app/svc: pub.deny \"a.secret.>\"",
        "user app/extra (no person of the config is this user)",
        "--drop-unsupported",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(!out.exists(), "a refused import writes nothing");

    // Accepting the loss by name: the import goes ahead and lists each drop.
    let (code, err) = import(&n, &cfg, &out, &["--drop-unsupported"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("dropped (--drop-unsupported): user app/svc: pub.deny \"a.secret.>\""), "{err}");
    assert!(out.join("manifest.json").exists());
}

#[test]
fn a_missing_seed_is_an_error_naming_the_key() {
    let n = nsc_operator();
    let cfg = config(n.tmp.path());
    // Remove the user svc's seed from the nsc keystore.
    let jwt = std::fs::read_to_string(n.data().join("nscop/accounts/app/users/svc.jwt")).unwrap();
    let sub = clan_nats::jwt::peek(&jwt).unwrap().0.sub;
    let nk = n.keys().join("keys/U").join(&sub[1..3]).join(format!("{sub}.nk"));
    std::fs::remove_file(&nk).unwrap_or_else(|e| panic!("{}: {e}", nk.display()));
    let out = n.tmp.path().join("store");
    let (code, err) = import(&n, &cfg, &out, &["--drop-unsupported"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("no seed for user app/svc ({sub})")), "{err}");
    assert!(!out.exists());
}

#[test]
fn our_own_export_imports_with_nothing_lost() {
    let tmp = tempfile::tempdir_in("/dev/shm").unwrap(); // export-nsc writes plaintext seeds
    let cfg = repo("tests/fixtures/perms/every-field.json");
    let (dir, key, nsc) = (tmp.path().join("a"), tmp.path().join("owner.key"), tmp.path().join("nsc"));
    generate(&cfg, &dir, &key);
    let o = bin()
        .args(["export-nsc", "--dir"])
        .arg(&dir)
        .arg("--identity")
        .arg(&key)
        .arg("--to")
        .arg(&nsc)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = bin()
        .args(["import-nsc", "--from"])
        .arg(nsc.join("stores"))
        .arg("--keys")
        .arg(nsc.join("keys"))
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(tmp.path().join("b"))
        .arg("--identity")
        .arg(&key)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !err.contains("dropped"), "{err}");
    // Every key was adopted: the same public keys in both manifests.
    let keys = |d: &Path| {
        let m = clan_nats::manifest::Manifest::read_dir(d).unwrap();
        let mut k: Vec<String> =
            m.keys.iter().map(|k| format!("{} {} {} {}", k.role, k.account, k.user, k.public_key)).collect();
        k.sort();
        k
    };
    assert_eq!(keys(&dir), keys(&tmp.path().join("b")));
    std::fs::remove_dir_all(&nsc).unwrap();
}

/// `--write-config FILE` adopts what the config can express (the extra user,
/// the deny rule, the account limit); only the extra signing keys are left,
/// and after accepting those, nsc describes the users of our export as it
/// described its own (permissions and limits; keys are kept, so same `sub`).
#[test]
fn write_config_adopts_what_the_config_can_express() {
    let n = nsc_operator();
    let cfg = config(n.tmp.path());
    let adopted = n.tmp.path().join("adopted.json");
    let out = n.tmp.path().join("store");
    let args = ["--write-config", adopted.to_str().unwrap()];
    let (code, err) = import(&n, &cfg, &out, &args);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("signing key"), "{err}");
    for gone in ["pub.deny", "app/extra", "limits", "\"conn\":10"] {
        assert!(!err.contains(gone), "{gone:?} should have been adopted:\n{err}");
    }
    let a: serde_json::Value = serde_json::from_slice(&std::fs::read(&adopted).unwrap()).unwrap();
    let people = a["service_people"].as_array().unwrap();
    let svc = people.iter().find(|p| p["name"] == "svc").unwrap();
    assert_eq!(svc["nats_permissions"]["deny_publish"], json!(["a.secret.>"]));
    assert!(people.iter().any(|p| p["name"] == "extra"), "{a}");
    assert_eq!(a["organizational_units"][0]["nats_limits"]["conn"], 10);
    assert!(!out.exists());

    let (code, err) = import(&n, &cfg, &out, &[&args[..], &["--drop-unsupported"]].concat());
    assert_eq!(code, 0, "{err}");
    let export = n.tmp.path().join("re-export");
    let o = bin()
        .args(["export-nsc", "--dir"])
        .arg(&out)
        .arg("--identity")
        .arg(n.tmp.path().join("owner.key"))
        .arg("--to")
        .arg(&export)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let claims = |p: PathBuf| -> serde_json::Value {
        let t = std::fs::read_to_string(p).unwrap();
        serde_json::from_slice(&clan_nats::jwt::peek(&t).unwrap().1).unwrap()
    };
    for user in ["svc", "extra"] {
        let theirs = claims(n.data().join(format!("nscop/accounts/app/users/{user}.jwt")));
        let ours = claims(export.join(format!("stores/nscop/accounts/app/users/{user}.jwt")));
        assert_eq!(ours["sub"], theirs["sub"], "{user} keeps its key");
        for f in ["pub", "sub", "subs", "data", "payload", "resp"] {
            assert_eq!(ours["nats"][f], theirs["nats"][f], "{user}: nats.{f}\nours {ours}\ntheirs {theirs}");
        }
    }
    // Account limits, up to the JetStream sub-limits nsc writes for an account
    // without JetStream (mem_storage/disk_storage 0), which have no effect.
    let ours = claims(export.join("stores/nscop/accounts/app/app.jwt"))["nats"]["limits"].clone();
    let theirs = claims(n.data().join("nscop/accounts/app/app.jwt"))["nats"]["limits"].clone();
    for f in
        ["conn", "subs", "data", "payload", "imports", "exports", "leaf", "wildcards", "mem_storage", "disk_storage"]
    {
        assert_eq!(ours[f], theirs[f], "account limit {f}\nours {ours}\ntheirs {theirs}");
    }
}

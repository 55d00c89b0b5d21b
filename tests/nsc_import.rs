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
        let m = clan_nats::manifest::Manifest::parse(&std::fs::read(d.join("manifest.json")).unwrap()).unwrap();
        let mut k: Vec<String> =
            m.keys.iter().map(|k| format!("{} {} {} {}", k.role, k.account, k.user, k.public_key)).collect();
        k.sort();
        k
    };
    assert_eq!(keys(&dir), keys(&tmp.path().join("b")));
    std::fs::remove_dir_all(&nsc).unwrap();
}

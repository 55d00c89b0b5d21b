//! The daily loop: a store never loses a file it did not write or an access
//! it was given, and a second writer is told who holds the store.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use clan_nats::manifest::Manifest;
use common::*;

fn ok(o: std::process::Output) -> std::process::Output {
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    o
}

fn manifest(dir: &Path) -> Manifest {
    Manifest::read_dir(dir).unwrap()
}

/// `git init` inside DIR, a README and a notes folder: every command that
/// rewrites the store keeps them, as the same inodes, and `verify` ignores them.
#[test]
fn files_the_store_did_not_write_survive_every_write() {
    let git = require("git");
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    generate(&example(), &dir, &key);
    let g = |args: &[&str]| {
        let o = Command::new(&git).arg("-C").arg(&dir).args(args).output().unwrap();
        assert!(o.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        o
    };
    g(&["init", "-q"]);
    g(&["-c", "user.name=t", "-c", "user.email=t@example.invalid", "add", "-A"]);
    g(&["-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "store"]);
    std::fs::write(dir.join("README.md"), "our notes\n").unwrap();
    std::fs::create_dir_all(dir.join("notes/deep")).unwrap();
    std::fs::write(dir.join("notes/deep/a.txt"), "a").unwrap();
    std::fs::write(dir.join(".envrc"), "use flake\n").unwrap();
    std::os::unix::fs::symlink("README.md", dir.join("LINK")).unwrap();
    let ino = |p: &str| std::fs::metadata(dir.join(p)).unwrap().ino();
    let before = [ino(".git/HEAD"), ino("README.md"), ino("notes/deep/a.txt"), ino(".envrc")];

    let (d, k) = (dir.to_str().unwrap(), key.to_str().unwrap());
    let out = ok(run(&["--json", "rotate", "user", "audio-service", "--dir", d, "--identity", k]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["changed"].as_bool().unwrap());
    let removed: Vec<&str> = v["removed"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert!(removed.iter().all(|p| p.starts_with("nsc/")), "only the store's own files are removed: {removed:?}");
    assert_eq!([ino(".git/HEAD"), ino("README.md"), ino("notes/deep/a.txt"), ino(".envrc")], before);
    assert_eq!(std::fs::read_link(dir.join("LINK")).unwrap(), Path::new("README.md"));
    // git still sees its repository, and sees the rotation as a change of the store's files.
    let status = String::from_utf8(g(&["status", "--porcelain"]).stdout).unwrap();
    assert!(status.contains("audio-service.jwt") && status.contains("README.md"), "{status}");
    ok(run(&["verify", d, "--identity", k]));
    // A full generate keeps them too.
    ok(try_generate(&example(), &dir, &key, &["--format", "flat"]));
    assert_eq!([ino(".git/HEAD"), ino("README.md"), ino("notes/deep/a.txt"), ino(".envrc")], before);
}

/// A new store goes into an empty directory or a `git init`-ed one, never
/// into a directory holding someone's files.
#[test]
fn a_new_store_only_goes_into_an_empty_or_dotfile_only_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(repo.join(".git")).unwrap();
    std::fs::write(repo.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    generate(&example(), &repo, &tmp.path().join("a.key"));
    assert!(repo.join(".git/HEAD").exists() && repo.join("manifest.json").exists());

    let home = tmp.path().join("home");
    std::fs::create_dir_all(home.join("Documents")).unwrap();
    std::fs::write(home.join("thesis.txt"), "years of work").unwrap();
    let before = snapshot(&home);
    let out = try_generate(&example(), &home, &tmp.path().join("b.key"), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("holds no clan-nats store (it has Documents, thesis.txt)"), "{err}");
    assert_eq!(snapshot(&home), before);
}

/// Admins given once are kept by later runs; dropping them is explicit and named.
#[test]
fn admins_survive_a_rerun_and_are_only_dropped_explicitly() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    let (_, admin) = {
        let p = tmp.path().join("admin.key");
        let (id, _) = clan_nats::vault::Identity::load_or_create(&utf8(&p)).unwrap();
        (p, id.recipients[0].clone())
    };
    ok(try_generate(&example(), &dir, &key, &["--recipient", &admin]));
    assert_eq!(manifest(&dir).recipients.get("admin-1"), Some(&admin));
    // A routine re-run (with a change, so files are re-encrypted) keeps the admin.
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(example()).unwrap()).unwrap();
    cfg["service_people"][0]["nats_permissions"]["max_payload"] = 2048.into();
    let changed = tmp.path().join("changed.json");
    std::fs::write(&changed, cfg.to_string()).unwrap();
    let out = ok(try_generate(&changed, &dir, &key, &[]));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("admin-1"), "no recipient change");
    let m = manifest(&dir);
    assert_eq!(m.recipients.get("admin-1"), Some(&admin));
    let seeds: Vec<_> = m.secrets.values().filter(|s| s.kind == "seed").collect();
    assert!(seeds.iter().all(|s| s.recipients.contains(&"admin-1".to_string())));
    // --no-admins drops it, and says so by name.
    let out = ok(try_generate(&changed, &dir, &key, &["--no-admins"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("recipient admin-1 ({admin}) removed")), "{err}");
    assert!(!manifest(&dir).recipients.contains_key("admin-1"));
}

/// A second writer fails at once, naming the process that holds the store.
#[test]
fn a_second_writer_is_told_who_holds_the_store() {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    generate(&example(), &dir, &key);
    let mut lock = std::fs::OpenOptions::new() // the documented lock file, held by this test
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp.path().join(".store.clan-nats.lock"))
        .unwrap();
    // SAFETY: a valid open file descriptor.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
    write!(lock, "{}", std::process::id()).unwrap();
    let before = snapshot(&dir);
    let (d, k) = (dir.to_str().unwrap(), key.to_str().unwrap());
    let t = std::time::Instant::now();
    let out = run(&["rotate", "user", "audio-service", "--dir", d, "--identity", k]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("another clan-nats (pid {}) is writing {d}", std::process::id())), "{err}");
    assert!(t.elapsed() < std::time::Duration::from_secs(5), "it must fail at once, not wait");
    assert_eq!(snapshot(&dir), before);
    drop(lock);
    ok(run(&["rotate", "user", "audio-service", "--dir", d, "--identity", k]));
}

/// `plan` (and `generate --dry-run`) shows what would change, writes nothing,
/// and with `--detailed-exitcode` exits 0 (no change), 2 (pending) or 1 (error).
#[test]
fn plan_shows_the_change_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    let plan = |config: &Path, extra: &[&str]| {
        let mut args = vec!["plan", "--config", config.to_str().unwrap(), "--dir", dir.to_str().unwrap()];
        args.extend(["--identity", key.to_str().unwrap(), "--detailed-exitcode"]);
        args.extend(extra);
        run(&args)
    };
    // A new store: pending, and neither the store nor the identity is created.
    let out = plan(&example(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("4 account(s) created (a new store)") && text.contains("nothing was written"), "{text}");
    assert!(!dir.exists() && !key.exists());

    generate(&example(), &dir, &key);
    let out = plan(&example(), &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no changes"));

    // One permission change and one host moved: named, with the reason and the next steps
    // (a user's change needs no server reload: servers hold account JWTs only).
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(example()).unwrap()).unwrap();
    let people = cfg["service_people"].as_array_mut().unwrap();
    let person = people.iter_mut().find(|p| p["name"] == "person-service").unwrap();
    person["nats_permissions"]["publish"] = serde_json::json!(["thecowboyai.org.person.>", "thecowboyai.org.extra.>"]);
    let hosts = cfg["hosts"].as_array_mut().unwrap();
    let media = hosts.iter_mut().find(|h| h["name"] == "media1").unwrap();
    let services = media["services"].as_array_mut().unwrap();
    services.retain(|s| s != "video-service");
    let changed = tmp.path().join("changed.json");
    std::fs::write(&changed, cfg.to_string()).unwrap();
    let before = snapshot(&dir);
    let out = plan(&changed, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for needle in [
        "user core/person-service re-issued: permissions changed",
        "user media/video-service hosts: media1 -> (none)",
        "host:media1 can no longer decrypt 1 file(s)",
        "redeploy hosts core1, nats1 (their creds changed)",
        "host media1 still holds valid creds of video-service until they are rotated: clan-nats rotate user video-service",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert_eq!(snapshot(&dir), before, "plan writes nothing");
    // The same as JSON, and through generate --dry-run.
    let out = plan(&changed, &["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["changes_pending"], true);
    assert!(v["plan"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l.as_str().unwrap().contains("person-service re-issued")));
    let out = ok(try_generate(&changed, &dir, &key, &["--dry-run"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("person-service re-issued"));
    assert_eq!(snapshot(&dir), before);
    // Applying it prints the next steps.
    let out = ok(try_generate(&changed, &dir, &key, &[]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("next steps:") && text.contains("clan-nats rotate user video-service"), "{text}");
    // An error is exit 1 with --detailed-exitcode (not 2, which means "pending").
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, "{").unwrap();
    assert_eq!(plan(&bad, &[]).status.code(), Some(1));
}

/// Removing an account stops every credential of it: without `--yes` (and no
/// terminal) it is refused with the plan, exit 2, nothing written.
#[test]
fn changes_that_kill_deployed_credentials_need_yes() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    generate(&example(), &dir, &key);
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(example()).unwrap()).unwrap();
    cfg["organizational_units"].as_array_mut().unwrap().retain(|u| u["name"] != "Media");
    cfg["service_people"].as_array_mut().unwrap().retain(|p| p["organizational_unit"] != "Media");
    for h in cfg["hosts"].as_array_mut().unwrap() {
        let keep = ["audio-service", "document-service", "video-service"];
        h["services"].as_array_mut().unwrap().retain(|s| !keep.contains(&s.as_str().unwrap()));
    }
    let smaller = tmp.path().join("smaller.json");
    std::fs::write(&smaller, cfg.to_string()).unwrap();
    let before = snapshot(&dir);
    let out = try_generate(&smaller, &dir, &key, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("account media removed: all its users stop working") && err.contains("pass --yes"), "{err}");
    assert_eq!(snapshot(&dir), before);
    ok(try_generate(&smaller, &dir, &key, &["--yes"]));
    assert!(manifest(&dir).account("media").is_none());
}

/// A host or a specialist verifies with its own identity: everything public,
/// plus exactly the secrets encrypted to it; the rest is "not yours", not a problem.
#[test]
fn a_host_verifies_with_its_own_key() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    generate(&example(), &dir, &key);
    let host = tmp.path().join("nats1.key");
    std::fs::copy(insecure("nats1.ssh_host_ed25519_key"), &host).unwrap();
    std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o600)).unwrap();
    let m = manifest(&dir);
    let mine = m.hosts.iter().find(|h| h.name == "nats1").unwrap().creds.len();
    let out = ok(run(&["--json", "verify", dir.to_str().unwrap(), "--identity", host.to_str().unwrap()]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["decrypted"].as_u64().unwrap() as usize, mine);
    assert_eq!(v["decrypted"].as_u64().unwrap() + v["not_yours"].as_u64().unwrap(), m.secrets.len() as u64);
    // A creds file of its own that is damaged is still a problem.
    let own = &m.hosts.iter().find(|h| h.name == "nats1").unwrap().creds[0];
    let mut b = std::fs::read(dir.join(own)).unwrap();
    let n = b.len();
    b[n - 3] ^= 1;
    std::fs::write(dir.join(own), b).unwrap();
    let out = run(&["verify", dir.to_str().unwrap(), "--identity", host.to_str().unwrap()]);
    assert!(!out.status.success());
}

//! Fault injection, short forms (benches/faults.sh runs the long SIGKILL series):
//! a full disk and a read-only parent directory must give a clear error naming
//! the path, a non-zero exit, and leave an existing store byte-identical and
//! valid; a first `generate` killed at any moment leaves no store or a complete one.
//!
//! The disk tests mount tmpfs, so they need root (CI runs as root): without it
//! they fail, saying so. Each re-runs itself in a mount namespace of its own
//! (`unshare -m`), so its tmpfs vanishes with the process, also when the test
//! is killed: no stale mount is left under a temporary directory. The Nix build
//! leaves the full-disk test out by name (nix/check-skips.nix: it needs root).
//! The SIGKILL series for `rotate` is in tests/reconcile.rs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn require_root(what: &str) {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "{what} needs root: it mounts a tmpfs (`mount -t tmpfs`), which only root may do. \
         CI runs as root; run `sudo -E cargo test --test faults` (or tests/run.sh as root)."
    );
}

/// Set in the re-executed test: the mount namespace (`/proc/self/ns/mnt`) of the parent.
const PARENT_NS: &str = "CLAN_NATS_FAULTS_PARENT_MOUNT_NS";
/// The mount source name of this run's tmpfs (`clan-nats-faults-<parent pid>`),
/// so that the check sees only its own mounts, not those of other test runs
/// on the machine.
const MOUNT_TAG: &str = "CLAN_NATS_FAULTS_MOUNT_TAG";

fn mount_tag() -> String {
    std::env::var(MOUNT_TAG).unwrap_or_else(|_| format!("clan-nats-faults-{}", std::process::id()))
}

fn mount_ns() -> String {
    std::fs::read_link("/proc/self/ns/mnt").expect("/proc/self/ns/mnt").to_string_lossy().into_owned()
}

/// True inside a private mount namespace made for `test`: run the body. False in
/// the caller, after it re-ran `test` alone under `unshare -m` (as root; else
/// `unshare -Urm`, an unprivileged user namespace), asserted that it passed and
/// that no mount of it is visible here.
fn in_own_mount_namespace(test: &str) -> bool {
    if let Some(parent) = std::env::var_os(PARENT_NS) {
        assert_ne!(mount_ns(), parent.to_string_lossy(), "{test} must run in a mount namespace of its own");
        return true;
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = Command::new(require("unshare"));
    cmd.arg(if root { "-m" } else { "-Urm" }).args(["--propagation", "private", "--"]);
    let out = cmd
        .arg(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(PARENT_NS, mount_ns())
        .env(MOUNT_TAG, mount_tag())
        .output()
        .expect("unshare runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "{test} in its own mount namespace failed:
{stdout}
{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "{test} did not run in its mount namespace:
{stdout}
{stderr}"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.split_whitespace().any(|w| w == mount_tag()),
        "a tmpfs of {test} is visible outside its namespace:
{mounts}"
    );
    false
}

/// A tmpfs mounted at a directory, unmounted when dropped (also when the test fails).
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), &mount_tag()])
            .arg(path)
            .output()
            .expect("mount runs");
        assert!(out.status.success(), "mount tmpfs at {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
        Tmpfs { path: path.to_path_buf() }
    }

    fn remount_read_only(&self) {
        let out = Command::new("mount").args(["-o", "remount,ro"]).arg(&self.path).output().unwrap();
        assert!(out.status.success(), "remount ro: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.path).status().is_ok_and(|s| s.success());
        if !ok {
            // Busy (a process of a failed test still inside): detach it anyway.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// A config whose store is about 5 MB on disk (929 files): 300 services in 4 accounts.
fn big_config(path: &Path) {
    let units: Vec<Value> =
        (0..4).map(|i| json!({"name": format!("U{i}"), "nats_account_name": format!("u{i}")})).collect();
    let people: Vec<Value> = (0..300)
        .map(|i| json!({"name": format!("svc{i}-service"), "organizational_unit": format!("U{}", i % 4), "role": "Service"}))
        .collect();
    let c = json!({"organization": {"name": "big"}, "organizational_units": units, "service_people": people});
    std::fs::write(path, serde_json::to_vec(&c).unwrap()).unwrap();
}

fn run_args(args: &[String]) -> Output {
    bin().args(args).output().expect("clan-nats runs")
}

fn assert_verifies(dir: &Path, key: &Path) {
    let out = run(&["verify", dir.to_str().unwrap(), "--identity", key.to_str().unwrap()]);
    assert!(out.status.success(), "verify {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
}

/// Names in `dir` (to find temporary directories left behind).
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn assert_failed_with(out: &Output, what: &str, path: &Path) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "expected exit 1 for {what}; stderr: {stderr}");
    assert!(stderr.contains(what), "the error must say {what:?}: {stderr}");
    assert!(stderr.contains(path.to_str().unwrap()), "the error must name a path under {}: {stderr}", path.display());
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_full_disk_fails_cleanly_and_keeps_the_existing_store() {
    if !in_own_mount_namespace("a_full_disk_fails_cleanly_and_keeps_the_existing_store") {
        return;
    }
    require_root("the full-disk test");
    let tmp = tempfile::tempdir().unwrap();
    let (key, big) = (tmp.path().join("owner.key"), tmp.path().join("big.json"));
    big_config(&big);
    let mnt = tmp.path().join("disk");
    let disk = Tmpfs::mount(&mnt, "2m");
    let store = disk.path.join("store");

    // A store that fits (the example: about 60 files), then one that does not, into the same DIR.
    generate(&example(), &store, &key);
    let before = snapshot(&store);
    // (It replaces every account, which needs --yes.)
    let mut args = generate_args(&big, &store, &key);
    args.push("--yes".into());
    let out = run_args(&args);
    assert_failed_with(&out, "No space left on device", &mnt);
    assert!(snapshot(&store) == before, "the existing store must be byte-identical after a failed write");
    assert_verifies(&store, &key);
    assert_eq!(entries(&mnt), ["store"], "the partial new tree must be removed");

    // Into a new DIR on the full disk: nothing is created.
    let fresh = mnt.join("fresh");
    let out = run_args(&generate_args(&big, &fresh, &tmp.path().join("fresh.key")));
    assert_failed_with(&out, "No space left on device", &mnt);
    assert!(!fresh.exists());
    assert_eq!(entries(&mnt), ["store"]);

    // The same store still reconciles when the change fits.
    generate(&example(), &store, &key);
    assert!(snapshot(&store) == before, "an unchanged re-run writes nothing");
}

#[test]
fn a_read_only_parent_fails_cleanly_and_keeps_the_existing_store() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("owner.key");
    let changed = tmp.path().join("changed.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(example()).unwrap()).unwrap();
    let unit = v["organizational_units"][0]["name"].clone();
    v["service_people"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "extra-service", "organizational_unit": unit, "role": "Service"}));
    std::fs::write(&changed, serde_json::to_vec(&v).unwrap()).unwrap();

    // Root ignores directory permissions, so as root the parent is a tmpfs remounted
    // read-only; otherwise a directory chmod-ed 0555.
    let root = unsafe { libc::geteuid() } == 0;
    if root && !in_own_mount_namespace("a_read_only_parent_fails_cleanly_and_keeps_the_existing_store") {
        return;
    }
    let parent = tmp.path().join("ro");
    let mount = if root { Some(Tmpfs::mount(&parent, "8m")) } else { None };
    std::fs::create_dir_all(&parent).unwrap();
    let store = parent.join("store");
    generate(&example(), &store, &key);
    let before = snapshot(&store);
    let expected = if root {
        mount.as_ref().unwrap().remount_read_only();
        "Read-only file system"
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o555)).unwrap();
        "Permission denied"
    };

    // Nothing to change: succeeds without writing.
    let out = run_args(&generate_args(&example(), &store, &key));
    assert!(out.status.success(), "an unchanged re-run needs no write: {}", String::from_utf8_lossy(&out.stderr));
    // A change, and a rotation: refused with the path, the store untouched.
    let out = run_args(&generate_args(&changed, &store, &key));
    assert_failed_with(&out, expected, &parent);
    let mut rotate = generate_args(&example(), &store, &key);
    rotate.splice(0..1, ["rotate".to_string(), "operator-signing-key".to_string()]);
    let out = run_args(&rotate);
    assert_failed_with(&out, expected, &parent);
    assert!(snapshot(&store) == before, "the store must be byte-identical");
    assert_verifies(&store, &key);
    assert_eq!(entries(&parent), ["store"]);

    if !root {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// SIGKILL a first `generate` (no store yet) at moments spread over its run:
/// afterwards DIR is absent or a complete store, and the next run completes.
#[test]
fn a_killed_first_generate_leaves_no_store_or_a_complete_one() {
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("big.json");
    big_config(&big);
    let t = Instant::now();
    generate(&big, &tmp.path().join("probe"), &tmp.path().join("probe.key"));
    let full = t.elapsed();

    let points = 12;
    let (mut absent, mut complete) = (0, 0);
    for i in 0..points {
        let (dir, key) = (tmp.path().join(format!("s{i}")), tmp.path().join(format!("s{i}.key")));
        let mut child =
            bin().args(generate_args(&big, &dir, &key)).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(full.mul_f64(i as f64 / points as f64 * 1.3) + Duration::from_millis(1));
        let _ = child.kill();
        let _ = child.wait();
        if dir.exists() {
            complete += 1;
            assert_verifies(&dir, &key);
        } else {
            absent += 1;
        }
        // The next run (re)creates it and removes what the killed one left beside it.
        generate(&big, &dir, &key);
        assert_verifies(&dir, &key);
    }
    let left: Vec<String> = entries(tmp.path()).into_iter().filter(|n| n.contains(".clan-nats-")).collect();
    assert!(left.is_empty(), "temporary directories left behind: {left:?}");
    assert!(absent > 0, "some kills must come before the store exists (run took {full:?})");
    eprintln!("killed first generate: {absent} absent, {complete} complete (run {full:?})");
}

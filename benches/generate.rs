//! Benchmark: 100 accounts x 100 service users (10,000 users, each on 2 hosts),
//! run through the release binary as a user would. Measures full generation
//! (wall time, peak RSS), a re-run with no change, a re-run after one user's
//! permissions change, and the crypto floor (the same signatures and age
//! encryptions alone, with the same parallelism).
//!
//! `cargo bench --bench generate` runs it at full size; under `cargo test` it
//! runs a small smoke size so the harness itself stays tested.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clan_nats::vault;
use rayon::prelude::*;
use serde_json::{json, Value};

/// The CLI built by the same cargo invocation: the release binary under
/// `cargo bench`, the debug one under `cargo test`.
fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_clan-nats"))
}

fn config(accounts: usize, users: usize, hosts: usize) -> (Value, Vec<String>) {
    let recipients: Vec<String> =
        (0..hosts).map(|_| age::x25519::Identity::generate().to_public().to_string()).collect();
    let units: Vec<Value> =
        (0..accounts).map(|a| json!({"name": format!("Unit{a}"), "nats_account_name": format!("acct{a}")})).collect();
    let mut people = Vec::new();
    let mut host_services: Vec<Vec<String>> = vec![Vec::new(); hosts];
    for a in 0..accounts {
        for u in 0..users {
            let name = format!("a{a}-u{u}-service");
            people.push(json!({
                "name": name, "organizational_unit": format!("Unit{a}"), "role": "Service",
                "nats_permissions": {"publish": [format!("org.a{a}.u{u}.>")], "subscribe": [format!("org.a{a}.>")],
                                     "allow_responses": true, "max_payload": 1048576}
            }));
            let h = (a * users + u) % hosts;
            host_services[h].push(name.clone());
            host_services[(h + 1) % hosts].push(name);
        }
    }
    let hosts: Vec<Value> = host_services
        .into_iter()
        .enumerate()
        .map(|(i, s)| json!({"name": format!("host{i}"), "age_recipient": recipients[i], "services": s}))
        .collect();
    (
        json!({"organization": {"name": "bench"}, "organizational_units": units, "service_people": people, "hosts": hosts}),
        recipients,
    )
}

struct RunResult {
    wall: Duration,
    max_rss_kb: i64,
    report: Value,
}

/// Run the CLI and measure its wall time and peak RSS (wait4's rusage of that child).
fn run(bin: &Path, config: &Path, dir: &Path, key: &Path) -> RunResult {
    let out_path = dir.with_extension("out.json");
    let out_file = std::fs::File::create(&out_path).unwrap();
    let start = Instant::now();
    let child = Command::new(bin)
        .env("CLAN_NATS_PINS", dir.with_extension("pins.json"))
        .args(["--json", "generate", "--config"])
        .arg(config)
        .arg("--out")
        .arg(dir)
        .arg("--identity")
        .arg(key)
        .arg("--new-identity")
        .stdout(out_file)
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child; rusage is a plain struct.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(rc, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "generate failed");
    drop(child);
    let out = std::fs::read_to_string(&out_path).unwrap();
    RunResult { wall, max_rss_kb: usage.ru_maxrss, report: serde_json::from_str(&out).unwrap() }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The crypto floor: as many ed25519 JWT signatures and age encryptions as a
/// full generation makes, with the same rayon parallelism, nothing else.
fn crypto_floor(accounts: usize, users: usize, host_recipients: &[String]) -> Duration {
    let owner = vault::parse_recipient(&age::x25519::Identity::generate().to_public().to_string()).unwrap();
    let hosts: Vec<vault::Recipient> = host_recipients.iter().map(|r| vault::parse_recipient(r).unwrap()).collect();
    let n_users = accounts * users + 1; // + sys
    let n_keys = 2 + 2 * (accounts + 1) + n_users;
    let payload = vec![b'x'; 600];
    let start = Instant::now();
    let signer = nkeys::KeyPair::new_account();
    (0..n_users + accounts + 2).into_par_iter().for_each(|_| {
        signer.sign(&payload).unwrap();
    });
    (0..n_users).into_par_iter().for_each(|i| {
        let rs = [&owner, &hosts[i % hosts.len()], &hosts[(i + 1) % hosts.len()]];
        vault::encrypt(&payload[..500], &rs).unwrap();
    });
    (0..n_keys).into_par_iter().for_each(|_| {
        vault::encrypt(&payload[..58], &[&owner]).unwrap();
    });
    start.elapsed()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (accounts, users, hosts, repeats) = if full { (100, 100, 200, 3) } else { (3, 4, 4, 1) };
    let bin = binary();
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, host_recipients) = config(accounts, users, hosts);
    let config_path = tmp.path().join("org.json");
    std::fs::write(&config_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let key = tmp.path().join("owner.key");

    let mut full_runs = Vec::new();
    let mut rss = 0;
    for i in 0..repeats {
        let dir = tmp.path().join(format!("store{i}"));
        let r = run(&bin, &config_path, &dir, &key);
        assert_eq!(r.report["users"], json!(accounts * users + 1));
        rss = rss.max(r.max_rss_kb);
        full_runs.push(r.wall);
    }
    let dir = tmp.path().join("store0");

    let mut noop_runs = Vec::new();
    for _ in 0..repeats {
        let r = run(&bin, &config_path, &dir, &key);
        assert_eq!(r.report["changed"], json!(false), "a re-run with no change must write nothing");
        assert_eq!(r.report["written"], json!([]));
        noop_runs.push(r.wall);
    }

    let mut one_runs = Vec::new();
    let mut cfg = cfg;
    for i in 0..repeats {
        cfg["service_people"][7]["nats_permissions"]["publish"] = json!([format!("org.changed{i}.>")]);
        std::fs::write(&config_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
        let r = run(&bin, &config_path, &dir, &key);
        let written: Vec<String> = serde_json::from_value(r.report["written"].clone()).unwrap();
        let user = cfg["service_people"][7]["name"].as_str().unwrap();
        let account = cfg["service_people"][7]["organizational_unit"].as_str().unwrap().replace("Unit", "acct");
        let expected = vec![
            "config.json".to_string(),
            "governance/audit.jsonl".to_string(),
            "manifest.json".to_string(),
            format!("nsc/stores/bench/accounts/{account}/users/{user}.creds.age"),
            format!("nsc/stores/bench/accounts/{account}/users/{user}.jwt"),
        ];
        assert_eq!(written, expected, "exactly that user's JWT (and its creds and the manifest) are rewritten");
        one_runs.push(r.wall);
    }

    let floor = crypto_floor(accounts, users, &host_recipients);
    let full_t = median(full_runs);
    println!(
        "clan-nats generate benchmark: {accounts} accounts x {users} users = {} users, each on 2 of {hosts} hosts",
        accounts * users
    );
    println!("  machine: {} cores, {}", std::thread::available_parallelism().map_or(0, |n| n.get()), cpu_model());
    println!(
        "  full generation:      {:>8.3} s  (median of {repeats}), peak RSS {:.1} MB",
        full_t.as_secs_f64(),
        rss as f64 / 1024.0
    );
    println!("  re-run, no change:    {:>8.3} s  (0 files written)", median(noop_runs).as_secs_f64());
    println!(
        "  re-run, one user:     {:>8.3} s  (1 JWT + its creds, manifest, config, audit log)",
        median(one_runs).as_secs_f64()
    );
    println!("  crypto floor:         {:>8.3} s  (signatures + age encryptions only)", floor.as_secs_f64());
    println!("  full / floor:         {:>8.2}x", full_t.as_secs_f64() / floor.as_secs_f64());
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

//! Benchmark: "a re-run costs what changed, not what exists".
//!
//! Drives the CLI as a user would, at several sizes (service users, each on 2
//! hosts): full generation at 1 and 2 rayon threads, the crypto floor (the same
//! signatures and age encryptions alone, at the same thread counts), a re-run
//! with no change, and re-runs after 1, 10 and 100 users' permissions change
//! (each checked to rewrite exactly those users' files plus the store's
//! bookkeeping). Wall time is the median of the repeats; RSS is the peak of the
//! child (wait4's rusage).
//!
//! - `cargo bench --bench generate`: the 1k and 10k sizes.
//! - `cargo bench --bench generate -- --size 100k` (`--size` may repeat or take a
//!   comma list: `--size 1k,10k`), or `CLAN_NATS_BENCH_SIZES=1k,10k,100k`; the
//!   flag wins over the variable. Sizes: smoke, 1k, 10k, 100k.
//! - `cargo test` (no `--bench` argument): the smoke size, every code path.
//! - `CLAN_NATS_BENCH_DIR=DIR`: where the temporary stores go (default $TMPDIR).
//! - `CLAN_NATS_BENCH_OUT=FILE`: also write the Markdown table there.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clan_nats::vault;
use rayon::prelude::*;
use serde_json::{json, Value};

/// Rayon thread counts of the full generation and the floor.
const THREADS: [usize; 2] = [1, 2];
/// The thread count of the re-runs (the targets are for 2 cores).
const RERUN_THREADS: usize = 2;
/// How many users' permissions each edit re-run changes.
const EDITS: [usize; 3] = [1, 10, 100];
/// Files a re-run may write besides the edited users' JWT and creds (plus
/// `manifest.d/<account>.json` of the touched accounts).
const BOOKKEEPING: [&str; 3] = ["config.json", "governance/audit.jsonl", "manifest.json"];

#[derive(Clone, Copy, Debug, PartialEq)]
struct Size {
    name: &'static str,
    accounts: usize,
    users: usize,
    hosts: usize,
    repeats: usize,
}

impl Size {
    fn total_users(&self) -> usize {
        self.accounts * self.users
    }
}

const SIZES: [Size; 4] = [
    Size { name: "smoke", accounts: 5, users: 20, hosts: 8, repeats: 1 },
    Size { name: "1k", accounts: 10, users: 100, hosts: 200, repeats: 3 },
    Size { name: "10k", accounts: 100, users: 100, hosts: 200, repeats: 3 },
    Size { name: "100k", accounts: 100, users: 1000, hosts: 200, repeats: 1 },
];

fn size_named(name: &str) -> Size {
    *SIZES.iter().find(|s| s.name == name).unwrap_or_else(|| {
        let known: Vec<&str> = SIZES.iter().map(|s| s.name).collect();
        panic!("unknown bench size {name:?}; known: {}", known.join(", "))
    })
}

/// The values of `--size X` and `--size=X` in `args`.
fn size_flags(args: &[String]) -> Vec<String> {
    let mut names = Vec::new();
    let mut args = args.iter();
    while let Some(a) = args.next() {
        if let Some(v) = a.strip_prefix("--size=") {
            names.push(v.to_string());
        } else if a == "--size" {
            names.push(args.next().expect("--size needs a value (smoke, 1k, 10k, 100k)").clone());
        }
    }
    names
}

/// Sizes from `--size` flags, else `CLAN_NATS_BENCH_SIZES`, else the default:
/// 1k and 10k under `cargo bench` (which passes `--bench`), smoke otherwise.
/// Each value may be a comma list.
fn selected_sizes() -> Vec<Size> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut names = size_flags(&args);
    if names.is_empty() {
        names.extend(std::env::var("CLAN_NATS_BENCH_SIZES").ok().filter(|s| !s.trim().is_empty()));
    }
    if names.is_empty() {
        let bench = args.iter().any(|a| a == "--bench");
        names.push(if bench { "1k,10k" } else { "smoke" }.to_string());
    }
    let mut sizes: Vec<Size> = Vec::new();
    for name in names.iter().flat_map(|n| n.split(',')).map(str::trim).filter(|n| !n.is_empty()) {
        let size = size_named(name);
        if !sizes.contains(&size) {
            sizes.push(size);
        }
    }
    sizes
}

// ---------------------------------------------------------------- the config

// Names and subjects are short so that the 100k config stays under the CLI's
// config size limit (`MAX_CONFIG_BYTES`, 16 MiB): about 150 bytes per user.
fn user_name(a: usize, u: usize) -> String {
    format!("a{a}u{u}")
}

fn account_name(a: usize) -> String {
    format!("acct{a}")
}

fn unit_name(a: usize) -> String {
    format!("U{a}")
}

fn config(size: &Size) -> (Value, Vec<String>) {
    let recipients: Vec<String> =
        (0..size.hosts).map(|_| age::x25519::Identity::generate().to_public().to_string()).collect();
    let units: Vec<Value> =
        (0..size.accounts).map(|a| json!({"name": unit_name(a), "nats_account_name": account_name(a)})).collect();
    let mut people = Vec::new();
    let mut host_services: Vec<Vec<String>> = vec![Vec::new(); size.hosts];
    for a in 0..size.accounts {
        for u in 0..size.users {
            let name = user_name(a, u);
            people.push(json!({
                "name": name, "organizational_unit": unit_name(a), "role": "Service",
                "nats_permissions": {"publish": [format!("a{a}.u{u}.>")], "subscribe": [format!("a{a}.>")]}
            }));
            let h = (a * size.users + u) % size.hosts;
            host_services[h].push(name.clone());
            host_services[(h + 1) % size.hosts].push(name);
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

/// The config as the CLI reads it; it must fit the CLI's limit.
fn config_bytes(size: &Size, cfg: &Value) -> Vec<u8> {
    let bytes = serde_json::to_vec(cfg).unwrap();
    let limit = clan_nats::config::MAX_CONFIG_BYTES;
    assert!(
        bytes.len() <= limit,
        "size {}: the config is {} bytes, over the CLI's limit of {limit}",
        size.name,
        bytes.len()
    );
    bytes
}

/// The `n` users an edit changes, as (account, user) indices: user i of the
/// edit goes to account i % accounts, so the edits spread over the accounts.
fn edited_users(size: &Size, n: usize) -> Vec<(usize, usize)> {
    assert!(n <= size.total_users(), "{n} edits at size {}", size.name);
    (0..n).map(|i| (i % size.accounts, i / size.accounts)).collect()
}

/// Give those users new publish permissions, distinct for every `round` (and
/// still under their account's `a<A>.>`, which its users subscribe to).
fn edit_permissions(cfg: &mut Value, size: &Size, users: &[(usize, usize)], round: usize) {
    for &(a, u) in users {
        let person = &mut cfg["service_people"][a * size.users + u];
        debug_assert_eq!(person["name"], json!(user_name(a, u)));
        person["nats_permissions"]["publish"] = json!([format!("a{a}.u{u}.v{round}.>")]);
    }
}

// ---------------------------------------------------------------- running the CLI

/// The CLI built by the same cargo invocation: the release binary under
/// `cargo bench`, the debug one under `cargo test`.
fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_clan-nats"))
}

/// One run of the CLI: its resource use and its JSON report. Its stderr is kept
/// in a file, shown if it fails.
struct RunResult {
    wall: Duration,
    cpu: Duration,
    max_rss_kb: i64,
    report: Value,
}

// ---------------------------------------------------------------- measuring a child

/// Set (to a result file) when this bench binary runs as the measuring wrapper.
const WRAPPER_ENV: &str = "CLAN_NATS_BENCH_MEASURE";

/// Wall time, CPU time and peak RSS of one child process.
struct Usage {
    wall: Duration,
    cpu: Duration,
    max_rss_kb: i64,
    /// The wait status.
    status: i32,
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// Spawn `cmd` and wait for it with wait4, for its rusage.
fn spawn_measured(cmd: &mut Command) -> Usage {
    let start = Instant::now();
    let child = cmd.spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child; rusage is a plain struct.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(rc, pid, "wait4");
    drop(child);
    Usage { wall, cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime), max_rss_kb: usage.ru_maxrss, status }
}

/// Run `cmd` (its program, arguments and environment; stdout and stderr go to
/// `stdio`) through a fresh copy of this binary that spawns it, measures it and
/// writes the result to a file. A child's ru_maxrss starts from the peak RSS of
/// the process that spawned it (the exec replaces a vfork-shared or copied
/// address space, whose high-water mark it inherits), and the bench process
/// holds the whole config (hundreds of MB at 100k): spawned from a small
/// wrapper, the CLI's own peak is what is measured.
fn run_wrapped(cmd: &Command, stdio: (std::fs::File, std::fs::File), result: &Path) -> Usage {
    let mut wrapper = Command::new(std::env::current_exe().unwrap());
    wrapper.env(WRAPPER_ENV, result).arg(cmd.get_program()).args(cmd.get_args()).stdout(stdio.0).stderr(stdio.1);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapper.env(k, v),
            None => wrapper.env_remove(k),
        };
    }
    let status = wrapper.status().unwrap();
    assert!(status.success(), "the measuring wrapper failed: {status}");
    let text = std::fs::read_to_string(result).unwrap();
    let f: Vec<i64> = text.split_whitespace().map(|x| x.parse().unwrap()).collect();
    let us = |x: i64| Duration::from_micros(x as u64);
    Usage { wall: us(f[0]), cpu: us(f[1]), max_rss_kb: f[2], status: f[3] as i32 }
}

/// The wrapper's side of `run_wrapped`: run argv[1..] (stdio inherited), write
/// "wall_us cpu_us max_rss_kb wait_status" to the result file.
fn wrapper_main(result: &std::ffi::OsStr) {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let u = spawn_measured(Command::new(&args[0]).args(&args[1..]).env_remove(WRAPPER_ENV));
    let line = format!("{} {} {} {}\n", u.wall.as_micros(), u.cpu.as_micros(), u.max_rss_kb, u.status);
    std::fs::write(result, line).unwrap();
}

/// A store directory and the files it needs besides the config and identity.
struct Store {
    dir: PathBuf,
}

impl Store {
    fn pins(&self) -> PathBuf {
        self.dir.with_extension("pins.json")
    }

    fn out(&self) -> PathBuf {
        self.dir.with_extension("out.json")
    }

    fn err(&self) -> PathBuf {
        self.dir.with_extension("err.txt")
    }

    fn usage(&self) -> PathBuf {
        self.dir.with_extension("usage.txt")
    }

    fn remove(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(self.pins());
        let _ = std::fs::remove_file(self.out());
        let _ = std::fs::remove_file(self.err());
        let _ = std::fs::remove_file(self.usage());
    }
}

struct Bench {
    size: Size,
    bin: PathBuf,
    tmp: tempfile::TempDir,
    cfg: Value,
    recipients: Vec<String>,
    config_path: PathBuf,
    key: PathBuf,
    stores: usize,
}

impl Bench {
    fn new(size: Size) -> Bench {
        let parent = bench_parent_dir();
        let tmp = tempfile::tempdir_in(&parent).unwrap_or_else(|e| panic!("a temp dir in {}: {e}", parent.display()));
        let (cfg, recipients) = config(&size);
        let config_path = tmp.path().join("org.json");
        let key = tmp.path().join("owner.key");
        let bench = Bench { size, bin: binary(), tmp, cfg, recipients, config_path, key, stores: 0 };
        bench.write_config();
        bench
    }

    fn write_config(&self) {
        std::fs::write(&self.config_path, config_bytes(&self.size, &self.cfg)).unwrap();
    }

    fn new_store(&mut self) -> Store {
        self.stores += 1;
        Store { dir: self.tmp.path().join(format!("store{}", self.stores)) }
    }

    /// Run `clan-nats --json generate` on `store` with `threads` rayon threads.
    fn run(&self, store: &Store, threads: usize) -> RunResult {
        let mut cmd = Command::new(&self.bin);
        cmd.env("CLAN_NATS_PINS", store.pins())
            .env("RAYON_NUM_THREADS", threads.to_string())
            .args(["--json", "generate", "--config"])
            .arg(&self.config_path)
            .arg("--out")
            .arg(&store.dir)
            .arg("--identity")
            .arg(&self.key)
            .arg("--new-identity");
        let stdio = (std::fs::File::create(store.out()).unwrap(), std::fs::File::create(store.err()).unwrap());
        let u = run_wrapped(&cmd, stdio, &store.usage());
        if !(libc::WIFEXITED(u.status) && libc::WEXITSTATUS(u.status) == 0) {
            let err = std::fs::read_to_string(store.err()).unwrap_or_default();
            panic!("clan-nats generate failed (wait status {}):\n{err}", u.status);
        }
        let out = std::fs::read_to_string(store.out()).unwrap();
        RunResult { wall: u.wall, cpu: u.cpu, max_rss_kb: u.max_rss_kb, report: serde_json::from_str(&out).unwrap() }
    }

    fn progress(&self, what: &str) {
        eprintln!("[{}] {what}", self.size.name);
    }
}

// ---------------------------------------------------------------- checks

fn written(r: &RunResult) -> Vec<String> {
    serde_json::from_value(r.report["written"].clone()).expect("the report's `written` is a list of paths")
}

fn check_full(size: &Size, r: &RunResult) {
    assert_eq!(r.report["users"], json!(size.total_users() + 1), "every user (and sys's) is generated");
}

fn check_noop(r: &RunResult) {
    assert_eq!(r.report["changed"], json!(false), "a re-run with no change must change nothing");
    assert_eq!(r.report["written"], json!([]), "a re-run with no change must write nothing");
    assert_eq!(r.report["removed"], json!([]), "a re-run with no change must remove nothing");
}

/// The files an edit must rewrite: each edited user's JWT and creds.
fn user_files(users: &[(usize, usize)]) -> BTreeSet<String> {
    let base = |a: usize, u: usize| format!("nsc/stores/bench/accounts/{}/users/{}", account_name(a), user_name(a, u));
    users.iter().flat_map(|&(a, u)| [format!("{}.jwt", base(a, u)), format!("{}.creds.age", base(a, u))]).collect()
}

/// What else an edit may write: the store's bookkeeping and the manifests of the
/// touched accounts.
fn allowed_extra(users: &[(usize, usize)]) -> BTreeSet<String> {
    let manifests = users.iter().map(|&(a, _)| format!("manifest.d/{}.json", account_name(a)));
    BOOKKEEPING.iter().map(|f| f.to_string()).chain(manifests).collect()
}

fn check_edit(r: &RunResult, users: &[(usize, usize)]) {
    assert_eq!(r.report["changed"], json!(true), "a permission edit changes the store");
    assert_eq!(r.report["removed"], json!([]), "a permission edit removes nothing");
    let written: BTreeSet<String> = written(r).into_iter().collect();
    let required = user_files(users);
    let missing: Vec<&String> = required.difference(&written).collect();
    assert!(missing.is_empty(), "{} edited user(s): not rewritten: {missing:?}", users.len());
    let allowed = allowed_extra(users);
    let unexpected: Vec<&String> = written.difference(&required).filter(|f| !allowed.contains(*f)).collect();
    assert!(
        unexpected.is_empty(),
        "{} edited user(s): {} file(s) written that are neither theirs nor allowed bookkeeping: {:?}",
        users.len(),
        unexpected.len(),
        &unexpected[..unexpected.len().min(10)]
    );
}

// ---------------------------------------------------------------- measurements

/// The repeats of one measurement: median wall and CPU time, peak RSS.
struct Stat {
    wall: Duration,
    cpu: Duration,
    max_rss_kb: i64,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

impl Stat {
    fn of(runs: &[RunResult]) -> Stat {
        Stat {
            wall: median(runs.iter().map(|r| r.wall).collect()),
            cpu: median(runs.iter().map(|r| r.cpu).collect()),
            max_rss_kb: runs.iter().map(|r| r.max_rss_kb).max().unwrap_or(0),
        }
    }
}

/// Full generation into fresh stores, `repeats` times; the last store is kept
/// (for the re-runs) if `keep`, the others are removed.
fn measure_full(bench: &mut Bench, threads: usize, keep: bool) -> (Stat, Option<Store>) {
    let mut runs = Vec::new();
    let mut kept = None;
    for i in 0..bench.size.repeats {
        bench.progress(&format!("full generation, {threads} thread(s), run {}/{}", i + 1, bench.size.repeats));
        let store = bench.new_store();
        let r = bench.run(&store, threads);
        check_full(&bench.size, &r);
        runs.push(r);
        if keep && i + 1 == bench.size.repeats {
            kept = Some(store);
        } else {
            store.remove();
        }
    }
    (Stat::of(&runs), kept)
}

fn measure_noop(bench: &Bench, store: &Store) -> Stat {
    bench.progress("re-run, no change");
    let runs: Vec<RunResult> = (0..bench.size.repeats)
        .map(|_| {
            let r = bench.run(store, RERUN_THREADS);
            check_noop(&r);
            r
        })
        .collect();
    Stat::of(&runs)
}

/// Re-runs after changing `n` users' permissions, a new change every repeat
/// (`round` counts the changes made so far, so every one is new).
fn measure_edit(bench: &mut Bench, store: &Store, n: usize, round: &mut usize) -> Stat {
    bench.progress(&format!("re-run, {n} user(s) edited"));
    let users = edited_users(&bench.size, n);
    let mut runs = Vec::new();
    for _ in 0..bench.size.repeats {
        *round += 1;
        edit_permissions(&mut bench.cfg, &bench.size, &users, *round);
        bench.write_config();
        let r = bench.run(store, RERUN_THREADS);
        check_edit(&r, &users);
        runs.push(r);
    }
    Stat::of(&runs)
}

/// The crypto floor: as many ed25519 JWT signatures and age encryptions as a
/// full generation makes, on a rayon pool of `threads`, nothing else.
fn crypto_floor(size: &Size, host_recipients: &[String], threads: usize) -> Duration {
    let owner = vault::parse_recipient(&age::x25519::Identity::generate().to_public().to_string()).unwrap();
    let hosts: Vec<vault::Recipient> = host_recipients.iter().map(|r| vault::parse_recipient(r).unwrap()).collect();
    let n_users = size.total_users() + 1; // + sys
    let n_keys = 2 + 2 * (size.accounts + 1) + n_users;
    let payload = vec![b'x'; 600];
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let signer = nkeys::KeyPair::new_account();
    let start = Instant::now();
    pool.install(|| {
        (0..n_users + size.accounts + 2).into_par_iter().for_each(|_| {
            signer.sign(&payload).unwrap();
        });
        (0..n_users).into_par_iter().for_each(|i| {
            let rs = [&owner, &hosts[i % hosts.len()], &hosts[(i + 1) % hosts.len()]];
            vault::encrypt(&payload[..500], &rs).unwrap();
        });
        (0..n_keys).into_par_iter().for_each(|_| {
            vault::encrypt(&payload[..58], &[&owner]).unwrap();
        });
    });
    start.elapsed()
}

fn measure_floor(bench: &Bench, threads: usize) -> Duration {
    bench.progress(&format!("crypto floor, {threads} thread(s)"));
    median((0..bench.size.repeats).map(|_| crypto_floor(&bench.size, &bench.recipients, threads)).collect())
}

/// Full generation and floor at one thread count.
struct ThreadResult {
    threads: usize,
    full: Stat,
    floor: Duration,
}

struct SizeResult {
    size: Size,
    by_threads: Vec<ThreadResult>,
    noop: Stat,
    edits: Vec<(usize, Stat)>,
}

fn measure_size(size: Size) -> SizeResult {
    let mut bench = Bench::new(size);
    let mut by_threads = Vec::new();
    let mut store = None;
    for threads in THREADS {
        let (full, kept) = measure_full(&mut bench, threads, threads == RERUN_THREADS);
        store = store.or(kept);
        let floor = measure_floor(&bench, threads);
        by_threads.push(ThreadResult { threads, full, floor });
    }
    let store = store.expect("RERUN_THREADS is one of THREADS");
    let noop = measure_noop(&bench, &store);
    let mut round = 0;
    let edits = EDITS.iter().map(|&n| (n, measure_edit(&mut bench, &store, n, &mut round))).collect();
    SizeResult { size, by_threads, noop, edits }
}

// ---------------------------------------------------------------- output

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn mb(kb: i64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn print_human(r: &SizeResult) {
    let s = &r.size;
    println!(
        "clan-nats generate, size {}: {} accounts x {} users = {} users, each on 2 of {} hosts (median of {})",
        s.name,
        s.accounts,
        s.users,
        s.total_users(),
        s.hosts,
        s.repeats
    );
    for t in &r.by_threads {
        println!(
            "  full generation, {} thread(s): {:>9}  (cpu {}), peak RSS {}; crypto floor {}; full/floor {:.2}x",
            t.threads,
            secs(t.full.wall),
            secs(t.full.cpu),
            mb(t.full.max_rss_kb),
            secs(t.floor),
            ratio(t.full.wall, t.floor)
        );
    }
    if let [one, .., last] = &r.by_threads[..] {
        println!(
            "  speed-up {} -> {} threads: full {:.2}x, floor {:.2}x",
            one.threads,
            last.threads,
            ratio(one.full.wall, last.full.wall),
            ratio(one.floor, last.floor)
        );
    }
    let rerun = |what: &str, st: &Stat| {
        println!(
            "  re-run, {what:<20} {:>9}  (cpu {}), peak RSS {}  [{RERUN_THREADS} threads]",
            secs(st.wall),
            secs(st.cpu),
            mb(st.max_rss_kb)
        )
    };
    rerun("no change:", &r.noop);
    for (n, st) in &r.edits {
        rerun(&format!("{n} user(s) edited:"), st);
    }
    println!();
}

const TABLE_HEADER: &str = "| size | cores | full | floor | full/floor | no-op | 1 edit | 10 edits | 100 edits | peak RSS full | peak RSS no-op | peak RSS 1 edit |\n|---|---|---|---|---|---|---|---|---|---|---|---|";

fn edit_stat(r: &SizeResult, n: usize) -> Option<&Stat> {
    r.edits.iter().find(|(k, _)| *k == n).map(|(_, st)| st)
}

/// One row per thread count; the re-run columns only in the row of the re-runs' thread count.
fn table_rows(r: &SizeResult) -> Vec<String> {
    let dash = || "–".to_string();
    r.by_threads
        .iter()
        .map(|t| {
            let reruns = t.threads == RERUN_THREADS;
            let rerun = |st: Option<&Stat>, f: &dyn Fn(&Stat) -> String| st.filter(|_| reruns).map_or_else(dash, f);
            let wall = |st: &Stat| secs(st.wall);
            let rss = |st: &Stat| mb(st.max_rss_kb);
            let cells = [
                r.size.name.to_string(),
                t.threads.to_string(),
                secs(t.full.wall),
                secs(t.floor),
                format!("{:.2}x", ratio(t.full.wall, t.floor)),
                rerun(Some(&r.noop), &wall),
                rerun(edit_stat(r, 1), &wall),
                rerun(edit_stat(r, 10), &wall),
                rerun(edit_stat(r, 100), &wall),
                mb(t.full.max_rss_kb),
                rerun(Some(&r.noop), &rss),
                rerun(edit_stat(r, 1), &rss),
            ];
            format!("| {} |", cells.join(" | "))
        })
        .collect()
}

fn machine_line(tmp_fs: &str) -> String {
    format!(
        "Machine: {} cores, {}; temp dir on {tmp_fs}; load average at start {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        load_average()
    )
}

fn table(results: &[SizeResult], machine: &str) -> String {
    let rows: Vec<String> = results.iter().flat_map(table_rows).collect();
    format!("{TABLE_HEADER}\n{}\n\n{machine}\n", rows.join("\n"))
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

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The filesystem type of `dir` (`stat -f -c %T`).
fn fs_type(dir: &Path) -> String {
    Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown filesystem".into())
}

/// Where the temp dir goes: `CLAN_NATS_BENCH_DIR`, else $TMPDIR (or /tmp).
fn bench_parent_dir() -> PathBuf {
    std::env::var_os("CLAN_NATS_BENCH_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir)
}

/// Every size's config (with the most edited subjects the re-runs write) fits the
/// CLI's config limit: checked by the smoke run, so that `cargo test` catches a
/// config change that would break the 100k size without running it.
fn check_configs_fit() {
    for size in SIZES {
        let (mut cfg, _) = config(&size);
        let edits = *EDITS.iter().max().unwrap();
        edit_permissions(&mut cfg, &size, &edited_users(&size, edits.min(size.total_users())), usize::MAX);
        let bytes = config_bytes(&size, &cfg).len();
        eprintln!("[{}] config: {bytes} bytes", size.name);
    }
}

fn main() {
    if let Some(result) = std::env::var_os(WRAPPER_ENV) {
        return wrapper_main(&result);
    }
    let sizes = selected_sizes();
    if sizes.iter().any(|s| s.name == "smoke") {
        check_configs_fit();
    }
    let machine = machine_line(&fs_type(&bench_parent_dir()));
    let mut results = Vec::new();
    for size in sizes {
        let r = measure_size(size);
        print_human(&r);
        results.push(r);
    }
    let table = table(&results, &machine);
    println!("{table}");
    if let Some(path) = std::env::var_os("CLAN_NATS_BENCH_OUT") {
        std::fs::write(&path, &table).unwrap_or_else(|e| panic!("CLAN_NATS_BENCH_OUT={path:?}: {e}"));
    }
}

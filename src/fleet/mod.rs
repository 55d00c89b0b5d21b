//! The fleet (issue 11): the config's `nats_server` hosts form one cluster.
//!
//! One server keeps the MEMORY resolver and `DIR/server/nats-server.conf`.
//! Two or more servers get `DIR/server/<host>/nats-server.conf` and
//! `server.json` each: `server_name`, a `cluster {}` with authenticated routes
//! to every server, and the `full` resolver with every account preloaded, so
//! a restart or a rollback never downgrades an account (nats-server keeps the
//! newer JWT it holds). The route credential is generated once, kept in
//! `DIR/server/cluster.env.age` (the server hosts and the owner can read it)
//! and reaches nats-server through environment variables ([`PASSWORD_VAR`],
//! [`ROUTES_VAR`]). [`push`] sends changed account JWTs to running servers.

pub mod conf;
pub mod push;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use crate::config::validate::{name_problem, MAX_TEXT};
use crate::config::{Config, Issue};

/// The default route port.
pub const DEFAULT_CLUSTER_PORT: u16 = 6222;
/// The default client port.
pub const DEFAULT_CLIENT_PORT: u16 = 4222;
/// The `full` resolver's default sync interval.
pub const DEFAULT_INTERVAL: &str = "2m";
/// Where a server keeps its account JWTs, relative to its working directory.
pub const DEFAULT_RESOLVER_DIR: &str = "jwt";
/// The sealed route credential (an environment file).
pub const CLUSTER_ENV: &str = "server/cluster.env.age";
/// The route user every server presents and accepts.
pub const ROUTE_USER: &str = "route";
/// Environment variable: the route password (`cluster.authorization`).
pub const PASSWORD_VAR: &str = "CLAN_NATS_CLUSTER_PASSWORD";
/// Environment variable: the route URLs with the credential (`cluster.routes`).
/// nats-server parses an environment variable's value as a config value, so
/// this is a list; it does not substitute variables inside a quoted URL
/// (measured on 2.9.10 and 2.15.1), hence the whole list.
pub const ROUTES_VAR: &str = "CLAN_NATS_CLUSTER_ROUTES";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    pub name: String,
    /// Sorted by name.
    pub servers: Vec<ServerPlan>,
    pub interval: String,
    pub resolver_dir: String,
    pub tls: Option<Tls>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerPlan {
    pub name: String,
    pub address: String,
    pub cluster_port: u16,
    pub client_port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tls {
    pub cert_file: String,
    pub key_file: String,
    pub ca_file: String,
}

impl ServerPlan {
    /// `host:port` of the route listener as the others dial it.
    pub fn route_addr(&self) -> String {
        format!("{}:{}", url_host(&self.address), self.cluster_port)
    }

    /// The route listener: the address itself when it is an IP, else every interface.
    pub fn listen(&self) -> String {
        match self.address.parse::<IpAddr>() {
            Ok(_) => self.route_addr(),
            Err(_) => format!("0.0.0.0:{}", self.cluster_port),
        }
    }
}

fn url_host(address: &str) -> String {
    if address.contains(':') {
        format!("[{address}]")
    } else {
        address.to_string()
    }
}

/// Is this config a multi-server fleet?
pub fn is_fleet(c: &Config) -> bool {
    c.hosts.iter().filter(|h| h.nats_server).count() >= 2
}

/// The fleet of a validated config, `None` for zero or one server.
pub fn plan(c: &Config, operator: &str) -> Option<Fleet> {
    if !is_fleet(c) {
        return None;
    }
    let nc = c.nats_cluster.clone().unwrap_or_default();
    let mut servers: Vec<ServerPlan> = c
        .hosts
        .iter()
        .filter(|h| h.nats_server)
        .map(|h| ServerPlan {
            name: h.name.clone(),
            address: h.address.clone().unwrap_or_default(),
            cluster_port: h.cluster_port.unwrap_or(DEFAULT_CLUSTER_PORT),
            client_port: h.client_port,
        })
        .collect();
    servers.sort_by(|a, b| a.name.cmp(&b.name));
    Some(Fleet {
        name: nc.name.unwrap_or_else(|| operator.to_string()),
        servers,
        interval: nc.sync_interval.unwrap_or_else(|| DEFAULT_INTERVAL.into()),
        resolver_dir: nc.resolver_dir.unwrap_or_else(|| DEFAULT_RESOLVER_DIR.into()),
        tls: nc.tls.map(|t| Tls { cert_file: t.cert_file, key_file: t.key_file, ca_file: t.ca_file }),
    })
}

/// Why `a` is not a host address, or `None`.
fn address_problem(a: &str) -> Option<String> {
    if a.parse::<IpAddr>().is_ok() {
        return None;
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if a.is_empty() || a.len() > 253 || !a.trim_end_matches('.').split('.').all(label_ok) {
        return Some(format!("{a:?} is neither an IP address nor a DNS name"));
    }
    None
}

/// Go duration as nats-server takes it for `interval`: a number and a unit.
fn interval_problem(s: &str) -> Option<String> {
    let digits = s.chars().take_while(char::is_ascii_digit).count();
    let (n, unit) = s.split_at(digits);
    let ok = !n.is_empty() && n.parse::<u64>().is_ok_and(|n| n > 0) && matches!(unit, "ms" | "s" | "m" | "h");
    (!ok).then(|| format!("{s:?} is not a sync interval: use a positive number and ms, s, m or h, e.g. \"2m\""))
}

/// A path written into the server config: printable, no quotes.
fn conf_path_problem(p: &str, absolute: bool) -> Option<String> {
    if p.is_empty() || p.len() > MAX_TEXT {
        return Some(format!("{p:?} is not a usable path"));
    }
    if p.chars().any(|c| c.is_control() || matches!(c, '"' | '\\' | '$')) {
        return Some(format!("{p:?} contains a quote, backslash, '$' or control character"));
    }
    if absolute && !p.starts_with('/') {
        return Some(format!("{p:?} is not an absolute path"));
    }
    None
}

/// The fleet rules, with field paths.
pub fn validate(c: &Config) -> Vec<Issue> {
    let mut out = Vec::new();
    let mut add = |path: String, message: String| out.push(Issue { path, message });
    let servers = c.hosts.iter().filter(|h| h.nats_server).count();
    let mut listeners: HashMap<(String, u16), String> = HashMap::new();
    for (i, h) in c.hosts.iter().enumerate() {
        let at = format!("hosts[{i}]");
        if !h.nats_server {
            for (field, set) in [
                ("address", h.address.is_some()),
                ("cluster_port", h.cluster_port.is_some()),
                ("client_port", h.client_port.is_some()),
            ] {
                if set {
                    add(
                        format!("{at}.{field}"),
                        format!("host {:?} is not a nats_server, so it has no {field}", h.name),
                    );
                }
            }
            continue;
        }
        for (field, port) in [("cluster_port", h.cluster_port), ("client_port", h.client_port)] {
            if port == Some(0) {
                add(format!("{at}.{field}"), "0 is not a port: use 1..=65535".into());
            }
        }
        match &h.address {
            None if servers >= 2 => add(
                format!("{at}.address"),
                format!(
                    "missing: host {:?} is one of {servers} nats servers, which form a cluster, so the others must know where to reach it",
                    h.name
                ),
            ),
            None => {}
            Some(a) => {
                if let Some(p) = address_problem(a) {
                    add(format!("{at}.address"), p);
                    continue;
                }
                let cluster = h.cluster_port.unwrap_or(DEFAULT_CLUSTER_PORT);
                let client = h.client_port.unwrap_or(DEFAULT_CLIENT_PORT);
                if servers >= 2 && cluster == client {
                    add(format!("{at}.cluster_port"), format!("{cluster} is also the client_port of host {:?}", h.name));
                }
                for (field, port) in [("cluster_port", cluster), ("client_port", client)] {
                    let here = format!("{at}.{field}");
                    match listeners.get(&(a.to_ascii_lowercase(), port)) {
                        Some(first) if servers >= 2 => add(
                            here,
                            format!("{a}:{port} is already used by {first}: servers sharing an address need distinct ports"),
                        ),
                        _ => {
                            listeners.entry((a.to_ascii_lowercase(), port)).or_insert(here);
                        }
                    }
                }
            }
        }
    }
    let Some(nc) = &c.nats_cluster else { return out };
    if servers < 2 {
        add(
            "nats_cluster".into(),
            format!("set, but {servers} host(s) have nats_server: true; a cluster needs at least two"),
        );
    }
    if let Some(p) = nc.name.as_deref().and_then(name_problem) {
        add("nats_cluster.name".into(), p);
    }
    if let Some(p) = nc.sync_interval.as_deref().and_then(interval_problem) {
        add("nats_cluster.sync_interval".into(), p);
    }
    if let Some(p) = nc.resolver_dir.as_deref().and_then(|d| conf_path_problem(d, false)) {
        add("nats_cluster.resolver_dir".into(), p);
    }
    if let Some(t) = &nc.tls {
        for (field, v) in [("cert_file", &t.cert_file), ("key_file", &t.key_file), ("ca_file", &t.ca_file)] {
            if let Some(p) = conf_path_problem(v, true) {
                add(format!("nats_cluster.tls.{field}"), p);
            }
        }
    }
    out
}

/// The fleet as the manifest's hosts describe it: the per-server file paths.
pub fn server_dirs(m: &crate::manifest::Manifest) -> Vec<String> {
    let servers: Vec<&str> = m.hosts.iter().filter(|h| h.nats_server).map(|h| h.name.as_str()).collect();
    if servers.len() < 2 {
        return vec![];
    }
    servers.iter().map(|h| format!("server/{h}")).collect()
}

/// The (conf, json) paths of every server config a store must have.
pub fn server_files(m: &crate::manifest::Manifest) -> Vec<(String, String)> {
    let dirs = server_dirs(m);
    if dirs.is_empty() {
        return vec![(crate::store::SERVER_CONF.into(), crate::store::SERVER_JSON.into())];
    }
    dirs.into_iter().map(|d| (format!("{d}/nats-server.conf"), format!("{d}/server.json"))).collect()
}

/// The environment file's plaintext: the password and the route URLs that carry it.
pub fn env_file(f: &Fleet, password: &str) -> String {
    let routes: Vec<String> =
        f.servers.iter().map(|s| format!("\"nats-route://{ROUTE_USER}:{password}@{}\"", s.route_addr())).collect();
    format!(
        "# clan-nats route credential of cluster {:?}. SECRET: deliver it to a root-only runtime file\n\
         # (systemd EnvironmentFile or `set -a; . FILE`), never to the Nix store.\n\
         {PASSWORD_VAR}={password}\n\
         {ROUTES_VAR}='[{}]'\n",
        f.name,
        routes.join(",")
    )
}

/// Parse an environment file (what [`env_file`] writes): variable → value.
pub fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')).unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

/// A new route password: 256 random bits, lower-case letters and digits,
/// starting with a letter (nats-server parses the variable's value as a config
/// value: it must read as a plain string).
pub fn new_password() -> String {
    let a = uuid::Uuid::new_v4();
    let b = uuid::Uuid::new_v4();
    let mut bytes = a.as_bytes().to_vec();
    bytes.extend_from_slice(b.as_bytes());
    format!("p{}", data_encoding::BASE32_NOPAD.encode(&bytes).to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(hosts: serde_json::Value, cluster: Option<serde_json::Value>) -> Config {
        let mut v = serde_json::json!({"organization": {"name": "acme"}, "hosts": hosts});
        if let Some(c) = cluster {
            v["nats_cluster"] = c;
        }
        crate::config::parse("t.json".into(), &v.to_string()).unwrap()
    }
    const R: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

    #[test]
    fn a_multi_server_fleet_needs_addresses_and_distinct_ports() {
        let c = cfg(
            serde_json::json!([
                {"name": "a", "age_recipient": R, "nats_server": true, "address": "127.0.0.1", "client_port": 4301, "cluster_port": 6301},
                {"name": "b", "age_recipient": R, "nats_server": true},
                {"name": "c", "age_recipient": R, "nats_server": true, "address": "127.0.0.1", "client_port": 4302, "cluster_port": 6301},
                {"name": "d", "age_recipient": R, "address": "x"}
            ]),
            Some(
                serde_json::json!({"sync_interval": "soon", "tls": {"cert_file": "c.pem", "key_file": "/k", "ca_file": "/ca"}}),
            ),
        );
        let got: Vec<String> = validate(&c).iter().map(|i| i.to_string()).collect();
        let want = [
            "hosts[1].address: missing",
            "hosts[2].cluster_port: 127.0.0.1:6301 is already used by hosts[0].cluster_port",
            "hosts[3].address: host \"d\" is not a nats_server",
            "nats_cluster.sync_interval: \"soon\" is not a sync interval",
            "nats_cluster.tls.cert_file: \"c.pem\" is not an absolute path",
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (g, w) in got.iter().zip(want) {
            assert!(g.starts_with(w), "{g} does not start with {w}");
        }
    }

    #[test]
    fn one_server_is_no_fleet_and_a_cluster_block_needs_two() {
        let c = cfg(serde_json::json!([{"name": "a", "age_recipient": R, "nats_server": true}]), None);
        assert!(validate(&c).is_empty());
        assert!(plan(&c, "acme").is_none());
        let c = cfg(
            serde_json::json!([{"name": "a", "age_recipient": R, "nats_server": true}]),
            Some(serde_json::json!({})),
        );
        assert_eq!(validate(&c)[0].path, "nats_cluster");
    }

    #[test]
    fn plan_defaults_and_env_file_round_trip() {
        let c = cfg(
            serde_json::json!([
                {"name": "b", "age_recipient": R, "nats_server": true, "address": "nats-b.example.org"},
                {"name": "a", "age_recipient": R, "nats_server": true, "address": "::1", "cluster_port": 7000}
            ]),
            None,
        );
        assert!(validate(&c).is_empty(), "{:?}", validate(&c));
        let f = plan(&c, "acme").unwrap();
        assert_eq!((f.name.as_str(), f.interval.as_str(), f.resolver_dir.as_str()), ("acme", "2m", "jwt"));
        assert_eq!(f.servers[0].route_addr(), "[::1]:7000");
        assert_eq!(f.servers[0].listen(), "[::1]:7000");
        assert_eq!(f.servers[1].listen(), "0.0.0.0:6222");
        let pw = new_password();
        assert!(pw.starts_with('p') && pw.len() > 40 && pw.chars().all(|c| c.is_ascii_alphanumeric()));
        let env = parse_env(&env_file(&f, &pw));
        assert_eq!(env[PASSWORD_VAR], pw);
        assert_eq!(
            env[ROUTES_VAR],
            format!("[\"nats-route://route:{pw}@[::1]:7000\",\"nats-route://route:{pw}@nats-b.example.org:6222\"]")
        );
    }
}

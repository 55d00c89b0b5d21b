//! Issue 14 against real servers (Debian's nats-server 2.9.10 and 2.15.1 from
//! the pinned interop venv) on 127.0.0.1, with the async-nats client: deny
//! rules refuse, a disallowed source network or connection type and an expired
//! user are refused at connect, the subscription and payload limits are
//! enforced, a non-Service person with `nats_user: true` connects, and a change
//! of one user's limits re-issues only that user.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::ConnectErrorKind;
use clan_nats::manifest::Manifest;
use clan_nats::vault::Identity;
use common::*;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

fn config() -> Value {
    json!({
        "organization": {"name": "pt"},
        "nats_wiring": "explicit",
        "organizational_units": [{"name": "Apps", "nats_account_name": "apps",
            "nats_signing_roles": [{"name": "reader", "description": "dashboards",
                "permissions": {"publish": ["pt.r.{{name()}}.>"], "subscribe": ["pt.r.>"]}}]}],
        "service_people": [
            {"name": "deny-service", "organizational_unit": "Apps", "role": "Service",
             "nats_permissions": {"publish": ["pt.a.>"], "subscribe": ["pt.a.>"],
                                  "deny_publish": ["pt.a.secret.>"], "deny_subscribe": ["pt.a.audit.>"],
                                  "max_payload": 1024},
             "nats_limits": {"max_subscriptions": 2}},
            {"name": "ok-service", "organizational_unit": "Apps", "role": "Service",
             "nats_limits": {"source_networks": ["127.0.0.0/8"], "allowed_connection_types": ["STANDARD"],
                             "time_windows": [{"start": "00:00:00", "end": "23:59:59"}], "time_zone": "UTC",
                             "expires": "2099-01-01"}},
            {"name": "far-service", "organizational_unit": "Apps", "role": "Service",
             "nats_limits": {"source_networks": ["10.99.0.0/16"]}},
            {"name": "mqtt-service", "organizational_unit": "Apps", "role": "Service",
             "nats_limits": {"allowed_connection_types": ["MQTT"]}},
            {"name": "old-service", "organizational_unit": "Apps", "role": "Service",
             "nats_limits": {"expires": "2020-01-01"}},
            {"name": "alice", "organizational_unit": "Apps", "role": "Operator", "nats_user": true,
             "nats_permissions": {"publish": ["pt.a.>"], "subscribe": ["pt.a.>"]},
             "nats_limits": {"expires": "90d"}},
            {"name": "bob", "organizational_unit": "Apps", "role": "Developer"},
            {"name": "carol", "organizational_unit": "Apps", "role": "Dashboard", "nats_user": true,
             "nats_signing_role": "reader"}
        ]
    })
}

struct Store {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    key: PathBuf,
    config: PathBuf,
}

impl Store {
    fn new(config: &Value) -> Store {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, key, path) = (tmp.path().join("store"), tmp.path().join("owner.key"), tmp.path().join("org.json"));
        std::fs::write(&path, serde_json::to_vec(config).unwrap()).unwrap();
        generate(&path, &dir, &key);
        Store { tmp, dir, key, config: path }
    }

    fn manifest(&self) -> Manifest {
        Manifest::read_dir(&self.dir).unwrap()
    }

    fn creds(&self, name: &str) -> String {
        let m = self.manifest();
        let u = m
            .accounts
            .iter()
            .flat_map(|a| &a.users)
            .find(|u| u.name == name)
            .unwrap_or_else(|| panic!("no user {name}"));
        let owner = Identity::load(&utf8(&self.key)).unwrap();
        String::from_utf8(owner.decrypt(&std::fs::read(self.dir.join(&u.creds)).unwrap()).unwrap()).unwrap()
    }

    fn jwt(&self, name: &str) -> String {
        let m = self.manifest();
        let u = m.accounts.iter().flat_map(|a| &a.users).find(|u| u.name == name).unwrap();
        std::fs::read_to_string(self.dir.join(&u.jwt)).unwrap()
    }

    fn server(&self, bin: &Path) -> NatsServer {
        NatsServer::start_with(bin, &self.dir.join("server/nats-server.conf"), self.tmp.path())
    }
}

async fn connect(
    url: &str,
    creds: &str,
    name: &str,
) -> Result<(async_nats::Client, mpsc::UnboundedReceiver<String>), async_nats::ConnectError> {
    client::try_connect(url, creds, &clan_nats::plan::inbox_prefix(name)).await
}

async fn expect_error(rx: &mut mpsc::UnboundedReceiver<String>, needle: &str) {
    client::expect_error(rx, needle).await;
}

async fn refused(store: &Store, server: &NatsServer, name: &str) {
    match connect(&server.url(), &store.creds(name), name).await {
        Ok(_) => panic!("{name} was admitted\n{}", server.log_text()),
        Err(e) => assert_eq!(e.kind(), ConnectErrorKind::AuthorizationViolation, "{name}: {e}"),
    }
}

async fn enforced_on(bin: PathBuf) {
    let store = Store::new(&config());
    let server = store.server(&bin);
    let url = server.url();

    // Deny rules: inside the allow list, yet refused.
    let (c, mut errors) = connect(&url, &store.creds("deny-service"), "deny-service").await.unwrap();
    let mut ok = c.subscribe("pt.a.ok").await.unwrap();
    c.flush().await.unwrap();
    c.publish("pt.a.ok", "fine".into()).await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), ok.next()).await.expect("allowed subject delivers").unwrap();
    assert_eq!(m.payload.as_ref(), b"fine");
    c.publish("pt.a.secret.x", "no".into()).await.unwrap();
    c.flush().await.unwrap();
    expect_error(&mut errors, "Permissions Violation for Publish to \"pt.a.secret.x\"").await;
    let _audit = c.subscribe("pt.a.audit.x").await.unwrap();
    c.flush().await.unwrap();
    expect_error(&mut errors, "Permissions Violation for Subscription to \"pt.a.audit.x\"").await;
    // max_subscriptions 2: `ok` and the refused `audit` one were counted or not; a
    // few more must hit the limit.
    let mut extra = Vec::new();
    for i in 0..3 {
        extra.push(c.subscribe(format!("pt.a.more.{i}")).await.unwrap());
    }
    c.flush().await.unwrap();
    expect_error(&mut errors, "maximum subscriptions exceeded").await;
    drop((c, extra));

    // max_payload 1024: a 2 KiB message is a violation (the server closes the connection).
    let (c, mut errors) = connect(&url, &store.creds("deny-service"), "deny-service").await.unwrap();
    let _ = c.publish("pt.a.big", vec![b'x'; 2048].into()).await;
    let _ = c.flush().await;
    expect_error(&mut errors, "maximum payload").await;
    drop(c);

    // Source network, connection type, time window and expiry that allow 127.0.0.1 now.
    let (c, _) = connect(&url, &store.creds("ok-service"), "ok-service")
        .await
        .unwrap_or_else(|e| panic!("ok-service refused: {e}\n{}", server.log_text()));
    c.flush().await.unwrap();
    // A non-Service person with nats_user: true has a user and connects.
    let (a, _) = connect(&url, &store.creds("alice"), "alice").await.unwrap();
    a.flush().await.unwrap();
    // Refused at connect: another source network, only MQTT, expired.
    refused(&store, &server, "far-service").await;
    refused(&store, &server, "mqtt-service").await;
    refused(&store, &server, "old-service").await;
    // old-service differs from ok-service only in its past `exp`.
    let exp = clan_nats::jwt::peek(&store.jwt("old-service")).unwrap().0.exp;
    assert_eq!(exp, 1_577_836_800, "expires 2020-01-01 is the JWT exp");
    assert!(!store.manifest().accounts.iter().flat_map(|a| &a.users).any(|u| u.name == "bob"), "bob has no user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforced_by_nats_server_2_9_10() {
    enforced_on(debian_nats_server()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforced_by_nats_server_2_15_1() {
    enforced_on(modern_nats_server()).await;
}

/// A change of one user's deny rule or limits re-issues that user only, with a newer `iat`.
#[test]
fn a_limit_change_reissues_only_that_user() {
    let store = Store::new(&config());
    let before: Vec<(String, String)> =
        ["deny-service", "ok-service", "alice"].iter().map(|n| (n.to_string(), store.jwt(n))).collect();
    let mut c = config();
    c["service_people"][0]["nats_permissions"]["deny_publish"] = json!(["pt.a.secret.>", "pt.a.private.>"]);
    c["service_people"][1]["nats_limits"]["max_data"] = json!(4096);
    std::fs::write(&store.config, serde_json::to_vec(&c).unwrap()).unwrap();
    let mut args = generate_args(&store.config, &store.dir, &store.key);
    args[0] = "plan".into();
    let out = bin().args(&args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    generate(&store.config, &store.dir, &store.key);
    assert!(text.contains("user apps/deny-service re-issued: permissions changed"), "{text}");
    assert!(text.contains("user apps/ok-service re-issued: limits changed"), "{text}");
    assert!(!text.contains("apps/alice"), "{text}");
    for (name, old) in before {
        let new = store.jwt(&name);
        let iat = |t: &str| clan_nats::jwt::peek(t).unwrap().0.iat;
        if name == "alice" {
            // A relative expiry is counted from the JWT's iat: a re-run keeps it.
            assert_eq!(new, old, "alice is untouched");
            let (std, _) = clan_nats::jwt::peek(&new).unwrap();
            assert_eq!(std.exp, std.iat + 90 * 86_400, "expires 90d after iat");
        } else {
            assert_ne!(new, old, "{name} is re-issued");
            assert!(iat(&new) > iat(&old), "{name}: newer iat");
        }
    }
    let v: Value = serde_json::from_slice(&clan_nats::jwt::peek(&store.jwt("ok-service")).unwrap().1).unwrap();
    assert_eq!(v["nats"]["data"], 4096);
    assert_eq!(v["nats"]["src"], json!(["127.0.0.0/8"]));
    assert_eq!(v["nats"]["times"], json!([{"start": "00:00:00", "end": "23:59:59"}]));
    assert_eq!(v["nats"]["times_location"], "UTC");
    assert_eq!(v["exp"], 4_070_908_800i64);
}

/// A user of a scoped signing key gets the role's permissions (with
/// `{{name()}}` filled in), and a change of the role re-scopes it on a real
/// server without re-issuing the user: its JWT and creds stay byte for byte.
async fn role_change_on(bin: PathBuf) {
    let store = Store::new(&config());
    let jwt_before = store.jwt("carol");
    let creds = store.creds("carol");
    let payload: Value = serde_json::from_slice(&clan_nats::jwt::peek(&jwt_before).unwrap().1).unwrap();
    assert_eq!(payload["nats"]["pub"], json!({}), "a scoped user carries no permissions");
    assert!(payload["nats"].get("subs").is_none(), "nor limits: {payload}");
    let server = store.server(&bin);

    let (c, mut errors) = connect(&server.url(), &creds, "carol").await.unwrap();
    let mut own = c.subscribe("pt.r.carol.x").await.unwrap();
    c.flush().await.unwrap();
    c.publish("pt.r.carol.x", "mine".into()).await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), own.next()).await.expect("role template delivers").unwrap();
    assert_eq!(m.payload.as_ref(), b"mine");
    c.publish("pt.r.dave.x", "not mine".into()).await.unwrap();
    c.flush().await.unwrap();
    expect_error(&mut errors, "Permissions Violation for Publish to \"pt.r.dave.x\"").await;
    drop((c, own));

    // Re-scope the role: now only pt.w.> may be published.
    let mut cfg = config();
    cfg["organizational_units"][0]["nats_signing_roles"][0]["permissions"]["publish"] = json!(["pt.w.>"]);
    std::fs::write(&store.config, serde_json::to_vec(&cfg).unwrap()).unwrap();
    generate(&store.config, &store.dir, &store.key);
    assert_eq!(store.jwt("carol"), jwt_before, "the user is not re-issued");
    assert_eq!(store.creds("carol"), creds, "its creds are unchanged");
    server.reload();

    let (c, mut errors) = connect(&server.url(), &creds, "carol").await.unwrap();
    c.publish("pt.r.carol.x", "old scope".into()).await.unwrap();
    c.flush().await.unwrap();
    expect_error(&mut errors, "Permissions Violation for Publish to \"pt.r.carol.x\"").await;
    let mut w = c.subscribe("pt.r.any").await.unwrap();
    c.flush().await.unwrap();
    c.publish("pt.w.ok", "new scope".into()).await.unwrap();
    c.flush().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), errors.recv()).await.is_err(),
        "publishing to the new scope raised an error"
    );
    drop(w.unsubscribe().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_change_takes_effect_on_2_9_10() {
    role_change_on(debian_nats_server()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_change_takes_effect_on_2_15_1() {
    role_change_on(modern_nats_server()).await;
}

//! Cross-account communication on real nats-servers (Debian's 2.9.10 and
//! 2.15.1 from PyPI) with two real clients (Rust async-nats and nats-py):
//! every (publisher, subscriber) pair the example's permissions allow
//! delivers, within and across accounts; request/reply crosses accounts
//! through a service import with `resp` enforced; a private export delivers
//! nothing without an activation; verify catches a tampered activation;
//! payload limits hold; a flow change re-issues exactly two account JWTs.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clan_nats::jwt::{AccountClaims, UserClaims};
use clan_nats::manifest::{Manifest, UserEntry};
use clan_nats::vault::Identity;
use clan_nats::wiring::subject::{intersect, is_plumbing};
use common::*;
use futures::StreamExt;
use nkeys::KeyPair;
use tokio::sync::mpsc;

struct Store {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    key: PathBuf,
    manifest: Manifest,
    owner: Identity,
}

fn store_from(config: &Path) -> Store {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let key = tmp.path().join("owner.key");
    generate(config, &dir, &key);
    let manifest = Manifest::read_dir(&dir).unwrap();
    let owner = Identity::load(&utf8(&key)).unwrap();
    Store { tmp, dir, key, manifest, owner }
}

/// The example with extra permissions, as a config file in `dir`.
fn example_with(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(example()).unwrap()).unwrap();
    edit(&mut v);
    let p = dir.join("config.json");
    std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    p
}

fn person<'a>(v: &'a mut serde_json::Value, name: &str) -> &'a mut serde_json::Value {
    v["service_people"].as_array_mut().unwrap().iter_mut().find(|p| p["name"] == name).unwrap()
}

impl Store {
    fn creds(&self, user: &UserEntry) -> String {
        let ct = std::fs::read(self.dir.join(&user.creds)).unwrap();
        String::from_utf8(self.owner.decrypt(&ct).unwrap()).unwrap()
    }

    fn user(&self, name: &str) -> &UserEntry {
        self.manifest.accounts.iter().flat_map(|a| &a.users).find(|u| u.name == name).unwrap()
    }

    fn account_of(&self, user: &str) -> &str {
        &self.manifest.accounts.iter().find(|a| a.users.iter().any(|u| u.name == user)).unwrap().name
    }

    /// Every user's creds as a 0600 file (for nats-py), in a private temp dir.
    fn creds_files(&self) -> (tempfile::TempDir, HashMap<String, PathBuf>) {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let mut out = HashMap::new();
        for u in self.manifest.accounts.iter().filter(|a| !a.system).flat_map(|a| &a.users) {
            let p = d.path().join(format!("{}.creds", u.name));
            std::fs::write(&p, self.creds(u)).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            out.insert(u.name.clone(), p);
        }
        (d, out)
    }

    fn server(&self, bin: &Path) -> NatsServer {
        NatsServer::start_with(bin, &self.dir.join("server/nats-server.conf"), self.tmp.path())
    }

    fn operator_signing_key(&self) -> KeyPair {
        let k = self.manifest.key("operator-signing", "", "").unwrap();
        let seed = self.owner.decrypt(&std::fs::read(self.dir.join(&k.path)).unwrap()).unwrap();
        KeyPair::from_seed(std::str::from_utf8(&seed).unwrap().trim()).unwrap()
    }

    fn account_jwt_path(&self, name: &str) -> PathBuf {
        self.dir.join(&self.manifest.account(name).unwrap().jwt)
    }

    /// Re-sign account `name` after `edit`, in its JWT file and in the server config.
    fn resign_account(&self, name: &str, edit: impl FnOnce(&mut AccountClaims)) {
        let path = self.account_jwt_path(name);
        let old = std::fs::read_to_string(&path).unwrap();
        let mut c = AccountClaims::decode(&old).unwrap();
        edit(&mut c);
        let iat = c.std.iat + 1;
        let new = c.encode(&self.operator_signing_key(), iat).unwrap();
        std::fs::write(&path, &new).unwrap();
        let conf = self.dir.join("server/nats-server.conf");
        let text = std::fs::read_to_string(&conf).unwrap();
        assert!(text.contains(old.trim()));
        std::fs::write(&conf, text.replace(old.trim(), &new)).unwrap();
    }
}

/// One (publisher, subscriber) pair the permissions allow, on a concrete subject.
#[derive(Debug, Clone)]
struct Pair {
    publisher: String,
    subscriber: String,
    cross: bool,
    subject: String,
}

/// Every overlapping (publish pattern, subscribe pattern) of two services,
/// reply plumbing aside, each on a subject of its own.
fn pairs(s: &Store) -> Vec<Pair> {
    let users: Vec<&UserEntry> = s.manifest.accounts.iter().filter(|a| !a.system).flat_map(|a| &a.users).collect();
    let mut out = Vec::new();
    for u in &users {
        for p in u.permissions.publish.allow.iter().filter(|p| !is_plumbing(p)) {
            for v in &users {
                for q in v.permissions.subscribe.allow.iter().map(|q| q.split(' ').next().unwrap()) {
                    if is_plumbing(q) {
                        continue;
                    }
                    if let Some(i) = intersect(p, q) {
                        let subject = i.replace('>', &format!("probe.{}.{}", u.name, v.name)).replace('*', "x");
                        out.push(Pair {
                            publisher: u.name.clone(),
                            subscriber: v.name.clone(),
                            cross: s.account_of(&u.name) != s.account_of(&v.name),
                            subject,
                        });
                    }
                }
            }
        }
    }
    out
}

/// The reply inbox prefix a user may subscribe to, from its `sub.allow`
/// (`_INBOX.>` or a per-user `_INBOX_<name>.>`).
fn inbox_prefix(u: &UserEntry) -> String {
    let inbox = u.permissions.subscribe.allow.iter().find(|s| s.starts_with("_INBOX")).expect("responses allowed");
    inbox.strip_suffix(".>").unwrap_or(inbox).to_string()
}

async fn connect(url: &str, creds: &str) -> (async_nats::Client, mpsc::UnboundedReceiver<String>) {
    connect_with_inbox(url, creds, "_INBOX").await
}

async fn connect_with_inbox(
    url: &str,
    creds: &str,
    inbox: &str,
) -> (async_nats::Client, mpsc::UnboundedReceiver<String>) {
    client::try_connect(url, creds, inbox).await.unwrap_or_else(|e| panic!("cannot connect: {e}"))
}

async fn expect_error(rx: &mut mpsc::UnboundedReceiver<String>, needle: &str) -> String {
    client::expect_error(rx, needle).await
}

/// Deliver every pair with async-nats; returns the pairs that did not arrive.
async fn deliver_rust(s: &Store, url: &str, pairs: &[Pair]) -> Vec<String> {
    let mut clients: HashMap<String, async_nats::Client> = HashMap::new();
    for name in pairs.iter().flat_map(|p| [&p.publisher, &p.subscriber]) {
        if !clients.contains_key(name) {
            clients.insert(name.clone(), connect(url, &s.creds(s.user(name))).await.0);
        }
    }
    let mut failed = Vec::new();
    for p in pairs {
        let sub_client = &clients[&p.subscriber];
        let mut sub = sub_client.subscribe(p.subject.clone()).await.unwrap();
        sub_client.flush().await.unwrap();
        let payload = format!("{} → {}", p.publisher, p.subscriber);
        let pub_client = &clients[&p.publisher];
        // A cross-account SUB reaches the exporter's side asynchronously: publish
        // again (same subject, same payload) until it arrives, for up to 5 s.
        let got = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                pub_client.publish(p.subject.clone(), payload.clone().into()).await.unwrap();
                pub_client.flush().await.unwrap();
                if let Ok(m) = tokio::time::timeout(Duration::from_millis(200), sub.next()).await {
                    return m;
                }
            }
        })
        .await;
        match got {
            Ok(Some(m)) if m.payload.as_ref() == payload.as_bytes() => {}
            other => failed.push(format!("{p:?}: {other:?}")),
        }
    }
    failed
}

/// Run the nats-py client on a job; returns its result lines.
fn nats_py(job: &serde_json::Value) -> (bool, Vec<serde_json::Value>) {
    use std::io::Write;
    let mut child = std::process::Command::new(interop_python())
        .arg(repo("tests/interop/pairs.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nats-py runs");
    child.stdin.take().unwrap().write_all(job.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("nats-py printed {l:?}")))
        .collect();
    assert!(out.status.code().is_some(), "nats-py was killed: {}", String::from_utf8_lossy(&out.stderr));
    if lines.is_empty() {
        panic!("nats-py printed nothing: {}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.success(), lines)
}

async fn example_pairs_deliver(bin: PathBuf) {
    let s = store_from(&example());
    let all = pairs(&s);
    let same = all.iter().filter(|p| !p.cross).count();
    let cross: Vec<&Pair> = all.iter().filter(|p| p.cross).collect();
    assert_eq!(same, 18, "the example has 18 same-account pairs");
    let cross_names: Vec<(&str, &str)> = cross.iter().map(|p| (p.publisher.as_str(), p.subscriber.as_str())).collect();
    assert_eq!(cross_names, [("person-service", "git-service"), ("person-service", "document-service")]);
    // Each cross-account pair is a flow in the manifest.
    for p in &cross {
        assert!(
            s.manifest.flows.iter().any(|f| f.exporter == s.account_of(&p.publisher)
                && f.importer == s.account_of(&p.subscriber)
                && clan_nats::wiring::subject::contains(&f.subject, &p.subject)),
            "no flow for {p:?}"
        );
    }
    let server = s.server(&bin);
    let failed = deliver_rust(&s, &server.url(), &all).await;
    assert!(
        failed.is_empty(),
        "async-nats: {} of {} pairs not delivered: {failed:#?}\n{}",
        failed.len(),
        all.len(),
        server.log_text()
    );

    // nats-py: every pair again, cross-account ones included.
    let (_keep, files) = s.creds_files();
    let job = serde_json::json!({
        "url": server.url(),
        "pairs": all.iter().map(|p| serde_json::json!({
            "publisher": files[&p.publisher], "subscriber": files[&p.subscriber],
            "subject": p.subject.replace("probe", "py"), "expect": true})).collect::<Vec<_>>(),
    });
    let (ok, lines) = nats_py(&job);
    assert_eq!(lines.len(), all.len());
    assert!(ok && lines.iter().all(|l| l["ok"] == true), "nats-py: {lines:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_pairs_deliver_on_nats_server_2_9_10() {
    example_pairs_deliver(debian_nats_server()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_pairs_deliver_on_nats_server_2_15_1() {
    example_pairs_deliver(modern_nats_server()).await;
}

/// git-service (development) may also ask location-service (core) for lookups.
fn request_config(dir: &Path) -> PathBuf {
    example_with(dir, |v| {
        person(v, "git-service")["nats_permissions"]["publish"]
            .as_array_mut()
            .unwrap()
            .push("thecowboyai.org.location.lookup".into());
    })
}

async fn request_reply_crosses_accounts(bin: PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let s = store_from(&request_config(tmp.path()));
    let flow =
        s.manifest.flows.iter().find(|f| f.kind == clan_nats::config::FlowType::Service).expect("a service flow");
    assert_eq!((flow.exporter.as_str(), flow.importer.as_str()), ("core", "development"));
    assert_eq!(flow.subject, "thecowboyai.org.location.lookup");
    let core = AccountClaims::decode(&std::fs::read_to_string(s.account_jwt_path("core")).unwrap()).unwrap();
    let export = core.nats.exports.iter().find(|e| e.kind == "service").unwrap();
    assert_eq!((export.response_type.as_str(), export.token_req), ("Singleton", true));

    let server = s.server(&bin);
    let (responder, mut responder_errors) = connect(&server.url(), &s.creds(s.user("location-service"))).await;
    let git = s.user("git-service");
    let (requester, _) = connect_with_inbox(&server.url(), &s.creds(git), &inbox_prefix(git)).await;
    let mut sub = responder.subscribe("thecowboyai.org.location.lookup").await.unwrap();
    responder.flush().await.unwrap();
    let answer = tokio::spawn(async move {
        let msg = sub.next().await.expect("the request arrives in core");
        let reply = msg.reply.clone().expect("a request has a reply subject");
        responder.publish(reply.clone(), "at the ranch".into()).await.unwrap();
        // resp {max: 1}: a second reply to the same request is refused.
        responder.publish(reply.clone(), "and again".into()).await.unwrap();
        responder.flush().await.unwrap();
        (reply.to_string(), responder)
    });
    // flush() only writes the SUB: the server may not have wired it through the
    // service import when the request arrives ("no responders", or silence on
    // 2.9.10). Retry those two cases only, for up to 10 s.
    let reply = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let r = tokio::time::timeout(
                Duration::from_millis(500),
                requester.request("thecowboyai.org.location.lookup", "where?".into()),
            )
            .await;
            match r {
                Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {}
                Err(_) => {}
                Ok(other) => return other,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("request timed out")
    .unwrap_or_else(|e| panic!("request failed: {e}\n{}", server.log_text()));
    assert_eq!(reply.payload.as_ref(), b"at the ranch");
    let (reply_subject, _responder) = answer.await.unwrap();
    assert!(reply_subject.starts_with("_R_."), "replies cross accounts on _R_ subjects, got {reply_subject}");
    let e = expect_error(&mut responder_errors, "Permissions Violation for Publish").await;
    assert!(e.contains("_R_."), "the second reply is refused by resp: {e}");

    // nats-py, same request through the same import.
    let (_keep, files) = s.creds_files();
    let job = serde_json::json!({"url": server.url(), "requests": [{
        "requester": files["git-service"], "inbox_prefix": inbox_prefix(s.user("git-service")),
        "responder": files["location-service"], "subject": "thecowboyai.org.location.lookup"}]});
    let (ok, lines) = nats_py(&job);
    assert!(ok && lines.len() == 1 && lines[0]["ok"] == true, "nats-py request: {lines:#?}");
    assert!(lines[0]["detail"]["reply_subjects"][0].as_str().unwrap().starts_with("_R_."), "{lines:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reply_crosses_accounts_on_2_9_10() {
    request_reply_crosses_accounts(debian_nats_server()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reply_crosses_accounts_on_2_15_1() {
    request_reply_crosses_accounts(modern_nats_server()).await;
}

fn verify_output(s: &Store) -> String {
    let out = run(&["verify", s.dir.to_str().unwrap(), "--identity", s.key.to_str().unwrap()]);
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_export_delivers_nothing_without_an_activation() {
    let s = store_from(&example());
    assert!(verify_output(&s).contains(": ok:"));
    // media's import loses its activation token; development keeps its own.
    s.resign_account("media", |c| {
        assert_eq!(c.nats.imports.len(), 1);
        c.nats.imports[0].token.clear();
    });
    let v = verify_output(&s);
    assert!(
        v.contains("media.jwt: import #0") && v.contains("is private but the import has no activation token"),
        "{v}"
    );

    for bin in [debian_nats_server(), modern_nats_server()] {
        let server = s.server(&bin);
        let (publisher, _) = connect(&server.url(), &s.creds(s.user("person-service"))).await;
        let (with, _) = connect(&server.url(), &s.creds(s.user("git-service"))).await;
        let (without, _) = connect(&server.url(), &s.creds(s.user("document-service"))).await;
        let mut a = with.subscribe("thecowboyai.org.person.created").await.unwrap();
        let mut b = without.subscribe("thecowboyai.org.person.created").await.unwrap();
        with.flush().await.unwrap();
        without.flush().await.unwrap();
        // Publish until git-service (with an activation) hears it, then once a
        // second for 1 s more: document-service (without one) must hear nothing.
        let got = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                publisher.publish("thecowboyai.org.person.created", "alice".into()).await.unwrap();
                publisher.flush().await.unwrap();
                if let Ok(m) = tokio::time::timeout(Duration::from_millis(200), a.next()).await {
                    return m;
                }
            }
        })
        .await
        .expect("git-service has an activation");
        assert_eq!(got.unwrap().payload.as_ref(), b"alice");
        publisher.publish("thecowboyai.org.person.created", "bob".into()).await.unwrap();
        publisher.flush().await.unwrap();
        let none = tokio::time::timeout(Duration::from_secs(1), b.next()).await;
        assert!(none.is_err(), "{}: document-service received without an activation: {none:?}", bin.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_catches_a_tampered_activation() {
    let s = store_from(&example());
    s.resign_account("media", |c| {
        // Widen the grant inside the token without re-signing it.
        let t = &mut c.nats.imports[0].token;
        let parts: Vec<&str> = t.split('.').collect();
        let payload = data_encoding::BASE64URL_NOPAD.decode(parts[1].as_bytes()).unwrap();
        let forged = String::from_utf8(payload).unwrap().replace("thecowboyai.org.person.\\u003e", "\\u003e");
        *t = format!("{}.{}.{}", parts[0], data_encoding::BASE64URL_NOPAD.encode(forged.as_bytes()), parts[2]);
    });
    let v = verify_output(&s);
    assert!(v.contains("media.jwt: import #0") && v.contains("activation token: signature does not verify"), "{v}");
    // nats-server -t accepts it: only verify stands between this and the runtime.
    let out = std::process::Command::new(debian_nats_server())
        .args(["-t", "-c", s.dir.join("server/nats-server.conf").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

async fn payload_limits(bin: PathBuf) {
    let s = store_from(&example());
    let conf = std::fs::read_to_string(s.dir.join("server/nats-server.conf")).unwrap();
    assert!(conf.contains("\nmax_payload: 10485760\n"), "{conf}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.dir.join("server/server.json")).unwrap()).unwrap();
    assert_eq!(json["max_payload"], 10485760);
    let big = vec![b'x'; 2 * 1024 * 1024];
    let server = s.server(&bin);

    let audio = s.user("audio-service");
    assert_eq!(audio.payload, 10 * 1024 * 1024);
    let (client, _) = connect(&server.url(), &s.creds(audio)).await;
    let mut sub = client.subscribe("thecowboyai.media.audio.big").await.unwrap();
    client.flush().await.unwrap();
    client.publish("thecowboyai.media.audio.big", big.clone().into()).await.unwrap();
    client.flush().await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), sub.next()).await.expect("2 MiB delivered").unwrap();
    assert_eq!(msg.payload.len(), big.len());

    let spaces = s.user("spaces-service");
    assert_eq!(spaces.payload, 1024 * 1024);
    let (watcher, _) = connect(&server.url(), &s.creds(spaces)).await;
    let mut sub = watcher.subscribe("thecowboyai.dev.spaces.big").await.unwrap();
    watcher.flush().await.unwrap();
    let (client, _) = connect(&server.url(), &s.creds(spaces)).await;
    // The server refuses it (and drops the connection, so the client may only see a reset).
    if client.publish("thecowboyai.dev.spaces.big", big.into()).await.is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
    }
    let want = "maximum payload exceeded: 2097152 vs 1048576";
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !server.log_text().contains(want) {
        assert!(std::time::Instant::now() < deadline, "no {want:?} in the server log:\n{}", server.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let none = tokio::time::timeout(Duration::from_millis(500), sub.next()).await;
    assert!(none.is_err(), "a refused payload was delivered: {none:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_limits_hold_on_2_9_10() {
    payload_limits(debian_nats_server()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_limits_hold_on_2_15_1() {
    payload_limits(modern_nats_server()).await;
}

fn jwts(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    snapshot(dir).into_iter().filter(|(k, _)| k.ends_with(".jwt")).map(|(k, (b, _))| (k, b)).collect()
}

#[test]
fn a_flow_change_reissues_exactly_the_exporter_and_the_importer() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store_from(&example());
    let cfg = |dir: &Path, import: bool| {
        example_with(dir, |v| {
            let units = v["organizational_units"].as_array_mut().unwrap();
            units[1]["nats_exports"] = serde_json::json!([{"subject": "thecowboyai.media.audio.>", "type": "stream"}]);
            if import {
                units[2]["nats_imports"] = serde_json::json!([{"from_unit": "Media", "subject": "thecowboyai.media.audio.>", "type": "stream"}]);
            }
        })
    };
    let before = jwts(&s.dir);
    let out = try_generate(&cfg(tmp.path(), true), &s.dir, &s.key, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("new flow: stream media → development: thecowboyai.media.audio.> (declared)"), "{stdout}");
    let after = jwts(&s.dir);
    let changed: Vec<&String> = after.keys().filter(|k| before.get(*k) != after.get(*k)).collect();
    assert_eq!(
        changed,
        [
            "nsc/stores/thecowboyai/accounts/development/development.jwt",
            "nsc/stores/thecowboyai/accounts/media/media.jwt"
        ]
    );
    for k in changed {
        let iat = |b: &[u8]| AccountClaims::decode(std::str::from_utf8(b).unwrap()).unwrap().std.iat;
        assert!(iat(&after[k]) > iat(&before[k]), "{k}: iat must grow");
    }
    let dev = AccountClaims::decode(
        std::str::from_utf8(&after["nsc/stores/thecowboyai/accounts/development/development.jwt"]).unwrap(),
    )
    .unwrap();
    let token = &dev.nats.imports.iter().find(|i| i.subject == "thecowboyai.media.audio.>").unwrap().token;
    let act = clan_nats::jwt::ActivationClaims::decode(token).unwrap();
    assert_eq!(act.nats.issuer_account, s.manifest.account("media").unwrap().public_key);
    assert_eq!(act.std.iss, s.manifest.account("media").unwrap().signing_keys[0]);

    // No change: nothing written.
    let snap = snapshot(&s.dir);
    let out = try_generate(&cfg(tmp.path(), true), &s.dir, &s.key, &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("unchanged"));
    assert!(snap == snapshot(&s.dir), "a no-change re-run writes nothing");

    // The import disappears: the export revokes development, both re-issued.
    let out = try_generate(&cfg(tmp.path(), false), &s.dir, &s.key, &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed flow: stream media → development"));
    let last = jwts(&s.dir);
    let changed: Vec<&String> = last.keys().filter(|k| last.get(*k) != after.get(*k)).collect();
    assert_eq!(changed.len(), 2, "{changed:?}");
    let media =
        AccountClaims::decode(std::str::from_utf8(&last["nsc/stores/thecowboyai/accounts/media/media.jwt"]).unwrap())
            .unwrap();
    let e = media.nats.exports.iter().find(|e| e.subject == "thecowboyai.media.audio.>").unwrap();
    let dev_key = &s.manifest.account("development").unwrap().public_key;
    assert!(e.revocations.get(dev_key).is_some_and(|ts| *ts >= act.std.iat), "{e:?}");
    assert!(verify_output(&s).contains(": ok:"));
    // Users were not touched by any of this.
    for (k, v) in &last {
        if k.contains("/users/") {
            assert_eq!(Some(v), before.get(k), "{k}");
            UserClaims::decode(std::str::from_utf8(v).unwrap()).unwrap();
        }
    }
}

#[test]
fn info_flows_shows_who_hears_whom() {
    let s = store_from(&example());
    let out = run(&["info", "--dir", s.dir.to_str().unwrap(), "--flows"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("stream core → media: thecowboyai.org.person.> (derived)\n  person-service (core) → document-service (media)"), "{text}");
    let out = run(&["--json", "info", "--dir", s.dir.to_str().unwrap(), "--flows"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["flows"].as_array().unwrap().len(), 2);
    assert_eq!(v["flows"][0]["receivers"][0], "git-service (development)");
}

#[test]
fn a_subscription_nobody_publishes_is_warned() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = example_with(tmp.path(), |v| {
        person(v, "nix-service")["nats_permissions"]["subscribe"]
            .as_array_mut()
            .unwrap()
            .push("thecowboyai.dev.gti.>".into());
    });
    let out = try_generate(&cfg, &tmp.path().join("store"), &tmp.path().join("k"), &[]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning: service_people[9].nats_permissions.subscribe[2]: no service may publish to \"thecowboyai.dev.gti.>\""), "{err}");
}

#[test]
fn bad_wiring_is_a_config_error_with_a_path() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = example_with(tmp.path(), |v| {
        v["nats_wiring"] = "explicit".into();
        v["organizational_units"][2]["nats_imports"] =
            serde_json::json!([{"from_unit": "Media", "subject": "thecowboyai.media.audio.>", "type": "stream"}]);
    });
    let out = try_generate(&cfg, &tmp.path().join("store"), &tmp.path().join("k"), &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "organizational_units[2].nats_imports[0].subject: account \"media\" (unit \"Media\") has no stream export"
        ),
        "{err}"
    );
    assert!(!tmp.path().join("store").exists());
}

/// Publish on `subject` until `sub` hears `payload` (a cross-account SUB reaches
/// the exporter asynchronously), for up to 5 s; returns the subject it arrived on.
async fn hear(
    publisher: &async_nats::Client,
    subject: &str,
    sub: &mut async_nats::Subscriber,
    payload: &str,
) -> String {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            publisher.publish(subject.to_string(), payload.to_string().into()).await.unwrap();
            publisher.flush().await.unwrap();
            if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), sub.next()).await {
                assert_eq!(m.payload.as_ref(), payload.as_bytes());
                return m.subject.to_string();
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{payload:?} on {subject} never arrived"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_wiring_delivers_declared_flows_only() {
    let s = store_from(&repo("tests/fixtures/wiring/explicit.json"));
    let declared = s.manifest.flows.iter().filter(|f| f.origin == clan_nats::wiring::Origin::Declared).count();
    assert_eq!((declared, s.manifest.flows.len()), (4, 4), "explicit: declared flows only");
    // The public export needs no activation; the private ones carry one.
    let dev = AccountClaims::decode(&std::fs::read_to_string(s.account_jwt_path("development")).unwrap()).unwrap();
    let tokens: Vec<(&str, bool)> =
        dev.nats.imports.iter().map(|i| (i.subject.as_str(), !i.token.is_empty())).collect();
    assert_eq!(
        tokens,
        [
            ("thecowboyai.media.video.>", false),
            ("thecowboyai.org.location.lookup", true),
            ("thecowboyai.org.person.>", true)
        ]
    );
    for bin in [debian_nats_server(), modern_nats_server()] {
        let server = s.server(&bin);
        let url = server.url();
        let (person, _) = connect(&url, &s.creds(s.user("person-service"))).await;
        let (git, _) = connect(&url, &s.creds(s.user("git-service"))).await;
        let (video, _) = connect(&url, &s.creds(s.user("video-service"))).await;
        let (spaces, _) = connect(&url, &s.creds(s.user("spaces-service"))).await;
        // local_subject: core's person events arrive in development renamed.
        let mut renamed = git.subscribe("thecowboyai.dev.inbound.person.>").await.unwrap();
        let mut same_name = git.subscribe("thecowboyai.org.person.>").await.unwrap();
        git.flush().await.unwrap();
        let got = hear(&person, "thecowboyai.org.person.created", &mut renamed, "alice").await;
        assert_eq!(got, "thecowboyai.dev.inbound.person.created", "{}", bin.display());
        let none = tokio::time::timeout(Duration::from_millis(500), same_name.next()).await;
        assert!(none.is_err(), "explicit wiring has no same-name import into development: {none:?}");
        // The public export.
        let mut v = spaces.subscribe("thecowboyai.media.video.new").await.unwrap();
        spaces.flush().await.unwrap();
        hear(&video, "thecowboyai.media.video.new", &mut v, "film").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_exporter_reissues_its_activations() {
    let s = store_from(&example());
    let token = |s: &Store, importer: &str| {
        let c = AccountClaims::decode(&std::fs::read_to_string(s.account_jwt_path(importer)).unwrap()).unwrap();
        clan_nats::jwt::ActivationClaims::decode(&c.nats.imports[0].token).unwrap()
    };
    let before = token(&s, "media");
    let out =
        run(&["rotate", "account", "core", "--dir", s.dir.to_str().unwrap(), "--identity", s.key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m = Manifest::read_dir(&s.dir).unwrap();
    let core = m.account("core").unwrap();
    for importer in ["media", "development"] {
        let after = token(&s, importer);
        assert_eq!(after.std.iss, core.signing_keys[0], "{importer}: signed by core's new signing key");
        assert_eq!(after.nats.issuer_account, core.public_key);
        assert!(after.std.iat > before.std.iat || after.std.iss != before.std.iss);
        assert_ne!(after.std.iss, before.std.iss);
    }
    assert!(verify_output(&s).contains(": ok:"), "{}", verify_output(&s));
    // And the re-issued activations work on a real server.
    let s = Store { manifest: m, ..s };
    let server = s.server(&debian_nats_server());
    let (person, _) = connect(&server.url(), &s.creds(s.user("person-service"))).await;
    let (doc, _) = connect(&server.url(), &s.creds(s.user("document-service"))).await;
    let mut sub = doc.subscribe("thecowboyai.org.person.rotated").await.unwrap();
    doc.flush().await.unwrap();
    hear(&person, "thecowboyai.org.person.rotated", &mut sub, "after rotation").await;
}

#[test]
fn verify_notices_imports_that_differ_from_the_manifest_flows() {
    let s = store_from(&example());
    s.resign_account("media", |c| c.nats.imports.clear());
    let v = verify_output(&s);
    assert!(
        v.contains("manifest.json: flows do not match the imports of the account JWTs (2 listed, 1 imported)"),
        "{v}"
    );
}

//! End to end against a real nats-server (Debian's 2.9.10) on 127.0.0.1: every
//! service of the example connects with its generated creds, its allowed
//! subjects work, its denied subjects are refused, and foreign creds are refused.

mod common;

use std::time::Duration;

use async_nats::ConnectErrorKind;
use clan_nats::jwt::creds;
use clan_nats::manifest::{Manifest, UserEntry};
use clan_nats::vault::Identity;
use common::*;
use futures::StreamExt;
use tokio::sync::mpsc;

struct Store {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    manifest: Manifest,
    owner: Identity,
}

fn store_from(config: &std::path::Path) -> Store {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let key = tmp.path().join("owner.key");
    generate(config, &dir, &key);
    let manifest = Manifest::read_dir(&dir).unwrap();
    let owner = Identity::load(&utf8(&key)).unwrap();
    Store { _tmp: tmp, dir, manifest, owner }
}

impl Store {
    fn creds(&self, user: &UserEntry) -> String {
        let ct = std::fs::read(self.dir.join(&user.creds)).unwrap();
        String::from_utf8(self.owner.decrypt(&ct).unwrap()).unwrap()
    }

    fn user(&self, name: &str) -> &UserEntry {
        self.manifest.accounts.iter().flat_map(|a| &a.users).find(|u| u.name == name).unwrap()
    }

    fn services(&self) -> Vec<&UserEntry> {
        self.manifest.accounts.iter().filter(|a| !a.system).flat_map(|a| &a.users).collect()
    }

    fn server(&self) -> NatsServer {
        NatsServer::start(&self.dir.join("server/nats-server.conf"), self.dir.parent().unwrap())
    }
}

/// Connect with creds held only in memory; server errors arrive on the channel.
/// The client uses its own reply inbox `_INBOX_<user>` (the documented
/// `custom_inbox_prefix` setting), the only inbox its permissions allow.
async fn connect(
    url: &str,
    creds: &str,
) -> Result<(async_nats::Client, mpsc::UnboundedReceiver<String>), async_nats::ConnectError> {
    let name = clan_nats::jwt::creds::parse_checked(creds).expect("creds parse").0.std.name;
    connect_with_inbox(url, creds, &clan_nats::plan::inbox_prefix(&name)).await
}

async fn connect_with_inbox(
    url: &str,
    creds: &str,
    inbox: &str,
) -> Result<(async_nats::Client, mpsc::UnboundedReceiver<String>), async_nats::ConnectError> {
    client::try_connect(url, creds, inbox).await
}

async fn expect_error(rx: &mut mpsc::UnboundedReceiver<String>, needle: &str) {
    client::expect_error(rx, needle).await;
}

/// A concrete subject matched by a permission pattern.
fn concrete(pattern: &str) -> String {
    pattern.replace('>', "probe").replace('*', "x")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_connects_and_its_permissions_are_enforced() {
    let store = store_from(&example());
    let server = store.server();
    let services = store.services();
    assert_eq!(services.len(), 11, "the example has 11 services");
    for user in services {
        let creds_text = store.creds(user);
        let (claims, _) = creds::parse_checked(&creds_text).unwrap();
        assert_eq!(claims.std.sub, user.public_key);
        let (client, mut errors) = connect(&server.url(), &creds_text)
            .await
            .unwrap_or_else(|e| panic!("{} cannot connect: {e}\n{}", user.name, server.log_text()));

        // Allowed: its first publish subject, which it also subscribes to.
        let subject = concrete(&user.permissions.publish.allow[0]);
        let mut sub = client.subscribe(subject.clone()).await.unwrap();
        client.flush().await.unwrap();
        client.publish(subject.clone(), format!("hello from {}", user.name).into()).await.unwrap();
        let msg = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap_or_else(|_| panic!("{} did not receive its own message on {subject}", user.name))
            .unwrap();
        assert_eq!(msg.payload.as_ref(), format!("hello from {}", user.name).as_bytes());

        // Denied: a subject outside every allow list, for publish and for subscribe.
        let denied = format!("denied.{}.x", user.name);
        client.publish(denied.clone(), "no".into()).await.unwrap();
        client.flush().await.unwrap();
        expect_error(&mut errors, &format!("Permissions Violation for Publish to \"{denied}\"")).await;
        let _s = client.subscribe(denied.clone()).await.unwrap();
        client.flush().await.unwrap();
        expect_error(&mut errors, &format!("Permissions Violation for Subscription to \"{denied}\"")).await;
        drop(client);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_work_through_the_response_permission() {
    // person-service may publish only to thecowboyai.org.person.>, yet it answers a
    // request from location-service on the requester's _INBOX: that is `resp`.
    let store = store_from(&example());
    let server = store.server();
    let (responder, _) = connect(&server.url(), &store.creds(store.user("person-service"))).await.unwrap();
    let (requester, _) = connect(&server.url(), &store.creds(store.user("location-service"))).await.unwrap();
    let mut sub = responder.subscribe("thecowboyai.org.location.lookup").await.unwrap();
    responder.flush().await.unwrap();
    let answer = tokio::spawn(async move {
        let msg = sub.next().await.expect("the responder's subscription is open");
        responder.publish(msg.reply.unwrap(), "at home".into()).await.unwrap();
        responder.flush().await.unwrap();
    });
    // flush() only writes the SUB; the server may not have processed it when the
    // request (on another connection) arrives, which answers "no responders".
    // Retry that case only, for up to 5 s.
    let reply = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match requester.request("thecowboyai.org.location.lookup", "where?".into()).await {
                Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                other => return other,
            }
        }
    })
    .await
    .expect("request timed out")
    .expect("request failed");
    assert_eq!(reply.payload.as_ref(), b"at home");
    answer.await.unwrap();
}

/// Each service has its own reply inbox: another service of the same account
/// (which before had `_INBOX.>` too) can no longer subscribe to the replies
/// meant for a requester, while its own requests still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_cannot_read_another_services_replies() {
    let store = store_from(&example());
    let server = store.server();
    let (responder, _) = connect(&server.url(), &store.creds(store.user("person-service"))).await.unwrap();
    let (requester, _) = connect(&server.url(), &store.creds(store.user("location-service"))).await.unwrap();
    let (snoop, mut snoop_errors) =
        connect(&server.url(), &store.creds(store.user("organization-service"))).await.unwrap();
    // The snooper tries the shared inbox and the requester's own one: both are refused.
    let mut shared = snoop.subscribe("_INBOX.>").await.unwrap();
    snoop.flush().await.unwrap();
    expect_error(&mut snoop_errors, "Permissions Violation for Subscription to \"_INBOX.>\"").await;
    let mut theirs = snoop.subscribe("_INBOX_location-service.>").await.unwrap();
    snoop.flush().await.unwrap();
    expect_error(&mut snoop_errors, "Permissions Violation for Subscription to \"_INBOX_location-service.>\"").await;

    let mut sub = responder.subscribe("thecowboyai.org.location.lookup").await.unwrap();
    responder.flush().await.unwrap();
    let answer = tokio::spawn(async move {
        let msg = sub.next().await.expect("the responder's subscription is open");
        responder.publish(msg.reply.unwrap(), "secret answer".into()).await.unwrap();
        responder.flush().await.unwrap();
    });
    // policy-service answers on organization subjects, which organization-service may publish.
    let (policy, _) = connect(&server.url(), &store.creds(store.user("policy-service"))).await.unwrap();
    let mut psub = policy.subscribe("thecowboyai.org.organization.lookup").await.unwrap();
    policy.flush().await.unwrap();
    let panswer = tokio::spawn(async move {
        let msg = psub.next().await.expect("the responder's subscription is open");
        policy.publish(msg.reply.unwrap(), "own answer".into()).await.unwrap();
        policy.flush().await.unwrap();
    });
    let request = |client: async_nats::Client, subject: &'static str| async move {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match client.request(subject, "where?".into()).await {
                    Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    other => return other,
                }
            }
        })
        .await
        .expect("request timed out")
        .expect("request failed")
    };
    // The requester gets its reply on its own inbox…
    let reply = request(requester.clone(), "thecowboyai.org.location.lookup").await;
    assert_eq!(reply.payload.as_ref(), b"secret answer");
    assert!(reply.subject.as_str().starts_with("_INBOX_location-service."), "{}", reply.subject);
    // …and the snooper saw none of it.
    for s in [&mut shared, &mut theirs] {
        let got = tokio::time::timeout(Duration::from_millis(300), s.next()).await;
        assert!(!matches!(got, Ok(Some(_))), "the snooper received a reply: {got:?}");
    }
    // The snooper's own request/reply works on its own inbox.
    let own = request(snoop.clone(), "thecowboyai.org.organization.lookup").await;
    assert_eq!(own.payload.as_ref(), b"own answer");
    assert!(own.subject.as_str().starts_with("_INBOX_organization-service."), "{}", own.subject);
    answer.await.unwrap();
    panswer.await.unwrap();
    // A client left on the default `_INBOX.` prefix cannot make requests at all:
    // its inbox subscription is refused (the README says to set the prefix).
    let (plain, mut plain_errors) =
        connect_with_inbox(&server.url(), &store.creds(store.user("location-service")), "_INBOX").await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(1), plain.request("thecowboyai.org.location.lookup", "x".into()))
        .await;
    expect_error(&mut plain_errors, "Permissions Violation for Subscription to \"_INBOX.").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creds_of_another_operator_are_refused() {
    let ours = store_from(&example());
    let theirs = store_from(&upstream());
    assert_ne!(ours.manifest.operator.public_key, theirs.manifest.operator.public_key);
    let server = ours.server();
    // Same user name, same account name, different operator: refused.
    let foreign = theirs.creds(theirs.user("person-service"));
    let Err(err) = connect(&server.url(), &foreign).await else { panic!("foreign creds must be refused") };
    assert!(
        matches!(err.kind(), ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication),
        "unexpected error kind: {err}"
    );
    // While our own creds for the same name are accepted.
    connect(&server.url(), &ours.creds(ours.user("person-service"))).await.expect("own creds connect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_system_user_is_an_admin_and_goes_to_no_host() {
    let store = store_from(&example());
    let sys_account = store.manifest.accounts.iter().find(|a| a.system).unwrap();
    assert_eq!(sys_account.name, "SYS");
    assert_eq!(store.manifest.operator.system_account, sys_account.public_key);
    let sys = &sys_account.users[0];
    assert_eq!(sys.name, "sys");
    assert!(sys.hosts.is_empty());
    for h in &store.manifest.hosts {
        assert!(!h.creds.contains(&sys.creds), "host {} must not get the sys creds", h.name);
    }
    assert_eq!(store.manifest.secrets[&sys.creds].recipients, ["owner"]);

    let server = store.server();
    let (client, _) = connect(&server.url(), &store.creds(sys)).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), client.request("$SYS.REQ.SERVER.PING", "".into()))
        .await
        .expect("timed out")
        .expect("the system account answers server pings");
    let v: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert!(v["server"]["id"].as_str().is_some_and(|id| id.starts_with('N')), "{v}");
}

#[test]
fn nats_server_accepts_the_generated_config() {
    let store = store_from(&example());
    let bin = require("nats-server");
    let out = std::process::Command::new(bin)
        .args(["-t", "-c", store.dir.join("server/nats-server.conf").to_str().unwrap()])
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("is valid"), "{text}");
}

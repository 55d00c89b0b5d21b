//! `clan-nats push`: send the store's account JWTs to running servers over the
//! system account (`$SYS`), without a restart.
//!
//! For each account: look up what the servers hold
//! (`$SYS.REQ.ACCOUNT.<id>.CLAIMS.LOOKUP`), skip it when they hold this very
//! JWT, refuse it when any holds a newer one (nats-server applies a direct
//! push even when it is older: measured, so the check must be ours), else
//! send it once on `$SYS.REQ.CLAIMS.UPDATE`: every server of the cluster
//! answers, and each answer is reported. An expected server that did not
//! confirm makes the push fail.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;

/// One account of the store.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub public_key: String,
    pub jwt: String,
}

/// What happened to one account on one server (or, for a lookup decision, on all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub account: String,
    /// The server's name, or `*` for a decision taken before sending.
    pub server: String,
    /// `updated`, `unchanged`, `would-push`, `refused-older`, `error` or `no-reply`.
    pub status: String,
    pub detail: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// The URL the push went through.
    pub via: String,
    pub rows: Vec<Row>,
    pub pushed: Vec<String>,
    pub unchanged: Vec<String>,
    pub refused: Vec<String>,
    /// `server: account` pairs that did not confirm.
    pub unconfirmed: Vec<String>,
    pub errors: Vec<String>,
    pub dry_run: bool,
}

impl Report {
    /// Every expected server confirmed every push and nothing was refused.
    pub fn ok(&self) -> bool {
        self.refused.is_empty() && self.unconfirmed.is_empty() && self.errors.is_empty()
    }
}

pub struct Options<'a> {
    /// Server URLs to try, in order; the first that accepts the `sys` creds is used.
    pub servers: &'a [String],
    /// Server names that must confirm each update (the fleet's hosts); empty:
    /// at least one confirmation.
    pub expected: &'a [String],
    pub dry_run: bool,
    /// How long to wait for the replies of one request.
    pub timeout: Duration,
}

const LOOKUP: &str = "$SYS.REQ.ACCOUNT.{}.CLAIMS.LOOKUP";
const UPDATE: &str = "$SYS.REQ.CLAIMS.UPDATE";
/// How long to wait for further lookup answers after the first.
const LOOKUP_SETTLE: Duration = Duration::from_millis(250);

fn iat_of(jwt: &str) -> Option<i64> {
    crate::jwt::peek(jwt).map(|(h, _)| h.iat)
}

/// Push `accounts` with the `sys` creds (held in memory only). Progress lines go to `progress`.
pub fn push(accounts: &[Account], sys_creds: &str, opts: &Options, progress: &mut dyn Write) -> Result<Report, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the NATS client: {e}"))?;
    rt.block_on(run(accounts, sys_creds, opts, progress))
}

async fn connect(
    sys_creds: &str,
    servers: &[String],
    progress: &mut dyn Write,
) -> Result<(async_nats::Client, String), String> {
    let mut failures = Vec::new();
    for url in servers {
        let opts = async_nats::ConnectOptions::with_credentials(sys_creds)
            .map_err(|e| format!("the sys creds do not parse: {e}"))?
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(Some(1));
        match tokio::time::timeout(Duration::from_secs(8), opts.connect(url.as_str())).await {
            Ok(Ok(c)) => return Ok((c, url.clone())),
            Ok(Err(e)) => failures.push(format!("{url}: {e}")),
            Err(_) => failures.push(format!("{url}: no connection within 8 s")),
        }
        let _ = writeln!(progress, "push: {} unreachable, trying the next server", url);
    }
    Err(format!("no server accepted the sys creds: {}", failures.join("; ")))
}

/// Send `payload` on `subject` and collect replies until `enough` says so or the timeout.
async fn gather(
    client: &async_nats::Client,
    subject: String,
    payload: Vec<u8>,
    timeout: Duration,
    settle: Option<Duration>,
    enough: impl Fn(&[Vec<u8>]) -> bool,
) -> Result<Vec<Vec<u8>>, String> {
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.map_err(|e| e.to_string())?;
    client.publish_with_reply(subject, inbox, payload.into()).await.map_err(|e| e.to_string())?;
    client.flush().await.map_err(|e| e.to_string())?;
    let mut deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while !enough(&out) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, sub.next()).await {
            Ok(Some(m)) => out.push(m.payload.to_vec()),
            _ => break,
        }
        // Once one server has answered, the others answer within the settle time or not at all.
        if let Some(s) = settle {
            deadline = deadline.min(Instant::now() + s);
        }
    }
    let _ = sub.unsubscribe().await;
    Ok(out)
}

async fn run(
    accounts: &[Account],
    sys_creds: &str,
    opts: &Options<'_>,
    progress: &mut dyn Write,
) -> Result<Report, String> {
    let (client, via) = connect(sys_creds, opts.servers, progress).await?;
    let mut report = Report { via, dry_run: opts.dry_run, ..Default::default() };
    let expected: BTreeSet<&str> = opts.expected.iter().map(String::as_str).collect();
    let n = accounts.len();
    // A lookup is answered by every server that holds the account; wait for
    // one answer per expected server, or a short time when none are named.
    let lookup_wait = opts.timeout.min(Duration::from_millis(1500));
    for (i, a) in accounts.iter().enumerate() {
        let want = expected.len().max(1);
        let held =
            gather(&client, LOOKUP.replace("{}", &a.public_key), Vec::new(), lookup_wait, Some(LOOKUP_SETTLE), |r| {
                r.len() >= want
            })
            .await?;
        let held: Vec<String> = held.into_iter().map(|b| String::from_utf8_lossy(&b).trim().to_string()).collect();
        let ours = iat_of(&a.jwt).unwrap_or(0);
        let newer: Vec<&String> =
            held.iter().filter(|h| *h != &a.jwt && iat_of(h).is_some_and(|t| t >= ours)).collect();
        let _ = write!(progress, "push: [{}/{n}] {} ", i + 1, a.name);
        if let Some(h) = newer.first() {
            let detail = format!(
                "a server holds a JWT issued at {} and this store's is issued at {ours}: refusing to go back (regenerate from the newer store, or check which store is current)",
                iat_of(h).unwrap_or_default()
            );
            let _ = writeln!(progress, "refused: {detail}");
            report.rows.push(Row {
                account: a.name.clone(),
                server: "*".into(),
                status: "refused-older".into(),
                detail,
            });
            report.refused.push(a.name.clone());
            continue;
        }
        if held.len() >= want && held.iter().all(|h| h == &a.jwt) {
            let _ = writeln!(progress, "unchanged ({} server(s) hold it)", held.len());
            report.rows.push(Row {
                account: a.name.clone(),
                server: "*".into(),
                status: "unchanged".into(),
                detail: format!("held by {} server(s)", held.len()),
            });
            report.unchanged.push(a.name.clone());
            continue;
        }
        if opts.dry_run {
            let _ = writeln!(
                progress,
                "would push (held: {} of {want} server(s) answered with this JWT)",
                held.iter().filter(|h| *h == &a.jwt).count()
            );
            report.rows.push(Row {
                account: a.name.clone(),
                server: "*".into(),
                status: "would-push".into(),
                detail: format!("iat {ours}"),
            });
            continue;
        }
        let replies = gather(&client, UPDATE.into(), a.jwt.clone().into_bytes(), opts.timeout, None, |r| {
            let names: BTreeSet<String> = r.iter().filter_map(|b| reply_server(b)).collect();
            if expected.is_empty() {
                !r.is_empty()
            } else {
                expected.iter().all(|e| names.contains(*e))
            }
        })
        .await?;
        let mut seen: BTreeMap<String, Row> = BTreeMap::new();
        for b in &replies {
            let (server, status, detail) = parse_reply(b);
            seen.insert(server.clone(), Row { account: a.name.clone(), server, status, detail });
        }
        for e in &expected {
            seen.entry(e.to_string()).or_insert_with(|| Row {
                account: a.name.clone(),
                server: e.to_string(),
                status: "no-reply".into(),
                detail: format!("no confirmation within {:?}", opts.timeout),
            });
        }
        if seen.is_empty() {
            seen.insert(
                "*".into(),
                Row {
                    account: a.name.clone(),
                    server: "*".into(),
                    status: "no-reply".into(),
                    detail: "no server confirmed".into(),
                },
            );
        }
        let ok = seen.values().filter(|r| r.status == "updated").count();
        let _ = writeln!(progress, "pushed: {ok}/{} server(s) confirmed", seen.len());
        for r in seen.into_values() {
            match r.status.as_str() {
                "updated" => {}
                "no-reply" => report.unconfirmed.push(format!("{}: {}", r.server, r.account)),
                _ => report.errors.push(format!("{}: {}: {}", r.server, r.account, r.detail)),
            }
            report.rows.push(r);
        }
        report.pushed.push(a.name.clone());
    }
    let _ = client.drain().await;
    Ok(report)
}

fn reply_server(b: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(b).ok()?;
    v["server"]["name"].as_str().map(str::to_string)
}

/// A claims-update reply: `{"server": {"name"}, "data": {"code", "message"}}` or
/// `{"server", "error": {"code", "description"}}`.
fn parse_reply(b: &[u8]) -> (String, String, String) {
    let v: serde_json::Value = serde_json::from_slice(b).unwrap_or_default();
    let server = v["server"]["name"].as_str().unwrap_or("?").to_string();
    if let Some(e) = v.get("error") {
        let d = e["description"].as_str().unwrap_or_default();
        return (server, "error".into(), format!("{} {d}", e["code"]));
    }
    let msg = v["data"]["message"].as_str().unwrap_or_default().to_string();
    let code = v["data"]["code"].as_i64().unwrap_or_default();
    let status = if code == 200 && msg.contains("updated") { "updated" } else { "error" };
    (server, status.into(), if msg.is_empty() { String::from_utf8_lossy(b).into_owned() } else { msg })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_per_server() {
        let ok = br#"{"server":{"name":"nats1","id":"N"},"data":{"account":"A","code":200,"message":"jwt updated"}}"#;
        assert_eq!(parse_reply(ok), ("nats1".into(), "updated".into(), "jwt updated".into()));
        let skipped = br#"{"server":{"name":"one"},"data":{"account":"A","code":200,"message":"jwt update skipped"}}"#;
        assert_eq!(parse_reply(skipped).1, "error");
        let err =
            br#"{"server":{"name":"n2"},"error":{"account":"A","code":400,"description":"jwt validation failed"}}"#;
        let (s, st, d) = parse_reply(err);
        assert_eq!((s.as_str(), st.as_str()), ("n2", "error"));
        assert!(d.contains("jwt validation failed"), "{d}");
    }
}

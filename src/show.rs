//! Inspecting a verified store, like `nsc list` / `nsc describe`: the
//! accounts, users, hosts and flows of a manifest, and one user or account in
//! full (permissions, limits, hosts, who can read its creds, keys, issue
//! time, revocations). Pure: a verified tree and its manifest in, a JSON value
//! out; the text form is rendered from the same value, so both always agree.

use serde_json::{json, Map, Value};

use crate::governance::Governance;
use crate::manifest::{AccountEntry, Manifest, UserEntry};
use crate::store::Tree;
pub use crate::suggest::did_you_mean;

/// What `list` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Listing {
    Accounts,
    Users,
    Hosts,
    Flows,
}

/// What `describe` describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Entity {
    User,
    Account,
}

/// A name that is not in the store, with the names that are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound {
    pub kind: &'static str,
    pub name: String,
    pub suggestion: Option<String>,
    pub known: Vec<String>,
}

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no {} named {:?} in the store", self.kind, self.name)?;
        if let Some(s) = &self.suggestion {
            write!(f, "; did you mean {s:?}?")?;
        }
        if self.known.is_empty() {
            write!(f, " (it has none)")
        } else {
            write!(f, " (known: {})", self.known.join(", "))
        }
    }
}

fn not_found<'a>(kind: &'static str, name: &str, known: impl IntoIterator<Item = &'a str> + Clone) -> NotFound {
    NotFound {
        kind,
        name: name.to_string(),
        suggestion: did_you_mean(name, known.clone()),
        known: known.into_iter().map(str::to_string).collect(),
    }
}

/// The decoded claims of the JWT at `path` in the tree (the tree is verified,
/// so the token's signature chain has been checked already).
fn claims(tree: &Tree, path: &str) -> Value {
    tree.get(path)
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(crate::jwt::peek)
        .and_then(|(_, payload)| serde_json::from_slice(&payload).ok())
        .unwrap_or(Value::Null)
}

/// A recipient name as a person reads it: `host:X` stays, a specialist gets
/// their name, `owner` the owner's.
fn reader(name: &str, gov: Option<&Governance>) -> String {
    let Some(g) = gov else { return name.to_string() };
    if name == "owner" {
        return format!("owner ({})", g.ownership.owner_name);
    }
    if let Some(id) = name.strip_prefix("specialist:") {
        if let Some(m) = g.ownership.team_members.iter().find(|m| m.id == id) {
            return format!("specialist:{id} ({})", m.name);
        }
    }
    name.to_string()
}

fn readers(m: &Manifest, path: &str, gov: Option<&Governance>) -> Vec<String> {
    m.secrets.get(path).map(|s| s.recipients.iter().map(|r| reader(r, gov)).collect()).unwrap_or_default()
}

fn time(secs: Option<i64>) -> Value {
    match secs {
        Some(s) if s > 0 => Value::String(crate::governance::rfc3339(s)),
        _ => Value::Null,
    }
}

/// `list accounts|users|hosts|flows` as JSON rows.
pub fn list(m: &Manifest, what: Listing) -> Value {
    let rows: Vec<Value> = match what {
        Listing::Accounts => m
            .accounts
            .iter()
            .map(|a| {
                json!({
                    "name": a.name,
                    "public_key": a.public_key,
                    "system": a.system,
                    "units": a.units,
                    "users": a.users.len(),
                    "jetstream": a.jetstream,
                    "exports": m.flows.iter().filter(|f| f.exporter == a.name).count(),
                    "imports": m.flows.iter().filter(|f| f.importer == a.name).count(),
                })
            })
            .collect(),
        Listing::Users => m
            .accounts
            .iter()
            .flat_map(|a| a.users.iter().map(move |u| (a, u)))
            .map(|(a, u)| {
                json!({"name": u.name, "account": a.name, "unit": u.unit, "public_key": u.public_key, "hosts": u.hosts})
            })
            .collect(),
        Listing::Hosts => m
            .hosts
            .iter()
            .map(|h| {
                let services: Vec<&str> = m
                    .accounts
                    .iter()
                    .flat_map(|a| &a.users)
                    .filter(|u| u.hosts.contains(&h.name))
                    .map(|u| u.name.as_str())
                    .collect();
                json!({"name": h.name, "recipient": h.recipient, "nats_server": h.nats_server, "services": services})
            })
            .collect(),
        Listing::Flows => return crate::wiring::show::json(m),
    };
    Value::Array(rows)
}

/// `list` as text: one line per row, tab-separated, with a header.
pub fn list_text(m: &Manifest, what: Listing) -> String {
    if what == Listing::Flows {
        return crate::wiring::show::text(m);
    }
    let rows = list(m, what);
    let (header, cols): (&str, &[&str]) = match what {
        Listing::Accounts => (
            "NAME\tPUBLIC KEY\tUSERS\tUNITS\tEXPORTS\tIMPORTS",
            &["name", "public_key", "users", "units", "exports", "imports"],
        ),
        Listing::Users => {
            ("NAME\tACCOUNT\tUNIT\tPUBLIC KEY\tHOSTS", &["name", "account", "unit", "public_key", "hosts"])
        }
        Listing::Hosts => ("NAME\tNATS SERVER\tSERVICES\tRECIPIENT", &["name", "nats_server", "services", "recipient"]),
        Listing::Flows => unreachable!(),
    };
    let mut s = format!("{header}\n");
    for r in rows.as_array().into_iter().flatten() {
        let cells: Vec<String> = cols.iter().map(|c| cell(&r[*c])).collect();
        s.push_str(&cells.join("\t"));
        s.push('\n');
    }
    s
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "-".into(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn find_user<'a>(m: &'a Manifest, name: &str) -> Result<(&'a AccountEntry, &'a UserEntry), NotFound> {
    m.accounts
        .iter()
        .flat_map(|a| a.users.iter().map(move |u| (a, u)))
        .find(|(_, u)| u.name == name)
        .ok_or_else(|| not_found("user", name, m.accounts.iter().flat_map(|a| &a.users).map(|u| u.name.as_str())))
}

fn find_account<'a>(m: &'a Manifest, name: &str) -> Result<&'a AccountEntry, NotFound> {
    m.accounts
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| not_found("account", name, m.accounts.iter().map(|a| a.name.as_str())))
}

/// `describe user NAME` / `describe account NAME` as JSON.
pub fn describe(
    tree: &Tree,
    m: &Manifest,
    gov: Option<&Governance>,
    what: Entity,
    name: &str,
) -> Result<Value, NotFound> {
    match what {
        Entity::User => {
            let (a, u) = find_user(m, name)?;
            let c = claims(tree, &u.jwt);
            let nats = &c["nats"];
            let mut limits = Map::new();
            for k in ["subs", "data", "payload"] {
                limits.insert(k.into(), nats.get(k).cloned().unwrap_or(json!(-1)));
            }
            let mut v = json!({
                "kind": "user",
                "name": u.name,
                "account": a.name,
                "account_public_key": a.public_key,
                "unit": u.unit,
                "public_key": u.public_key,
                "issuer": c["iss"],
                "issued_at": time(c["iat"].as_i64()),
                "expires": time(c["exp"].as_i64()),
                "permissions": {
                    "publish": nats.get("pub").cloned().unwrap_or(json!({})),
                    "subscribe": nats.get("sub").cloned().unwrap_or(json!({})),
                    "responses": nats.get("resp").cloned().unwrap_or(Value::Null),
                },
                "limits": limits,
                "hosts": u.hosts,
                "creds": u.creds,
                "creds_readers": readers(m, &u.creds, gov),
                "jwt": u.jwt,
            });
            for k in ["src", "times", "times_location", "allowed_connection_types"] {
                if let Some(x) = nats.get(k) {
                    v[k] = x.clone();
                }
            }
            Ok(v)
        }
        Entity::Account => {
            let a = find_account(m, name)?;
            let c = claims(tree, &a.jwt);
            let nats = &c["nats"];
            let revoked: Vec<Value> = nats
                .get("revocations")
                .and_then(Value::as_object)
                .map(|r| r.iter().map(|(k, t)| json!({"public_key": k, "revoked_before": time(t.as_i64())})).collect())
                .unwrap_or_default();
            let seeds: Vec<Value> = m
                .keys
                .iter()
                .filter(|k| k.account == a.name && k.user.is_empty())
                .map(|k| json!({"role": k.role, "public_key": k.public_key, "seed": k.path, "readers": readers(m, &k.path, gov)}))
                .collect();
            let flows: Vec<String> =
                m.flows.iter().filter(|f| f.exporter == a.name || f.importer == a.name).map(|f| f.describe()).collect();
            Ok(json!({
                "kind": "account",
                "name": a.name,
                "public_key": a.public_key,
                "system": a.system,
                "units": a.units,
                "jetstream": a.jetstream,
                "issuer": c["iss"],
                "issued_at": time(c["iat"].as_i64()),
                "signing_keys": a.signing_keys,
                "keys": seeds,
                "limits": nats.get("limits").cloned().unwrap_or(Value::Null),
                "exports": nats.get("exports").cloned().unwrap_or(json!([])),
                "imports": nats.get("imports").cloned().unwrap_or(json!([])),
                "flows": flows,
                "revocations": revoked,
                "users": a.users.iter().map(|u| &u.name).collect::<Vec<_>>(),
                "jwt": a.jwt,
            }))
        }
    }
}

/// `describe` as text: `field: value` lines, nested objects indented.
pub fn describe_text(v: &Value) -> String {
    let mut s = String::new();
    if let Value::Object(o) = v {
        for (k, x) in o {
            render(&mut s, k, x, 0);
        }
    }
    s
}

fn render(s: &mut String, key: &str, v: &Value, depth: usize) {
    let pad = "  ".repeat(depth);
    match v {
        Value::Object(o) if !o.is_empty() => {
            s.push_str(&format!("{pad}{key}:\n"));
            for (k, x) in o {
                render(s, k, x, depth + 1);
            }
        }
        Value::Array(a) if a.iter().any(|x| x.is_object()) => {
            s.push_str(&format!("{pad}{key}:\n"));
            for x in a {
                let line = match x {
                    Value::Object(o) => o.iter().map(|(k, y)| format!("{k}={}", cell(y))).collect::<Vec<_>>().join(" "),
                    other => cell(other),
                };
                s.push_str(&format!("{pad}  - {line}\n"));
            }
        }
        Value::Array(a) if a.len() > 1 && a.iter().all(|x| x.is_string()) && key != "hosts" && key != "units" => {
            s.push_str(&format!("{pad}{key}:\n"));
            for x in a {
                s.push_str(&format!("{pad}  - {}\n", cell(x)));
            }
        }
        Value::Object(_) => s.push_str(&format!("{pad}{key}: -\n")),
        other => s.push_str(&format!("{pad}{key}: {}\n", cell(other))),
    }
}

/// `vault status`: every secret, the entity its key or creds belong to, and
/// who (by name) can decrypt it.
pub fn vault_status(m: &Manifest, gov: Option<&Governance>) -> Value {
    let rows: Vec<Value> = m
        .secrets
        .iter()
        .map(|(path, s)| {
            let entity = m
                .keys
                .iter()
                .find(|k| &k.path == path)
                .map(|k| match k.role.as_str() {
                    "operator" | "operator-signing" => format!("{} {}", k.role, m.operator.name),
                    "user" => format!("user {} (account {})", k.user, k.account),
                    role => format!("{role} {}", k.account),
                })
                .or_else(|| {
                    m.accounts
                        .iter()
                        .flat_map(|a| a.users.iter().map(move |u| (a, u)))
                        .find(|(_, u)| &u.creds == path)
                        .map(|(a, u)| format!("creds of user {} (account {})", u.name, a.name))
                })
                .unwrap_or_else(|| s.kind.clone());
            json!({
                "path": path,
                "kind": s.kind,
                "entity": entity,
                "readers": s.recipients,
                "reader_names": s.recipients.iter().map(|r| reader(r, gov)).collect::<Vec<_>>(),
            })
        })
        .collect();
    Value::Array(rows)
}

pub fn vault_status_text(v: &Value) -> String {
    let mut s = String::from("ENTITY\tKIND\tREADERS\tPATH\n");
    for r in v.as_array().into_iter().flatten() {
        s.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            cell(&r["entity"]),
            cell(&r["kind"]),
            cell(&r["reader_names"]),
            cell(&r["path"])
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_names_what_exists() {
        let e = not_found("user", "media-svx", ["media-svc", "sys"]);
        assert_eq!(
            e.to_string(),
            "no user named \"media-svx\" in the store; did you mean \"media-svc\"? (known: media-svc, sys)"
        );
    }

    #[test]
    fn text_rendering_keeps_every_value() {
        let v = json!({"name": "a", "limits": {"subs": -1, "payload": 1024}, "hosts": ["h1", "h2"], "keys": [{"role": "account", "public_key": "AX"}], "creds_readers": ["owner", "host:h1"]});
        let t = describe_text(&v);
        assert!(t.contains("name: a\n"), "{t}");
        assert!(t.contains("limits:\n  subs: -1\n  payload: 1024\n"), "{t}");
        assert!(t.contains("hosts: h1,h2\n"), "{t}");
        assert!(t.contains("keys:\n  - role=account public_key=AX\n"), "{t}");
        assert!(t.contains("creds_readers:\n  - owner\n  - host:h1\n"), "{t}");
    }
}

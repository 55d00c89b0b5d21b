//! What `import-nsc` would lose (issue 14): everything in the nsc operator that
//! the config does not express. The import refuses while this list is not
//! empty, unless `--drop-unsupported` accepts the loss by name.
//!
//! The comparison is against the [`Plan`]: an nsc setting is kept when the
//! JWT this project writes for the same entity carries it too.

use std::collections::BTreeSet;
use std::fs;

use camino::{Utf8Path, Utf8PathBuf};

use crate::jwt::{peek, AccountClaims, OperatorClaims, UserClaims};
use crate::plan::{AccountPlan, Plan, UserPlan};

/// `nats` fields of each claim kind this project models; any other field in an
/// nsc JWT (mappings, trace, tags, …) would be dropped.
const OPERATOR_FIELDS: &[&str] = &["signing_keys", "system_account", "type", "version"];
const ACCOUNT_FIELDS: &[&str] = &[
    "imports",
    "exports",
    "limits",
    "signing_keys",
    "revocations",
    "default_permissions",
    "authorization",
    "description",
    "type",
    "version",
];
const USER_FIELDS: &[&str] = &[
    "pub",
    "sub",
    "resp",
    "src",
    "times",
    "times_location",
    "subs",
    "data",
    "payload",
    "allowed_connection_types",
    "issuer_account",
    "type",
    "version",
];

fn unknown_fields(token: &str, known: &[&str], what: &str, out: &mut Vec<String>) {
    let Some((_, payload)) = peek(token) else { return };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&payload) else { return };
    if let Some(n) = v.get("nats").and_then(|n| n.as_object()) {
        for (k, val) in n {
            let empty = val.is_null()
                || val.as_array().is_some_and(|a| a.is_empty())
                || val.as_object().is_some_and(|o| o.is_empty());
            if !known.contains(&k.as_str()) && !empty {
                out.push(format!("{what}: `{k}` = {val} (the config cannot express it)"));
            }
        }
    }
}

fn missing<'a>(theirs: &'a [String], ours: &[String]) -> Vec<&'a String> {
    theirs.iter().filter(|s| !ours.contains(s)).collect()
}

fn user_losses(what: &str, uc: &UserClaims, u: &UserPlan, out: &mut Vec<String>) {
    let n = &uc.nats;
    if u.signing_role.is_some() {
        return; // its permissions come from the scoped key, compared with the account
    }
    let p = &u.permissions;
    for (field, theirs, ours) in [
        ("pub.allow", &n.permissions.publish.allow, &p.publish.allow),
        ("pub.deny", &n.permissions.publish.deny, &p.publish.deny),
        ("sub.allow", &n.permissions.subscribe.allow, &p.subscribe.allow),
        ("sub.deny", &n.permissions.subscribe.deny, &p.subscribe.deny),
    ] {
        for s in missing(theirs, ours) {
            out.push(format!("{what}: {field} {s:?}"));
        }
    }
    if n.permissions.resp.is_some() && n.permissions.resp != p.resp {
        out.push(format!("{what}: resp {:?} (the config gives {:?})", n.permissions.resp, p.resp));
    }
    let r = &u.restrictions;
    for s in missing(&n.src, &r.src) {
        out.push(format!("{what}: src {s:?}"));
    }
    for s in missing(&n.allowed_connection_types, &r.allowed_connection_types) {
        out.push(format!("{what}: allowed_connection_types {s:?}"));
    }
    let times_set = !n.times.is_empty() || !n.times_location.is_empty();
    if times_set && (n.times != r.times || n.times_location != r.times_location) {
        out.push(format!("{what}: times {:?} {:?}", n.times, n.times_location));
    }
    for (field, theirs, ours) in [
        ("subs", n.subs, r.subs.unwrap_or(-1)),
        ("data", n.data, r.data.unwrap_or(-1)),
        ("payload", n.payload, u.payload),
    ] {
        if theirs != ours && theirs != 0 {
            out.push(format!("{what}: {field} {theirs} (the config gives {ours})"));
        }
    }
    let ours_exp = match r.expires {
        Some(crate::config::perms::Expiry::At(t)) => Some(t),
        Some(crate::config::perms::Expiry::After(_)) => None, // relative: any exp is kept in spirit
        None => Some(0),
    };
    if uc.std.exp != 0 && ours_exp.is_some_and(|t| t != uc.std.exp) {
        out.push(format!("{what}: exp {} (the config gives {})", uc.std.exp, ours_exp.unwrap_or(0)));
    }
    if n.bearer_token {
        out.push(format!("{what}: bearer_token"));
    }
}

/// Account limits up to what has no effect: the JetStream sub-limits of an
/// account without JetStream, and 0 vs -1 ("no limit") of the per-stream limits.
fn normal(l: &crate::jwt::account::AccountLimits) -> crate::jwt::account::AccountLimits {
    let mut l = l.clone();
    if !l.jetstream_enabled() {
        (l.streams, l.consumer, l.max_ack_pending, l.mem_max_stream_bytes, l.disk_max_stream_bytes) = (0, 0, 0, 0, 0);
        l.max_bytes_required = false;
    }
    for v in [&mut l.max_ack_pending, &mut l.mem_max_stream_bytes, &mut l.disk_max_stream_bytes] {
        if *v == -1 {
            *v = 0;
        }
    }
    l
}

fn account_losses(what: &str, ac: &AccountClaims, a: &AccountPlan, plan: &Plan, out: &mut Vec<String>) {
    let plain: Vec<&str> = ac
        .nats
        .signing_keys
        .iter()
        .filter_map(|k| match k {
            crate::jwt::account::SigningKey::Key(k) => Some(k.as_str()),
            _ => None,
        })
        .collect();
    for k in plain.iter().skip(1) {
        out.push(format!(
            "{what}: signing key {k} (one plain account signing key is kept; use nats_signing_roles for scoped ones)"
        ));
    }
    for k in &ac.nats.signing_keys {
        if let crate::jwt::account::SigningKey::Scoped(s) = k {
            match a.roles.iter().find(|r| r.name == s.role) {
                None => out.push(format!(
                    "{what}: scoped signing key {} role {:?} (not in nats_signing_roles)",
                    s.key, s.role
                )),
                Some(r) if r.template != s.template => out.push(format!(
                    "{what}: scoped signing key role {:?}: its template differs from the config's",
                    s.role
                )),
                Some(_) => {}
            }
        }
    }
    if normal(&ac.nats.limits) != normal(&a.limits) {
        out.push(format!(
            "{what}: limits {} (the config gives {})",
            serde_json::to_string(&ac.nats.limits).unwrap_or_default(),
            serde_json::to_string(&a.limits).unwrap_or_default()
        ));
    }
    if ac.nats.default_permissions != a.default_permissions && ac.nats.default_permissions != Default::default() {
        out.push(format!(
            "{what}: default_permissions {}",
            serde_json::to_string(&ac.nats.default_permissions).unwrap_or_default()
        ));
    }
    if !a.system {
        let exports: Vec<&str> = plan
            .wiring
            .exports
            .get(&a.name)
            .map(|e| e.iter().map(|x| x.subject.as_str()).collect())
            .unwrap_or_default();
        for e in ac.nats.exports.iter().filter(|e| !exports.contains(&e.subject.as_str())) {
            out.push(format!("{what}: export {:?} ({}): declare it in nats_exports", e.subject, e.kind));
        }
        let imports: Vec<&str> = plan.wiring.imports_of(&a.name).map(|f| f.local()).collect();
        for i in &ac.nats.imports {
            let local = if i.local_subject.is_empty() { &i.subject } else { &i.local_subject };
            if !imports.contains(&local.as_str()) && !imports.contains(&i.subject.as_str()) {
                out.push(format!("{what}: import {:?} from {}: declare it in nats_imports", i.subject, i.account));
            }
        }
    }
}

/// Everything in the nsc operator at `op_dir` that generating `plan` would drop.
pub fn losses(op_dir: &Utf8Path, plan: &Plan) -> Result<Vec<String>, String> {
    let read = |p: Utf8PathBuf| fs::read_to_string(&p).map_err(|e| format!("{p}: {e}"));
    let mut out = Vec::new();
    let op_tok = read(op_dir.join(format!("{}.jwt", plan.operator)))?;
    let op = OperatorClaims::decode(&op_tok).map_err(|e| format!("{op_dir}: operator JWT: {e}"))?;
    let what = format!("operator {}", plan.operator);
    for k in op.nats.signing_keys.iter().skip(1) {
        out.push(format!("{what}: signing key {k} (one operator signing key is kept)"));
    }
    for u in &op.nats.operator_service_urls {
        out.push(format!("{what}: operator_service_urls {u:?}"));
    }
    if !op.nats.account_server_url.is_empty() {
        out.push(format!("{what}: account_server_url {:?}", op.nats.account_server_url));
    }
    if op.nats.strict_signing_key_usage {
        out.push(format!("{what}: strict_signing_key_usage"));
    }
    if !op.nats.assert_server_version.is_empty() {
        out.push(format!("{what}: assert_server_version {:?}", op.nats.assert_server_version));
    }
    unknown_fields(
        &op_tok,
        &[
            OPERATOR_FIELDS,
            &["operator_service_urls", "account_server_url", "strict_signing_key_usage", "assert_server_version"],
        ]
        .concat(),
        &what,
        &mut out,
    );

    let accounts_dir = op_dir.join("accounts");
    let names: BTreeSet<String> = fs::read_dir(&accounts_dir)
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str().map(str::to_string)).collect())
        .unwrap_or_default();
    for name in &names {
        let what = format!("account {name}");
        let Some(a) = plan.accounts.iter().find(|a| &a.name == name) else {
            out.push(format!("{what} (no unit of the config maps to it) and its users"));
            continue;
        };
        let dir = accounts_dir.join(name);
        let tok = read(dir.join(format!("{name}.jwt")))?;
        let ac = AccountClaims::decode(&tok).map_err(|e| format!("{dir}: {e}"))?;
        account_losses(&what, &ac, a, plan, &mut out);
        unknown_fields(&tok, ACCOUNT_FIELDS, &what, &mut out);
        let users = user_names(&dir);
        for un in &users {
            let what = format!("user {name}/{un}");
            let Some(u) = a.users.iter().find(|u| &u.name == un) else {
                out.push(format!("{what} (no person of the config is this user)"));
                continue;
            };
            let tok = read(dir.join("users").join(format!("{un}.jwt")))?;
            let uc = UserClaims::decode(&tok).map_err(|e| format!("{what}: {e}"))?;
            user_losses(&what, &uc, u, &mut out);
            unknown_fields(&tok, USER_FIELDS, &what, &mut out);
        }
    }
    Ok(out)
}

/// The users of an nsc account directory: the `users/<name>.jwt` files, sorted.
fn user_names(account_dir: &Utf8Path) -> BTreeSet<String> {
    fs::read_dir(account_dir.join("users"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".jwt")).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

// ---- `import-nsc --write-config`: the config, extended by what nsc holds ----

use serde_json::{json, Value};

use crate::governance::rfc3339;

/// A user JWT's permissions and limits as `nats_permissions` / `nats_limits`.
fn person_fields(uc: &UserClaims) -> (Value, Option<Value>) {
    let n = &uc.nats;
    let p = &n.permissions;
    let mut perms = json!({"publish": p.publish.allow, "subscribe": p.subscribe.allow});
    if !p.publish.deny.is_empty() {
        perms["deny_publish"] = json!(p.publish.deny);
    }
    if !p.subscribe.deny.is_empty() {
        perms["deny_subscribe"] = json!(p.subscribe.deny);
    }
    if let Some(r) = p.resp {
        perms["allow_responses"] = json!(true);
        if r.ttl > 0 && r.ttl % 1_000_000 == 0 {
            perms["response_ttl"] = json!(format!("{}ms", r.ttl / 1_000_000));
        }
    }
    if n.payload > 0 {
        perms["max_payload"] = json!(n.payload);
    }
    let mut limits = serde_json::Map::new();
    if n.subs > 0 {
        limits.insert("max_subscriptions".into(), json!(n.subs));
    }
    if n.data > 0 {
        limits.insert("max_data".into(), json!(n.data));
    }
    if !n.allowed_connection_types.is_empty() {
        limits.insert("allowed_connection_types".into(), json!(n.allowed_connection_types));
    }
    if !n.src.is_empty() {
        limits.insert("source_networks".into(), json!(n.src));
    }
    if !n.times.is_empty() {
        limits.insert("time_windows".into(), json!(n.times));
        if !n.times_location.is_empty() {
            limits.insert("time_zone".into(), json!(n.times_location));
        }
    }
    if uc.std.exp > 0 {
        limits.insert("expires".into(), json!(rfc3339(uc.std.exp)));
    }
    (perms, (!limits.is_empty()).then_some(Value::Object(limits)))
}

fn unit_limits(l: &crate::jwt::account::AccountLimits) -> Value {
    let mut v = json!({"conn": l.conn, "subs": l.subs, "payload": l.payload, "data": l.data});
    if l.jetstream_enabled() {
        v["jetstream"] = json!({"mem_storage": l.mem_storage, "disk_storage": l.disk_storage,
                                "streams": l.streams, "consumer": l.consumer});
    }
    v
}

/// The config `config` (its JSON) extended with everything of the nsc operator
/// at `op_dir` that the config can express: accounts as units, users as people
/// with their permissions and limits, account limits and default permissions.
/// What is left over is reported by [`losses`] on the adopted config.
pub fn adopt(config: &Value, op_dir: &Utf8Path, plan: &Plan) -> Result<Value, String> {
    let mut c = config.clone();
    let read = |p: Utf8PathBuf| fs::read_to_string(&p).map_err(|e| format!("{p}: {e}"));
    let accounts_dir = op_dir.join("accounts");
    let names: BTreeSet<String> = fs::read_dir(&accounts_dir)
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str().map(str::to_string)).collect())
        .unwrap_or_default();
    for name in names.iter().filter(|n| n.as_str() != crate::plan::SYSTEM_ACCOUNT) {
        let dir = accounts_dir.join(name);
        let ac = AccountClaims::decode(&read(dir.join(format!("{name}.jwt")))?).map_err(|e| format!("{dir}: {e}"))?;
        // The unit that defines the account, or a new top-level unit named after it.
        let unit = match plan.units.iter().find(|u| &u.account == name && plan.accounts.iter().any(|a| &a.name == name))
        {
            Some(u) => u.name.clone(),
            None => {
                let units = c["organizational_units"].as_array_mut().ok_or("organizational_units is not a list")?;
                units.push(json!({"name": name, "nats_account_name": name}));
                name.clone()
            }
        };
        let units = c["organizational_units"].as_array_mut().ok_or("organizational_units is not a list")?;
        if let Some(u) = units.iter_mut().find(|u| u["name"] == json!(unit)) {
            if ac.nats.limits != crate::jwt::account::AccountLimits::default() {
                u["nats_limits"] = unit_limits(&ac.nats.limits);
            }
            let d = &ac.nats.default_permissions;
            if *d != Default::default() {
                u["nats_default_permissions"] = json!({"publish": d.publish.allow, "subscribe": d.subscribe.allow,
                    "deny_publish": d.publish.deny, "deny_subscribe": d.subscribe.deny});
            }
        }
        let users = user_names(&dir);
        for un in &users {
            let tok = read(dir.join("users").join(format!("{un}.jwt")))?;
            let uc = UserClaims::decode(&tok).map_err(|e| format!("user {name}/{un}: {e}"))?;
            if ac.scope(&uc.std.iss).is_some() {
                continue; // a role user: its scope is the account's business
            }
            let (perms, limits) = person_fields(&uc);
            if c.get("service_people").is_none() {
                c["service_people"] = json!([]);
            }
            let people = c["service_people"].as_array_mut().ok_or("service_people is not a list")?;
            let p = match people.iter().position(|p| p["name"] == json!(un)) {
                Some(i) => &mut people[i],
                None => {
                    people.push(json!({"name": un, "organizational_unit": unit, "role": "Service"}));
                    people.last_mut().expect("just pushed")
                }
            };
            if p.get("nats_signing_role").is_some_and(|r| !r.is_null()) {
                continue;
            }
            p["nats_permissions"] = perms;
            match limits {
                Some(l) => p["nats_limits"] = l,
                None => {
                    if let Some(o) = p.as_object_mut() {
                        o.remove("nats_limits");
                    }
                }
            }
        }
    }
    Ok(c)
}

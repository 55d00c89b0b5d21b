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
    if ac.nats.limits != a.limits {
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
        let users: BTreeSet<String> = fs::read_dir(dir.join("users"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".jwt")).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
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

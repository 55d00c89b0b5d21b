//! `clan-nats verify`: check a written store from the outside, trusting nothing
//! but an operator key: the one pinned on this machine or given on the command
//! line, else (and then it can only say the store is self-consistent) the one
//! inside the store. Every problem is collected, each naming its file.
//!
//! [`signed_state`] is the part every command that writes runs first (see
//! [`crate::trust`]): the governance signatures against the pinned key, the
//! manifest and ownership record the last audit entry commits to, and the
//! sha256 of every file against that manifest.

use std::collections::{BTreeMap, BTreeSet};

use camino::Utf8Path;
use nkeys::KeyPair;

use crate::generate;
use crate::governance::Governance;
use crate::jwt::{creds, AccountClaims, OperatorClaims, UserClaims};
use crate::manifest::{self, Manifest};
use crate::store::{self, key_path, Layout, Tree, MANIFEST, SERVER_CONF, SERVER_JSON};
use crate::vault::Identity;

/// What `verify` found.
#[derive(Debug, Default)]
pub struct Report {
    pub problems: Vec<String>,
    pub accounts: usize,
    pub users: usize,
    pub files: usize,
    /// Secrets decrypted and checked (only with an identity).
    pub decrypted: usize,
    /// Secrets the identity is not a recipient of (skipped, not a problem:
    /// a specialist or a host reads only its own).
    pub not_yours: usize,
}

impl Report {
    fn bad(&mut self, path: &str, msg: impl std::fmt::Display) {
        self.problems.push(format!("{path}: {msg}"));
    }
}

/// Verify the store in `dir` against `operator` (the store's own key when
/// `None`); with an identity, also decrypt every secret it can read.
pub fn verify(dir: &Utf8Path, identity: Option<&Identity>, operator: Option<&str>) -> Report {
    let mut r = Report::default();
    let tree = match store::read_tree(dir) {
        Ok(t) => t,
        Err(e) => {
            r.problems.push(e.to_string());
            return r;
        }
    };
    if tree.is_empty() {
        r.bad(dir.as_str(), "no store here (missing or empty)");
        return r;
    }
    verify_tree(&tree, identity, operator, &mut r);
    r.problems = r.problems.into_iter().map(|p| format!("{dir}/{p}")).collect();
    r
}

/// Verify an in-memory tree (paths relative to DIR) against `operator` (the
/// manifest's operator key when `None`).
pub fn verify_tree(tree: &Tree, identity: Option<&Identity>, trusted: Option<&str>, r: &mut Report) {
    r.files = tree.len();
    let Some(m) = signed_state(tree, trusted, r) else { return };
    if m.operator.jwt.is_empty() {
        // Initialised (`init`) but not generated yet: only keys and governance exist.
        keys(tree, &m, identity, r);
        return;
    }

    let layout = Layout::with_format(&m.operator.name, m.layout);
    match tree.get(&layout.nsc_info()) {
        Some(b) if *b == layout.nsc_info_content().as_bytes() => {}
        Some(_) => r.bad(&layout.nsc_info(), format!("expected {}", layout.nsc_info_content())),
        None => r.bad(&layout.nsc_info(), "missing"),
    }
    let Some(op) = operator(tree, &m, &layout, r) else { return };

    let mut preload = BTreeMap::new();
    let mut account_dirs = BTreeSet::new();
    let acct_prefix = format!("{}/accounts/", layout.store_root());
    for path in tree.keys() {
        if let Some(rest) = path.strip_prefix(&acct_prefix) {
            account_dirs.insert(rest.split('/').next().unwrap_or_default().to_string());
        }
    }
    for name in &account_dirs {
        if m.account(name).is_none() {
            r.bad(&layout.account_dir(name), "account directory not in the manifest");
        }
    }
    for a in &m.accounts {
        r.accounts += 1;
        let path = layout.account_jwt(&a.name);
        if a.jwt != path {
            r.bad(MANIFEST, format!("account {:?}: jwt path {:?}, expected {path:?}", a.name, a.jwt));
        }
        let Some(tok) = text(tree, &path, r) else { continue };
        let ac = match AccountClaims::decode(tok) {
            Ok(c) => c,
            Err(e) => {
                r.bad(&path, e);
                continue;
            }
        };
        if ac.std.name != a.name {
            r.bad(&path, format!("name {:?} does not match its directory {:?}", ac.std.name, a.name));
        }
        if ac.std.sub != a.public_key {
            r.bad(&path, format!("subject {} is not the manifest's key {}", ac.std.sub, a.public_key));
        }
        if !op.trusts(&ac.std.iss) {
            r.bad(&path, format!("issuer {} is neither the operator nor one of its signing keys", ac.std.iss));
        }
        preload.insert(ac.std.sub.clone(), tok.trim().to_string());
        users(tree, &m, &layout, a, &ac, identity, r);
    }
    if !m.accounts.iter().any(|a| a.public_key == op.nats.system_account && a.system) {
        r.bad(
            &layout.operator_jwt(),
            format!("system_account {} is not the store's system account", op.nats.system_account),
        );
    }
    server(tree, &m, &op, &preload, r);
    r.problems.extend(crate::wiring::verify::store(tree, &m, &layout, &preload));
    keys(tree, &m, identity, r);
}

/// The state the owner signed, checked against `operator` (the manifest's own
/// key when `None`): the manifest parses, the governance record, its signature
/// and the audit chain verify with that key, the last audit entry commits to
/// this manifest and ownership record, every file has the sha256 the manifest
/// gives it, and every secret's recipients are what governance allows.
/// Returns the manifest when it could be read at all.
pub fn signed_state(tree: &Tree, operator: Option<&str>, r: &mut Report) -> Option<Manifest> {
    signed(tree, operator, true, r)
}

/// [`signed_state`] of a store's root alone (its root manifest, governance and
/// whatever else `tree` holds of it), before a command that writes: what the
/// command then reads is checked file by file against the manifest
/// ([`crate::generate::Existing::read`]). The manifest returned is the root.
pub fn signed_root(tree: &Tree, operator: Option<&str>, r: &mut Report) -> Option<Manifest> {
    signed(tree, operator, false, r)
}

fn signed(tree: &Tree, operator: Option<&str>, whole: bool, r: &mut Report) -> Option<Manifest> {
    let Some(mbytes) = tree.get(MANIFEST) else {
        r.bad(MANIFEST, "missing");
        return None;
    };
    let m = match Manifest::parse(mbytes) {
        Err(e) => {
            r.bad(MANIFEST, format!("not a valid manifest: {e}"));
            return None;
        }
        Ok(m) if !whole => m,
        // Format 2: every account manifest, each against the root's digest of it.
        Ok(_) => match Manifest::from_tree(tree) {
            Ok(m) => m,
            Err(e) => {
                r.problems.push(e);
                return None;
            }
        },
    };
    let key = operator.unwrap_or(&m.operator.public_key);
    if m.operator.public_key != key {
        r.bad(MANIFEST, format!("the store's operator is {}, not the trusted operator {key}", m.operator.public_key));
    }
    check_digests(tree, &m, whole, r);
    governance(tree, mbytes, &m, key, r);
    recipients(tree, &m, r);
    Some(m)
}

/// The ownership record, its signature and the audit chain, all by the
/// operator identity key; the last audit entry commits to the current
/// manifest and ownership record.
fn governance(tree: &Tree, manifest_bytes: &[u8], m: &Manifest, operator: &str, r: &mut Report) {
    let g = match Governance::from_tree(tree) {
        Ok(Some(g)) => g,
        Ok(None) => {
            r.bad(crate::governance::OWNERSHIP, "missing: the store has no governance record");
            return;
        }
        Err(e) => {
            r.problems.push(e.to_string());
            return;
        }
    };
    r.problems.extend(g.check(operator));
    r.problems.extend(g.commitment_problems(manifest_bytes));
    if m.recipients.get("owner") != Some(&g.ownership.owner_recipient) {
        r.bad(MANIFEST, "the owner recipient is not the one in the signed ownership record");
    }
    for member in &g.ownership.team_members {
        let name = format!("specialist:{}", member.id);
        if member.active && m.recipients.get(&name).is_some_and(|t| *t != member.recipient) {
            r.bad(MANIFEST, format!("{name} is not the recipient in the signed ownership record"));
        }
    }
    // Who may read what: owner (and admins) for seeds; plus the hosts running a
    // service and the active specialists of its unit for its creds.
    let parents = m.unit_parents();
    let owners: BTreeSet<&str> =
        m.recipients.keys().filter(|k| k.starts_with("owner") || k.starts_with("admin-")).map(String::as_str).collect();
    let creds: BTreeMap<&str, &crate::manifest::UserEntry> =
        m.accounts.iter().flat_map(|a| &a.users).map(|u| (u.creds.as_str(), u)).collect();
    for (path, s) in &m.secrets {
        let mut allowed: BTreeSet<String> = owners.iter().map(|o| o.to_string()).collect();
        if path == crate::fleet::CLUSTER_ENV && s.kind == "cluster" {
            // The route credential: the owners and every server of the fleet.
            let servers = crate::fleet::server_dirs(m);
            if servers.is_empty() {
                r.bad(path, "a route credential in a store that is not a multi-server fleet");
            }
            allowed.extend(m.hosts.iter().filter(|h| h.nats_server).map(|h| format!("host:{}", h.name)));
        } else if let Some(u) = creds.get(path.as_str()) {
            allowed.extend(u.hosts.iter().map(|h| format!("host:{h}")));
            for member in g.active() {
                if crate::governance::covered_units(&member.units, &parents).contains(&u.unit) {
                    allowed.insert(format!("specialist:{}", member.id));
                }
            }
        } else if s.kind != "seed" {
            r.bad(path, "a secret that is neither a seed nor a user's creds");
        }
        let have: BTreeSet<String> = s.recipients.iter().cloned().collect();
        if have != allowed {
            let extra: Vec<&String> = have.difference(&allowed).collect();
            let missing: Vec<&String> = allowed.difference(&have).collect();
            r.bad(
                path,
                format!("recipients differ from what governance allows (extra: {extra:?}, missing: {missing:?})"),
            );
        }
    }
}

/// Each `.age` file's header must hold exactly one stanza per declared
/// recipient, of the right type, and the declared set must hash as recorded.
fn recipients(tree: &Tree, m: &Manifest, r: &mut Report) {
    for (path, s) in &m.secrets {
        let texts: Vec<&str> = s.recipients.iter().filter_map(|n| m.recipients.get(n).map(String::as_str)).collect();
        if texts.len() != s.recipients.len() {
            r.bad(path, "a recipient name is not in the manifest's recipients table");
            continue;
        }
        if crate::manifest::recipients_digest(&texts) != s.recipients_sha256 {
            r.bad(path, "recipients_sha256 does not match the named recipients");
        }
        let distinct: BTreeSet<&str> = texts.iter().copied().collect();
        let want_x = distinct.iter().filter(|t| t.starts_with("age1")).count();
        let want_ssh = distinct.iter().filter(|t| t.starts_with("ssh-ed25519")).count();
        let Some(bytes) = tree.get(path) else { continue };
        match age_stanzas(bytes) {
            None => r.bad(path, "not an age file"),
            Some((x, ssh, other)) => {
                if (x, ssh, other) != (want_x, want_ssh, 0) {
                    r.bad(
                        path,
                        format!("encrypted to {x} X25519 + {ssh} ssh-ed25519 + {other} other recipient(s), the manifest declares {want_x} + {want_ssh} + 0"),
                    );
                }
            }
        }
    }
}

/// Is `identity` among the declared recipients of the secret at `path`?
fn readable(m: &Manifest, path: &str, identity: &Identity) -> bool {
    m.secrets.get(path).is_some_and(|s| {
        s.recipients.iter().filter_map(|n| m.recipients.get(n)).any(|r| identity.recipients.contains(r))
    })
}

/// Count the recipient stanzas of an age header: (X25519, ssh-ed25519, other).
pub fn age_stanzas(bytes: &[u8]) -> Option<(usize, usize, usize)> {
    let header_end = bytes.windows(4).position(|w| w == b"\n---")?;
    let header = std::str::from_utf8(&bytes[..header_end]).ok()?;
    let mut lines = header.lines();
    if lines.next()? != "age-encryption.org/v1" {
        return None;
    }
    let (mut x, mut ssh, mut other) = (0, 0, 0);
    for l in lines.filter(|l| l.starts_with("-> ")) {
        match l.split(' ').nth(1) {
            Some("X25519") => x += 1,
            Some("ssh-ed25519") => ssh += 1,
            // age implementations add random "grease" stanzas that no identity matches.
            Some(t) if t.ends_with("-grease") => {}
            _ => other += 1,
        }
    }
    Some((x, ssh, other))
}

fn text<'t>(tree: &'t Tree, path: &str, r: &mut Report) -> Option<&'t str> {
    match tree.get(path).map(|b| std::str::from_utf8(b)) {
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => {
            r.bad(path, "not UTF-8");
            None
        }
        None => {
            r.bad(path, "missing");
            None
        }
    }
}

fn check_digests(tree: &Tree, m: &Manifest, whole: bool, r: &mut Report) {
    for (path, bytes) in tree {
        if path == MANIFEST || path.starts_with("governance/") {
            continue;
        }
        if path.starts_with(&format!("{}/", manifest::ACCOUNT_DIR)) {
            // Checked against the root's digest when loaded; anything else there is a stranger.
            if !m.accounts.iter().any(|a| a.manifest == *path) {
                r.bad(path, "not the manifest of any account (unexpected file)");
            }
            continue;
        }
        match m.files.get(path) {
            None => r.bad(path, "not listed in the manifest (unexpected file)"),
            Some(d) if *d != manifest::file_digest(bytes) => {
                r.bad(path, format!("sha256 mismatch: manifest says {d}, file is {}", manifest::file_digest(bytes)))
            }
            Some(_) => {}
        }
    }
    for path in m.files.keys().filter(|_| whole) {
        if !tree.contains_key(path) {
            r.bad(path, "listed in the manifest but missing");
        }
    }
    for path in tree.keys().filter(|p| p.ends_with(store::layout::AGE_SUFFIX)) {
        if !m.secrets.contains_key(path) {
            r.bad(path, "encrypted file without a secrets entry in the manifest");
        }
    }
}

fn operator(tree: &Tree, m: &Manifest, layout: &Layout, r: &mut Report) -> Option<OperatorClaims> {
    let path = layout.operator_jwt();
    if m.operator.jwt != path {
        r.bad(MANIFEST, format!("operator jwt path {:?}, expected {path:?}", m.operator.jwt));
    }
    let tok = text(tree, &path, r)?;
    let op = match OperatorClaims::decode(tok) {
        Ok(c) => c,
        Err(e) => {
            r.bad(&path, e);
            return None;
        }
    };
    if op.std.name != m.operator.name {
        r.bad(&path, format!("name {:?} is not the store's operator {:?}", op.std.name, m.operator.name));
    }
    if op.std.sub != m.operator.public_key {
        r.bad(&path, format!("subject {} is not the manifest's operator key {}", op.std.sub, m.operator.public_key));
    }
    if op.std.iss != op.std.sub {
        r.bad(&path, "operator JWT is not self-signed");
    }
    if op.nats.signing_keys != m.operator.signing_keys {
        r.bad(&path, "signing keys differ from the manifest");
    }
    if op.nats.system_account != m.operator.system_account {
        r.bad(&path, "system_account differs from the manifest");
    }
    Some(op)
}

fn users(
    tree: &Tree,
    m: &Manifest,
    layout: &Layout,
    a: &manifest::AccountEntry,
    ac: &AccountClaims,
    identity: Option<&Identity>,
    r: &mut Report,
) {
    let prefix = format!("{}/users/", layout.account_dir(&a.name));
    let listed: BTreeSet<&str> = a.users.iter().map(|u| u.name.as_str()).collect();
    for path in tree.keys().filter(|p| p.starts_with(&prefix)) {
        let file = &path[prefix.len()..];
        let stem = file.strip_suffix(".jwt").or_else(|| file.strip_suffix(".creds.age"));
        if !stem.is_some_and(|s| listed.contains(s)) {
            r.bad(path, "not a user of this account in the manifest");
        }
    }
    for u in &a.users {
        r.users += 1;
        let path = layout.user_jwt(&a.name, &u.name);
        let Some(tok) = text(tree, &path, r) else { continue };
        let uc = match UserClaims::decode(tok) {
            Ok(c) => c,
            Err(e) => {
                r.bad(&path, e);
                continue;
            }
        };
        if uc.std.name != u.name {
            r.bad(&path, format!("name {:?} does not match its file name {:?}", uc.std.name, u.name));
        }
        if uc.std.sub != u.public_key {
            r.bad(&path, format!("subject {} is not the manifest's key {}", uc.std.sub, u.public_key));
        }
        if !ac.trusts(&uc.std.iss) {
            r.bad(&path, format!("issuer {} is neither account {:?} nor one of its signing keys", uc.std.iss, a.name));
        } else if uc.std.iss != ac.std.sub && uc.nats.issuer_account != ac.std.sub {
            r.bad(&path, format!("signed by a signing key, so issuer_account must be {}", ac.std.sub));
        } else if !uc.nats.issuer_account.is_empty() && uc.nats.issuer_account != ac.std.sub {
            r.bad(&path, format!("issuer_account {} is not account {}", uc.nats.issuer_account, ac.std.sub));
        }
        if ac.is_revoked(&uc.std.sub, uc.std.iat) {
            r.bad(&path, format!("user {:?} is revoked by its account", u.name));
        }
        let creds_path = layout.user_creds(&a.name, &u.name);
        if u.creds != creds_path {
            r.bad(MANIFEST, format!("user {:?}: creds path {:?}, expected {creds_path:?}", u.name, u.creds));
        }
        let Some(ct) = tree.get(&creds_path) else {
            r.bad(&creds_path, "missing");
            continue;
        };
        if let Some(id) = identity.filter(|id| {
            let mine = readable(m, &creds_path, id);
            if !mine {
                r.not_yours += 1;
            }
            mine
        }) {
            match id.decrypt(ct) {
                Err(e) => r.bad(&creds_path, format!("cannot decrypt with {}: {e}", id.path)),
                Ok(plain) => {
                    r.decrypted += 1;
                    match creds::parse_checked(&String::from_utf8_lossy(&plain)) {
                        Err(e) => r.bad(&creds_path, e),
                        Ok((claims, _)) if claims.std.jti != uc.std.jti || claims.std.sub != uc.std.sub => {
                            r.bad(&creds_path, format!("embedded JWT is not {path}"))
                        }
                        Ok(_) => {}
                    }
                }
            }
        }
    }
}

fn server(tree: &Tree, m: &Manifest, op: &OperatorClaims, preload: &BTreeMap<String, String>, r: &mut Report) {
    let fleet = !crate::fleet::server_dirs(m).is_empty();
    if fleet {
        for p in [SERVER_CONF, SERVER_JSON] {
            if tree.contains_key(p) {
                r.bad(p, "a multi-server fleet has one config per server (server/<host>/), not this one");
            }
        }
        if !tree.contains_key(crate::fleet::CLUSTER_ENV) {
            r.bad(crate::fleet::CLUSTER_ENV, "missing: the cluster's routes have no credential");
        }
    }
    for (conf, json) in crate::fleet::server_files(m) {
        server_one(tree, &conf, &json, fleet, op, preload, r);
    }
}

fn server_one(
    tree: &Tree,
    conf_path: &str,
    json_path: &str,
    fleet: bool,
    op: &OperatorClaims,
    preload: &BTreeMap<String, String>,
    r: &mut Report,
) {
    let Some(json) = tree.get(json_path) else {
        r.bad(json_path, "missing");
        return;
    };
    let v: serde_json::Value = match serde_json::from_slice(json) {
        Ok(v) => v,
        Err(e) => {
            r.bad(json_path, format!("not JSON: {e}"));
            return;
        }
    };
    let op_jwt = v.get("operator").and_then(|x| x.as_str()).unwrap_or_default();
    if OperatorClaims::decode(op_jwt).map(|c| c.std.jti != op.std.jti).unwrap_or(true) {
        r.bad(json_path, "operator is not the store's operator JWT");
    }
    if v.get("system_account").and_then(|x| x.as_str()) != Some(op.nats.system_account.as_str()) {
        r.bad(json_path, "system_account is not the operator's system account");
    }
    let resolver = if fleet { "full" } else { "MEMORY" };
    if v.get("resolver").and_then(|x| x.as_str()) != Some(resolver) {
        r.bad(json_path, format!("resolver is not {resolver}"));
    }
    if fleet && v.get("allow_delete") != Some(&serde_json::Value::Bool(false)) {
        r.bad(json_path, "allow_delete is not false");
    }
    if generate::preload_of(json).as_ref() != Some(preload) {
        r.bad(json_path, "resolver_preload is not exactly the store's account JWTs");
    }
    let conf = tree.get(conf_path).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
    if conf.is_empty() {
        r.bad(conf_path, "missing");
        return;
    }
    for jwt in preload.values().chain(std::iter::once(&op_jwt.to_string())) {
        if !conf.contains(jwt.as_str()) {
            r.bad(conf_path, "does not preload every account JWT of the store");
            break;
        }
    }
}

fn keys(tree: &Tree, m: &Manifest, identity: Option<&Identity>, r: &mut Report) {
    let listed: BTreeSet<&str> = m.keys.iter().map(|k| k.path.as_str()).collect();
    for path in tree.keys().filter(|p| p.starts_with("nsc/keys/")) {
        if !listed.contains(path.as_str()) {
            r.bad(path, "key file not listed in the manifest's keys");
        }
    }
    for k in &m.keys {
        if k.path != key_path(&k.public_key) {
            r.bad(MANIFEST, format!("key {}: path {:?}, expected {:?}", k.public_key, k.path, key_path(&k.public_key)));
        }
        let Some(ct) = tree.get(&k.path) else { continue };
        let Some(id) = identity else { continue };
        if !readable(m, &k.path, id) {
            r.not_yours += 1;
            continue;
        }
        match id.decrypt(ct) {
            Err(e) => r.bad(&k.path, format!("cannot decrypt with {}: {e}", id.path)),
            Ok(plain) => {
                r.decrypted += 1;
                match KeyPair::from_seed(String::from_utf8_lossy(&plain).trim()) {
                    Ok(kp) if kp.public_key() == k.public_key => {}
                    Ok(kp) => r.bad(&k.path, format!("seed belongs to {}, not {}", kp.public_key(), k.public_key)),
                    Err(e) => r.bad(&k.path, format!("not an nkey seed: {e}")),
                }
            }
        }
    }
}

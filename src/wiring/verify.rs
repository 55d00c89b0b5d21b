//! `verify` for wiring: every import of every account against its exporter.
//! `nats-server -t` accepts a bad activation token and then refuses every user
//! of the importing account at runtime, so each token is checked here:
//! signature, signer (the exporter, or one of its signing keys with
//! `issuer_account`), `sub` (the importer), `kind` (the import type), subject
//! containment, and revocation by the export.

use std::collections::BTreeMap;

use super::subject::contains;
use crate::jwt::{AccountClaims, ActivationClaims};
use crate::manifest::Manifest;
use crate::store::{Layout, Tree};

/// Every import of the store's accounts (`preload`: public key → account JWT,
/// already checked by the caller) and the server's `max_payload`, as
/// `path: problem` lines.
pub fn store(tree: &Tree, m: &Manifest, layout: &Layout, preload: &BTreeMap<String, String>) -> Vec<String> {
    let accounts: BTreeMap<String, AccountClaims> =
        preload.iter().filter_map(|(k, t)| AccountClaims::decode(t).ok().map(|c| (k.clone(), c))).collect();
    let mut out = Vec::new();
    for a in &m.accounts {
        if let Some(c) = accounts.get(&a.public_key) {
            let path = layout.account_jwt(&a.name);
            out.extend(imports(c, &accounts).into_iter().map(|p| format!("{path}: {p}")));
        }
    }
    // The manifest's flows are exactly the imports of the account JWTs.
    let key_of: BTreeMap<&str, &str> = m.accounts.iter().map(|a| (a.name.as_str(), a.public_key.as_str())).collect();
    let mut in_jwts: Vec<[String; 5]> = Vec::new();
    for a in &m.accounts {
        if let Some(c) = accounts.get(&a.public_key) {
            for i in &c.nats.imports {
                in_jwts.push([
                    i.account.clone(),
                    a.public_key.clone(),
                    i.subject.clone(),
                    i.kind.clone(),
                    i.local_subject.clone(),
                ]);
            }
        }
    }
    let key = |n: &str| key_of.get(n).map_or_else(|| format!("unknown account {n:?}"), |k| k.to_string());
    let mut listed: Vec<[String; 5]> = m
        .flows
        .iter()
        .map(|f| {
            [
                key(&f.exporter),
                key(&f.importer),
                f.subject.clone(),
                f.kind.as_str().to_string(),
                f.local_subject.clone().unwrap_or_default(),
            ]
        })
        .collect();
    in_jwts.sort();
    listed.sort();
    if in_jwts != listed {
        out.push(format!(
            "{}: flows do not match the imports of the account JWTs ({} listed, {} imported)",
            crate::store::MANIFEST,
            listed.len(),
            in_jwts.len()
        ));
    }
    let largest =
        m.accounts.iter().flat_map(|a| &a.users).map(|u| u.payload).fold(crate::plan::DEFAULT_PAYLOAD, i64::max);
    for (conf_path, json_path) in crate::fleet::server_files(m) {
        let json: Option<serde_json::Value> = tree.get(&json_path).and_then(|b| serde_json::from_slice(b).ok());
        let set = json.as_ref().and_then(|v| v.get("max_payload")).and_then(serde_json::Value::as_i64);
        if set != Some(largest) {
            out.push(format!("{json_path}: max_payload is {set:?}, but the largest user payload is {largest}"));
        }
        let conf = tree.get(&conf_path).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
        if !conf.lines().any(|l| l.trim() == format!("max_payload: {largest}")) {
            out.push(format!("{conf_path}: does not set max_payload: {largest}"));
        }
    }
    out
}

/// Problems of the imports of `importer`, given every account of the store by public key.
pub fn imports(importer: &AccountClaims, accounts: &BTreeMap<String, AccountClaims>) -> Vec<String> {
    let mut out = Vec::new();
    for (n, i) in importer.nats.imports.iter().enumerate() {
        let what = format!("import #{n} ({} {:?} from {})", i.kind, i.subject, i.account);
        if i.kind != "stream" && i.kind != "service" {
            out.push(format!("{what}: type {:?} is neither stream nor service", i.kind));
            continue;
        }
        let Some(exporter) = accounts.get(&i.account) else {
            out.push(format!("{what}: the exporting account is not in this store"));
            continue;
        };
        let Some(export) = exporter.nats.exports.iter().find(|e| e.kind == i.kind && contains(&e.subject, &i.subject))
        else {
            out.push(format!("{what}: account {:?} has no {} export covering it", exporter.std.name, i.kind));
            continue;
        };
        if i.token.is_empty() {
            if export.token_req {
                out.push(format!(
                    "{what}: the export {:?} is private but the import has no activation token",
                    export.subject
                ));
            }
            continue;
        }
        let act = match ActivationClaims::decode(&i.token) {
            Ok(a) => a,
            Err(e) => {
                out.push(format!("{what}: activation token: {e}"));
                continue;
            }
        };
        if !act.signed_for(exporter) {
            out.push(format!(
                "{what}: activation token is signed by {} (issuer_account {:?}), which is neither account {:?} nor one of its signing keys",
                act.std.iss, act.nats.issuer_account, exporter.std.name
            ));
        }
        if act.std.sub != importer.std.sub {
            out.push(format!(
                "{what}: activation token is for {}, not for this account {}",
                act.std.sub, importer.std.sub
            ));
        }
        if act.nats.kind != i.kind {
            out.push(format!("{what}: activation token kind {:?} is not the import type {:?}", act.nats.kind, i.kind));
        }
        if !contains(&act.nats.subject, &i.subject) {
            out.push(format!("{what}: activation token subject {:?} does not cover {:?}", act.nats.subject, i.subject));
        }
        let revoked = [importer.std.sub.as_str(), "*"]
            .iter()
            .any(|k| export.revocations.get(*k).is_some_and(|ts| *ts >= act.std.iat));
        if revoked {
            out.push(format!(
                "{what}: activation token (iat {}) is revoked by the export {:?}",
                act.std.iat, export.subject
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::{AccountNats, Export, Import};
    use nkeys::KeyPair;

    struct World {
        op: KeyPair,
        exp: KeyPair,
        sk: KeyPair,
        imp: KeyPair,
    }

    fn world() -> World {
        World {
            op: KeyPair::new_operator(),
            exp: KeyPair::new_account(),
            sk: KeyPair::new_account(),
            imp: KeyPair::new_account(),
        }
    }

    fn export(subject: &str) -> Export {
        Export {
            name: subject.into(),
            subject: subject.into(),
            kind: "stream".into(),
            token_req: true,
            revocations: BTreeMap::new(),
            response_type: String::new(),
            account_token_position: 0,
            description: String::new(),
            info_url: String::new(),
        }
    }

    /// Exporter and importer claims (round-tripped through real tokens) with one import carrying `token`.
    fn accounts(w: &World, export: Export, token: String) -> (AccountClaims, BTreeMap<String, AccountClaims>) {
        let mut e = AccountClaims::new(w.exp.public_key(), "core", AccountNats::default());
        e.nats.signing_keys = vec![w.sk.public_key().into()];
        e.nats.exports = vec![export];
        let e = AccountClaims::decode(&e.encode(&w.op, 10).unwrap()).unwrap();
        let mut i = AccountClaims::new(w.imp.public_key(), "media", AccountNats::default());
        i.nats.imports = vec![Import {
            name: "a.>".into(),
            subject: "a.>".into(),
            account: w.exp.public_key(),
            token,
            local_subject: String::new(),
            kind: "stream".into(),
        }];
        let i = AccountClaims::decode(&i.encode(&w.op, 10).unwrap()).unwrap();
        let all = [(e.std.sub.clone(), e), (i.std.sub.clone(), i.clone())].into_iter().collect();
        (i, all)
    }

    fn token(w: &World, sub: &str, subject: &str, kind: &str, signer: &KeyPair, iat: i64) -> String {
        ActivationClaims::for_import(sub, subject, kind, &w.exp.public_key()).encode(signer, iat).unwrap()
    }

    #[test]
    fn a_good_activation_passes() {
        let w = world();
        let t = token(&w, &w.imp.public_key(), "a.>", "stream", &w.sk, 20);
        let (i, all) = accounts(&w, export("a.>"), t);
        assert_eq!(imports(&i, &all), Vec::<String>::new());
    }

    #[test]
    fn each_bad_activation_is_named() {
        let w = world();
        let stranger = KeyPair::new_account();
        let cases = [
            (token(&w, &w.imp.public_key(), "a.>", "stream", &stranger, 20), "neither account"),
            (token(&w, &KeyPair::new_account().public_key(), "a.>", "stream", &w.sk, 20), "is for"),
            (token(&w, &w.imp.public_key(), "a.>", "service", &w.sk, 20), "kind \"service\""),
            (token(&w, &w.imp.public_key(), "a.b", "stream", &w.sk, 20), "does not cover"),
            (String::new(), "no activation token"),
        ];
        for (t, want) in cases {
            let (i, all) = accounts(&w, export("a.>"), t);
            let p = imports(&i, &all);
            assert!(p.iter().any(|m| m.contains(want)), "want {want:?}: {p:?}");
        }
        // Tampered: the payload no longer matches the signature.
        let t = token(&w, &w.imp.public_key(), "a.>", "stream", &w.sk, 20);
        let parts: Vec<&str> = t.split('.').collect();
        let payload = data_encoding::BASE64URL_NOPAD.decode(parts[1].as_bytes()).unwrap();
        let forged = String::from_utf8(payload).unwrap().replace("\"a.\\u003e\"", "\"\\u003e\"");
        let forged = format!("{}.{}.{}", parts[0], data_encoding::BASE64URL_NOPAD.encode(forged.as_bytes()), parts[2]);
        let (i, all) = accounts(&w, export("a.>"), forged);
        let p = imports(&i, &all);
        assert!(p.iter().any(|m| m.contains("signature does not verify")), "{p:?}");
    }

    #[test]
    fn revoked_and_uncovered_imports() {
        let w = world();
        let t = token(&w, &w.imp.public_key(), "a.>", "stream", &w.sk, 20);
        let mut e = export("a.>");
        e.revocations.insert(w.imp.public_key(), 20);
        let (i, all) = accounts(&w, e, t.clone());
        assert!(imports(&i, &all).iter().any(|m| m.contains("revoked")));
        let (i, all) = accounts(&w, export("b.>"), t);
        assert!(imports(&i, &all).iter().any(|m| m.contains("no stream export covering")));
    }
}

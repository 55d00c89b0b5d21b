//! Exports, imports and activation tokens of every account (see [`crate::wiring`]).
//!
//! Reconcile rules: an activation is kept byte for byte while its content and
//! signer are unchanged, so an unchanged flow leaves both account JWTs alone;
//! it is re-issued (newer `iat`) when the exporter's signing key or the
//! importer's key changes. An import that disappears is revoked in the
//! export's `revocations` (at max(now, the token's `iat`)), and a re-issued
//! activation always gets an `iat` after any revocation of its importer.

use std::collections::{BTreeMap, HashMap};

use nkeys::KeyPair;

use super::{decide, AccountKeys, Builder, GenerateError, Issue, Key};
use crate::jwt::{AccountClaims, ActivationClaims, Export, Import};
use crate::plan::Plan;
use crate::wiring::subject::overlaps;

/// Account name → (exports, imports), for the non-system accounts with any.
pub(super) type AccountWiring = BTreeMap<String, (Vec<Export>, Vec<Import>)>;

impl Builder<'_> {
    pub(super) fn wiring(&self, plan: &Plan, account_keys: &[AccountKeys]) -> Result<AccountWiring, GenerateError> {
        let w = &plan.wiring;
        if w.exports.is_empty() && w.flows.is_empty() {
            return Ok(AccountWiring::new());
        }
        let keys: HashMap<&str, (&Key, &Key)> =
            plan.accounts.iter().zip(account_keys).map(|(a, k)| (a.name.as_str(), (&k.id, &k.signing))).collect();
        let public = |name: &str| keys[name].0.entry.public_key.clone();
        // The previous account JWTs (only files whose digest the old manifest vouches for).
        let mut old: Vec<AccountClaims> = Vec::new();
        for e in self.existing.manifest.iter().flat_map(|m| &m.accounts) {
            if let Some(c) = self.old_account_jwt(&e.jwt)?.and_then(|t| AccountClaims::decode(&t).ok()) {
                old.push(c);
            }
        }
        let old_by_name: HashMap<&str, &AccountClaims> = old.iter().map(|c| (c.std.name.as_str(), c)).collect();

        // Exports, with the revocations they carry over and the imports that disappeared.
        let mut out: AccountWiring = BTreeMap::new();
        for (exporter, list) in &w.exports {
            let x = public(exporter);
            let mut exports = Vec::new();
            for e in list {
                let kind = e.kind.as_str();
                let mut revocations: BTreeMap<String, i64> = BTreeMap::new();
                let mut revoke = |key: &str, ts: i64| {
                    let v = revocations.entry(key.to_string()).or_insert(ts);
                    *v = (*v).max(ts);
                };
                if let Some(prev) = old_by_name.get(exporter.as_str()).filter(|c| c.std.sub == x) {
                    for pe in prev.nats.exports.iter().filter(|pe| pe.kind == kind && overlaps(&pe.subject, &e.subject))
                    {
                        for (k, ts) in &pe.revocations {
                            revoke(k, *ts);
                        }
                    }
                }
                for prev in &old {
                    for pi in prev.nats.imports.iter().filter(|pi| {
                        pi.account == x && pi.kind == kind && !pi.token.is_empty() && overlaps(&pi.subject, &e.subject)
                    }) {
                        let still = w.flows.iter().any(|f| {
                            &f.exporter == exporter
                                && f.kind == e.kind
                                && public(&f.importer) == prev.std.sub
                                && overlaps(&f.subject, &pi.subject)
                        });
                        if !still {
                            let iat = crate::jwt::peek(&pi.token).map_or(0, |(c, _)| c.iat);
                            revoke(&prev.std.sub, self.ctx.now.max(iat));
                        }
                    }
                }
                exports.push(Export {
                    name: e.subject.clone(),
                    subject: e.subject.clone(),
                    kind: kind.into(),
                    token_req: !e.public,
                    revocations,
                    response_type: e.response_type.clone(),
                    account_token_position: 0,
                    description: e.description.clone(),
                    info_url: String::new(),
                });
            }
            exports.sort_by(|a, b| a.subject.cmp(&b.subject));
            out.entry(exporter.clone()).or_default().0 = exports;
        }

        // Imports, each private one with its activation token.
        let mut signers: HashMap<String, KeyPair> = HashMap::new();
        for f in &w.flows {
            let export = w.export_for(f).expect("the wiring gives every flow an export");
            let (x, i) = (public(&f.exporter), public(&f.importer));
            let token = if export.public {
                String::new()
            } else {
                let (_, sk) = keys[f.exporter.as_str()];
                let old_token = old_by_name.get(f.importer.as_str()).and_then(|c| {
                    c.nats
                        .imports
                        .iter()
                        .find(|pi| pi.account == x && pi.subject == f.subject && pi.kind == f.kind.as_str())
                });
                let claims = ActivationClaims::for_import(&i, &f.subject, f.kind.as_str(), &x);
                match decide(claims, &sk.entry.public_key, old_token.map(|t| t.token.as_str()), self.ctx.now) {
                    Issue::Keep(t) => t,
                    Issue::Sign(mut c, iat) => {
                        let revoked = out[&f.exporter]
                            .0
                            .iter()
                            .filter(|e| e.kind == f.kind.as_str() && overlaps(&e.subject, &f.subject))
                            .filter_map(|e| e.revocations.get(&i).copied())
                            .max();
                        let iat = revoked.map_or(iat, |ts| iat.max(ts + 1));
                        if !signers.contains_key(&f.exporter) {
                            signers.insert(f.exporter.clone(), self.pair(sk)?);
                        }
                        c.encode(&signers[&f.exporter], iat)?
                    }
                }
            };
            out.entry(f.importer.clone()).or_default().1.push(Import {
                name: f.subject.clone(),
                subject: f.subject.clone(),
                account: x,
                token,
                local_subject: f.local_subject.clone().unwrap_or_default(),
                kind: f.kind.as_str().into(),
            });
        }
        for (_, imports) in out.values_mut() {
            imports.sort_by(|a, b| (&a.subject, &a.account).cmp(&(&b.subject, &b.account)));
        }
        Ok(out)
    }
}

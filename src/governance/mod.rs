//! Governance: one owner, a team of specialists, a signed ownership record and a
//! hash-chained, signed audit log, in `DIR/governance/`.
//!
//! Every rule is enforced by cryptography, not by marker files:
//! - only the owner's identity decrypts the keystore (`nsc/keys/`), so only the
//!   owner can sign with the operator identity key;
//! - the ownership record and every audit entry are signed with the operator
//!   identity key, so anyone holding the operator JWT can check them;
//! - a specialist's recipient is added to the creds of the services in their
//!   units (and sub-units), never to a seed.

pub mod audit;
pub mod invite;
pub mod record;

use std::collections::{BTreeMap, BTreeSet};

use data_encoding::BASE64URL_NOPAD;
use nkeys::KeyPair;
use serde::Serialize;

pub use crate::store::pin::Head;
pub use audit::{AuditEntry, AuditLog};
pub use record::{Member, Ownership, OwnershipSig};

pub const DIR: &str = "governance";
pub const OWNERSHIP: &str = "governance/ownership.json";
pub const OWNERSHIP_SIG: &str = "governance/ownership.sig";
pub const AUDIT: &str = "governance/audit.jsonl";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GovernanceError {
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("operation requires master role: {0}")]
    NotMaster(String),
}

pub(crate) fn invalid(path: &str, message: impl Into<String>) -> GovernanceError {
    GovernanceError::Invalid { path: path.to_string(), message: message.into() }
}

/// Canonical JSON: compact, object keys sorted (serde_json's default map is a
/// BTreeMap unless `preserve_order`, so go through a sorted `Value`).
pub fn canonical<T: Serialize>(value: &T) -> Vec<u8> {
    fn sort(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let sorted: BTreeMap<String, serde_json::Value> = m.into_iter().map(|(k, v)| (k, sort(v))).collect();
                serde_json::Value::Object(sorted.into_iter().collect())
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.into_iter().map(sort).collect()),
            other => other,
        }
    }
    serde_json::to_vec(&sort(serde_json::to_value(value).expect("serializes"))).expect("serializes")
}

pub fn sha256_tagged(bytes: &[u8]) -> String {
    format!("sha256:{}", crate::manifest::sha256_hex(bytes))
}

/// Sign a hash string with the operator identity key (base64url signature).
pub fn sign(key: &KeyPair, hash: &str) -> String {
    BASE64URL_NOPAD.encode(&key.sign(hash.as_bytes()).expect("a seed can sign"))
}

/// Check a signature over a hash string by a public nkey.
pub fn verify_sig(public_key: &str, hash: &str, signature: &str) -> bool {
    let Ok(kp) = KeyPair::from_public_key(public_key) else { return false };
    let Ok(sig) = BASE64URL_NOPAD.decode(signature.as_bytes()) else { return false };
    kp.verify(hash.as_bytes(), &sig).is_ok()
}

/// RFC 3339 UTC time of a Unix timestamp (no dependency on a date crate).
pub fn rfc3339(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// The units a member covers: the named ones and all their descendants.
pub fn covered_units(units: &[String], parents: &BTreeMap<String, Option<String>>) -> BTreeSet<String> {
    let roots: BTreeSet<&str> = units.iter().map(String::as_str).collect();
    parents
        .keys()
        .filter(|u| {
            let mut cur = Some(u.as_str());
            let mut steps = 0;
            while let Some(c) = cur {
                if roots.contains(c) {
                    return true;
                }
                cur = parents.get(c).and_then(|p| p.as_deref());
                steps += 1;
                if steps > parents.len() {
                    break;
                }
            }
            false
        })
        .cloned()
        .collect()
}

/// The governance files of a store, parsed and checked together.
#[derive(Debug, Clone)]
pub struct Governance {
    pub ownership: Ownership,
    pub sig: OwnershipSig,
    pub audit: AuditLog,
}

impl Governance {
    /// Read the governance files from a store tree; `None` if there are none.
    pub fn from_tree(tree: &crate::store::Tree) -> Result<Option<Governance>, GovernanceError> {
        let (o, s, a) = (tree.get(OWNERSHIP), tree.get(OWNERSHIP_SIG), tree.get(AUDIT));
        if o.is_none() && s.is_none() && a.is_none() {
            return Ok(None);
        }
        let ownership = Ownership::parse(o.ok_or_else(|| invalid(OWNERSHIP, "missing"))?)?;
        let sig = OwnershipSig::parse(s.ok_or_else(|| invalid(OWNERSHIP_SIG, "missing"))?)?;
        let audit = AuditLog::parse(a.ok_or_else(|| invalid(AUDIT, "missing"))?)?;
        Ok(Some(Governance { ownership, sig, audit }))
    }

    /// Everything a verifier checks: the record's own hash, its signature by the
    /// operator identity key, and the whole audit chain.
    pub fn check(&self, operator_key: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let hash = self.ownership.compute_hash();
        if self.ownership.signed_hash != hash {
            problems.push(format!(
                "{OWNERSHIP}: signed_hash {} does not match the record ({hash})",
                self.ownership.signed_hash
            ));
        }
        if self.sig.state_hash != hash {
            problems.push(format!("{OWNERSHIP_SIG}: state_hash is not the hash of ownership.json"));
        }
        if self.sig.signing_key != operator_key {
            problems.push(format!(
                "{OWNERSHIP_SIG}: signed by {}, not by the operator identity key {operator_key}",
                self.sig.signing_key
            ));
        } else if !verify_sig(operator_key, &self.sig.state_hash, &self.sig.signature) {
            problems.push(format!("{OWNERSHIP_SIG}: signature does not verify with the operator identity key"));
        }
        problems.extend(self.audit.check(operator_key).into_iter().map(|p| format!("{AUDIT}: {p}")));
        problems
    }

    pub fn to_files(&self) -> Vec<(String, Vec<u8>)> {
        vec![
            (OWNERSHIP.into(), self.ownership.to_bytes()),
            (OWNERSHIP_SIG.into(), self.sig.to_bytes()),
            (AUDIT.into(), self.audit.to_bytes()),
        ]
    }

    /// Start governance: a new organization owned by `owner_recipient`. The
    /// first audit entry (`init`) is appended by the caller with [`Governance::record`],
    /// once the manifest it commits to exists.
    pub fn init(owner_id: &str, owner_name: &str, owner_recipient: &str, operator: &KeyPair, now: i64) -> Governance {
        let ownership = Ownership::new(owner_id, owner_name, owner_recipient, now);
        let sig = OwnershipSig::sign(&ownership, operator, now);
        Governance { ownership, sig, audit: AuditLog::default() }
    }

    /// Append a signed audit entry that commits to the store's manifest and to
    /// the current ownership record, so that neither can be swapped (for an
    /// older, also validly signed one) without breaking the chain's head.
    pub fn record(
        &mut self,
        operator: &KeyPair,
        now: i64,
        actor: &str,
        action: &str,
        mut details: serde_json::Value,
        manifest: &[u8],
    ) -> Head {
        if !details.is_object() {
            details = serde_json::json!({ "value": details });
        }
        let o = details.as_object_mut().expect("an object");
        o.insert("manifest".into(), sha256_tagged(manifest).into());
        o.insert("ownership".into(), self.ownership.compute_hash().into());
        o.insert("ownership_sig".into(), sha256_tagged(&self.sig.to_bytes()).into());
        let e = self.audit.append(operator, now, actor, action, details);
        Head { seq: e.seq, hash: e.hash.clone() }
    }

    /// The last audit entry, if any.
    pub fn head(&self) -> Option<Head> {
        self.audit.entries.last().map(|e| Head { seq: e.seq, hash: e.hash.clone() })
    }

    /// The last audit entry must commit to exactly this manifest and this
    /// ownership record: anything else was put there outside clan-nats.
    pub fn commitment_problems(&self, manifest: &[u8]) -> Vec<String> {
        let mut problems = Vec::new();
        let Some(last) = self.audit.entries.last() else { return problems };
        let field = |k: &str| last.details.get(k).and_then(|v| v.as_str());
        if field("manifest") != Some(sha256_tagged(manifest).as_str()) {
            problems.push(format!(
                "{}: is not the manifest the last signed audit entry (seq {}) commits to (edited or replaced outside clan-nats)",
                crate::store::MANIFEST,
                last.seq
            ));
        }
        if field("ownership") != Some(self.ownership.compute_hash().as_str()) {
            problems.push(format!(
                "{OWNERSHIP}: is not the ownership record the last signed audit entry (seq {}) commits to (replaced by another, possibly older, record)",
                last.seq
            ));
        }
        if field("ownership_sig") != Some(sha256_tagged(&self.sig.to_bytes()).as_str()) {
            problems.push(format!(
                "{OWNERSHIP_SIG}: is not the signature file the last signed audit entry (seq {}) commits to (edited outside clan-nats)",
                last.seq
            ));
        }
        problems
    }

    /// Re-sign the ownership record after a change.
    pub fn resign(&mut self, operator: &KeyPair, now: i64) {
        self.ownership.signed_hash = self.ownership.compute_hash();
        self.sig = OwnershipSig::sign(&self.ownership, operator, now);
    }

    /// The active specialists.
    pub fn active(&self) -> impl Iterator<Item = &Member> {
        self.ownership.team_members.iter().filter(|m| m.active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_392_119), "2026-11-23T00:01:59Z");
    }

    #[test]
    fn canonical_sorts_keys_at_every_level() {
        let v = serde_json::json!({"b": 1, "a": {"d": [ {"z": 1, "y": 2} ], "c": 3}});
        assert_eq!(canonical(&v), br#"{"a":{"c":3,"d":[{"y":2,"z":1}]},"b":1}"#);
    }

    #[test]
    fn descendants_are_covered() {
        let parents: BTreeMap<String, Option<String>> =
            [("Core", None), ("Ops", Some("Core")), ("Deep", Some("Ops")), ("Media", None)]
                .into_iter()
                .map(|(a, b)| (a.to_string(), b.map(str::to_string)))
                .collect();
        let c = covered_units(&["Ops".into()], &parents);
        assert_eq!(c.into_iter().collect::<Vec<_>>(), ["Deep", "Ops"]);
        assert!(covered_units(&["Nope".into()], &parents).is_empty());
    }

    #[test]
    fn signed_record_and_tampering() {
        let op = KeyPair::new_operator();
        let mut g = Governance::init("github:alice", "Alice", "age1xyz", &op, 100);
        g.record(&op, 100, "github:alice", "init", serde_json::json!({}), b"{}");
        assert!(g.commitment_problems(b"{}").is_empty());
        assert_eq!(g.commitment_problems(b"{ }").len(), 1);
        assert!(g.check(&op.public_key()).is_empty(), "{:?}", g.check(&op.public_key()));
        g.ownership.owner_id = "github:mallory".into();
        let p = g.check(&op.public_key());
        assert!(p.iter().any(|m| m.contains("signed_hash")), "{p:?}");
        // Re-hashing is not enough without the operator key.
        g.ownership.signed_hash = g.ownership.compute_hash();
        let p = g.check(&op.public_key());
        assert!(p.iter().any(|m| m.contains("state_hash")), "{p:?}");
        // Signing with another key is caught too.
        let other = KeyPair::new_operator();
        g.resign(&other, 101);
        let p = g.check(&op.public_key());
        assert!(p.iter().any(|m| m.contains("not by the operator identity key")), "{p:?}");
    }
}

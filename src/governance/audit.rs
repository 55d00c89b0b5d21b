//! `audit.jsonl`: append-only, hash-chained, each entry signed by the owner
//! with the operator identity key.

use nkeys::KeyPair;
use serde::{Deserialize, Serialize};

use super::{canonical, invalid, rfc3339, sha256_tagged, sign, verify_sig, GovernanceError, AUDIT};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    pub seq: u64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub details: serde_json::Value,
    pub prev_hash: String,
    /// `sha256:` of the canonical entry without `hash` and `signature`.
    pub hash: String,
    pub signature: String,
}

impl AuditEntry {
    pub fn compute_hash(&self) -> String {
        let v = serde_json::json!({
            "seq": self.seq, "at": self.at, "actor": self.actor, "action": self.action,
            "details": self.details, "prev_hash": self.prev_hash,
        });
        sha256_tagged(&canonical(&v))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditLog {
    pub entries: Vec<AuditEntry>,
}

impl AuditLog {
    pub fn parse(bytes: &[u8]) -> Result<AuditLog, GovernanceError> {
        let text = std::str::from_utf8(bytes).map_err(|_| invalid(AUDIT, "not UTF-8"))?;
        let entries = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| serde_json::from_str(l).map_err(|e| invalid(AUDIT, format!("line {}: {e}", i + 1))))
            .collect::<Result<_, _>>()?;
        Ok(AuditLog { entries })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for e in &self.entries {
            out.extend(serde_json::to_vec(e).expect("serializes"));
            out.push(b'\n');
        }
        out
    }

    /// Append a signed entry chained to the last one.
    pub fn append(
        &mut self,
        operator: &KeyPair,
        now: i64,
        actor: &str,
        action: &str,
        details: serde_json::Value,
    ) -> &AuditEntry {
        let prev_hash = self.entries.last().map_or_else(|| GENESIS.to_string(), |e| e.hash.clone());
        let mut e = AuditEntry {
            seq: self.entries.len() as u64 + 1,
            at: rfc3339(now),
            actor: actor.into(),
            action: action.into(),
            details,
            prev_hash,
            hash: String::new(),
            signature: String::new(),
        };
        e.hash = e.compute_hash();
        e.signature = sign(operator, &e.hash);
        self.entries.push(e);
        self.entries.last().expect("just pushed")
    }

    /// Every problem with the chain: sequence, links, hashes and signatures.
    pub fn check(&self, operator_key: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.entries.is_empty() {
            problems.push("the audit log is empty (it must start with init)".into());
        }
        let mut prev = GENESIS.to_string();
        for (i, e) in self.entries.iter().enumerate() {
            let line = i + 1;
            if e.seq != line as u64 {
                problems.push(format!(
                    "line {line}: seq {} out of order (expected {line}): an entry was removed, inserted or reordered",
                    e.seq
                ));
            }
            if e.prev_hash != prev {
                problems.push(format!("line {line}: prev_hash does not chain to the previous entry"));
            }
            if e.compute_hash() != e.hash {
                problems.push(format!("line {line}: hash does not match the entry (edited)"));
            } else if !verify_sig(operator_key, &e.hash, &e.signature) {
                problems.push(format!("line {line}: signature does not verify with the operator identity key"));
            }
            prev = e.hash.clone();
        }
        if let Some(first) = self.entries.first() {
            if first.action != "init" {
                problems.push("line 1: the first entry is not init".into());
            }
        }
        problems
    }

    /// Was this nonce recorded already (used invite tokens)?
    pub fn has_nonce(&self, nonce: &str) -> bool {
        self.entries.iter().any(|e| e.details.get("nonce").and_then(|n| n.as_str()) == Some(nonce))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(op: &KeyPair) -> AuditLog {
        let mut l = AuditLog::default();
        l.append(op, 1, "owner", "init", serde_json::json!({}));
        l.append(op, 2, "owner", "generate", serde_json::json!({"written": 3}));
        l.append(op, 3, "owner", "team-add", serde_json::json!({"id": "bob"}));
        l
    }

    #[test]
    fn a_clean_chain_verifies_and_round_trips() {
        let op = KeyPair::new_operator();
        let l = log(&op);
        assert!(l.check(&op.public_key()).is_empty());
        assert_eq!(AuditLog::parse(&l.to_bytes()).unwrap(), l);
    }

    #[test]
    fn tampering_is_detected() {
        let op = KeyPair::new_operator();
        let pk = op.public_key();
        let mut edited = log(&op);
        edited.entries[1].details = serde_json::json!({"written": 4});
        assert!(edited.check(&pk).iter().any(|p| p.contains("line 2: hash does not match")));
        let mut deleted = log(&op);
        deleted.entries.remove(1);
        assert!(deleted.check(&pk).iter().any(|p| p.contains("out of order")));
        let mut reordered = log(&op);
        reordered.entries.swap(1, 2);
        assert!(!reordered.check(&pk).is_empty());
        let mut inserted = log(&op);
        let forged = inserted.entries[1].clone();
        inserted.entries.insert(2, forged);
        assert!(!inserted.check(&pk).is_empty());
        // A whole chain re-signed by another key.
        let other = KeyPair::new_operator();
        assert!(log(&other).check(&pk).iter().any(|p| p.contains("signature does not verify")));
    }

    #[test]
    fn nonces_are_found() {
        let op = KeyPair::new_operator();
        let mut l = log(&op);
        assert!(!l.has_nonce("n1"));
        l.append(&op, 4, "owner", "team-accept", serde_json::json!({"nonce": "n1"}));
        assert!(l.has_nonce("n1"));
    }
}

//! `DIR/manifest.json`: the public index of a store. Operator, accounts and
//! users with their public keys and permissions, which host receives which
//! creds, who can decrypt each secret, and the sha256 of every file.
//! Deterministic: no timestamps, sorted everywhere.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::jwt::user::Permissions;

pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub generator: String,
    /// Where creds files live: `nsc` (default, omitted) or `flat`.
    #[serde(default, skip_serializing_if = "crate::store::Format::is_nsc")]
    pub layout: crate::store::Format,
    pub operator: OperatorEntry,
    pub accounts: Vec<AccountEntry>,
    /// The unit tree (who covers what for specialists).
    #[serde(default)]
    pub units: Vec<crate::plan::UnitPlan>,
    /// Every flow between accounts ([`crate::wiring`]), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flows: Vec<crate::wiring::Flow>,
    pub hosts: Vec<HostEntry>,
    /// Recipient name → recipient (`owner`, `admin-N`, `host:<name>`).
    pub recipients: BTreeMap<String, String>,
    pub keys: Vec<KeyEntry>,
    /// Encrypted file → what it holds and who can read it.
    pub secrets: BTreeMap<String, SecretEntry>,
    /// Every file of the store but this one and `governance/` (which carries its
    /// own signatures) → `sha256:<hex>`.
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorEntry {
    pub name: String,
    pub public_key: String,
    pub signing_keys: Vec<String>,
    pub system_account: String,
    pub jwt: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountEntry {
    pub name: String,
    pub public_key: String,
    pub signing_keys: Vec<String>,
    pub system: bool,
    pub units: Vec<String>,
    pub jetstream: bool,
    pub jwt: String,
    pub users: Vec<UserEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub name: String,
    pub unit: String,
    pub public_key: String,
    pub permissions: Permissions,
    pub payload: i64,
    /// Issue 14: `nats_limits` (absent when there are none, as in older manifests).
    #[serde(default, skip_serializing_if = "crate::plan::Restrictions::is_empty")]
    pub restrictions: crate::plan::Restrictions,
    pub hosts: Vec<String>,
    pub jwt: String,
    pub creds: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEntry {
    pub name: String,
    pub recipient: String,
    pub nats_server: bool,
    /// The creds files encrypted to this host.
    pub creds: Vec<String>,
}

/// What a key is: `operator`, `operator-signing`, `account`, `account-signing` or `user`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub public_key: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub account: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretEntry {
    /// `seed` or `creds`.
    pub kind: String,
    /// Recipient names, sorted.
    pub recipients: Vec<String>,
    /// sha256 of the sorted recipient keys: the ciphertext is kept while this
    /// and `plaintext_sha256` are unchanged.
    pub recipients_sha256: String,
    pub plaintext_sha256: String,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(bytes))
}

/// `sha256:<hex>`, the form used in `files`.
pub fn file_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// The digest of a recipient set: sorted, one per line.
pub fn recipients_digest(recipients: &[&str]) -> String {
    let mut sorted: Vec<&str> = recipients.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sha256_hex(sorted.join("\n").as_bytes())
}

impl Manifest {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("manifest serializes");
        v.push(b'\n');
        v
    }

    pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }

    pub fn account(&self, name: &str) -> Option<&AccountEntry> {
        self.accounts.iter().find(|a| a.name == name)
    }

    /// Unit → parent, for [`crate::governance::covered_units`].
    pub fn unit_parents(&self) -> BTreeMap<String, Option<String>> {
        self.units.iter().map(|u| (u.name.clone(), u.parent.clone())).collect()
    }

    pub fn key(&self, role: &str, account: &str, user: &str) -> Option<&KeyEntry> {
        self.keys.iter().find(|k| k.role == role && k.account == account && k.user == user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipient_digest_ignores_order_and_duplicates() {
        assert_eq!(recipients_digest(&["b", "a"]), recipients_digest(&["a", "b", "a"]));
        assert_ne!(recipients_digest(&["a"]), recipients_digest(&["a", "b"]));
    }

    #[test]
    fn sha256_known_value() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}

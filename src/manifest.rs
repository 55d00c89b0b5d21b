//! `DIR/manifest.json`: the public index of a store. Operator, accounts and
//! users with their public keys and permissions, which host receives which
//! creds, who can decrypt each secret, and the sha256 of every file.
//! Deterministic: no timestamps, sorted everywhere.
//!
//! Format 2 splits it so that no file grows with the whole organization: the
//! root `manifest.json` holds the operator, the hosts, the recipients and one
//! summary per account (with the sha256 of the account's own manifest), and
//! `manifest.d/<account>.json` holds that account's users, keys, secrets and
//! file digests. The audit log commits to the root, the root to every account
//! manifest, each account manifest to its files: one signature covers the
//! store, and a command reads only the account manifests it touches.
//! In memory a [`Manifest`] is the assembled whole (format 1's shape).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::jwt::user::Permissions;

pub const FORMAT: u32 = 2;

/// Where the per-account manifests live (format 2).
pub const ACCOUNT_DIR: &str = "manifest.d";

/// `manifest.d/<account>.json`.
pub fn account_manifest_path(account: &str) -> String {
    format!("{ACCOUNT_DIR}/{account}.json")
}

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
    /// Every file of the store but the manifests and `governance/` (which
    /// carries its own signatures) → `sha256:<hex>`.
    pub files: BTreeMap<String, String>,
    /// The digest of everything the server configs are made from (format 2):
    /// equal digests mean equal server files, which are then not read.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_inputs: String,
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
    /// In the root of format 2 they are left out: they live in [`AccountEntry::manifest`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserEntry>,
    /// The digest of everything the account's files are made from (its config
    /// slice with its users', keys, recipients, issuer): equal inputs mean the
    /// account's files are unchanged, and a re-run does not open them.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub inputs: String,
    /// The account's manifest (format 2 root): its path and `sha256:<hex>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub manifest: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub manifest_sha256: String,
    /// Whether `users` (and the account's keys, secrets and files in the
    /// [`Manifest`] maps) were read: a reconcile reads only what it touches.
    #[serde(skip, default = "yes")]
    pub loaded: bool,
}

fn yes() -> bool {
    true
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
    /// The digest of everything this user's files are made from (format 2).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub inputs: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEntry {
    pub name: String,
    pub recipient: String,
    pub nats_server: bool,
    /// The creds files encrypted to this host. Format 2 does not store it (it
    /// would list every user): it is derived from the users' `hosts` on load.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
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

/// `manifest.d/<account>.json`: what of the store belongs to one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountManifest {
    pub format: u32,
    pub account: String,
    pub users: Vec<UserEntry>,
    pub keys: Vec<KeyEntry>,
    pub secrets: BTreeMap<String, SecretEntry>,
    pub files: BTreeMap<String, String>,
}

/// The root file as written: [`Manifest`]'s fields in its order, borrowing.
#[derive(Serialize)]
struct RootOut<'a> {
    format: u32,
    generator: &'a str,
    #[serde(skip_serializing_if = "crate::store::Format::is_nsc")]
    layout: crate::store::Format,
    operator: &'a OperatorEntry,
    accounts: Vec<AccountEntry>,
    units: &'a [crate::plan::UnitPlan],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    flows: &'a [crate::wiring::Flow],
    hosts: Vec<HostEntry>,
    recipients: &'a BTreeMap<String, String>,
    keys: Vec<&'a KeyEntry>,
    secrets: BTreeMap<&'a str, &'a SecretEntry>,
    files: BTreeMap<&'a str, &'a str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    server_inputs: &'a str,
}

fn pretty<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).expect("manifest serializes");
    out.push(b'\n');
    out
}

impl Manifest {
    /// The files of this manifest: the root and the manifest of every loaded
    /// account, whose summaries get that file's digest. The root comes last.
    pub fn to_files(&mut self) -> Vec<(String, Vec<u8>)> {
        let owner = self.owners();
        let mut out = Vec::new();
        let mut by_account: BTreeMap<&str, AccountManifest> = BTreeMap::new();
        for a in self.accounts.iter().filter(|a| a.loaded) {
            by_account.insert(
                &a.name,
                AccountManifest {
                    format: FORMAT,
                    account: a.name.clone(),
                    users: a.users.clone(),
                    keys: Vec::new(),
                    secrets: BTreeMap::new(),
                    files: BTreeMap::new(),
                },
            );
        }
        for k in self.keys.iter().filter(|k| k.role == "user") {
            if let Some(am) = by_account.get_mut(k.account.as_str()) {
                am.keys.push(k.clone());
            }
        }
        for (p, s) in &self.secrets {
            if let Some(am) = owner.get(p.as_str()).and_then(|a| by_account.get_mut(a)) {
                am.secrets.insert(p.clone(), s.clone());
            }
        }
        for (p, d) in &self.files {
            if let Some(am) = owner.get(p.as_str()).and_then(|a| by_account.get_mut(a)) {
                am.files.insert(p.clone(), d.clone());
            }
        }
        let mut written: BTreeMap<String, String> = BTreeMap::new();
        for (name, am) in by_account {
            let bytes = pretty(&am);
            written.insert(name.to_string(), file_digest(&bytes));
            out.push((account_manifest_path(name), bytes));
        }
        let summary = |a: &AccountEntry| {
            let mut e = AccountEntry { users: Vec::new(), ..a.clone() };
            if let Some(sha) = written.get(&a.name) {
                e.manifest = account_manifest_path(&a.name);
                e.manifest_sha256 = sha.clone();
            }
            e
        };
        let root = RootOut {
            format: FORMAT,
            generator: &self.generator,
            layout: self.layout,
            operator: &self.operator,
            accounts: self.accounts.iter().map(summary).collect(),
            units: &self.units,
            flows: &self.flows,
            hosts: self.hosts.iter().map(|h| HostEntry { creds: Vec::new(), ..h.clone() }).collect(),
            recipients: &self.recipients,
            keys: self.keys.iter().filter(|k| k.role != "user").collect(),
            secrets: self
                .secrets
                .iter()
                .filter(|(p, _)| !owner.contains_key(p.as_str()))
                .map(|(p, s)| (p.as_str(), s))
                .collect(),
            files: self
                .files
                .iter()
                .filter(|(p, _)| !owner.contains_key(p.as_str()))
                .map(|(p, d)| (p.as_str(), d.as_str()))
                .collect(),
            server_inputs: &self.server_inputs,
        };
        let root = pretty(&root);
        for a in &mut self.accounts {
            if let Some(sha) = written.remove(&a.name) {
                a.manifest = account_manifest_path(&a.name);
                a.manifest_sha256 = sha;
            }
        }
        self.format = FORMAT;
        out.push((crate::store::MANIFEST.to_string(), root));
        out
    }

    /// Path → account, for every file and secret of an account's users: their
    /// JWTs, creds and seeds. (The account's own JWT and keys stay in the root:
    /// a re-run that opens no account still needs them.)
    fn owners(&self) -> std::collections::HashMap<&str, &str> {
        let mut owner = std::collections::HashMap::new();
        for a in self.accounts.iter().filter(|a| a.loaded) {
            for u in &a.users {
                owner.insert(u.jwt.as_str(), a.name.as_str());
                owner.insert(u.creds.as_str(), a.name.as_str());
            }
        }
        for k in self.keys.iter().filter(|k| k.role == "user") {
            owner.insert(k.path.as_str(), k.account.as_str());
        }
        owner
    }

    /// The root file alone. In format 2 its accounts are not loaded yet
    /// (see [`Manifest::load_account`]); format 1 is whole.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
        let mut m: Manifest = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if m.format >= 2 {
            for a in &mut m.accounts {
                a.loaded = false;
            }
        }
        Ok(m)
    }

    /// Whether account `i`'s manifest still has to be read.
    pub fn needs_load(&self, i: usize) -> bool {
        !self.accounts[i].loaded
    }

    /// Read account `i`'s manifest (the bytes of [`AccountEntry::manifest`]):
    /// its digest must be the one the root gives, its account the right one.
    pub fn load_account(&mut self, i: usize, bytes: &[u8]) -> Result<(), String> {
        let a = &self.accounts[i];
        let want = account_manifest_path(&a.name);
        if a.manifest != want {
            return Err(format!("account {:?}: manifest path {:?}, expected {want:?}", a.name, a.manifest));
        }
        if file_digest(bytes) != a.manifest_sha256 {
            return Err(format!(
                "{want}: sha256 mismatch: the manifest says {}, the file is {}",
                a.manifest_sha256,
                file_digest(bytes)
            ));
        }
        let am: AccountManifest = serde_json::from_slice(bytes).map_err(|e| format!("{want}: {e}"))?;
        if am.account != a.name {
            return Err(format!("{want}: holds account {:?}, not {:?}", am.account, a.name));
        }
        if let Some(k) = am.keys.iter().find(|k| k.account != a.name || k.role != "user") {
            return Err(format!("{want}: key {} is not a user key of account {:?}", k.public_key, a.name));
        }
        let a = &mut self.accounts[i];
        a.users = am.users;
        a.loaded = true;
        self.keys.extend(am.keys);
        self.secrets.extend(am.secrets);
        self.files.extend(am.files);
        Ok(())
    }

    /// The whole manifest of a tree: the root and, in format 2, every account
    /// manifest, each checked against the digest its parent gives it; hosts
    /// get their creds lists back.
    pub fn from_tree(tree: &crate::store::Tree) -> Result<Manifest, String> {
        use crate::store::MANIFEST;
        let bytes = tree.get(MANIFEST).ok_or_else(|| format!("{MANIFEST}: missing"))?;
        let mut m = Manifest::parse(bytes).map_err(|e| format!("{MANIFEST}: {e}"))?;
        for i in 0..m.accounts.len() {
            if m.needs_load(i) {
                let path = account_manifest_path(&m.accounts[i].name);
                let bytes = tree.get(&path).ok_or_else(|| format!("{path}: missing"))?;
                m.load_account(i, bytes)?;
            }
        }
        m.finish_load();
        Ok(m)
    }

    /// The whole manifest of the store in `dir` (the root and every account
    /// manifest, each checked against its parent's digest of it). It does not
    /// check the store's signatures: that is `clan-nats verify`.
    pub fn read_dir(dir: impl AsRef<std::path::Path>) -> Result<Manifest, String> {
        let dir = dir.as_ref();
        use crate::store::MANIFEST;
        let read = |rel: &str| std::fs::read(dir.join(rel)).map_err(|e| format!("{rel}: {e}"));
        let mut m = Manifest::parse(&read(MANIFEST)?).map_err(|e| format!("{MANIFEST}: {e}"))?;
        for i in 0..m.accounts.len() {
            if m.needs_load(i) {
                let bytes = read(&account_manifest_path(&m.accounts[i].name))?;
                m.load_account(i, &bytes)?;
            }
        }
        m.finish_load();
        Ok(m)
    }

    /// After every account is loaded: sort the keys as they are written, and
    /// derive each host's creds from the users' hosts.
    pub fn finish_load(&mut self) {
        self.keys.sort_by(|x, y| (&x.role, &x.account, &x.user).cmp(&(&y.role, &y.account, &y.user)));
        if self.format < 2 {
            return;
        }
        let mut creds: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for u in self.accounts.iter().flat_map(|a| &a.users) {
            for h in &u.hosts {
                creds.entry(h.as_str()).or_default().push(u.creds.clone());
            }
        }
        let creds: BTreeMap<String, Vec<String>> = creds.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        for h in &mut self.hosts {
            h.creds = creds.get(&h.name).cloned().unwrap_or_default();
        }
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

//! Reconcile a plan with the existing store, sign and encrypt: plan + existing
//! tree → new tree. Pure apart from key generation and age's randomness; the
//! caller writes the result with [`crate::store::write_tree`].
//!
//! Rules: keys are read back from the existing keystore (decrypted with the
//! owner identity) and only made when missing; a JWT whose content is unchanged
//! is kept byte for byte, a changed one is re-issued with `iat` strictly greater
//! than before; an `.age` file is kept while its plaintext and recipient set are
//! unchanged; removed users are revoked in their account.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use nkeys::KeyPair;

use crate::jwt::{creds, AccountClaims, AccountNats, ClaimKind, Claims, JwtError, OperatorClaims, OperatorNats, UserClaims, UserNats};
use crate::manifest::{self, AccountEntry, HostEntry, KeyEntry, Manifest, OperatorEntry, SecretEntry, UserEntry};
use crate::plan::{Plan, UserPlan};
use crate::store::{key_path, Layout, Tree, MANIFEST, SERVER_CONF, SERVER_JSON};
use crate::vault::{self, Identity, Recipient, VaultError};

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{path}: the existing store cannot be decrypted with identity {identity}: {reason}. Use the owner's identity; nothing was changed")]
    NotOwner { path: String, identity: String, reason: String },
    #[error("the existing store is damaged: {0}; run `clan-nats verify` on it; nothing was changed")]
    Damaged(String),
    #[error("{0}")]
    Vault(#[from] VaultError),
    #[error("signing failed: {0}")]
    Jwt(#[from] JwtError),
}

/// Who may read what, and when it is.
pub struct Context<'a> {
    /// The owner's identity: reads the existing keystore.
    pub identity: &'a Identity,
    /// Extra admin recipients (`--recipient`): can read everything the owner can.
    pub admins: Vec<Recipient>,
    /// Unix seconds for newly issued JWTs and revocations.
    pub now: i64,
    /// Make a new key for this entity instead of reading the old one back.
    pub rotate: Option<Rotation>,
}

/// What `clan-nats rotate` replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The user's key: old creds stop working (the old key is revoked).
    User(String),
    /// The account's identity and signing keys: every user of it is re-issued.
    Account(String),
    /// The operator's signing key: every account is re-signed.
    OperatorSigningKey,
}

impl Rotation {
    fn matches(&self, role: &str, account: &str, user: &str) -> bool {
        match self {
            Rotation::User(n) => role == "user" && user == n,
            Rotation::Account(n) => (role == "account" || role == "account-signing") && account == n,
            Rotation::OperatorSigningKey => role == "operator-signing",
        }
    }

    /// Check the target exists in the plan.
    pub fn check(&self, plan: &Plan) -> Result<(), String> {
        let found = match self {
            Rotation::User(n) => plan.accounts.iter().any(|a| a.users.iter().any(|u| &u.name == n)),
            Rotation::Account(n) => plan.accounts.iter().any(|a| &a.name == n),
            Rotation::OperatorSigningKey => true,
        };
        if found {
            Ok(())
        } else {
            let what = if matches!(self, Rotation::User(_)) { "user" } else { "account" };
            let name = match self {
                Rotation::User(n) | Rotation::Account(n) => n.as_str(),
                Rotation::OperatorSigningKey => "",
            };
            Err(format!("there is no {what} named {name:?} in the config"))
        }
    }
}

/// The existing store, as read from DIR.
pub struct Existing {
    pub tree: Tree,
    pub manifest: Option<Manifest>,
    /// Keys adopted from an nsc keystore (`import-nsc`), by (role, account, user) → seed.
    pub imported: HashMap<(String, String, String), String>,
}

impl Existing {
    /// Check that an existing DIR is a clan-nats store before touching it.
    pub fn from_tree(tree: Tree) -> Result<Existing, GenerateError> {
        if tree.is_empty() {
            return Ok(Existing { tree, manifest: None, imported: HashMap::new() });
        }
        let Some(bytes) = tree.get(MANIFEST) else {
            return Err(GenerateError::Damaged(format!(
                "the output directory is not empty and has no {MANIFEST}, so it is not a clan-nats store; refusing to overwrite it"
            )));
        };
        let manifest = Manifest::parse(bytes).map_err(|e| GenerateError::Damaged(format!("{MANIFEST}: {e}")))?;
        Ok(Existing { tree, manifest: Some(manifest), imported: HashMap::new() })
    }
}

/// A named recipient.
struct Named<'a> {
    name: String,
    recipient: &'a Recipient,
}

struct Builder<'a> {
    ctx: &'a Context<'a>,
    existing: &'a Existing,
    out: Tree,
    keys: Vec<KeyEntry>,
    secrets: BTreeMap<String, SecretEntry>,
    owners: Vec<Named<'a>>,
}

/// Build the complete new store.
pub fn build(plan: &Plan, ctx: &Context, existing: &Existing) -> Result<Tree, GenerateError> {
    let owner_recipients: Vec<Recipient> =
        ctx.identity.recipients.iter().map(|r| vault::parse_recipient(r)).collect::<Result<_, _>>()?;
    let config_owner = match &plan.owner_recipient {
        Some(r) if !ctx.identity.recipients.contains(&vault::parse_recipient(r)?.text) => Some(vault::parse_recipient(r)?),
        _ => None,
    };
    let host_recipients: BTreeMap<&str, Recipient> = plan
        .hosts
        .iter()
        .map(|h| Ok((h.name.as_str(), vault::parse_recipient(&h.recipient)?)))
        .collect::<Result<_, VaultError>>()?;

    let mut owners: Vec<Named> = owner_recipients
        .iter()
        .enumerate()
        .map(|(i, r)| Named { name: if i == 0 { "owner".into() } else { format!("owner-{}", i + 1) }, recipient: r })
        .collect();
    if let Some(r) = &config_owner {
        owners.push(Named { name: format!("owner:{}", plan.owner_id.as_deref().unwrap_or("config")), recipient: r });
    }
    for (i, r) in ctx.admins.iter().enumerate() {
        owners.push(Named { name: format!("admin-{}", i + 1), recipient: r });
    }

    let mut b = Builder { ctx, existing, out: Tree::new(), keys: Vec::new(), secrets: BTreeMap::new(), owners };
    let old = existing.manifest.as_ref();
    let layout = Layout::new(&plan.operator);

    // Operator: identity key and one signing key.
    let op_kp = b.key("operator", "", "", KeyPair::new_operator)?;
    let op_sk = b.key("operator-signing", "", "", KeyPair::new_operator)?;

    // Accounts: keys first (the operator JWT names the system account).
    let mut account_keys = Vec::new();
    for a in &plan.accounts {
        let id = b.key("account", &a.name, "", KeyPair::new_account)?;
        let sk = b.key("account-signing", &a.name, "", KeyPair::new_account)?;
        account_keys.push((id, sk));
    }
    let sys_index = plan.accounts.iter().position(|a| a.system).expect("the plan always has a system account");
    let sys_pub = account_keys[sys_index].0.public_key();

    let mut op_claims = OperatorClaims::new(
        op_kp.public_key(),
        &plan.operator,
        OperatorNats { signing_keys: vec![op_sk.public_key()], system_account: sys_pub.clone(), ..Default::default() },
    );
    let op_jwt = issue(&mut op_claims, &op_kp, old.and_then(|m| b.old_file(&m.operator.jwt)), ctx.now)?;
    b.out.insert(layout.nsc_info(), layout.nsc_info_content().into_bytes());
    b.out.insert(layout.operator_jwt(), op_jwt.clone().into_bytes());

    let mut account_entries = Vec::new();
    let mut preload = BTreeMap::new();
    let mut host_creds: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (a, (acct_kp, acct_sk)) in plan.accounts.iter().zip(&account_keys) {
        let old_acct = old.and_then(|m| m.account(&a.name));
        let user_keys = a
            .users
            .iter()
            .map(|u| b.key("user", &a.name, &u.name, KeyPair::new_user))
            .collect::<Result<Vec<_>, _>>()?;
        let current: HashMap<&str, String> =
            a.users.iter().zip(&user_keys).map(|(u, k)| (u.name.as_str(), k.public_key())).collect();
        let revocations = b.revocations(old_acct, &current, &acct_kp.public_key());
        let mut nats = AccountNats {
            limits: a.limits.clone(),
            signing_keys: vec![acct_sk.public_key()],
            revocations,
            description: a.description.clone(),
            ..Default::default()
        };
        if a.system {
            nats.exports = AccountClaims::system_exports();
        }
        let mut claims = AccountClaims::new(acct_kp.public_key(), &a.name, nats);
        let jwt = issue(&mut claims, &op_sk, old_acct.and_then(|e| b.old_file(&e.jwt)), ctx.now)?;
        b.out.insert(layout.account_jwt(&a.name), jwt.clone().into_bytes());
        preload.insert(acct_kp.public_key(), jwt);

        let mut users = Vec::new();
        for (u, user_kp) in a.users.iter().zip(&user_keys) {
            let old_user = old_acct.and_then(|e| e.users.iter().find(|x| x.name == u.name));
            let jwt = issue(
                &mut user_claims(u, user_kp, acct_kp),
                acct_sk,
                old_user.and_then(|e| b.old_file(&e.jwt)),
                ctx.now,
            )?;
            let jwt_path = layout.user_jwt(&a.name, &u.name);
            let creds_path = layout.user_creds(&a.name, &u.name);
            b.out.insert(jwt_path.clone(), jwt.clone().into_bytes());
            let seed = user_kp.seed().map_err(|e| GenerateError::Damaged(e.to_string()))?;
            let plaintext = creds::format_unchecked(&jwt, &seed);
            let hosts: Vec<Named> = u
                .hosts
                .iter()
                .map(|h| Named { name: format!("host:{h}"), recipient: &host_recipients[h.as_str()] })
                .collect();
            b.seal(&creds_path, "creds", plaintext.as_bytes(), &hosts)?;
            for h in &u.hosts {
                host_creds.entry(h.as_str()).or_default().push(creds_path.clone());
            }
            users.push(UserEntry {
                name: u.name.clone(),
                unit: u.unit.clone(),
                public_key: user_kp.public_key(),
                permissions: u.permissions.clone(),
                payload: u.payload,
                hosts: u.hosts.clone(),
                jwt: jwt_path,
                creds: creds_path,
            });
        }
        account_entries.push(AccountEntry {
            name: a.name.clone(),
            public_key: acct_kp.public_key(),
            signing_keys: vec![acct_sk.public_key()],
            system: a.system,
            units: a.units.clone(),
            jetstream: a.limits.jetstream_enabled(),
            jwt: layout.account_jwt(&a.name),
            users,
        });
    }

    server_files(&mut b.out, &op_jwt, &sys_pub, &preload);

    let hosts = plan
        .hosts
        .iter()
        .map(|h| HostEntry {
            name: h.name.clone(),
            recipient: host_recipients[h.name.as_str()].text.clone(),
            nats_server: h.nats_server,
            creds: host_creds.remove(h.name.as_str()).unwrap_or_default(),
        })
        .collect();
    let mut recipients: BTreeMap<String, String> =
        b.owners.iter().map(|n| (n.name.clone(), n.recipient.text.clone())).collect();
    for (h, r) in &host_recipients {
        recipients.insert(format!("host:{h}"), r.text.clone());
    }
    let mut keys = std::mem::take(&mut b.keys);
    keys.sort_by(|x, y| (x.role.as_str(), x.account.as_str(), x.user.as_str()).cmp(&(y.role.as_str(), y.account.as_str(), y.user.as_str())));
    let manifest = Manifest {
        format: manifest::FORMAT,
        generator: "clan-nats".into(),
        operator: OperatorEntry {
            name: plan.operator.clone(),
            public_key: op_kp.public_key(),
            signing_keys: vec![op_sk.public_key()],
            system_account: sys_pub,
            jwt: layout.operator_jwt(),
        },
        accounts: account_entries,
        hosts,
        recipients,
        keys,
        secrets: std::mem::take(&mut b.secrets),
        files: b.out.iter().map(|(k, v)| (k.clone(), manifest::file_digest(v))).collect(),
    };
    b.out.insert(MANIFEST.into(), manifest.to_bytes());
    Ok(b.out)
}

fn user_claims(u: &UserPlan, user_kp: &KeyPair, account: &KeyPair) -> UserClaims {
    UserClaims::new(
        user_kp.public_key(),
        &u.name,
        UserNats {
            permissions: u.permissions.clone(),
            payload: u.payload,
            issuer_account: account.public_key(),
            ..Default::default()
        },
    )
}

/// Keep `old` if re-encoding the claims with its `iat` and issuer gives the same
/// payload; otherwise sign anew with `iat` = max(now, old iat + 1), because the
/// `full` resolver ignores a JWT whose `iat` is not newer.
pub fn issue<N: ClaimKind>(
    claims: &mut Claims<N>,
    signer: &KeyPair,
    old: Option<&str>,
    now: i64,
) -> Result<String, GenerateError> {
    let mut iat = now;
    if let Some(old) = old {
        if let Ok((prev, payload)) = Claims::<N>::decode_with_payload(old) {
            if prev.std.sub == claims.std.sub {
                if claims.payload_as(&signer.public_key(), prev.std.iat) == payload && prev.std.iss == signer.public_key() {
                    return Ok(old.trim().to_string());
                }
                iat = iat.max(prev.std.iat + 1);
            }
        }
    }
    Ok(claims.encode(signer, iat)?)
}

impl<'a> Builder<'a> {
    fn old_file(&self, path: &str) -> Option<&'a str> {
        self.existing.tree.get(path).and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The key of an entity: read back from the existing keystore, else made anew.
    /// Either way its seed goes into the new keystore, encrypted to the owners only.
    fn key(&mut self, role: &str, account: &str, user: &str, make: fn() -> KeyPair) -> Result<KeyPair, GenerateError> {
        let old = self.existing.manifest.as_ref().and_then(|m| m.key(role, account, user));
        let imported = self.existing.imported.get(&(role.to_string(), account.to_string(), user.to_string()));
        let kp = if self.ctx.rotate.as_ref().is_some_and(|r| r.matches(role, account, user)) {
            make()
        } else if let Some(seed) = imported {
            KeyPair::from_seed(seed).map_err(|e| GenerateError::Damaged(format!("imported seed: {e}")))?
        } else if let Some(entry) = old {
            self.read_key(entry)?
        } else {
            make()
        };
        let public = kp.public_key();
        let path = key_path(&public);
        let seed = kp.seed().map_err(|e| GenerateError::Damaged(e.to_string()))?;
        self.seal(&path, "seed", seed.as_bytes(), &[])?;
        self.keys.push(KeyEntry { public_key: public, role: role.into(), account: account.into(), user: user.into(), path });
        Ok(kp)
    }

    fn read_key(&self, entry: &KeyEntry) -> Result<KeyPair, GenerateError> {
        let bytes = self
            .existing
            .tree
            .get(&entry.path)
            .ok_or_else(|| GenerateError::Damaged(format!("{}: listed in the manifest but missing", entry.path)))?;
        let plain = self.ctx.identity.decrypt(bytes).map_err(|e| GenerateError::NotOwner {
            path: entry.path.clone(),
            identity: self.ctx.identity.path.to_string(),
            reason: e.to_string(),
        })?;
        let seed = std::str::from_utf8(&plain).map_err(|_| GenerateError::Damaged(format!("{}: seed is not text", entry.path)))?;
        let kp = KeyPair::from_seed(seed.trim())
            .map_err(|e| GenerateError::Damaged(format!("{}: not an nkey seed: {e}", entry.path)))?;
        if kp.public_key() != entry.public_key {
            return Err(GenerateError::Damaged(format!("{}: seed does not belong to {}", entry.path, entry.public_key)));
        }
        Ok(kp)
    }

    /// Encrypt `plaintext` to the owners plus `extra`, keeping the existing
    /// ciphertext when neither the plaintext nor the recipient set changed.
    fn seal(&mut self, path: &str, kind: &str, plaintext: &[u8], extra: &[Named]) -> Result<(), GenerateError> {
        let all: Vec<&Named> = self.owners.iter().chain(extra.iter()).collect();
        let texts: Vec<&str> = all.iter().map(|n| n.recipient.text.as_str()).collect();
        let recipients_sha256 = manifest::recipients_digest(&texts);
        let plaintext_sha256 = manifest::sha256_hex(plaintext);
        let kept = self.existing.manifest.as_ref().and_then(|m| m.secrets.get(path)).filter(|s| {
            s.recipients_sha256 == recipients_sha256 && s.plaintext_sha256 == plaintext_sha256
        });
        let bytes = match (kept, self.existing.tree.get(path)) {
            (Some(_), Some(old)) => old.clone(),
            _ => {
                let mut seen = BTreeSet::new();
                let rs: Vec<&Recipient> = all.iter().filter(|n| seen.insert(n.recipient.text.as_str())).map(|n| n.recipient).collect();
                vault::encrypt(plaintext, &rs)?
            }
        };
        let mut names: Vec<String> = all.iter().map(|n| n.name.clone()).collect();
        names.sort();
        names.dedup();
        self.out.insert(path.to_string(), bytes);
        self.secrets.insert(
            path.to_string(),
            SecretEntry { kind: kind.into(), recipients: names, recipients_sha256, plaintext_sha256 },
        );
        Ok(())
    }

    /// The account's revocations: the old JWT's (if it is the same account key),
    /// plus every user key that was in this account and is not any more (the user
    /// was removed, moved, or got a new key), revoked at `now`.
    fn revocations(&self, old: Option<&AccountEntry>, current: &HashMap<&str, String>, account_key: &str) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        let Some(old) = old.filter(|o| o.public_key == account_key) else { return out };
        if let Some(prev) = self.old_file(&old.jwt).and_then(|t| AccountClaims::decode(t).ok()) {
            if prev.std.sub == old.public_key {
                out = prev.nats.revocations;
            }
        }
        for u in &old.users {
            if current.get(u.name.as_str()) != Some(&u.public_key) {
                // At or after the old JWT's iat, which a same-second re-issue may have put past `now`.
                let iat = self.old_file(&u.jwt).and_then(|t| UserClaims::decode(t).ok()).map_or(0, |c| c.std.iat);
                out.entry(u.public_key.clone()).or_insert(self.ctx.now.max(iat));
            }
        }
        out
    }
}

/// `server/nats-server.conf` and `server/server.json`: operator mode with the
/// MEMORY resolver and every account preloaded. Public data only.
fn server_files(out: &mut Tree, operator_jwt: &str, system_account: &str, preload: &BTreeMap<String, String>) {
    let mut conf = String::new();
    conf.push_str("# nats-server configuration in operator mode, generated by clan-nats.\n");
    conf.push_str("# Public data only (JWTs and public keys). Run: nats-server -c nats-server.conf\n");
    conf.push_str(&format!("operator: \"{operator_jwt}\"\n"));
    conf.push_str(&format!("system_account: \"{system_account}\"\n"));
    conf.push_str("resolver: MEMORY\n");
    conf.push_str("resolver_preload: {\n");
    for (k, v) in preload {
        conf.push_str(&format!("  {k}: \"{v}\"\n"));
    }
    conf.push_str("}\n");
    out.insert(SERVER_CONF.into(), conf.into_bytes());
    let json = serde_json::json!({
        "operator": operator_jwt,
        "system_account": system_account,
        "resolver": "MEMORY",
        "resolver_preload": preload,
    });
    let mut bytes = serde_json::to_vec_pretty(&json).expect("json serializes");
    bytes.push(b'\n');
    out.insert(SERVER_JSON.into(), bytes);
}

/// Accounts in a preload map: `server.json`'s `resolver_preload`.
pub fn preload_of(server_json: &[u8]) -> Option<BTreeMap<String, String>> {
    let v: serde_json::Value = serde_json::from_slice(server_json).ok()?;
    serde_json::from_value(v.get("resolver_preload")?.clone()).ok()
}

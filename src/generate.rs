//! Reconcile a plan with the existing store, sign and encrypt: plan + existing
//! tree → new tree. Pure apart from key generation and age's randomness; the
//! caller writes the result with [`crate::store::write_tree`].
//!
//! Rules: keys are read back from the existing keystore (decrypted with the
//! owner identity) and only made when missing; a JWT whose content is unchanged
//! is kept byte for byte, a changed one is re-issued with `iat` strictly greater
//! than before; an `.age` file is kept while its plaintext and recipient set are
//! unchanged; removed users are revoked in their account.

mod wiring;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use nkeys::KeyPair;
use rayon::prelude::*;

use crate::config::perms::Expiry;
use crate::jwt::account::{SigningKey, UserScope};
use crate::jwt::{
    creds, AccountClaims, AccountNats, ClaimKind, Claims, JwtError, OperatorClaims, OperatorNats, UserClaims, UserNats,
};
use crate::manifest::{self, AccountEntry, HostEntry, KeyEntry, Manifest, OperatorEntry, SecretEntry, UserEntry};
use crate::plan::{AccountPlan, Plan, UserPlan};
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
    /// Active specialists: each reads the creds of the services in the units it covers.
    pub specialists: Vec<Specialist>,
    /// The config the store is generated from, kept as `DIR/config.json`.
    pub config_json: Vec<u8>,
    /// Where creds files go.
    pub format: crate::store::Format,
}

/// A team member's read access, from the governance record.
pub struct Specialist {
    pub id: String,
    pub recipient: Recipient,
    /// The units named for the member and all their sub-units.
    pub units: BTreeSet<String>,
}

/// What `clan-nats rotate` replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The user's key: old creds stop working (the old key is revoked).
    User(String),
    /// Several users' keys at once, in one write (`team remove --rotate`).
    Users(Vec<String>),
    /// The account's identity and signing keys: every user of it is re-issued.
    Account(String),
    /// The operator's signing key: every account is re-signed.
    OperatorSigningKey,
}

impl Rotation {
    fn matches(&self, role: &str, account: &str, user: &str) -> bool {
        match self {
            Rotation::User(n) => role == "user" && user == n,
            Rotation::Users(ns) => role == "user" && ns.iter().any(|n| n == user),
            Rotation::Account(n) => {
                (role == "account" || role == "account-signing" || role == "account-scoped") && account == n
            }
            Rotation::OperatorSigningKey => role == "operator-signing",
        }
    }

    /// Check the target exists in the plan.
    pub fn check(&self, plan: &Plan) -> Result<(), String> {
        let user = |n: &String| plan.accounts.iter().any(|a| a.users.iter().any(|u| &u.name == n));
        let missing = match self {
            Rotation::User(n) => (!user(n)).then_some(("user", n.as_str())),
            Rotation::Users(ns) => ns.iter().find(|n| !user(n)).map(|n| ("user", n.as_str())),
            Rotation::Account(n) => (!plan.accounts.iter().any(|a| &a.name == n)).then_some(("account", n.as_str())),
            Rotation::OperatorSigningKey => None,
        };
        match missing {
            None => Ok(()),
            Some((what, name)) => Err(format!("there is no {what} named {name:?} in the config")),
        }
    }
}

/// The existing store, as read from DIR.
pub struct Existing {
    pub tree: Tree,
    pub manifest: Option<Manifest>,
    /// Keys adopted from an nsc keystore (`import-nsc`), by (role, account, user) → seed.
    pub imported: HashMap<(String, String, String), String>,
    /// The manifest's keys by (role, account, user), an index into `manifest.keys`.
    key_index: HashMap<(String, String, String), usize>,
}

impl Existing {
    /// Check that an existing DIR is a clan-nats store before touching it.
    pub fn from_tree(tree: Tree) -> Result<Existing, GenerateError> {
        if tree.is_empty() {
            return Ok(Existing { tree, manifest: None, imported: HashMap::new(), key_index: HashMap::new() });
        }
        let Some(bytes) = tree.get(MANIFEST) else {
            return Err(GenerateError::Damaged(format!(
                "the output directory is not empty and has no {MANIFEST}, so it is not a clan-nats store; refusing to overwrite it"
            )));
        };
        let manifest = Manifest::parse(bytes).map_err(|e| GenerateError::Damaged(format!("{MANIFEST}: {e}")))?;
        let key_index = manifest
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| ((k.role.clone(), k.account.clone(), k.user.clone()), i))
            .collect();
        Ok(Existing { tree, manifest: Some(manifest), imported: HashMap::new(), key_index })
    }

    /// The old key of an entity, if the old store has one.
    fn key(&self, role: &str, account: &str, user: &str) -> Option<&KeyEntry> {
        let i = self.key_index.get(&(role.to_string(), account.to_string(), user.to_string()))?;
        self.manifest.as_ref().map(|m| &m.keys[*i])
    }
}

/// `DIR/config.json`: the config the store was generated from (public data),
/// so that rotate and team commands can reconcile without being given it.
pub const CONFIG: &str = "config.json";

/// A named recipient.
struct Named<'a> {
    name: String,
    recipient: &'a Recipient,
}

/// A key whose public half is always known; its seed is made now (`fresh`) or
/// decrypted from the old keystore only when something must be signed or
/// re-encrypted. A no-change re-run decrypts nothing.
struct Key<'a> {
    entry: KeyEntry,
    fresh: Option<KeyPair>,
    old: Option<&'a KeyEntry>,
}

/// What to do with one JWT.
enum Issue<N> {
    Keep(String),
    Sign(Claims<N>, i64),
}

/// One file of the new tree with its manifest entries.
struct Sealed {
    path: String,
    bytes: Vec<u8>,
    entry: SecretEntry,
}

struct UserOut {
    jwt_path: String,
    jwt: String,
    creds: Sealed,
    key: Sealed,
    key_entry: KeyEntry,
    entry: UserEntry,
}

struct Builder<'a> {
    ctx: &'a Context<'a>,
    existing: &'a Existing,
    owners: Vec<Named<'a>>,
    hosts: BTreeMap<&'a str, Recipient>,
}

/// Build the complete new store.
pub fn build(plan: &Plan, ctx: &Context, existing: &Existing) -> Result<Tree, GenerateError> {
    let owner_recipients: Vec<Recipient> =
        ctx.identity.recipients.iter().map(|r| vault::parse_recipient(r)).collect::<Result<_, _>>()?;
    let config_owner = match &plan.owner_recipient {
        Some(r) if !ctx.identity.recipients.contains(&vault::parse_recipient(r)?.text) => {
            Some(vault::parse_recipient(r)?)
        }
        _ => None,
    };
    let hosts: BTreeMap<&str, Recipient> = plan
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
    let b = Builder { ctx, existing, owners, hosts };
    b.build(plan)
}

impl<'a> Builder<'a> {
    fn build(&self, plan: &Plan) -> Result<Tree, GenerateError> {
        let old = self.existing.manifest.as_ref();
        let layout = Layout::with_format(&plan.operator, self.ctx.format);
        let mut out = Tree::new();
        let mut secrets = BTreeMap::new();
        let mut keys = Vec::new();
        let mut seal_key = |k: &Key, out: &mut Tree| -> Result<(), GenerateError> {
            let s = self.seal_key(k)?;
            out.insert(s.path.clone(), s.bytes);
            secrets.insert(s.path, s.entry);
            keys.push(k.entry.clone());
            Ok(())
        };

        // Operator and account keys (the operator JWT names the system account).
        let op = self.key("operator", "", "", KeyPair::new_operator)?;
        let op_sk = self.key("operator-signing", "", "", KeyPair::new_operator)?;
        let account_keys = plan
            .accounts
            .iter()
            .map(|a| {
                Ok((
                    self.key("account", &a.name, "", KeyPair::new_account)?,
                    self.key("account-signing", &a.name, "", KeyPair::new_account)?,
                ))
            })
            .collect::<Result<Vec<_>, GenerateError>>()?;
        let sys = plan.accounts.iter().position(|a| a.system).expect("the plan always has a system account");
        let sys_pub = account_keys[sys].0.entry.public_key.clone();

        let op_claims = OperatorClaims::new(
            &op.entry.public_key,
            &plan.operator,
            OperatorNats {
                signing_keys: vec![op_sk.entry.public_key.clone()],
                system_account: sys_pub.clone(),
                ..Default::default()
            },
        );
        let op_jwt = self.sign(
            decide(op_claims, &op.entry.public_key, old.and_then(|m| self.old_jwt(&m.operator.jwt)), self.ctx.now),
            &op,
        )?;
        out.insert(layout.nsc_info(), layout.nsc_info_content().into_bytes());
        out.insert(layout.operator_jwt(), op_jwt.clone().into_bytes());
        seal_key(&op, &mut out)?;
        seal_key(&op_sk, &mut out)?;

        // Per account: user keys, revocations, exports and imports, the account JWT.
        let mut wiring = self.wiring(plan, &account_keys)?;
        let mut preload = BTreeMap::new();
        let mut user_keys = Vec::new();
        let mut role_keys = Vec::new();
        for (a, (acct, acct_sk)) in plan.accounts.iter().zip(&account_keys) {
            let old_acct = old.and_then(|m| m.account(&a.name));
            // Issue 14: one scoped signing key per role.
            let rk: Vec<Key> = a
                .roles
                .iter()
                .map(|r| self.key("account-scoped", &a.name, &r.name, KeyPair::new_account))
                .collect::<Result<_, _>>()?;
            let uk = a
                .users
                .par_iter()
                .map(|u| self.key("user", &a.name, &u.name, KeyPair::new_user))
                .collect::<Result<Vec<_>, _>>()?;
            let current: HashMap<&str, &str> =
                a.users.iter().zip(&uk).map(|(u, k)| (u.name.as_str(), k.entry.public_key.as_str())).collect();
            let mut claims =
                account_claims(a, acct, acct_sk, &rk, self.revocations(old_acct, &current, &acct.entry.public_key));
            if let Some((exports, imports)) = wiring.remove(&a.name) {
                claims.nats.exports = exports;
                claims.nats.imports = imports;
            }
            let jwt = self.sign(
                decide(claims, &op_sk.entry.public_key, old_acct.and_then(|e| self.old_jwt(&e.jwt)), self.ctx.now),
                &op_sk,
            )?;
            out.insert(layout.account_jwt(&a.name), jwt.clone().into_bytes());
            preload.insert(acct.entry.public_key.clone(), jwt);
            seal_key(acct, &mut out)?;
            seal_key(acct_sk, &mut out)?;
            for k in &rk {
                seal_key(k, &mut out)?;
            }
            user_keys.push(uk);
            role_keys.push(rk);
        }

        // Users, in parallel: decide, load the signing keys that are needed, sign and seal.
        let mut account_entries = Vec::new();
        let mut host_creds: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (((a, (acct, acct_sk)), uk), rk) in plan.accounts.iter().zip(&account_keys).zip(user_keys).zip(&role_keys) {
            // The key that signs each user: its role's scoped key, else the account signing key.
            let signer_of = |u: &UserPlan| -> &Key {
                u.signing_role
                    .as_ref()
                    .and_then(|r| a.roles.iter().position(|x| &x.name == r))
                    .map_or(acct_sk, |i| &rk[i])
            };
            let old_acct = old.and_then(|m| m.account(&a.name));
            let old_users: HashMap<&str, &UserEntry> =
                old_acct.map(|e| e.users.iter().map(|u| (u.name.as_str(), u)).collect()).unwrap_or_default();
            let decisions: Vec<Issue<UserNats>> = a
                .users
                .par_iter()
                .zip(&uk)
                .map(|(u, k)| {
                    let old_jwt = old_users.get(u.name.as_str()).and_then(|e| self.old_jwt(&e.jwt));
                    decide_user(
                        user_claims(u, &k.entry.public_key, &acct.entry.public_key),
                        u.restrictions.expires,
                        &signer_of(u).entry.public_key,
                        old_jwt,
                        self.ctx.now,
                    )
                })
                .collect();
            let mut signers: HashMap<String, KeyPair> = HashMap::new();
            for (u, d) in a.users.iter().zip(&decisions) {
                let s = signer_of(u);
                if matches!(d, Issue::Sign(..)) && !signers.contains_key(&s.entry.public_key) {
                    signers.insert(s.entry.public_key.clone(), self.pair(s)?);
                }
            }
            let users: Vec<UserOut> = a
                .users
                .par_iter()
                .zip(&uk)
                .zip(decisions)
                .map(|((u, k), d)| self.user(&layout, a, u, k, d, signers.get(&signer_of(u).entry.public_key)))
                .collect::<Result<_, _>>()?;
            let mut entries = Vec::new();
            for u in users {
                out.insert(u.jwt_path, u.jwt.into_bytes());
                out.insert(u.creds.path.clone(), u.creds.bytes);
                secrets.insert(u.creds.path, u.creds.entry);
                out.insert(u.key.path.clone(), u.key.bytes);
                secrets.insert(u.key.path, u.key.entry);
                keys.push(u.key_entry);
                for h in &u.entry.hosts {
                    host_creds
                        .entry(self.hosts.get_key_value(h.as_str()).expect("validated host").0)
                        .or_default()
                        .push(u.entry.creds.clone());
                }
                entries.push(u.entry);
            }
            account_entries.push(AccountEntry {
                name: a.name.clone(),
                public_key: acct.entry.public_key.clone(),
                signing_keys: std::iter::once(&acct_sk.entry.public_key)
                    .chain(rk.iter().map(|k| &k.entry.public_key))
                    .cloned()
                    .collect(),
                system: a.system,
                units: a.units.clone(),
                jetstream: a.limits.jetstream_enabled(),
                jwt: layout.account_jwt(&a.name),
                users: entries,
            });
        }

        match &plan.fleet {
            None => server_files(&mut out, &op_jwt, &sys_pub, &preload, plan.max_payload()),
            Some(f) => {
                out.extend(crate::fleet::conf::render(f, &op_jwt, &sys_pub, &preload, plan.max_payload()));
                let s = self.cluster_env(f)?;
                out.insert(s.path.clone(), s.bytes);
                secrets.insert(s.path, s.entry);
            }
        }
        let hosts = plan
            .hosts
            .iter()
            .map(|h| HostEntry {
                name: h.name.clone(),
                recipient: self.hosts[h.name.as_str()].text.clone(),
                nats_server: h.nats_server,
                creds: host_creds.remove(h.name.as_str()).unwrap_or_default(),
            })
            .collect();
        let mut recipients: BTreeMap<String, String> =
            self.owners.iter().map(|n| (n.name.clone(), n.recipient.text.clone())).collect();
        for (h, r) in &self.hosts {
            recipients.insert(format!("host:{h}"), r.text.clone());
        }
        for sp in &self.ctx.specialists {
            recipients.insert(format!("specialist:{}", sp.id), sp.recipient.text.clone());
        }
        out.insert(CONFIG.into(), self.ctx.config_json.clone());
        keys.sort_by(|x, y| (&x.role, &x.account, &x.user).cmp(&(&y.role, &y.account, &y.user)));
        let manifest = Manifest {
            format: manifest::FORMAT,
            generator: "clan-nats".into(),
            layout: self.ctx.format,
            operator: OperatorEntry {
                name: plan.operator.clone(),
                public_key: op.entry.public_key.clone(),
                signing_keys: vec![op_sk.entry.public_key.clone()],
                system_account: sys_pub,
                jwt: layout.operator_jwt(),
            },
            accounts: account_entries,
            units: plan.units.clone(),
            flows: plan.wiring.flows.clone(),
            hosts,
            recipients,
            keys,
            secrets,
            files: out.par_iter().map(|(k, v)| (k.clone(), manifest::file_digest(v))).collect(),
        };
        out.insert(MANIFEST.into(), manifest.to_bytes());
        Ok(out)
    }

    fn user(
        &self,
        layout: &Layout,
        a: &AccountPlan,
        u: &UserPlan,
        k: &Key,
        d: Issue<UserNats>,
        signer: Option<&KeyPair>,
    ) -> Result<UserOut, GenerateError> {
        let kept = matches!(d, Issue::Keep(_));
        let jwt = match d {
            Issue::Keep(t) => t,
            Issue::Sign(mut c, iat) => c.encode(signer.expect("loaded when anything is signed"), iat)?,
        };
        let creds_path = layout.user_creds(&a.name, &u.name);
        let mut hosts: Vec<Named> =
            u.hosts.iter().map(|h| Named { name: format!("host:{h}"), recipient: &self.hosts[h.as_str()] }).collect();
        for s in self.ctx.specialists.iter().filter(|s| s.units.contains(&u.unit)) {
            hosts.push(Named { name: format!("specialist:{}", s.id), recipient: &s.recipient });
        }
        // An unchanged JWT of an unchanged key means unchanged creds: only the recipients can differ.
        let creds = match self.keep(&creds_path, &hosts).filter(|_| kept && k.fresh.is_none()) {
            Some(s) => s,
            None => {
                let seed = self.pair(k)?.seed().map_err(|e| GenerateError::Damaged(e.to_string()))?;
                self.seal(&creds_path, "creds", creds::format_unchecked(&jwt, &seed).as_bytes(), &hosts)?
            }
        };
        Ok(UserOut {
            jwt_path: layout.user_jwt(&a.name, &u.name),
            jwt,
            creds,
            key: self.seal_key(k)?,
            key_entry: k.entry.clone(),
            entry: UserEntry {
                name: u.name.clone(),
                unit: u.unit.clone(),
                public_key: k.entry.public_key.clone(),
                permissions: u.permissions.clone(),
                payload: u.payload,
                restrictions: u.restrictions.clone(),
                hosts: u.hosts.clone(),
                jwt: layout.user_jwt(&a.name, &u.name),
                creds: creds_path,
            },
        })
    }

    /// `server/cluster.env.age`: the route credential, sealed to the server
    /// hosts and the owners. The password is generated once and read back
    /// afterwards; the ciphertext is kept while the servers and recipients are.
    fn cluster_env(&self, f: &crate::fleet::Fleet) -> Result<Sealed, GenerateError> {
        use crate::fleet::{self, CLUSTER_ENV};
        let servers: Vec<Named> = f
            .servers
            .iter()
            .map(|s| Named { name: format!("host:{}", s.name), recipient: &self.hosts[s.name.as_str()] })
            .collect();
        let same_servers = f.servers.iter().all(|s| {
            let json = self.old_file(&format!("server/{}/server.json", s.name));
            let all: Option<Vec<String>> = json
                .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok())
                .and_then(|v| serde_json::from_value(v["cluster"]["all_routes"].clone()).ok());
            all == Some(f.servers.iter().map(|s| format!("nats-route://{}", s.route_addr())).collect())
        });
        if same_servers {
            if let Some(s) = self.keep(CLUSTER_ENV, &servers) {
                return Ok(s);
            }
        }
        let password = match self.existing.tree.get(CLUSTER_ENV) {
            None => fleet::new_password(),
            Some(ct) => {
                let plain = self.ctx.identity.decrypt(ct).map_err(|e| GenerateError::NotOwner {
                    path: CLUSTER_ENV.into(),
                    identity: self.ctx.identity.path.to_string(),
                    reason: e.to_string(),
                })?;
                fleet::parse_env(&String::from_utf8_lossy(&plain))
                    .remove(fleet::PASSWORD_VAR)
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| GenerateError::Damaged(format!("{CLUSTER_ENV}: no {}", fleet::PASSWORD_VAR)))?
            }
        };
        self.seal(CLUSTER_ENV, "cluster", fleet::env_file(f, &password).as_bytes(), &servers)
    }

    fn old_file(&self, path: &str) -> Option<&'a str> {
        self.existing.tree.get(path).and_then(|b| std::str::from_utf8(b).ok())
    }

    /// An old JWT we wrote ourselves: its sha256 matches the old manifest, so its
    /// signature need not be checked again. A changed file is not trusted: the
    /// entity is simply re-issued.
    fn old_jwt(&self, path: &str) -> Option<&'a str> {
        let digest = self.existing.manifest.as_ref()?.files.get(path)?;
        let bytes = self.existing.tree.get(path)?;
        (*digest == manifest::file_digest(bytes)).then(|| std::str::from_utf8(bytes).ok()).flatten()
    }

    /// The key of an entity: the old one (seed left encrypted for now), an imported
    /// one, or a new one (also when this entity is being rotated).
    fn key(&self, role: &str, account: &str, user: &str, make: fn() -> KeyPair) -> Result<Key<'a>, GenerateError> {
        let old = self.existing.key(role, account, user);
        let imported = self.existing.imported.get(&(role.to_string(), account.to_string(), user.to_string()));
        let (fresh, old) = if self.ctx.rotate.as_ref().is_some_and(|r| r.matches(role, account, user)) {
            (Some(make()), None)
        } else if let Some(seed) = imported {
            (Some(KeyPair::from_seed(seed).map_err(|e| GenerateError::Damaged(format!("imported seed: {e}")))?), None)
        } else if let Some(entry) = old {
            (None, Some(entry))
        } else {
            (Some(make()), None)
        };
        let public_key =
            fresh.as_ref().map_or_else(|| old.expect("one of them").public_key.clone(), KeyPair::public_key);
        let path = key_path(&public_key);
        Ok(Key {
            entry: KeyEntry { public_key, role: role.into(), account: account.into(), user: user.into(), path },
            fresh,
            old,
        })
    }

    /// The key pair itself: the fresh one, or decrypted from the old keystore.
    fn pair(&self, k: &Key) -> Result<KeyPair, GenerateError> {
        if let Some(kp) = &k.fresh {
            let seed = kp.seed().map_err(|e| GenerateError::Damaged(e.to_string()))?;
            return KeyPair::from_seed(&seed).map_err(|e| GenerateError::Damaged(e.to_string()));
        }
        let entry = k.old.expect("a key is fresh or old");
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
        let seed = std::str::from_utf8(&plain)
            .map_err(|_| GenerateError::Damaged(format!("{}: seed is not text", entry.path)))?;
        let kp = KeyPair::from_seed(seed.trim())
            .map_err(|e| GenerateError::Damaged(format!("{}: not an nkey seed: {e}", entry.path)))?;
        if kp.public_key() != entry.public_key {
            return Err(GenerateError::Damaged(format!(
                "{}: seed does not belong to {}",
                entry.path, entry.public_key
            )));
        }
        Ok(kp)
    }

    fn sign<N: ClaimKind>(&self, d: Issue<N>, signer: &Key) -> Result<String, GenerateError> {
        match d {
            Issue::Keep(t) => Ok(t),
            Issue::Sign(mut c, iat) => Ok(c.encode(&self.pair(signer)?, iat)?),
        }
    }

    /// A key's seed file, encrypted to the owners only; an old key keeps its
    /// ciphertext while the owner recipients are unchanged.
    fn seal_key(&self, k: &Key) -> Result<Sealed, GenerateError> {
        if k.fresh.is_none() {
            if let Some(s) = self.keep(&k.entry.path, &[]) {
                return Ok(s);
            }
        }
        let seed = self.pair(k)?.seed().map_err(|e| GenerateError::Damaged(e.to_string()))?;
        self.seal(&k.entry.path, "seed", seed.as_bytes(), &[])
    }

    fn recipients<'n>(&'n self, extra: &'n [Named<'n>]) -> (Vec<&'n Named<'n>>, String) {
        let all: Vec<&Named> = self.owners.iter().chain(extra.iter()).collect();
        let texts: Vec<&str> = all.iter().map(|n| n.recipient.text.as_str()).collect();
        let digest = manifest::recipients_digest(&texts);
        (all, digest)
    }

    /// The existing ciphertext of `path`, if its recipient set is unchanged.
    fn keep(&self, path: &str, extra: &[Named]) -> Option<Sealed> {
        let (_, digest) = self.recipients(extra);
        let entry = self.existing.manifest.as_ref()?.secrets.get(path)?;
        let bytes = self.existing.tree.get(path)?;
        (entry.recipients_sha256 == digest).then(|| Sealed {
            path: path.to_string(),
            bytes: bytes.clone(),
            entry: entry.clone(),
        })
    }

    /// Encrypt `plaintext` to the owners plus `extra`, keeping the existing
    /// ciphertext when neither the plaintext nor the recipient set changed.
    fn seal(&self, path: &str, kind: &str, plaintext: &[u8], extra: &[Named]) -> Result<Sealed, GenerateError> {
        let (all, recipients_sha256) = self.recipients(extra);
        let plaintext_sha256 = manifest::sha256_hex(plaintext);
        if let Some(s) = self.keep(path, extra).filter(|s| s.entry.plaintext_sha256 == plaintext_sha256) {
            return Ok(s);
        }
        let mut seen = BTreeSet::new();
        let rs: Vec<&Recipient> =
            all.iter().filter(|n| seen.insert(n.recipient.text.as_str())).map(|n| n.recipient).collect();
        let bytes = vault::encrypt(plaintext, &rs)?;
        let mut names: Vec<String> = all.iter().map(|n| n.name.clone()).collect();
        names.sort();
        names.dedup();
        Ok(Sealed {
            path: path.to_string(),
            bytes,
            entry: SecretEntry { kind: kind.into(), recipients: names, recipients_sha256, plaintext_sha256 },
        })
    }

    /// The account's revocations: the old JWT's (if it is the same account key),
    /// plus every user key that was in this account and is not any more (the user
    /// was removed, moved, or got a new key), revoked at max(now, its last iat).
    fn revocations(
        &self,
        old: Option<&AccountEntry>,
        current: &HashMap<&str, &str>,
        account_key: &str,
    ) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        let Some(old) = old.filter(|o| o.public_key == account_key) else { return out };
        if let Some(prev) = self.old_file(&old.jwt).and_then(|t| AccountClaims::decode(t).ok()) {
            if prev.std.sub == old.public_key {
                out = prev.nats.revocations;
            }
        }
        for u in &old.users {
            if current.get(u.name.as_str()) != Some(&u.public_key.as_str()) {
                let iat = self.old_file(&u.jwt).and_then(|t| UserClaims::decode(t).ok()).map_or(0, |c| c.std.iat);
                out.entry(u.public_key.clone()).or_insert(self.ctx.now.max(iat));
            }
        }
        out
    }
}

fn account_claims(
    a: &AccountPlan,
    acct: &Key,
    sk: &Key,
    roles: &[Key],
    revocations: BTreeMap<String, i64>,
) -> AccountClaims {
    let mut signing_keys: Vec<SigningKey> = vec![sk.entry.public_key.clone().into()];
    for (r, k) in a.roles.iter().zip(roles) {
        signing_keys.push(SigningKey::Scoped(Box::new(UserScope {
            kind: "user_scope".into(),
            key: k.entry.public_key.clone(),
            role: r.name.clone(),
            template: r.template.clone(),
            description: r.description.clone(),
        })));
    }
    signing_keys.sort_by(|x, y| x.key().cmp(y.key()));
    let mut nats = AccountNats {
        limits: a.limits.clone(),
        signing_keys,
        default_permissions: a.default_permissions.clone(),
        revocations,
        description: a.description.clone(),
        ..Default::default()
    };
    if a.system {
        nats.exports = AccountClaims::system_exports();
    }
    AccountClaims::new(&acct.entry.public_key, &a.name, nats)
}

fn user_claims(u: &UserPlan, user_key: &str, account_key: &str) -> UserClaims {
    if u.signing_role.is_some() {
        // A scoped key's user carries nothing: the server applies the role's template.
        return UserClaims::new(user_key, &u.name, UserNats::scoped(account_key));
    }
    let r = &u.restrictions;
    let mut c = UserClaims::new(
        user_key,
        &u.name,
        UserNats {
            limits: crate::jwt::user::UserPermissionLimits {
                permissions: u.permissions.clone(),
                src: r.src.clone(),
                times: r.times.clone(),
                times_location: r.times_location.clone(),
                subs: r.subs.unwrap_or(-1),
                data: r.data.unwrap_or(-1),
                payload: u.payload,
                allowed_connection_types: r.allowed_connection_types.clone(),
                ..Default::default()
            },
            issuer_account: account_key.to_string(),
            ..Default::default()
        },
    );
    if let Some(Expiry::At(t)) = r.expires {
        c.std.exp = t;
    }
    c
}

/// [`decide`] for a user whose `exp` may be relative to its `iat`
/// (`expires: "90d"`): kept while nothing else changed, and a re-issued JWT
/// expires that long after its new `iat`.
fn decide_user(
    mut claims: UserClaims,
    expires: Option<Expiry>,
    signer: &str,
    old: Option<&str>,
    now: i64,
) -> Issue<UserNats> {
    let Some(Expiry::After(d)) = expires else { return decide(claims, signer, old, now) };
    if let Some((prev, _)) = old.and_then(crate::jwt::peek) {
        claims.std.exp = prev.iat.saturating_add(d);
    }
    match decide(claims, signer, old, now) {
        Issue::Sign(mut c, iat) => {
            c.std.exp = iat.saturating_add(d);
            Issue::Sign(c, iat)
        }
        keep => keep,
    }
}

/// Keep `old` if re-encoding the claims with its `iat` and by `signer` gives the
/// same payload; otherwise sign anew with `iat` = max(now, old iat + 1), because
/// the `full` resolver ignores a JWT whose `iat` is not newer. `old` must be a
/// token whose integrity was checked (see `Builder::old_jwt`).
fn decide<N: ClaimKind>(claims: Claims<N>, signer: &str, old: Option<&str>, now: i64) -> Issue<N> {
    let mut iat = now;
    if let Some((prev, payload)) = old.and_then(crate::jwt::peek) {
        if prev.sub == claims.std.sub {
            if prev.iss == signer && claims.payload_as(signer, prev.iat) == payload {
                return Issue::Keep(old.expect("peeked").trim().to_string());
            }
            iat = iat.max(prev.iat + 1);
        }
    }
    Issue::Sign(claims, iat)
}

/// `server/nats-server.conf` and `server/server.json`: operator mode with the
/// MEMORY resolver and every account preloaded. Public data only.
fn server_files(
    out: &mut Tree,
    operator_jwt: &str,
    system_account: &str,
    preload: &BTreeMap<String, String>,
    max_payload: i64,
) {
    let mut conf = String::new();
    conf.push_str("# nats-server configuration in operator mode, generated by clan-nats.\n");
    conf.push_str("# Public data only (JWTs and public keys). Run: nats-server -c nats-server.conf\n");
    conf.push_str(&format!("operator: \"{operator_jwt}\"\n"));
    conf.push_str(&format!("system_account: \"{system_account}\"\n"));
    conf.push_str("# The largest payload any user may send: the server's limit caps every user.\n");
    conf.push_str(&format!("max_payload: {max_payload}\n"));
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
        "max_payload": max_payload,
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

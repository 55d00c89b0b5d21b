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
use wiring::AccountWiring;

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{path}: the existing store cannot be decrypted with identity {identity}: {reason}. Use the owner's identity; nothing was changed")]
    NotOwner { path: String, identity: String, reason: String },
    #[error("the existing store is damaged: {0}; run `clan-nats verify` on it; nothing was changed")]
    Damaged(String),
    /// A file differs from what the signed manifest says (checked when read).
    #[error("{0}")]
    Tampered(String),
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

/// The existing store: its manifest (the root, and the account manifests a run
/// loads) and its files, read only when needed and each checked against the
/// digest the verified manifest gives it. A run that changes one user opens
/// that user's files, its account's manifest and the root, nothing else.
pub struct Existing {
    pub manifest: Option<Manifest>,
    /// Keys adopted from an nsc keystore (`import-nsc`), by (role, account, user) → seed.
    pub imported: HashMap<(String, String, String), String>,
    /// The manifest's keys by (role, account, user), an index into `manifest.keys`.
    key_index: HashMap<(String, String, String), usize>,
    /// DIR, read file by file.
    dir: camino::Utf8PathBuf,
    /// How many files were read (the benchmark's and the trace's measure).
    reads: std::sync::atomic::AtomicUsize,
    /// Old account JWTs by path, read once: the wiring, the account itself
    /// and the server configs may each need one.
    account_jwts: std::sync::Mutex<HashMap<String, Option<String>>>,
}

impl Existing {
    /// The store in `dir`, of which only `root` (the verified root manifest and
    /// governance record) has been read; without a root manifest, a new store.
    pub fn open(dir: &camino::Utf8Path, root: &Tree) -> Result<Existing, GenerateError> {
        let manifest = match root.get(MANIFEST) {
            None => None,
            Some(b) => Some(Manifest::parse(b).map_err(|e| GenerateError::Damaged(format!("{MANIFEST}: {e}")))?),
        };
        let mut e = Existing {
            manifest,
            imported: HashMap::new(),
            key_index: HashMap::new(),
            dir: dir.to_owned(),
            reads: Default::default(),
            account_jwts: Default::default(),
        };
        e.index_keys();
        Ok(e)
    }

    fn index_keys(&mut self) {
        self.key_index = self
            .manifest
            .iter()
            .flat_map(|m| m.keys.iter().enumerate())
            .map(|(i, k)| ((k.role.clone(), k.account.clone(), k.user.clone()), i))
            .collect();
    }

    /// How many files of DIR this run has read.
    pub fn files_read(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A file as it is, unchecked.
    fn raw(&self, path: &str) -> Result<Option<Vec<u8>>, GenerateError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let full = self.dir.join(path);
        match std::fs::read(&full) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(GenerateError::Damaged(format!("{full}: {e}"))),
        }
    }

    /// The old digest of a file, as the (loaded part of the) manifest gives it.
    pub fn digest(&self, path: &str) -> Option<&str> {
        self.manifest.as_ref()?.files.get(path).map(String::as_str)
    }

    /// A file of the old store, checked against the manifest's digest: a file
    /// the manifest does not list is no part of the store (`None`); one that
    /// differs was edited outside clan-nats, and the run stops before writing.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>, GenerateError> {
        let Some(want) = self.digest(path) else { return Ok(None) };
        let bytes = self
            .raw(path)?
            .ok_or_else(|| GenerateError::Tampered(format!("{path}: listed in the signed manifest but missing")))?;
        let have = manifest::file_digest(&bytes);
        if have != want {
            return Err(GenerateError::Tampered(format!(
                "{path}: sha256 mismatch: the signed manifest says {want}, the file is {have} (edited outside clan-nats)"
            )));
        }
        Ok(Some(bytes))
    }

    /// Load the manifests of these accounts (those a run touches), in parallel,
    /// each checked against the root's digest of it.
    pub fn load(&mut self, accounts: &BTreeSet<String>) -> Result<(), GenerateError> {
        let Some(m) = &self.manifest else { return Ok(()) };
        let wanted: Vec<usize> =
            (0..m.accounts.len()).filter(|&i| m.needs_load(i) && accounts.contains(&m.accounts[i].name)).collect();
        let bytes: Vec<(usize, Vec<u8>)> = wanted
            .par_iter()
            .map(|&i| {
                let path = manifest::account_manifest_path(&m.accounts[i].name);
                let b = self.raw(&path)?.ok_or_else(|| GenerateError::Tampered(format!("{path}: missing")))?;
                Ok((i, b))
            })
            .collect::<Result<_, GenerateError>>()?;
        let m = self.manifest.as_mut().expect("checked above");
        for (i, b) in bytes {
            m.load_account(i, &b).map_err(GenerateError::Tampered)?;
        }
        self.index_keys();
        Ok(())
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

/// Who can read what: the owners (owner, extra owner keys, the config's owner,
/// admins) read everything; hosts and specialists read the creds they need.
struct Readers {
    owners: Vec<(String, Recipient)>,
    hosts: BTreeMap<String, Recipient>,
}

impl Readers {
    fn new(plan: &Plan, ctx: &Context) -> Result<Readers, GenerateError> {
        let mut owners: Vec<(String, Recipient)> = Vec::new();
        for (i, r) in ctx.identity.recipients.iter().enumerate() {
            let name = if i == 0 { "owner".into() } else { format!("owner-{}", i + 1) };
            owners.push((name, vault::parse_recipient(r)?));
        }
        if let Some(r) = &plan.owner_recipient {
            let r = vault::parse_recipient(r)?;
            if !ctx.identity.recipients.contains(&r.text) {
                owners.push((format!("owner:{}", plan.owner_id.as_deref().unwrap_or("config")), r));
            }
        }
        for (i, r) in ctx.admins.iter().enumerate() {
            owners.push((format!("admin-{}", i + 1), vault::parse_recipient(&r.text)?));
        }
        let hosts = plan
            .hosts
            .iter()
            .map(|h| Ok((h.name.clone(), vault::parse_recipient(&h.recipient)?)))
            .collect::<Result<_, VaultError>>()?;
        Ok(Readers { owners, hosts })
    }
}

/// A key whose public half is always known; its seed is made now (`fresh`) or
/// decrypted from the old keystore only when something must be signed or
/// re-encrypted. A no-change re-run decrypts nothing.
struct Key {
    entry: KeyEntry,
    fresh: Option<KeyPair>,
    old: Option<KeyEntry>,
}

/// An account's keys: its identity, its signing key, one scoped key per role.
struct AccountKeys {
    id: Key,
    signing: Key,
    roles: Vec<Key>,
}

/// What to do with one JWT.
enum Issue<N> {
    Keep(String),
    Sign(Claims<N>, i64),
}

/// One file of the new store: new content, or (`bytes: None`) the old file
/// left where it is, unread.
struct Blob {
    path: String,
    bytes: Option<Vec<u8>>,
    digest: String,
}

impl Blob {
    fn new(path: String, bytes: Vec<u8>) -> Blob {
        Blob { digest: manifest::file_digest(&bytes), path, bytes: Some(bytes) }
    }
}

/// An encrypted file with its manifest entry.
struct Sealed {
    blob: Blob,
    entry: SecretEntry,
}

struct UserOut {
    jwt: Blob,
    creds: Sealed,
    key: Sealed,
    key_entry: KeyEntry,
    entry: UserEntry,
}

/// What a run produces: the new manifest (root, and every account it
/// loaded), and the content of every file it made or re-made.
pub struct Built {
    pub manifest: Manifest,
    /// New content by path (manifests included). Files of the old store that
    /// are carried unchanged are not here: they stay as they are.
    pub files: Tree,
}

/// The new files being collected, with their digests, secrets and keys.
#[derive(Default)]
struct Out {
    tree: Tree,
    files: BTreeMap<String, String>,
    secrets: BTreeMap<String, SecretEntry>,
    keys: Vec<KeyEntry>,
}

impl Out {
    fn add(&mut self, b: Blob) {
        if let Some(bytes) = b.bytes {
            self.tree.insert(b.path.clone(), bytes);
        }
        self.files.insert(b.path, b.digest);
    }

    fn put(&mut self, path: String, bytes: Vec<u8>) {
        self.add(Blob::new(path, bytes));
    }

    fn sealed(&mut self, s: Sealed) {
        self.secrets.insert(s.blob.path.clone(), s.entry);
        self.add(s.blob);
    }
}

/// What a re-run compares: the digest of everything an account's, a user's
/// files are made from. Bump [`INPUTS`] whenever what goes into a JWT or an
/// encrypted file changes in the code, so old digests never match.
const INPUTS: u32 = 1;

#[derive(serde::Serialize)]
struct UserInputs<'a> {
    inputs: u32,
    user: &'a UserPlan,
    account: &'a str,
    signer: &'a str,
    creds: &'a str,
    readers: &'a str,
    owners: &'a str,
}

#[derive(serde::Serialize)]
struct AccountInputs<'a> {
    inputs: u32,
    name: &'a str,
    system: bool,
    units: &'a [String],
    description: &'a str,
    limits: &'a crate::jwt::account::AccountLimits,
    default_permissions: &'a crate::jwt::user::Permissions,
    roles: Vec<(&'a str, &'a str, &'a crate::jwt::user::UserPermissionLimits, &'a str)>,
    keys: Vec<&'a str>,
    issuer: &'a str,
    owners: &'a str,
    wiring: Option<&'a (Vec<crate::jwt::Export>, Vec<crate::jwt::Import>)>,
    users: &'a [String],
}

fn digest_of<T: serde::Serialize>(v: &T) -> String {
    manifest::sha256_hex(&serde_json::to_vec(v).expect("inputs serialize"))
}

/// Per account (in plan order): the account's inputs and its users'.
struct Inputs {
    accounts: Vec<String>,
    users: Vec<Vec<String>>,
}

/// Build the new store from the plan and the existing one: work out what
/// changed from digests alone, load only the touched accounts, sign and seal.
pub fn build(plan: &Plan, ctx: &Context, existing: &mut Existing) -> Result<Built, GenerateError> {
    let readers = Readers::new(plan, ctx)?;
    // 1. The keys of the operator and of every account (public halves).
    let b = Builder::new(ctx, existing, &readers);
    let op = b.key("operator", "", "", KeyPair::new_operator)?;
    let op_sk = b.key("operator-signing", "", "", KeyPair::new_operator)?;
    let accounts = plan.accounts.iter().map(|a| b.account_keys(a)).collect::<Result<Vec<_>, _>>()?;
    // 2. Exports and imports between accounts (from the old account JWTs).
    let wiring = b.wiring(plan, &accounts)?;
    // 3. What changed, from digests: the accounts to open.
    let inputs = b.inputs(plan, &op_sk, &accounts, &wiring);
    let touched = b.touched(plan, &inputs);
    // 4. Open them, then sign and seal.
    existing.load(&touched)?;
    Builder::new(ctx, existing, &readers).build(plan, op, op_sk, accounts, wiring, inputs)
}

struct Builder<'a> {
    ctx: &'a Context<'a>,
    existing: &'a Existing,
    owners: Vec<Named<'a>>,
    hosts: BTreeMap<&'a str, &'a Recipient>,
    /// The digest of the owners' recipients: every seed is sealed to them.
    owners_digest: String,
}

impl<'a> Builder<'a> {
    fn new(ctx: &'a Context<'a>, existing: &'a Existing, r: &'a Readers) -> Builder<'a> {
        let owners: Vec<Named> = r.owners.iter().map(|(n, r)| Named { name: n.clone(), recipient: r }).collect();
        let texts: Vec<&str> = owners.iter().map(|n| n.recipient.text.as_str()).collect();
        let owners_digest = manifest::recipients_digest(&texts);
        let hosts = r.hosts.iter().map(|(k, v)| (k.as_str(), v)).collect();
        Builder { ctx, existing, owners, hosts, owners_digest }
    }

    fn account_keys(&self, a: &AccountPlan) -> Result<AccountKeys, GenerateError> {
        Ok(AccountKeys {
            id: self.key("account", &a.name, "", KeyPair::new_account)?,
            signing: self.key("account-signing", &a.name, "", KeyPair::new_account)?,
            // Issue 14: one scoped signing key per role.
            roles: a
                .roles
                .iter()
                .map(|r| self.key("account-scoped", &a.name, &r.name, KeyPair::new_account))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The key that signs a user: its role's scoped key, else the account signing key.
    fn signer_of<'k>(a: &AccountPlan, keys: &'k AccountKeys, u: &UserPlan) -> &'k Key {
        u.signing_role
            .as_ref()
            .and_then(|r| a.roles.iter().position(|x| &x.name == r))
            .map_or(&keys.signing, |i| &keys.roles[i])
    }

    /// Who reads a user's creds besides the owners: its hosts and the
    /// specialists whose units cover its unit.
    fn creds_readers(&self, u: &UserPlan) -> Vec<Named<'_>> {
        let mut v: Vec<Named> =
            u.hosts.iter().map(|h| Named { name: format!("host:{h}"), recipient: self.hosts[h.as_str()] }).collect();
        for s in self.ctx.specialists.iter().filter(|s| s.units.contains(&u.unit)) {
            v.push(Named { name: format!("specialist:{}", s.id), recipient: &s.recipient });
        }
        v
    }

    fn inputs(&self, plan: &Plan, op_sk: &Key, accounts: &[AccountKeys], wiring: &AccountWiring) -> Inputs {
        let layout = Layout::with_format(&plan.operator, self.ctx.format);
        let users: Vec<Vec<String>> = plan
            .accounts
            .iter()
            .zip(accounts)
            .map(|(a, k)| {
                a.users
                    .par_iter()
                    .map(|u| {
                        let (_, readers) = self.recipients(&self.creds_readers(u));
                        digest_of(&UserInputs {
                            inputs: INPUTS,
                            user: u,
                            account: &k.id.entry.public_key,
                            signer: &Self::signer_of(a, k, u).entry.public_key,
                            creds: &layout.user_creds(&a.name, &u.name),
                            readers: &readers,
                            owners: &self.owners_digest,
                        })
                    })
                    .collect()
            })
            .collect();
        let accounts = plan
            .accounts
            .iter()
            .zip(accounts)
            .zip(&users)
            .map(|((a, k), users)| {
                digest_of(&AccountInputs {
                    inputs: INPUTS,
                    name: &a.name,
                    system: a.system,
                    units: &a.units,
                    description: &a.description,
                    limits: &a.limits,
                    default_permissions: &a.default_permissions,
                    roles: a.roles.iter().map(|r| (r.name.as_str(), r.description.as_str(), &r.template, "")).collect(),
                    keys: std::iter::once(&k.id)
                        .chain(std::iter::once(&k.signing))
                        .chain(&k.roles)
                        .map(|k| k.entry.public_key.as_str())
                        .collect(),
                    issuer: &op_sk.entry.public_key,
                    owners: &self.owners_digest,
                    wiring: wiring.get(&a.name),
                    users,
                })
            })
            .collect();
        Inputs { accounts, users }
    }

    /// The accounts whose files may change: new, changed, rotated or removed ones.
    fn touched(&self, plan: &Plan, inputs: &Inputs) -> BTreeSet<String> {
        let Some(m) = &self.existing.manifest else { return BTreeSet::new() };
        let rotated = |a: &AccountPlan| match &self.ctx.rotate {
            Some(Rotation::User(n)) => a.users.iter().any(|u| &u.name == n),
            Some(Rotation::Users(ns)) => a.users.iter().any(|u| ns.contains(&u.name)),
            Some(Rotation::Account(n)) => &a.name == n,
            _ => false,
        };
        let mut out: BTreeSet<String> = plan
            .accounts
            .iter()
            .zip(&inputs.accounts)
            .filter(|(a, i)| rotated(a) || m.account(&a.name).map_or(true, |o| &o.inputs != *i))
            .map(|(a, _)| a.name.clone())
            .collect();
        out.extend(
            m.accounts.iter().filter(|o| !plan.accounts.iter().any(|a| a.name == o.name)).map(|o| o.name.clone()),
        );
        out
    }

    fn build(
        &self,
        plan: &Plan,
        op: Key,
        op_sk: Key,
        accounts: Vec<AccountKeys>,
        mut wiring: AccountWiring,
        inputs: Inputs,
    ) -> Result<Built, GenerateError> {
        let old = self.existing.manifest.as_ref();
        let layout = Layout::with_format(&plan.operator, self.ctx.format);
        let mut out = Out::default();

        let sys = plan.accounts.iter().position(|a| a.system).expect("the plan always has a system account");
        let sys_pub = accounts[sys].id.entry.public_key.clone();
        let op_jwt = self.operator(plan, &op, &op_sk, &sys_pub, &layout, &mut out)?;

        // The accounts: each touched one re-made, the others carried unread.
        let mut entries = Vec::new();
        let mut preload: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
        for (((a, keys), account_inputs), user_inputs) in
            plan.accounts.iter().zip(&accounts).zip(&inputs.accounts).zip(&inputs.users)
        {
            for k in std::iter::once(&keys.id).chain(std::iter::once(&keys.signing)).chain(&keys.roles) {
                out.keys.push(k.entry.clone());
                out.sealed(self.seal_key(k)?);
            }
            let carried = old.and_then(|m| m.account(&a.name)).filter(|o| !o.loaded);
            let (entry, jwt) = match carried {
                Some(o) => {
                    let digest = self.old_digest(&o.jwt)?;
                    out.add(Blob { path: o.jwt.clone(), bytes: None, digest });
                    (o.clone(), None)
                }
                None => {
                    let w = wiring.remove(&a.name);
                    let (entry, jwt) =
                        self.account(&layout, a, keys, &op_sk, w, account_inputs, user_inputs, &mut out)?;
                    (entry, Some(jwt))
                }
            };
            preload.insert(keys.id.entry.public_key.clone(), (layout.account_jwt(&a.name), jwt));
            entries.push(entry);
        }

        let server_inputs = self.server(plan, &op_jwt, &sys_pub, preload, &mut out)?;
        out.put(CONFIG.into(), self.ctx.config_json.clone());
        Ok(self.manifest(plan, &op, &op_sk, sys_pub, entries, server_inputs, out))
    }

    /// The operator JWT (kept while unchanged) and the operator's keys.
    fn operator(
        &self,
        plan: &Plan,
        op: &Key,
        op_sk: &Key,
        sys_pub: &str,
        layout: &Layout,
        out: &mut Out,
    ) -> Result<String, GenerateError> {
        let op_claims = OperatorClaims::new(
            &op.entry.public_key,
            &plan.operator,
            OperatorNats {
                signing_keys: vec![op_sk.entry.public_key.clone()],
                system_account: sys_pub.to_string(),
                ..Default::default()
            },
        );
        let old_op = match &self.existing.manifest {
            Some(m) => self.old_jwt(&m.operator.jwt)?,
            None => None,
        };
        let op_jwt = self.sign(decide(op_claims, &op.entry.public_key, old_op.as_deref(), self.ctx.now), op)?;
        out.put(layout.nsc_info(), layout.nsc_info_content().into_bytes());
        out.put(layout.operator_jwt(), op_jwt.clone().into_bytes());
        for k in [op, op_sk] {
            out.keys.push(k.entry.clone());
            out.sealed(self.seal_key(k)?);
        }
        Ok(op_jwt)
    }

    /// The new manifest, and with it the files of the new store.
    #[allow(clippy::too_many_arguments)]
    fn manifest(
        &self,
        plan: &Plan,
        op: &Key,
        op_sk: &Key,
        system_account: String,
        accounts: Vec<AccountEntry>,
        server_inputs: String,
        mut out: Out,
    ) -> Built {
        let layout = Layout::with_format(&plan.operator, self.ctx.format);

        out.keys.sort_by(|x, y| (&x.role, &x.account, &x.user).cmp(&(&y.role, &y.account, &y.user)));
        let mut manifest = Manifest {
            format: manifest::FORMAT,
            generator: "clan-nats".into(),
            layout: self.ctx.format,
            operator: OperatorEntry {
                name: plan.operator.clone(),
                public_key: op.entry.public_key.clone(),
                signing_keys: vec![op_sk.entry.public_key.clone()],
                system_account,
                jwt: layout.operator_jwt(),
            },
            accounts,
            units: plan.units.clone(),
            flows: plan.wiring.flows.clone(),
            hosts: plan
                .hosts
                .iter()
                .map(|h| HostEntry {
                    name: h.name.clone(),
                    recipient: self.hosts[h.name.as_str()].text.clone(),
                    nats_server: h.nats_server,
                    creds: Vec::new(),
                })
                .collect(),
            recipients: self.recipient_table(),
            keys: out.keys,
            secrets: out.secrets,
            files: out.files,
            server_inputs,
        };
        let mut files = out.tree;
        files.extend(manifest.to_files());
        Built { manifest, files }
    }

    /// A touched account: its JWT (kept while its claims are unchanged), and its users.
    #[allow(clippy::too_many_arguments)]
    fn account(
        &self,
        layout: &Layout,
        a: &AccountPlan,
        keys: &AccountKeys,
        op_sk: &Key,
        wiring: Option<(Vec<crate::jwt::Export>, Vec<crate::jwt::Import>)>,
        inputs: &str,
        user_inputs: &[String],
        out: &mut Out,
    ) -> Result<(AccountEntry, String), GenerateError> {
        let old = self.existing.manifest.as_ref().and_then(|m| m.account(&a.name));
        let uk = a
            .users
            .par_iter()
            .map(|u| self.key("user", &a.name, &u.name, KeyPair::new_user))
            .collect::<Result<Vec<_>, _>>()?;
        let current: HashMap<&str, &str> =
            a.users.iter().zip(&uk).map(|(u, k)| (u.name.as_str(), k.entry.public_key.as_str())).collect();
        let old_jwt = match old {
            Some(o) => self.old_account_jwt(&o.jwt)?,
            None => None,
        };
        let revocations = self.revocations(old, old_jwt.as_deref(), &current, &keys.id.entry.public_key)?;
        let mut claims = account_claims(a, &keys.id, &keys.signing, &keys.roles, revocations);
        if let Some((exports, imports)) = wiring {
            claims.nats.exports = exports;
            claims.nats.imports = imports;
        }
        let jwt = self.sign(decide(claims, &op_sk.entry.public_key, old_jwt.as_deref(), self.ctx.now), op_sk)?;
        out.put(layout.account_jwt(&a.name), jwt.clone().into_bytes());
        let users = self.users(layout, a, keys, uk, user_inputs, out)?;
        let entry = AccountEntry {
            name: a.name.clone(),
            public_key: keys.id.entry.public_key.clone(),
            signing_keys: std::iter::once(&keys.signing)
                .chain(&keys.roles)
                .map(|k| k.entry.public_key.clone())
                .collect(),
            system: a.system,
            units: a.units.clone(),
            jetstream: a.limits.jetstream_enabled(),
            jwt: layout.account_jwt(&a.name),
            users,
            inputs: inputs.to_string(),
            manifest: String::new(),
            manifest_sha256: String::new(),
            loaded: true,
        };
        Ok((entry, jwt))
    }

    /// The users of a touched account, in parallel. A user whose inputs and key
    /// are unchanged is carried without opening a file; the others are decided
    /// (re-signed only when their claims changed) and sealed.
    fn users(
        &self,
        layout: &Layout,
        a: &AccountPlan,
        keys: &AccountKeys,
        uk: Vec<Key>,
        inputs: &[String],
        out: &mut Out,
    ) -> Result<Vec<UserEntry>, GenerateError> {
        let old_users: HashMap<&str, &UserEntry> = self
            .existing
            .manifest
            .as_ref()
            .and_then(|m| m.account(&a.name))
            .map(|e| e.users.iter().map(|u| (u.name.as_str(), u)).collect())
            .unwrap_or_default();
        let carried = |u: &UserPlan, k: &Key, i: &String| -> Option<&UserEntry> {
            old_users
                .get(u.name.as_str())
                .copied()
                .filter(|o| &o.inputs == i && k.fresh.is_none() && o.public_key == k.entry.public_key)
        };
        let decisions: Vec<Option<Issue<UserNats>>> = a
            .users
            .par_iter()
            .zip(&uk)
            .zip(inputs)
            .map(|((u, k), i)| {
                if carried(u, k, i).is_some() {
                    return Ok(None);
                }
                let old_jwt = match old_users.get(u.name.as_str()) {
                    Some(e) => self.old_jwt(&e.jwt)?,
                    None => None,
                };
                Ok(Some(decide_user(
                    user_claims(u, &k.entry.public_key, &keys.id.entry.public_key),
                    u.restrictions.expires,
                    &Self::signer_of(a, keys, u).entry.public_key,
                    old_jwt.as_deref(),
                    self.ctx.now,
                )))
            })
            .collect::<Result<_, GenerateError>>()?;
        let mut signers: HashMap<String, KeyPair> = HashMap::new();
        for (u, d) in a.users.iter().zip(&decisions) {
            let s = Self::signer_of(a, keys, u);
            if matches!(d, Some(Issue::Sign(..))) && !signers.contains_key(&s.entry.public_key) {
                signers.insert(s.entry.public_key.clone(), self.pair(s)?);
            }
        }
        let made: Vec<UserOut> = a
            .users
            .par_iter()
            .zip(&uk)
            .zip(inputs)
            .zip(decisions)
            .map(|(((u, k), i), d)| match d {
                None => self.carry_user(carried(u, k, i).expect("decided above"), k),
                Some(d) => {
                    let signer = signers.get(&Self::signer_of(a, keys, u).entry.public_key);
                    self.user(layout, a, u, k, i, d, signer)
                }
            })
            .collect::<Result<_, _>>()?;
        let mut entries = Vec::with_capacity(made.len());
        for u in made {
            out.add(u.jwt);
            out.sealed(u.creds);
            out.sealed(u.key);
            out.keys.push(u.key_entry);
            entries.push(u.entry);
        }
        Ok(entries)
    }

    /// An unchanged user: its entries as they were, its files left unread.
    fn carry_user(&self, e: &UserEntry, k: &Key) -> Result<UserOut, GenerateError> {
        let kept = |path: &str| -> Result<Sealed, GenerateError> {
            let entry =
                self.existing.manifest.as_ref().and_then(|m| m.secrets.get(path)).cloned().ok_or_else(|| {
                    GenerateError::Damaged(format!("{path}: listed for user {} but has no secrets entry", e.name))
                })?;
            Ok(Sealed { blob: Blob { path: path.to_string(), bytes: None, digest: self.old_digest(path)? }, entry })
        };
        Ok(UserOut {
            jwt: Blob { path: e.jwt.clone(), bytes: None, digest: self.old_digest(&e.jwt)? },
            creds: kept(&e.creds)?,
            key: kept(&k.entry.path)?,
            key_entry: k.entry.clone(),
            entry: e.clone(),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn user(
        &self,
        layout: &Layout,
        a: &AccountPlan,
        u: &UserPlan,
        k: &Key,
        inputs: &str,
        d: Issue<UserNats>,
        signer: Option<&KeyPair>,
    ) -> Result<UserOut, GenerateError> {
        let kept = matches!(d, Issue::Keep(_));
        let jwt = match d {
            Issue::Keep(t) => t,
            Issue::Sign(mut c, iat) => c.encode(signer.expect("loaded when anything is signed"), iat)?,
        };
        let creds_path = layout.user_creds(&a.name, &u.name);
        let readers = self.creds_readers(u);
        // An unchanged JWT of an unchanged key means unchanged creds: only the recipients can differ.
        let creds = match self.keep(&creds_path, &readers).filter(|_| kept && k.fresh.is_none()) {
            Some(s) => s,
            None => {
                let seed = self.pair(k)?.seed().map_err(|e| GenerateError::Damaged(e.to_string()))?;
                self.seal(&creds_path, "creds", creds::format_unchecked(&jwt, &seed).as_bytes(), &readers)?
            }
        };
        let jwt_path = layout.user_jwt(&a.name, &u.name);
        Ok(UserOut {
            jwt: Blob::new(jwt_path.clone(), jwt.into_bytes()),
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
                jwt: jwt_path,
                creds: creds_path,
                inputs: inputs.to_string(),
            },
        })
    }

    /// The server configs: kept unread while their inputs (the operator JWT, the
    /// account JWTs, the fleet, the payload limit) are unchanged; else rendered,
    /// reading the JWTs of the accounts that were carried. Returns the inputs' digest.
    fn server(
        &self,
        plan: &Plan,
        op_jwt: &str,
        sys_pub: &str,
        preload: BTreeMap<String, (String, Option<String>)>,
        out: &mut Out,
    ) -> Result<String, GenerateError> {
        let digests: BTreeMap<&str, &str> =
            preload.iter().map(|(k, (path, _))| (k.as_str(), out.files.get(path).map_or("", String::as_str))).collect();
        let inputs = digest_of(&(
            INPUTS,
            manifest::file_digest(op_jwt.as_bytes()),
            sys_pub,
            &digests,
            plan.max_payload(),
            format!("{:?}", plan.fleet),
        ));
        let old = self.existing.manifest.as_ref();
        if let Some(m) = old.filter(|m| m.server_inputs == inputs) {
            for (path, digest) in m.files.range("server/".to_string().."server0".to_string()) {
                if path != crate::fleet::CLUSTER_ENV {
                    out.add(Blob { path: path.clone(), bytes: None, digest: digest.clone() });
                }
            }
        } else {
            let mut texts = BTreeMap::new();
            for (k, (path, text)) in preload {
                let text = match text {
                    Some(t) => t,
                    None => self.old_account_jwt(&path)?.ok_or_else(|| {
                        GenerateError::Tampered(format!("{path}: listed in the signed manifest but missing"))
                    })?,
                };
                texts.insert(k, text);
            }
            let files = match &plan.fleet {
                None => server_files(op_jwt, sys_pub, &texts, plan.max_payload()),
                Some(f) => {
                    crate::fleet::conf::render(f, op_jwt, sys_pub, &texts, plan.max_payload()).into_iter().collect()
                }
            };
            for (path, bytes) in files {
                out.put(path, bytes);
            }
        }
        if let Some(f) = &plan.fleet {
            out.sealed(self.cluster_env(f)?);
        }
        Ok(inputs)
    }

    /// The recipients table: every name a secrets entry may use.
    fn recipient_table(&self) -> BTreeMap<String, String> {
        let mut t: BTreeMap<String, String> =
            self.owners.iter().map(|n| (n.name.clone(), n.recipient.text.clone())).collect();
        for (h, r) in &self.hosts {
            t.insert(format!("host:{h}"), r.text.clone());
        }
        for sp in &self.ctx.specialists {
            t.insert(format!("specialist:{}", sp.id), sp.recipient.text.clone());
        }
        t
    }

    /// `server/cluster.env.age`: the route credential, sealed to the server
    /// hosts and the owners. The password is generated once and read back
    /// afterwards; the ciphertext is kept while the servers and recipients are.
    fn cluster_env(&self, f: &crate::fleet::Fleet) -> Result<Sealed, GenerateError> {
        use crate::fleet::{self, CLUSTER_ENV};
        let servers: Vec<Named> = f
            .servers
            .iter()
            .map(|s| Named { name: format!("host:{}", s.name), recipient: self.hosts[s.name.as_str()] })
            .collect();
        let routes: Vec<String> = f.servers.iter().map(|s| format!("nats-route://{}", s.route_addr())).collect();
        let mut same_servers = true;
        for s in &f.servers {
            let json = self.old_file(&format!("server/{}/server.json", s.name))?;
            let all: Option<Vec<String>> = json
                .and_then(|j| serde_json::from_str::<serde_json::Value>(&j).ok())
                .and_then(|v| serde_json::from_value(v["cluster"]["all_routes"].clone()).ok());
            same_servers &= all.as_ref() == Some(&routes);
        }
        if same_servers {
            if let Some(s) = self.keep(CLUSTER_ENV, &servers) {
                return Ok(s);
            }
        }
        let password = match self.existing.read(CLUSTER_ENV)? {
            None => fleet::new_password(),
            Some(ct) => {
                let plain = self.ctx.identity.decrypt(&ct).map_err(|e| GenerateError::NotOwner {
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

    /// An old text file of the store (checked against the manifest), if it has one.
    fn old_file(&self, path: &str) -> Result<Option<String>, GenerateError> {
        match self.existing.read(path)? {
            None => Ok(None),
            Some(b) => String::from_utf8(b).map(Some).map_err(|_| GenerateError::Damaged(format!("{path}: not UTF-8"))),
        }
    }

    /// An old JWT we wrote ourselves: its sha256 matches the signed manifest, so
    /// its signature need not be checked again.
    fn old_jwt(&self, path: &str) -> Result<Option<String>, GenerateError> {
        self.old_file(path)
    }

    /// [`Builder::old_jwt`] of an account JWT, read at most once per run.
    fn old_account_jwt(&self, path: &str) -> Result<Option<String>, GenerateError> {
        if let Some(t) = self.existing.account_jwts.lock().expect("not poisoned").get(path) {
            return Ok(t.clone());
        }
        let t = self.old_jwt(path)?;
        self.existing.account_jwts.lock().expect("not poisoned").insert(path.to_string(), t.clone());
        Ok(t)
    }

    /// The old digest of a file that is carried unread.
    fn old_digest(&self, path: &str) -> Result<String, GenerateError> {
        self.existing
            .digest(path)
            .map(str::to_string)
            .ok_or_else(|| GenerateError::Damaged(format!("{path}: kept, but the manifest has no digest for it")))
    }

    /// The key of an entity: the old one (seed left encrypted for now), an imported
    /// one, or a new one (also when this entity is being rotated).
    fn key(&self, role: &str, account: &str, user: &str, make: fn() -> KeyPair) -> Result<Key, GenerateError> {
        let old = self.existing.key(role, account, user).cloned();
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
            fresh.as_ref().map_or_else(|| old.as_ref().expect("one of them").public_key.clone(), KeyPair::public_key);
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
        let entry = k.old.as_ref().expect("a key is fresh or old");
        let bytes = self
            .existing
            .read(&entry.path)?
            .ok_or_else(|| GenerateError::Damaged(format!("{}: listed in the manifest but missing", entry.path)))?;
        let plain = self.ctx.identity.decrypt(&bytes).map_err(|e| GenerateError::NotOwner {
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

    /// The existing ciphertext of `path` (left unread), if its recipient set is unchanged.
    fn keep(&self, path: &str, extra: &[Named]) -> Option<Sealed> {
        let (_, digest) = self.recipients(extra);
        let entry = self.existing.manifest.as_ref()?.secrets.get(path)?;
        let old = self.existing.digest(path)?;
        (entry.recipients_sha256 == digest).then(|| Sealed {
            blob: Blob { path: path.to_string(), bytes: None, digest: old.to_string() },
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
            blob: Blob::new(path.to_string(), bytes),
            entry: SecretEntry { kind: kind.into(), recipients: names, recipients_sha256, plaintext_sha256 },
        })
    }

    /// The account's revocations: the old JWT's (if it is the same account key),
    /// plus every user key that was in this account and is not any more (the user
    /// was removed, moved, or got a new key), revoked at max(now, its last iat).
    fn revocations(
        &self,
        old: Option<&AccountEntry>,
        old_jwt: Option<&str>,
        current: &HashMap<&str, &str>,
        account_key: &str,
    ) -> Result<BTreeMap<String, i64>, GenerateError> {
        let mut out = BTreeMap::new();
        let Some(old) = old.filter(|o| o.public_key == account_key) else { return Ok(out) };
        if let Some(prev) = old_jwt.and_then(|t| AccountClaims::decode(t).ok()) {
            if prev.std.sub == old.public_key {
                out = prev.nats.revocations;
            }
        }
        for u in &old.users {
            if current.get(u.name.as_str()) != Some(&u.public_key.as_str()) {
                let iat = self.old_file(&u.jwt)?.and_then(|t| UserClaims::decode(&t).ok()).map_or(0, |c| c.std.iat);
                out.entry(u.public_key.clone()).or_insert(self.ctx.now.max(iat));
            }
        }
        Ok(out)
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
    operator_jwt: &str,
    system_account: &str,
    preload: &BTreeMap<String, String>,
    max_payload: i64,
) -> Tree {
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
    let mut out = Tree::new();
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
    out
}

/// Accounts in a preload map: `server.json`'s `resolver_preload`.
pub fn preload_of(server_json: &[u8]) -> Option<BTreeMap<String, String>> {
    let v: serde_json::Value = serde_json::from_slice(server_json).ok()?;
    serde_json::from_value(v.get("resolver_preload")?.clone()).ok()
}

impl Built {
    /// What must change on disk: files whose content is new, and files of the
    /// old store (of the part this run loaded) that are no longer in it.
    /// `old_root` is the old root manifest's bytes. The new content moves into
    /// the change (a full generation holds it once, not twice).
    pub fn into_changes(self, existing: &Existing, old_root: Option<&[u8]>) -> (Manifest, crate::store::Changes) {
        let new = &self.manifest;
        let old = existing.manifest.as_ref();
        let old_manifests: HashMap<&str, &str> = old
            .iter()
            .flat_map(|m| &m.accounts)
            .filter(|a| a.loaded && !a.manifest.is_empty())
            .map(|a| (a.manifest.as_str(), a.manifest_sha256.as_str()))
            .collect();
        let new_manifests: HashMap<&str, &str> =
            new.accounts.iter().map(|a| (a.manifest.as_str(), a.manifest_sha256.as_str())).collect();
        let unchanged = |path: &str, bytes: &[u8]| -> bool {
            let Some(m) = old else { return false };
            if path == MANIFEST {
                return old_root == Some(bytes);
            }
            match (old_manifests.get(path), new_manifests.get(path)) {
                (Some(o), Some(n)) => o == n,
                _ => m.files.get(path).is_some_and(|d| new.files.get(path) == Some(d)),
            }
        };
        let put: Tree = self.files.into_iter().filter(|(p, b)| !unchanged(p, b)).collect();
        let mut remove = BTreeSet::new();
        if let Some(m) = old {
            remove.extend(m.files.keys().filter(|p| !new.files.contains_key(*p)).cloned());
            remove.extend(old_manifests.keys().filter(|p| !new_manifests.contains_key(*p)).map(|p| p.to_string()));
        }
        (self.manifest, crate::store::Changes { put, remove })
    }
}

//! The command line: argument definitions and a `run` that only parses and
//! dispatches to the library. Output goes to an injected writer.

use std::collections::HashMap;
use std::io::Write;

use camino::{Utf8Path, Utf8PathBuf};
use clap::{Parser, Subcommand};

use crate::config::{self, ConfigError};
use crate::generate::{self, Context, Existing, GenerateError, Rotation};
use crate::nsc::{self, NscError};
use crate::plan;
use crate::store::{self, tree::StoreError};
use crate::vault::{self, Identity, VaultError};
use crate::verify;

#[derive(Debug, Parser)]
#[command(
    name = "clan-nats",
    version,
    about = "Declarative NATS decentralized auth: an age-encrypted, nsc-compatible store from an organization config"
)]
pub struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The store to reconcile and who owns it (shared by generate, rotate, import-nsc).
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// The organization config (JSON; the cim-keys clan-bootstrap format).
    #[arg(long)]
    pub config: Utf8PathBuf,
    /// The store directory.
    #[arg(long, alias = "dir")]
    pub out: Utf8PathBuf,
    /// The owner's age identity; created (mode 0600) if missing and DIR holds no store yet.
    #[arg(long)]
    pub identity: Utf8PathBuf,
    /// An extra admin recipient (age1… or ssh-ed25519 …) that can read everything the owner can.
    #[arg(long = "recipient", value_name = "R")]
    pub recipients: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate (or reconcile) the store in DIR from an organization config.
    Generate {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Check signatures, the operator → account → user chain, the layout and
    /// every sha256; with an identity, decrypt and check every secret.
    Verify {
        dir: Utf8PathBuf,
        #[arg(long)]
        identity: Option<Utf8PathBuf>,
    },
    /// Replace a key, re-sign what depends on it and revoke the old user key.
    Rotate {
        #[command(subcommand)]
        target: RotateTarget,
    },
    /// Write a plaintext nsc data dir and keystore (stores/, keys/) for the nsc and nats CLIs.
    ExportNsc {
        /// The store directory.
        #[arg(long)]
        dir: Utf8PathBuf,
        #[arg(long)]
        identity: Utf8PathBuf,
        /// Where to write; must not exist or be empty. Holds plaintext seeds (dirs 0700, files 0600).
        #[arg(long)]
        to: Utf8PathBuf,
    },
    /// Adopt an existing nsc operator's keys into a new store, without re-keying.
    ImportNsc {
        /// The nsc data dir (containing stores/) or the stores dir itself.
        #[arg(long)]
        from: Utf8PathBuf,
        /// The nsc keystore dir (containing keys/).
        #[arg(long)]
        keys: Utf8PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum RotateTarget {
    /// A new key for a service user; its old creds stop working everywhere.
    User {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// New identity and signing keys for an account; all its users are re-issued.
    Account {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// A new operator signing key; every account is re-signed.
    OperatorSigningKey {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Refused: see the message.
    Operator {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Generate(#[from] GenerateError),
    #[error("{0}")]
    Vault(#[from] VaultError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Usage(String),
    #[error("verification failed with {} problem(s):\n  {}", .0.len(), .0.join("\n  "))]
    Verify(Vec<String>),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    #[error("{0}")]
    Nsc(#[from] crate::nsc::NscError),
}

impl Error {
    /// 2: bad input; 3: the identity may not do this (cannot decrypt); 1: anything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Usage(_) => 2,
            Error::Generate(GenerateError::NotOwner { .. }) | Error::Nsc(NscError::NotOwner { .. }) => 3,
            Error::Nsc(NscError::Input(_)) => 2,
            Error::Vault(VaultError::BadRecipient(_)) => 2,
            _ => 1,
        }
    }
}

/// Phase timings on stderr when `CLAN_NATS_TRACE` is set.
struct Trace(Option<std::cell::Cell<std::time::Instant>>);

impl Trace {
    fn new() -> Trace {
        Trace(std::env::var_os("CLAN_NATS_TRACE").map(|_| std::cell::Cell::new(std::time::Instant::now())))
    }

    fn mark(&self, what: &str) {
        if let Some(t) = &self.0 {
            eprintln!("clan-nats: {what}: {:.3} s", t.get().elapsed().as_secs_f64());
            t.set(std::time::Instant::now());
        }
    }
}

/// The clock: `SOURCE_DATE_EPOCH` when set (reproducible builds), else now.
pub fn now() -> i64 {
    if let Some(v) = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|v| v.parse().ok()) {
        return v;
    }
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub const OPERATOR_ROTATION_REFUSED: &str = "refusing to rotate the operator identity key: it is the root of trust. \
Every server's `operator` setting, every account JWT and every user's creds chain up to it, so replacing it \
re-roots trust everywhere at once. Rotate the operator signing key instead (`rotate operator-signing-key`); \
if the identity key itself is compromised, create a new store with a new operator and migrate to it.";

pub fn run(cli: Cli, out: &mut dyn Write) -> Result<(), Error> {
    let json = cli.json;
    match cli.command {
        Command::Generate { store } => reconcile(&store, None, None, json, now(), out),
        Command::Verify { dir, identity } => verify_cmd(&dir, identity.as_deref(), json, out),
        Command::Rotate { target } => {
            let (store, rotation) = match target {
                RotateTarget::User { name, store } => (store, Rotation::User(name)),
                RotateTarget::Account { name, store } => (store, Rotation::Account(name)),
                RotateTarget::OperatorSigningKey { store } => (store, Rotation::OperatorSigningKey),
                RotateTarget::Operator { .. } => return Err(Error::Usage(OPERATOR_ROTATION_REFUSED.into())),
            };
            reconcile(&store, Some(rotation), None, json, now(), out)
        }
        Command::ExportNsc { dir, identity, to } => {
            let id = Identity::load(&identity)?;
            let tree = nsc::export_tree(&store::read_tree(&dir)?, &id)?;
            nsc::write_private(&to, &tree)?;
            if json {
                writeln!(out, "{}", serde_json::json!({"to": to, "files": tree.len()}))?;
            } else {
                writeln!(
                    out,
                    "{to}: {} file(s) in nsc layout (plaintext secrets: keep it private, delete it after use)",
                    tree.len()
                )?;
                writeln!(out, "use: nsc --data-dir {to}/stores --keystore-dir {to}/keys describe operator")?;
            }
            Ok(())
        }
        Command::ImportNsc { from, keys, store } => {
            let cfg = config::load(&store.config)?;
            let plan = plan::plan(&cfg);
            let imported = nsc::import_keys(&from, &keys, &plan)?;
            reconcile(&store, None, Some(imported), json, now(), out)
        }
    }
}

/// generate, rotate and import-nsc: validate, plan, reconcile, write.
pub fn reconcile(
    args: &StoreArgs,
    rotate: Option<Rotation>,
    imported: Option<HashMap<(String, String, String), String>>,
    json: bool,
    now: i64,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let (config_path, dir, identity_path) = (&args.config, &args.out, &args.identity);
    let trace = Trace::new();
    // Everything that can be wrong with the input is checked before anything is written.
    let cfg = config::load(config_path)?;
    let admins = args
        .recipients
        .iter()
        .enumerate()
        .map(|(i, r)| vault::parse_recipient(r).map_err(|e| Error::Usage(format!("--recipient #{}: {e}", i + 1))))
        .collect::<Result<Vec<_>, _>>()?;
    let plan = plan::plan(&cfg);
    trace.mark("config, validation and plan");
    if let Some(r) = &rotate {
        r.check(&plan).map_err(Error::Usage)?;
    }
    let mut existing = Existing::from_tree(store::read_tree(dir)?)?;
    trace.mark("read the existing store");
    if existing.manifest.is_some() {
        if imported.is_some() {
            return Err(Error::Usage(format!("{dir} already holds a store; import-nsc only starts a new one")));
        }
        if !identity_path.exists() {
            // A new identity could never open the existing keystore: do not create one.
            return Err(GenerateError::NotOwner {
                path: dir.join(store::MANIFEST).to_string(),
                identity: identity_path.to_string(),
                reason: "that identity file does not exist (a new one is only created for a new store)".into(),
            }
            .into());
        }
    } else if rotate.is_some() {
        return Err(Error::Usage(format!("{dir} holds no store to rotate keys in; run generate first")));
    }
    existing.imported = imported.unwrap_or_default();
    let (identity, created) = Identity::load_or_create(identity_path)?;
    let ctx = Context { identity: &identity, admins, now, rotate };
    let tree = generate::build(&plan, &ctx, &existing)?;
    trace.mark("reconcile, sign and encrypt");
    let report = store::write_tree(dir, &tree, &existing.tree)?;
    trace.mark("write");

    let users: usize = plan.accounts.iter().map(|a| a.users.len()).sum();
    if json {
        let v = serde_json::json!({
            "dir": dir,
            "operator": plan.operator,
            "accounts": plan.accounts.len(),
            "users": users,
            "identity_created": created,
            "owner_recipient": identity.recipients.first(),
            "changed": report.swapped,
            "written": report.written,
            "removed": report.removed,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v).expect("json"))?;
    } else {
        if created {
            writeln!(
                out,
                "created owner identity {identity_path} (mode 0600); owner recipient: {}",
                identity.recipients[0]
            )?;
        }
        let what = if report.swapped {
            format!("{} file(s) written, {} removed", report.written.len(), report.removed.len())
        } else {
            "unchanged".to_string()
        };
        writeln!(
            out,
            "{dir}: operator {}, {} account(s), {} user(s); {what}",
            plan.operator,
            plan.accounts.len(),
            users
        )?;
    }
    Ok(())
}

pub fn verify_cmd(dir: &Utf8Path, identity: Option<&Utf8Path>, json: bool, out: &mut dyn Write) -> Result<(), Error> {
    let id = identity.map(Identity::load).transpose()?;
    let report = verify::verify(dir, id.as_ref());
    if json {
        let v = serde_json::json!({
            "dir": dir,
            "ok": report.problems.is_empty(),
            "problems": report.problems,
            "accounts": report.accounts,
            "users": report.users,
            "files": report.files,
            "decrypted": report.decrypted,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v).expect("json"))?;
    }
    if !report.problems.is_empty() {
        return Err(Error::Verify(report.problems));
    }
    if !json {
        let dec = if id.is_some() {
            format!(", {} secret(s) decrypted and checked", report.decrypted)
        } else {
            String::new()
        };
        writeln!(
            out,
            "{dir}: ok: {} account(s), {} user(s), {} file(s){dec}",
            report.accounts, report.users, report.files
        )?;
    }
    Ok(())
}

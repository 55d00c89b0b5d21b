//! The command line: argument definitions and a `run` that only parses and
//! dispatches to the library. Output goes to an injected writer.

use std::io::Write;

use camino::{Utf8Path, Utf8PathBuf};
use clap::{Parser, Subcommand};

use crate::config::{self, ConfigError};
use crate::generate::{self, Context, Existing, GenerateError};
use crate::plan;
use crate::store::{self, tree::StoreError};
use crate::vault::{self, Identity, VaultError};
use crate::verify;

#[derive(Debug, Parser)]
#[command(name = "clan-nats", version, about = "Declarative NATS decentralized auth: an age-encrypted, nsc-compatible store from an organization config")]
pub struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate (or reconcile) the store in DIR from an organization config.
    Generate {
        /// The organization config (JSON; the cim-keys clan-bootstrap format).
        #[arg(long)]
        config: Utf8PathBuf,
        /// The store directory.
        #[arg(long)]
        out: Utf8PathBuf,
        /// The owner's age identity; created (mode 0600) if missing.
        #[arg(long)]
        identity: Utf8PathBuf,
        /// An extra admin recipient (age1… or ssh-ed25519 …) that can read everything the owner can.
        #[arg(long = "recipient", value_name = "R")]
        recipients: Vec<String>,
    },
    /// Check signatures, the operator → account → user chain, the layout and
    /// every sha256; with an identity, decrypt and check every secret.
    Verify {
        dir: Utf8PathBuf,
        #[arg(long)]
        identity: Option<Utf8PathBuf>,
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
}

impl Error {
    /// 2: bad input; 3: the identity may not do this (cannot decrypt); 1: anything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Usage(_) => 2,
            Error::Generate(GenerateError::NotOwner { .. }) => 3,
            Error::Vault(VaultError::BadRecipient(_)) => 2,
            _ => 1,
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

pub fn run(cli: Cli, out: &mut dyn Write) -> Result<(), Error> {
    match cli.command {
        Command::Generate { config, out: dir, identity, recipients } => {
            generate_cmd(&config, &dir, &identity, &recipients, cli.json, now(), out)
        }
        Command::Verify { dir, identity } => verify_cmd(&dir, identity.as_deref(), cli.json, out),
    }
}

pub fn generate_cmd(
    config_path: &Utf8Path,
    dir: &Utf8Path,
    identity_path: &Utf8Path,
    recipients: &[String],
    json: bool,
    now: i64,
    out: &mut dyn Write,
) -> Result<(), Error> {
    // Everything that can be wrong with the input is checked before anything is written.
    let cfg = config::load(config_path)?;
    let admins = recipients
        .iter()
        .enumerate()
        .map(|(i, r)| {
            vault::parse_recipient(r).map_err(|e| Error::Usage(format!("--recipient #{}: {e}", i + 1)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let plan = plan::plan(&cfg);
    let existing = Existing::from_tree(store::read_tree(dir)?)?;
    if existing.manifest.is_some() && !identity_path.exists() {
        // A new identity could never open the existing keystore: do not create one.
        return Err(GenerateError::NotOwner {
            path: dir.join(store::MANIFEST).to_string(),
            identity: identity_path.to_string(),
            reason: "that identity file does not exist (a new one is only created for a new store)".into(),
        }
        .into());
    }
    let (identity, created) = Identity::load_or_create(identity_path)?;
    let ctx = Context { identity: &identity, admins, now };
    let tree = generate::build(&plan, &ctx, &existing)?;
    let report = store::write_tree(dir, &tree, &existing.tree)?;

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
            writeln!(out, "created owner identity {identity_path} (mode 0600); owner recipient: {}", identity.recipients[0])?;
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
        let dec = if id.is_some() { format!(", {} secret(s) decrypted and checked", report.decrypted) } else { String::new() };
        writeln!(out, "{dir}: ok: {} account(s), {} user(s), {} file(s){dec}", report.accounts, report.users, report.files)?;
    }
    Ok(())
}

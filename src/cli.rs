//! The command line: argument definitions and a `run` that only parses and
//! dispatches to [`crate::ops`]. Output goes to an injected writer.

use std::io::Write;

use camino::{Utf8Path, Utf8PathBuf};
use clap::{Parser, Subcommand};
use serde_json::json;

pub use crate::error::Error;
use crate::generate::Rotation;
use crate::governance::{self, Governance, Member};
use crate::manifest::Manifest;
use crate::nsc;
use crate::ops::{self, Outcome, Request};
use crate::store::{self, MANIFEST};
use crate::vault::Identity;
use crate::verify;

#[derive(Debug, Parser)]
#[command(
    name = "clan-nats",
    version,
    about = "Declarative NATS decentralized auth: an age-encrypted, nsc-compatible store from an organization config"
)]
pub struct Cli {
    /// Print machine-readable JSON instead of text (before or after the subcommand).
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
    /// Where creds go: `nsc` (…/accounts/A/users/U.creds.age) or `flat` (nats/U.creds.age).
    /// Default: the store's current layout, nsc for a new store.
    #[arg(long, value_enum)]
    pub format: Option<crate::store::Format>,
}

/// An existing store and the identity acting on it.
#[derive(Debug, Clone, clap::Args)]
pub struct DirArgs {
    /// The store directory.
    #[arg(long, alias = "out")]
    pub dir: Utf8PathBuf,
    /// The acting identity (the owner's for anything that changes the store).
    #[arg(long)]
    pub identity: Utf8PathBuf,
    /// The config to reconcile with; default: the one the store was generated from.
    #[arg(long)]
    pub config: Option<Utf8PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate (or reconcile) the store in DIR from an organization config.
    Generate {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Check signatures, the operator → account → user chain, the layout, every
    /// sha256, governance and recipients; with an identity, decrypt and check every secret.
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
        #[command(flatten)]
        dir: DirArgs,
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
    /// Start a store's governance: the owner identity, the operator keys, the
    /// signed ownership record and the first audit entry.
    Init {
        #[arg(long)]
        dir: Utf8PathBuf,
        #[arg(long)]
        owner_id: String,
        #[arg(long)]
        owner_name: String,
        /// The owner's age identity; created (mode 0600) if missing.
        #[arg(long)]
        identity: Utf8PathBuf,
    },
    /// The team of specialists (owner only for changes).
    Team {
        #[command(subcommand)]
        command: TeamCommand,
    },
    /// The store's organization and the role of an identity in it.
    Info {
        #[arg(long)]
        dir: Utf8PathBuf,
        #[arg(long)]
        identity: Option<Utf8PathBuf>,
        /// Show the flows between accounts: who can hear whom.
        #[arg(long)]
        flows: bool,
    },
    /// The secrets of a store.
    Vault {
        #[command(subcommand)]
        command: VaultCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum RotateTarget {
    /// A new key for a service user; its old creds stop working everywhere.
    User {
        name: String,
        #[command(flatten)]
        dir: DirArgs,
    },
    /// New identity and signing keys for an account; all its users are re-issued.
    Account {
        name: String,
        #[command(flatten)]
        dir: DirArgs,
    },
    /// A new operator signing key; every account is re-signed.
    OperatorSigningKey {
        #[command(flatten)]
        dir: DirArgs,
    },
    /// Refused: see the message.
    Operator {
        #[command(flatten)]
        dir: DirArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    /// Add a specialist: their recipient is added to the creds of their units' services.
    Add {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// The specialist's age recipient (age1… or ssh-ed25519 …).
        #[arg(long)]
        recipient: String,
        /// Comma-separated unit names; sub-units are included.
        #[arg(long, value_delimiter = ',')]
        units: Vec<String>,
        #[command(flatten)]
        dir: DirArgs,
    },
    /// Invite a specialist: prints a token signed by the owner (a bearer secret: send it privately).
    Invite {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// Comma-separated unit names; sub-units are included.
        #[arg(long, value_delimiter = ',')]
        units: Vec<String>,
        /// How long the token is valid: 72h, 30m, 7d, 3600s.
        #[arg(long, default_value = "72h")]
        expires: String,
        #[command(flatten)]
        dir: DirArgs,
    },
    /// Answer an invitation on your own machine: prints a join request for the owner.
    Join {
        #[arg(long)]
        token: String,
        /// Your age identity; created (mode 0600) if missing.
        #[arg(long)]
        identity: Utf8PathBuf,
    },
    /// Accept a join request (owner only) after confirming the requester's fingerprint.
    Accept {
        #[arg(long)]
        request: String,
        /// The fingerprint the requester read to you; without it, you are asked interactively.
        #[arg(long)]
        fingerprint: Option<String>,
        #[command(flatten)]
        dir: DirArgs,
    },
    /// List the team, removed members included.
    List {
        #[arg(long)]
        dir: Utf8PathBuf,
    },
    /// Remove a specialist: kept in the history as inactive, creds re-encrypted without them.
    Remove {
        #[arg(long)]
        id: String,
        /// Also rotate every user whose creds the member could read.
        #[arg(long)]
        rotate: bool,
        #[command(flatten)]
        dir: DirArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Every secret and who (by name) can decrypt it.
    Status {
        #[arg(long)]
        dir: Utf8PathBuf,
    },
    /// Print a seed to stdout (owner only): operator, operator-signing,
    /// account:NAME, account-signing:NAME, user:NAME, or a public key.
    RequestKey {
        name: String,
        #[command(flatten)]
        dir: DirArgs,
    },
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

fn request<'a>(d: &'a DirArgs, action: &'a str, rotate: Option<Rotation>) -> Request<'a> {
    Request {
        config: d.config.as_deref(),
        dir: &d.dir,
        identity: &d.identity,
        admins: None,
        rotate,
        imported: None,
        action,
        format: None,
        now: now(),
    }
}

fn store_request<'a>(s: &'a StoreArgs, action: &'a str) -> Request<'a> {
    Request {
        config: Some(&s.config),
        dir: &s.out,
        identity: &s.identity,
        admins: Some(s.recipients.clone()),
        rotate: None,
        imported: None,
        action,
        format: s.format,
        now: now(),
    }
}

pub fn run(cli: Cli, out: &mut dyn Write) -> Result<(), Error> {
    let json = cli.json;
    match cli.command {
        Command::Generate { store } => {
            print_outcome(&ops::reconcile(store_request(&store, "generate"), None)?, &store.out, json, out)
        }
        Command::Verify { dir, identity } => verify_cmd(&dir, identity.as_deref(), json, out),
        Command::Rotate { target } => {
            let (d, rotation) = match target {
                RotateTarget::User { name, dir } => (dir, Rotation::User(name)),
                RotateTarget::Account { name, dir } => (dir, Rotation::Account(name)),
                RotateTarget::OperatorSigningKey { dir } => (dir, Rotation::OperatorSigningKey),
                RotateTarget::Operator { .. } => return Err(Error::Usage(OPERATOR_ROTATION_REFUSED.into())),
            };
            let details = json!({"rotated": format!("{rotation:?}")});
            let outcome =
                ops::reconcile(request(&d, "rotate", Some(rotation)), Some(Box::new(move |_, _| Ok(details))))?;
            print_outcome(&outcome, &d.dir, json, out)
        }
        Command::ExportNsc { dir, to } => {
            let id = Identity::load(&dir.identity)?;
            let tree = store::read_tree(&dir.dir)?;
            let export = nsc::export_tree(&tree, &id)?;
            nsc::write_private(&to, &export)?;
            ops::record(&dir.dir, &id, "key-export", json!({"to": to, "what": "export-nsc"}), now())?;
            if json {
                writeln!(out, "{}", json!({"to": to, "files": export.len()}))?;
            } else {
                writeln!(
                    out,
                    "{to}: {} file(s) in nsc layout (plaintext secrets: keep it private, delete it after use)",
                    export.len()
                )?;
                writeln!(out, "use: nsc --data-dir {to}/stores --keystore-dir {to}/keys describe operator")?;
            }
            Ok(())
        }
        Command::ImportNsc { from, keys, store } => {
            let cfg = crate::config::load(&store.config)?;
            let plan = crate::plan::plan(&cfg);
            let imported = nsc::import_keys(&from, &keys, &plan)?;
            let mut req = store_request(&store, "import-nsc");
            req.imported = Some(imported);
            print_outcome(&ops::reconcile(req, None)?, &store.out, json, out)
        }
        Command::Init { dir, owner_id, owner_name, identity } => {
            let (created, recipient) = ops::init(&dir, &owner_id, &owner_name, &identity, now())?;
            if json {
                writeln!(
                    out,
                    "{}",
                    json!({"dir": dir, "owner_id": owner_id, "owner_recipient": recipient, "identity_created": created})
                )?;
            } else {
                if created {
                    writeln!(out, "created owner identity {identity} (mode 0600); owner recipient: {recipient}")?;
                }
                writeln!(out, "{dir}: initialised for owner {owner_id}; next: clan-nats generate --config FILE --out {dir} --identity {identity}")?;
            }
            Ok(())
        }
        Command::Team { command } => team(command, json, out),
        Command::Info { dir, flows: true, .. } => flows_info(&dir, json, out),
        Command::Info { dir, identity, .. } => info(&dir, identity.as_deref(), json, out),
        Command::Vault { command } => vault(command, json, out),
    }
}

fn print_outcome(o: &Outcome, dir: &Utf8Path, json: bool, out: &mut dyn Write) -> Result<(), Error> {
    let users: usize = o.plan.accounts.iter().map(|a| a.users.len()).sum();
    let (added, removed) = crate::wiring::diff(&o.flows_before, &o.plan.wiring.flows);
    for w in &o.plan.wiring.warnings {
        eprintln!("clan-nats: warning: {w}");
    }
    if json {
        let v = json!({
            "dir": dir,
            "operator": o.plan.operator,
            "accounts": o.plan.accounts.len(),
            "users": users,
            "identity_created": o.identity_created,
            "owner_recipient": o.owner_recipient,
            "changed": o.report.swapped,
            "written": o.report.written,
            "removed": o.report.removed,
            "flows_added": added,
            "flows_removed": removed,
            "warnings": o.plan.wiring.warnings,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v).expect("json"))?;
    } else {
        if o.identity_created {
            writeln!(out, "created owner identity (mode 0600); owner recipient: {}", o.owner_recipient)?;
        }
        let what = if o.report.swapped {
            format!("{} file(s) written, {} removed", o.report.written.len(), o.report.removed.len())
        } else {
            "unchanged".to_string()
        };
        writeln!(
            out,
            "{dir}: operator {}, {} account(s), {} user(s); {what}",
            o.plan.operator,
            o.plan.accounts.len(),
            users
        )?;
        for f in &added {
            writeln!(out, "new flow: {}", f.describe())?;
        }
        for f in &removed {
            writeln!(out, "removed flow: {}", f.describe())?;
        }
    }
    Ok(())
}

fn flows_info(dir: &Utf8Path, json: bool, out: &mut dyn Write) -> Result<(), Error> {
    let tree = store::read_tree(dir)?;
    let m = Manifest::parse(tree.get(MANIFEST).ok_or_else(|| Error::Usage(format!("{dir}: not a store")))?)
        .map_err(|e| Error::Usage(format!("{dir}/{MANIFEST}: {e}")))?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&crate::wiring::show::json(&m)).expect("json"))?;
    } else {
        write!(out, "{}", crate::wiring::show::text(&m))?;
    }
    Ok(())
}

fn team(command: TeamCommand, json: bool, out: &mut dyn Write) -> Result<(), Error> {
    match command {
        TeamCommand::Add { id, name, recipient, units, dir } => {
            let member = Member {
                id: id.clone(),
                name,
                role: governance::record::SPECIALIST.into(),
                recipient: crate::vault::parse_recipient(&recipient)
                    .map_err(|e| Error::Usage(format!("--recipient: {e}")))?
                    .text,
                units,
                added_at: governance::rfc3339(now()),
                active: true,
            };
            let outcome = ops::reconcile(
                request(&dir, "team-add", None),
                Some(Box::new(move |g, m| ops::add_member(g, m, member))),
            )?;
            if json {
                writeln!(out, "{}", json!({"added": id, "written": outcome.report.written}))?;
            } else {
                writeln!(out, "added {id}; {} file(s) re-encrypted or updated", outcome.report.written.len())?;
            }
            Ok(())
        }
        TeamCommand::Invite { id, name, units, expires, dir } => {
            let secs =
                governance::invite::parse_duration(&expires).map_err(|e| Error::Usage(format!("--expires: {e}")))?;
            let identity = Identity::load(&dir.identity)?;
            let (token, invite) = ops::invite(&dir.dir, &identity, &id, &name, &units, secs, now())?;
            if json {
                writeln!(
                    out,
                    "{}",
                    json!({"token": token, "expires": governance::rfc3339(invite.expires), "operator": invite.operator})
                )?;
            } else {
                writeln!(out, "{token}")?;
                eprintln!(
                    "invite for {id} ({}) expires {}; send it privately: whoever holds it can answer it until then",
                    units.join(","),
                    governance::rfc3339(invite.expires)
                );
            }
            Ok(())
        }
        TeamCommand::Join { token, identity } => {
            let (request, fp, invite, created) = ops::join(&token, &identity, now())?;
            if json {
                let v = json!({"request": request, "fingerprint": fp, "operator": invite.operator, "org_id": invite.org_id, "identity_created": created});
                writeln!(out, "{}", serde_json::to_string_pretty(&v).expect("json"))?;
            } else {
                if created {
                    writeln!(out, "created your identity {identity} (mode 0600)")?;
                }
                writeln!(
                    out,
                    "invited as {} to units {} of organization {}",
                    invite.member_id,
                    invite.units.join(","),
                    invite.org_id
                )?;
                writeln!(out, "signed by operator {}: compare it with the owner out of band", invite.operator)?;
                writeln!(out, "your fingerprint: {fp}  (read it to the owner over another channel)")?;
                writeln!(out, "send this join request to the owner:\n{request}")?;
            }
            Ok(())
        }
        TeamCommand::Accept { request, fingerprint, dir } => {
            let mut confirm = |_: &governance::invite::JoinRequest,
                               inv: &governance::invite::Invite,
                               fp: &str|
             -> Result<bool, Error> {
                if let Some(given) = &fingerprint {
                    return Ok(governance::invite::same_fingerprint(given, fp));
                }
                use std::io::IsTerminal;
                if !std::io::stdin().is_terminal() {
                    return Err(Error::Usage(
                        "no terminal to confirm the fingerprint on: pass --fingerprint FP".into(),
                    ));
                }
                eprint!(
                    "{} asks to join units {} with fingerprint {fp}.\nType the fingerprint they read to you: ",
                    inv.member_id,
                    inv.units.join(",")
                );
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                Ok(governance::invite::same_fingerprint(line.trim(), fp))
            };
            let (outcome, invite) = ops::accept(&dir.dir, &request, &dir.identity, &mut confirm, now())?;
            if json {
                writeln!(
                    out,
                    "{}",
                    json!({"added": invite.member_id, "units": invite.units, "written": outcome.report.written})
                )?;
            } else {
                writeln!(
                    out,
                    "added {} ({}); {} file(s) re-encrypted or updated",
                    invite.member_id,
                    invite.units.join(","),
                    outcome.report.written.len()
                )?;
            }
            Ok(())
        }
        TeamCommand::List { dir } => {
            let g = load_governance(&dir)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&g.ownership.team_members).expect("json"))?;
            } else {
                for m in &g.ownership.team_members {
                    let state = if m.active { "active" } else { "removed" };
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}\t{state}\tadded {}",
                        m.id,
                        m.name,
                        m.role,
                        m.units.join(","),
                        m.added_at
                    )?;
                }
            }
            Ok(())
        }
        TeamCommand::Remove { id, rotate, dir } => {
            let readable = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
            let r2 = readable.clone();
            let target = id.clone();
            let outcome = ops::reconcile(
                request(&dir, "team-remove", None),
                Some(Box::new(move |g, m| {
                    let (details, users) = ops::remove_member(g, m, &target)?;
                    *r2.borrow_mut() = users;
                    Ok(details)
                })),
            )?;
            let users = readable.borrow().clone();
            let mut rotated = Vec::new();
            if rotate {
                for u in &users {
                    ops::reconcile(request(&dir, "rotate", Some(Rotation::User(u.clone()))), None)?;
                    rotated.push(u.clone());
                }
            }
            if json {
                writeln!(
                    out,
                    "{}",
                    json!({"removed": id, "could_read": users, "rotated": rotated, "written": outcome.report.written})
                )?;
            } else {
                writeln!(out, "removed {id}; their recipient is gone from every file")?;
                writeln!(
                    out,
                    "they could read the creds of: {}",
                    if users.is_empty() { "(none)".into() } else { users.join(", ") }
                )?;
                if rotate {
                    writeln!(out, "rotated: {}", rotated.join(", "))?;
                } else if !users.is_empty() {
                    writeln!(out, "copies they kept stay valid until rotated: clan-nats team remove … --rotate, or rotate user NAME")?;
                }
            }
            Ok(())
        }
    }
}

fn load_governance(dir: &Utf8Path) -> Result<Governance, Error> {
    let tree = store::read_tree(dir)?;
    Governance::from_tree(&tree)?.ok_or_else(|| Error::Usage(format!("{dir}: no governance (run init or generate)")))
}

fn info(dir: &Utf8Path, identity: Option<&Utf8Path>, json: bool, out: &mut dyn Write) -> Result<(), Error> {
    let tree = store::read_tree(dir)?;
    let gov = Governance::from_tree(&tree)?;
    let m = tree.get(MANIFEST).and_then(|b| Manifest::parse(b).ok());
    let id = identity.map(Identity::load).transpose()?;
    let role = ops::role(gov.as_ref(), &tree, m.as_ref(), id.as_ref());
    let org = json!({
        "operator": m.as_ref().map(|m| m.operator.name.clone()),
        "operator_public_key": m.as_ref().map(|m| m.operator.public_key.clone()),
        "org_id": gov.as_ref().map(|g| g.ownership.org_id.clone()),
        "owner_id": gov.as_ref().map(|g| g.ownership.owner_id.clone()),
        "owner_name": gov.as_ref().map(|g| g.ownership.owner_name.clone()),
        "team_members": gov.as_ref().map_or(0, |g| g.active().count()),
    });
    if json {
        let v = json!({"app_name": "clan-nats", "app_release": env!("CARGO_PKG_VERSION"), "organization": org, "user_role": role});
        writeln!(out, "{}", serde_json::to_string_pretty(&v).expect("json"))?;
    } else {
        writeln!(out, "clan-nats {}", env!("CARGO_PKG_VERSION"))?;
        writeln!(out, "organization: {}", serde_json::to_string(&org).expect("json"))?;
        writeln!(out, "user_role: {role}")?;
    }
    Ok(())
}

fn vault(command: VaultCommand, json: bool, out: &mut dyn Write) -> Result<(), Error> {
    match command {
        VaultCommand::Status { dir } => {
            let tree = store::read_tree(&dir)?;
            let m = Manifest::parse(tree.get(MANIFEST).ok_or_else(|| Error::Usage(format!("{dir}: not a store")))?)
                .map_err(|e| Error::Usage(format!("{dir}/{MANIFEST}: {e}")))?;
            if json {
                let v: Vec<_> = m
                    .secrets
                    .iter()
                    .map(|(p, s)| json!({"path": p, "kind": s.kind, "readers": s.recipients}))
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&v).expect("json"))?;
            } else {
                for (p, s) in &m.secrets {
                    writeln!(out, "{p}\t{}\t{}", s.kind, s.recipients.join(", "))?;
                }
            }
            Ok(())
        }
        VaultCommand::RequestKey { name, dir } => {
            let id = Identity::load(&dir.identity)?;
            let seed = ops::request_key(&dir.dir, &id, &name, now())?;
            if json {
                writeln!(out, "{}", json!({"name": name, "seed": seed}))?;
            } else {
                writeln!(out, "{seed}")?;
            }
            Ok(())
        }
    }
}

pub fn verify_cmd(dir: &Utf8Path, identity: Option<&Utf8Path>, json: bool, out: &mut dyn Write) -> Result<(), Error> {
    let id = identity.map(Identity::load).transpose()?;
    let report = verify::verify(dir, id.as_ref());
    if json {
        let v = json!({
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

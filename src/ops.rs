//! The operations behind the commands: each reads the store, changes what it
//! must, reconciles and writes atomically. The CLI only parses and prints.

use std::collections::HashMap;

use camino::{Utf8Path, Utf8PathBuf};
use nkeys::KeyPair;

use crate::config;
use crate::error::Error;
use crate::generate::{self, Context, Existing, GenerateError, Rotation, Specialist, CONFIG};
use crate::governance::invite::{fingerprint, Invite, JoinRequest};
use crate::governance::{self, Governance, GovernanceError, Member};
use crate::manifest::Manifest;
use crate::plan::{self, Plan};
use crate::store::pin::Pins;
use crate::store::{self, Tree, WriteReport, MANIFEST};
use crate::trust;
use crate::vault::{self, Identity};

/// The question asked before a change that needs confirmation: a heading and
/// the changes, one line each; `Ok(false)` refuses.
pub type Confirm<'a> = &'a mut dyn FnMut(&str, &[String]) -> Result<bool, Error>;

/// What a reconcile is asked to do.
pub struct Request<'a> {
    /// The config; `None` means the one the store was generated from (`DIR/config.json`).
    pub config: Option<&'a Utf8Path>,
    pub dir: &'a Utf8Path,
    pub identity: &'a Utf8Path,
    /// Admin recipients; `None` keeps the store's current ones.
    pub admins: Option<Vec<String>>,
    pub rotate: Option<Rotation>,
    pub imported: Option<HashMap<(String, String, String), String>>,
    /// The audit action recorded when the store changes.
    pub action: &'a str,
    /// The creds layout; `None` keeps the store's (nsc for a new one).
    pub format: Option<crate::store::Format>,
    pub now: i64,
    /// This machine's trust pins: checked before, advanced after the write.
    pub pins: &'a mut Pins,
    /// Asked before a change that needs confirmation: a `--config` that
    /// changes who can decrypt (the owner's or a host's recipient), or one that
    /// stops deployed credentials from working. Gets a heading and the changes,
    /// one line each; `false` refuses.
    pub confirm: Confirm<'a>,
    /// Decide everything, write nothing (`plan`, `generate --dry-run`).
    pub dry_run: bool,
    /// The owner identity may be created (a new store only): `--new-identity`.
    pub new_identity: bool,
    /// Recipients that are committed test keys are accepted (tests only).
    pub allow_insecure_fixture_keys: bool,
    /// Where `clan:<machine>` host recipients are looked up (`--clan-dir`;
    /// `None`: `$CLAN_NATS_CLAN_DIR`). See [`config::clan`].
    pub clan_dir: Option<&'a Utf8Path>,
}

/// What a reconcile did.
#[derive(Debug)]
pub struct Outcome {
    pub plan: Plan,
    pub report: WriteReport,
    pub identity_created: bool,
    pub owner_recipient: String,
    /// Who can decrypt that changed, one line each by name (`admin-1 (age1…) removed`).
    pub recipient_changes: Vec<String>,
    /// What changed (or, in a dry run, would change), and what must happen next.
    pub changes: crate::changes::ChangeSet,
    /// The flows between accounts before this run (the new ones are in `plan.wiring`).
    pub flows_before: Vec<crate::wiring::Flow>,
    /// How many files of the old store beyond its root (manifest, config,
    /// governance) this run read: what it touched, not what exists.
    pub files_read: usize,
}

/// The recipients (by name) added, removed or changed from one manifest to the next.
pub fn recipient_changes(old: Option<&Manifest>, new: &Manifest) -> Vec<String> {
    let empty = std::collections::BTreeMap::new();
    let before = old.map_or(&empty, |m| &m.recipients);
    let mut out = Vec::new();
    for (name, r) in &new.recipients {
        match before.get(name) {
            None if old.is_some() => out.push(format!("recipient {name} ({r}) added")),
            Some(b) if b != r => out.push(format!("recipient {name} changed: {b} -> {r}")),
            _ => {}
        }
    }
    for (name, r) in before {
        if !new.recipients.contains_key(name) {
            out.push(format!(
                "recipient {name} ({r}) removed: it can no longer decrypt what is re-encrypted from now on"
            ));
        }
    }
    out
}

/// A change to the governance record, applied with the operator key in hand.
pub type GovernanceChange<'a> = Box<dyn FnOnce(&mut Governance, &Manifest) -> Result<serde_json::Value, Error> + 'a>;

/// What a run tells about its phases on stderr: every phase's time when
/// `CLAN_NATS_TRACE` is set; otherwise, on a terminal, a progress line once
/// the run has taken more than a second (`CLAN_NATS_PROGRESS_AFTER_MS` sets
/// after how long; `CLAN_NATS_NO_PROGRESS` turns it off).
struct Trace {
    timings: bool,
    progress: bool,
    /// Progress lines start once the run has taken this long.
    after: std::time::Duration,
    start: std::time::Instant,
    last: std::cell::Cell<std::time::Instant>,
    shown: std::cell::Cell<bool>,
}

impl Trace {
    fn new() -> Trace {
        use std::io::IsTerminal;
        let now = std::time::Instant::now();
        Trace {
            timings: std::env::var_os("CLAN_NATS_TRACE").is_some(),
            progress: std::io::stderr().is_terminal() && std::env::var_os("CLAN_NATS_NO_PROGRESS").is_none(),
            after: std::env::var("CLAN_NATS_PROGRESS_AFTER_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .map_or(std::time::Duration::from_secs(1), std::time::Duration::from_millis),
            start: now,
            last: std::cell::Cell::new(now),
            shown: std::cell::Cell::new(false),
        }
    }

    /// `what` is done; `next` (with its counts) starts.
    fn mark(&self, what: &str, next: &str) {
        if self.timings {
            eprintln!("clan-nats: {what}: {:.3} s", self.last.get().elapsed().as_secs_f64());
            self.last.set(std::time::Instant::now());
        } else if self.progress && !next.is_empty() && self.start.elapsed() >= self.after {
            eprint!("\r\x1b[Kclan-nats: {next} ({:.1} s)", self.start.elapsed().as_secs_f64());
            self.shown.set(true);
        }
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        if self.shown.get() {
            eprint!("\r\x1b[K");
        }
    }
}

fn config_of(req: &Request, existing: &Tree) -> Result<(Utf8PathBuf, Vec<u8>), Error> {
    match req.config {
        Some(p) => {
            let bytes = crate::input::config_bytes(p)?;
            Ok((crate::input::config_name(p).to_owned(), bytes))
        }
        None => existing
            .get(CONFIG)
            .map(|b| (req.dir.join(CONFIG), b.clone()))
            .ok_or_else(|| Error::Usage(format!("{}: no {CONFIG} in the store; pass --config", req.dir))),
    }
}

/// Parse and validate a config given as bytes (from `--config` or the store);
/// `clan:<machine>` host recipients are taken from the clan directory first.
fn parse_config(path: &Utf8Path, bytes: &[u8], clan_dir: Option<&Utf8Path>) -> Result<config::Config, Error> {
    let text = std::str::from_utf8(bytes).map_err(|_| config::ConfigError {
        file: path.to_owned(),
        issues: vec![config::Issue { path: String::new(), message: "not UTF-8".into() }],
    })?;
    // Unknown fields and the like: the whole report (schema and semantic problems).
    let mut cfg = match config::parse(path, text) {
        Ok(c) => c,
        Err(_) => return Err(config::parse_and_validate(path, text).expect_err("it did not parse").into()),
    };
    config::clan::resolve(&mut cfg, path, clan_dir)?;
    let issues = config::validate::validate(&cfg);
    if !issues.is_empty() {
        return Err(config::ConfigError { file: path.to_owned(), issues }.into());
    }
    Ok(cfg)
}

/// verify the store → validate → plan → reconcile with the verified store →
/// sign, encrypt → governance → atomic write → advance the pin.
pub fn reconcile(req: Request, change: Option<GovernanceChange>) -> Result<Outcome, Error> {
    let trace = Trace::new();
    let mut lock = store::lock(req.dir)?;
    let started = lock.stamp();
    // The root of the store (manifest, governance, config); the rest is read
    // when needed, each file against the digest the verified root vouches for.
    let root = store::read_root(req.dir)?;
    // Nothing of DIR is used before it is checked against this machine's pin.
    let verified = trust::check_for_write(req.dir, &root, req.pins)?;
    let mut existing = Existing::open(req.dir, &root)?;
    // What changed in DIR since this machine last saw it whole is checked too,
    // also in the accounts this run will not open.
    let rescanned = match &verified {
        Some(v) => trust::edited(req.dir, req.pins, v, &mut existing)?,
        None => false,
    };
    trace.mark("read and verify the existing store", "validating the config");
    // Everything that can be wrong with the input is checked before anything is written.
    let (config_path, config_bytes) = config_of(&req, &root)?;
    let cfg = parse_config(&config_path, &config_bytes, req.clan_dir)?;
    if !req.allow_insecure_fixture_keys {
        // A config given now (a stored one was checked when it was given).
        let given = req.config.is_some().then_some(&cfg);
        config::fixtures::check(&config_path, given, req.admins.as_deref().unwrap_or_default())?;
    }
    let old_config = root.get(CONFIG).filter(|b| verified.is_some() && **b != config_bytes);
    if let (Some(_), Some(old_bytes)) = (req.config, old_config) {
        let mut old_cfg = config::parse(&req.dir.join(CONFIG), &String::from_utf8_lossy(old_bytes))?;
        // The stored config keeps `clan:<machine>`: compare the keys it meant,
        // as far as the clan directory still has them (else the text as stored).
        let _ = config::clan::resolve(&mut old_cfg, &req.dir.join(CONFIG), req.clan_dir);
        let changes = config::recipient_changes(&old_cfg, &cfg);
        if !changes.is_empty()
            && !req.dry_run
            && !(req.confirm)("this config changes who can decrypt the store", &changes)?
        {
            return Err(Error::Usage(format!(
                "{config_path} changes who can decrypt the store:\n  {}\nnot confirmed; nothing was written (pass --yes to confirm)",
                changes.join("\n  ")
            )));
        }
    }
    let plan = plan::plan(&cfg);
    trace.mark(
        "config, validation and plan",
        &format!(
            "reconciling {} account(s), {} user(s): signing and encrypting",
            plan.accounts.len(),
            plan.accounts.iter().map(|a| a.users.len()).sum::<usize>()
        ),
    );
    if let Some(r) = &req.rotate {
        r.check(&plan).map_err(Error::Usage)?;
    }
    let flows_before = existing.manifest.as_ref().map(|m| m.flows.clone()).unwrap_or_default();
    let gov = Governance::from_tree(&root)?;
    let admins: Vec<String> = match &req.admins {
        Some(a) => a.clone(),
        None => existing
            .manifest
            .as_ref()
            .map(|m| m.recipients.iter().filter(|(k, _)| k.starts_with("admin-")).map(|(_, v)| v.clone()).collect())
            .unwrap_or_default(),
    };
    let admins = admins
        .iter()
        .enumerate()
        .map(|(i, r)| vault::parse_recipient(r).map_err(|e| Error::Usage(format!("--recipient #{}: {e}", i + 1))))
        .collect::<Result<Vec<_>, _>>()?;
    if existing.manifest.is_some() {
        if req.imported.is_some() {
            return Err(Error::Usage(format!("{} already holds a store; import-nsc only starts a new one", req.dir)));
        }
        if !req.identity.exists() {
            // A new identity could never open the existing keystore: do not create one.
            return Err(GenerateError::NotOwner {
                path: req.dir.join(MANIFEST).to_string(),
                identity: req.identity.to_string(),
                reason: "that identity file does not exist (a new one is only created for a new store)".into(),
            }
            .into());
        }
    } else if req.rotate.is_some() || change.is_some() {
        return Err(Error::Usage(format!("{} holds no store yet; run generate first", req.dir)));
    }
    let format = req.format.or_else(|| existing.manifest.as_ref().map(|m| m.layout)).unwrap_or_default();
    if format == crate::store::Format::Flat {
        let mut seen = std::collections::BTreeMap::new();
        for a in &plan.accounts {
            for u in &a.users {
                if let Some(other) = seen.insert(u.name.to_ascii_lowercase(), a.name.clone()) {
                    let message = format!(
                        "--format flat needs user names unique across accounts, but {:?} is in accounts {other:?} and {:?}",
                        u.name, a.name
                    );
                    let issues = vec![config::Issue { path: String::new(), message }];
                    return Err(config::ConfigError { file: config_path, issues }.into());
                }
            }
        }
    }
    existing.imported = req.imported.unwrap_or_default();
    let (identity, created) = if req.dry_run && !req.identity.exists() && existing.manifest.is_none() {
        eprintln!("clan-nats: dry run: {} does not exist; planning with a throw-away identity", req.identity);
        (Identity::ephemeral(req.identity), false)
    } else if req.identity.exists() {
        (Identity::load(req.identity)?, false)
    } else if req.new_identity {
        if let Some(parent) = req.identity.parent().filter(|p| !p.as_str().is_empty() && !p.is_dir()) {
            return Err(Error::Usage(format!(
                "{}: directory {parent} does not exist (it is not created: check the path)",
                req.identity
            )));
        }
        Identity::load_or_create(req.identity)?
    } else {
        return Err(Error::Usage(format!(
            "{}: no such identity file; to start a new store with a new owner identity there, pass --new-identity (or run `clan-nats init`); to use an existing one, pass --identity FILE or set CLAN_NATS_IDENTITY",
            req.identity
        )));
    };
    announce(&identity, created);

    // Governance: apply the change first (it may add or remove specialists).
    let mut gov = gov;
    let mut details = serde_json::json!({});
    let mut operator: Option<KeyPair> = None;
    if let (Some(change), Some(g)) = (change, gov.as_mut()) {
        // A change of who is on the team looks at every user: open every account.
        let all = existing.manifest.iter().flat_map(|m| &m.accounts).map(|a| a.name.clone()).collect();
        existing.load(&all).map_err(|e| untrusted(req.dir, e))?;
        let m = existing.manifest.as_ref().expect("checked above");
        let op = operator_key_of(&existing, m, &identity)?;
        details = change(g, m)?;
        g.resign(&op, req.now);
        operator = Some(op);
    }
    let parents: std::collections::BTreeMap<String, Option<String>> =
        plan.units.iter().map(|u| (u.name.clone(), u.parent.clone())).collect();
    let specialists = gov
        .as_ref()
        .map(|g| {
            g.active()
                .map(|m| {
                    Ok(Specialist {
                        id: m.id.clone(),
                        recipient: vault::parse_recipient(&m.recipient)?,
                        units: governance::covered_units(&m.units, &parents),
                    })
                })
                .collect::<Result<Vec<_>, vault::VaultError>>()
        })
        .transpose()?
        .unwrap_or_default();

    let rotating = req.rotate.is_some();
    let ctx = Context {
        identity: &identity,
        admins,
        now: req.now,
        rotate: req.rotate,
        specialists,
        config_json: config_bytes,
        format,
    };
    let built = generate::build(&plan, &ctx, &mut existing).map_err(|e| untrusted(req.dir, e))?;
    trace.mark(
        &format!("reconcile, sign and encrypt ({} file(s) of the old store read)", existing.files_read()),
        "writing the store",
    );
    // A new store's governance record is signed with its new operator key.
    let new_operator = match gov {
        None => Some(operator_key_of_built(&built, &identity)?),
        Some(_) => None,
    };
    let manifest_bytes = built.files[MANIFEST].clone();
    let manifest_bytes = &manifest_bytes;
    let (new_manifest, mut changes) = built.into_changes(&existing, root.get(MANIFEST).map(Vec::as_slice));
    let new_manifest = &new_manifest;

    // Record the change in the audit log, signed by the owner.
    let store_changed = !changes.is_empty();
    let recipient_changes = recipient_changes(existing.manifest.as_ref(), new_manifest);
    let actor =
        gov.as_ref().map_or_else(|| plan.owner_id.clone().unwrap_or_else(|| "owner".into()), |g| actor(g, &identity));
    let summary = |details: serde_json::Value| summary(&changes, details);
    let gov = match gov {
        None => {
            let op = new_operator.expect("made above for a new store");
            let owner_id = plan.owner_id.clone().unwrap_or_else(|| "owner".into());
            let owner_name = plan.owner_name.clone().unwrap_or_else(|| owner_id.clone());
            let mut g = Governance::init(&owner_id, &owner_name, &identity.recipients[0], &op, req.now);
            let init = serde_json::json!({"org_id": g.ownership.org_id, "owner_recipient": identity.recipients[0]});
            g.record(&op, req.now, &owner_id, "init", init, manifest_bytes);
            g.record(&op, req.now, &owner_id, req.action, summary(details), manifest_bytes);
            Some(g)
        }
        Some(mut g) if store_changed || operator.is_some() => {
            let op = match operator.take() {
                Some(op) => op,
                None => operator_key_of(&existing, existing.manifest.as_ref().expect("an existing store"), &identity)?,
            };
            g.record(&op, req.now, &actor, req.action, summary(details), manifest_bytes);
            Some(g)
        }
        other => other,
    };
    // The new root state: the root manifest and the governance record.
    let mut head: Tree = [(MANIFEST.to_string(), manifest_bytes.clone())].into();
    if let Some(g) = &gov {
        for (path, bytes) in g.to_files() {
            if root.get(&path) != Some(&bytes) {
                changes.put.insert(path.clone(), bytes.clone());
            }
            head.insert(path, bytes);
        }
    }
    let files_changed = changes.put.len() + changes.remove.len();
    let changes_report = crate::changes::diff(existing.manifest.as_ref(), new_manifest, files_changed, rotating);
    let destructive = changes_report.destructive.clone();
    let outcome = |report| Outcome {
        plan,
        report,
        identity_created: created,
        owner_recipient: identity.recipients[0].clone(),
        recipient_changes,
        changes: changes_report,
        flows_before,
        files_read: existing.files_read(),
    };
    if req.dry_run {
        return Ok(outcome(WriteReport::default()));
    }
    if changes.is_empty() {
        // Nothing to write; what had changed in DIR was checked and is as signed.
        if verified.is_some() {
            trust::advance_checked(req.pins, req.dir, &head, started.filter(|_| rescanned))?;
        }
        return Ok(outcome(WriteReport::default()));
    }
    if !destructive.is_empty() && !(req.confirm)("these changes stop deployed credentials from working", &destructive)?
    {
        return Err(Error::Usage(format!(
            "not confirmed; nothing was written (pass --yes to confirm):\n  {}",
            destructive.join("\n  ")
        )));
    }
    // A new store is pinned before it is written (a run killed in between leaves
    // a pin of nothing, harmless); an existing one after (a run killed in between
    // leaves the pin behind the store's head, which a later run sees as an extension).
    if verified.is_none() {
        trust::advance(req.pins, req.dir, &head)?;
    }
    let report = if existing.manifest.is_none() {
        store::write_tree(req.dir, &changes.put, &Tree::new())?
    } else {
        store::journal::apply(req.dir, &changes)?
    };
    // Every file is now as the new manifest says: from this moment on, a
    // change is an edit from outside.
    trust::advance_checked(req.pins, req.dir, &head, lock.stamp_after_writes())?;
    trace.mark("write", "");
    Ok(outcome(report))
}

/// Say which identity a command acts with (on stderr: stdout may be JSON).
pub fn announce(identity: &Identity, created: bool) {
    let what = if created { "created identity" } else { "identity" };
    eprintln!("clan-nats: {what} {} ({})", identity.path, identity.recipients.first().map_or("", String::as_str));
}

/// Read DIR and check it for a command that writes (see [`trust`]): the tree,
/// its manifest and governance, all verified against this machine's pin.
fn open_for_write(dir: &Utf8Path, pins: &Pins) -> Result<(Tree, Manifest, Governance), Error> {
    let tree = store::read_tree(dir)?;
    if tree.is_empty() {
        return Err(Error::Usage(format!("{dir}: no store here (missing or empty)")));
    }
    trust::check_whole_for_write(dir, &tree, pins)?;
    let m = manifest_of(dir, &tree)?;
    let g = Governance::from_tree(&tree)?.ok_or_else(|| Error::Usage(format!("{dir}: no governance")))?;
    Ok((tree, m, g))
}

/// One audit entry to append: who, what, the details.
struct Entry<'a> {
    actor: String,
    action: &'a str,
    details: serde_json::Value,
}

/// Append one audit entry to a verified store and write it, advancing the pin.
fn append_audit(
    dir: &Utf8Path,
    tree: &Tree,
    mut g: Governance,
    op: &KeyPair,
    e: Entry,
    now: i64,
    pins: &mut Pins,
) -> Result<(), Error> {
    g.record(op, now, &e.actor, e.action, e.details, &tree[MANIFEST]);
    let mut new = tree.clone();
    new.extend(g.to_files());
    store::write_tree(dir, &new, tree)?;
    trust::advance(pins, dir, &new)
}

fn summary(changes: &store::Changes, mut details: serde_json::Value) -> serde_json::Value {
    let changed = changes.put.keys().filter(|k| !k.starts_with("governance/")).count();
    let removed = changes.remove.iter().filter(|k| !k.starts_with("governance/")).count();
    if let Some(o) = details.as_object_mut() {
        o.insert("files_changed".into(), changed.into());
        o.insert("files_removed".into(), removed.into());
    }
    details
}

/// A file the signed manifest vouches for turned out different: the store is refused.
fn untrusted(dir: &Utf8Path, e: GenerateError) -> Error {
    match e {
        GenerateError::Tampered(p) => Error::Untrusted { dir: dir.to_string(), problems: vec![p] },
        other => other.into(),
    }
}

/// [`operator_key`] of a store read on demand.
fn operator_key_of(existing: &Existing, m: &Manifest, identity: &Identity) -> Result<KeyPair, Error> {
    let entry = m.key("operator", "", "").ok_or_else(|| Error::Usage("the store has no operator key".into()))?;
    let ct = existing.read(&entry.path)?.ok_or_else(|| Error::Usage(format!("{}: missing", entry.path)))?;
    operator_seed(&ct, &entry.path, identity)
}

/// [`operator_key`] of a store just built (a new one: its keys are all new).
fn operator_key_of_built(built: &generate::Built, identity: &Identity) -> Result<KeyPair, Error> {
    operator_key(&built.files, &built.manifest, identity)
}

/// The operator identity key, which only the owner (and admins) can decrypt.
pub fn operator_key(tree: &Tree, m: &Manifest, identity: &Identity) -> Result<KeyPair, Error> {
    let entry = m.key("operator", "", "").ok_or_else(|| Error::Usage("the store has no operator key".into()))?;
    let ct = tree.get(&entry.path).ok_or_else(|| Error::Usage(format!("{}: missing", entry.path)))?;
    operator_seed(ct, &entry.path, identity)
}

fn operator_seed(ct: &[u8], path: &str, identity: &Identity) -> Result<KeyPair, Error> {
    let plain = identity.decrypt(ct).map_err(|_| {
        GovernanceError::NotMaster(format!("{} cannot decrypt the operator key ({path})", identity.path))
    })?;
    KeyPair::from_seed(String::from_utf8_lossy(&plain).trim())
        .map_err(|e| Error::Usage(format!("{path}: not a seed: {e}")))
}

/// The role of an identity in a store.
pub fn role(gov: Option<&Governance>, tree: &Tree, m: Option<&Manifest>, identity: Option<&Identity>) -> &'static str {
    let (Some(g), Some(id)) = (gov, identity) else { return "none" };
    let can_sign = m.is_some_and(|m| operator_key(tree, m, id).is_ok());
    if id.recipients.contains(&g.ownership.owner_recipient) && can_sign {
        "master"
    } else if g.active().any(|mem| id.recipients.contains(&mem.recipient)) {
        "specialist"
    } else {
        "none"
    }
}

/// `team add`: validate the member, then add it (an active member of that id is
/// replaced; a removed one stays in the history).
pub fn add_member(g: &mut Governance, m: &Manifest, member: Member) -> Result<serde_json::Value, Error> {
    check_member(g, m, &member, true)?;
    let details =
        serde_json::json!({"id": member.id, "name": member.name, "units": member.units, "recipient": member.recipient});
    g.ownership.team_members.retain(|x| x.id != member.id || !x.active);
    g.ownership.team_members.push(member);
    Ok(details)
}

fn check_member(g: &Governance, m: &Manifest, member: &Member, check_recipient: bool) -> Result<(), Error> {
    if check_recipient {
        vault::parse_recipient(&member.recipient).map_err(|e| Error::Usage(format!("--recipient: {e}")))?;
    }
    let known: std::collections::BTreeSet<&str> = m.units.iter().map(|u| u.name.as_str()).collect();
    if member.units.is_empty() {
        return Err(Error::Usage("--units: name at least one unit".into()));
    }
    for u in &member.units {
        if !known.contains(u.as_str()) {
            return Err(Error::Usage(format!(
                "--units: unknown unit {u:?} (units: {})",
                known.iter().copied().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    if member.id.trim().is_empty() || member.id.chars().any(char::is_control) {
        return Err(Error::Usage(format!("--id {:?} is not a valid member id", member.id)));
    }
    if check_recipient {
        if member.recipient == g.ownership.owner_recipient {
            return Err(Error::Usage("that recipient is the owner's".into()));
        }
        if g.ownership.team_members.iter().any(|x| x.active && x.id != member.id && x.recipient == member.recipient) {
            return Err(Error::Usage("that recipient already belongs to another active member".into()));
        }
    }
    Ok(())
}

/// `team remove`: keep the member in the history, inactive. Returns the users
/// whose creds the member could read.
pub fn remove_member(g: &mut Governance, m: &Manifest, id: &str) -> Result<(serde_json::Value, Vec<String>), Error> {
    let member = g
        .ownership
        .team_members
        .iter_mut()
        .find(|x| x.id == id && x.active)
        .ok_or_else(|| Error::Usage(format!("no active team member {id:?}")))?;
    member.active = false;
    let covered = governance::covered_units(&member.units, &m.unit_parents());
    let readable: Vec<String> = m
        .accounts
        .iter()
        .flat_map(|a| &a.users)
        .filter(|u| covered.contains(&u.unit))
        .map(|u| u.name.clone())
        .collect();
    Ok((serde_json::json!({"id": id, "could_read": readable}), readable))
}

/// What `team remove` did.
pub struct Removal {
    pub outcome: Outcome,
    /// The users whose creds the member could read (their copies stay valid until rotated).
    pub could_read: Vec<String>,
    /// The users rotated (all of `could_read` with `rotate`, else none).
    pub rotated: Vec<String>,
}

/// `team remove`: mark the member inactive and re-encrypt without them; with
/// `rotate`, then give every user whose creds they could read a new key, in
/// one more write (revoking the old keys, so kept copies stop working).
pub fn team_remove(req: Request, id: &str, rotate: bool) -> Result<Removal, Error> {
    let readable = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let seen = readable.clone();
    let target = id.to_string();
    let Request { config, dir, identity, allow_insecure_fixture_keys, clan_dir, now, pins, confirm, .. } = req;
    let outcome = reconcile(
        Request {
            config,
            dir,
            identity,
            admins: None,
            rotate: None,
            imported: None,
            action: "team-remove",
            format: None,
            now,
            pins: &mut *pins,
            confirm: &mut *confirm,
            dry_run: false,
            new_identity: false,
            allow_insecure_fixture_keys,
            clan_dir,
        },
        Some(Box::new(move |g, m| {
            let (details, users) = remove_member(g, m, &target)?;
            *seen.borrow_mut() = users;
            Ok(details)
        })),
    )?;
    let could_read = readable.borrow().clone();
    let rotated = if rotate && !could_read.is_empty() {
        reconcile(
            Request {
                config,
                dir,
                identity,
                admins: None,
                rotate: Some(Rotation::Users(could_read.clone())),
                imported: None,
                action: "rotate",
                format: None,
                now,
                pins,
                confirm,
                dry_run: false,
                new_identity: false,
                allow_insecure_fixture_keys,
                clan_dir,
            },
            None,
        )?;
        could_read.clone()
    } else {
        Vec::new()
    };
    Ok(Removal { outcome, could_read, rotated })
}

/// `export-nsc`: verify the store, write the plaintext nsc tree to `to`, and
/// record the export in the audit log (owner only: the entry is signed with
/// the operator key). No local path is recorded: the log is committed.
/// Returns the number of files exported and the stale plaintext exports of
/// interrupted runs that were removed.
pub fn export_nsc(
    dir: &Utf8Path,
    identity: &Identity,
    to: &Utf8Path,
    now: i64,
    pins: &mut Pins,
) -> Result<(usize, Vec<Utf8PathBuf>), Error> {
    let _lock = store::lock(dir)?;
    let (tree, m, g) = open_for_write(dir, pins)?;
    let op = operator_key(&tree, &m, identity)?;
    let export = crate::nsc::export_tree(&tree, identity)?;
    let stale = crate::nsc::write_private(to, &export)?;
    let actor = actor(&g, identity);
    let details = serde_json::json!({"what": "export-nsc", "files": export.len()});
    append_audit(dir, &tree, g, &op, Entry { actor, action: "key-export", details }, now, pins)?;
    Ok((export.len(), stale))
}

fn actor(g: &Governance, identity: &Identity) -> String {
    if identity.recipients.contains(&g.ownership.owner_recipient) {
        g.ownership.owner_id.clone()
    } else {
        format!("admin:{}", identity.recipients[0])
    }
}

fn manifest_of(dir: &Utf8Path, tree: &Tree) -> Result<Manifest, Error> {
    if !tree.contains_key(MANIFEST) {
        return Err(Error::Usage(format!("{dir}: not a clan-nats store (no {MANIFEST})")));
    }
    Manifest::from_tree(tree).map_err(|e| Error::Usage(format!("{dir}/{e}")))
}

/// `vault request-key`: the seed of one key, for the owner only. Anyone else
/// cannot decrypt the keystore, whatever flags or files they change.
pub fn request_key(
    dir: &Utf8Path,
    identity: &Identity,
    name: &str,
    now: i64,
    pins: &mut Pins,
) -> Result<String, Error> {
    let (tree, m, g) = open_for_write(dir, pins)?;
    let op = operator_key(&tree, &m, identity)?;
    let (role, rest) = name.split_once(':').unwrap_or((name, ""));
    let entry = m
        .keys
        .iter()
        .find(|k| match role {
            "operator" | "operator-signing" => k.role == role && rest.is_empty(),
            "account" | "account-signing" => k.role == role && k.account == rest,
            "user" => k.role == "user" && k.user == rest,
            _ => k.public_key == name,
        })
        .ok_or_else(|| {
            Error::Usage(format!(
                "no key {name:?}: use operator, operator-signing, account:NAME, account-signing:NAME, user:NAME or a public key"
            ))
        })?;
    let plain = identity
        .decrypt(&tree[&entry.path])
        .map_err(|_| GovernanceError::NotMaster(format!("{} cannot decrypt {}", identity.path, entry.path)))?;
    let seed = String::from_utf8_lossy(&plain).trim().to_string();
    let kp = KeyPair::from_seed(&seed).map_err(|e| Error::Usage(format!("{}: not a seed: {e}", entry.path)))?;
    if kp.public_key() != entry.public_key {
        return Err(Error::Usage(format!("{}: the seed is not the key {}", entry.path, entry.public_key)));
    }
    let actor = actor(&g, identity);
    let details = serde_json::json!({"key": entry.public_key, "name": name});
    append_audit(dir, &tree, g, &op, Entry { actor, action: "key-export", details }, now, pins)?;
    Ok(seed)
}

/// `init`: the owner identity, the operator keys and governance in an empty DIR;
/// `generate` adopts them later. Returns (identity created, owner recipient).
pub fn init(
    dir: &Utf8Path,
    owner_id: &str,
    owner_name: &str,
    identity_path: &Utf8Path,
    now: i64,
    pins: &mut Pins,
) -> Result<(bool, String), Error> {
    if owner_id.trim().is_empty() {
        return Err(Error::Usage("--owner-id is empty".into()));
    }
    let _lock = store::lock(dir)?;
    let old = store::read_tree(dir)?;
    let strangers: Vec<String> = store::foreign_entries(dir)?.into_iter().filter(|n| !n.starts_with('.')).collect();
    if !old.is_empty() || !strangers.is_empty() {
        return Err(Error::Usage(format!("{dir}: not empty; init only starts a new store")));
    }
    let (identity, created) = Identity::load_or_create(identity_path)?;
    announce(&identity, created);
    let owner = vault::parse_recipient(&identity.recipients[0])?;
    let mut tree = Tree::new();
    let mut keys = Vec::new();
    let mut secrets = std::collections::BTreeMap::new();
    let (op, sk) = (KeyPair::new_operator(), KeyPair::new_operator());
    for (kp, role) in [(&op, "operator"), (&sk, "operator-signing")] {
        let seed = kp.seed().map_err(|e| Error::Usage(e.to_string()))?;
        let path = store::key_path(&kp.public_key());
        tree.insert(path.clone(), vault::encrypt(seed.as_bytes(), &[&owner])?);
        secrets.insert(
            path.clone(),
            crate::manifest::SecretEntry {
                kind: "seed".into(),
                recipients: vec!["owner".into()],
                recipients_sha256: crate::manifest::recipients_digest(&[owner.text.as_str()]),
                plaintext_sha256: crate::manifest::sha256_hex(seed.as_bytes()),
            },
        );
        keys.push(crate::manifest::KeyEntry {
            public_key: kp.public_key(),
            role: role.into(),
            account: String::new(),
            user: String::new(),
            path,
        });
    }
    let mut manifest = Manifest {
        format: crate::manifest::FORMAT,
        generator: "clan-nats".into(),
        layout: crate::store::Format::Nsc,
        operator: crate::manifest::OperatorEntry {
            name: String::new(),
            public_key: op.public_key(),
            signing_keys: vec![sk.public_key()],
            system_account: String::new(),
            jwt: String::new(),
        },
        accounts: vec![],
        units: vec![],
        flows: vec![],
        hosts: vec![],
        recipients: [("owner".to_string(), owner.text.clone())].into_iter().collect(),
        keys,
        secrets,
        files: tree.iter().map(|(k, v)| (k.clone(), crate::manifest::file_digest(v))).collect(),
        server_inputs: String::new(),
    };
    for (path, bytes) in manifest.to_files() {
        tree.insert(path, bytes);
    }
    let mut g = Governance::init(owner_id, owner_name, &owner.text, &op, now);
    let details = serde_json::json!({"org_id": g.ownership.org_id, "owner_recipient": owner.text});
    g.record(&op, now, owner_id, "init", details, &tree[MANIFEST]);
    tree.extend(g.to_files());
    // Pinned before it is written: see `reconcile`.
    trust::advance(pins, dir, &tree)?;
    store::write_tree(dir, &tree, &old)?;
    Ok((created, owner.text))
}

/// `team invite`: a token signed by the owner, recorded in the audit log.
#[allow(clippy::too_many_arguments)] // one per flag of `team invite`, plus the clock and the pins
pub fn invite(
    dir: &Utf8Path,
    identity: &Identity,
    member_id: &str,
    name: &str,
    units: &[String],
    expires_in: i64,
    now: i64,
    pins: &mut Pins,
) -> Result<(String, Invite), Error> {
    let _lock = store::lock(dir)?;
    let (tree, m, g) = open_for_write(dir, pins)?;
    let op = operator_key(&tree, &m, identity)?;
    // The same checks as `team add`, on a scratch copy.
    let probe = Member {
        id: member_id.into(),
        name: name.into(),
        role: governance::record::SPECIALIST.into(),
        recipient: String::new(),
        units: units.to_vec(),
        added_at: String::new(),
        active: true,
    };
    check_member(&g, &m, &probe, false)?;
    let invite = Invite {
        org_id: g.ownership.org_id.clone(),
        operator: op.public_key(),
        member_id: member_id.into(),
        name: name.into(),
        units: units.to_vec(),
        issued_at: now,
        expires: now + expires_in,
        nonce: uuid::Uuid::new_v4().simple().to_string(),
    };
    let token = invite.sign(&op);
    let actor = actor(&g, identity);
    let details = serde_json::json!({"member_id": member_id, "units": units, "expires": governance::rfc3339(invite.expires), "invite_nonce": invite.nonce});
    append_audit(dir, &tree, g, &op, Entry { actor, action: "team-invite", details }, now, pins)?;
    Ok((token, invite))
}

/// `team join`, on the specialist's machine: check the token and answer it.
/// Returns (join request, the recipient's fingerprint, the invite, identity created).
pub fn join(token: &str, identity_path: &Utf8Path, now: i64) -> Result<(String, String, Invite, bool), Error> {
    let invite = Invite::open(token).map_err(|e| Error::Denied(format!("invite rejected: {e}")))?;
    if now > invite.expires {
        return Err(Error::Denied(format!("invite rejected: it expired at {}", governance::rfc3339(invite.expires))));
    }
    let (identity, created) = Identity::load_or_create(identity_path)?;
    let recipient = identity.recipients[0].clone();
    let request = JoinRequest { token: token.trim().to_string(), recipient: recipient.clone() }.encode();
    Ok((request, fingerprint(&recipient), invite, created))
}

/// `team accept`: every check first (signature, organization, expiry, reuse,
/// fingerprint), then exactly what `team add` does.
pub fn accept(
    dir: &Utf8Path,
    request: &str,
    identity_path: &Utf8Path,
    confirm: &mut dyn FnMut(&JoinRequest, &Invite, &str) -> Result<bool, Error>,
    now: i64,
    pins: &mut Pins,
) -> Result<(Outcome, Invite), Error> {
    let deny = |why: String| Error::Denied(format!("join request rejected: {why}; nothing was changed"));
    let req = JoinRequest::decode(request).map_err(|e| deny(e.to_string()))?;
    let invite = Invite::open(&req.token).map_err(|e| deny(e.to_string()))?;
    let (_, m, g) = open_for_write(dir, pins)?;
    if invite.operator != m.operator.public_key || invite.org_id != g.ownership.org_id {
        return Err(deny(format!(
            "the token is from another organization (org {}, operator {}), not this one (org {}, operator {})",
            invite.org_id, invite.operator, g.ownership.org_id, m.operator.public_key
        )));
    }
    if now > invite.expires {
        return Err(deny(format!("the token expired at {}", governance::rfc3339(invite.expires))));
    }
    if g.audit.has_nonce(&invite.nonce) {
        return Err(deny("the token was used before".into()));
    }
    let issued = g.audit.entries.iter().any(|e| {
        e.action == "team-invite"
            && e.details.get("invite_nonce").and_then(|n| n.as_str()) == Some(invite.nonce.as_str())
    });
    if !issued {
        return Err(deny("this store's audit log has no such invitation".into()));
    }
    vault::parse_recipient(&req.recipient).map_err(|e| deny(e.to_string()))?;
    let fp = fingerprint(&req.recipient);
    if !confirm(&req, &invite, &fp)? {
        return Err(deny(format!("the fingerprint was not confirmed (the request's recipient has fingerprint {fp})")));
    }
    let member = Member {
        id: invite.member_id.clone(),
        name: invite.name.clone(),
        role: governance::record::SPECIALIST.into(),
        recipient: req.recipient.clone(),
        units: invite.units.clone(),
        added_at: governance::rfc3339(now),
        active: true,
    };
    let nonce = invite.nonce.clone();
    let r = Request {
        config: None,
        dir,
        identity: identity_path,
        admins: None,
        rotate: None,
        imported: None,
        action: "team-accept",
        format: None,
        now,
        pins,
        confirm: &mut |_, _| Ok(false),
        dry_run: false,
        new_identity: false,
        allow_insecure_fixture_keys: true,
        clan_dir: None,
    };
    let outcome = reconcile(
        r,
        Some(Box::new(move |g, m| {
            let mut details = add_member(g, m, member)?;
            details["nonce"] = nonce.into();
            Ok(details)
        })),
    )?;
    Ok((outcome, invite))
}

// ---- fleet (issue 11): push --------------------------------------------------

/// What `push` is asked to do.
#[derive(Clone, Copy)]
pub struct PushRequest<'a> {
    pub servers: &'a [String],
    pub dry_run: bool,
    pub timeout: std::time::Duration,
}

/// `push`: send the store's account JWTs to running servers ([`crate::fleet::push`]).
/// Owner only: the store is verified against its pin, the operator key must
/// decrypt with `identity`, and the `sys` creds are decrypted in memory only.
/// A real push (not `dry_run`) that sent anything is recorded in the audit log.
pub fn push(
    dir: &Utf8Path,
    identity: &Identity,
    req: &PushRequest,
    now: i64,
    pins: &mut Pins,
    progress: &mut dyn std::io::Write,
) -> Result<crate::fleet::push::Report, Error> {
    use crate::fleet::push::{self as live, Account, Options};
    let PushRequest { servers, dry_run, timeout } = *req;
    if servers.is_empty() {
        return Err(Error::Usage("push: give at least one --server URL".into()));
    }
    let (tree, m, g) = open_for_write(dir, pins)?;
    let op = operator_key(&tree, &m, identity)?;
    if !identity.recipients.contains(&g.ownership.owner_recipient) {
        return Err(Error::Denied(format!("{}: only the owner pushes account JWTs", identity.path)));
    }
    let sys = m
        .accounts
        .iter()
        .find(|a| a.system)
        .and_then(|a| a.users.iter().find(|u| u.name == plan::SYSTEM_USER))
        .ok_or_else(|| Error::Usage(format!("{dir}: the store has no system user")))?;
    let ct = tree.get(&sys.creds).ok_or_else(|| Error::Usage(format!("{}: missing", sys.creds)))?;
    let creds = identity
        .decrypt(ct)
        .map_err(|e| Error::Denied(format!("{}: cannot decrypt with {}: {e}", sys.creds, identity.path)))?;
    let creds = String::from_utf8(creds).map_err(|_| Error::Usage(format!("{}: not text", sys.creds)))?;
    let accounts = m
        .accounts
        .iter()
        .map(|a| {
            let jwt = tree.get(&a.jwt).ok_or_else(|| Error::Usage(format!("{}: missing", a.jwt)))?;
            Ok(Account {
                name: a.name.clone(),
                public_key: a.public_key.clone(),
                jwt: String::from_utf8_lossy(jwt).trim().to_string(),
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let expected: Vec<String> = if crate::fleet::server_dirs(&m).is_empty() {
        vec![]
    } else {
        m.hosts.iter().filter(|h| h.nats_server).map(|h| h.name.clone()).collect()
    };
    let opts = Options { servers, expected: &expected, dry_run, timeout };
    let report = live::push(&accounts, &creds, &opts, progress).map_err(Error::Live)?;
    if !dry_run && !report.pushed.is_empty() {
        let actor = actor(&g, identity);
        let details = serde_json::json!({
            "what": "push", "via": report.via, "pushed": report.pushed, "refused": report.refused,
            "unconfirmed": report.unconfirmed, "errors": report.errors,
        });
        append_audit(dir, &tree, g, &op, Entry { actor, action: "push", details }, now, pins)?;
    }
    Ok(report)
}

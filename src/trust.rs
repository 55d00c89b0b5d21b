//! Verify before write. The store lives in git, and whoever can push may edit
//! any file of it; so nothing read from DIR is used until it has been checked
//! against the owner's pin (see [`crate::store::pin`]), which lives outside DIR:
//!
//! - the store's operator is the pinned one, and every governance signature
//!   verifies with that key;
//! - the audit log extends the head this machine last saw (a shorter log or a
//!   fork is a rollback, refused, naming both heads);
//! - the last audit entry commits to this manifest and this ownership record;
//! - every file has the sha256 the (so committed) manifest gives it, and every
//!   secret's recipients are what the signed governance record allows.
//!
//! Recipients, keys, members and the config are then taken only from this
//! verified state. A tampered file is never laundered into a newly signed
//! manifest: the command refuses before anything is written.

use camino::Utf8Path;

use crate::error::Error;
use crate::generate::Existing;
use crate::governance::Governance;
use crate::manifest::Manifest;
use crate::store::pin::{Checked, Head, Pin, Pins};
use crate::store::{Tree, MANIFEST};
use crate::verify::{self, Report};

/// What a verified store is: whose, and how far its audit log goes.
#[derive(Debug, Clone)]
pub struct Verified {
    pub org_id: String,
    pub operator: String,
    pub head: Head,
}

/// Where the trusted operator key of a read came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// This machine's pin (with the head it last saw).
    Pinned(Pin),
    /// `--operator` on the command line.
    Given(String),
    /// Nothing outside the store: only self-consistency can be checked.
    Store,
}

impl Anchor {
    pub fn name(&self) -> &'static str {
        match self {
            Anchor::Pinned(_) => "pinned",
            Anchor::Given(_) => "given",
            Anchor::Store => "store",
        }
    }

    pub fn operator(&self) -> Option<&str> {
        match self {
            Anchor::Pinned(p) => Some(&p.operator),
            Anchor::Given(k) => Some(k),
            Anchor::Store => None,
        }
    }
}

/// The organization of a store, read (not yet trusted) to find its pin.
fn org_of(tree: &Tree) -> Result<Option<(Governance, Manifest)>, Error> {
    let Some(mbytes) = tree.get(MANIFEST) else { return Ok(None) };
    let Ok(m) = Manifest::parse(mbytes) else { return Ok(None) };
    let Ok(Some(g)) = Governance::from_tree(tree) else { return Ok(None) };
    Ok(Some((g, m)))
}

/// Problems of a store's audit log against the head this machine last saw.
pub fn head_problems(g: &Governance, pin: &Pin) -> Vec<String> {
    let entries = &g.audit.entries;
    let have = g.head().map_or_else(|| "no entry".to_string(), |h| h.to_string());
    let seen = pin.head();
    match usize::try_from(seen.seq).ok().and_then(|i| i.checked_sub(1)).and_then(|i| entries.get(i)) {
        None => vec![format!(
            "{}: the audit log ends at {have}, but this machine last saw {seen}: the store was rolled back \
             (an old checkout, a git revert or a truncated log)",
            crate::governance::AUDIT
        )],
        Some(e) if e.hash != seen.hash => vec![format!(
            "{}: the audit log forks from what this machine last saw: at seq {} it has {}, the pin has {} (its head is now {have})",
            crate::governance::AUDIT,
            seen.seq,
            e.hash,
            seen.hash
        )],
        Some(_) => vec![],
    }
}

/// Check DIR's root ([`crate::store::read_root`], or the whole tree) before a
/// command writes to it. No store at all (a new one) is `Ok(None)`. Anything else must be a store pinned on this machine, in
/// exactly the state its owner signed; otherwise nothing may be written (exit 3).
pub fn check_for_write(dir: &Utf8Path, tree: &Tree, pins: &Pins) -> Result<Option<Verified>, Error> {
    check(dir, tree, pins, false)
}

/// [`check_for_write`] of a whole tree ([`crate::store::read_tree`]): every file too.
pub fn check_whole_for_write(dir: &Utf8Path, tree: &Tree, pins: &Pins) -> Result<Option<Verified>, Error> {
    check(dir, tree, pins, true)
}

fn check(dir: &Utf8Path, tree: &Tree, pins: &Pins, whole: bool) -> Result<Option<Verified>, Error> {
    if tree.is_empty() && !crate::store::has_store_entries(dir) {
        // A new store may go into an empty directory, or one holding only
        // dotfiles (a `git init`-ed one); anything else is someone's data.
        let strangers: Vec<String> =
            crate::store::foreign_entries(dir)?.into_iter().filter(|n| !n.starts_with('.')).collect();
        if !strangers.is_empty() {
            return Err(crate::generate::GenerateError::Damaged(format!(
                "{dir} is not empty and holds no clan-nats store (it has {}); refusing to write a store into it: \
                 use an empty directory, or one that holds only dotfiles such as .git",
                strangers.join(", ")
            ))
            .into());
        }
        return Ok(None);
    }
    let Some((g, m)) = org_of(tree)? else {
        // Not even readable as a store: say what is wrong, in full.
        let mut r = Report::default();
        if tree.contains_key(MANIFEST) {
            verify::signed_state(tree, None, &mut r);
        }
        if !tree.contains_key(MANIFEST) {
            return Err(crate::generate::GenerateError::Damaged(format!(
                "{dir} is not empty and has no {MANIFEST}, so it is not a clan-nats store; refusing to overwrite it"
            ))
            .into());
        }
        if r.problems.is_empty() {
            r.problems.push(format!("{}: missing or unreadable", crate::governance::OWNERSHIP));
        }
        return Err(Error::Untrusted { dir: dir.to_string(), problems: r.problems });
    };
    let org_id = g.ownership.org_id.clone();
    let Some(pin) = pins.get(&org_id) else {
        return Err(Error::NotPinned {
            dir: dir.to_string(),
            org_id,
            operator: m.operator.public_key.clone(),
            pins: pins.path.to_string(),
            same_operator: pins.orgs_of(&m.operator.public_key).iter().map(|s| s.to_string()).collect(),
        });
    };
    let mut r = Report::default();
    if pin.operator != m.operator.public_key {
        r.problems.push(format!(
            "{MANIFEST}: the store's operator is {}, but this machine pinned organization {org_id} to operator {}: \
             the store was replaced by one under another operator key",
            m.operator.public_key, pin.operator
        ));
    }
    r.problems.extend(head_problems(&g, pin));
    if whole {
        verify::signed_state(tree, Some(&pin.operator), &mut r);
    } else {
        verify::signed_root(tree, Some(&pin.operator), &mut r);
    }
    if !r.problems.is_empty() {
        return Err(Error::Untrusted { dir: dir.to_string(), problems: r.problems });
    }
    let head = g.head().expect("a checked audit log has entries");
    Ok(Some(Verified { org_id, operator: pin.operator.clone(), head }))
}

/// The anchor for a command that only reads: the pin when this machine has one
/// for the store's organization, else an operator key given on the command
/// line, else the store's own key.
pub fn anchor_for_read(tree: &Tree, pins: &Pins, given: Option<&str>) -> Anchor {
    if let Some(k) = given {
        return Anchor::Given(k.to_string());
    }
    match org_of(tree) {
        Ok(Some((g, _))) => pins.get(&g.ownership.org_id).cloned().map_or(Anchor::Store, Anchor::Pinned),
        _ => Anchor::Store,
    }
}

/// Problems of a store read under `anchor` (the signed state plus, for a pin,
/// the head): what a read-only command refuses to show as trusted.
pub fn read_problems(tree: &Tree, anchor: &Anchor) -> Vec<String> {
    let mut r = Report::default();
    verify::signed_state(tree, anchor.operator(), &mut r);
    if let (Anchor::Pinned(pin), Ok(Some((g, _)))) = (anchor, org_of(tree)) {
        r.problems.extend(head_problems(&g, pin));
    }
    r.problems
}

/// After a write: remember the store's new head (and its operator) on this
/// machine, keeping the moment its files were last seen whole.
pub fn advance(pins: &mut Pins, dir: &Utf8Path, tree: &Tree) -> Result<(), Error> {
    advance_checked(pins, dir, tree, None)
}

fn canonical(dir: &Utf8Path) -> String {
    std::fs::canonicalize(dir).map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|_| dir.to_string())
}

/// [`advance`], and (with `since`) that every file of DIR unchanged since then
/// is as its signed manifest says.
pub fn advance_checked(pins: &mut Pins, dir: &Utf8Path, tree: &Tree, since: Option<i64>) -> Result<(), Error> {
    let Some((g, m)) = org_of(tree)? else { return Ok(()) };
    let Some(head) = g.head() else { return Ok(()) };
    let shown = canonical(dir);
    let checked = match since {
        Some(since) => Some(Checked { dir: shown.clone(), since }),
        None => pins.get(&g.ownership.org_id).and_then(|p| p.checked.clone()),
    };
    let pin = Pin { operator: m.operator.public_key, head_seq: head.seq, head_hash: head.hash, dir: shown, checked };
    pins.record(&g.ownership.org_id, pin).map_err(|e| {
        Error::Pin(format!("{dir} was written, but this machine could not record its new audit head: {e}"))
    })
}

/// Files of DIR edited outside clan-nats since this machine last saw the store
/// whole (`verified`'s pin), found from their inodes ([`crate::store::scan`])
/// and checked against the signed manifest: the problems, none if nothing
/// changed or everything that did is as the manifest says. Without a stamp for
/// this directory (a new clone), every file is checked. Returns whether
/// anything had changed (so a new stamp is worth recording).
pub fn edited(dir: &Utf8Path, pins: &Pins, v: &Verified, existing: &mut Existing) -> Result<bool, Error> {
    let since = pins
        .get(&v.org_id)
        .and_then(|p| p.checked.as_ref())
        .filter(|c| c.dir == canonical(dir))
        .map_or(i64::MIN, |c| c.since);
    let mut changed = crate::store::scan::changed_since(dir, since)?;
    let top =
        std::fs::symlink_metadata(dir).map_err(|e| crate::store::StoreError::Io { path: dir.to_owned(), source: e })?;
    if crate::store::scan::ctime_ns(&top) >= since {
        changed.dirs.insert(0, String::new());
    }
    if changed.is_empty() {
        return Ok(false);
    }
    // Something changed: open the whole manifest, and check what changed against it.
    let names = existing.manifest.iter().flat_map(|m| &m.accounts).map(|a| a.name.clone()).collect();
    let mut problems = Vec::new();
    if let Err(e) = existing.load(&names) {
        problems.push(e.to_string());
        return Err(Error::Untrusted { dir: dir.to_string(), problems });
    }
    let m = existing.manifest.as_ref().expect("a verified store has a manifest");
    let mut known: std::collections::BTreeSet<String> = m.files.keys().cloned().collect();
    known.extend(m.accounts.iter().map(|a| a.manifest.clone()).filter(|p| !p.is_empty()));
    known.insert(MANIFEST.to_string());
    for f in &changed.files {
        if f == MANIFEST || f.starts_with("governance/") || known.contains(f) && f.starts_with("manifest.d/") {
            continue; // checked by the signatures, or when loaded
        }
        match existing.read(f) {
            Ok(Some(_)) => {}
            Ok(None) => problems.push(format!("{f}: not listed in the signed manifest (unexpected file)")),
            Err(e) => problems.push(e.to_string()),
        }
    }
    for d in &changed.dirs {
        if d == "governance" {
            continue;
        }
        let prefix = if d.is_empty() { String::new() } else { format!("{d}/") };
        let expected: std::collections::BTreeSet<&str> = known
            .range(prefix.clone()..)
            .take_while(|p| p.starts_with(&prefix))
            .filter_map(|p| p[prefix.len()..].split('/').next())
            .collect();
        let path = if d.is_empty() { dir.to_owned() } else { dir.join(d) };
        let mut actual = std::collections::BTreeSet::new();
        for e in std::fs::read_dir(&path).map_err(|e| crate::store::StoreError::Io { path: path.clone(), source: e })? {
            let name = e.map_err(|e| crate::store::StoreError::Io { path: path.clone(), source: e })?.file_name();
            let name = name.to_string_lossy().into_owned();
            if d.is_empty() && (!crate::store::tree::is_managed(&name) || name == "governance") {
                continue;
            }
            actual.insert(name);
        }
        for name in actual.iter().filter(|n| !expected.contains(n.as_str())) {
            problems.push(format!("{prefix}{name}: not part of the store the manifest lists (unexpected file)"));
        }
        for name in expected.iter().filter(|n| !actual.contains(**n)) {
            problems.push(format!("{prefix}{name}: listed in the signed manifest but missing"));
        }
    }
    if !problems.is_empty() {
        problems.sort();
        problems.dedup();
        return Err(Error::Untrusted { dir: dir.to_string(), problems });
    }
    Ok(true)
}

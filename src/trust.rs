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
use crate::governance::Governance;
use crate::manifest::Manifest;
use crate::store::pin::{Head, Pin, Pins};
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

/// After a write: remember the store's new head (and its operator) on this machine.
pub fn advance(pins: &mut Pins, dir: &Utf8Path, tree: &Tree) -> Result<(), Error> {
    let Some((g, m)) = org_of(tree)? else { return Ok(()) };
    let Some(head) = g.head() else { return Ok(()) };
    let shown =
        std::fs::canonicalize(dir).map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|_| dir.to_string());
    let pin = Pin { operator: m.operator.public_key, head_seq: head.seq, head_hash: head.hash, dir: shown };
    pins.record(&g.ownership.org_id, pin).map_err(|e| {
        Error::Pin(format!("{dir} was written, but this machine could not record its new audit head: {e}"))
    })
}

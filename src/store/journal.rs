//! Writing a change into an existing store without copying it. The new files
//! are staged beside DIR (`.<DIR>.clan-nats-journal/new/`), then a journal that
//! names every rename and removal is made durable: that is the commit point.
//! Then the renames run, the root manifest last, and the journal is removed.
//!
//! A run killed before the commit leaves DIR untouched (the stage is removed
//! by the next run); one killed after it leaves a journal, and the next
//! clan-nats command on DIR finishes it first, under the store's lock
//! ([`super::lock`]). So every clan-nats reader sees the old store or the new
//! one, and a write costs what changed: unchanged files are not touched at all.
//!
//! Why not swap a whole new tree in (as before): that needs every unchanged
//! file linked into the new tree and the old tree unlinked afterwards, two
//! syscalls per file of the store on every write, 30,000 of them for one
//! edited user of a 10,000-user store.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

use camino::{Utf8Path, Utf8PathBuf};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::tree::{io_err, needs_chmod, parent_dirs, parent_of, set_mode, sync_filesystem, write_file, DIR_MODE};
use super::{StoreError, Tree, WriteReport, MANIFEST};

/// A change to a store: files to write (whole content) and files to remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub put: Tree,
    pub remove: BTreeSet<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.put.is_empty() && self.remove.is_empty()
    }

    /// The change that turns `old` into `new` (both whole trees).
    pub fn between(old: &Tree, new: &Tree) -> Changes {
        Changes {
            put: new.iter().filter(|(k, v)| old.get(*k) != Some(*v)).map(|(k, v)| (k.clone(), v.clone())).collect(),
            remove: old.keys().filter(|k| !new.contains_key(*k)).cloned().collect(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Journal {
    /// Staged file number → path in DIR, the root manifest last.
    puts: Vec<(usize, String)>,
    remove: Vec<String>,
    /// sha256 of DIR's root manifest before and after: the journal applies
    /// only to a DIR in one of these states.
    base: String,
    head: String,
}

/// `.<DIR>.clan-nats-journal` beside DIR.
pub fn journal_dir(dir: &Utf8Path) -> Utf8PathBuf {
    parent_of(dir).join(format!(".{}.clan-nats-journal", dir.file_name().unwrap_or("store")))
}

fn manifest_digest(dir: &Utf8Path) -> Result<String, StoreError> {
    match fs::read(dir.join(MANIFEST)) {
        Ok(b) => Ok(crate::manifest::sha256_hex(&b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(io_err(&dir.join(MANIFEST))(e)),
    }
}

/// Apply `changes` to the existing store `dir` (the caller holds its lock).
pub fn apply(dir: &Utf8Path, changes: &Changes) -> Result<WriteReport, StoreError> {
    if changes.is_empty() {
        return Ok(WriteReport::default());
    }
    super::tree::clean_leftovers(dir)?;
    let txn = journal_dir(dir);
    if txn.exists() {
        // Not committed (a committed one was finished when the lock was taken).
        fs::remove_dir_all(&txn).map_err(io_err(&txn))?;
    }
    let staged = txn.join("new");
    for d in [&txn, &staged] {
        fs::DirBuilder::new().mode(0o700).create(d).map_err(io_err(d))?;
    }
    let result = stage_and_commit(dir, &txn, changes);
    if result.is_err() {
        // Before the commit point: DIR is untouched; leave nothing beside it.
        if !txn.join("journal").exists() {
            let _ = fs::remove_dir_all(&txn);
        }
    }
    let journal = result?;
    roll_forward(dir, &txn, &journal)?;
    Ok(WriteReport {
        swapped: true,
        written: changes.put.keys().cloned().collect(),
        removed: changes.remove.iter().cloned().collect(),
    })
}

/// Up to this many files a write flushes file by file (fsync); beyond, the
/// whole filesystem at once (syncfs), which also flushes what other programs
/// wrote to it: a cost a small change should not pay on a busy disk.
const FSYNC_EACH: usize = 256;

fn fsync(path: &Utf8Path) -> Result<(), StoreError> {
    fs::File::open(path).and_then(|f| f.sync_all()).map_err(io_err(path))
}

fn stage_and_commit(dir: &Utf8Path, txn: &Utf8Path, changes: &Changes) -> Result<Journal, StoreError> {
    let chmod = needs_chmod();
    let mut puts: Vec<(usize, String)> = changes.put.keys().cloned().enumerate().collect();
    // The root manifest last: a DIR with the new root has every new file.
    puts.sort_by_key(|(_, p)| p == MANIFEST);
    let each = puts.len() <= FSYNC_EACH;
    puts.par_iter()
        .map(|(i, rel)| {
            let path = txn.join("new").join(i.to_string());
            write_file(&path, &changes.put[rel], chmod)?;
            if each {
                fsync(&path)?;
            }
            Ok(())
        })
        .collect::<Result<(), StoreError>>()?;
    let base = manifest_digest(dir)?;
    let head = changes.put.get(MANIFEST).map_or_else(|| base.clone(), |b| crate::manifest::sha256_hex(b));
    let journal = Journal { puts, remove: changes.remove.iter().cloned().collect(), base, head };
    if each {
        fsync(&txn.join("new"))?;
    } else {
        sync_filesystem(txn)?;
    }
    let tmp = txn.join("journal.tmp");
    let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(io_err(&tmp))?;
    f.write_all(&serde_json::to_vec(&journal).expect("journal serializes")).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    let path = txn.join("journal");
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    fs::File::open(txn).and_then(|d| d.sync_all()).map_err(io_err(txn))?;
    Ok(journal)
}

/// Do what a committed journal says (again, if a killed run did part of it).
fn roll_forward(dir: &Utf8Path, txn: &Utf8Path, j: &Journal) -> Result<(), StoreError> {
    let staged = txn.join("new");
    for d in &parent_dirs(j.puts.iter().map(|(_, p)| p)) {
        let path = dir.join(d);
        match fs::DirBuilder::new().mode(DIR_MODE).create(&path) {
            Ok(()) => set_mode(&path, DIR_MODE)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err(&path)(e)),
        }
    }
    let rename = |(i, rel): &(usize, String)| -> Result<(), StoreError> {
        let src = staged.join(i.to_string());
        match fs::rename(&src, dir.join(rel)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && !src.exists() => Ok(()), // done before
            other => other.map_err(io_err(&dir.join(rel))),
        }
    };
    let (root, rest): (Vec<_>, Vec<_>) = j.puts.iter().partition(|(_, p)| p == MANIFEST);
    rest.par_iter().map(|p| rename(p)).collect::<Result<(), _>>()?;
    root.iter().try_for_each(|p| rename(p))?;
    for rel in &j.remove {
        let path = dir.join(rel);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(&path)(e)),
            _ => {}
        }
    }
    // Directories left empty, deepest first (a non-empty one stays).
    for d in parent_dirs(j.remove.iter()).iter().rev() {
        let _ = fs::remove_dir(dir.join(d));
    }
    // The renames and removals are durable once their directories (and DIR) are.
    let touched = parent_dirs(j.puts.iter().map(|(_, p)| p).chain(&j.remove));
    if touched.len() < FSYNC_EACH {
        for d in touched.iter().map(|d| dir.join(d)).chain([dir.to_owned()]).filter(|d| d.is_dir()) {
            fsync(&d)?;
        }
    } else {
        sync_filesystem(dir)?;
    }
    fs::remove_dir_all(txn).map_err(io_err(txn))?;
    if let Ok(f) = fs::File::open(parent_of(dir)) {
        let _ = f.sync_all();
    }
    Ok(())
}

/// Finish or discard what a killed write left beside `dir` (the caller holds
/// its lock). Returns the number of files of a finished write.
pub fn recover(dir: &Utf8Path) -> Result<Option<usize>, StoreError> {
    let txn = journal_dir(dir);
    if !txn.exists() {
        return Ok(None);
    }
    let path = txn.join("journal");
    let journal: Option<Journal> = match fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).ok(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(&path)(e)),
    };
    let now = manifest_digest(dir)?;
    match journal {
        Some(j) if now == j.base || now == j.head => {
            roll_forward(dir, &txn, &j)?;
            Ok(Some(j.puts.len() + j.remove.len()))
        }
        // Not committed, or for a DIR that has since been replaced: nothing of it applies.
        _ => {
            fs::remove_dir_all(&txn).map_err(io_err(&txn))?;
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(items: &[(&str, &str)]) -> Tree {
        items.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
    }

    fn store() -> (tempfile::TempDir, Utf8PathBuf, Tree) {
        let base = tempfile::tempdir().unwrap();
        let dir = Utf8PathBuf::from_path_buf(base.path().join("store")).unwrap();
        let old = tree(&[("manifest.json", "old root"), ("nsc/a/u.jwt", "u1"), ("nsc/b/v.jwt", "v1")]);
        super::super::write_tree(&dir, &old, &Tree::new()).unwrap();
        (base, dir, old)
    }

    fn change() -> Changes {
        Changes {
            put: tree(&[("manifest.json", "new root"), ("nsc/a/u.jwt", "u2"), ("nsc/c/w.jwt", "w1")]),
            remove: ["nsc/b/v.jwt".to_string()].into(),
        }
    }

    fn new_tree() -> Tree {
        tree(&[("manifest.json", "new root"), ("nsc/a/u.jwt", "u2"), ("nsc/c/w.jwt", "w1")])
    }

    #[test]
    fn a_change_writes_only_what_changed_and_leaves_nothing_beside() {
        let (base, dir, _) = store();
        let r = apply(&dir, &change()).unwrap();
        assert_eq!(r.written, ["manifest.json", "nsc/a/u.jwt", "nsc/c/w.jwt"]);
        assert_eq!(r.removed, ["nsc/b/v.jwt"]);
        assert_eq!(super::super::read_tree(&dir).unwrap(), new_tree());
        assert!(!dir.join("nsc/b").exists(), "an emptied directory is removed");
        let names: Vec<_> = fs::read_dir(base.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(names.iter().all(|n| !n.to_string_lossy().contains("journal")), "{names:?}");
    }

    /// A run killed after the commit point, at any step of the renames: the
    /// next one (taking the lock) finishes it; killed before, nothing applies.
    #[test]
    fn a_killed_write_is_finished_after_its_commit_and_dropped_before() {
        for renamed in 0..=3 {
            let (_base, dir, _) = store();
            let txn = journal_dir(&dir);
            fs::create_dir_all(txn.join("new")).unwrap();
            let j = stage_and_commit(&dir, &txn, &change()).unwrap();
            // The first `renamed` renames happened, then the process died.
            for (i, rel) in j.puts.iter().take(renamed) {
                fs::create_dir_all(dir.join(rel).parent().unwrap()).unwrap();
                fs::rename(txn.join("new").join(i.to_string()), dir.join(rel)).unwrap();
            }
            assert_eq!(recover(&dir).unwrap(), Some(4), "after {renamed} rename(s)");
            assert_eq!(super::super::read_tree(&dir).unwrap(), new_tree(), "after {renamed} rename(s)");
            assert!(!txn.exists());
        }
        // Staged but not committed: the old store stays, the stage goes.
        let (_base, dir, old) = store();
        let txn = journal_dir(&dir);
        fs::create_dir_all(txn.join("new")).unwrap();
        stage_and_commit(&dir, &txn, &change()).unwrap();
        fs::remove_file(txn.join("journal")).unwrap();
        assert_eq!(recover(&dir).unwrap(), None);
        assert_eq!(super::super::read_tree(&dir).unwrap(), old);
        assert!(!txn.exists());
    }

    /// A journal for a DIR that was replaced since (restored from git to some
    /// other state) does not apply to it.
    #[test]
    fn a_journal_of_another_state_is_dropped() {
        let (_base, dir, _) = store();
        let txn = journal_dir(&dir);
        fs::create_dir_all(txn.join("new")).unwrap();
        stage_and_commit(&dir, &txn, &change()).unwrap();
        fs::write(dir.join("manifest.json"), "someone else's root").unwrap();
        assert_eq!(recover(&dir).unwrap(), None);
        assert_eq!(fs::read_to_string(dir.join("nsc/a/u.jwt")).unwrap(), "u1");
        assert!(!txn.exists());
    }

    /// Any reader finishes an interrupted write before it reads.
    #[test]
    fn a_reader_sees_the_finished_write() {
        let (_base, dir, _) = store();
        let txn = journal_dir(&dir);
        fs::create_dir_all(txn.join("new")).unwrap();
        stage_and_commit(&dir, &txn, &change()).unwrap();
        assert_eq!(super::super::read_tree(&dir).unwrap(), new_tree());
    }
}

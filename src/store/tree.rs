//! The store as a map of relative path → bytes, read from and written to disk
//! atomically: a new store is built beside DIR and renamed into place; a
//! change to an existing one goes through the journal of [`super::journal`].
//! Either way DIR is the old store or the new one to every clan-nats reader,
//! whatever moment the process dies at.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

use camino::{Utf8Path, Utf8PathBuf};

/// Relative path (`/`-separated) → content. Every file is 0644, every directory 0755.
pub type Tree = BTreeMap<String, Vec<u8>>;

pub const FILE_MODE: u32 = 0o644;
pub const DIR_MODE: u32 = 0o755;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: Utf8PathBuf, source: io::Error },
    #[error("{0}: is a symbolic link; a store holds only plain files and directories")]
    Symlink(Utf8PathBuf),
    #[error("{0}: file name is not UTF-8")]
    NotUtf8(String),
    #[error("{holder} is writing {dir}; try again when it has finished")]
    Locked { dir: Utf8PathBuf, holder: String },
}

pub(super) fn io_err(path: &Utf8Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_owned(), source }
}

/// What a write did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// False when DIR already held exactly this tree: nothing was touched.
    pub swapped: bool,
    /// Files whose content is new (written), sorted.
    pub written: Vec<String>,
    /// Files that existed before and are gone now, sorted.
    pub removed: Vec<String>,
}

/// The top-level names a store owns. Everything else in DIR (`.git`, a
/// `README.md`, a `notes/` folder, any dotfile) is the user's: never read,
/// never removed, carried over unchanged (same inodes) by every write.
pub const MANAGED: [&str; 7] = ["manifest.json", "manifest.d", "config.json", "governance", "nsc", "server", "nats"];

/// Is a top-level name of DIR one the store owns?
pub fn is_managed(top: &str) -> bool {
    MANAGED.contains(&top)
}

/// The top-level entries of `dir` that are not the store's, sorted.
pub fn foreign_entries(dir: &Utf8Path) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(dir)(e)),
        Ok(e) => e,
    };
    for e in entries {
        let e = e.map_err(io_err(dir))?;
        let name = e
            .file_name()
            .to_str()
            .map(str::to_string)
            .ok_or_else(|| StoreError::NotUtf8(format!("{dir}/{}", e.file_name().to_string_lossy())))?;
        if !is_managed(&name) {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// Read every file of the store in `dir` (the [`MANAGED`] entries; the
/// user's files beside them are not read). A missing `dir` is an empty tree.
pub fn read_tree(dir: &Utf8Path) -> Result<Tree, StoreError> {
    finish_interrupted(dir)?;
    let mut tree = Tree::new();
    if !is_store_dir(dir)? {
        return Ok(tree);
    }
    let mut files = Vec::new();
    walk(dir, "", &mut files)?;
    use rayon::prelude::*;
    let read: Vec<(String, Vec<u8>)> = files
        .into_par_iter()
        .map(|rel| {
            let path = dir.join(&rel);
            fs::read(&path).map(|b| (rel, b)).map_err(io_err(&path))
        })
        .collect::<Result<_, _>>()?;
    tree.extend(read);
    Ok(tree)
}

fn walk(root: &Utf8Path, rel: &str, files: &mut Vec<String>) -> Result<(), StoreError> {
    let here = if rel.is_empty() { root.to_owned() } else { root.join(rel) };
    for entry in fs::read_dir(&here).map_err(io_err(&here))? {
        let entry = entry.map_err(io_err(&here))?;
        let name = entry
            .file_name()
            .to_str()
            .map(str::to_string)
            .ok_or_else(|| StoreError::NotUtf8(format!("{here}/{}", entry.file_name().to_string_lossy())))?;
        if rel.is_empty() && !is_managed(&name) {
            continue;
        }
        let child = if rel.is_empty() { name } else { format!("{rel}/{name}") };
        let path = root.join(&child);
        let ft = entry.file_type().map_err(io_err(&path))?;
        if ft.is_symlink() {
            return Err(StoreError::Symlink(path));
        } else if ft.is_dir() {
            walk(root, &child, files)?;
        } else {
            files.push(child);
        }
    }
    Ok(())
}

/// Whether `dir` exists (as a directory, not a symbolic link to one).
fn is_store_dir(dir: &Utf8Path) -> Result<bool, StoreError> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(dir)(e)),
        Ok(m) if m.file_type().is_symlink() => Err(StoreError::Symlink(dir.to_owned())),
        Ok(_) => Ok(true),
    }
}

/// Every directory above `paths` (relative, `/`-separated), each once, outer first.
pub(super) fn parent_dirs<'a>(paths: impl Iterator<Item = &'a String>) -> std::collections::BTreeSet<Utf8PathBuf> {
    let mut dirs = std::collections::BTreeSet::new();
    for rel in paths {
        let mut p = Utf8Path::new(rel.as_str());
        while let Some(parent) = p.parent().filter(|p| !p.as_str().is_empty()) {
            if !dirs.insert(parent.to_owned()) {
                break;
            }
            p = parent;
        }
    }
    dirs
}

/// A reader that finds a killed write's journal finishes it first, under the
/// lock (which does it), so that it never sees half of a write.
fn finish_interrupted(dir: &Utf8Path) -> Result<(), StoreError> {
    if super::journal::journal_dir(dir).join("journal").exists() {
        drop(lock(dir)?);
    }
    Ok(())
}

/// Read only the files a reconcile needs first: the root manifest, the
/// stored config and the governance record. Everything else is read on
/// demand (see [`crate::generate::Existing`]).
pub fn read_root(dir: &Utf8Path) -> Result<Tree, StoreError> {
    finish_interrupted(dir)?;
    let mut tree = Tree::new();
    if !is_store_dir(dir)? {
        return Ok(tree);
    }
    let mut files = Vec::new();
    for top in [super::MANIFEST, "config.json"] {
        match fs::symlink_metadata(dir.join(top)) {
            Ok(m) if m.file_type().is_symlink() => return Err(StoreError::Symlink(dir.join(top))),
            Ok(m) if m.is_file() => files.push(top.to_string()),
            _ => {}
        }
    }
    match fs::symlink_metadata(dir.join("governance")) {
        Ok(m) if m.file_type().is_symlink() => return Err(StoreError::Symlink(dir.join("governance"))),
        Ok(m) if m.is_dir() => walk(dir, "governance", &mut files)?,
        _ => {}
    }
    for rel in files {
        let path = dir.join(&rel);
        tree.insert(rel, fs::read(&path).map_err(io_err(&path))?);
    }
    Ok(tree)
}

/// Whether `dir` holds any of the store's entries.
pub fn has_store_entries(dir: &Utf8Path) -> bool {
    MANAGED.iter().any(|m| fs::symlink_metadata(dir.join(m)).is_ok())
}

/// The prefix of the sibling directories a write uses; leftovers of a killed
/// run are removed by the next one.
fn temp_prefix(dir: &Utf8Path) -> String {
    format!(".{}.clan-nats-", dir.file_name().unwrap_or("store"))
}

pub(super) fn parent_of(dir: &Utf8Path) -> Utf8PathBuf {
    match dir.parent() {
        Some(p) if !p.as_str().is_empty() => p.to_owned(),
        _ => Utf8PathBuf::from("."),
    }
}

/// Remove what a killed run left beside `dir`. Only directories this user
/// owns are ours: anything else with a matching name (another user's, or a
/// file) is left alone, never a reason to fail.
pub fn clean_leftovers(dir: &Utf8Path) -> Result<(), StoreError> {
    use std::os::unix::fs::MetadataExt;
    let parent = parent_of(dir);
    let prefix = temp_prefix(dir);
    let Ok(entries) = fs::read_dir(&parent) else { return Ok(()) };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    for e in entries.flatten() {
        let journal = super::journal::journal_dir(dir);
        if e.file_name().to_str().is_some_and(|n| n.starts_with(&prefix) && Some(n) != journal.file_name()) {
            let ours = fs::symlink_metadata(e.path()).is_ok_and(|m| m.is_dir() && m.uid() == me);
            if !ours {
                continue;
            }
            let p = e.path();
            fs::remove_dir_all(&p)
                .map_err(|source| StoreError::Io { path: Utf8PathBuf::from(p.to_string_lossy().as_ref()), source })?;
        }
    }
    Ok(())
}

/// Make `dir` hold exactly `new`. `old` is what `dir` holds now (from
/// [`read_tree`]). A new store is built beside `dir` and renamed into place;
/// an existing one gets only the files that differ, through the journal
/// ([`super::journal::apply`]). If `dir` already equals `new`, nothing is
/// written at all. The caller holds the store's [`lock`].
pub fn write_tree(dir: &Utf8Path, new: &Tree, old: &Tree) -> Result<WriteReport, StoreError> {
    clean_leftovers(dir)?;
    if dir.exists() {
        return super::journal::apply(dir, &super::journal::Changes::between(old, new));
    }
    let parent = parent_of(dir);
    fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(&parent).map_err(io_err(&parent))?;
    let tmp = tempfile::Builder::new().prefix(&temp_prefix(dir)).tempdir_in(&parent).map_err(io_err(&parent))?;
    let tmp_path = Utf8PathBuf::from_path_buf(tmp.path().to_path_buf())
        .map_err(|p| StoreError::NotUtf8(p.to_string_lossy().into()))?;
    set_mode(&tmp_path, DIR_MODE)?;
    // Directories first (sequentially, each once), then the files in parallel.
    for d in &parent_dirs(new.keys()) {
        let path = tmp_path.join(d);
        fs::DirBuilder::new().mode(DIR_MODE).create(&path).map_err(io_err(&path))?;
        set_mode(&path, DIR_MODE)?;
    }
    let chmod = needs_chmod();
    use rayon::prelude::*;
    new.par_iter().map(|(rel, bytes)| write_file(&tmp_path.join(rel), bytes, chmod)).collect::<Result<(), _>>()?;
    sync_filesystem(&tmp_path)?;
    let kept = tmp.keep();
    fs::rename(&kept, dir).map_err(io_err(dir))?;
    if let Ok(f) = fs::File::open(&parent) {
        let _ = f.sync_all();
    }
    Ok(WriteReport { swapped: true, written: new.keys().cloned().collect(), removed: Vec::new() })
}

/// An exclusive lock on a store, held while a command reads, decides and
/// writes: `.<DIR name>.clan-nats.lock` beside DIR, holding the writer's pid,
/// removed again when dropped (a killed writer's file is simply reused).
pub struct Lock {
    file: Option<fs::File>,
    path: Utf8PathBuf,
}

impl Lock {
    /// Now, as the filesystem's clock stamps inodes: the lock file is
    /// rewritten and its ctime read back. `None` without a lock file.
    pub fn stamp(&mut self) -> Option<i64> {
        use std::io::Seek;
        let f = self.file.as_mut()?;
        f.set_len(0).ok()?;
        f.rewind().ok()?;
        write!(f, "{}", std::process::id()).ok()?;
        f.metadata().ok().map(|m| super::scan::ctime_ns(&m))
    }

    /// A [`Lock::stamp`] later than every inode this process changed so far:
    /// the filesystem clock is coarse (a few ms), so after a write it waits
    /// for the next tick, and nothing written before can carry the stamp.
    pub fn stamp_after_writes(&mut self) -> Option<i64> {
        let first = self.stamp()?;
        for _ in 0..200 {
            std::thread::sleep(std::time::Duration::from_millis(1));
            match self.stamp()? {
                s if s > first => return Some(s),
                _ => {}
            }
        }
        None
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        let Some(f) = self.file.take() else { return };
        // Remove the file only while it is still ours (the inode we locked).
        if let (Ok(a), Ok(b)) = (f.metadata(), fs::metadata(&self.path)) {
            if a.ino() == b.ino() && a.dev() == b.dev() {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

/// Take the store's lock, or fail at once naming the process that holds it.
/// Where DIR's parent does not exist yet there is nothing to lock (and
/// nothing is created).
pub fn lock(dir: &Utf8Path) -> Result<Lock, StoreError> {
    use std::io::{Read, Seek};
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let parent = parent_of(dir);
    let path = parent.join(format!(".{}.clan-nats.lock", dir.file_name().unwrap_or("store")));
    if !parent.is_dir() {
        return Ok(Lock { file: None, path });
    }
    loop {
        let opened = fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(&path);
        let mut f = match opened {
            // Nobody can write beside a read-only DIR, so nobody can race us there:
            // go on without a lock (a command that must write fails later, naming the path).
            Err(e) if matches!(e.raw_os_error(), Some(libc::EROFS) | Some(libc::EACCES) | Some(libc::EPERM)) => {
                return Ok(Lock { file: None, path })
            }
            other => other.map_err(io_err(&path))?,
        };
        // SAFETY: a valid open file descriptor.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut pid = String::new();
            let _ = f.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(StoreError::Locked {
                dir: dir.to_owned(),
                holder: if pid.is_empty() {
                    "another clan-nats".into()
                } else {
                    format!("another clan-nats (pid {pid})")
                },
            });
        }
        // The holder before us may have removed the file between our open and our
        // lock: then we locked a file nobody else will see; take the new one.
        let same = match (f.metadata(), fs::metadata(&path)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if !same {
            continue;
        }
        f.set_len(0).and_then(|_| f.rewind()).map_err(io_err(&path))?;
        write!(f, "{}", std::process::id()).map_err(io_err(&path))?;
        let lock = Lock { file: Some(f), path };
        // A write killed after its commit point is finished before anything else.
        if let Some(n) = super::journal::recover(dir)? {
            eprintln!("clan-nats: {dir}: finished a write that was interrupted ({n} file(s))");
        }
        return Ok(lock);
    }
}

pub(super) fn set_mode(path: &Utf8Path, mode: u32) -> Result<(), StoreError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err(path))
}

/// Whether the process umask removes bits of [`FILE_MODE`], so that files need an explicit chmod.
pub(super) fn needs_chmod() -> bool {
    // SAFETY: umask only swaps the process mask; it is restored at once.
    let mask = unsafe {
        let m = libc::umask(0o022);
        libc::umask(m);
        m
    };
    (mask as u32) & FILE_MODE != 0
}

pub(super) fn write_file(path: &Utf8Path, bytes: &[u8], chmod: bool) -> Result<(), StoreError> {
    let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(FILE_MODE).open(path).map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))?;
    if chmod {
        f.set_permissions(fs::Permissions::from_mode(FILE_MODE)).map_err(io_err(path))?;
    }
    Ok(())
}

/// Flush the new tree to the disk with one `syncfs` instead of an fsync per file.
pub(super) fn sync_filesystem(dir: &Utf8Path) -> Result<(), StoreError> {
    let f = fs::File::open(dir).map_err(io_err(dir))?;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid open file descriptor.
        if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
            return Err(io_err(dir)(io::Error::last_os_error()));
        }
    }
    #[cfg(not(target_os = "linux"))]
    f.sync_all().map_err(io_err(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn tree(items: &[(&str, &str)]) -> Tree {
        items.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn create_update_and_noop() {
        let base = tempfile::tempdir().unwrap();
        let dir = Utf8PathBuf::from_path_buf(base.path().join("out")).unwrap();
        let t1 = tree(&[("nsc/b/c.txt", "one"), ("manifest.json", "x")]);
        let r = write_tree(&dir, &t1, &Tree::new()).unwrap();
        assert_eq!(r.written, ["manifest.json", "nsc/b/c.txt"]);
        assert_eq!(read_tree(&dir).unwrap(), t1);
        assert_eq!(fs::metadata(dir.join("nsc/b")).unwrap().mode() & 0o777, DIR_MODE);
        assert_eq!(fs::metadata(dir.join("manifest.json")).unwrap().mode() & 0o777, FILE_MODE);

        let ino = fs::metadata(dir.join("manifest.json")).unwrap().ino();
        let r = write_tree(&dir, &t1, &read_tree(&dir).unwrap()).unwrap();
        assert!(!r.swapped && r.written.is_empty());
        assert_eq!(fs::metadata(dir.join("manifest.json")).unwrap().ino(), ino, "no-op must not rewrite");

        let t2 = tree(&[("nsc/b/c.txt", "two"), ("manifest.json", "x"), ("server/new", "n")]);
        let r = write_tree(&dir, &t2, &t1).unwrap();
        assert_eq!(r.written, ["nsc/b/c.txt", "server/new"]);
        assert_eq!(read_tree(&dir).unwrap(), t2);
        assert_eq!(
            fs::metadata(dir.join("manifest.json")).unwrap().ino(),
            ino,
            "unchanged files are linked, not copied"
        );

        let t3 = tree(&[("manifest.json", "x")]);
        let r = write_tree(&dir, &t3, &t2).unwrap();
        assert_eq!(r.removed, ["nsc/b/c.txt", "server/new"]);
        assert_eq!(read_tree(&dir).unwrap(), t3);
        let siblings: Vec<_> = fs::read_dir(base.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(siblings, ["out"], "no temporary directory is left behind");
    }

    #[test]
    fn leftovers_of_a_killed_run_are_removed() {
        let base = tempfile::tempdir().unwrap();
        let dir = Utf8PathBuf::from_path_buf(base.path().join("out")).unwrap();
        fs::create_dir_all(base.path().join(".out.clan-nats-abc/x")).unwrap();
        write_tree(&dir, &tree(&[("manifest.json", "1")]), &Tree::new()).unwrap();
        assert!(!base.path().join(".out.clan-nats-abc").exists());
    }

    #[test]
    fn symlinks_are_refused() {
        let base = tempfile::tempdir().unwrap();
        let dir = Utf8PathBuf::from_path_buf(base.path().to_path_buf()).unwrap();
        fs::create_dir(base.path().join("nsc")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", base.path().join("nsc/link")).unwrap();
        assert!(matches!(read_tree(&dir), Err(StoreError::Symlink(_))));
        // Outside the store's own entries, a link is the user's and is not even read.
        fs::remove_file(base.path().join("nsc/link")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", base.path().join("link")).unwrap();
        assert!(read_tree(&dir).unwrap().is_empty());
    }

    #[test]
    fn the_users_entries_are_kept_as_they_are() {
        let base = tempfile::tempdir().unwrap();
        let dir = Utf8PathBuf::from_path_buf(base.path().join("out")).unwrap();
        let t1 = tree(&[("manifest.json", "1"), ("nsc/x", "x")]);
        write_tree(&dir, &t1, &Tree::new()).unwrap();
        fs::create_dir_all(dir.join(".git/objects")).unwrap();
        fs::write(dir.join(".git/objects/ab"), "blob").unwrap();
        fs::set_permissions(dir.join(".git/objects"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(dir.join("README.md"), "hi").unwrap();
        let ino = fs::metadata(dir.join(".git/objects/ab")).unwrap().ino();
        assert_eq!(read_tree(&dir).unwrap(), t1, "the user's files are not read");
        let t2 = tree(&[("manifest.json", "2")]);
        let r = write_tree(&dir, &t2, &t1).unwrap();
        assert_eq!(r.removed, ["nsc/x"]);
        assert_eq!(fs::metadata(dir.join(".git/objects/ab")).unwrap().ino(), ino);
        assert_eq!(fs::metadata(dir.join(".git/objects")).unwrap().mode() & 0o777, 0o700);
        assert_eq!(fs::read_to_string(dir.join("README.md")).unwrap(), "hi");
        assert_eq!(foreign_entries(&dir).unwrap(), [".git", "README.md"]);
    }
}

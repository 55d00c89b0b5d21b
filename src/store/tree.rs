//! The whole store as a map of relative path → bytes, read from and written to
//! disk atomically: the new tree is built beside DIR and swapped in with one
//! `renameat2(RENAME_EXCHANGE)`, so DIR is always either the old store or the
//! new one, whatever moment the process dies at.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

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
}

fn io_err(path: &Utf8Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
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

/// Read every file under `dir`. A missing `dir` is an empty tree.
pub fn read_tree(dir: &Utf8Path) -> Result<Tree, StoreError> {
    let mut tree = Tree::new();
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(tree),
        Err(e) => return Err(io_err(dir)(e)),
        Ok(m) if m.file_type().is_symlink() => return Err(StoreError::Symlink(dir.to_owned())),
        Ok(_) => {}
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

/// The prefix of the sibling directories a write uses; leftovers of a killed
/// run are removed by the next one.
fn temp_prefix(dir: &Utf8Path) -> String {
    format!(".{}.clan-nats-", dir.file_name().unwrap_or("store"))
}

fn parent_of(dir: &Utf8Path) -> Utf8PathBuf {
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
        if e.file_name().to_str().is_some_and(|n| n.starts_with(&prefix)) {
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
/// [`read_tree`]). Unchanged files are hard-linked from the old tree (they are
/// never modified in place), changed ones written; then the two trees are
/// swapped atomically and the old one removed. If `dir` already equals `new`,
/// nothing is written at all.
pub fn write_tree(dir: &Utf8Path, new: &Tree, old: &Tree) -> Result<WriteReport, StoreError> {
    clean_leftovers(dir)?;
    let existed = dir.exists();
    if existed && new == old {
        return Ok(WriteReport::default());
    }
    let parent = parent_of(dir);
    fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(&parent).map_err(io_err(&parent))?;
    let tmp = tempfile::Builder::new().prefix(&temp_prefix(dir)).tempdir_in(&parent).map_err(io_err(&parent))?;
    let tmp_path = Utf8PathBuf::from_path_buf(tmp.path().to_path_buf())
        .map_err(|p| StoreError::NotUtf8(p.to_string_lossy().into()))?;
    set_mode(&tmp_path, DIR_MODE)?;

    let mut report = WriteReport { swapped: true, ..Default::default() };
    // Directories first (sequentially, each once), then the files in parallel.
    let mut dirs = std::collections::BTreeSet::new();
    for rel in new.keys() {
        let mut p = Utf8Path::new(rel.as_str());
        while let Some(parent) = p.parent().filter(|p| !p.as_str().is_empty()) {
            if !dirs.insert(parent.to_owned()) {
                break;
            }
            p = parent;
        }
    }
    for d in &dirs {
        let path = tmp_path.join(d);
        fs::DirBuilder::new().mode(DIR_MODE).create(&path).map_err(io_err(&path))?;
        set_mode(&path, DIR_MODE)?;
    }
    let chmod = needs_chmod();
    use rayon::prelude::*;
    let written: Vec<Option<String>> = new
        .par_iter()
        .map(|(rel, bytes)| {
            let target = tmp_path.join(rel);
            if old.get(rel) == Some(bytes) && fs::hard_link(dir.join(rel), &target).is_ok() {
                return Ok(None);
            }
            write_file(&target, bytes, chmod)?;
            Ok(Some(rel.clone()))
        })
        .collect::<Result<_, StoreError>>()?;
    report.written = written.into_iter().flatten().collect();
    report.removed = old.keys().filter(|k| !new.contains_key(*k)).cloned().collect();
    sync_filesystem(&tmp_path)?;

    if existed {
        exchange(&tmp_path, dir)?;
        // tmp now holds the old tree; dropping the TempDir removes it.
        drop(tmp);
    } else {
        let kept = tmp.keep();
        fs::rename(&kept, dir).map_err(io_err(dir))?;
    }
    if let Ok(f) = fs::File::open(&parent) {
        let _ = f.sync_all();
    }
    Ok(report)
}

fn set_mode(path: &Utf8Path, mode: u32) -> Result<(), StoreError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err(path))
}

/// Whether the process umask removes bits of [`FILE_MODE`], so that files need an explicit chmod.
fn needs_chmod() -> bool {
    // SAFETY: umask only swaps the process mask; it is restored at once.
    let mask = unsafe {
        let m = libc::umask(0o022);
        libc::umask(m);
        m
    };
    (mask as u32) & FILE_MODE != 0
}

fn write_file(path: &Utf8Path, bytes: &[u8], chmod: bool) -> Result<(), StoreError> {
    let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(FILE_MODE).open(path).map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))?;
    if chmod {
        f.set_permissions(fs::Permissions::from_mode(FILE_MODE)).map_err(io_err(path))?;
    }
    Ok(())
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("paths have no NUL")
}

/// Flush the new tree to the disk with one `syncfs` instead of an fsync per file.
fn sync_filesystem(dir: &Utf8Path) -> Result<(), StoreError> {
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

/// Atomically exchange two directories (Linux `renameat2(RENAME_EXCHANGE)`).
#[cfg(target_os = "linux")]
fn exchange(a: &Utf8Path, b: &Utf8Path) -> Result<(), StoreError> {
    let (ca, cb) = (cstr(a.as_std_path()), cstr(b.as_std_path()));
    // SAFETY: valid NUL-terminated paths; AT_FDCWD resolves them relative to the cwd.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc != 0 {
        return Err(io_err(b)(io::Error::last_os_error()));
    }
    Ok(())
}

/// Elsewhere: two renames. A crash between them leaves the old tree in the
/// `.clan-nats-old` sibling, which the next run does not delete blindly.
#[cfg(not(target_os = "linux"))]
fn exchange(a: &Utf8Path, b: &Utf8Path) -> Result<(), StoreError> {
    let aside = Utf8PathBuf::from(format!("{}.clan-nats-old", b));
    fs::rename(b, &aside).map_err(io_err(b))?;
    fs::rename(a, b).map_err(io_err(b))?;
    fs::rename(&aside, a).map_err(io_err(a))
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
        let t1 = tree(&[("a/b/c.txt", "one"), ("top", "x")]);
        let r = write_tree(&dir, &t1, &Tree::new()).unwrap();
        assert_eq!(r.written, ["a/b/c.txt", "top"]);
        assert_eq!(read_tree(&dir).unwrap(), t1);
        assert_eq!(fs::metadata(dir.join("a/b")).unwrap().mode() & 0o777, DIR_MODE);
        assert_eq!(fs::metadata(dir.join("top")).unwrap().mode() & 0o777, FILE_MODE);

        let ino = fs::metadata(dir.join("top")).unwrap().ino();
        let r = write_tree(&dir, &t1, &read_tree(&dir).unwrap()).unwrap();
        assert!(!r.swapped && r.written.is_empty());
        assert_eq!(fs::metadata(dir.join("top")).unwrap().ino(), ino, "no-op must not rewrite");

        let t2 = tree(&[("a/b/c.txt", "two"), ("top", "x"), ("new", "n")]);
        let r = write_tree(&dir, &t2, &t1).unwrap();
        assert_eq!(r.written, ["a/b/c.txt", "new"]);
        assert_eq!(read_tree(&dir).unwrap(), t2);
        assert_eq!(fs::metadata(dir.join("top")).unwrap().ino(), ino, "unchanged files are linked, not copied");

        let t3 = tree(&[("top", "x")]);
        let r = write_tree(&dir, &t3, &t2).unwrap();
        assert_eq!(r.removed, ["a/b/c.txt", "new"]);
        assert_eq!(read_tree(&dir).unwrap(), t3);
        let siblings: Vec<_> = fs::read_dir(base.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(siblings, ["out"], "no temporary directory is left behind");
    }

    #[test]
    fn leftovers_of_a_killed_run_are_removed() {
        let base = tempfile::tempdir().unwrap();
        let dir = Utf8PathBuf::from_path_buf(base.path().join("out")).unwrap();
        fs::create_dir_all(base.path().join(".out.clan-nats-abc/x")).unwrap();
        write_tree(&dir, &tree(&[("f", "1")]), &Tree::new()).unwrap();
        assert!(!base.path().join(".out.clan-nats-abc").exists());
    }

    #[test]
    fn symlinks_are_refused() {
        let base = tempfile::tempdir().unwrap();
        let dir = Utf8PathBuf::from_path_buf(base.path().to_path_buf()).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", base.path().join("link")).unwrap();
        assert!(matches!(read_tree(&dir), Err(StoreError::Symlink(_))));
    }
}

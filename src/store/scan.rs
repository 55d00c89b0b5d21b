//! Which files of a store changed since a moment, from their inodes alone.
//!
//! A re-run reads only what it touches, so a file edited outside clan-nats in
//! an account the run does not open would never be read, and never found. The
//! kernel stamps every inode change (content, rename, link, mode) with its
//! ctime, which no unprivileged process can set back. So a run that finished
//! with every file as the signed manifest says records that moment on this
//! machine (in the pin, outside DIR), and the next run stats every file and
//! directory: whatever changed since, and everything below a directory that
//! did, is then checked against the manifest like any file it reads. The
//! cost is one stat per file, no read; git's index relies on the same stamp.

use std::fs;
use std::os::unix::fs::MetadataExt;

use camino::Utf8Path;
use rayon::prelude::*;

use super::tree::{io_err, is_managed};
use super::StoreError;

/// What changed since the stamp: files (with everything below a changed
/// directory) and the directories whose entries may have changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changed {
    pub files: Vec<String>,
    pub dirs: Vec<String>,
}

impl Changed {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.dirs.is_empty()
    }
}

/// An inode's change time in nanoseconds.
pub fn ctime_ns(m: &fs::Metadata) -> i64 {
    m.ctime().saturating_mul(1_000_000_000).saturating_add(m.ctime_nsec())
}

/// The files and directories of the store in `dir` (its managed entries only)
/// changed at or after `since` (ns, as [`ctime_ns`]).
pub fn changed_since(dir: &Utf8Path, since: i64) -> Result<Changed, StoreError> {
    let mut tops = Vec::new();
    for e in fs::read_dir(dir).map_err(io_err(dir))? {
        let e = e.map_err(io_err(dir))?;
        if let Some(name) = e.file_name().to_str().filter(|n| is_managed(n)) {
            // Each entry's inode from the directory's own handle (`statx` on the
            // open directory: no walk of the whole path per file).
            let meta = e.metadata().map_err(io_err(&dir.join(name)))?;
            tops.push((name.to_string(), meta));
        }
    }
    let parts: Vec<Changed> =
        tops.par_iter().map(|(t, m)| entry(dir, t, m, since, false)).collect::<Result<_, StoreError>>()?;
    let mut out = Changed::default();
    for p in parts {
        out.files.extend(p.files);
        out.dirs.extend(p.dirs);
    }
    out.files.sort();
    out.dirs.sort();
    Ok(out)
}

fn entry(
    root: &Utf8Path,
    rel: &str,
    meta: &fs::Metadata,
    since: i64,
    below_changed: bool,
) -> Result<Changed, StoreError> {
    let changed = below_changed || ctime_ns(meta) >= since;
    let mut out = Changed::default();
    if !meta.is_dir() {
        // Symbolic links are refused wherever a store is read; report them as changed.
        if changed || meta.file_type().is_symlink() {
            out.files.push(rel.to_string());
        }
        return Ok(out);
    }
    if changed {
        out.dirs.push(rel.to_string());
    }
    let path = root.join(rel);
    let mut dirs = Vec::new();
    for e in fs::read_dir(&path).map_err(io_err(&path))? {
        let e = e.map_err(io_err(&path))?;
        let name = e.file_name();
        let name = name.to_str().ok_or_else(|| StoreError::NotUtf8(format!("{path}/{}", name.to_string_lossy())))?;
        let child = format!("{rel}/{name}");
        let m = e.metadata().map_err(io_err(&path.join(name)))?;
        if m.is_dir() {
            dirs.push((child, m));
        } else if changed || ctime_ns(&m) >= since || m.file_type().is_symlink() {
            out.files.push(child);
        }
    }
    let parts: Vec<Changed> =
        dirs.par_iter().map(|(n, m)| entry(root, n, m, since, changed)).collect::<Result<_, StoreError>>()?;
    for p in parts {
        out.files.extend(p.files);
        out.dirs.extend(p.dirs);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use camino::Utf8PathBuf;

    #[test]
    fn finds_what_changed_after_the_stamp_and_nothing_else() {
        let base = tempfile::tempdir().unwrap();
        let dir = Utf8PathBuf::from_path_buf(base.path().to_path_buf()).unwrap();
        fs::create_dir_all(dir.join("nsc/a/users")).unwrap();
        fs::create_dir_all(dir.join("nsc/b")).unwrap();
        fs::write(dir.join("nsc/a/users/u.jwt"), "1").unwrap();
        fs::write(dir.join("nsc/b/v.jwt"), "1").unwrap();
        fs::write(dir.join("manifest.json"), "{}").unwrap();
        fs::write(dir.join("notes.txt"), "the user's").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let stamp = {
            let p = dir.join(".stamp");
            fs::write(&p, "").unwrap();
            ctime_ns(&fs::metadata(&p).unwrap())
        };
        assert!(changed_since(&dir, stamp).unwrap().is_empty());
        assert_eq!(changed_since(&dir, 0).unwrap().files.len(), 3, "everything changed since the epoch");

        std::thread::sleep(std::time::Duration::from_millis(20));
        // An edit in place: only that file.
        fs::write(dir.join("nsc/a/users/u.jwt"), "2").unwrap();
        // The user's files beside the store are not the store's.
        fs::write(dir.join("notes.txt"), "edited").unwrap();
        let c = changed_since(&dir, stamp).unwrap();
        assert_eq!(c.files, ["nsc/a/users/u.jwt"]);
        assert!(c.dirs.is_empty(), "{c:?}");

        // A directory moved: it and everything below it.
        fs::rename(dir.join("nsc/b"), dir.join("nsc/c")).unwrap();
        let c = changed_since(&dir, stamp).unwrap();
        assert!(c.files.contains(&"nsc/c/v.jwt".to_string()), "{c:?}");
        assert!(c.dirs.contains(&"nsc".to_string()) && c.dirs.contains(&"nsc/c".to_string()), "{c:?}");

        // A file removed: its directory.
        fs::remove_file(dir.join("nsc/a/users/u.jwt")).unwrap();
        assert!(changed_since(&dir, stamp).unwrap().dirs.contains(&"nsc/a/users".to_string()));
    }
}

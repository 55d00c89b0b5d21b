//! The owner's trust anchor, kept outside the store: for each organization
//! this machine has written, the operator public key and the last audit head
//! it saw. The store lives in git and anyone who can push may edit it, so a
//! command that writes trusts DIR only after checking it against this file.
//!
//! Location: `$CLAN_NATS_PINS`, else `$XDG_STATE_HOME/clan-nats/pins.json`,
//! else `~/.local/state/clan-nats/pins.json`. The directory is 0700, the file
//! 0600 and owned by the user; a file anyone else could have written is refused.
//! Updates are atomic (write beside, rename) under an exclusive lock.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

/// Environment variable that names the pin file.
pub const ENV: &str = "CLAN_NATS_PINS";
pub const FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("{path}: {message}")]
    File { path: Utf8PathBuf, message: String },
    #[error(
        "no place for the trust pins: set {ENV} (a file) or XDG_STATE_HOME, or HOME (pins go to ~/.local/state/clan-nats/pins.json)"
    )]
    NoLocation,
}

/// What one owner last saw of one organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// The operator identity public key (`O…`): the root every signature must chain to.
    pub operator: String,
    /// The last audit entry this machine saw or wrote.
    pub head_seq: u64,
    pub head_hash: String,
    /// Informational: where the store was last seen on this machine.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dir: String,
    /// Every file of the store in `checked.dir` that has not changed since
    /// `checked.since` is as the signed manifest says (see [`crate::store::scan`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked: Option<Checked>,
}

/// A moment after which nothing of a store (in one directory) was seen changing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checked {
    /// The canonical path of DIR.
    pub dir: String,
    /// An inode ctime, in nanoseconds.
    pub since: i64,
}

/// The audit head of a store: sequence number and hash of its last entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "seq {} ({})", self.seq, self.hash)
    }
}

impl Pin {
    pub fn head(&self) -> Head {
        Head { seq: self.head_seq, hash: self.head_hash.clone() }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PinsFile {
    format: u32,
    /// Organization id (`ownership.json` `org_id`) → pin.
    orgs: BTreeMap<String, Pin>,
}

/// The pin file of this user.
#[derive(Debug, Clone)]
pub struct Pins {
    pub path: Utf8PathBuf,
    orgs: BTreeMap<String, Pin>,
}

/// The default location (see the module documentation).
pub fn default_path() -> Result<Utf8PathBuf, PinError> {
    let abs = |v: std::ffi::OsString| {
        let p = Utf8PathBuf::from(v.into_string().ok()?);
        (p.is_absolute()).then_some(p)
    };
    if let Some(p) = std::env::var_os(ENV).filter(|v| !v.is_empty()) {
        return Utf8PathBuf::from_path_buf(p.into()).map_err(|_| PinError::NoLocation);
    }
    if let Some(p) = std::env::var_os("XDG_STATE_HOME").and_then(abs) {
        return Ok(p.join("clan-nats/pins.json"));
    }
    if let Some(p) = std::env::var_os("HOME").and_then(abs) {
        return Ok(p.join(".local/state/clan-nats/pins.json"));
    }
    Err(PinError::NoLocation)
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

impl Pins {
    /// Read the pins (none yet is an empty set). Refuses a file that another
    /// user owns or that group or others may write: a planted pin would make
    /// this machine trust an attacker's operator.
    pub fn load(path: &Utf8Path) -> Result<Pins, PinError> {
        let err = |message: String| PinError::File { path: path.to_owned(), message };
        let meta = match fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Pins { path: path.to_owned(), orgs: BTreeMap::new() })
            }
            Err(e) => return Err(err(format!("cannot read: {e}"))),
            Ok(m) => m,
        };
        if !meta.file_type().is_file() {
            return Err(err("not a plain file".into()));
        }
        if meta.uid() != euid() {
            return Err(err(format!("owned by uid {}, not by you (uid {}); refusing to trust it", meta.uid(), euid())));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(err(format!(
                "writable by group or others (mode {:04o}); refusing to trust it: chmod 600 {path}",
                meta.mode() & 0o7777
            )));
        }
        let bytes = fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let file: PinsFile = serde_json::from_slice(&bytes).map_err(|e| err(format!("not a pin file: {e}")))?;
        if file.format != FORMAT {
            return Err(err(format!("pin file format {} is not {FORMAT}", file.format)));
        }
        Ok(Pins { path: path.to_owned(), orgs: file.orgs })
    }

    pub fn get(&self, org_id: &str) -> Option<&Pin> {
        self.orgs.get(org_id)
    }

    /// The organizations pinned under this operator key.
    pub fn orgs_of(&self, operator: &str) -> Vec<&str> {
        self.orgs.iter().filter(|(_, p)| p.operator == operator).map(|(k, _)| k.as_str()).collect()
    }

    /// Record `pin` for `org_id`: lock, re-read (another process may have
    /// written meanwhile), set, write atomically. Keeps `self` current.
    pub fn record(&mut self, org_id: &str, pin: Pin) -> Result<(), PinError> {
        let path = self.path.clone();
        let err = |message: String| PinError::File { path: path.clone(), message };
        let parent = path.parent().filter(|p| !p.as_str().is_empty()).unwrap_or(Utf8Path::new("."));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| err(format!("cannot create {parent}: {e}")))?;
        let lock_path = format!("{path}.lock");
        let lock = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| err(format!("cannot open {lock_path}: {e}")))?;
        // SAFETY: a valid open file descriptor; the lock is released when `lock` is closed.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
            return Err(err(format!("cannot lock {lock_path}: {}", std::io::Error::last_os_error())));
        }
        let mut current = Pins::load(&path)?;
        current.orgs.insert(org_id.to_string(), pin);
        let file = PinsFile { format: FORMAT, orgs: current.orgs.clone() };
        let mut bytes = serde_json::to_vec_pretty(&file).expect("pins serialize");
        bytes.push(b'\n');
        let tmp = tempfile::Builder::new()
            .prefix(".pins.json.")
            .tempfile_in(parent)
            .map_err(|e| err(format!("cannot write beside it: {e}")))?;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o600))
            .and_then(|_| tmp.as_file().write_all(&bytes))
            .and_then(|_| tmp.as_file().sync_all())
            .map_err(|e| err(format!("cannot write: {e}")))?;
        tmp.persist(&path).map_err(|e| err(format!("cannot replace: {}", e.error)))?;
        drop(lock);
        self.orgs = current.orgs;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(op: &str, seq: u64) -> Pin {
        Pin {
            operator: op.into(),
            head_seq: seq,
            head_hash: format!("sha256:{seq}"),
            dir: String::new(),
            checked: None,
        }
    }

    #[test]
    fn record_and_reload() {
        let tmp = tempfile::tempdir().unwrap();
        let path = Utf8PathBuf::from_path_buf(tmp.path().join("state/clan-nats/pins.json")).unwrap();
        let mut pins = Pins::load(&path).unwrap();
        assert!(pins.get("org").is_none());
        pins.record("org", pin("OA", 1)).unwrap();
        pins.record("other", pin("OB", 3)).unwrap();
        pins.record("org", pin("OA", 2)).unwrap();
        let again = Pins::load(&path).unwrap();
        assert_eq!(again.get("org"), Some(&pin("OA", 2)));
        assert_eq!(again.get("other"), Some(&pin("OB", 3)));
        assert_eq!(again.orgs_of("OA"), ["org"]);
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn a_file_others_can_write_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = Utf8PathBuf::from_path_buf(tmp.path().join("pins.json")).unwrap();
        Pins::load(&path).unwrap().record("org", pin("OA", 1)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        let e = Pins::load(&path).unwrap_err().to_string();
        assert!(e.contains("writable by group or others (mode 0666)"), "{e}");
    }

    #[test]
    fn garbage_is_an_error_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = Utf8PathBuf::from_path_buf(tmp.path().join("pins.json")).unwrap();
        fs::write(&path, "{").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let e = Pins::load(&path).unwrap_err().to_string();
        assert!(e.starts_with(path.as_str()) && e.contains("not a pin file"), "{e}");
    }
}

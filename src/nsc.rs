//! Interop with nsc: `export-nsc` writes a plaintext nsc data dir and keystore
//! (the one explicit exception to "no plaintext on disk"); `import-nsc` adopts
//! an existing nsc operator's keys so a running deployment moves over without
//! re-keying.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

use camino::{Utf8Path, Utf8PathBuf};
use nkeys::KeyPair;

use crate::jwt::{AccountClaims, OperatorClaims, UserClaims};
use crate::manifest::Manifest;
use crate::plan::Plan;
use crate::store::{Layout, Tree, MANIFEST};
use crate::vault::Identity;

/// nsc's keystore `.gitignore` (cmd/store/keys.go `AddGitIgnore`), byte for byte.
pub const GITIGNORE: &str = "# ignore all nk files \n**/*.nk\n\n# ignore all creds files\n**/*.creds\n";

#[derive(Debug, thiserror::Error)]
pub enum NscError {
    #[error("{0}")]
    Input(String),
    #[error("{path}: cannot decrypt with {identity}: {reason}")]
    NotOwner { path: String, identity: String, reason: String },
    #[error("{path}: {source}")]
    Io { path: Utf8PathBuf, source: std::io::Error },
    #[error("interrupted by signal {0}: the partial plaintext export was removed; nothing was exported")]
    Interrupted(i32),
}

fn io(path: &Utf8Path) -> impl FnOnce(std::io::Error) -> NscError + '_ {
    move |source| NscError::Io { path: path.to_owned(), source }
}

/// The plaintext nsc tree for a store: `stores/…` (JWTs, `.nsc`) and `keys/…`
/// (`keys/<P>/<XX>/<PUB>.nk`, `creds/<OP>/<A>/<U>.creds`, `.gitignore`).
pub fn export_tree(store: &Tree, identity: &Identity) -> Result<Tree, NscError> {
    if !store.contains_key(MANIFEST) {
        return Err(NscError::Input(format!("no {MANIFEST}: not a clan-nats store")));
    }
    let m = Manifest::from_tree(store).map_err(NscError::Input)?;
    // Names become paths of plaintext files: a damaged or hostile manifest must
    // not point them outside the export (e.g. a user named "../../x").
    let names = std::iter::once(&m.operator.name)
        .chain(m.accounts.iter().map(|a| &a.name))
        .chain(m.accounts.iter().flat_map(|a| a.users.iter().map(|u| &u.name)));
    for name in names {
        if let Some(p) = crate::config::validate::name_problem(name) {
            return Err(NscError::Input(format!("{MANIFEST}: {p}; run `clan-nats verify`")));
        }
    }
    let layout = Layout::with_format(&m.operator.name, m.layout);
    let decrypt = |path: &str| -> Result<Vec<u8>, NscError> {
        let ct = store.get(path).ok_or_else(|| NscError::Input(format!("{path}: missing")))?;
        identity.decrypt(ct).map_err(|e| NscError::NotOwner {
            path: path.to_string(),
            identity: identity.path.to_string(),
            reason: e.to_string(),
        })
    };
    let mut out = Tree::new();
    let root = format!("{}/", layout.store_root());
    for (path, bytes) in store.range(root.clone()..) {
        if !path.starts_with(&root) {
            break;
        }
        if !path.ends_with(".age") {
            out.insert(path.trim_start_matches("nsc/").to_string(), bytes.clone());
        }
    }
    for k in &m.keys {
        let seed = decrypt(&k.path)?;
        out.insert(k.path.trim_start_matches("nsc/").trim_end_matches(".age").to_string(), seed);
    }
    for a in &m.accounts {
        for u in &a.users {
            out.insert(format!("keys/creds/{}/{}/{}.creds", m.operator.name, a.name, u.name), decrypt(&u.creds)?);
        }
    }
    out.insert("keys/.gitignore".into(), GITIGNORE.as_bytes().to_vec());
    Ok(out)
}

/// The prefix of the directory an export is built in: `.clan-nats-export-<pid>-`.
const EXPORT_PREFIX: &str = ".clan-nats-export-";

/// Set by SIGINT/SIGTERM while an export is being written.
static INTERRUPTED: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    INTERRUPTED.store(sig, std::sync::atomic::Ordering::SeqCst);
}

/// SIGINT and SIGTERM only set a flag while this lives; the writer checks it
/// after every file and removes its plaintext before exiting.
struct SignalGuard {
    old: [libc::sigaction; 2],
}

impl SignalGuard {
    fn install() -> SignalGuard {
        INTERRUPTED.store(0, std::sync::atomic::Ordering::SeqCst);
        // SAFETY: sigaction with a handler that only stores to an atomic (async-signal-safe).
        unsafe {
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut new.sa_mask);
            let mut old: [libc::sigaction; 2] = std::mem::zeroed();
            libc::sigaction(libc::SIGINT, &new, &mut old[0]);
            libc::sigaction(libc::SIGTERM, &new, &mut old[1]);
            SignalGuard { old }
        }
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        // SAFETY: restores the handlers saved by `install`.
        unsafe {
            libc::sigaction(libc::SIGINT, &self.old[0], std::ptr::null_mut());
            libc::sigaction(libc::SIGTERM, &self.old[1], std::ptr::null_mut());
        }
    }
}

/// Remove the plaintext exports that interrupted runs (killed, or a machine
/// that went down) left in `parent`: directories of ours whose process is gone.
/// Returns what was removed, so the caller can say so.
pub fn remove_stale_exports(parent: &Utf8Path) -> Result<Vec<Utf8PathBuf>, NscError> {
    use std::os::unix::fs::MetadataExt;
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(parent) else { return Ok(removed) };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    for e in entries.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_string) else { continue };
        let Some(rest) = name.strip_prefix(EXPORT_PREFIX) else { continue };
        let pid: Option<i32> = rest.split('-').next().and_then(|p| p.parse().ok());
        // SAFETY: kill with signal 0 only checks whether the process exists.
        let alive = pid.is_some_and(|p| {
            p > 0
                && (unsafe { libc::kill(p, 0) } == 0
                    || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
        });
        let ours = fs::symlink_metadata(e.path()).is_ok_and(|m| m.is_dir() && m.uid() == me);
        if ours && !alive {
            let path = parent.join(&name);
            fs::remove_dir_all(&path).map_err(io(&path))?;
            removed.push(path);
        }
    }
    Ok(removed)
}

/// Write a plaintext tree with nsc's modes (directories 0700, files 0600) into
/// `to`, which must not exist or be empty. Built beside it, then renamed in.
/// An interrupted write (Ctrl-C, SIGTERM) removes what it wrote before it
/// exits; what a SIGKILL leaves is removed by the next export into the same
/// parent directory (returned, so the caller says so).
pub fn write_private(to: &Utf8Path, tree: &Tree) -> Result<Vec<Utf8PathBuf>, NscError> {
    if to.exists() && fs::read_dir(to).map_err(io(to))?.next().is_some() {
        return Err(NscError::Input(format!("{to}: exists and is not empty; refusing to write secrets into it")));
    }
    let parent = to.parent().filter(|p| !p.as_str().is_empty()).unwrap_or(Utf8Path::new("."));
    fs::DirBuilder::new().recursive(true).mode(0o700).create(parent).map_err(io(parent))?;
    let stale = remove_stale_exports(parent)?;
    let guard = SignalGuard::install();
    let prefix = format!("{EXPORT_PREFIX}{}-", std::process::id());
    let tmp = tempfile::Builder::new().prefix(&prefix).tempdir_in(parent).map_err(io(parent))?;
    let base = Utf8PathBuf::from_path_buf(tmp.path().to_path_buf())
        .map_err(|_| NscError::Input("temp path is not UTF-8".into()))?;
    fs::set_permissions(&base, fs::Permissions::from_mode(0o700)).map_err(io(&base))?;
    let interrupted = || INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst);
    for (rel, bytes) in tree {
        let plain = Utf8Path::new(rel).components().all(|c| matches!(c, camino::Utf8Component::Normal(_)));
        if !plain {
            return Err(NscError::Input(format!("refusing to write {rel:?}: not a plain relative path")));
        }
        let path = base.join(rel);
        if let Some(dir) = path.parent() {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(dir))?;
        }
        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(io(&path))?;
        f.write_all(bytes).map_err(io(&path))?;
        if interrupted() != 0 {
            break;
        }
    }
    let sig = interrupted();
    if sig != 0 {
        drop(tmp);
        drop(guard);
        return Err(NscError::Interrupted(sig));
    }
    if to.exists() {
        fs::remove_dir(to).map_err(io(to))?;
    }
    fs::rename(tmp.keep(), to).map_err(io(to))?;
    drop(guard);
    Ok(stale)
}

/// Read an nsc keystore: every `*.nk` under `keys_dir` (or `keys_dir/keys`) → public key → seed.
fn read_seeds(keys_dir: &Utf8Path) -> Result<HashMap<String, String>, NscError> {
    let mut seeds = HashMap::new();
    let mut stack = vec![keys_dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).map_err(io(&dir))? {
            let e = e.map_err(io(&dir))?;
            let path = Utf8PathBuf::from_path_buf(e.path())
                .map_err(|p| NscError::Input(format!("{}: not UTF-8", p.display())))?;
            if e.file_type().map_err(io(&path))?.is_dir() {
                stack.push(path);
            } else if path.extension() == Some("nk") {
                let text = fs::read_to_string(&path).map_err(io(&path))?;
                let kp = KeyPair::from_seed(text.trim())
                    .map_err(|e| NscError::Input(format!("{path}: not an nkey seed: {e}")))?;
                seeds.insert(kp.public_key(), text.trim().to_string());
            }
        }
    }
    Ok(seeds)
}

/// What importing the nsc operator under `stores` for `plan` would drop ([`crate::nsc_import`]).
pub fn import_losses(stores: &Utf8Path, plan: &Plan) -> Result<Vec<String>, NscError> {
    let stores = if stores.join("stores").is_dir() { stores.join("stores") } else { stores.to_owned() };
    crate::nsc_import::losses(&stores.join(&plan.operator), plan).map_err(NscError::Input)
}

/// The config JSON `raw` extended by what the nsc operator under `stores` holds
/// and the config can express ([`crate::nsc_import::adopt`]).
pub fn adopt_config(stores: &Utf8Path, plan: &Plan, raw: &serde_json::Value) -> Result<serde_json::Value, NscError> {
    let stores = if stores.join("stores").is_dir() { stores.join("stores") } else { stores.to_owned() };
    crate::nsc_import::adopt(raw, &stores.join(&plan.operator), plan).map_err(NscError::Input)
}

/// Write `bytes` to `path` atomically: a temp file beside it, checked by
/// `check`, then renamed over it. Nothing is left behind on failure.
pub fn write_atomic<E>(path: &Utf8Path, bytes: &[u8], check: impl FnOnce(&Utf8Path) -> Result<(), E>) -> Result<(), E>
where
    E: From<NscError>,
{
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_str().is_empty()).unwrap_or(Utf8Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".clan-nats-config.").tempfile_in(dir).map_err(io(dir))?;
    tmp.write_all(bytes).and_then(|_| tmp.as_file().sync_all()).map_err(io(path))?;
    let tmp_path = Utf8PathBuf::from_path_buf(tmp.path().to_path_buf())
        .map_err(|_| NscError::Input("non-UTF-8 temp path".into()))?;
    check(&tmp_path)?;
    tmp.persist(path).map_err(|e| NscError::Io { path: path.to_owned(), source: e.error })?;
    Ok(())
}

/// Keys to adopt from an nsc operator for the entities the plan names:
/// (role, account, user) → seed. Entities the plan does not name are ignored;
/// entities the nsc store lacks get new keys in `generate`.
pub fn import_keys(
    stores: &Utf8Path,
    keys_dir: &Utf8Path,
    plan: &Plan,
) -> Result<HashMap<(String, String, String), String>, NscError> {
    let stores = if stores.join("stores").is_dir() { stores.join("stores") } else { stores.to_owned() };
    let op_dir = stores.join(&plan.operator);
    if !op_dir.is_dir() {
        let found: Vec<String> = fs::read_dir(&stores)
            .map_err(io(&stores))?
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        return Err(NscError::Input(format!(
            "{stores}: no operator {:?} (found: {}); the config's operator name must match",
            plan.operator,
            found.join(", ")
        )));
    }
    let seeds = read_seeds(keys_dir)?;
    let read = |path: Utf8PathBuf| fs::read_to_string(&path).map_err(io(&path));
    let op = OperatorClaims::decode(&read(op_dir.join(format!("{}.jwt", plan.operator)))?)
        .map_err(|e| NscError::Input(format!("{op_dir}: operator JWT: {e}")))?;
    let mut out = HashMap::new();
    let mut put = |role: &str, account: &str, user: &str, public: &str, required: bool| -> Result<(), NscError> {
        match seeds.get(public) {
            Some(seed) => {
                out.insert((role.to_string(), account.to_string(), user.to_string()), seed.clone());
                Ok(())
            }
            None if required => {
                let who = match (role, account, user) {
                    ("operator" | "operator-signing", _, _) => format!("{role} {}", plan.operator),
                    (_, a, "") => format!("{role} {a}"),
                    (_, a, u) => format!("{role} {a}/{u}"),
                };
                Err(NscError::Input(format!(
                    "{keys_dir}: no seed for {who} ({public}); a missing key is not replaced by a new one: restore it, or leave the entity out of the config"
                )))
            }
            None => Ok(()),
        }
    };
    put("operator", "", "", &op.std.sub, true)?;
    // The first signing key (others are listed by nsc_import::losses); its seed must be there.
    if let Some(sk) = op.nats.signing_keys.first() {
        put("operator-signing", "", "", sk, true)?;
    }
    for a in &plan.accounts {
        let path = op_dir.join("accounts").join(&a.name).join(format!("{}.jwt", a.name));
        if !path.exists() {
            continue;
        }
        let ac = AccountClaims::decode(&read(path.clone())?).map_err(|e| NscError::Input(format!("{path}: {e}")))?;
        put("account", &a.name, "", &ac.std.sub, true)?;
        let plain = ac.nats.signing_keys.iter().find(|k| matches!(k, crate::jwt::account::SigningKey::Key(_)));
        if let Some(sk) = plain {
            put("account-signing", &a.name, "", sk.key(), true)?;
        }
        for r in &a.roles {
            if let Some(s) = ac.scope_of_role(&r.name) {
                put("account-scoped", &a.name, &r.name, &s.key, true)?;
            }
        }
        for u in &a.users {
            let upath = op_dir.join("accounts").join(&a.name).join("users").join(format!("{}.jwt", u.name));
            if let Ok(tok) = fs::read_to_string(&upath) {
                let uc = UserClaims::decode(&tok).map_err(|e| NscError::Input(format!("{upath}: {e}")))?;
                put("user", &a.name, &u.name, &uc.std.sub, true)?;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_export_are_refused() {
        let base = tempfile::tempdir().unwrap();
        let to = Utf8PathBuf::from_path_buf(base.path().join("out")).unwrap();
        let mut tree = Tree::new();
        tree.insert("keys/creds/op/a/../../../../escaped.creds".into(), b"secret".to_vec());
        let err = write_private(&to, &tree).unwrap_err().to_string();
        assert!(err.contains("not a plain relative path"), "{err}");
        assert!(!base.path().join("escaped.creds").exists());
        assert!(!to.exists());
    }
}

//! age: recipients, identities, encryption. The only module that touches the age crate.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::str::FromStr;

use camino::{Utf8Path, Utf8PathBuf};

/// The first line of an OpenSSH private key file (assembled, so that this
/// source holds no line a secret scanner takes for a key).
const OPENSSH_BEGIN: &str = concat!("-----BEGIN OPENSSH ", "PRIVATE KEY-----");

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("{0:?} is not a valid age recipient: expected an X25519 recipient (age1…) or an ssh-ed25519 public key")]
    BadRecipient(String),
    #[error("{path}: {message}")]
    Identity { path: Utf8PathBuf, message: String },
    /// An identity file someone else could have planted or read.
    #[error("{path}: {message}")]
    UntrustedIdentity { path: Utf8PathBuf, message: String },
    #[error("cannot encrypt: {0}")]
    Encrypt(String),
    #[error("cannot decrypt: {0}")]
    Decrypt(String),
}

/// A parsed recipient, kept with the text it came from (the text is what the
/// manifest records and what recipient sets are compared by).
pub struct Recipient {
    pub text: String,
    inner: Box<dyn age::Recipient + Send + Sync>,
}

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parse `age1…` (X25519) or `ssh-ed25519 AAAA… [comment]`. The comment of an
/// ssh key is dropped from the canonical text.
pub fn parse_recipient(text: &str) -> Result<Recipient, VaultError> {
    let t = text.trim();
    if t.starts_with("age1") {
        let r = age::x25519::Recipient::from_str(t).map_err(|_| VaultError::BadRecipient(text.into()))?;
        return Ok(Recipient { text: r.to_string(), inner: Box::new(r) });
    }
    if t.starts_with("ssh-ed25519 ") {
        let canonical: Vec<&str> = t.split_whitespace().take(2).collect();
        let canonical = canonical.join(" ");
        let r = age::ssh::Recipient::from_str(&canonical).map_err(|_| VaultError::BadRecipient(text.into()))?;
        return Ok(Recipient { text: canonical, inner: Box::new(r) });
    }
    Err(VaultError::BadRecipient(text.into()))
}

/// Encrypt to every recipient (binary age format). Randomized: equal inputs give
/// different ciphertexts, which is why reconcile keeps unchanged files as they are.
pub fn encrypt(plaintext: &[u8], recipients: &[&Recipient]) -> Result<Vec<u8>, VaultError> {
    let rs = recipients.iter().map(|r| r.inner.as_ref() as &dyn age::Recipient);
    let enc = age::Encryptor::with_recipients(rs).map_err(|e| VaultError::Encrypt(e.to_string()))?;
    let mut out = Vec::with_capacity(plaintext.len() + 200 * recipients.len() + 64);
    let mut w = enc.wrap_output(&mut out).map_err(|e| VaultError::Encrypt(e.to_string()))?;
    w.write_all(plaintext).and_then(|_| w.finish()).map_err(|e| VaultError::Encrypt(e.to_string()))?;
    Ok(out)
}

/// An identity that can decrypt: the owner's X25519 key, or an ssh-ed25519 private key.
pub struct Identity {
    pub path: Utf8PathBuf,
    inner: Vec<Box<dyn age::Identity + Send + Sync>>,
    /// The recipients of this identity (what it can decrypt).
    pub recipients: Vec<String>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({}, {:?})", self.path, self.recipients)
    }
}

/// What a creation killed before its last step left beside `path`
/// (`.NAME.clan-nats-new-PID` of a process that is gone): removed, since it
/// holds a secret key.
fn remove_stale_new_identities(path: &Utf8Path) {
    let Some(name) = path.file_name() else { return };
    let prefix = format!(".{name}.clan-nats-new-");
    let parent = path.parent().filter(|p| !p.as_str().is_empty()).unwrap_or(Utf8Path::new("."));
    let Ok(entries) = fs::read_dir(parent) else { return };
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(pid) = file.to_str().and_then(|f| f.strip_prefix(&prefix)).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // SAFETY: signal 0 only checks whether the process exists.
        let alive = pid == std::process::id() as i32
            || unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive {
            let _ = fs::remove_file(e.path());
        }
    }
}

impl Identity {
    /// Read an identity file: age identities (age secret key lines, as age-keygen writes them) or an
    /// unencrypted OpenSSH ed25519 private key.
    ///
    /// Like ssh, an identity file that another user owns, or that group or
    /// others may read or write, is refused: in a shared directory anyone
    /// could have planted it (and then reads everything encrypted to it).
    pub fn load(path: &Utf8Path) -> Result<Identity, VaultError> {
        let err = |message: String| VaultError::Identity { path: path.to_owned(), message };
        check_private(path).map_err(|message| VaultError::UntrustedIdentity { path: path.to_owned(), message })?;
        let data = fs::read(path).map_err(|e| err(format!("cannot read identity: {e}")))?;
        let text = String::from_utf8_lossy(&data);
        if text.contains(OPENSSH_BEGIN) {
            let id = age::ssh::Identity::from_buffer(&data[..], Some(path.to_string()))
                .map_err(|e| err(format!("not a usable ssh private key: {e}")))?;
            let pubkey = ssh_public_of(path)?;
            return match id {
                age::ssh::Identity::Unencrypted(_) => Ok(Identity {
                    path: path.to_owned(),
                    inner: vec![Box::new(id)],
                    recipients: pubkey.into_iter().collect(),
                }),
                age::ssh::Identity::Encrypted(key) => {
                    let passphrase = ssh_passphrase(path).map_err(err)?;
                    let key: age::ssh::Identity = key
                        .decrypt(passphrase)
                        .map_err(|_| err("wrong passphrase for this ssh key (or a key type age cannot use)".into()))?
                        .into();
                    Ok(Identity {
                        path: path.to_owned(),
                        inner: vec![Box::new(key)],
                        recipients: pubkey.into_iter().collect(),
                    })
                }
                age::ssh::Identity::Unsupported(k) => {
                    Err(err(format!("an ssh key age cannot use ({k:?}); use an ed25519 or RSA key or an age identity")))
                }
            };
        }
        let mut inner: Vec<Box<dyn age::Identity + Send + Sync>> = Vec::new();
        let mut recipients = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let id = age::x25519::Identity::from_str(line).map_err(|_| {
                err(format!("line {}: not an age identity (a secret key line as age-keygen writes it)", n + 1))
            })?;
            recipients.push(id.to_public().to_string());
            inner.push(Box::new(id));
        }
        if inner.is_empty() {
            return Err(err("no identity in file".into()));
        }
        Ok(Identity { path: path.to_owned(), inner, recipients })
    }

    /// Load `path`, or create a new X25519 identity there (mode 0600, never
    /// overwriting). Returns the identity and whether it was created.
    pub fn load_or_create(path: &Utf8Path) -> Result<(Identity, bool), VaultError> {
        remove_stale_new_identities(path);
        if path.symlink_metadata().is_ok() && !path.exists() {
            return Err(VaultError::Identity {
                path: path.to_owned(),
                message: "a dangling symbolic link: it points to no identity, and none is created through it".into(),
            });
        }
        if path.exists() {
            return Ok((Identity::load(path)?, false));
        }
        let err = |message: String| VaultError::Identity { path: path.to_owned(), message };
        let id = age::x25519::Identity::generate();
        let public = id.to_public().to_string();
        let secret = {
            use age::secrecy::ExposeSecret;
            id.to_string().expose_secret().to_string()
        };
        // Never `mkdir -p`: a mistyped directory is an error, not a new place for the key.
        if let Some(parent) = path.parent().filter(|p| !p.as_str().is_empty()) {
            if !parent.is_dir() {
                return Err(err(format!("directory {parent} does not exist (it is not created: check the path)")));
            }
        }
        // Written whole beside the target, then linked into place (never
        // overwriting): a run killed half-way leaves no truncated identity.
        let name = path.file_name().unwrap_or("identity");
        let tmp = path.with_file_name(format!(".{name}.clan-nats-new-{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        let written = (|| -> std::io::Result<()> {
            let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
            writeln!(f, "# clan-nats age identity: keep it secret, keep a backup.\n# public key: {public}\n{secret}")?;
            f.sync_all()?;
            match fs::hard_link(&tmp, path) {
                // No hard links here (vfat, some FUSE and network filesystems):
                // create the file itself, never overwriting; on a failed write
                // it is removed, so no truncated identity stays.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EPERM | libc::EOPNOTSUPP | libc::EXDEV | libc::EMLINK)
                    ) =>
                {
                    let direct = (|| -> std::io::Result<()> {
                        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
                        writeln!(f, "# clan-nats age identity: keep it secret, keep a backup.\n# public key: {public}\n{secret}")?;
                        f.sync_all()
                    })();
                    if direct.is_err() {
                        let _ = fs::remove_file(path);
                    }
                    direct
                }
                other => other,
            }
        })();
        let _ = fs::remove_file(&tmp);
        written.map_err(|e| err(format!("cannot create identity: {e}")))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_str().is_empty()) {
            let _ = fs::File::open(parent).and_then(|d| d.sync_all());
        }
        Ok((Identity { path: path.to_owned(), inner: vec![Box::new(id)], recipients: vec![public] }, true))
    }

    /// A new X25519 identity held only in memory (for a dry run on a new
    /// store: nothing may be written, not even the owner's key).
    pub fn ephemeral(path: &Utf8Path) -> Identity {
        let id = age::x25519::Identity::generate();
        let public = id.to_public().to_string();
        Identity { path: path.to_owned(), inner: vec![Box::new(id)], recipients: vec![public] }
    }

    /// Decrypt an age file with this identity.
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, VaultError> {
        let d = age::Decryptor::new_buffered(ciphertext).map_err(|e| VaultError::Decrypt(e.to_string()))?;
        let mut r = d
            .decrypt(self.inner.iter().map(|i| i.as_ref() as &dyn age::Identity))
            .map_err(|e| VaultError::Decrypt(e.to_string()))?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).map_err(|e| VaultError::Decrypt(e.to_string()))?;
        Ok(out)
    }
}

/// Why a private key file cannot be trusted, or `Ok`.
fn check_private(path: &Utf8Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).map_err(|e| format!("cannot read identity: {e}"))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!(
            "the identity file is owned by uid {}, not by you (uid {me}); refusing to use it (anyone who could place it there would read what is encrypted to it)",
            meta.uid()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "the identity file is accessible by group or others (mode {:04o}); refusing to use it: chmod 600 {path}",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// The public key of an ssh private key: from the key file itself (the
/// `openssh-key-v1` container carries it unencrypted), else from `KEY.pub`.
fn ssh_public_of(path: &Utf8Path) -> Result<Option<String>, VaultError> {
    if let Some(k) = fs::read_to_string(path).ok().and_then(|t| ssh_public_in_private(&t)) {
        return Ok(Some(k));
    }
    let pub_path = Utf8PathBuf::from(format!("{path}.pub"));
    match fs::read_to_string(&pub_path) {
        Ok(t) => Ok(Some(parse_recipient(&t)?.text)),
        Err(_) => Ok(None),
    }
}

/// The passphrase of a protected ssh key, read once per run: from the file
/// `$CLAN_NATS_SSH_PASSPHRASE_FILE` names (it must be private, like an
/// identity), else asked on the terminal without echo. Never from argv.
fn ssh_passphrase(path: &Utf8Path) -> Result<age::secrecy::SecretString, String> {
    if let Some(file) = std::env::var_os("CLAN_NATS_SSH_PASSPHRASE_FILE") {
        let file = Utf8PathBuf::from_path_buf(file.into())
            .map_err(|_| "CLAN_NATS_SSH_PASSPHRASE_FILE is not UTF-8".to_string())?;
        check_private(&file).map_err(|m| format!("CLAN_NATS_SSH_PASSPHRASE_FILE {file}: {m}"))?;
        let text = fs::read_to_string(&file).map_err(|e| format!("CLAN_NATS_SSH_PASSPHRASE_FILE {file}: {e}"))?;
        let line = text.lines().next().unwrap_or_default().to_string();
        return Ok(age::secrecy::SecretString::from(line));
    }
    rpassword::prompt_password(format!("passphrase for {path}: "))
        .map(age::secrecy::SecretString::from)
        .map_err(|e| format!("this ssh key is passphrase-protected and there is no terminal to ask on ({e}); set CLAN_NATS_SSH_PASSPHRASE_FILE to a private file holding it"))
}

/// `ssh-ed25519 <base64>` from an OpenSSH private key file: magic
/// `openssh-key-v1\0`, then cipher, kdf, kdf options (strings), the key
/// count (u32) and the first public key blob (a string).
fn ssh_public_in_private(text: &str) -> Option<String> {
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with(OPENSSH_BEGIN))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let bytes = data_encoding::BASE64.decode(body.trim().as_bytes()).ok()?;
    let mut rest = bytes.strip_prefix(b"openssh-key-v1\0")?;
    let mut string = || -> Option<Vec<u8>> {
        let n = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let v = rest.get(4..4 + n)?.to_vec();
        rest = &rest[4 + n..];
        Some(v)
    };
    let (_cipher, _kdf, _opts) = (string()?, string()?, string()?);
    let count = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    rest = &rest[4..];
    if count != 1 {
        return None;
    }
    let blob = {
        let n = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        rest.get(4..4 + n)?.to_vec()
    };
    let key = format!("ssh-ed25519 {}", data_encoding::BASE64.encode(&blob));
    parse_recipient(&key).ok().map(|r| r.text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A creation killed before its link leaves only a dot-file of a dead
    /// process, which the next creation removes; the identity is whole or absent.
    #[test]
    fn identity_creation_is_atomic_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let p = Utf8PathBuf::from_path_buf(dir.path().join("owner.key")).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = dir.path().join(format!(".owner.key.clan-nats-new-{dead}"));
        fs::write(&stale, "# a half-written identity of a killed run").unwrap();
        let unrelated = dir.path().join(".owner.key.clan-nats-new-notapid");
        fs::write(&unrelated, "x").unwrap();
        let (id, created) = Identity::load_or_create(&p).unwrap();
        assert!(created);
        assert!(!stale.exists(), "the dead run's key is removed");
        assert!(unrelated.exists(), "names that are not ours are left alone");
        let names: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names.len(), 2, "no temporary file of this run is left: {names:?}");
        assert_eq!(Identity::load(&p).unwrap().recipients, id.recipients);
        assert!(Identity::load_or_create(&Utf8PathBuf::from_path_buf(dir.path().join("no/dir/k")).unwrap()).is_err());
        assert!(!dir.path().join("no").exists(), "no directory is created");
    }

    #[test]
    fn round_trip_to_two_recipients() {
        let dir = tempfile::tempdir().unwrap();
        let p1 = Utf8PathBuf::from_path_buf(dir.path().join("a.key")).unwrap();
        let p2 = Utf8PathBuf::from_path_buf(dir.path().join("b.key")).unwrap();
        let (a, created) = Identity::load_or_create(&p1).unwrap();
        assert!(created);
        assert_eq!(fs::metadata(&p1).unwrap().permissions().mode() & 0o777, 0o600);
        let (b, _) = Identity::load_or_create(&p2).unwrap();
        let (a2, created) = Identity::load_or_create(&p1).unwrap();
        assert!(!created);
        assert_eq!(a2.recipients, a.recipients);
        let ra = parse_recipient(&a.recipients[0]).unwrap();
        let ct = encrypt(b"secret", &[&ra]).unwrap();
        assert_eq!(a.decrypt(&ct).unwrap(), b"secret");
        assert!(b.decrypt(&ct).is_err());
        let rb = parse_recipient(&b.recipients[0]).unwrap();
        let ct2 = encrypt(b"both", &[&ra, &rb]).unwrap();
        assert_eq!(b.decrypt(&ct2).unwrap(), b"both");
        assert_ne!(encrypt(b"both", &[&ra]).unwrap(), encrypt(b"both", &[&ra]).unwrap());
    }

    #[test]
    fn identities_others_can_read_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = Utf8PathBuf::from_path_buf(dir.path().join("owner.key")).unwrap();
        Identity::load_or_create(&p).unwrap();
        for mode in [0o640, 0o604, 0o660] {
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            let e = Identity::load(&p).unwrap_err().to_string();
            assert!(e.contains(&format!("accessible by group or others (mode {mode:04o})")), "{e}");
            assert!(e.starts_with(p.as_str()), "{e}");
        }
        fs::set_permissions(&p, fs::Permissions::from_mode(0o400)).unwrap();
        Identity::load(&p).unwrap();
    }

    #[test]
    fn the_public_key_of_an_ssh_identity_comes_from_the_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/insecure/nats1.ssh_host_ed25519_key");
        let p = Utf8PathBuf::from_path_buf(dir.path().join("key")).unwrap();
        fs::copy(fixture, &p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        // No KEY.pub beside it: the public half is read from the private key file.
        let id = Identity::load(&p).unwrap();
        let expected = fs::read_to_string(format!("{fixture}.pub")).unwrap();
        assert_eq!(id.recipients, [parse_recipient(&expected).unwrap().text]);
    }

    #[test]
    fn recipients() {
        assert!(parse_recipient("age1notvalid").is_err());
        assert!(parse_recipient("ssh-rsa AAAA").is_err());
        assert!(parse_recipient("").is_err());
        let ssh = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFEuixEtABRP1/l/62DXTFQrXD4fw9a6fzS6ELSFJRJE host@example";
        assert_eq!(parse_recipient(ssh).unwrap().text, ssh.rsplit_once(' ').unwrap().0);
        let msg = parse_recipient("nope").unwrap_err().to_string();
        assert!(msg.contains("\"nope\""), "{msg}");
    }
}

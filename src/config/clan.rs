//! Host recipients taken from a clan directory: a host whose `age_recipient`
//! is `"clan:<machine>"` gets the public key clan itself keeps for that
//! machine, looked up in this order (the first that exists wins):
//!
//! 1. `sops/machines/<machine>/key.json`: clan's sops secret store
//!    (`[{"publickey": "age1…", "type": "age"}]`);
//! 2. `secrets/age-keys/machines/<machine>/pub`: clan's age secret store (`age1…`);
//! 3. `vars/per-machine/<machine>/openssh/ssh.id_ed25519.pub/value`: the
//!    ed25519 host key that clan's `sshd` service generates as a clan var.
//!
//! The clan directory is `--clan-dir`, else `$CLAN_NATS_CLAN_DIR` (which
//! `nix run .#generate` sets to the flake root it runs in).

use camino::{Utf8Path, Utf8PathBuf};

use super::{Config, ConfigError, Issue};

/// The prefix of a recipient taken from the clan directory.
pub const PREFIX: &str = "clan:";
/// The environment variable naming the clan directory when `--clan-dir` is not given.
pub const ENV: &str = "CLAN_NATS_CLAN_DIR";

/// The files tried for a machine, in order, relative to the clan directory.
pub fn candidates(machine: &str) -> [String; 3] {
    [
        format!("sops/machines/{machine}/key.json"),
        format!("secrets/age-keys/machines/{machine}/pub"),
        format!("vars/per-machine/{machine}/openssh/ssh.id_ed25519.pub/value"),
    ]
}

/// A clan machine name: a single path component (no `/`, no leading `.`).
fn valid_machine(m: &str) -> bool {
    !m.is_empty()
        && !m.starts_with('.')
        && m.len() <= 253
        && m.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The recipient in one candidate file, or why the file is not usable.
fn read_candidate(path: &Utf8Path, index: usize) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    if index == 0 {
        // sops/machines/<m>/key.json: a list of keys (clan-core), or one object (older clans).
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{path}: not JSON: {e}"))?;
        let entries = match &v {
            serde_json::Value::Array(a) => a.clone(),
            o @ serde_json::Value::Object(_) => vec![o.clone()],
            _ => Vec::new(),
        };
        entries
            .iter()
            .find(|e| e.get("type").and_then(|t| t.as_str()).unwrap_or("age") == "age")
            .and_then(|e| e.get("publickey").and_then(|p| p.as_str()))
            .map(|p| p.trim().to_string())
            .ok_or_else(|| format!("{path}: no entry {{\"publickey\": \"age1…\", \"type\": \"age\"}}"))
    } else {
        let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
        if line.is_empty() {
            return Err(format!("{path} is empty"));
        }
        // An ssh public key: keep type and key, drop the comment.
        let parts: Vec<&str> = line.split_whitespace().collect();
        Ok(if parts.len() >= 2 && parts[0].starts_with("ssh-") {
            format!("{} {}", parts[0], parts[1])
        } else {
            line.to_string()
        })
    }
}

/// The recipient clan keeps for `machine` under `clan_dir`, with the file it came from.
pub fn lookup(clan_dir: &Utf8Path, machine: &str) -> Result<(String, Utf8PathBuf), String> {
    if !valid_machine(machine) {
        return Err(format!(
            "\"{PREFIX}{machine}\": {machine:?} is not a clan machine name ([A-Za-z0-9._-], not starting with .)"
        ));
    }
    let tried = candidates(machine);
    for (i, rel) in tried.iter().enumerate() {
        let path = clan_dir.join(rel);
        if path.exists() {
            let r = read_candidate(&path, i)?;
            crate::vault::parse_recipient(&r).map_err(|e| format!("{path}: {e}"))?;
            return Ok((r, path));
        }
    }
    Err(format!(
        "\"{PREFIX}{machine}\": clan machine {machine:?} has no public key in the clan directory {clan_dir}: looked for {}",
        tried.join(", ")
    ))
}

/// Replace every `clan:<machine>` host recipient of `cfg` by the machine's
/// key from the clan directory (`clan_dir`, else `$CLAN_NATS_CLAN_DIR`).
/// Errors name `file` and the field path `hosts[i].age_recipient`. A config
/// without `clan:` recipients needs no clan directory.
pub fn resolve(cfg: &mut Config, file: &Utf8Path, clan_dir: Option<&Utf8Path>) -> Result<(), ConfigError> {
    let from_env = std::env::var_os(ENV).map(|v| Utf8PathBuf::from(v.to_string_lossy().into_owned()));
    let dir = clan_dir.map(Utf8Path::to_owned).or(from_env);
    let mut issues = Vec::new();
    for (i, h) in cfg.hosts.iter_mut().enumerate() {
        let Some(machine) = h.age_recipient.trim().strip_prefix(PREFIX) else { continue };
        let path = format!("hosts[{i}].age_recipient");
        let result = match &dir {
            None => Err(format!(
                "\"{PREFIX}{machine}\" needs a clan directory: pass --clan-dir DIR (or set ${ENV}; \
                 `nix run .#generate` sets it to the flake root)"
            )),
            Some(d) => lookup(d, machine).map(|(r, _)| r),
        };
        match result {
            Ok(r) => h.age_recipient = r,
            Err(message) => issues.push(Issue { path, message }),
        }
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(ConfigError { file: file.to_owned(), issues })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGE: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
    const SSH: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMbdkWHTbNh0BWbGt7BlQ8K4cqKiSuvLrH5hPbuRvy1l";

    fn write(dir: &Utf8Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn tmp() -> (tempfile::TempDir, Utf8PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let p = Utf8PathBuf::from_path_buf(t.path().to_path_buf()).unwrap();
        (t, p)
    }

    #[test]
    fn each_clan_store_is_found() {
        let (_t, d) = tmp();
        write(&d, "sops/machines/a/key.json", &format!(r#"[{{"publickey": "{AGE}", "type": "age"}}]"#));
        write(&d, "secrets/age-keys/machines/b/pub", &format!("{AGE}\n"));
        write(&d, "vars/per-machine/c/openssh/ssh.id_ed25519.pub/value", &format!("{SSH} root@c\n"));
        assert_eq!(lookup(&d, "a").unwrap().0, AGE);
        assert_eq!(lookup(&d, "b").unwrap().0, AGE);
        assert_eq!(lookup(&d, "c").unwrap().0, SSH, "the comment is dropped");
        assert!(lookup(&d, "c").unwrap().1.ends_with("ssh.id_ed25519.pub/value"));
    }

    #[test]
    fn the_sops_key_comes_first_then_age_then_openssh() {
        let (_t, d) = tmp();
        write(&d, "vars/per-machine/m/openssh/ssh.id_ed25519.pub/value", SSH);
        assert_eq!(lookup(&d, "m").unwrap().0, SSH);
        write(&d, "secrets/age-keys/machines/m/pub", AGE);
        assert!(lookup(&d, "m").unwrap().1.ends_with("secrets/age-keys/machines/m/pub"));
        write(&d, "sops/machines/m/key.json", &format!(r#"{{"publickey": "{AGE}", "type": "age"}}"#));
        assert!(lookup(&d, "m").unwrap().1.ends_with("sops/machines/m/key.json"));
    }

    #[test]
    fn a_missing_machine_names_every_file_looked_for() {
        let (_t, d) = tmp();
        let e = lookup(&d, "ghost").unwrap_err();
        for rel in candidates("ghost") {
            assert!(e.contains(&rel), "{e}");
        }
        assert!(e.contains(d.as_str()), "{e}");
    }

    #[test]
    fn bad_names_and_bad_files_are_errors() {
        let (_t, d) = tmp();
        assert!(lookup(&d, "../etc").unwrap_err().contains("not a clan machine name"));
        assert!(lookup(&d, "a/b").is_err());
        write(&d, "sops/machines/x/key.json", "[]");
        assert!(lookup(&d, "x").unwrap_err().contains("no entry"));
        write(&d, "secrets/age-keys/machines/y/pub", "age1notakey");
        assert!(lookup(&d, "y").unwrap_err().contains("secrets/age-keys/machines/y/pub"));
    }

    #[test]
    fn resolve_replaces_clan_recipients_and_reports_field_paths() {
        let (_t, d) = tmp();
        write(&d, "secrets/age-keys/machines/ok/pub", AGE);
        let text = format!(
            r#"{{"organization": {{"name": "acme"}}, "hosts": [
                {{"name": "ok", "age_recipient": "clan:ok"}},
                {{"name": "plain", "age_recipient": "{AGE}"}},
                {{"name": "gone", "age_recipient": "clan:gone"}}]}}"#
        );
        let file = Utf8Path::new("org.json");
        let mut cfg = super::super::parse(file, &text).unwrap();
        let e = resolve(&mut cfg, file, Some(&d)).unwrap_err();
        assert_eq!(e.issues.len(), 1, "{e}");
        assert_eq!(e.issues[0].path, "hosts[2].age_recipient");
        assert!(e.to_string().starts_with("org.json: hosts[2].age_recipient: \"clan:gone\""), "{e}");
        assert_eq!(cfg.hosts[0].age_recipient, AGE);
        assert_eq!(cfg.hosts[1].age_recipient, AGE);
    }
}

//! Keys whose private halves are committed to this repository as TEST-ONLY
//! fixtures (tests/fixtures/insecure/): anything encrypted to them is public.
//! A config or `--recipient` naming one is refused unless the run says
//! `--allow-insecure-fixture-keys` (tests do, through its environment variable).

use super::{Config, ConfigError, Issue};
use camino::Utf8Path;

/// (public recipient, the committed file holding its private half).
pub const INSECURE_FIXTURE_RECIPIENTS: &[(&str, &str)] = &[
    (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOc0M6a3oByIdg0vq8MZFtVrckVLcNJX7KozNhtqKxOp",
        "tests/fixtures/insecure/nats1.ssh_host_ed25519_key",
    ),
    (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPY/IM6/ivWO0ozkPa+7EZtZJEYxh9Hc9LsT5OVpv61K",
        "tests/fixtures/insecure/core1.ssh_host_ed25519_key",
    ),
    ("age1zyt4sf3qdxw5q9ey9pcctpc2vdc8l6azqzh3macw95r5rc42j4yqaeup90", "tests/fixtures/insecure/media1.agekey"),
    ("age1ckg87dsh8dslhxm0p0g3vu3ykr2peggagrnguj6v0mwswj4pyasqwuztah", "tests/fixtures/insecure/dev1.agekey"),
    ("age136npku5pcwq9rxley7msmg3jwartcfyaw4wyntuy7ka37xs4fcfs3zyst9", "tests/fixtures/insecure/format1-owner.agekey"),
];

/// The committed file whose private key `recipient` is, if it is one
/// (ssh keys compared by type and key, without the comment).
pub fn insecure_fixture(recipient: &str) -> Option<&'static str> {
    let key = |r: &str| r.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let wanted = key(recipient);
    INSECURE_FIXTURE_RECIPIENTS.iter().find(|(r, _)| key(r) == wanted).map(|(_, f)| *f)
}

const ALLOW: &str = "--allow-insecure-fixture-keys";

/// Every host recipient of `cfg` and every admin recipient that is a committed
/// test key, as errors with their field paths.
pub fn check(file: &Utf8Path, cfg: Option<&Config>, admins: &[String]) -> Result<(), ConfigError> {
    let mut issues = Vec::new();
    for (i, h) in cfg.map(|c| c.hosts.as_slice()).unwrap_or_default().iter().enumerate() {
        if let Some(f) = insecure_fixture(&h.age_recipient) {
            issues.push(Issue {
                path: format!("hosts[{i}].age_recipient"),
                message: format!(
                    "this is a committed TEST-ONLY key ({f}): its private half is public, so anything encrypted to it is readable by anyone; use host {:?}'s own public key (or pass {ALLOW} in tests)",
                    h.name
                ),
            });
        }
    }
    for (i, r) in admins.iter().enumerate() {
        if let Some(f) = insecure_fixture(r) {
            issues.push(Issue {
                path: format!("--recipient #{}", i + 1),
                message: format!(
                    "this is a committed TEST-ONLY key ({f}): its private half is public (pass {ALLOW} in tests)"
                ),
            });
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

    /// The list is exactly the public halves of the committed private keys.
    #[test]
    fn the_list_matches_the_committed_keys() {
        let root = env!("CARGO_MANIFEST_DIR");
        let dir = std::path::Path::new(root).join("tests/fixtures/insecure");
        let mut found = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if !p.is_file() {
                continue;
            }
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            let text = std::fs::read_to_string(&p).unwrap();
            if name.ends_with(".agekey") {
                let public = text.lines().find_map(|l| l.strip_prefix("# public key: ")).unwrap().trim().to_string();
                found.push((public, format!("tests/fixtures/insecure/{name}")));
            } else if text.contains("OPENSSH PRIVATE KEY") {
                let public = std::fs::read_to_string(dir.join(format!("{name}.pub"))).unwrap();
                let public = public.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
                found.push((public, format!("tests/fixtures/insecure/{name}")));
            }
        }
        found.sort();
        let mut listed: Vec<(String, String)> =
            INSECURE_FIXTURE_RECIPIENTS.iter().map(|(r, f)| (r.to_string(), f.to_string())).collect();
        listed.sort();
        assert_eq!(found, listed);
        assert_eq!(
            insecure_fixture(
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOc0M6a3oByIdg0vq8MZFtVrckVLcNJX7KozNhtqKxOp root@nats1"
            ),
            Some("tests/fixtures/insecure/nats1.ssh_host_ed25519_key")
        );
        assert_eq!(insecure_fixture("age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"), None);
    }
}

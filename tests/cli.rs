//! The command line as users of nsc, sops and terraform expect it (issue 13):
//! aliases of the store argument, completions and a man page, secrets and
//! configs from standard input or `@FILE`, identities never created by
//! accident, errors as JSON, schema and semantic errors together, a closed
//! pipe as a quiet exit.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::Value;

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    o
}

fn with_stdin(mut c: Command, input: &[u8]) -> Output {
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `--dir`, `--out` and a positional DIR name the same store everywhere.
#[test]
fn every_spelling_of_the_store_argument_works() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    let (d, k, cfg) = (dir.to_str().unwrap(), key.to_str().unwrap(), example());
    let c = cfg.to_str().unwrap();
    ok(run(&["generate", "--config", c, "--dir", d, "--identity", k, "--new-identity"]));
    let unchanged = |o: Output| assert!(String::from_utf8_lossy(&ok(o).stdout).contains("unchanged"));
    unchanged(run(&["generate", "--config", c, "--out", d, "--identity", k]));
    unchanged(run(&["generate", "--config", c, "--dir", d, "--identity", k]));
    for args in [vec!["verify", d], vec!["verify", "--dir", d], vec!["verify", "--out", d]] {
        let out = String::from_utf8(ok(run(&args)).stdout).unwrap();
        assert!(out.starts_with(&format!("{d}: ok: 4 account(s), 12 user(s)")), "{args:?}: {out}");
    }
    for args in
        [vec!["info", d], vec!["info", "--dir", d], vec!["vault", "status", "--out", d], vec!["team", "list", d]]
    {
        ok(run(&args));
    }
    ok(run(&["rotate", "user", "audio-service", "--out", d, "--identity", k]));
    ok(run(&["rotate", "user", "audio-service", "--dir", d, "--identity", k]));
    let o = run(&["verify", "--dir", d, d]);
    assert_eq!(o.status.code(), Some(2), "both forms at once are refused: {}", stderr(&o));
}

/// Shell completions and the man page are generated from the same definition.
#[test]
fn completions_and_man_page_are_generated() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let o = ok(bin().args(["completions", shell]).env_remove("HOME").output().unwrap());
        let s = String::from_utf8(o.stdout).unwrap();
        assert!(s.contains("clan-nats") && s.contains("describe") && s.contains("export-nsc"), "{shell}: {s:.300}");
    }
    let bash = String::from_utf8(ok(run(&["completions", "bash"])).stdout).unwrap();
    assert!(bash.contains("complete -F") && bash.contains("--new-identity"), "{bash:.300}");
    let man = String::from_utf8(ok(run(&["man"])).stdout).unwrap();
    assert!(man.starts_with(".ie") || man.starts_with(".TH"), "{man:.200}");
    assert!(man.contains(".TH clan-nats") && man.contains("generate"), "{man:.400}");
    // Every subcommand's help has text for every argument, and examples where promised.
    let help = String::from_utf8(ok(run(&["describe", "--help"])).stdout).unwrap();
    assert!(help.contains("Examples:") && help.contains("clan-nats describe user"), "{help}");
}

/// `--config -` reads the config from standard input (`nix eval --json … |`),
/// giving the same store as the file; `@FILE` names a file.
#[test]
fn the_config_can_come_from_standard_input() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    let text = std::fs::read(example()).unwrap();
    let mut c = bin();
    c.args([
        "generate",
        "--config",
        "-",
        "--dir",
        dir.to_str().unwrap(),
        "--identity",
        key.to_str().unwrap(),
        "--new-identity",
    ]);
    ok(with_stdin(c, &text));
    assert_eq!(std::fs::read(dir.join("config.json")).unwrap(), text, "the store keeps the config it was given");
    let at = format!("@{}", example().display());
    let o = ok(run(&["plan", "--config", &at, "--dir", dir.to_str().unwrap(), "--identity", key.to_str().unwrap()]));
    assert!(String::from_utf8_lossy(&o.stdout).contains("no change"), "{}", String::from_utf8_lossy(&o.stdout));
    // A bad config on stdin is named as such, with its field path.
    let bad = String::from_utf8(text).unwrap().replacen(
        "\"organizational_unit\": \"Media\"",
        "\"organizational_unit\": \"Meda\"",
        1,
    );
    let mut c = bin();
    c.args([
        "generate",
        "--config",
        "-",
        "--dir",
        tmp.path().join("s2").to_str().unwrap(),
        "--identity",
        key.to_str().unwrap(),
    ]);
    let o = with_stdin(c, bad.as_bytes());
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("<stdin>: service_people[") && err.contains("unknown unit \"Meda\"; did you mean \"Media\"?"),
        "{err}"
    );
    assert!(!tmp.path().join("s2").exists());
}

/// An invitation token and a join request travel through standard input or
/// a file, never argv; a value on argv still works but is warned about.
#[test]
fn tokens_and_requests_come_from_stdin_or_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    generate(&example(), &dir, &key);
    let (d, k) = (dir.to_str().unwrap(), key.to_str().unwrap());
    let invite = |id: &str| {
        let o = ok(run(&["team", "invite", "--id", id, "--name", id, "--units", "Media", "--dir", d, "--identity", k]));
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    // Token on stdin; request from a file.
    let token = invite("alice");
    let alice = tmp.path().join("alice.key");
    let mut c = bin();
    c.args(["--json", "team", "join", "--token", "-", "--identity", alice.to_str().unwrap()]);
    let o = ok(with_stdin(c, format!("{token}\n").as_bytes()));
    assert!(!stderr(&o).contains("command line"), "no warning for stdin: {}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let request_file = tmp.path().join("alice.request");
    std::fs::write(&request_file, v["request"].as_str().unwrap()).unwrap();
    let at = format!("@{}", request_file.display());
    let fp = v["fingerprint"].as_str().unwrap();
    let o = ok(run(&["team", "accept", "--request", &at, "--fingerprint", fp, "--dir", d, "--identity", k]));
    assert!(String::from_utf8_lossy(&o.stdout).contains("added alice"), "{}", String::from_utf8_lossy(&o.stdout));

    // Token from a file; request on stdin.
    let token_file = tmp.path().join("bob.token");
    std::fs::write(&token_file, invite("bob")).unwrap();
    let bob = tmp.path().join("bob.key");
    let at = format!("@{}", token_file.display());
    let o = ok(run(&["--json", "team", "join", "--token", &at, "--identity", bob.to_str().unwrap()]));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut c = bin();
    c.args([
        "team",
        "accept",
        "--request",
        "-",
        "--fingerprint",
        v["fingerprint"].as_str().unwrap(),
        "--dir",
        d,
        "--identity",
        k,
    ]);
    ok(with_stdin(c, v["request"].as_str().unwrap().as_bytes()));
    let list = String::from_utf8(ok(run(&["team", "list", d])).stdout).unwrap();
    assert!(list.contains("alice\t") && list.contains("bob\t"), "{list}");

    // On argv: accepted, with a warning naming the safer forms.
    let carol = tmp.path().join("carol.key");
    let o = ok(run(&["team", "join", "--token", &invite("carol"), "--identity", carol.to_str().unwrap()]));
    assert!(
        stderr(&o).contains("--token was given on the command line") && stderr(&o).contains("--token -"),
        "{}",
        stderr(&o)
    );
    // An empty stdin or a missing file is an error naming the flag.
    let mut c = bin();
    c.args(["team", "join", "--token", "-", "--identity", tmp.path().join("x.key").to_str().unwrap()]);
    let o = with_stdin(c, b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--token -: empty"), "{}", stderr(&o));
    let o =
        run(&["team", "join", "--token", "@/nonexistent/t", "--identity", tmp.path().join("x.key").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--token @/nonexistent/t"), "{}", stderr(&o));
    assert!(!tmp.path().join("x.key").exists());
}

/// A new owner identity is created only with `--new-identity` (or by `init`),
/// never in a directory that does not exist; `CLAN_NATS_IDENTITY` names one.
#[test]
fn an_identity_is_never_created_by_accident() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let cfg = example();
    let gen = |dir: &str, extra: &[&str], env: &[(&str, &str)]| {
        let mut c = bin();
        c.env("HOME", &home)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("SOPS_AGE_KEY_FILE")
            .env_remove("CLAN_NATS_IDENTITY");
        for (k, v) in env {
            c.env(k, v);
        }
        c.args(["generate", "--config", cfg.to_str().unwrap(), "--dir", dir]).args(extra).output().unwrap()
    };
    let s1 = tmp.path().join("s1");
    // A mistyped identity path: refused, nothing created.
    let typo = tmp.path().join("owner.kye");
    let o = gen(s1.to_str().unwrap(), &["--identity", typo.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no such identity file") && stderr(&o).contains("--new-identity"), "{}", stderr(&o));
    assert!(!typo.exists() && !s1.exists());
    // No identity at all: the default path is named, and not created.
    let o = gen(s1.to_str().unwrap(), &[], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let default = home.join(".config/clan-nats/identity.txt");
    assert!(stderr(&o).contains(default.to_str().unwrap()), "{}", stderr(&o));
    assert!(!home.join(".config").exists() && !s1.exists());
    // --new-identity never creates directories.
    let deep = tmp.path().join("no/such/dir/owner.key");
    let o = gen(s1.to_str().unwrap(), &["--identity", deep.to_str().unwrap(), "--new-identity"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("does not exist (it is not created"), "{}", stderr(&o));
    assert!(!tmp.path().join("no").exists() && !s1.exists());
    // CLAN_NATS_IDENTITY with --new-identity: created there, 0600, then used by later commands.
    let key = tmp.path().join("owner.key");
    ok(gen(s1.to_str().unwrap(), &["--new-identity"], &[("CLAN_NATS_IDENTITY", key.to_str().unwrap())]));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let o = ok(gen(s1.to_str().unwrap(), &[], &[("CLAN_NATS_IDENTITY", key.to_str().unwrap())]));
    assert!(String::from_utf8_lossy(&o.stdout).contains("unchanged"));
    // A new store never takes a key of another tool from the default chain:
    // an ssh key at ~/.ssh/id_ed25519 is found, and refused until named.
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    let o = Command::new(require("ssh-keygen"))
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(home.join(".ssh/id_ed25519"))
        .output()
        .unwrap();
    assert!(o.status.success());
    let s2 = tmp.path().join("s2");
    let o = gen(s2.to_str().unwrap(), &["--new-identity"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("a key of another tool") && stderr(&o).contains(".ssh/id_ed25519"), "{}", stderr(&o));
    assert!(!s2.exists());
    let ssh = home.join(".ssh/id_ed25519");
    ok(gen(s2.to_str().unwrap(), &["--identity", ssh.to_str().unwrap()], &[]));
    // The sops default is found when clan-nats' own is absent (for an existing store).
    let sops = home.join(".config/sops/age");
    std::fs::create_dir_all(&sops).unwrap();
    std::fs::copy(&key, sops.join("keys.txt")).unwrap();
    std::fs::set_permissions(sops.join("keys.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = ok(gen(s1.to_str().unwrap(), &[], &[]));
    assert!(stderr(&o).contains("keys.txt"), "the identity used is named: {}", stderr(&o));
}

/// With `--json`, an error is a JSON object on standard output (and text on
/// standard error), with the exit code and, for a config, each field path.
#[test]
fn errors_are_json_with_json() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    generate(&example(), &dir, &key);
    let o = run(&["--json", "describe", "user", "nobody", "--dir", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(v["error"]["exit_code"], 2);
    assert_eq!(v["error"]["kind"], "usage");
    assert!(v["error"]["message"].as_str().unwrap().contains("no user named \"nobody\""));

    let cfg = tmp.path().join("bad.json");
    let text = std::fs::read_to_string(example()).unwrap();
    std::fs::write(
        &cfg,
        text.replacen("\"nats_permissions\"", "\"nats_permisions\"", 1).replacen("\"Media\"", "\"Meda\"", 1),
    )
    .unwrap();
    let o = run(&[
        "--json",
        "generate",
        "--config",
        cfg.to_str().unwrap(),
        "--dir",
        tmp.path().join("s").to_str().unwrap(),
        "--identity",
        key.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(v["error"]["kind"], "config");
    assert_eq!(v["error"]["file"], cfg.to_str().unwrap());
    let paths: Vec<&str> =
        v["error"]["issues"].as_array().unwrap().iter().map(|i| i["path"].as_str().unwrap()).collect();
    assert!(paths.iter().any(|p| p.ends_with(".nats_permisions")), "{paths:?}");
    assert!(paths.len() >= 2, "schema and semantic problems together: {v}");

    // A tampered store: kind untrusted, the problems listed, exit 3.
    let m = dir.join("nsc/stores/thecowboyai/thecowboyai.jwt");
    let mut jwt = std::fs::read(&m).unwrap();
    jwt.push(b'\n');
    std::fs::write(&m, jwt).unwrap();
    let o = run(&[
        "--json",
        "rotate",
        "user",
        "audio-service",
        "--dir",
        dir.to_str().unwrap(),
        "--identity",
        key.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(v["error"]["kind"], "untrusted");
    assert!(
        v["error"]["problems"].as_array().unwrap().iter().any(|p| p.as_str().unwrap().contains("thecowboyai.jwt")),
        "{v}"
    );
}

/// Schema errors (unknown fields, with the closest valid name) and semantic
/// errors (unknown references, with the known names) in one report.
#[test]
fn schema_and_semantic_errors_are_reported_together() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(example()).unwrap()).unwrap();
    let p0 = cfg["service_people"][0].as_object_mut().unwrap();
    let perms = p0.remove("nats_permissions").unwrap();
    p0.insert("nats_permisions".into(), perms);
    cfg["hosts"][1].as_object_mut().unwrap().insert("servcies".into(), serde_json::json!([]));
    cfg["service_people"][2]["organizational_unit"] = "Developmnet".into();
    cfg["hosts"][0]["services"][0] = "persn-service".into();
    let file = tmp.path().join("org.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let o = run(&[
        "generate",
        "--config",
        file.to_str().unwrap(),
        "--dir",
        tmp.path().join("s").to_str().unwrap(),
        "--identity",
        tmp.path().join("k").to_str().unwrap(),
        "--new-identity",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("4 problems"), "{err}");
    assert!(
        err.contains("service_people[0].nats_permisions: unknown field `nats_permisions`")
            && err.contains("did you mean `nats_permissions`?"),
        "{err}"
    );
    assert!(err.contains("hosts[1].servcies: unknown field") && err.contains("did you mean `services`?"), "{err}");
    assert!(err.contains("service_people[2].organizational_unit: unknown unit \"Developmnet\"; did you mean \"Development\"? (known: Core, Development, Media)"), "{err}");
    assert!(
        err.contains("hosts[0].services[0]: unknown service \"persn-service\"; did you mean \"person-service\"?"),
        "{err}"
    );
    assert!(!tmp.path().join("s").exists() && !tmp.path().join("k").exists());
}

/// A reader that closes the pipe early (`| head -1`) ends the command quietly.
#[test]
fn a_closed_pipe_is_a_quiet_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    generate(&example(), &dir, &key);
    for args in [vec!["list", "users"], vec!["--json", "vault", "status"], vec!["describe", "account", "core"]] {
        let mut child = bin().args(&args).arg(&dir).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("error") && !stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
    }
}

/// The shipped example fails until its placeholders are replaced; the
/// committed test keys are refused without `--allow-insecure-fixture-keys`.
#[test]
fn the_example_needs_real_keys_and_fixture_keys_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    let plain = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_clan-nats"))
            .env("CLAN_NATS_PINS", pins_file())
            .env_remove("CLAN_NATS_ALLOW_INSECURE_FIXTURE_KEYS")
            .args(args)
            .output()
            .unwrap()
    };
    let (d, k) = (dir.to_str().unwrap(), key.to_str().unwrap());
    let shipped = repo("examples/clan-bootstrap.json");
    let o = plain(&["generate", "--config", shipped.to_str().unwrap(), "--dir", d, "--identity", k, "--new-identity"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    for (i, host) in ["nats1", "core1", "media1", "dev1"].iter().enumerate() {
        assert!(
            err.contains(&format!(
                "hosts[{i}].age_recipient: placeholder: replace it with host \"{host}\"'s public key"
            )),
            "{err}"
        );
    }
    // The same config with the committed test keys: refused, naming each key's file.
    let o =
        plain(&["generate", "--config", example().to_str().unwrap(), "--dir", d, "--identity", k, "--new-identity"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("hosts[0].age_recipient: this is a committed TEST-ONLY key (tests/fixtures/insecure/nats1.ssh_host_ed25519_key)"), "{err}");
    assert!(err.contains("hosts[3].age_recipient") && err.contains("dev1.agekey"), "{err}");
    assert!(!dir.exists() && !key.exists(), "nothing written");
    // Allowed explicitly (as tests do).
    ok(plain(&[
        "generate",
        "--config",
        example().to_str().unwrap(),
        "--dir",
        d,
        "--identity",
        k,
        "--new-identity",
        "--allow-insecure-fixture-keys",
    ]));
    // A fixture key as an admin recipient is refused too, and the store is unchanged.
    let before = snapshot(&dir);
    let media1 = std::fs::read_to_string(insecure("media1.agekey")).unwrap();
    let public = media1.lines().find_map(|l| l.strip_prefix("# public key: ")).unwrap();
    let o = plain(&[
        "generate",
        "--config",
        example().to_str().unwrap(),
        "--dir",
        d,
        "--identity",
        k,
        "--recipient",
        public,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--recipient #1: this is a committed TEST-ONLY key"), "{}", stderr(&o));
    assert_eq!(snapshot(&dir), before);
    // A later routine run without --config reconciles the stored config as it is.
    ok(plain(&["rotate", "user", "audio-service", "--dir", d, "--identity", k]));
}

/// `keygen` writes a 0600 identity that age accepts, never overwrites; the
/// quick start fills the example's placeholders with such keys and generates.
#[test]
fn keygen_and_the_quick_start_work() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let k = tmp.path().join("host.agekey");
    let o = ok(run(&["keygen", "--output", k.to_str().unwrap()]));
    let public = String::from_utf8(o.stdout).unwrap().trim().to_string();
    assert!(public.starts_with("age1"), "{public}");
    assert_eq!(std::fs::metadata(&k).unwrap().permissions().mode() & 0o777, 0o600);
    let first = std::fs::read(&k).unwrap();
    let o = run(&["keygen", "--output", k.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read(&k).unwrap(), first, "never overwritten");
    // The reference age encrypts to the printed key and decrypts with the file.
    let age = require("age");
    let mut c = Command::new(&age);
    c.args(["-r", &public]);
    let enc = ok(with_stdin(c, b"hello"));
    let mut c = Command::new(&age);
    c.args(["-d", "-i", k.to_str().unwrap()]);
    assert_eq!(ok(with_stdin(c, &enc.stdout)).stdout, b"hello");

    let out = tmp.path().join("demo");
    // Through bash, as the Nix build sandbox has no /usr/bin/env for the shebang.
    let o = Command::new("bash")
        .arg(repo("examples/quickstart.sh"))
        .arg(&out)
        .env("CLAN_NATS", env!("CARGO_BIN_EXE_clan-nats"))
        .env("CLAN_NATS_PINS", tmp.path().join("pins.json"))
        .env_remove("CLAN_NATS_ALLOW_INSECURE_FIXTURE_KEYS")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}\n{}", stderr(&o));
    assert!(text.contains(": ok: 4 account(s), 12 user(s)"), "{text}");
    let org = std::fs::read_to_string(out.join("org.json")).unwrap();
    assert!(!org.contains("REPLACE-WITH-"), "every placeholder replaced");
    // media1's demo key decrypts audio-service's creds with the reference age.
    let creds = out.join("store/nsc/stores/thecowboyai/accounts/media/users/audio-service.creds.age");
    let d =
        Command::new(&age).args(["-d", "-i"]).arg(out.join("host-keys/media1.agekey")).arg(&creds).output().unwrap();
    assert!(d.status.success() && String::from_utf8_lossy(&d.stdout).contains("BEGIN NATS USER JWT"));
    // A second run refuses to touch the directory.
    // Through bash, as the Nix build sandbox has no /usr/bin/env for the shebang.
    let o = Command::new("bash")
        .arg(repo("examples/quickstart.sh"))
        .arg(&out)
        .env("CLAN_NATS", env!("CARGO_BIN_EXE_clan-nats"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// The committed JSON Schema is the one the types give, closed like the
/// parser (`additionalProperties: false`), and every field of the example,
/// the upstream file and the wiring fixture is in it.
#[test]
fn the_json_schema_is_current_and_covers_the_configs() {
    let generated = ok(run(&["schema"])).stdout;
    let committed = std::fs::read(repo("schema/clan-nats-config.schema.json")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&generated),
        String::from_utf8_lossy(&committed),
        "regenerate it: clan-nats schema > schema/clan-nats-config.schema.json"
    );
    let schema: Value = serde_json::from_slice(&committed).unwrap();
    assert_eq!(schema["additionalProperties"], false);
    fn resolve<'a>(root: &'a Value, mut s: &'a Value) -> &'a Value {
        while let Some(r) = s.get("$ref").and_then(Value::as_str) {
            s = &root["$defs"][r.trim_start_matches("#/$defs/")];
        }
        s
    }
    // Every object key of `v` is a property of a schema `s` can be; returns the unknown ones.
    fn walk(root: &Value, s: &Value, v: &Value, at: &str, unknown: &mut Vec<String>) {
        let s = resolve(root, s);
        if let Some(alts) = s.get("anyOf").or_else(|| s.get("oneOf")).and_then(Value::as_array) {
            let fitting: Vec<&Value> =
                alts.iter().map(|a| resolve(root, a)).filter(|a| a.get("type") != Some(&Value::from("null"))).collect();
            if let Some(a) = fitting.first() {
                walk(root, a, v, at, unknown);
            }
            return;
        }
        match v {
            Value::Object(o) => {
                if let Some(props) = s.get("properties").and_then(Value::as_object) {
                    for (k, x) in o {
                        match props.get(k) {
                            Some(ps) => walk(root, ps, x, &format!("{at}.{k}"), unknown),
                            None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                                unknown.push(format!("{at}.{k}"))
                            }
                            None => {}
                        }
                    }
                }
            }
            Value::Array(a) => {
                if let Some(items) = s.get("items") {
                    for (i, x) in a.iter().enumerate() {
                        walk(root, items, x, &format!("{at}[{i}]"), unknown);
                    }
                }
            }
            _ => {}
        }
    }
    let mut checked = 0;
    for f in [
        "examples/clan-bootstrap.json",
        "tests/fixtures/cim-keys/clan-bootstrap.json",
        "tests/fixtures/wiring/explicit.json",
        "tests/fixtures/insecure/example.json",
    ] {
        let v: Value = serde_json::from_slice(&std::fs::read(repo(f)).unwrap()).unwrap();
        let mut unknown = Vec::new();
        walk(&schema, &schema, &v, "", &mut unknown);
        assert!(unknown.is_empty(), "{f}: fields the schema does not have: {unknown:?}");
        checked += 1;
    }
    assert_eq!(checked, 4);
    // And the walker does find a misspelt field.
    let mut v: Value = serde_json::from_slice(&std::fs::read(example()).unwrap()).unwrap();
    v["hosts"][0]["servics"] = serde_json::json!([]);
    let mut unknown = Vec::new();
    walk(&schema, &schema, &v, "", &mut unknown);
    assert_eq!(unknown, [".hosts[0].servics"]);
}

/// An editor's `"$schema"` key is accepted (and changes nothing in the store).
#[test]
fn a_config_may_name_its_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let mut v: Value = serde_json::from_slice(&std::fs::read(example()).unwrap()).unwrap();
    v.as_object_mut().unwrap().insert("$schema".into(), "./clan-nats-config.schema.json".into());
    let cfg = tmp.path().join("org.json");
    std::fs::write(&cfg, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    generate(&cfg, &a, &tmp.path().join("a.key"));
    generate(&example(), &b, &tmp.path().join("b.key"));
    let users = |d: &std::path::Path| {
        let v: Value =
            serde_json::from_slice(&ok(run(&["--json", "list", "users", d.to_str().unwrap()])).stdout).unwrap();
        v.as_array().unwrap().iter().map(|u| (u["name"].clone(), u["hosts"].clone())).collect::<Vec<_>>()
    };
    assert_eq!(users(&a), users(&b));
}

/// A run over a second shows its phase and counts on a terminal (stderr), and
/// nothing of the kind when stderr is not a terminal.
#[test]
fn progress_shows_on_a_terminal_only() {
    let script = require("script");
    let tmp = tempfile::tempdir().unwrap();
    let units: Vec<Value> =
        (0..4).map(|i| serde_json::json!({"name": format!("U{i}"), "nats_account_name": format!("u{i}")})).collect();
    let people: Vec<Value> = (0..1500)
        .map(|i| serde_json::json!({"name": format!("svc{i}-service"), "organizational_unit": format!("U{}", i % 4), "role": "Service"}))
        .collect();
    let cfg = tmp.path().join("big.json");
    std::fs::write(&cfg, serde_json::to_vec(&serde_json::json!({"organization": {"name": "big"}, "organizational_units": units, "service_people": people})).unwrap()).unwrap();
    let args = |dir: &str| generate_args(&cfg, &tmp.path().join(dir), &tmp.path().join(format!("{dir}.key")));
    // Not a terminal: no progress line (even when it is due at once).
    let o = ok(bin().args(args("plain")).env("CLAN_NATS_PROGRESS_AFTER_MS", "0").output().unwrap());
    assert!(!stderr(&o).contains("writing the store") && !stderr(&o).contains('\r'), "{}", stderr(&o));
    // A terminal (script(1) gives the run a pty): the phase after the slow one is shown.
    let line =
        std::iter::once(BIN.to_string()).chain(args("tty")).map(|a| format!("'{a}'")).collect::<Vec<_>>().join(" ");
    let o = Command::new(script)
        .args(["-qefc", &line, "/dev/null"])
        .env("CLAN_NATS_PINS", pins_file())
        .env("CLAN_NATS_ALLOW_INSECURE_FIXTURE_KEYS", "1")
        // A run this size takes well under a second now: show the progress at once.
        .env("CLAN_NATS_PROGRESS_AFTER_MS", "0")
        .output()
        .unwrap();
    let all = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{all}");
    assert!(all.contains("clan-nats: writing the store ("), "{all}");
    assert!(all.contains("\r\x1b[K"), "the line is cleared at the end: {all:?}");
    assert!(tmp.path().join("tty/manifest.json").exists());
}

/// A passphrase-protected ssh key works as an identity: the passphrase comes
/// from a private file named by CLAN_NATS_SSH_PASSPHRASE_FILE or from the
/// terminal, never argv; a wrong one or no way to ask is a clear error.
#[test]
fn a_passphrase_protected_ssh_key_is_an_identity() {
    use std::os::unix::fs::PermissionsExt;
    let keygen = require("ssh-keygen");
    let script = require("script");
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("media1_ed25519");
    let o = Command::new(keygen)
        .args(["-q", "-t", "ed25519", "-N", "correct horse", "-C", "media1", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let public = std::fs::read_to_string(key.with_extension("pub"))
        .unwrap_or_else(|_| std::fs::read_to_string(format!("{}.pub", key.display())).unwrap());
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(example()).unwrap()).unwrap();
    let media1 = cfg["hosts"].as_array_mut().unwrap().iter_mut().find(|h| h["name"] == "media1").unwrap();
    media1["age_recipient"] = public.trim().into();
    let file = tmp.path().join("org.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let (dir, owner) = (tmp.path().join("store"), tmp.path().join("owner.key"));
    generate(&file, &dir, &owner);
    let (d, k) = (dir.to_str().unwrap(), key.to_str().unwrap());

    let pass = tmp.path().join("pass");
    std::fs::write(&pass, "correct horse\n").unwrap();
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = ok(bin()
        .args(["verify", d, "--identity", k])
        .env("CLAN_NATS_SSH_PASSPHRASE_FILE", &pass)
        .stdin(Stdio::null())
        .output()
        .unwrap());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("3 secret(s) decrypted and checked"), "media1's three creds: {text}");

    // Wrong passphrase; a passphrase file others can read; no terminal and no file.
    std::fs::write(&pass, "wrong\n").unwrap();
    let o = bin().args(["verify", d, "--identity", k]).env("CLAN_NATS_SSH_PASSPHRASE_FILE", &pass).output().unwrap();
    assert!(!o.status.success() && stderr(&o).contains("wrong passphrase"), "{}", stderr(&o));
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = bin().args(["verify", d, "--identity", k]).env("CLAN_NATS_SSH_PASSPHRASE_FILE", &pass).output().unwrap();
    assert!(!o.status.success() && stderr(&o).contains("CLAN_NATS_SSH_PASSPHRASE_FILE"), "{}", stderr(&o));
    let o = Command::new("setsid")
        .args(["-w", env!("CARGO_BIN_EXE_clan-nats"), "verify", d, "--identity", k])
        .env("CLAN_NATS_PINS", pins_file())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success() && stderr(&o).contains("no terminal to ask on"), "{}", stderr(&o));

    // On a terminal: asked once, without echo.
    let line = format!("'{}' verify '{d}' --identity '{k}'", env!("CARGO_BIN_EXE_clan-nats"));
    let mut c = Command::new(script);
    c.args(["-qefc", &line, "/dev/null"]).env("CLAN_NATS_PINS", pins_file());
    let o = with_stdin(c, b"correct horse\n");
    let all = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{all}");
    assert_eq!(all.matches("passphrase for ").count(), 1, "{all}");
    assert!(all.contains("3 secret(s) decrypted and checked"), "{all}");
    // (script's pty echoes what was typed ahead of the prompt; after it, nothing.)
    let after = &all[all.find("passphrase for ").unwrap()..];
    assert!(!after.contains("correct horse"), "the passphrase is not echoed: {all}");
}

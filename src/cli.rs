//! The command line: argument definitions and a `run` that only parses and
//! dispatches to [`crate::ops`]. Output goes to an injected writer.

use std::io::Write;

use camino::{Utf8Path, Utf8PathBuf};
use clap::{Parser, Subcommand};
use serde_json::json;

pub use crate::error::Error;
use crate::generate::Rotation;
use crate::governance::{self, Governance, Member};
use crate::manifest::Manifest;
use crate::nsc;
use crate::ops::{self, Outcome, Request};
use crate::store::pin::Pins;
use crate::store::{self, MANIFEST};
use crate::trust;
use crate::vault::Identity;
use crate::verify;

#[derive(Debug, Parser)]
#[command(
    name = "clan-nats",
    version,
    about = "Declarative NATS decentralized auth: an age-encrypted, nsc-compatible store from an organization config"
)]
pub struct Cli {
    /// Print machine-readable JSON instead of text (before or after the subcommand).
    #[arg(long, global = true)]
    pub json: bool,
    /// This machine's trust pins (operator key and last audit head per organization).
    /// Default: $CLAN_NATS_PINS, else $XDG_STATE_HOME/clan-nats/pins.json, else ~/.local/state/clan-nats/pins.json.
    #[arg(long, global = true, value_name = "FILE")]
    pub pins: Option<Utf8PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// The store to reconcile and who owns it (shared by generate, rotate, import-nsc).
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// The organization config (JSON; the cim-keys clan-bootstrap format).
    #[arg(long)]
    pub config: Utf8PathBuf,
    /// The store directory (`--out` is an alias).
    #[arg(long = "dir", alias = "out", value_name = "DIR")]
    pub out: Utf8PathBuf,
    /// The owner's age identity (or ssh ed25519 key). Default: $CLAN_NATS_IDENTITY, else the
    /// first that exists of ~/.config/clan-nats/identity.txt, $SOPS_AGE_KEY_FILE,
    /// ~/.config/sops/age/keys.txt, ~/.ssh/id_ed25519.
    #[arg(long, env = "CLAN_NATS_IDENTITY", default_value_t = default_identity(), hide_default_value = true, hide_env_values = true)]
    pub identity: Utf8PathBuf,
    /// Create the owner identity (mode 0600) if the --identity file does not exist
    /// (only for a new store; never creates directories).
    #[arg(long)]
    pub new_identity: bool,
    /// An admin recipient (age1… or ssh-ed25519 …) that can read everything the owner can.
    /// Given: the store's admins become exactly these. Not given: the store's admins are kept.
    #[arg(long = "recipient", value_name = "R")]
    pub recipients: Vec<String>,
    /// Remove every admin recipient of the store.
    #[arg(long, conflicts_with = "recipients")]
    pub no_admins: bool,
    /// Where creds go: `nsc` (…/accounts/A/users/U.creds.age) or `flat` (nats/U.creds.age).
    /// Default: the store's current layout, nsc for a new store.
    #[arg(long, value_enum)]
    pub format: Option<crate::store::Format>,
    /// Confirm without asking: a config change of the owner's or a host's
    /// recipient, or changes that stop deployed credentials from working.
    #[arg(long)]
    pub yes: bool,
    /// Show what would change (like `clan-nats plan`), write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Accept recipients that are this repository's committed TEST-ONLY keys
    /// (tests/fixtures/insecure/): anything encrypted to them is public.
    #[arg(long, env = "CLAN_NATS_ALLOW_INSECURE_FIXTURE_KEYS", hide_env_values = true, value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_insecure_fixture_keys: bool,
    /// The clan directory where `clan:<machine>` host recipients are looked up
    /// (sops key, age key, then the openssh var). Default: $CLAN_NATS_CLAN_DIR,
    /// which `nix run .#generate` sets to the flake root.
    #[arg(long, value_name = "DIR")]
    pub clan_dir: Option<Utf8PathBuf>,
}

/// An existing store and the identity acting on it.
#[derive(Debug, Clone, clap::Args)]
pub struct DirArgs {
    /// The store directory (`--out` is an alias).
    #[arg(long, alias = "out", value_name = "DIR")]
    pub dir: Utf8PathBuf,
    /// The acting identity (the owner's for anything that changes the store).
    /// Default: $CLAN_NATS_IDENTITY, else the first that exists of
    /// ~/.config/clan-nats/identity.txt, $SOPS_AGE_KEY_FILE, ~/.config/sops/age/keys.txt, ~/.ssh/id_ed25519.
    #[arg(long, env = "CLAN_NATS_IDENTITY", default_value_t = default_identity(), hide_default_value = true, hide_env_values = true)]
    pub identity: Utf8PathBuf,
    /// The config to reconcile with; default: the one the store was generated from.
    #[arg(long)]
    pub config: Option<Utf8PathBuf>,
    /// Accept recipients that are this repository's committed TEST-ONLY keys
    /// (tests/fixtures/insecure/): anything encrypted to them is public.
    #[arg(long, env = "CLAN_NATS_ALLOW_INSECURE_FIXTURE_KEYS", hide_env_values = true, value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_insecure_fixture_keys: bool,

    /// Confirm without asking: a config change of the owner's or a host's
    /// recipient, or changes that stop deployed credentials from working.
    #[arg(long)]
    pub yes: bool,
    /// The clan directory for `clan:<machine>` host recipients (default: $CLAN_NATS_CLAN_DIR).
    #[arg(long, value_name = "DIR")]
    pub clan_dir: Option<Utf8PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate (or reconcile) the store in DIR from an organization config.
    #[command(
        after_help = "Examples:\n  clan-nats generate --config org.json --dir nats-store --identity owner.key --new-identity\n  clan-nats generate --config org.json --dir nats-store   # identity from $CLAN_NATS_IDENTITY\n  nix eval --json .#natsOrg | clan-nats generate --config - --dir nats-store"
    )]
    Generate {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// What `generate` would change, without writing: users and accounts created,
    /// re-keyed, re-issued or removed (and why), who gains or loses access, next steps.
    #[command(
        after_help = "Examples:\n  clan-nats plan --config org.json --dir nats-store --identity owner.key\n  clan-nats plan --config org.json --dir nats-store --detailed-exitcode --json"
    )]
    Plan {
        #[command(flatten)]
        store: StoreArgs,
        /// Exit 0 when nothing would change, 2 when changes are pending, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Check signatures, the operator → account → user chain, the layout, every
    /// sha256, governance and recipients; with an identity, decrypt and check every secret.
    #[command(
        after_help = "Examples:\n  clan-nats verify nats-store\n  clan-nats verify --dir nats-store --identity /etc/ssh/ssh_host_ed25519_key   # as a host: its own secrets\n  clan-nats verify nats-store --operator OABC…   # against a key you trust"
    )]
    Verify {
        #[command(flatten)]
        dir: ReadDir,
        /// An identity (the owner's, a specialist's, a host's ssh or age key): also
        /// decrypt and check every secret it is a recipient of.
        #[arg(long)]
        identity: Option<Utf8PathBuf>,
        /// The operator public key (O…) to check against; default: this machine's pin
        /// for the store, else (self-consistency only) the key inside the store.
        #[arg(long, value_name = "KEY")]
        operator: Option<String>,
    },
    /// Pin a store on this machine: after a full verification against the
    /// operator key you give (checked out of band), later commands trust it.
    #[command(after_help = "Examples:\n  clan-nats trust --dir nats-store --operator OABC…")]
    Trust {
        /// The store directory.
        #[arg(long, alias = "out")]
        dir: Utf8PathBuf,
        /// The operator public key (O…) the store must be signed under.
        #[arg(long, value_name = "KEY")]
        operator: String,
        /// Replace an existing pin of this organization under another operator key.
        #[arg(long)]
        replace: bool,
    },
    /// Replace a key, re-sign what depends on it and revoke the old user key.
    Rotate {
        #[command(subcommand)]
        target: RotateTarget,
    },
    /// Write a plaintext nsc data dir and keystore (stores/, keys/) for the nsc and nats CLIs.
    #[command(
        after_help = "Examples:\n  clan-nats export-nsc --dir nats-store --identity owner.key --to /dev/shm/nsc\n  nsc --data-dir /dev/shm/nsc/stores --keystore-dir /dev/shm/nsc/keys describe operator"
    )]
    ExportNsc {
        #[command(flatten)]
        dir: DirArgs,
        /// Where to write; must not exist or be empty. Holds plaintext seeds (dirs 0700, files 0600).
        #[arg(long)]
        to: Utf8PathBuf,
    },
    /// Adopt an existing nsc operator's keys into a new store, without re-keying.
    #[command(
        after_help = "Examples:\n  clan-nats import-nsc --from ~/.local/share/nats/nsc --keys ~/.local/share/nats/nsc/keys --config org.json --dir nats-store --identity owner.key --new-identity"
    )]
    ImportNsc {
        /// The nsc data dir (containing stores/) or the stores dir itself.
        #[arg(long)]
        from: Utf8PathBuf,
        /// The nsc keystore dir (containing keys/).
        #[arg(long)]
        keys: Utf8PathBuf,
        /// Import even though the config cannot express everything in the nsc
        /// operator; what is dropped is listed on stderr.
        #[arg(long)]
        drop_unsupported: bool,
        /// Write the adopted config to FILE (atomically): the config plus every
        /// account, user, permission and limit of the nsc operator it can express.
        /// The import then uses it.
        #[arg(long, value_name = "FILE")]
        write_config: Option<Utf8PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Start a store's governance: the owner identity, the operator keys, the
    /// signed ownership record and the first audit entry.
    #[command(
        after_help = "Examples:\n  clan-nats init --dir nats-store --owner-id github:alice --owner-name 'Alice' --identity owner.key"
    )]
    Init {
        /// The store directory (must hold no store yet).
        #[arg(long, alias = "out")]
        dir: Utf8PathBuf,
        /// The owner's stable id (e.g. github:alice), recorded in the signed ownership record.
        #[arg(long)]
        owner_id: String,
        /// The owner's name, for people reading the record.
        #[arg(long)]
        owner_name: String,
        /// The owner's age identity; created (mode 0600) if missing.
        #[arg(long)]
        identity: Utf8PathBuf,
    },
    /// The team of specialists (owner only for changes).
    Team {
        #[command(subcommand)]
        command: TeamCommand,
    },
    /// The store's organization and the role of an identity in it.
    #[command(
        after_help = "Examples:\n  clan-nats info nats-store --identity owner.key\n  clan-nats info --dir nats-store --flows"
    )]
    Info {
        #[command(flatten)]
        dir: ReadDir,
        /// An identity whose role in the store to show (master, specialist, none).
        #[arg(long)]
        identity: Option<Utf8PathBuf>,
        /// Show the flows between accounts: who can hear whom.
        #[arg(long)]
        flows: bool,
    },
    /// The secrets of a store.
    Vault {
        #[command(subcommand)]
        command: VaultCommand,
    },
    /// Create a new age identity file (mode 0600, never overwriting, no
    /// directories created) and print its public key: for a host without an ssh
    /// or clan key, or to try the example.
    #[command(after_help = "Example:\n  clan-nats keygen --output /var/lib/clan-nats/host.agekey")]
    Keygen {
        /// Where to write the identity; must not exist.
        #[arg(long, short)]
        output: Utf8PathBuf,
    },
    /// Print the JSON Schema of the organization config (for editors:
    /// `"$schema": "./clan-nats-config.schema.json"`).
    #[command(after_help = "Example:\n  clan-nats schema > clan-nats-config.schema.json")]
    Schema,
    /// Print a shell completion script to standard output.
    #[command(
        after_help = "Examples:\n  clan-nats completions bash > ~/.local/share/bash-completion/completions/clan-nats\n  clan-nats completions zsh > \"${fpath[1]}/_clan-nats\""
    )]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page (roff) to standard output.
    #[command(after_help = "Example:\n  clan-nats man | man -l -")]
    Man,
    /// Send changed account JWTs to running servers over $SYS (owner only; the
    /// sys creds stay in memory). Refuses to replace a newer JWT a server holds;
    /// exits 1 when an expected server did not confirm.
    #[command(
        after_help = "Examples:\n  clan-nats push --dir nats-store --identity owner.key --server nats://nats1:4222 --dry-run\n  clan-nats push --dir nats-store --identity owner.key --server nats://nats1:4222 --server nats://nats2:4222"
    )]
    Push {
        /// The store directory (`--out` is an alias).
        #[arg(long, alias = "out", value_name = "DIR")]
        dir: Utf8PathBuf,
        /// The owner's identity.
        #[arg(long)]
        identity: Utf8PathBuf,
        /// A server URL (nats://host:port); repeat it: the first reachable is used,
        /// and every server of the cluster answers through it.
        #[arg(long = "server", value_name = "URL", required = true)]
        servers: Vec<String>,
        /// Look up and report what would be pushed, send nothing.
        #[arg(long)]
        dry_run: bool,
        /// Seconds to wait for the servers' replies to one update.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
    /// List the accounts, users, hosts or flows of a store (like `nsc list`).
    #[command(
        after_help = "Examples:\n  clan-nats list users --dir store\n  clan-nats list accounts --dir store --json"
    )]
    List {
        /// What to list.
        #[arg(value_enum)]
        what: crate::show::Listing,
        #[command(flatten)]
        dir: ReadDir,
    },
    /// One user or account in full: permissions, limits, hosts, who can read
    /// its creds, keys, issue time, revocations (like `nsc describe`).
    #[command(
        after_help = "Examples:\n  clan-nats describe user media-svc --dir store\n  clan-nats describe account Media --dir store --json"
    )]
    Describe {
        /// What to describe.
        #[arg(value_enum)]
        what: crate::show::Entity,
        /// The user's or account's name.
        name: String,
        #[command(flatten)]
        dir: ReadDir,
    },
}

/// Shells `completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

/// A store that is only read: `--dir DIR` (or `--out DIR`, or DIR as the last argument).
#[derive(Debug, Clone, clap::Args)]
pub struct ReadDir {
    /// The store directory.
    #[arg(long = "dir", alias = "out", value_name = "DIR")]
    flag: Option<Utf8PathBuf>,
    /// The store directory (same as --dir).
    #[arg(value_name = "DIR", conflicts_with = "flag")]
    positional: Option<Utf8PathBuf>,
}

impl ReadDir {
    pub fn path(&self) -> Result<&Utf8Path, Error> {
        self.flag
            .as_deref()
            .or(self.positional.as_deref())
            .ok_or_else(|| Error::Usage("name the store: --dir DIR".into()))
    }
}

#[derive(Debug, Subcommand)]
pub enum RotateTarget {
    /// A new key for a service user; its old creds stop working everywhere.
    #[command(after_help = "Examples:\n  clan-nats rotate user audio-service --dir nats-store --identity owner.key")]
    User {
        /// The user's name (see `clan-nats list users`).
        name: String,
        #[command(flatten)]
        dir: DirArgs,
    },
    /// New identity and signing keys for an account; all its users are re-issued.
    #[command(after_help = "Examples:\n  clan-nats rotate account media --dir nats-store --identity owner.key --yes")]
    Account {
        /// The account's name (see `clan-nats list accounts`).
        name: String,
        #[command(flatten)]
        dir: DirArgs,
    },
    /// A new operator signing key; every account is re-signed.
    #[command(after_help = "Examples:\n  clan-nats rotate operator-signing-key --dir nats-store --identity owner.key")]
    OperatorSigningKey {
        #[command(flatten)]
        dir: DirArgs,
    },
    /// Refused: see the message.
    #[command(
        after_help = "Examples:\n  clan-nats rotate operator-signing-key --dir nats-store --identity owner.key   # what to do instead"
    )]
    Operator {
        #[command(flatten)]
        dir: DirArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    /// Add a specialist: their recipient is added to the creds of their units' services.
    #[command(
        after_help = "Examples:\n  clan-nats team add --id bob --name Bob --recipient age1… --units Media --dir nats-store --identity owner.key"
    )]
    Add {
        /// The specialist's stable id (recorded in the ownership record).
        #[arg(long)]
        id: String,
        /// The specialist's name, for people reading the record.
        #[arg(long)]
        name: String,
        /// The specialist's age recipient (age1… or ssh-ed25519 …).
        #[arg(long)]
        recipient: String,
        /// Comma-separated unit names; sub-units are included.
        #[arg(long, value_delimiter = ',')]
        units: Vec<String>,
        #[command(flatten)]
        dir: DirArgs,
    },
    /// Invite a specialist: prints a token signed by the owner (a bearer secret: send it privately).
    #[command(
        after_help = "Examples:\n  clan-nats team invite --id bob --name Bob --units Media --dir nats-store --identity owner.key > bob.invite"
    )]
    Invite {
        /// The specialist's stable id (recorded in the ownership record).
        #[arg(long)]
        id: String,
        /// The specialist's name, for people reading the record.
        #[arg(long)]
        name: String,
        /// Comma-separated unit names; sub-units are included.
        #[arg(long, value_delimiter = ',')]
        units: Vec<String>,
        /// How long the token is valid: 72h, 30m, 7d, 3600s.
        #[arg(long, default_value = "72h")]
        expires: String,
        #[command(flatten)]
        dir: DirArgs,
    },
    /// Answer an invitation on your own machine: prints a join request for the owner.
    #[command(
        after_help = "Examples:\n  clan-nats team join --token @bob.invite --identity ~/.config/clan-nats/identity.txt"
    )]
    Join {
        /// The invitation: `-` reads it from standard input, `@FILE` from a file.
        #[arg(long)]
        token: String,
        /// Your age identity; created (mode 0600) if missing.
        #[arg(long)]
        identity: Utf8PathBuf,
    },
    /// Accept a join request (owner only) after confirming the requester's fingerprint.
    #[command(
        after_help = "Examples:\n  clan-nats team accept --request @bob.request --dir nats-store --identity owner.key"
    )]
    Accept {
        /// The join request: `-` reads it from standard input, `@FILE` from a file.
        #[arg(long)]
        request: String,
        /// The fingerprint the requester read to you; without it, you are asked interactively.
        #[arg(long)]
        fingerprint: Option<String>,
        #[command(flatten)]
        dir: DirArgs,
    },
    /// List the team, removed members included.
    #[command(
        after_help = "Examples:\n  clan-nats team list nats-store\n  clan-nats team list --dir nats-store --json"
    )]
    List {
        #[command(flatten)]
        dir: ReadDir,
    },
    /// Remove a specialist: kept in the history as inactive, creds re-encrypted without them.
    #[command(
        after_help = "Examples:\n  clan-nats team remove --id bob --rotate --dir nats-store --identity owner.key"
    )]
    Remove {
        /// The id of the specialist to remove (see `clan-nats team list`).
        #[arg(long)]
        id: String,
        /// Also rotate every user whose creds the member could read.
        #[arg(long)]
        rotate: bool,
        #[command(flatten)]
        dir: DirArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Every secret and who (by name) can decrypt it.
    #[command(after_help = "Examples:\n  clan-nats vault status nats-store")]
    Status {
        #[command(flatten)]
        dir: ReadDir,
    },
    /// Print a seed to stdout (owner only): operator, operator-signing,
    /// account:NAME, account-signing:NAME, user:NAME, or a public key.
    #[command(
        after_help = "Examples:\n  clan-nats vault request-key user:audio-service --dir nats-store --identity owner.key"
    )]
    RequestKey {
        /// operator, operator-signing, account:NAME, account-signing:NAME, user:NAME, or a public key.
        name: String,
        #[command(flatten)]
        dir: DirArgs,
    },
}

/// The identity used when none is given: the first file that exists of
/// clan-nats' own default, sops' (`$SOPS_AGE_KEY_FILE`, its default path) and
/// agenix's (`~/.ssh/id_ed25519`); clan-nats' own path when none does.
pub fn default_identity() -> Utf8PathBuf {
    let home = std::env::var("HOME").ok().filter(|h| !h.is_empty());
    let config = std::env::var("XDG_CONFIG_HOME")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| home.as_ref().map(|h| format!("{h}/.config")));
    let own = config.as_ref().map(|c| format!("{c}/clan-nats/identity.txt"));
    let candidates = [
        own.clone(),
        std::env::var("SOPS_AGE_KEY_FILE").ok().filter(|p| !p.is_empty()),
        config.as_ref().map(|c| format!("{c}/sops/age/keys.txt")),
        home.as_ref().map(|h| format!("{h}/.ssh/id_ed25519")),
    ];
    candidates
        .iter()
        .flatten()
        .find(|p| Utf8Path::new(p).is_file())
        .or(own.as_ref())
        .map(Utf8PathBuf::from)
        .unwrap_or_else(|| Utf8PathBuf::from("identity.txt"))
}

/// A new store's owner identity is never a key found by the default chain
/// other than clan-nats' own (a sops or ssh key the user has for something
/// else): it must be named with --identity or CLAN_NATS_IDENTITY.
fn check_new_owner_identity(s: &StoreArgs) -> Result<(), Error> {
    let named = std::env::var_os("CLAN_NATS_IDENTITY").is_some()
        || std::env::args().any(|a| a == "--identity" || a.starts_with("--identity="));
    let own = own_default_identity();
    if named || s.out.join(MANIFEST).exists() || Some(&s.identity) == own.as_ref() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{}: no --identity was given, and the default found {}, a key of another tool; a new store's owner identity must be named: pass --identity {} to make it the owner, or --identity {} --new-identity for a new one",
        s.out,
        s.identity,
        s.identity,
        own.map(|p| p.to_string()).unwrap_or_else(|| "FILE".into())
    )))
}

fn own_default_identity() -> Option<Utf8PathBuf> {
    let home = std::env::var("HOME").ok().filter(|h| !h.is_empty());
    std::env::var("XDG_CONFIG_HOME")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| home.map(|h| format!("{h}/.config")))
        .map(|c| Utf8PathBuf::from(format!("{c}/clan-nats/identity.txt")))
}

/// The clock: `SOURCE_DATE_EPOCH` when set (reproducible builds), else now.
pub fn now() -> i64 {
    if let Some(v) = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|v| v.parse().ok()) {
        return v;
    }
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub const OPERATOR_ROTATION_REFUSED: &str = "refusing to rotate the operator identity key: it is the root of trust. \
Every server's `operator` setting, every account JWT and every user's creds chain up to it, so replacing it \
re-roots trust everywhere at once. Rotate the operator signing key instead (`rotate operator-signing-key`); \
if the identity key itself is compromised, create a new store with a new operator and migrate to it.";

/// The confirmation of a change that needs one: `--yes`, else a question on
/// the terminal, else a refusal that shows the changes.
pub fn confirm_changes(yes: bool) -> impl FnMut(&str, &[String]) -> Result<bool, Error> {
    move |heading: &str, changes: &[String]| {
        eprintln!("clan-nats: {heading}:");
        for c in changes {
            eprintln!("  {c}");
        }
        if yes {
            return Ok(true);
        }
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            return Ok(false);
        }
        eprint!("apply these changes? type yes: ");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        Ok(line.trim() == "yes")
    }
}

fn request<'a>(
    d: &'a DirArgs,
    action: &'a str,
    rotate: Option<Rotation>,
    pins: &'a mut Pins,
    confirm: ops::Confirm<'a>,
) -> Request<'a> {
    Request {
        config: d.config.as_deref(),
        dir: &d.dir,
        identity: &d.identity,
        admins: None,
        rotate,
        imported: None,
        action,
        format: None,
        now: now(),
        pins,
        confirm,
        dry_run: false,
        new_identity: false,
        allow_insecure_fixture_keys: d.allow_insecure_fixture_keys,
        clan_dir: d.clan_dir.as_deref(),
    }
}

fn store_request<'a>(s: &'a StoreArgs, action: &'a str, pins: &'a mut Pins, confirm: ops::Confirm<'a>) -> Request<'a> {
    Request {
        config: Some(&s.config),
        dir: &s.out,
        identity: &s.identity,
        admins: (s.no_admins || !s.recipients.is_empty()).then(|| s.recipients.clone()),
        rotate: None,
        imported: None,
        action,
        format: s.format,
        now: now(),
        pins,
        confirm,
        dry_run: s.dry_run,
        new_identity: s.new_identity,
        allow_insecure_fixture_keys: s.allow_insecure_fixture_keys,
        clan_dir: s.clan_dir.as_deref(),
    }
}

/// Load an identity and say which one it is (on stderr).
fn load_identity(path: &Utf8Path) -> Result<Identity, Error> {
    let id = Identity::load(path)?;
    ops::announce(&id, false);
    Ok(id)
}

/// Run a command; `Ok` holds the exit code (0, or 2 for `plan
/// --detailed-exitcode` with changes pending).
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<i32, Error> {
    if let Command::Plan { detailed_exitcode: true, .. } = &cli.command {
        // terraform's convention: 0 no change, 2 changes pending, 1 any error.
        return match dispatch(cli, out) {
            Ok(code) => Ok(code),
            Err(e) => {
                eprintln!("error: {e}");
                Ok(1)
            }
        };
    }
    dispatch(cli, out)
}

fn dispatch(cli: Cli, out: &mut dyn Write) -> Result<i32, Error> {
    let json = cli.json;
    // Commands that touch no store (and need no pins: they run in a Nix build).
    match &cli.command {
        Command::Completions { shell } => {
            use clap::CommandFactory;
            use clap_complete::Shell as S;
            let shell = match *shell {
                Shell::Bash => S::Bash,
                Shell::Zsh => S::Zsh,
                Shell::Fish => S::Fish,
                Shell::Elvish => S::Elvish,
                Shell::Powershell => S::PowerShell,
            };
            clap_complete::generate(shell, &mut Cli::command(), "clan-nats", out);
            return Ok(0);
        }
        Command::Keygen { output } => {
            if output.exists() {
                return Err(Error::Usage(format!("{output}: exists; keygen never overwrites an identity")));
            }
            if let Some(parent) = output.parent().filter(|p| !p.as_str().is_empty() && !p.is_dir()) {
                return Err(Error::Usage(format!("{output}: directory {parent} does not exist (it is not created)")));
            }
            let (id, _) = Identity::load_or_create(output)?;
            writeln!(out, "{}", id.recipients[0])?;
            return Ok(0);
        }
        Command::Schema => {
            writeln!(out, "{}", crate::config::json_schema())?;
            return Ok(0);
        }
        Command::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command()).render(out)?;
            return Ok(0);
        }
        _ => {}
    }
    let pins_path = match cli.pins {
        Some(p) => p,
        None => store::pin::default_path()?,
    };
    let mut pins = Pins::load(&pins_path)?;
    let pins = &mut pins;
    let done: Result<(), Error> = match cli.command {
        Command::Generate { store } => {
            check_new_owner_identity(&store)?;
            let mut confirm = confirm_changes(store.yes);
            let outcome = ops::reconcile(store_request(&store, "generate", pins, &mut confirm), None)?;
            if store.dry_run {
                return print_plan(&outcome, json, false, out);
            }
            print_outcome(&outcome, &store.out, json, out)
        }
        Command::Plan { mut store, detailed_exitcode } => {
            check_new_owner_identity(&store)?;
            store.dry_run = true;
            let mut confirm = confirm_changes(store.yes);
            let outcome = ops::reconcile(store_request(&store, "generate", pins, &mut confirm), None)?;
            return print_plan(&outcome, json, detailed_exitcode, out);
        }
        Command::Verify { dir, identity, operator } => {
            verify_cmd(dir.path()?, identity.as_deref(), operator.as_deref(), pins, json, out)
        }
        Command::Trust { dir, operator, replace } => trust_cmd(&dir, &operator, replace, pins, json, out),
        Command::Rotate { target } => {
            let (d, rotation) = match target {
                RotateTarget::User { name, dir } => (dir, Rotation::User(name)),
                RotateTarget::Account { name, dir } => (dir, Rotation::Account(name)),
                RotateTarget::OperatorSigningKey { dir } => (dir, Rotation::OperatorSigningKey),
                RotateTarget::Operator { .. } => return Err(Error::Usage(OPERATOR_ROTATION_REFUSED.into())),
            };
            let details = json!({"rotated": format!("{rotation:?}")});
            let mut confirm = confirm_changes(d.yes);
            let outcome = ops::reconcile(
                request(&d, "rotate", Some(rotation), pins, &mut confirm),
                Some(Box::new(move |_, _| Ok(details))),
            )?;
            print_outcome(&outcome, &d.dir, json, out)
        }
        Command::ExportNsc { dir, to } => {
            let id = load_identity(&dir.identity)?;
            let (files, stale) = ops::export_nsc(&dir.dir, &id, &to, now(), pins)?;
            for p in &stale {
                eprintln!("clan-nats: removed {p}: plaintext left by an interrupted export");
            }
            if json {
                writeln!(out, "{}", json!({"to": to, "files": files, "stale_removed": stale}))?;
            } else {
                writeln!(
                    out,
                    "{to}: {files} file(s) in nsc layout (plaintext secrets: keep it private, delete it after use)"
                )?;
                writeln!(out, "use: nsc --data-dir {to}/stores --keystore-dir {to}/keys describe operator")?;
            }
            Ok(())
        }
        Command::ImportNsc { from, keys, drop_unsupported, write_config, mut store } => {
            check_new_owner_identity(&store)?;
            let cfg = crate::config::load(&store.config)?;
            let mut plan = crate::plan::plan(&cfg);
            if let Some(file) = write_config {
                let raw: serde_json::Value = serde_json::from_slice(
                    &std::fs::read(&store.config)
                        .map_err(|e| nsc::NscError::Io { path: store.config.clone(), source: e })?,
                )
                .map_err(|e| nsc::NscError::Input(format!("{}: {e}", store.config)))?;
                let adopted = nsc::adopt_config(&from, &plan, &raw)?;
                let mut bytes = serde_json::to_vec_pretty(&adopted).expect("json");
                bytes.push(b'\n');
                // The adopted config must itself be valid before it replaces FILE.
                nsc::write_atomic::<Error>(&file, &bytes, |tmp| {
                    crate::config::load(tmp).map(|_| ()).map_err(Error::from)
                })?;
                eprintln!("clan-nats: wrote the adopted config to {file}");
                plan = crate::plan::plan(&crate::config::load(&file)?);
                store.config = file;
            }
            let imported = nsc::import_keys(&from, &keys, &plan)?;
            let losses = nsc::import_losses(&from, &plan)?;
            if !losses.is_empty() && !drop_unsupported {
                return Err(nsc::NscError::Input(format!(
                    "{from}: import-nsc would drop {} thing(s) the config does not express:\n  - {}\nput them in the config, or pass --drop-unsupported to drop them",
                    losses.len(),
                    losses.join("\n  - ")
                ))
                .into());
            }
            for l in &losses {
                eprintln!("clan-nats: dropped (--drop-unsupported): {l}");
            }
            let mut confirm = confirm_changes(store.yes);
            let mut req = store_request(&store, "import-nsc", pins, &mut confirm);
            req.imported = Some(imported);
            print_outcome(&ops::reconcile(req, None)?, &store.out, json, out)
        }
        Command::Init { dir, owner_id, owner_name, identity } => {
            let (created, recipient) = ops::init(&dir, &owner_id, &owner_name, &identity, now(), pins)?;
            if json {
                writeln!(
                    out,
                    "{}",
                    json!({"dir": dir, "owner_id": owner_id, "owner_recipient": recipient, "identity_created": created})
                )?;
            } else {
                if created {
                    writeln!(out, "created owner identity {identity} (mode 0600); owner recipient: {recipient}")?;
                }
                writeln!(out, "{dir}: initialised for owner {owner_id}; next: clan-nats generate --config FILE --out {dir} --identity {identity}")?;
            }
            Ok(())
        }
        Command::Team { command } => team(command, pins, json, out),
        Command::Info { dir, flows: true, .. } => flows_info(dir.path()?, pins, json, out),
        Command::Info { dir, identity, .. } => info(dir.path()?, identity.as_deref(), pins, json, out),
        Command::Vault { command } => vault(command, pins, json, out),
        Command::Completions { .. } | Command::Man | Command::Keygen { .. } | Command::Schema => {
            unreachable!("handled before the pins are read")
        }
        Command::List { what, dir } => {
            let (_, _, m) = read_trusted(dir.path()?, pins)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&crate::show::list(&m, what)).expect("json"))?;
            } else {
                write!(out, "{}", crate::show::list_text(&m, what))?;
            }
            Ok(())
        }
        Command::Describe { what, name, dir } => {
            let (tree, g, m) = read_trusted(dir.path()?, pins)?;
            let v = crate::show::describe(&tree, &m, Some(&g), what, &name)
                .map_err(|e| Error::Usage(format!("{}: {e}", dir.path().expect("read above"))))?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&v).expect("json"))?;
            } else {
                write!(out, "{}", crate::show::describe_text(&v))?;
            }
            Ok(())
        }
        Command::Push { dir, identity, servers, dry_run, timeout } => {
            let id = load_identity(&identity)?;
            let timeout = std::time::Duration::from_secs(timeout.max(1));
            let req = ops::PushRequest { servers: &servers, dry_run, timeout };
            let r = ops::push(&dir, &id, &req, now(), pins, &mut std::io::stderr())?;
            return print_push(&r, json, out);
        }
    };
    done.map(|()| 0)
}

/// A push report: one line per account and server; exit 1 unless every
/// expected server confirmed every update and nothing was refused.
fn print_push(r: &crate::fleet::push::Report, json: bool, out: &mut dyn Write) -> Result<i32, Error> {
    if json {
        writeln!(out, "{}", serde_json::to_string(r).expect("report serializes"))?;
    } else {
        for row in &r.rows {
            writeln!(out, "{:<24} {:<16} {:<14} {}", row.account, row.server, row.status, row.detail)?;
        }
        let what = if r.dry_run { "dry run" } else { "push" };
        writeln!(
            out,
            "{what} via {}: {} pushed, {} unchanged, {} refused, {} unconfirmed, {} error(s)",
            r.via,
            r.pushed.len(),
            r.unchanged.len(),
            r.refused.len(),
            r.unconfirmed.len(),
            r.errors.len()
        )?;
    }
    Ok(if r.ok() { 0 } else { 1 })
}

/// A plan (a dry run's change set) in text or JSON; the exit code it asks for.
fn print_plan(o: &Outcome, json: bool, detailed_exitcode: bool, out: &mut dyn Write) -> Result<i32, Error> {
    if json {
        let v = json!({"changes_pending": !o.changes.is_empty(), "plan": o.changes, "recipient_changes": o.recipient_changes});
        writeln!(out, "{}", serde_json::to_string_pretty(&v).expect("json"))?;
    } else {
        for c in &o.recipient_changes {
            writeln!(out, "{c}")?;
        }
        write!(out, "{}", o.changes.render())?;
        writeln!(out, "(plan only: nothing was written)")?;
    }
    Ok(if detailed_exitcode && !o.changes.is_empty() { 2 } else { 0 })
}

fn print_outcome(o: &Outcome, dir: &Utf8Path, json: bool, out: &mut dyn Write) -> Result<(), Error> {
    let users: usize = o.plan.accounts.iter().map(|a| a.users.len()).sum();
    for c in &o.recipient_changes {
        eprintln!("clan-nats: {c}");
    }
    let (added, removed) = crate::wiring::diff(&o.flows_before, &o.plan.wiring.flows);
    for w in &o.plan.wiring.warnings {
        eprintln!("clan-nats: warning: {w}");
    }
    if json {
        let v = json!({
            "dir": dir,
            "operator": o.plan.operator,
            "accounts": o.plan.accounts.len(),
            "users": users,
            "identity_created": o.identity_created,
            "owner_recipient": o.owner_recipient,
            "changed": o.report.swapped,
            "written": o.report.written,
            "removed": o.report.removed,
            "files_read": o.files_read,
            "recipient_changes": o.recipient_changes,
            "next_steps": o.changes.next_steps,
            "flows_added": added,
            "flows_removed": removed,
            "warnings": o.plan.wiring.warnings,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v).expect("json"))?;
    } else {
        if o.identity_created {
            writeln!(out, "created owner identity (mode 0600); owner recipient: {}", o.owner_recipient)?;
        }
        let what = if o.report.swapped {
            format!("{} file(s) written, {} removed", o.report.written.len(), o.report.removed.len())
        } else {
            "unchanged".to_string()
        };
        writeln!(
            out,
            "{dir}: operator {}, {} account(s), {} user(s); {what}",
            o.plan.operator,
            o.plan.accounts.len(),
            users
        )?;
        for f in &added {
            writeln!(out, "new flow: {}", f.describe())?;
        }
        for f in &removed {
            writeln!(out, "removed flow: {}", f.describe())?;
        }
        if o.report.swapped && !o.changes.next_steps.is_empty() {
            writeln!(out, "next steps:")?;
            for s in &o.changes.next_steps {
                writeln!(out, "  {s}")?;
            }
        }
    }
    Ok(())
}

fn flows_info(dir: &Utf8Path, pins: &Pins, json: bool, out: &mut dyn Write) -> Result<(), Error> {
    let (_, _, m) = read_trusted(dir, pins)?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&crate::wiring::show::json(&m)).expect("json"))?;
    } else {
        write!(out, "{}", crate::wiring::show::text(&m))?;
    }
    Ok(())
}

fn team(command: TeamCommand, pins: &mut Pins, json: bool, out: &mut dyn Write) -> Result<(), Error> {
    match command {
        TeamCommand::Add { id, name, recipient, units, dir } => {
            let member = Member {
                id: id.clone(),
                name,
                role: governance::record::SPECIALIST.into(),
                recipient: crate::vault::parse_recipient(&recipient)
                    .map_err(|e| Error::Usage(format!("--recipient: {e}")))?
                    .text,
                units,
                added_at: governance::rfc3339(now()),
                active: true,
            };
            let mut confirm = confirm_changes(dir.yes);
            let outcome = ops::reconcile(
                request(&dir, "team-add", None, pins, &mut confirm),
                Some(Box::new(move |g, m| ops::add_member(g, m, member))),
            )?;
            if json {
                writeln!(out, "{}", json!({"added": id, "written": outcome.report.written}))?;
            } else {
                writeln!(out, "added {id}; {} file(s) re-encrypted or updated", outcome.report.written.len())?;
            }
            Ok(())
        }
        TeamCommand::Invite { id, name, units, expires, dir } => {
            let secs =
                governance::invite::parse_duration(&expires).map_err(|e| Error::Usage(format!("--expires: {e}")))?;
            let identity = load_identity(&dir.identity)?;
            let (token, invite) = ops::invite(&dir.dir, &identity, &id, &name, &units, secs, now(), pins)?;
            if json {
                writeln!(
                    out,
                    "{}",
                    json!({"token": token, "expires": governance::rfc3339(invite.expires), "operator": invite.operator})
                )?;
            } else {
                writeln!(out, "{token}")?;
                eprintln!(
                    "invite for {id} ({}) expires {}; send it privately: whoever holds it can answer it until then",
                    units.join(","),
                    governance::rfc3339(invite.expires)
                );
            }
            Ok(())
        }
        TeamCommand::Join { token, identity } => {
            let token = crate::input::secret_arg("--token", &token).map_err(Error::Usage)?;
            let (request, fp, invite, created) = ops::join(&token, &identity, now())?;
            if json {
                let v = json!({"request": request, "fingerprint": fp, "operator": invite.operator, "org_id": invite.org_id, "identity_created": created});
                writeln!(out, "{}", serde_json::to_string_pretty(&v).expect("json"))?;
            } else {
                if created {
                    writeln!(out, "created your identity {identity} (mode 0600)")?;
                }
                writeln!(
                    out,
                    "invited as {} to units {} of organization {}",
                    invite.member_id,
                    invite.units.join(","),
                    invite.org_id
                )?;
                writeln!(out, "signed by operator {}: compare it with the owner out of band", invite.operator)?;
                writeln!(out, "your fingerprint: {fp}  (read it to the owner over another channel)")?;
                writeln!(out, "send this join request to the owner:\n{request}")?;
            }
            Ok(())
        }
        TeamCommand::Accept { request, fingerprint, dir } => {
            let mut confirm = |_: &governance::invite::JoinRequest,
                               inv: &governance::invite::Invite,
                               fp: &str|
             -> Result<bool, Error> {
                if let Some(given) = &fingerprint {
                    return Ok(governance::invite::same_fingerprint(given, fp));
                }
                use std::io::IsTerminal;
                if !std::io::stdin().is_terminal() {
                    return Err(Error::Usage(
                        "no terminal to confirm the fingerprint on: pass --fingerprint FP".into(),
                    ));
                }
                eprint!(
                    "{} asks to join units {} with fingerprint {fp}.\nType the fingerprint they read to you: ",
                    inv.member_id,
                    inv.units.join(",")
                );
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                Ok(governance::invite::same_fingerprint(line.trim(), fp))
            };
            let request = crate::input::secret_arg("--request", &request).map_err(Error::Usage)?;
            let (outcome, invite) = ops::accept(&dir.dir, &request, &dir.identity, &mut confirm, now(), pins)?;
            if json {
                writeln!(
                    out,
                    "{}",
                    json!({"added": invite.member_id, "units": invite.units, "written": outcome.report.written})
                )?;
            } else {
                writeln!(
                    out,
                    "added {} ({}); {} file(s) re-encrypted or updated",
                    invite.member_id,
                    invite.units.join(","),
                    outcome.report.written.len()
                )?;
            }
            Ok(())
        }
        TeamCommand::List { dir } => {
            let (_, g, _) = read_trusted(dir.path()?, pins)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&g.ownership.team_members).expect("json"))?;
            } else {
                for m in &g.ownership.team_members {
                    let state = if m.active { "active" } else { "removed" };
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}\t{state}\tadded {}",
                        m.id,
                        m.name,
                        m.role,
                        m.units.join(","),
                        m.added_at
                    )?;
                }
            }
            Ok(())
        }
        TeamCommand::Remove { id, rotate, dir } => {
            let mut confirm = confirm_changes(dir.yes);
            let removal = ops::team_remove(request(&dir, "team-remove", None, pins, &mut confirm), &id, rotate)?;
            let (outcome, users, rotated) = (removal.outcome, removal.could_read, removal.rotated);
            if json {
                writeln!(
                    out,
                    "{}",
                    json!({"removed": id, "could_read": users, "rotated": rotated, "written": outcome.report.written})
                )?;
            } else {
                writeln!(out, "removed {id}; their recipient is gone from every file")?;
                writeln!(
                    out,
                    "they could read the creds of: {}",
                    if users.is_empty() { "(none)".into() } else { users.join(", ") }
                )?;
                if rotate {
                    writeln!(out, "rotated: {}", rotated.join(", "))?;
                } else if !users.is_empty() {
                    writeln!(out, "copies they kept stay valid until rotated: clan-nats team remove … --rotate, or rotate user NAME")?;
                }
            }
            Ok(())
        }
    }
}

/// Read a store for a command that only shows it: checked against this
/// machine's pin when it has one (else against the key inside the store, and
/// said so), refused when it is not in its signed state.
fn read_trusted(dir: &Utf8Path, pins: &Pins) -> Result<(store::Tree, Governance, Manifest), Error> {
    let tree = store::read_tree(dir)?;
    if tree.is_empty() || !tree.contains_key(MANIFEST) {
        return Err(Error::Usage(format!("{dir}: not a clan-nats store (no {MANIFEST})")));
    }
    let anchor = trust::anchor_for_read(&tree, pins, None);
    let problems = trust::read_problems(&tree, &anchor);
    if !problems.is_empty() {
        return Err(Error::Untrusted { dir: dir.to_string(), problems });
    }
    if anchor == trust::Anchor::Store {
        eprintln!("clan-nats: {dir} is not pinned on this machine: checked for consistency only, not against a trusted operator key (see `clan-nats trust`)");
    }
    let g = Governance::from_tree(&tree)?.ok_or_else(|| Error::Usage(format!("{dir}: no governance")))?;
    let m = Manifest::from_tree(&tree).map_err(|e| Error::Usage(format!("{dir}/{e}")))?;
    Ok((tree, g, m))
}

fn info(
    dir: &Utf8Path,
    identity: Option<&Utf8Path>,
    pins: &Pins,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let (tree, g, m) = read_trusted(dir, pins)?;
    let id = identity.map(load_identity).transpose()?;
    let role = ops::role(Some(&g), &tree, Some(&m), id.as_ref());
    let org = json!({
        "operator": m.operator.name,
        "operator_public_key": m.operator.public_key,
        "org_id": g.ownership.org_id,
        "owner_id": g.ownership.owner_id,
        "owner_name": g.ownership.owner_name,
        "team_members": g.active().count(),
    });
    if json {
        let v = json!({"app_name": "clan-nats", "app_release": env!("CARGO_PKG_VERSION"), "organization": org, "user_role": role});
        writeln!(out, "{}", serde_json::to_string_pretty(&v).expect("json"))?;
    } else {
        writeln!(out, "clan-nats {}", env!("CARGO_PKG_VERSION"))?;
        writeln!(out, "organization: {} (org id {})", m.operator.name, g.ownership.org_id)?;
        writeln!(out, "operator: {}", m.operator.public_key)?;
        writeln!(out, "owner: {} ({})", g.ownership.owner_name, g.ownership.owner_id)?;
        writeln!(out, "team members: {} active", g.active().count())?;
        writeln!(
            out,
            "accounts: {}, users: {}, hosts: {}",
            m.accounts.len(),
            m.accounts.iter().map(|a| a.users.len()).sum::<usize>(),
            m.hosts.len()
        )?;
        writeln!(out, "your role: {role}")?;
    }
    Ok(())
}

fn vault(command: VaultCommand, pins: &mut Pins, json: bool, out: &mut dyn Write) -> Result<(), Error> {
    match command {
        VaultCommand::Status { dir } => {
            let (_, g, m) = read_trusted(dir.path()?, pins)?;
            let v = crate::show::vault_status(&m, Some(&g));
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&v).expect("json"))?;
            } else {
                write!(out, "{}", crate::show::vault_status_text(&v))?;
            }
            Ok(())
        }
        VaultCommand::RequestKey { name, dir } => {
            let id = load_identity(&dir.identity)?;
            let seed = ops::request_key(&dir.dir, &id, &name, now(), pins)?;
            if json {
                writeln!(out, "{}", json!({"name": name, "seed": seed}))?;
            } else {
                writeln!(out, "{seed}")?;
            }
            Ok(())
        }
    }
}

pub fn verify_cmd(
    dir: &Utf8Path,
    identity: Option<&Utf8Path>,
    operator: Option<&str>,
    pins: &Pins,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let id = identity.map(load_identity).transpose()?;
    let tree = store::read_tree(dir)?;
    let anchor = trust::anchor_for_read(&tree, pins, operator);
    let mut report = verify::verify(dir, id.as_ref(), anchor.operator());
    if let trust::Anchor::Pinned(pin) = &anchor {
        if let Ok(Some(g)) = Governance::from_tree(&tree) {
            report.problems.extend(trust::head_problems(&g, pin).into_iter().map(|p| format!("{dir}/{p}")));
        }
    }
    if json {
        let v = json!({
            "dir": dir,
            "ok": report.problems.is_empty(),
            "anchor": anchor.name(),
            "operator": anchor.operator(),
            "problems": report.problems,
            "accounts": report.accounts,
            "users": report.users,
            "files": report.files,
            "decrypted": report.decrypted,
            "not_yours": report.not_yours,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v).expect("json"))?;
    }
    if !report.problems.is_empty() {
        return Err(Error::Verify(report.problems));
    }
    if !json {
        let dec = if id.is_some() {
            format!(", {} secret(s) decrypted and checked, {} not yours", report.decrypted, report.not_yours)
        } else {
            String::new()
        };
        let against = match &anchor {
            trust::Anchor::Pinned(p) => format!("against the operator {} pinned on this machine", p.operator),
            trust::Anchor::Given(k) => format!("against the operator {k}"),
            trust::Anchor::Store => {
                "for consistency only: no pin and no --operator, so not against a trusted operator key".into()
            }
        };
        writeln!(
            out,
            "{dir}: ok: {} account(s), {} user(s), {} file(s){dec}; checked {against}",
            report.accounts, report.users, report.files
        )?;
    }
    Ok(())
}

/// `trust`: verify the whole store against the given operator key, then pin it.
fn trust_cmd(
    dir: &Utf8Path,
    operator: &str,
    replace: bool,
    pins: &mut Pins,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), Error> {
    if !operator.starts_with('O') || nkeys::KeyPair::from_public_key(operator).is_err() {
        return Err(Error::Usage(format!("--operator {operator:?} is not an operator public key (O…)")));
    }
    let tree = store::read_tree(dir)?;
    if tree.is_empty() {
        return Err(Error::Usage(format!("{dir}: no store here (missing or empty)")));
    }
    let report = verify::verify(dir, None, Some(operator));
    if !report.problems.is_empty() {
        return Err(Error::Untrusted { dir: dir.to_string(), problems: report.problems });
    }
    let g = Governance::from_tree(&tree)?.ok_or_else(|| Error::Usage(format!("{dir}: no governance")))?;
    if let Some(old) = pins.get(&g.ownership.org_id) {
        if old.operator != operator && !replace {
            return Err(Error::Denied(format!(
                "{dir}: organization {} is pinned on this machine to operator {}, not {operator}; pass --replace to re-pin it (only if you know why the operator changed)",
                g.ownership.org_id, old.operator
            )));
        }
        if old.operator == operator {
            let problems = trust::head_problems(&g, old);
            if !problems.is_empty() {
                return Err(Error::Untrusted { dir: dir.to_string(), problems });
            }
        }
    }
    trust::advance(pins, dir, &tree)?;
    let head = g.head().expect("verified");
    if json {
        writeln!(
            out,
            "{}",
            json!({"dir": dir, "org_id": g.ownership.org_id, "operator": operator, "head_seq": head.seq, "head_hash": head.hash, "pins": pins.path})
        )?;
    } else {
        writeln!(
            out,
            "{dir}: pinned organization {} to operator {operator} at audit {head} ({})",
            g.ownership.org_id, pins.path
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod help_tests {
    use super::*;
    use clap::CommandFactory;

    /// Every argument of every command has help text, and every command that
    /// does something ends its help with examples.
    #[test]
    fn every_argument_has_help_and_every_command_examples() {
        fn walk(c: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in c.get_arguments() {
                let id = a.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if a.get_help().is_none() {
                    missing.push(format!("{path} {id}: no help"));
                }
            }
            let subs: Vec<_> = c.get_subcommands().filter(|s| s.get_name() != "help").collect();
            if subs.is_empty() {
                let examples = c.get_after_help().map(|h| h.to_string()).unwrap_or_default();
                if !examples.contains("clan-nats ") {
                    missing.push(format!("{path}: no examples"));
                }
            }
            for s in subs {
                walk(s, &format!("{path} {}", s.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "clan-nats", &mut missing);
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }
}

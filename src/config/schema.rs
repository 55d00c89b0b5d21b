//! The input schema: the cim-keys `clan-bootstrap` format plus clan-nats' own
//! optional sections (`hosts`, `owner`, per-unit `nats_limits`).
//!
//! Every struct denies unknown fields: a misspelt `nats_permisions` must be an
//! error, not a user that silently gets the default permissions. `metadata` is
//! free-form and only carried along.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub organization: Organization,
    #[serde(default)]
    pub organizational_units: Vec<Unit>,
    #[serde(default)]
    pub service_people: Vec<Person>,
    #[serde(default)]
    pub nsc_export_config: Option<NscExportConfig>,
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
    /// Some cim-keys files carry the schema name at the top level too.
    #[serde(default)]
    pub schema: Option<String>,
    #[serde(default)]
    pub hosts: Vec<Host>,
    #[serde(default)]
    pub owner: Option<Owner>,
    /// How accounts are wired to each other: `derived` (default) or `explicit`.
    #[serde(default)]
    pub nats_wiring: Option<Wiring>,
    /// The JSON Schema an editor checks this file against (ignored here), e.g.
    /// `"./clan-nats-config.schema.json"` (`clan-nats schema` writes it).
    #[serde(rename = "$schema", default)]
    pub json_schema: Option<String>,
    // ---- fleet (issue 11): see crate::fleet.
    /// The cluster the `nats_server` hosts form (multi-server fleets).
    #[serde(default)]
    pub nats_cluster: Option<NatsCluster>,
    /// The wiring this config derives, worked out once: validation and the
    /// plan both need it ([`crate::wiring::of`]). Not part of the file.
    #[serde(skip)]
    #[schemars(skip)]
    pub wiring: std::sync::OnceLock<Result<crate::wiring::Wiring, Vec<crate::config::Issue>>>,
}

// ---- fleet (issue 11) ------------------------------------------------------

/// `nats_cluster`: settings of the cluster formed by the `nats_server` hosts.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsCluster {
    /// The cluster's name (default: the operator name).
    #[serde(default)]
    pub name: Option<String>,
    /// Certificate paths on the servers (not secrets themselves: the key file
    /// is provisioned at runtime, never in the store or the Nix store).
    #[serde(default)]
    pub tls: Option<ClusterTls>,
    /// The `full` resolver's sync interval between servers, e.g. `"2m"`.
    #[serde(default)]
    pub sync_interval: Option<String>,
    /// Where each server keeps the account JWTs it holds (relative paths are
    /// resolved against the server's working directory). Default `jwt`.
    #[serde(default)]
    pub resolver_dir: Option<String>,
}

/// `nats_cluster.tls`: used for the client and the route listeners.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterTls {
    pub cert_file: String,
    pub key_file: String,
    pub ca_file: String,
}

/// `derived`: exports/imports follow from the permissions (plus any declared);
/// `explicit`: only the declared `nats_exports`/`nats_imports`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Wiring {
    #[default]
    Derived,
    Explicit,
}

/// `stream` (events, one way) or `service` (request/reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FlowType {
    Stream,
    Service,
}

impl FlowType {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowType::Stream => "stream",
            FlowType::Service => "service",
        }
    }
}

/// A declared export of a unit (`nats_exports[]`).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportDecl {
    pub subject: String,
    #[serde(rename = "type")]
    pub kind: FlowType,
    /// `Singleton` (default), `Stream` or `Chunked`; services only.
    #[serde(default)]
    pub response_type: Option<String>,
    /// Public: any account may import it without an activation token.
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub description: Option<String>,
}

/// A declared import of a unit (`nats_imports[]`).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportDecl {
    pub from_unit: String,
    pub subject: String,
    #[serde(rename = "type")]
    pub kind: FlowType,
    /// The subject in the importing account, if it differs.
    #[serde(default)]
    pub local_subject: Option<String>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Organization {
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub domain: Option<String>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Unit {
    pub name: String,
    #[serde(default)]
    pub unit_type: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub nats_account_name: Option<String>,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub nats_limits: Option<Limits>,
    #[serde(default)]
    pub nats_exports: Vec<ExportDecl>,
    #[serde(default)]
    pub nats_imports: Vec<ImportDecl>,
    // ---- issue 14: account default permissions and scoped signing roles (config/perms.rs) ----
    #[serde(default)]
    pub nats_default_permissions: Option<super::perms::DefaultPermissions>,
    #[serde(default)]
    pub nats_signing_roles: Vec<super::perms::SigningRole>,
    // ---- end issue 14 ----
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    pub organizational_unit: String,
    pub role: String,
    #[serde(default)]
    pub nats_permissions: Option<NatsPermissions>,
    #[serde(default)]
    pub description: Option<String>,
    // ---- issue 14: people with NATS users, per-user limits (config/perms.rs) ----
    /// Give this person a NATS user although its role is not `Service`.
    #[serde(default)]
    pub nats_user: bool,
    #[serde(default)]
    pub nats_limits: Option<super::perms::UserLimits>,
    /// A `nats_signing_roles[].name` of the person's account: the user is signed
    /// by that role's scoped key and gets the role's permissions.
    #[serde(default)]
    pub nats_signing_role: Option<String>,
    // ---- end issue 14 ----
}

impl Person {
    /// `Service` people get a NATS user, and anyone with `nats_user: true`.
    pub fn is_nats_user(&self) -> bool {
        self.role == SERVICE_ROLE || self.nats_user
    }
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsPermissions {
    #[serde(default)]
    pub publish: Vec<String>,
    #[serde(default)]
    pub subscribe: Vec<String>,
    #[serde(default)]
    pub allow_responses: bool,
    #[serde(default)]
    pub max_payload: Option<i64>,
    // ---- issue 14: deny rules and the response TTL (config/perms.rs) ----
    #[serde(default)]
    pub deny_publish: Vec<String>,
    #[serde(default)]
    pub deny_subscribe: Vec<String>,
    /// How long a response may take (`5s`, `250ms`); needs `allow_responses`.
    #[serde(default)]
    pub response_ttl: Option<String>,
    // ---- end issue 14 ----
}

/// Accepted as cim-keys writes it. Only `operator_name` changes the output;
/// the rest describes nsc's plaintext export and is ignored (clan-nats always
/// writes every JWT and encrypts every secret).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NscExportConfig {
    #[serde(default)]
    pub output_path: Option<String>,
    #[serde(default)]
    pub operator_name: Option<String>,
    #[serde(default)]
    pub generate_operator_jwt: Option<bool>,
    #[serde(default)]
    pub generate_account_jwts: Option<bool>,
    #[serde(default)]
    pub generate_user_creds: Option<bool>,
    #[serde(default)]
    pub secure_keys_directory: Option<bool>,
    #[serde(default)]
    pub key_permissions: Option<String>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub name: String,
    pub age_recipient: String,
    #[serde(default)]
    pub nats_server: bool,
    #[serde(default)]
    pub services: Vec<String>,
    // ---- fleet (issue 11): see crate::fleet.
    /// DNS name or IP address at which the other servers reach this host.
    #[serde(default)]
    pub address: Option<String>,
    /// The route (cluster) port, default 6222.
    #[serde(default)]
    pub cluster_port: Option<u16>,
    /// The client port, default 4222 (set so several servers share one address).
    #[serde(default)]
    pub client_port: Option<u16>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub age_recipient: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default)]
    pub conn: Option<i64>,
    #[serde(default)]
    pub subs: Option<i64>,
    #[serde(default)]
    pub payload: Option<i64>,
    #[serde(default)]
    pub data: Option<i64>,
    #[serde(default)]
    pub jetstream: Option<JetStreamLimits>,
}

#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JetStreamLimits {
    #[serde(default)]
    pub mem_storage: Option<i64>,
    #[serde(default)]
    pub disk_storage: Option<i64>,
    #[serde(default)]
    pub streams: Option<i64>,
    #[serde(default)]
    pub consumer: Option<i64>,
}

/// The only role that becomes a NATS user.
pub const SERVICE_ROLE: &str = "Service";

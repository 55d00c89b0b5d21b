//! Account claims (nats-io/jwt `v2/account_claims.go`, `exports.go`, `revocation_list.go`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::user::{Permissions, UserPermissionLimits};
use super::{is_false, ClaimKind, Claims, KeyKind};

/// "No limit" in every NATS limit field.
pub const NO_LIMIT: i64 = -1;

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// `OperatorLimits`: NatsLimits, AccountLimits and JetStreamLimits flattened, in Go's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountLimits {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub subs: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub data: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub payload: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub imports: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub exports: i64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub wildcards: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disallow_bearer: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub conn: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub leaf: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mem_storage: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub disk_storage: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub streams: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consumer: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_ack_pending: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mem_max_stream_bytes: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub disk_max_stream_bytes: i64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub max_bytes_required: bool,
}

impl Default for AccountLimits {
    /// `NewAccountClaims`: everything unlimited, wildcards allowed, JetStream disabled (zeros).
    fn default() -> Self {
        AccountLimits {
            subs: NO_LIMIT,
            data: NO_LIMIT,
            payload: NO_LIMIT,
            imports: NO_LIMIT,
            exports: NO_LIMIT,
            wildcards: true,
            disallow_bearer: false,
            conn: NO_LIMIT,
            leaf: NO_LIMIT,
            mem_storage: 0,
            disk_storage: 0,
            streams: 0,
            consumer: 0,
            max_ack_pending: 0,
            mem_max_stream_bytes: 0,
            disk_max_stream_bytes: 0,
            max_bytes_required: false,
        }
    }
}

impl AccountLimits {
    pub fn jetstream_enabled(&self) -> bool {
        self.mem_storage != 0 || self.disk_storage != 0
    }
}

/// One export (`Export` in `v2/exports.go`); only what this project writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Private export: importers need an activation token.
    #[serde(default, skip_serializing_if = "is_false")]
    pub token_req: bool,
    /// Importing account → unix seconds: activations issued at or before are revoked.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub revocations: BTreeMap<String, i64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub response_type: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub account_token_position: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub info_url: String,
}

/// One import (`Import` in `v2/imports.go`), fields in Go's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Import {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The subject as the initial publisher sees it (exporter's for a stream,
    /// importer's for a service).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// The exporting account's public key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub account: String,
    /// The activation JWT of a private export.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub local_subject: String,
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
}

/// One account signing key: a plain key, or a scoped one (`UserScope`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SigningKey {
    Key(String),
    Scoped(Box<UserScope>),
}

impl SigningKey {
    pub fn key(&self) -> &str {
        match self {
            SigningKey::Key(k) => k,
            SigningKey::Scoped(s) => &s.key,
        }
    }
}

impl From<String> for SigningKey {
    fn from(k: String) -> Self {
        SigningKey::Key(k)
    }
}

/// `UserScope` (`v2/signingkeys.go`): users signed by `key` get `template`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserScope {
    /// Always `"user_scope"`.
    pub kind: String,
    pub key: String,
    pub role: String,
    pub template: UserPermissionLimits,
    /// Go writes it even when empty.
    #[serde(default)]
    pub description: String,
}

/// `ExternalAuthorization` (auth callout); this project never enables it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExternalAuthorization {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auth_users: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_accounts: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub xkey: String,
}

/// `nats` of an account JWT, fields in Go's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountNats {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<Import>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exports: Vec<Export>,
    #[serde(default)]
    pub limits: AccountLimits,
    /// Sorted by key, as Go's `SigningKeys` marshals them: plain keys as
    /// strings, scoped keys as `{"kind":"user_scope",…}` objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<SigningKey>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub revocations: BTreeMap<String, i64>,
    #[serde(default)]
    pub default_permissions: Permissions,
    /// Auth callout (`ExternalAuthorization`). A non-pointer struct in Go, so
    /// nats-io/jwt v2.8.1 always writes it, as `{}` when unused.
    #[serde(default)]
    pub authorization: ExternalAuthorization,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub info_url: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u64,
}

impl Default for AccountNats {
    fn default() -> Self {
        AccountNats {
            imports: Vec::new(),
            exports: Vec::new(),
            limits: AccountLimits::default(),
            signing_keys: Vec::new(),
            revocations: BTreeMap::new(),
            default_permissions: Permissions::default(),
            authorization: ExternalAuthorization::default(),
            description: String::new(),
            info_url: String::new(),
            tags: Vec::new(),
            kind: AccountNats::TYPE.into(),
            version: 2,
        }
    }
}

impl ClaimKind for AccountNats {
    const TYPE: &'static str = "account";
    const SUBJECT: KeyKind = KeyKind::Account;
    const ISSUERS: &'static [KeyKind] = &[KeyKind::Operator, KeyKind::Account];
    const ISSUERS_TEXT: &'static str = "an operator key (or the account itself)";
    fn nats_type(&self) -> &str {
        &self.kind
    }
    fn nats_version(&self) -> u64 {
        self.version
    }
}

pub type AccountClaims = Claims<AccountNats>;

impl AccountClaims {
    /// True when `key` may sign users of this account.
    pub fn trusts(&self, key: &str) -> bool {
        key == self.std.sub || self.nats.signing_keys.iter().any(|k| k.key() == key)
    }

    /// The scope of a scoped signing key, if `key` is one.
    pub fn scope(&self, key: &str) -> Option<&UserScope> {
        self.nats.signing_keys.iter().find_map(|k| match k {
            SigningKey::Scoped(s) if s.key == key => Some(&**s),
            _ => None,
        })
    }

    /// The scoped signing key of role `role`, if any.
    pub fn scope_of_role(&self, role: &str) -> Option<&UserScope> {
        self.nats.signing_keys.iter().find_map(|k| match k {
            SigningKey::Scoped(s) if s.role == role => Some(&**s),
            _ => None,
        })
    }

    /// The public keys of every signing key, plain and scoped.
    pub fn signing_key_ids(&self) -> Vec<String> {
        self.nats.signing_keys.iter().map(|k| k.key().to_string()).collect()
    }

    /// `IsClaimRevoked`: a user is revoked when its key (or `*`) was revoked at or after its `iat`.
    pub fn is_revoked(&self, user_key: &str, user_iat: i64) -> bool {
        [user_key, "*"].iter().any(|k| self.nats.revocations.get(*k).is_some_and(|ts| *ts >= user_iat))
    }

    /// The exports `nsc add operator --sys` gives the system account.
    pub fn system_exports() -> Vec<Export> {
        let url = "https://docs.nats.io/nats-server/configuration/sys_accounts";
        vec![
            Export {
                name: "account-monitoring-streams".into(),
                subject: "$SYS.ACCOUNT.*.>".into(),
                kind: "stream".into(),
                token_req: false,
                revocations: BTreeMap::new(),
                response_type: String::new(),
                account_token_position: 3,
                description: "Account specific monitoring stream".into(),
                info_url: url.into(),
            },
            Export {
                name: "account-monitoring-services".into(),
                subject: "$SYS.REQ.ACCOUNT.*.*".into(),
                kind: "service".into(),
                token_req: false,
                revocations: BTreeMap::new(),
                response_type: "Stream".into(),
                account_token_position: 4,
                description: "Request account specific monitoring services for: SUBSZ, CONNZ, LEAFZ, JSZ and INFO"
                    .into(),
                info_url: url.into(),
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nkeys::KeyPair;

    #[test]
    fn defaults_match_new_account_claims() {
        let json = serde_json::to_string(&AccountNats::default()).unwrap();
        assert_eq!(
            json,
            r#"{"limits":{"subs":-1,"data":-1,"payload":-1,"imports":-1,"exports":-1,"wildcards":true,"conn":-1,"leaf":-1},"default_permissions":{"pub":{},"sub":{}},"authorization":{},"type":"account","version":2}"#
        );
        assert!(!AccountLimits::default().jetstream_enabled());
    }

    #[test]
    fn round_trip_and_revocation() {
        let op = KeyPair::new_operator();
        let acct = KeyPair::new_account();
        let user = KeyPair::new_user().public_key();
        let mut c = AccountClaims::new(acct.public_key(), "core", AccountNats::default());
        c.nats.revocations.insert(user.clone(), 50);
        let tok = c.encode(&op, 60).unwrap();
        let back = AccountClaims::decode(&tok).unwrap();
        assert_eq!(back, c);
        assert!(back.is_revoked(&user, 50));
        assert!(back.is_revoked(&user, 10));
        assert!(!back.is_revoked(&user, 51));
        assert!(!back.is_revoked(&KeyPair::new_user().public_key(), 1));
    }

    #[test]
    fn export_and_import_match_go() {
        // Test vectors: json.Marshal of the same jwt.Export / jwt.Import, run with
        // Debian's golang-github-nats-io-jwt-dev 2.3.0.
        let e = Export {
            name: "x".into(),
            subject: "a.>".into(),
            kind: "service".into(),
            token_req: true,
            revocations: [("AB".to_string(), 5)].into(),
            response_type: "Singleton".into(),
            account_token_position: 0,
            description: "d".into(),
            info_url: String::new(),
        };
        assert_eq!(
            String::from_utf8(crate::jwt::go_json(&e)).unwrap(),
            r#"{"name":"x","subject":"a.\u003e","type":"service","token_req":true,"revocations":{"AB":5},"response_type":"Singleton","description":"d"}"#
        );
        let i = Import {
            name: "n".into(),
            subject: "a.>".into(),
            account: "AEXP".into(),
            token: "tok".into(),
            local_subject: "b.>".into(),
            kind: "stream".into(),
        };
        assert_eq!(
            String::from_utf8(crate::jwt::go_json(&i)).unwrap(),
            r#"{"name":"n","subject":"a.\u003e","account":"AEXP","token":"tok","local_subject":"b.\u003e","type":"stream"}"#
        );
    }

    #[test]
    fn scoped_signing_keys_match_go_shape() {
        // The shape of SigningKeys.MarshalJSON in nats-io/jwt v2.8.1 (signingkeys.go,
        // read from the source; nsc 2.14 describes the resulting accounts identically,
        // see .ci/nsc-check.sh): keys sorted, strings and objects mixed, the template
        // a UserPermissionLimits with NewUserScope's -1 limits, description always.
        let mut n = AccountNats::default();
        let template = UserPermissionLimits { subs: -1, data: -1, payload: -1, ..Default::default() };
        n.signing_keys = vec![
            SigningKey::Key("AB".into()),
            SigningKey::Scoped(Box::new(UserScope {
                kind: "user_scope".into(),
                key: "AC".into(),
                role: "r".into(),
                template,
                description: String::new(),
            })),
        ];
        let json = String::from_utf8(crate::jwt::go_json(&n.signing_keys)).unwrap();
        assert_eq!(
            json,
            r#"["AB",{"kind":"user_scope","key":"AC","role":"r","template":{"pub":{},"sub":{},"subs":-1,"data":-1,"payload":-1},"description":""}]"#
        );
        let back: Vec<SigningKey> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, n.signing_keys);
        // A scoped user: nothing but issuer_account (jwt's HasEmptyPermissions).
        let u = crate::jwt::user::UserNats::scoped("AA");
        assert_eq!(
            String::from_utf8(crate::jwt::go_json(&u)).unwrap(),
            r#"{"pub":{},"sub":{},"issuer_account":"AA","type":"user","version":2}"#
        );
    }

    #[test]
    fn exports_are_sorted_by_subject() {
        let e = AccountClaims::system_exports();
        assert!(e[0].subject < e[1].subject);
    }
}

//! Where everything lives in DIR: the nsc layout (nsc `cmd/store/store.go`,
//! `cmd/store/keys.go`) with every secret as an `.age` file, plus the server
//! config and the manifest.

/// `DIR/manifest.json`.
pub const MANIFEST: &str = "manifest.json";
/// `DIR/server/nats-server.conf`.
pub const SERVER_CONF: &str = "server/nats-server.conf";
/// `DIR/server/server.json`.
pub const SERVER_JSON: &str = "server/server.json";
/// The suffix of every encrypted file.
pub const AGE_SUFFIX: &str = ".age";

/// Where creds files go: the nsc layout (default) or the older flat export
/// (`DIR/nats/<user>.creds.age`; user names are unique across accounts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Nsc,
    Flat,
}

impl Format {
    pub fn is_nsc(&self) -> bool {
        *self == Format::Nsc
    }
}

/// Paths (relative to DIR, `/`-separated) for one operator's store.
#[derive(Debug, Clone)]
pub struct Layout {
    pub operator: String,
    pub format: Format,
}

impl Layout {
    pub fn new(operator: &str) -> Self {
        Layout { operator: operator.to_string(), format: Format::Nsc }
    }

    pub fn with_format(operator: &str, format: Format) -> Self {
        Layout { operator: operator.to_string(), format }
    }

    pub fn store_root(&self) -> String {
        format!("nsc/stores/{}", self.operator)
    }

    /// `<stores>/<OP>/.nsc`.
    pub fn nsc_info(&self) -> String {
        format!("{}/.nsc", self.store_root())
    }

    /// The `.nsc` content, exactly as nsc's `json.Marshal(store.Info)` writes it.
    pub fn nsc_info_content(&self) -> String {
        let name = serde_json::to_string(&self.operator).expect("string serializes");
        format!(r#"{{"managed":false,"name":{name},"kind":"operator","version":"1"}}"#)
    }

    pub fn operator_jwt(&self) -> String {
        format!("{}/{}.jwt", self.store_root(), self.operator)
    }

    pub fn account_dir(&self, account: &str) -> String {
        format!("{}/accounts/{account}", self.store_root())
    }

    pub fn account_jwt(&self, account: &str) -> String {
        format!("{}/{account}.jwt", self.account_dir(account))
    }

    pub fn user_jwt(&self, account: &str, user: &str) -> String {
        format!("{}/users/{user}.jwt", self.account_dir(account))
    }

    pub fn user_creds(&self, account: &str, user: &str) -> String {
        match self.format {
            Format::Nsc => format!("{}/users/{user}.creds{AGE_SUFFIX}", self.account_dir(account)),
            Format::Flat => format!("nats/{user}.creds{AGE_SUFFIX}"),
        }
    }
}

/// `keys/<P>/<P2P3>/<PUBKEY>.nk.age` under `DIR/nsc/keys/`. Total: a string too
/// short (or not ASCII) to be a public key, as a damaged manifest may hold, gets
/// `_` in place of the missing characters instead of a panic.
pub fn key_path(public_key: &str) -> String {
    let kind = public_key.get(0..1).unwrap_or("_");
    let shard = public_key.get(1..3).unwrap_or("__");
    format!("nsc/keys/keys/{kind}/{shard}/{public_key}.nk{AGE_SUFFIX}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_nsc() {
        let l = Layout::new("acme");
        assert_eq!(l.nsc_info(), "nsc/stores/acme/.nsc");
        assert_eq!(l.nsc_info_content(), r#"{"managed":false,"name":"acme","kind":"operator","version":"1"}"#);
        assert_eq!(l.operator_jwt(), "nsc/stores/acme/acme.jwt");
        assert_eq!(l.account_jwt("core"), "nsc/stores/acme/accounts/core/core.jwt");
        assert_eq!(l.user_jwt("core", "svc"), "nsc/stores/acme/accounts/core/users/svc.jwt");
        assert_eq!(l.user_creds("core", "svc"), "nsc/stores/acme/accounts/core/users/svc.creds.age");
        assert_eq!(key_path("OAC7V6XYZ"), "nsc/keys/keys/O/AC/OAC7V6XYZ.nk.age");
        let flat = Layout::with_format("acme", Format::Flat);
        assert_eq!(flat.user_creds("core", "svc"), "nats/svc.creds.age");
        assert_eq!(flat.user_jwt("core", "svc"), l.user_jwt("core", "svc"), "JWTs stay where nsc reads them");
    }

    /// Regression (fuzz target `verify`): a manifest key entry with a short or
    /// non-ASCII `public_key` made `verify` panic slicing it.
    #[test]
    fn key_path_of_a_malformed_key_does_not_panic() {
        assert_eq!(key_path(""), "nsc/keys/keys/_/__/.nk.age");
        assert_eq!(key_path("O"), "nsc/keys/keys/O/__/O.nk.age");
        assert_eq!(key_path("é"), "nsc/keys/keys/_/__/é.nk.age");
        assert_eq!(key_path("Oé"), "nsc/keys/keys/O/é/Oé.nk.age");
    }
}

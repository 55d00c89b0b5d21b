//! The organization config: schema ([`schema`]), subject syntax ([`subject`])
//! and validation with field paths ([`validate`]).

pub mod clan;
pub mod fixtures;
pub mod naming;
pub mod perms;
pub mod schema;
pub mod subject;
pub mod validate;

use std::fmt;

use camino::{Utf8Path, Utf8PathBuf};

pub use schema::*;

/// One problem in a config, at a field path such as `service_people[3].nats_permissions.publish[0]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in one config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: Utf8PathBuf,
    pub issues: Vec<Issue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.issues.as_slice() {
            [one] => write!(f, "{}: {one}", self.file),
            many => {
                write!(f, "{}: {} problems", self.file, many.len())?;
                for i in many {
                    write!(f, "\n  {i}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    fn one(file: &Utf8Path, path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { file: file.to_owned(), issues: vec![Issue { path: path.into(), message: message.into() }] }
    }
}

/// The largest config file accepted (16 MiB): far beyond any real
/// organization, and a bound on what one file can make the generator hold.
pub const MAX_CONFIG_BYTES: usize = 16 * 1024 * 1024;

/// Parse config text. `file` only names the source in errors.
pub fn parse(file: &Utf8Path, text: &str) -> Result<Config, ConfigError> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::one(
            file,
            "",
            format!("{} bytes is larger than the limit of {MAX_CONFIG_BYTES} bytes (16 MiB)", text.len()),
        ));
    }
    // The common case first, at full speed: a valid config. Only a config
    // that fails is parsed again, to find the field path of its error.
    if let Ok(c) = serde_json::from_str::<Config>(text) {
        if let Some(path) = positional_struct(text) {
            return Err(ConfigError::one(
                file,
                path,
                "expected an object with named fields, found an array (fields are never taken by position)",
            ));
        }
        return Ok(c);
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    // `end` refuses anything but whitespace after the config (a stray `}` or a
    // second document would otherwise be ignored).
    let parsed = serde_path_to_error::deserialize::<_, Config>(&mut *de);
    if parsed.is_ok() {
        if let Err(e) = de.end() {
            let what = strip_position(&e.to_string());
            let (line, col) = (e.line(), e.column());
            return Err(ConfigError::one(file, "", format!("invalid JSON at line {line} column {col}: {what}")));
        }
    }
    match parsed {
        Ok(c) => match positional_struct(text) {
            None => Ok(c),
            Some(path) => Err(ConfigError::one(
                file,
                path,
                "expected an object with named fields, found an array (fields are never taken by position)",
            )),
        },
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let (line, col) = (inner.line(), inner.column());
            if inner.is_syntax() || inner.is_eof() {
                let what = strip_position(&inner.to_string());
                Err(ConfigError::one(file, "", format!("invalid JSON at line {line} column {col}: {what}")))
            } else {
                let path = if path == "." { String::new() } else { path };
                let what = strip_position(&inner.to_string());
                Err(ConfigError::one(file, path, format!("{what} (line {line} column {col})")))
            }
        }
    }
}

/// serde accepts a JSON array for a struct, taking the fields by position:
/// `[{"name": "acme"}]` would be a config, and `"organization": ["acme"]` an
/// organization, bypassing every field name (and so `deny_unknown_fields`).
/// Returns the path of the first struct written as an array in text that
/// already parsed as a [`Config`].
fn positional_struct(text: &str) -> Option<String> {
    // A probe of the config's shape, which skips (not builds) every value it
    // does not look at: a 10,000-user config is read in a few milliseconds.
    let top: shape::Obj<shape::Top> = serde_json::from_str(text).ok()?;
    let shape::Obj::Map(top) = top else { return Some(String::new()) };
    for (k, v) in
        [("organization", &top.organization), ("nsc_export_config", &top.nsc_export_config), ("owner", &top.owner)]
    {
        if v.as_ref().is_some_and(|v| v.is_array()) {
            return Some(k.into());
        }
    }
    match &top.nats_cluster {
        Some(shape::Obj::Array) => return Some("nats_cluster".into()),
        Some(shape::Obj::Map(c)) if c.tls.as_ref().is_some_and(|t| t.is_array()) => {
            return Some("nats_cluster.tls".into())
        }
        _ => {}
    }
    for (i, u) in top.organizational_units.iter().flatten().enumerate() {
        let at = format!("organizational_units[{i}]");
        let shape::Obj::Map(u) = u else { return Some(at) };
        match &u.nats_limits {
            Some(shape::Obj::Array) => return Some(format!("{at}.nats_limits")),
            Some(shape::Obj::Map(l)) if l.jetstream.as_ref().is_some_and(|j| j.is_array()) => {
                return Some(format!("{at}.nats_limits.jetstream"))
            }
            _ => {}
        }
        for (list, items) in [("nats_exports", &u.nats_exports), ("nats_imports", &u.nats_imports)] {
            if let Some(j) = items.iter().flatten().position(|e| e.is_array()) {
                return Some(format!("{at}.{list}[{j}]"));
            }
        }
    }
    for (i, p) in top.service_people.iter().flatten().enumerate() {
        let shape::Obj::Map(p) = p else { return Some(format!("service_people[{i}]")) };
        if p.nats_permissions.as_ref().is_some_and(|v| v.is_array()) {
            return Some(format!("service_people[{i}].nats_permissions"));
        }
    }
    top.hosts.iter().flatten().position(|h| h.is_array()).map(|i| format!("hosts[{i}]"))
}

/// The parts of a config's shape [`positional_struct`] looks at: whether a
/// value that must be an object was given as an array (serde would take its
/// fields by position). Everything else is skipped unread.
mod shape {
    use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

    /// An object (with the fields of `T` looked at) or an array; anything
    /// else fails the probe (the real parse, which passed, allows no such thing).
    pub enum Obj<T> {
        Map(T),
        Array,
    }

    impl<T> Obj<T> {
        pub fn is_array(&self) -> bool {
            matches!(self, Obj::Array)
        }
    }

    /// Any value: only whether it is an array counts.
    pub type Any = Obj<IgnoredAny>;

    impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V<T>(std::marker::PhantomData<T>);
            impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
                type Value = Obj<T>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("any value")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Obj<T>, A::Error> {
                    while a.next_element::<IgnoredAny>()?.is_some() {}
                    Ok(Obj::Array)
                }
                fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Obj<T>, A::Error> {
                    T::deserialize(serde::de::value::MapAccessDeserializer::new(a)).map(Obj::Map)
                }
            }
            d.deserialize_any(V(std::marker::PhantomData))
        }
    }

    #[derive(serde::Deserialize)]
    pub struct Top {
        pub organization: Option<Any>,
        pub nsc_export_config: Option<Any>,
        pub owner: Option<Any>,
        pub nats_cluster: Option<Obj<Cluster>>,
        pub organizational_units: Option<Vec<Obj<Unit>>>,
        pub service_people: Option<Vec<Obj<Person>>>,
        pub hosts: Option<Vec<Any>>,
    }

    #[derive(serde::Deserialize)]
    pub struct Cluster {
        pub tls: Option<Any>,
    }

    #[derive(serde::Deserialize)]
    pub struct Unit {
        pub nats_limits: Option<Obj<Limits>>,
        pub nats_exports: Option<Vec<Any>>,
        pub nats_imports: Option<Vec<Any>>,
    }

    #[derive(serde::Deserialize)]
    pub struct Limits {
        pub jetstream: Option<Any>,
    }

    #[derive(serde::Deserialize)]
    pub struct Person {
        pub nats_permissions: Option<Any>,
    }
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// The JSON Schema (draft 2020-12) of the config, generated from the types
/// that parse it, pretty-printed with a final newline left to the caller.
pub fn json_schema() -> String {
    let mut schema = serde_json::to_value(schemars::schema_for!(Config)).expect("a schema serializes");
    schema["title"] = "clan-nats organization config".into();
    schema["$id"] = "https://github.com/clan-nats/clan-nats/schema/clan-nats-config.schema.json".into();
    serde_json::to_string_pretty(&schema).expect("a schema serializes")
}

/// Parse and validate config text, reporting schema and semantic problems
/// together: an unknown field is set aside (and reported, with the closest
/// valid name) so the rest of the file is still checked, up to 20 of them.
/// Any other schema error (a wrong type, a missing field, bad JSON) stops
/// there, since what follows would be checked against a guess.
pub fn parse_and_validate(file: &Utf8Path, text: &str) -> Result<Config, ConfigError> {
    const MAX_SET_ASIDE: usize = 20;
    let first = match parse(file, text) {
        Ok(c) => {
            let issues = validate::validate(&c);
            return if issues.is_empty() { Ok(c) } else { Err(ConfigError { file: file.to_owned(), issues }) };
        }
        Err(e) => e,
    };
    let mut issues: Vec<Issue> = first.issues.iter().cloned().map(with_suggestion).collect();
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(text) else {
        return Err(ConfigError { file: file.to_owned(), issues });
    };
    let mut current = first.issues[0].clone();
    for _ in 0..MAX_SET_ASIDE {
        if !current.message.starts_with("unknown field") || !remove_at(&mut value, &current.path) {
            break;
        }
        let rest = serde_json::to_string(&value).expect("a JSON value serializes");
        match parse(file, &rest) {
            Ok(c) => {
                issues.extend(validate::validate(&c));
                break;
            }
            Err(e) => {
                // Positions refer to the file only for the first problem.
                let mut next = e.issues[0].clone();
                if let Some(i) = next.message.rfind(" (line ") {
                    next.message.truncate(i);
                }
                if next.path == current.path {
                    break;
                }
                issues.push(with_suggestion(next.clone()));
                current = next;
            }
        }
    }
    Err(ConfigError { file: file.to_owned(), issues })
}

/// serde's "unknown field `x`, expected one of `a`, `b`" plus "did you mean".
fn with_suggestion(mut issue: Issue) -> Issue {
    let Some(rest) = issue.message.strip_prefix("unknown field `") else { return issue };
    let Some((name, tail)) = rest.split_once('`') else { return issue };
    let known: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
    if let Some(s) = crate::suggest::did_you_mean(name, known) {
        issue.message = format!("{}; did you mean `{s}`?", issue.message);
    }
    issue
}

/// Remove the field at a serde_path_to_error path (`a.b[2].c`) from a JSON
/// value; false when the path does not lead to an object field.
fn remove_at(v: &mut serde_json::Value, path: &str) -> bool {
    let mut parts: Vec<String> = Vec::new();
    for seg in path.split('.') {
        let (head, idx) = match seg.find('[') {
            Some(i) => (&seg[..i], Some(&seg[i..])),
            None => (seg, None),
        };
        if !head.is_empty() {
            parts.push(head.to_string());
        }
        for ix in idx.into_iter().flat_map(|s| s.split(']')).filter(|s| !s.is_empty()) {
            parts.push(ix.to_string());
        }
    }
    let Some((last, lead)) = parts.split_last() else { return false };
    let mut cur = v;
    for p in lead {
        cur = match p.strip_prefix('[').map(str::parse::<usize>) {
            Some(Ok(i)) => match cur.get_mut(i) {
                Some(x) => x,
                None => return false,
            },
            _ => match cur.get_mut(p.as_str()) {
                Some(x) => x,
                None => return false,
            },
        };
    }
    cur.as_object_mut().is_some_and(|o| o.remove(last.as_str()).is_some())
}

/// Read, parse and validate a config file.
pub fn load(file: &Utf8Path) -> Result<Config, ConfigError> {
    let bytes = crate::input::config_bytes(file)?;
    let file = crate::input::config_name(file);
    let text = String::from_utf8(bytes).map_err(|_| ConfigError::one(file, "", "not UTF-8"))?;
    parse_and_validate(file, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ConfigError {
        parse(Utf8Path::new("t.json"), text).expect_err(text)
    }

    /// Regression (tests/malformed: 07-trailing-garbage.json was accepted and a
    /// store written): anything after the config is an error.
    #[test]
    fn trailing_characters_are_refused() {
        let e = err("{\"organization\": {\"name\": \"acme\"}}\n}\n");
        assert_eq!(e.to_string(), "t.json: invalid JSON at line 2 column 1: trailing characters");
        let e = err("{\"organization\": {\"name\": \"a\"}} {\"organization\": {\"name\": \"b\"}}");
        assert!(e.to_string().contains("trailing characters"), "{e}");
        assert!(parse(Utf8Path::new("t.json"), "{\"organization\": {\"name\": \"acme\"}} \n\t\n").is_ok());
    }

    /// Regression (tests/malformed: `[{"name": "acme"}]` was a valid config):
    /// serde takes a struct's fields by position from an array, so field names
    /// and `deny_unknown_fields` were bypassed.
    #[test]
    fn structs_written_as_arrays_are_refused() {
        let cases = [
            (r#"[{"name": "acme"}]"#, ""),
            (r#"{"organization": ["acme"]}"#, "organization"),
            (r#"{"organization": {"name": "a"}, "owner": ["id"]}"#, "owner"),
            (r#"{"organization": {"name": "a"}, "nsc_export_config": ["out"]}"#, "nsc_export_config"),
            (
                r#"{"organization": {"name": "a"}, "organizational_units": [{"name": "U"}, ["V"]]}"#,
                "organizational_units[1]",
            ),
            (
                r#"{"organization": {"name": "a"}, "organizational_units": [{"name": "U", "nats_limits": [1]}]}"#,
                "organizational_units[0].nats_limits",
            ),
            (
                r#"{"organization": {"name": "a"}, "organizational_units": [{"name": "U", "nats_limits": {"jetstream": [1]}}]}"#,
                "organizational_units[0].nats_limits.jetstream",
            ),
            (r#"{"organization": {"name": "a"}, "service_people": [["x", "e", "U", "Service"]]}"#, "service_people[0]"),
            (
                r#"{"organization": {"name": "a"}, "service_people": [{"name": "x", "organizational_unit": "U", "role": "Service", "nats_permissions": [["a"]]}]}"#,
                "service_people[0].nats_permissions",
            ),
            (r#"{"organization": {"name": "a"}, "hosts": [["h", "age1x"]]}"#, "hosts[0]"),
            (
                r#"{"organization": {"name": "a"}, "organizational_units": [{"name": "U", "nats_exports": [["a.>", "stream"]]}]}"#,
                "organizational_units[0].nats_exports[0]",
            ),
            (
                r#"{"organization": {"name": "a"}, "organizational_units": [{"name": "U", "nats_imports": [{"from_unit": "V", "subject": "a", "type": "stream"}, ["V", "a", "stream"]]}]}"#,
                "organizational_units[0].nats_imports[1]",
            ),
        ];
        for (text, path) in cases {
            let e = err(text);
            assert_eq!(e.issues.len(), 1, "{text}: {e}");
            assert_eq!(e.issues[0].path, path, "{text}: {e}");
            assert!(e.issues[0].message.contains("found an array"), "{text}: {e}");
        }
        // Arrays where the schema has lists, and anything in metadata, are fine.
        let ok = r#"{"organization": {"name": "a"}, "metadata": {"x": [[1], {"y": []}]}, "organizational_units": [],
            "service_people": [{"name": "x", "organizational_unit": "U", "role": "Service",
                                "nats_permissions": {"publish": ["a"], "subscribe": []}}], "hosts": []}"#;
        assert!(parse(Utf8Path::new("t.json"), ok).is_ok());
    }
}

/// The changes from `old` to `new` that change who can decrypt the store's
/// secrets, one line each: the owner's recipient, and the recipient of a host
/// that both configs name (a host that is added or removed is listed too).
/// Recipients are compared in canonical form (an ssh key's comment is not a change).
pub fn recipient_changes(old: &Config, new: &Config) -> Vec<String> {
    let canon = |r: &str| crate::vault::parse_recipient(r).map_or_else(|_| r.trim().to_string(), |r| r.text);
    let owner = |c: &Config| c.owner.as_ref().and_then(|o| o.age_recipient.as_deref()).map(canon);
    let mut out = Vec::new();
    match (owner(old), owner(new)) {
        (a, b) if a == b => {}
        (a, b) => out.push(format!(
            "owner.age_recipient: {} -> {} (every seed and every creds file is encrypted to it)",
            a.as_deref().unwrap_or("(none)"),
            b.as_deref().unwrap_or("(none)")
        )),
    }
    let hosts = |c: &Config| -> std::collections::BTreeMap<String, String> {
        c.hosts.iter().map(|h| (h.name.clone(), canon(&h.age_recipient))).collect()
    };
    let (before, after) = (hosts(old), hosts(new));
    for (name, r) in &after {
        match before.get(name) {
            Some(b) if b != r => out.push(format!("hosts {name:?}: age_recipient {b} -> {r}")),
            _ => {}
        }
    }
    out
}

/// Hosts added and removed from `old` to `new` (shown, not confirmed).
pub fn host_changes(old: &Config, new: &Config) -> Vec<String> {
    let names = |c: &Config| c.hosts.iter().map(|h| h.name.clone()).collect::<std::collections::BTreeSet<_>>();
    let (before, after) = (names(old), names(new));
    let mut out: Vec<String> = after.difference(&before).map(|h| format!("host {h:?} added")).collect();
    out.extend(before.difference(&after).map(|h| format!("host {h:?} removed")));
    out
}

#[cfg(test)]
mod recipient_tests {
    use super::*;

    fn cfg(owner: Option<&str>, hosts: &[(&str, &str)]) -> Config {
        let mut v = serde_json::json!({"organization": {"name": "acme"}});
        if let Some(o) = owner {
            v["owner"] = serde_json::json!({"age_recipient": o});
        }
        v["hosts"] = hosts.iter().map(|(n, r)| serde_json::json!({"name": n, "age_recipient": r})).collect();
        parse(Utf8Path::new("t.json"), &v.to_string()).unwrap()
    }

    #[test]
    fn owner_and_host_recipient_changes_are_named() {
        let k1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFEuixEtABRP1/l/62DXTFQrXD4fw9a6fzS6ELSFJRJE";
        let k2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKkQ6DMOdS1cNvgBcXYo8l1iX7HBCmNd5lWd1hBMrG";
        let a = cfg(None, &[("h1", k1)]);
        assert!(recipient_changes(&a, &a).is_empty());
        // A comment is not a change.
        assert!(recipient_changes(&a, &cfg(None, &[("h1", &format!("{k1} root@h1"))])).is_empty());
        let c = recipient_changes(&a, &cfg(Some(k2), &[("h1", k2)]));
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(c[0].starts_with("owner.age_recipient: (none) -> ssh-ed25519"), "{c:?}");
        assert!(c[1].starts_with("hosts \"h1\": age_recipient"), "{c:?}");
        // Added hosts are shown, not confirmed.
        let added = cfg(None, &[("h1", k1), ("h2", k2)]);
        assert!(recipient_changes(&a, &added).is_empty());
        assert_eq!(host_changes(&a, &added), ["host \"h2\" added"]);
    }
}

//! The organization config: schema ([`schema`]), subject syntax ([`subject`])
//! and validation with field paths ([`validate`]).

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

/// Parse config text. `file` only names the source in errors.
pub fn parse(file: &Utf8Path, text: &str) -> Result<Config, ConfigError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, Config>(de) {
        Ok(c) => Ok(c),
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

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Read, parse and validate a config file.
pub fn load(file: &Utf8Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|e| ConfigError::one(file, "", format!("cannot read: {e}")))?;
    let config = parse(file, &text)?;
    let issues = validate::validate(&config);
    if issues.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError { file: file.to_owned(), issues })
    }
}

//! Where arguments that may be secret or large come from: `-` is standard
//! input, `@FILE` a file, anything else the value itself (for a token or a
//! join request, a value on the command line is visible to every user of the
//! machine in `ps`, so it is accepted with a warning).

use std::io::Read;
use std::sync::OnceLock;

use camino::Utf8Path;

use crate::config::{ConfigError, Issue};

/// The most read from standard input or an `@FILE` for a token or request.
const MAX_ARG_BYTES: u64 = 1024 * 1024;

fn read_stdin(limit: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    std::io::stdin().lock().take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(std::io::Error::other(format!("more than {limit} bytes")));
    }
    Ok(buf)
}

/// Standard input is read once, for one flag: the same flag read again (a
/// command that reads the config twice) gets the same bytes, another flag
/// given `-` as well is refused (`--config - --request -` cannot both be stdin).
fn stdin_once(flag: &'static str, limit: u64) -> Result<&'static [u8], String> {
    static STDIN: OnceLock<(&'static str, Result<Vec<u8>, String>)> = OnceLock::new();
    let (owner, bytes) = STDIN.get_or_init(|| (flag, read_stdin(limit).map_err(|e| e.to_string())));
    if *owner != flag {
        return Err(format!("standard input is already {owner}'s: only one argument can be read from it"));
    }
    bytes.as_ref().map(Vec::as_slice).map_err(Clone::clone)
}

/// A secret argument (`--token`, `--request`): `-`, `@FILE` or the value.
pub fn secret_arg(flag: &'static str, value: &str) -> Result<String, String> {
    let bytes = if value == "-" {
        stdin_once(flag, MAX_ARG_BYTES).map_err(|e| format!("{flag} -: cannot read standard input: {e}"))?.to_vec()
    } else if let Some(path) = value.strip_prefix('@') {
        let f = std::fs::File::open(path).map_err(|e| format!("{flag} @{path}: {e}"))?;
        let mut buf = Vec::new();
        f.take(MAX_ARG_BYTES + 1).read_to_end(&mut buf).map_err(|e| format!("{flag} @{path}: {e}"))?;
        if buf.len() as u64 > MAX_ARG_BYTES {
            return Err(format!("{flag} @{path}: more than {MAX_ARG_BYTES} bytes"));
        }
        buf
    } else {
        eprintln!(
            "clan-nats: warning: {flag} was given on the command line, where other users of this machine can read it; use {flag} - (standard input) or {flag} @FILE"
        );
        return Ok(value.trim().to_string());
    };
    let text = String::from_utf8(bytes).map_err(|_| format!("{flag}: not UTF-8"))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("{flag} {value}: empty"));
    }
    Ok(text.to_string())
}

/// The bytes of `--config`: a file, or standard input for `-` (so that
/// `nix eval --json … | clan-nats generate --config -` works). `@FILE` is
/// FILE, as for the secret arguments (a file whose name starts with `@` is
/// given as `./@name`).
pub fn config_bytes(path: &Utf8Path) -> Result<Vec<u8>, ConfigError> {
    let fail =
        |message: String| ConfigError { file: path.to_owned(), issues: vec![Issue { path: String::new(), message }] };
    if path.as_str() == "-" {
        let limit = crate::config::MAX_CONFIG_BYTES as u64;
        return stdin_once("--config", limit)
            .map(<[u8]>::to_vec)
            .map_err(|e| fail(format!("cannot read standard input: {e}")));
    }
    let path = path.as_str().strip_prefix('@').map(Utf8Path::new).unwrap_or(path);
    std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))
}

/// How a config path is named in messages.
pub fn config_name(path: &Utf8Path) -> &Utf8Path {
    if path.as_str() == "-" {
        Utf8Path::new("<stdin>")
    } else {
        path.as_str().strip_prefix('@').map(Utf8Path::new).unwrap_or(path)
    }
}

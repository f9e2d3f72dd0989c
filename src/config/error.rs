//! The one error type of configuration and mapping files.
//!
//! Its `Display` always names the file, then — where they apply — the entry
//! (`reseller 'acme'`), the dotted key (`upstream.url`) and the offending value, then what is
//! wrong: `config.toml: key 'upstream.url': value 'ftp://x': the scheme must be http or https`.
//! Values that may be secrets (password hashes) are never recorded.

use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration or mapping file problem, located as precisely as possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file at fault (as given on the command line or found in a directory).
    pub file: PathBuf,
    /// The entry within a mapping file, e.g. `reseller 'acme'` or `plan 101`.
    pub entry: Option<String>,
    /// The dotted key, e.g. `upstream.url` or `markup.percent`.
    pub key: Option<String>,
    /// The offending value as written (never a secret).
    pub value: Option<String>,
    /// What is wrong, in words.
    pub message: String,
}

impl ConfigError {
    /// An error about a whole file (unreadable, bad TOML — toml's message names key and line).
    pub fn file(file: &Path, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.to_path_buf(),
            entry: None,
            key: None,
            value: None,
            message: message.into(),
        }
    }

    /// An error about one key's value.
    pub fn key(
        file: &Path,
        key: impl Into<String>,
        value: impl fmt::Display,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            value: Some(value.to_string()),
            key: Some(key.into()),
            ..ConfigError::file(file, message)
        }
    }

    /// Adds (or replaces) the entry this error is about.
    pub fn in_entry(mut self, entry: impl Into<String>) -> ConfigError {
        self.entry = Some(entry.into());
        self
    }

    /// Drops the recorded value (for keys whose values must not be printed).
    pub fn without_value(mut self) -> ConfigError {
        self.value = None;
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(entry) = &self.entry {
            write!(f, ": {entry}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key '{key}'")?;
        }
        if let Some(value) = &self.value {
            write!(f, ": value '{}'", value.escape_debug())?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_entry_key_value() {
        let e = ConfigError::key(Path::new("m.toml"), "plans", "[7]", "plan 7 is not defined")
            .in_entry("reseller 'acme'");
        assert_eq!(
            e.to_string(),
            "m.toml: reseller 'acme': key 'plans': value '[7]': plan 7 is not defined"
        );
        let e = ConfigError::file(Path::new("c.toml"), "boom");
        assert_eq!(e.to_string(), "c.toml: boom");
    }
}

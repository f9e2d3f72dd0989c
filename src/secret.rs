//! Secrets that never print, argon2id password hashing, and resolution of upstream
//! passwords from the environment or a file.
//!
//! A [`Secret`] prints as `***` in both `Debug` and `Display`; the only way to read it is
//! [`Secret::expose`], so every place that handles the value in clear is easy to find.
//! Errors name the variable or the file a secret came from, never the value.

use std::fmt;
use std::path::PathBuf;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2};
use serde::{Deserialize, Serialize};

/// A secret string. `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value in clear. Call it only where the value leaves the process (an upstream
    /// `authinfo`) or is compared.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why a secret could not be produced or checked. Never carries a secret value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable '{name}' is not set")]
    EnvMissing { name: String },
    #[error("environment variable '{name}' is not valid UTF-8")]
    EnvNotUnicode { name: String },
    #[error("environment variable '{name}' is empty")]
    EnvEmpty { name: String },
    #[error("cannot read password file '{}': {source}", path.display())]
    FileRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("password file '{}' is not valid UTF-8", path.display())]
    FileNotUtf8 { path: PathBuf },
    #[error("password file '{}' is empty", path.display())]
    FileEmpty { path: PathBuf },
    #[error("not a PHC password hash string: {0}")]
    MalformedHash(String),
    #[error("the password hash uses '{0}', not argon2id")]
    NotArgon2id(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Hashes `password` with argon2id (the crate's default parameters) and a random salt,
/// answering the PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
pub fn hash_password(password: &str) -> Result<String, SecretError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| SecretError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `phc`. A malformed or non-argon2id hash is a
/// mismatch, never a panic.
pub fn verify_password(phc: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return false;
    }
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(params) = argon2::Params::try_from(&parsed) else {
        return false;
    };
    let version = match parsed.version.map(argon2::Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let argon = Argon2::new(Algorithm::Argon2id, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    let hashed = with_blocks(params.block_count(), |blocks| {
        argon.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, blocks)
    });
    // `Output`'s equality is constant-time.
    hashed.is_ok() && argon2::password_hash::Output::new(&out).is_ok_and(|o| o == expected)
}

/// argon2id's working memory (~19 MiB per check with the default parameters), kept for
/// the next check instead of being allocated and freed each time: freed blocks of that
/// size stay in the allocator's per-thread arenas, so RSS grew with every new blocking
/// thread that verified. At most as many buffers as checks ran at once are kept (the
/// gateway bounds that: `[auth] max_concurrent_verifications`), none over 64 MiB.
fn with_blocks<R>(count: usize, f: impl FnOnce(&mut [argon2::Block]) -> R) -> R {
    use std::sync::Mutex;
    static POOL: Mutex<Vec<Vec<argon2::Block>>> = Mutex::new(Vec::new());
    const MAX_POOLED: usize = 64;
    const MAX_POOLED_BLOCKS: usize = 64 * 1024; // 64 MiB
    let lock = || POOL.lock().unwrap_or_else(|e| e.into_inner());
    let taken = {
        let mut pool = lock();
        pool.iter()
            .position(|b| b.len() == count)
            .map(|i| pool.swap_remove(i))
    };
    let mut blocks = taken.unwrap_or_else(|| vec![argon2::Block::default(); count]);
    let r = f(&mut blocks);
    if count <= MAX_POOLED_BLOCKS {
        let mut pool = lock();
        if pool.len() < MAX_POOLED {
            pool.push(blocks);
        }
    }
    r
}

/// Checks that `phc` parses as a PHC string, is argon2id, and carries a salt and a hash.
pub fn validate_hash(phc: &str) -> Result<(), SecretError> {
    let parsed = PasswordHash::new(phc).map_err(|e| SecretError::MalformedHash(e.to_string()))?;
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return Err(SecretError::NotArgon2id(parsed.algorithm.to_string()));
    }
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err(SecretError::MalformedHash(
            "the salt or the hash is missing".into(),
        ));
    }
    // Parameters out of range (e.g. m=1) would make every verification fail: reject now.
    argon2::Params::try_from(&parsed).map_err(|e| SecretError::MalformedHash(e.to_string()))?;
    Ok(())
}

/// Where an upstream password comes from. Only the name is ever stored or exported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PasswordSource {
    /// An environment variable, by name.
    Env(String),
    /// A file whose content (minus one trailing newline) is the password.
    File(PathBuf),
}

impl PasswordSource {
    /// Reads the password now. An unset, empty or unreadable source is an error naming it.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        match self {
            PasswordSource::Env(name) => match std::env::var(name) {
                Ok(v) if v.is_empty() => Err(SecretError::EnvEmpty { name: name.clone() }),
                Ok(v) => Ok(Secret(v)),
                Err(std::env::VarError::NotPresent) => {
                    Err(SecretError::EnvMissing { name: name.clone() })
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(SecretError::EnvNotUnicode { name: name.clone() })
                }
            },
            PasswordSource::File(path) => {
                let bytes = std::fs::read(path).map_err(|source| SecretError::FileRead {
                    path: path.clone(),
                    source,
                })?;
                let mut text = String::from_utf8(bytes)
                    .map_err(|_| SecretError::FileNotUtf8 { path: path.clone() })?;
                if text.ends_with("\r\n") {
                    text.truncate(text.len() - 2);
                } else if text.ends_with('\n') {
                    text.truncate(text.len() - 1);
                }
                if text.is_empty() {
                    return Err(SecretError::FileEmpty { path: path.clone() });
                }
                Ok(Secret(text))
            }
        }
    }
}

impl fmt::Display for PasswordSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordSource::Env(name) => write!(f, "env {name}"),
            PasswordSource::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verify_round_trip() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        validate_hash(&h).unwrap();
        assert!(verify_password(&h, "s3cret"));
        assert!(!verify_password(&h, "s3cret "));
        assert!(!verify_password(&h, ""));
    }

    #[test]
    fn two_hashes_of_one_password_differ() {
        assert_ne!(hash_password("x").unwrap(), hash_password("x").unwrap());
    }

    #[test]
    fn malformed_hash_is_false_and_invalid() {
        for bad in [
            "",
            "plain",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$$$",
        ] {
            assert!(!verify_password(bad, "x"), "{bad}");
            assert!(validate_hash(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn argon2i_is_not_accepted() {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let h = Argon2::new(
            Algorithm::Argon2i,
            argon2::Version::V0x13,
            argon2::Params::default(),
        )
        .hash_password(b"pw", &salt)
        .unwrap()
        .to_string();
        assert!(matches!(
            validate_hash(&h),
            Err(SecretError::NotArgon2id(_))
        ));
        assert!(!verify_password(&h, "pw"));
    }

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(***)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn file_source_drops_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("a", "pw\n", "pw"),
            ("b", "pw\r\n", "pw"),
            ("c", "pw\n\n", "pw\n"),
            ("d", "pw", "pw"),
        ];
        for (name, content, want) in cases {
            let p = dir.path().join(name);
            std::fs::write(&p, content).unwrap();
            assert_eq!(PasswordSource::File(p).resolve().unwrap().expose(), want);
        }
    }

    #[test]
    fn errors_name_the_source_not_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = PasswordSource::File(missing.clone())
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(e.contains(&missing.display().to_string()), "{e}");
        let e = PasswordSource::Env("RESELLGATE_TEST_SURELY_UNSET_VAR".into())
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(e.contains("RESELLGATE_TEST_SURELY_UNSET_VAR"), "{e}");
    }

    #[test]
    fn hashes_with_other_parameters_verify_with_reused_memory() {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let small = Argon2::new(
            Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(8192, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw", &salt)
        .unwrap()
        .to_string();
        let default = hash_password("pw").unwrap();
        for _ in 0..3 {
            assert!(verify_password(&small, "pw"));
            assert!(!verify_password(&small, "pw2"));
            assert!(verify_password(&default, "pw"));
            assert!(!verify_password(&default, "px"));
        }
    }
}

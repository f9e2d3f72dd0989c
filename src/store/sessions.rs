//! State a fleet of gateways shares for logins: `func=auth` sessions and failed-login
//! counts. Used only when the backend is shared ([`Store::is_shared`]); a lone sled gateway
//! keeps them in memory alone.
//!
//! A session is stored under the SHA-256 of its id, never the id itself (the id is a
//! secret; the hash is useless to whoever reads the database). Failure counts are keyed by
//! `login \0 address` and counted with a compare-and-swap, so attempts on every gateway add up.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{decode, encode, Store, StoreError};

/// Shared `func=auth` sessions, by SHA-256 of the session id.
pub const SESSIONS: &str = "sessions";
/// Shared failed-login counts, by `login \0 address`.
pub const LOGIN_FAILURES: &str = "login_failures";

/// A session as another gateway needs it to accept the id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedSession {
    pub login: String,
    /// The client address the session is bound to.
    pub ip: String,
    /// Unix ms of the last use some gateway recorded.
    pub last_seen_ms: u64,
}

/// Failed logins of one (login, address) in the window that started at `window_start_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginFailures {
    pub count: u32,
    pub window_start_ms: u64,
}

/// The key a session is stored under.
pub fn session_key(sid: &str) -> [u8; 32] {
    Sha256::digest(sid.as_bytes()).into()
}

fn failures_key(login: &str, ip: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(login.len() + ip.len() + 1);
    k.extend_from_slice(login.as_bytes());
    k.push(0);
    k.extend_from_slice(ip.as_bytes());
    k
}

impl Store {
    /// Whether other gateways share this store (PostgreSQL): then sessions and login
    /// failures are written to it too.
    pub fn is_shared(&self) -> bool {
        self.shared.backend.is_shared()
    }

    pub fn put_session(&self, sid: &str, s: &SharedSession) -> Result<(), StoreError> {
        let v = encode(s, || "session".to_string())?;
        self.shared.backend.put(SESSIONS, &session_key(sid), &v)?;
        self.shared.backend.flush()?;
        Ok(())
    }

    pub fn session(&self, sid: &str) -> Result<Option<SharedSession>, StoreError> {
        let k = session_key(sid);
        match self.shared.backend.get(SESSIONS, &k)? {
            Some(v) => Ok(Some(decode(SESSIONS, &k, &v)?)),
            None => Ok(None),
        }
    }

    /// Deletes sessions last seen before `cutoff_ms`; answers how many went.
    pub fn prune_sessions(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        let b = &*self.shared.backend;
        let mut n = 0;
        for (k, v) in b.scan(SESSIONS)? {
            let old = match decode::<SharedSession>(SESSIONS, &k, &v) {
                Ok(s) => s.last_seen_ms < cutoff_ms,
                Err(_) => true,
            };
            if old && b.compare_and_swap(SESSIONS, &k, Some(&v), None)?.is_ok() {
                n += 1;
            }
        }
        for (k, v) in b.scan(LOGIN_FAILURES)? {
            let old = match decode::<LoginFailures>(LOGIN_FAILURES, &k, &v) {
                Ok(f) => f.window_start_ms < cutoff_ms,
                Err(_) => true,
            };
            if old {
                b.compare_and_swap(LOGIN_FAILURES, &k, Some(&v), None)?.ok();
            }
        }
        b.flush()?;
        Ok(n)
    }

    /// Failed logins of (login, address) in the window of `window_ms` now running.
    pub fn login_failures(
        &self,
        login: &str,
        ip: &str,
        now_ms: u64,
        window_ms: u64,
    ) -> Result<Option<LoginFailures>, StoreError> {
        let k = failures_key(login, ip);
        let Some(v) = self.shared.backend.get(LOGIN_FAILURES, &k)? else {
            return Ok(None);
        };
        let f: LoginFailures = decode(LOGIN_FAILURES, &k, &v)?;
        Ok((now_ms.saturating_sub(f.window_start_ms) < window_ms).then_some(f))
    }

    /// Counts one failed login of (login, address), starting a new window when the last
    /// one passed; answers the count. Safe against other gateways counting at once.
    pub fn add_login_failure(
        &self,
        login: &str,
        ip: &str,
        now_ms: u64,
        window_ms: u64,
    ) -> Result<u32, StoreError> {
        let k = failures_key(login, ip);
        let b = &*self.shared.backend;
        loop {
            let old = b.get(LOGIN_FAILURES, &k)?;
            let mut f = match &old {
                Some(v) => decode(LOGIN_FAILURES, &k, v)?,
                None => LoginFailures {
                    count: 0,
                    window_start_ms: now_ms,
                },
            };
            if now_ms.saturating_sub(f.window_start_ms) >= window_ms {
                f = LoginFailures {
                    count: 0,
                    window_start_ms: now_ms,
                };
            }
            f.count = f.count.saturating_add(1);
            let v = encode(&f, || "login failures".to_string())?;
            if b.compare_and_swap(LOGIN_FAILURES, &k, old.as_deref(), Some(&v))?
                .is_ok()
            {
                b.flush()?;
                return Ok(f.count);
            }
        }
    }

    pub fn clear_login_failures(&self, login: &str, ip: &str) -> Result<(), StoreError> {
        if self
            .shared
            .backend
            .delete(LOGIN_FAILURES, &failures_key(login, ip))?
        {
            self.shared.backend.flush()?;
        }
        Ok(())
    }
}

//! Reseller authentication: `authinfo=login:password`, resellgate's own `func=auth`
//! sessions (`auth=SID` or cookie `billmgrses5`), a verified-credential cache and
//! per-(login, address) throttling of failures.
//!
//! Everything here is plain data in, decision out; time is passed in (`now`) so the
//! expiry and throttling rules are tested without sleeping.
//!
//! Work before a login is bounded: at most `max_concurrent_verifications` argon2id runs
//! at once (each takes ~19 MiB), at most `max_queued_verifications` more waiting, and a
//! login beyond that is refused at once with `auth`; a verification counts as a failure
//! before it runs (so concurrent guesses are throttled like guesses in a row); sessions
//! are capped per reseller and in total, the least recently used evicted first.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

mod login;

pub use login::{authenticate, check_password};

use super::Refusal;
use crate::billmgr::Params;

/// The name of BILLmanager's session cookie.
pub const SESSION_COOKIE: &str = "billmgrses5";

/// Tunables, from `[auth]` in config.toml.
#[derive(Debug, Clone, Copy)]
pub struct AuthSettings {
    pub session_ttl: Duration,
    pub max_failures: u32,
    pub failure_window: Duration,
    /// argon2id verifications running at once.
    pub max_concurrent_verifications: usize,
    /// Verifications waiting for a slot; a login beyond them is refused at once.
    pub max_queued_verifications: usize,
    /// Live sessions per reseller; a new one evicts that reseller's least recently used.
    pub max_sessions_per_reseller: usize,
    /// Live sessions in total; a new one evicts the least recently used.
    pub max_sessions: usize,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            session_ttl: Duration::from_secs(3600),
            max_failures: 10,
            failure_window: Duration::from_secs(60),
            max_concurrent_verifications: default_verifications(),
            max_queued_verifications: 32,
            max_sessions_per_reseller: 1000,
            max_sessions: 100_000,
        }
    }
}

pub use crate::config::default_verifications;

/// How the caller presented itself.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `authinfo=login:password` (split at the first colon), or `func=auth` username/password.
    Password { login: String, password: String },
    /// A session id from `func=auth`, as `auth=` or the `billmgrses5` cookie.
    Session(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Password { login, .. } => write!(f, "Password {{ login: {login:?}, .. }}"),
            Credentials::Session(_) => f.write_str("Session(***)"),
        }
    }
}

/// Pull the credentials out of a request. `func=auth` carries `username`/`password`;
/// every other call `authinfo`, `auth` or the session cookie. Two `authinfo` (or `auth`)
/// values are refused rather than guessed between.
pub fn credentials(params: &Params, cookie_sid: Option<&str>) -> Result<Credentials, Refusal> {
    if params.func() == Some("auth") {
        let login = params
            .get_nonempty("username")
            .ok_or(Refusal::MissingField("username"))?;
        let password = params
            .get("password")
            .ok_or(Refusal::MissingField("password"))?;
        return Ok(Credentials::Password {
            login: login.to_string(),
            password: password.to_string(),
        });
    }
    for key in ["authinfo", "auth"] {
        if params.count(key) > 1 {
            return Err(Refusal::RepeatedField(key));
        }
    }
    if let Some(ai) = params.get("authinfo") {
        let (login, password) = ai
            .split_once(':')
            .filter(|(l, _)| !l.is_empty())
            .ok_or(Refusal::MalformedAuthinfo)?;
        return Ok(Credentials::Password {
            login: login.to_string(),
            password: password.to_string(),
        });
    }
    if let Some(sid) = params
        .get_nonempty("auth")
        .or(cookie_sid.filter(|s| !s.is_empty()))
    {
        return Ok(Credentials::Session(sid.to_string()));
    }
    Err(Refusal::NotAuthenticated)
}

/// The `billmgrses5` value from a `Cookie` header, if any.
pub fn session_cookie(cookie_header: &str) -> Option<&str> {
    cookie_header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.trim())
}

#[derive(Debug, Clone)]
struct Session {
    login: String,
    ip: IpAddr,
    last_seen: Instant,
    /// When its last use was last written to the shared store (fleet mode).
    stored: Instant,
    /// Position in the use order (higher = used more recently).
    seq: u64,
}

/// Live sessions, with their use order overall and per reseller, so that the least
/// recently used can be found and evicted without a scan.
#[derive(Debug, Default)]
struct Sessions {
    by_id: HashMap<String, Session>,
    /// seq → session id, least recently used first.
    order: BTreeMap<u64, String>,
    /// login → seqs of its sessions.
    per_login: HashMap<String, BTreeSet<u64>>,
    next_seq: u64,
}

impl Sessions {
    fn remove(&mut self, sid: &str) -> Option<Session> {
        let s = self.by_id.remove(sid)?;
        self.order.remove(&s.seq);
        if let Some(set) = self.per_login.get_mut(&s.login) {
            set.remove(&s.seq);
            if set.is_empty() {
                self.per_login.remove(&s.login);
            }
        }
        Some(s)
    }

    fn touch(&mut self, sid: &str, now: Instant) {
        let seq = self.next_seq;
        let Some(s) = self.by_id.get_mut(sid) else {
            return;
        };
        self.next_seq += 1;
        let old = std::mem::replace(&mut s.seq, seq);
        s.last_seen = now;
        self.order.remove(&old);
        self.order.insert(seq, sid.to_string());
        if let Some(set) = self.per_login.get_mut(&s.login) {
            set.remove(&old);
            set.insert(seq);
        }
    }

    fn insert(&mut self, sid: String, login: &str, ip: IpAddr, now: Instant) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, sid.clone());
        self.per_login
            .entry(login.to_string())
            .or_default()
            .insert(seq);
        self.by_id.insert(
            sid,
            Session {
                login: login.to_string(),
                ip,
                last_seen: now,
                stored: now,
                seq,
            },
        );
    }

    /// Evict least recently used sessions until `login` has at most `per_login` and the
    /// table at most `total`; answers how many went.
    fn enforce(&mut self, login: &str, per_login: usize, total: usize) -> usize {
        let mut evicted = 0;
        while self
            .per_login
            .get(login)
            .is_some_and(|s| s.len() > per_login)
        {
            let Some(&seq) = self.per_login.get(login).and_then(|s| s.first()) else {
                break;
            };
            let Some(sid) = self.order.get(&seq).cloned() else {
                break;
            };
            self.remove(&sid);
            evicted += 1;
        }
        while self.by_id.len() > total {
            let Some((_, sid)) = self.order.first_key_value().map(|(k, v)| (*k, v.clone())) else {
                break;
            };
            self.remove(&sid);
            evicted += 1;
        }
        evicted
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    window_start: Instant,
}

/// Session table, failure counters and the verified-credential cache.
///
/// The credential cache maps a salted SHA-256 of `login \0 password` (the salt is random
/// per process, so the cache holds nothing an attacker could reuse) to the stored hash
/// that verified it; a changed hash in the store no longer matches, so a password change
/// takes effect on the next request.
pub struct Authenticator {
    settings: AuthSettings,
    salt: [u8; 32],
    sessions: Mutex<Sessions>,
    failures: DashMap<(String, IpAddr), Failures>,
    verified: DashMap<[u8; 32], Arc<str>>,
    /// Verifications under way, by credential and stored hash: concurrent checks of one
    /// credential share one argon2id run (a billing's burst after a restart costs one).
    in_flight: DashMap<[u8; 32], Arc<OnceCell<Result<bool, Refusal>>>>,
    /// Slots for running verifications.
    verify_permits: tokio::sync::Semaphore,
    /// Verifications running or waiting for a slot.
    admitted: AtomicUsize,
}

/// A verification admitted to run or wait (see [`Authenticator::admit`]); dropping it
/// frees its place in the queue.
pub struct Admitted<'a> {
    auth: &'a Authenticator,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.auth.admitted.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Admitted<'_> {
    /// Wait for a verification slot, then run `verify` holding it.
    pub async fn run<F, Fut>(self, verify: F) -> bool
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        match self.auth.verify_permits.acquire().await {
            Ok(_permit) => verify().await,
            Err(_) => false,
        }
    }
}

/// At most this many verified credentials are cached; past it the cache starts over.
const MAX_VERIFIED: usize = 100_000;

impl Authenticator {
    pub fn new(settings: AuthSettings) -> Self {
        let mut salt = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        Authenticator {
            settings,
            salt,
            sessions: Mutex::new(Sessions::default()),
            failures: DashMap::new(),
            verified: DashMap::new(),
            in_flight: DashMap::new(),
            verify_permits: tokio::sync::Semaphore::new(
                settings.max_concurrent_verifications.max(1),
            ),
            admitted: AtomicUsize::new(0),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admit one full verification, or refuse at once (`auth`) when
    /// `max_concurrent_verifications + max_queued_verifications` are running or waiting.
    pub fn admit(&self) -> Result<Admitted<'_>, Refusal> {
        let cap = self.settings.max_concurrent_verifications.max(1)
            + self.settings.max_queued_verifications;
        if self.admitted.fetch_add(1, Ordering::SeqCst) >= cap {
            self.admitted.fetch_sub(1, Ordering::SeqCst);
            return Err(Refusal::VerificationsBusy);
        }
        Ok(Admitted { auth: self })
    }

    /// Verifications running or waiting now.
    pub fn verifications_admitted(&self) -> usize {
        self.admitted.load(Ordering::SeqCst)
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    fn cred_key(&self, login: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(login.as_bytes());
        h.update([0u8]);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// Verify (login, password) against `stored_hash` with `verify` (the full argon2id
    /// check, or a refusal before it runs), sharing one run among concurrent checks of the
    /// same credential and hash. If the caller running it goes away, a waiting one takes
    /// over.
    pub async fn verify_shared<F, Fut>(
        &self,
        login: &str,
        password: &str,
        stored_hash: &str,
        verify: F,
    ) -> Result<bool, Refusal>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<bool, Refusal>>,
    {
        let mut h = Sha256::new();
        h.update(self.cred_key(login, password));
        h.update(stored_hash.as_bytes());
        let key: [u8; 32] = h.finalize().into();
        let cell = self.in_flight.entry(key).or_default().clone();
        let ok = cell.get_or_init(verify).await.clone();
        self.in_flight.remove_if(&key, |_, c| Arc::ptr_eq(c, &cell));
        ok
    }

    /// Refuse a login that failed too often from this address within the window.
    pub fn check_throttle(&self, login: &str, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        if let Some(f) = self.failures.get(&(login.to_string(), ip)) {
            let elapsed = now.saturating_duration_since(f.window_start);
            if elapsed < self.settings.failure_window && f.count >= self.settings.max_failures {
                let wait = (self.settings.failure_window - elapsed).as_secs().max(1);
                return Err(Refusal::Throttled { wait_s: wait });
            }
        }
        Ok(())
    }

    /// Count an attempt as a failure before verifying it: refused (`auth`) when the
    /// budget of (login, address) is spent, so attempts sent at once are throttled like
    /// attempts in a row. A success then clears the count ([`Self::clear_failures`]).
    pub fn begin_attempt(&self, login: &str, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        let (mut e, started_over) = self.failures_now(login, ip, now);
        if !started_over && e.count >= self.settings.max_failures {
            let elapsed = now.saturating_duration_since(e.window_start);
            let wait = (self.settings.failure_window - elapsed).as_secs().max(1);
            return Err(Refusal::Throttled { wait_s: wait });
        }
        e.count += 1;
        Ok(())
    }

    /// The failure count of (login, address), started over (`true`) when its window
    /// has passed.
    fn failures_now(
        &self,
        login: &str,
        ip: IpAddr,
        now: Instant,
    ) -> (
        dashmap::mapref::one::RefMut<'_, (String, IpAddr), Failures>,
        bool,
    ) {
        let mut e = self
            .failures
            .entry((login.to_string(), ip))
            .or_insert(Failures {
                count: 0,
                window_start: now,
            });
        let started_over =
            now.saturating_duration_since(e.window_start) >= self.settings.failure_window;
        if started_over {
            *e = Failures {
                count: 0,
                window_start: now,
            };
        }
        (e, started_over)
    }

    /// Whether (login, address) has failures counted here in the running window.
    pub fn has_failures(&self, login: &str, ip: IpAddr, now: Instant) -> bool {
        self.failures
            .get(&(login.to_string(), ip))
            .is_some_and(|f| {
                f.count > 0
                    && now.saturating_duration_since(f.window_start) < self.settings.failure_window
            })
    }

    /// Count one failed login for (login, address).
    pub fn record_failure(&self, login: &str, ip: IpAddr, now: Instant) {
        self.failures_now(login, ip, now).0.count += 1;
    }

    pub fn clear_failures(&self, login: &str, ip: IpAddr) {
        self.failures.remove(&(login.to_string(), ip));
    }

    /// Is (login, password) known to verify against `stored_hash` without hashing again?
    pub fn is_verified(&self, login: &str, password: &str, stored_hash: &str) -> bool {
        self.verified
            .get(&self.cred_key(login, password))
            .is_some_and(|h| &**h == stored_hash)
    }

    pub fn remember_verified(&self, login: &str, password: &str, stored_hash: &str) {
        if self.verified.len() >= MAX_VERIFIED {
            self.verified.clear();
        }
        self.verified
            .insert(self.cred_key(login, password), Arc::from(stored_hash));
    }

    /// Start a session for `login` bound to `ip`; answers the new id. Past
    /// `max_sessions_per_reseller` (for this login) or `max_sessions` (in total) the least
    /// recently used sessions are evicted.
    pub fn create_session(&self, login: &str, ip: IpAddr, now: Instant) -> String {
        let mut raw = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let sid: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let mut sessions = self.sessions();
        sessions.insert(sid.clone(), login, ip, now);
        sessions.enforce(
            login,
            self.settings.max_sessions_per_reseller.max(1),
            self.settings.max_sessions.max(1),
        );
        sid
    }

    /// Takes over a session another gateway of the fleet opened (found in the shared
    /// store), as if opened here now; the caps apply as to a new one.
    pub fn adopt_session(&self, sid: &str, login: &str, ip: IpAddr, now: Instant) {
        let mut sessions = self.sessions();
        if sessions.by_id.contains_key(sid) {
            return;
        }
        sessions.insert(sid.to_string(), login, ip, now);
        sessions.enforce(
            login,
            self.settings.max_sessions_per_reseller.max(1),
            self.settings.max_sessions.max(1),
        );
        if let Some(s) = sessions.by_id.get_mut(sid) {
            s.stored = now;
        }
    }

    /// Whether session `sid`'s last use should be written to the shared store now: at
    /// most once per `every` for one session (then it is marked written).
    pub fn session_store_due(&self, sid: &str, now: Instant, every: Duration) -> bool {
        let mut sessions = self.sessions();
        match sessions.by_id.get_mut(sid) {
            Some(s) if now.saturating_duration_since(s.stored) >= every => {
                s.stored = now;
                true
            }
            _ => false,
        }
    }

    /// The login behind a live session from this address; refreshes its expiry.
    pub fn resolve_session(&self, sid: &str, ip: IpAddr, now: Instant) -> Result<String, Refusal> {
        let expired = || Refusal::SessionExpired;
        let mut sessions = self.sessions();
        let s = sessions.by_id.get(sid).ok_or_else(expired)?;
        if now.saturating_duration_since(s.last_seen) >= self.settings.session_ttl {
            sessions.remove(sid);
            return Err(expired());
        }
        if s.ip != ip {
            return Err(Refusal::SessionElsewhere);
        }
        let login = s.login.clone();
        sessions.touch(sid, now);
        Ok(login)
    }

    /// Drop expired sessions and stale failure counters (run periodically).
    pub fn purge(&self, now: Instant) {
        let ttl = self.settings.session_ttl;
        let mut sessions = self.sessions();
        let expired: Vec<String> = sessions
            .by_id
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.last_seen) >= ttl)
            .map(|(k, _)| k.clone())
            .collect();
        for sid in expired {
            sessions.remove(&sid);
        }
        drop(sessions);
        let window = self.settings.failure_window;
        self.failures
            .retain(|_, f| now.saturating_duration_since(f.window_start) < window);
    }

    pub fn session_count(&self) -> usize {
        self.sessions().by_id.len()
    }
}

#[cfg(test)]
mod tests;

//! Who is calling: a password verified (from the cache, or by argon2id on the blocking
//! pool, bounded and throttled), or a live session resolved to its reseller; and
//! `func=auth`, which opens a session.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Authenticator, Credentials, SESSION_COOKIE};
use crate::billmgr::{Element, Format};
use crate::proxy::{Gateway, Refusal, Reply};
use crate::store::model::Reseller;
use crate::store::sessions::SharedSession;
use crate::store::Store;
use crate::telemetry::RequestLog;

/// A valid argon2id hash of a random password nobody knows, verified against for unknown
/// logins so that they cost as much as known ones.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$Vt5bQ1+3wCxGZaYhRcqmrHk6bWZs7/M3cRj4n6vL0yE";

/// The reseller behind the credentials, or an `auth` refusal.
pub async fn authenticate(
    auth: &Authenticator,
    store: &Store,
    creds: Credentials,
    ip: IpAddr,
) -> Result<Arc<Reseller>, Refusal> {
    match creds {
        Credentials::Password { login, password } => {
            check_password(auth, store, &login, &password, ip).await
        }
        Credentials::Session(sid) => {
            let now = Instant::now();
            let login = match auth.resolve_session(&sid, ip, now) {
                Ok(login) => {
                    if store.is_shared() {
                        refresh_shared_session(auth, store, &sid, &login, ip, now);
                    }
                    login
                }
                Err(Refusal::SessionExpired) if store.is_shared() => {
                    shared_session(auth, store, &sid, ip, now).await?
                }
                Err(e) => return Err(e),
            };
            store.reseller(&login).ok_or(Refusal::ResellerGone)
        }
    }
}

/// How often one session's last use is written to the shared store at most: another
/// gateway sees the session's expiry at most this much early.
fn shared_refresh_every(auth: &Authenticator) -> Duration {
    (auth.settings().session_ttl / 4).min(Duration::from_secs(60))
}

/// Fleet mode: a session this gateway does not know (or let expire) may be another's, or
/// kept alive by another: look it up in the shared store and adopt it.
async fn shared_session(
    auth: &Authenticator,
    store: &Store,
    sid: &str,
    ip: IpAddr,
    now: Instant,
) -> Result<String, Refusal> {
    let found = {
        let (store, sid) = (store.clone(), sid.to_string());
        blocking(move || store.session(&sid))
            .await
            .map_err(|_| Refusal::StoreBeforeForward)?
    };
    let Some(s) = found else {
        return Err(Refusal::SessionExpired);
    };
    let age = now_ms().saturating_sub(s.last_seen_ms);
    if age >= auth.settings().session_ttl.as_millis() as u64 {
        return Err(Refusal::SessionExpired);
    }
    if s.ip != ip.to_string() {
        return Err(Refusal::SessionElsewhere);
    }
    auth.adopt_session(sid, &s.login, ip, now);
    auth.resolve_session(sid, ip, now)
}

/// Fleet mode: write a session's last use to the shared store now and then (not awaited:
/// the call goes on; a failure only shortens what other gateways think is left of it).
fn refresh_shared_session(
    auth: &Authenticator,
    store: &Store,
    sid: &str,
    login: &str,
    ip: IpAddr,
    now: Instant,
) {
    if !auth.session_store_due(sid, now, shared_refresh_every(auth)) {
        return;
    }
    let (store, sid) = (store.clone(), sid.to_string());
    let s = SharedSession {
        login: login.to_string(),
        ip: ip.to_string(),
        last_seen_ms: now_ms(),
    };
    tokio::task::spawn_blocking(move || {
        if let Err(e) = store.put_session(&sid, &s) {
            tracing::warn!(error = %e, "cannot refresh a shared session");
        }
    });
}

fn now_ms() -> u64 {
    crate::reconcile::record::now_ms()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ()> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "store failure");
            Err(())
        }
        Err(e) => {
            tracing::error!(error = %e, "store task failed");
            Err(())
        }
    }
}

/// Fleet mode: refuse a full verification when (login, address) spent its failure budget
/// across all gateways.
async fn check_shared_throttle(
    auth: &Authenticator,
    store: &Store,
    login: &str,
    ip: IpAddr,
) -> Result<(), Refusal> {
    let window = auth.settings().failure_window;
    let (store, login, ipt) = (store.clone(), login.to_string(), ip.to_string());
    let now = now_ms();
    let f = blocking(move || store.login_failures(&login, &ipt, now, window.as_millis() as u64))
        .await
        .map_err(|_| Refusal::StoreBeforeForward)?;
    match f {
        Some(f) if f.count >= auth.settings().max_failures => {
            let left =
                (window.as_millis() as u64).saturating_sub(now.saturating_sub(f.window_start_ms));
            Err(Refusal::Throttled {
                wait_s: (left / 1000).max(1),
            })
        }
        _ => Ok(()),
    }
}

/// Verify a password: from the verified-credential cache when possible, otherwise by a
/// full argon2id verification on the blocking pool, shared by concurrent checks of the
/// same credential. A full verification is admitted into a bounded queue (refused
/// fast beyond it), counted as a failure before it runs and throttled per
/// (login, address); a success clears the count.
pub async fn check_password(
    auth: &Authenticator,
    store: &Store,
    login: &str,
    password: &str,
    ip: IpAddr,
) -> Result<Arc<Reseller>, Refusal> {
    auth.check_throttle(login, ip, Instant::now())?;
    // Fleet mode: the fleet's count is read before a full verification, and before a
    // cached one when this gateway saw failures of (login, address) too (the common call
    // pays no database read).
    let shared = store.is_shared();
    if shared && auth.has_failures(login, ip, Instant::now()) {
        check_shared_throttle(auth, store, login, ip).await?;
    }
    let reseller = store.reseller(login);
    if let Some(r) = &reseller {
        if auth.is_verified(login, password, &r.password_hash) {
            return Ok(r.clone());
        }
    }
    if shared {
        check_shared_throttle(auth, store, login, ip).await?;
    }
    // An unknown login still pays one verification, so timing does not tell which
    // logins exist.
    let hash = reseller
        .as_ref()
        .map(|r| r.password_hash.clone())
        .unwrap_or_else(|| DUMMY_HASH.to_string());
    let ran = AtomicBool::new(false);
    let ok = auth
        .verify_shared(login, password, &hash, || {
            let (hash, pw) = (hash.clone(), password.to_string());
            let ran = &ran;
            async move {
                ran.store(true, Ordering::Relaxed);
                let slot = auth.admit()?;
                auth.begin_attempt(login, ip, Instant::now())?;
                Ok(slot
                    .run(|| async move {
                        tokio::task::spawn_blocking(move || {
                            crate::secret::verify_password(&hash, &pw)
                        })
                        .await
                        .unwrap_or(false)
                    })
                    .await)
            }
        })
        .await?;
    match reseller {
        Some(r) if ok => {
            auth.remember_verified(login, password, &r.password_hash);
            auth.clear_failures(login, ip);
            if store.is_shared() {
                let (store, login, ip) = (store.clone(), login.to_string(), ip.to_string());
                let _ = blocking(move || store.clear_login_failures(&login, &ip)).await;
            }
            Ok(r)
        }
        _ => {
            // The run was counted before it started; a caller that shared it counts now.
            if !ran.load(Ordering::Relaxed) {
                auth.record_failure(login, ip, Instant::now());
            }
            if store.is_shared() {
                let window = auth.settings().failure_window.as_millis() as u64;
                let (store, login, ip) = (store.clone(), login.to_string(), ip.to_string());
                let now = now_ms();
                let _ = blocking(move || store.add_login_failure(&login, &ip, now, window)).await;
            }
            Err(Refusal::WrongCredentials)
        }
    }
}

impl Gateway {
    /// `func=auth`: check the password, open a session, answer its id (and a cookie).
    pub(crate) async fn log_in(
        &self,
        creds: Credentials,
        ip: IpAddr,
        format: Format,
        log: &mut RequestLog,
    ) -> Result<Reply, Refusal> {
        let Credentials::Password { login, password } = creds else {
            return Err(Refusal::MissingField("username"));
        };
        let reseller = check_password(&self.auth, &self.store, &login, &password, ip).await?;
        log.reseller = Some(reseller.login.clone());
        let sid = self
            .auth
            .create_session(&reseller.login, ip, Instant::now());
        if self.store.is_shared() {
            // Every gateway of the fleet accepts the id once this is written.
            let (store, sid) = (self.store.clone(), sid.clone());
            let s = SharedSession {
                login: reseller.login.clone(),
                ip: ip.to_string(),
                last_seen_ms: now_ms(),
            };
            blocking(move || store.put_session(&sid, &s))
                .await
                .map_err(|_| Refusal::StoreBeforeForward)?;
        }
        let doc = Element::doc().child(
            Element::new("auth")
                .attr("id", &sid)
                .attr("level", "16")
                .text(&sid),
        );
        log.outcome = "local";
        let cookie = format!(
            "{}={sid}; Path=/; HttpOnly; SameSite=Strict",
            SESSION_COOKIE
        );
        Ok(Reply {
            set_cookie: Some(cookie),
            ..Reply::doc(&doc, format)
        })
    }
}

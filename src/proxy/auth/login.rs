//! Who is calling: a password verified (from the cache, or by argon2id on the blocking
//! pool, bounded and throttled), or a live session resolved to its reseller; and
//! `func=auth`, which opens a session.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::{Authenticator, Credentials, SESSION_COOKIE};
use crate::billmgr::{Element, Format};
use crate::proxy::{Gateway, Refusal, Reply};
use crate::store::model::Reseller;
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
            let login = auth.resolve_session(&sid, ip, Instant::now())?;
            store.reseller(&login).ok_or(Refusal::ResellerGone)
        }
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
    let reseller = store.reseller(login);
    if let Some(r) = &reseller {
        if auth.is_verified(login, password, &r.password_hash) {
            return Ok(r.clone());
        }
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
            Ok(r)
        }
        _ => {
            // The run was counted before it started; a caller that shared it counts now.
            if !ran.load(Ordering::Relaxed) {
                auth.record_failure(login, ip, Instant::now());
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

//! The gateway: what happens to one reseller call, and the pingora service around it.
//!
//! - [`auth`]     — credentials, sessions, the verified-credential cache, throttling.
//! - [`functions`] — the function table: kind, `elid`, state, access of every known `func`.
//! - [`policy`]   — which functions pass (the table plus the operator's passthrough).
//! - [`orders`]   — ownership of `elid`s and exactly-once orders around the forward.
//! - [`elid_cache`] — a short memory of refused unknown `elid`s, so they cost one lookup.
//! - [`background`] — work done after the answer (a new order's cost), counted.
//! - [`connection`] — per-address connection cap and the request-header deadline.
//! - [`rewrite`]  — what the upstream receives and what the reseller gets back (checked,
//!   rewritten in its own shape, secrets the upstream echoed redacted).
//! - [`upstream`] — forwarding over pingora's pooled connector, timeouts, retries.
//! - [`client_addr`] — the client's address (`X-Forwarded-For` from trusted proxies).
//! - [`service`]  — the `ProxyHttp` phases; they only read the request and call [`Gateway::handle`].
//! - [`server`]   — building and running the pingora server (CLI, tests, demo).
//!
//! Every refusal or failure leaves [`Gateway::handle`] as a BILLmanager error document in
//! the caller's format with HTTP 200; there is no other path to the wire.

pub mod auth;
pub mod background;
pub mod client_addr;
pub mod connection;
pub mod crashpoint;
pub mod elid_cache;
pub use crate::billmgr::functions;
pub mod orders;
pub mod policy;
pub mod rewrite;
pub mod server;
pub mod service;
pub mod upstream;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;

use crate::billmgr::{BmError, Element, ErrorType, Format, Limits, Params};
use crate::config::Config;
use crate::secret::Secret;
use crate::store::model::Reseller;
use crate::store::Store;
use crate::telemetry::{Metrics, RequestLog};

use auth::{AuthSettings, Authenticator, Credentials};
use policy::Policy;
use upstream::{Upstream, UpstreamSettings};

/// One request as read off the wire.
pub struct Incoming<'a> {
    pub query: Option<&'a str>,
    /// The form body (as much of it as was read when `body_error` is set).
    pub body: Bytes,
    /// Why the body could not be read whole (too large, cut off, too slow).
    pub body_error: Option<crate::billmgr::ParamError>,
    pub cookie_sid: Option<&'a str>,
    pub client_ip: IpAddr,
}

/// One answer: always HTTP 200 with a document.
#[derive(Debug)]
pub struct Reply {
    pub body: Bytes,
    pub format: Format,
    /// A `Set-Cookie` value (the session id after `func=auth`).
    pub set_cookie: Option<String>,
}

/// Shared state of a running gateway.
pub struct Gateway {
    store: Store,
    auth: Authenticator,
    policy: Policy,
    upstream: Upstream,
    limits: Limits,
    /// Upstream account name → password, resolved from `password_env`/`password_file`.
    secrets: DashMap<String, Secret>,
    pub metrics: Metrics,
    /// Upstream plan names seen in price lists (prices rows that name a plan by name).
    plan_names: crate::catalog::UpstreamNames,
    /// Unknown `elid`s refused recently, per reseller (see [`elid_cache`]).
    refused_elids: elid_cache::RefusedElids,
    /// Tasks still running after their reseller was answered.
    after_answer: background::InFlight,
    /// How old a pending order must be before reconciliation judges it.
    reconcile_settle: Duration,
    /// One reconciliation pass at a time (the background task, the admin API).
    reconcile_lock: tokio::sync::Mutex<()>,
}

impl Gateway {
    /// Build the gateway from config and an open store; resolves every upstream
    /// account's password now, so a missing variable or file stops the start.
    pub fn new(config: &Config, store: Store) -> anyhow::Result<Gateway> {
        let url = config.upstream_url();
        if !url.tls {
            tracing::warn!("the upstream URL uses plain http: credentials travel unencrypted (fine for the sandbox and tests)");
        }
        let settings = UpstreamSettings {
            tls: url.tls,
            host: url.host.clone(),
            port: url.port,
            path: url.path.clone(),
            ca_file: config
                .upstream
                .ca_file
                .as_ref()
                .map(|p| p.display().to_string()),
            connect_timeout: Duration::from_millis(config.upstream.connect_timeout_ms),
            read_timeout: Duration::from_millis(config.upstream.read_timeout_ms),
            idle_timeout: Duration::from_millis(config.upstream.idle_timeout_ms),
            retries: config.upstream.retries,
            max_response_bytes: config.limits.max_response_bytes,
            large_response_bytes: config.limits.large_response_bytes,
            max_large_responses: config.limits.max_large_responses,
        };
        let gw = Gateway {
            auth: Authenticator::new(AuthSettings {
                session_ttl: Duration::from_secs(config.auth.session_ttl_s),
                max_failures: config.auth.max_failures,
                failure_window: Duration::from_secs(config.auth.failure_window_s),
                max_concurrent_verifications: config.auth.verifications(),
                max_queued_verifications: config.auth.max_queued_verifications,
                max_sessions_per_reseller: config.auth.max_sessions_per_reseller,
                max_sessions: config.auth.max_sessions,
            }),
            policy: Policy::new(&config.policy.passthrough),
            upstream: Upstream::new(settings)?,
            limits: config.limits(),
            secrets: DashMap::new(),
            metrics: Metrics::default(),
            plan_names: crate::catalog::UpstreamNames::default(),
            refused_elids: elid_cache::RefusedElids::default(),
            after_answer: background::InFlight::default(),
            reconcile_settle: config.order_settle(),
            reconcile_lock: tokio::sync::Mutex::new(()),
            store,
        };
        for account in gw.store.upstream_accounts() {
            let secret = account
                .password
                .resolve()
                .map_err(|e| anyhow::anyhow!("upstream account '{}': {e}", account.name))?;
            gw.secrets.insert(account.name.clone(), secret);
        }
        Ok(gw)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn authenticator(&self) -> &Authenticator {
        &self.auth
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// How old a pending order must be before reconciliation judges it: the upstream's
    /// connect + read timeout, so an order still in flight is never declared failed.
    pub fn reconcile_settle(&self) -> Duration {
        self.reconcile_settle
    }

    /// Tasks still running after their reseller was answered (a new order's ledger cost).
    /// Tests wait for it to be idle before reading the store or counting upstream calls.
    pub fn after_answer(&self) -> &background::InFlight {
        &self.after_answer
    }

    /// Answer one call. Never fails: every refusal is an error document.
    pub async fn handle(self: &Arc<Self>, req: Incoming<'_>, log: &mut RequestLog) -> Reply {
        let parsed = match req.body_error.clone() {
            Some(e) => Err(e),
            None => Params::parse(req.query, &req.body, &self.limits),
        };
        // One meaning per request: no repeated or ambiguous control parameter, no control
        // characters (issue 9).
        let parsed = parsed.and_then(|p| p.check_unambiguous().map(|()| p));
        let params = match parsed {
            Ok(p) => p,
            Err(e) => {
                let format = rewrite::sniff_format(req.query, &req.body);
                return self.refuse(e.into(), format, "en", log);
            }
        };
        let format = params.format();
        log.func = params.func().map(policy::printable);
        match self.dispatch(&params, &req, log).await {
            Ok(reply) => reply,
            Err(e) => self.refuse(e, format, params.lang(), log),
        }
    }

    fn refuse(&self, e: BmError, format: Format, lang: &str, log: &mut RequestLog) -> Reply {
        log.outcome = if e.kind == ErrorType::Upstream {
            "upstream_error"
        } else {
            "refused"
        };
        log.error_type = Some(e.kind.as_str());
        self.metrics.count_outcome(log.outcome);
        Reply {
            body: rewrite::error_bytes(&e, format, lang).into(),
            format,
            set_cookie: None,
        }
    }

    async fn dispatch(
        self: &Arc<Self>,
        params: &Params,
        req: &Incoming<'_>,
        log: &mut RequestLog,
    ) -> Result<Reply, BmError> {
        let func = params.func().ok_or_else(|| BmError::missed("func"))?;
        if params.contains("su") {
            return Err(BmError::access(
                "su",
                "Acting as another user (su) is not allowed through this gateway",
            ));
        }
        // Key login, with or without credentials: the gateway issues no keys.
        if func == "auth" && params.contains("key") {
            return Err(functions::key_login_refused());
        }
        if let Err(refused @ functions::Refused::Row(f)) = self.policy.check(func) {
            if f.access == functions::Access::RefuseKey {
                self.metrics.count_refused_func(func);
                return Err(refused.error(func));
            }
        }
        let creds = auth::credentials(params, req.cookie_sid)?;
        let format = params.format();
        if func == "auth" {
            let Credentials::Password { login, password } = creds else {
                return Err(BmError::missed("username"));
            };
            let reseller = self
                .check_password(&login, &password, req.client_ip)
                .await?;
            log.reseller = Some(reseller.login.clone());
            let sid = self
                .auth
                .create_session(&reseller.login, req.client_ip, Instant::now());
            let doc = Element::doc().child(
                Element::new("auth")
                    .attr("id", &sid)
                    .attr("level", "16")
                    .text(&sid),
            );
            log.outcome = "local";
            self.metrics.count_outcome("local");
            let cookie = format!(
                "{}={sid}; Path=/; HttpOnly; SameSite=Strict",
                auth::SESSION_COOKIE
            );
            return Ok(Reply {
                body: crate::billmgr::render(&doc, format).into(),
                format,
                set_cookie: Some(cookie),
            });
        }
        let reseller = self.authenticate(creds, req.client_ip).await?;
        log.reseller = Some(reseller.login.clone());
        let decision = match self.policy.check(func) {
            Ok(d) => d,
            Err(refused) => {
                let name = policy::printable(func);
                self.metrics.count_refused_func(&name);
                if refused.is_unknown() {
                    // Names only: a value may be a password or a session id.
                    tracing::info!(reseller = %reseller.login, func = %name, params = %functions::param_names(params), "unknown function refused: allow it with [policy] passthrough if it is needed");
                } else {
                    tracing::info!(reseller = %reseller.login, func = %name, "function refused by the function table");
                }
                return Err(refused.error(func));
            }
        };
        if let functions::Decision::Known(f) = decision {
            if f.kind == functions::Kind::Local {
                // `keepalive`: authenticating the session above already slid its expiry.
                log.outcome = "local";
                self.metrics.count_outcome("local");
                let doc = Element::doc().child(Element::new("ok"));
                return Ok(Reply {
                    body: crate::billmgr::render(&doc, format).into(),
                    format,
                    set_cookie: None,
                });
            }
        }
        // Refuse early (nothing forwarded) when the reseller's upstream account is unusable.
        self.upstream_credentials(&reseller)?;
        // Catalogue: local plan ids → upstream ids (issue 3).
        let mut up_params = crate::catalog::map_request(&self.store, &reseller, func, params)?;
        if functions::is_order(func) && up_params.is_submit() {
            // Pay from the balance at once: an order left in the upstream's cart is one no
            // reseller can reach through the gateway.
            up_params = orders::with_skipbasket(&up_params);
        }
        // Services and orders: ownership of every elid, exactly-once orders (issue 4).
        let (claim, service_plan) = match self.before_forward(&reseller, func, &up_params).await? {
            orders::Before::Forward {
                claim,
                service_plan,
            } => (claim, service_plan),
            orders::Before::Replay(doc) => {
                log.outcome = "replayed";
                self.metrics.count_outcome(log.outcome);
                return Ok(Reply {
                    body: crate::billmgr::render(&doc, format).into(),
                    format,
                    set_cookie: None,
                });
            }
        };
        let result = self.forward(&reseller, &up_params, log).await;
        let (body, doc) = self
            .after_forward(&reseller, func, &up_params, claim, result)
            .await?;
        if let Some(err) = BmError::from_doc(&doc) {
            log.outcome = "upstream_refused";
            log.error_type = Some(err.kind.as_str());
        } else {
            log.outcome = "ok";
        }
        // An upstream may echo the request: its account's password never reaches the
        // reseller, nor its login in an error.
        let (up_login, up_password) = self.upstream_credentials(&reseller)?;
        let mut secrets = vec![up_password.expose()];
        if log.outcome == "upstream_refused" {
            secrets.push(&up_login);
        }
        let call = rewrite::Call {
            reseller: &reseller,
            func,
            params,
            service_plan,
            caller: format,
            secrets: &secrets,
        };
        let body = self
            .reseller_answer(call, body)
            .await
            .inspect_err(|e| log.upstream_failure = Some(e.label()))?;
        self.metrics.count_outcome(log.outcome);
        Ok(Reply {
            body,
            format,
            set_cookie: None,
        })
    }

    /// The upstream's answer as the reseller sees it (see [`rewrite::reseller_answer`]).
    /// A large answer, or one whose rewrite reads the store (a certificate list), is
    /// rewritten on the blocking pool, so it never stalls the other calls on this thread.
    async fn reseller_answer(
        self: &Arc<Self>,
        call: rewrite::Call<'_>,
        body: Bytes,
    ) -> Result<Bytes, upstream::UpstreamError> {
        let inline = body.len() <= self.upstream.settings().large_response_bytes
            && !crate::catalog::response::reads_store(call.func);
        if inline {
            return rewrite::reseller_answer(self.catalog(), &call, body);
        }
        let (gw, call) = (self.clone(), Owned::from(&call));
        tokio::task::spawn_blocking(move || call.answer(&gw, body))
            .await
            .unwrap_or(Err(upstream::UpstreamError::Garbage))
    }

    /// What response rewrites read.
    fn catalog(&self) -> crate::catalog::Catalog<'_> {
        crate::catalog::Catalog {
            store: &self.store,
            names: &self.plan_names,
        }
    }

    /// Send `params` upstream under the reseller's account and read the answer in the
    /// caller's format. Only calls that change nothing may be retried (not a submit, not
    /// a toolbar action: [`functions::changes_state`]).
    pub(crate) async fn forward(
        &self,
        reseller: &Reseller,
        params: &Params,
        log: &mut RequestLog,
    ) -> Result<(Bytes, Element), upstream::UpstreamError> {
        let (up_login, up_password) = self
            .upstream_credentials(reseller)
            .map_err(|_| upstream::UpstreamError::Connect)?;
        let up = rewrite::upstream_params(params, &up_login, up_password.expose());
        let answer = self
            .upstream
            .call(Bytes::from(up.to_form()), !functions::changes_state(params))
            .await
            .inspect_err(|e| {
                log.upstream_failure = Some(e.label());
            })?;
        log.upstream_status = Some(answer.status);
        log.upstream_latency = Some(answer.latency);
        let doc = rewrite::read_answer(&answer.body, params.format(), params.func()).inspect_err(
            |e| {
                log.upstream_failure = Some(e.label());
            },
        )?;
        Ok((answer.body, doc))
    }

    /// The reseller behind the credentials, or an `auth` error.
    async fn authenticate(&self, creds: Credentials, ip: IpAddr) -> Result<Arc<Reseller>, BmError> {
        match creds {
            Credentials::Password { login, password } => {
                self.check_password(&login, &password, ip).await
            }
            Credentials::Session(sid) => {
                let login = self.auth.resolve_session(&sid, ip, Instant::now())?;
                self.store.reseller(&login).ok_or_else(|| {
                    BmError::auth("The session's reseller no longer exists").object("auth")
                })
            }
        }
    }

    /// Verify a password: from the verified-credential cache when possible, otherwise by a
    /// full argon2id verification on the blocking pool, shared by concurrent checks of the
    /// same credential. A full verification is admitted into a bounded queue (refused
    /// fast beyond it), counted as a failure before it runs and throttled per
    /// (login, address); a success clears the count.
    async fn check_password(
        &self,
        login: &str,
        password: &str,
        ip: IpAddr,
    ) -> Result<Arc<Reseller>, BmError> {
        let bad = || BmError::auth("Invalid login or password").object("authinfo");
        self.auth.check_throttle(login, ip, Instant::now())?;
        let reseller = self.store.reseller(login);
        if let Some(r) = &reseller {
            if self.auth.is_verified(login, password, &r.password_hash) {
                return Ok(r.clone());
            }
        }
        // An unknown login still pays one verification, so timing does not tell which
        // logins exist.
        let hash = reseller
            .as_ref()
            .map(|r| r.password_hash.clone())
            .unwrap_or_else(|| DUMMY_HASH.to_string());
        let ran = std::sync::atomic::AtomicBool::new(false);
        let ok = self
            .auth
            .verify_shared(login, password, &hash, || {
                let (hash, pw) = (hash.clone(), password.to_string());
                let ran = &ran;
                async move {
                    ran.store(true, std::sync::atomic::Ordering::Relaxed);
                    let slot = self.auth.admit()?;
                    self.auth.begin_attempt(login, ip, Instant::now())?;
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
                self.auth
                    .remember_verified(login, password, &r.password_hash);
                self.auth.clear_failures(login, ip);
                Ok(r)
            }
            _ => {
                // The run was counted before it started; a caller that shared it counts now.
                if !ran.load(std::sync::atomic::Ordering::Relaxed) {
                    self.auth.record_failure(login, ip, Instant::now());
                }
                Err(bad())
            }
        }
    }

    /// Use `secret` as the password of upstream account `name` from now on (an account
    /// applied to the running gateway).
    pub fn set_account_secret(&self, name: &str, secret: Secret) {
        self.secrets.insert(name.to_string(), secret);
    }

    /// The reseller's upstream login and password.
    fn upstream_credentials(&self, reseller: &Reseller) -> Result<(String, Secret), BmError> {
        let unavailable =
            || BmError::upstream("The upstream account for this reseller is not configured");
        let account = self.store.upstream_account(&reseller.upstream_account).ok_or_else(|| {
            tracing::error!(reseller = %reseller.login, account = %reseller.upstream_account, "reseller refers to an unknown upstream account");
            unavailable()
        })?;
        if let Some(s) = self.secrets.get(&account.name) {
            return Ok((account.login.clone(), s.clone()));
        }
        // An account applied after the start: resolve its password now.
        let secret = account.password.resolve().map_err(|e| {
            tracing::error!(account = %account.name, error = %e, "cannot resolve the upstream account's password");
            unavailable()
        })?;
        self.secrets.insert(account.name.clone(), secret.clone());
        Ok((account.login.clone(), secret))
    }
}

/// [`rewrite::Call`] with owned parts, so a large answer can be rewritten on the blocking
/// pool.
struct Owned {
    reseller: Reseller,
    func: String,
    params: Params,
    service_plan: Option<u64>,
    caller: Format,
    secrets: Vec<String>,
}

impl Owned {
    fn from(call: &rewrite::Call) -> Owned {
        Owned {
            reseller: call.reseller.clone(),
            func: call.func.to_string(),
            params: call.params.clone(),
            service_plan: call.service_plan,
            caller: call.caller,
            secrets: call.secrets.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn answer(&self, gw: &Gateway, body: Bytes) -> Result<Bytes, upstream::UpstreamError> {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        let call = rewrite::Call {
            reseller: &self.reseller,
            func: &self.func,
            params: &self.params,
            service_plan: self.service_plan,
            caller: self.caller,
            secrets: &secrets,
        };
        rewrite::reseller_answer(gw.catalog(), &call, body)
    }
}

/// A valid argon2id hash of a random password nobody knows, verified against for unknown
/// logins so that they cost as much as known ones.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$Vt5bQ1+3wCxGZaYhRcqmrHk6bWZs7/M3cRj4n6vL0yE";

//! One reseller call's path, from the request read off the wire to the document sent back.
//!
//! - [`auth`]      — credentials, sessions, the verified-credential cache, throttling.
//! - [`functions`] — the function table: kind, `elid`, state, access of every known `func`.
//! - [`policy`]    — which functions pass (the table plus the operator's passthrough);
//!   refused ones counted by name.
//! - [`ownership`] — every `elid` must be the reseller's ([`elid_cache`] remembers refusals).
//! - [`orders`]    — exactly-once orders: the claim before the forward, the finish after;
//!   [`order_events`] names each for the order counters.
//! - [`history`]   — lifecycle calls recorded in their service's history; renewals billed.
//! - [`rewrite`]   — what the reseller gets back (rewritten in its own shape, secrets the
//!   upstream echoed redacted).
//! - [`refusal`]   — every refusal named after its condition, and the one place it becomes
//!   an error document.
//! - [`connection`], [`client_addr`] — per-address connection cap, header deadline, the
//!   client's address (`X-Forwarded-For` from trusted proxies).
//! - [`service`]   — the `ProxyHttp` phases; they only read the request, call
//!   [`Gateway::handle`] and count the outcome in `logging`.
//!
//! Lifetimes: a [`Gateway`] lives as long as the process and holds shared handles (store,
//! authenticator, upstream client, the reconciler's jobs); a [`Caller`] lives for one call (the
//! reseller and its upstream account, resolved once); background work belongs to the
//! [`crate::reconcile::Reconciler`], which the gateway only leaves jobs for ([`crate::reconcile::Jobs`]).
//!
//! Every refusal or failure leaves [`Gateway::handle`] as a BILLmanager error document in
//! the caller's format with HTTP 200; there is no other path to the wire.

pub mod auth;
pub mod client_addr;
pub mod connection;
pub mod crashpoint;
pub mod elid_cache;
pub use crate::billmgr::functions;
pub mod history;
pub mod order_events;
pub mod orders;
pub mod ownership;
pub mod policy;
pub mod refusal;
pub mod rewrite;
pub mod service;

pub(crate) mod answer;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::billmgr::{BmError, Element, Format, Limits, Params};
use crate::catalog::UpstreamNames;
use crate::config::Config;
use crate::reconcile::Jobs;
use crate::store::model::Reseller;
use crate::store::Store;
use crate::telemetry::{Metrics, RequestLog};
use crate::upstream::{Account, Client, Outgoing, UpstreamError};

use auth::{AuthSettings, Authenticator};
use policy::Policy;
pub use refusal::Refusal;

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

impl Reply {
    fn doc(doc: &Element, format: Format) -> Reply {
        Reply {
            body: crate::billmgr::render(doc, format).into(),
            format,
            set_cookie: None,
        }
    }
}

/// Who one call is: the authenticated reseller and its upstream account, resolved once.
pub struct Caller {
    pub reseller: Arc<Reseller>,
    pub account: Account,
}

/// Per-process state of the call path: shared handles only.
pub struct Gateway {
    store: Store,
    auth: Authenticator,
    policy: Policy,
    upstream: Arc<Client>,
    limits: Limits,
    pub metrics: Metrics,
    /// Upstream plan names seen in price lists (prices rows that name a plan by name).
    plan_names: Arc<UpstreamNames>,
    /// Unknown `elid`s refused recently, per reseller (see [`elid_cache`]).
    refused_elids: elid_cache::RefusedElids,
    /// Work left for after the answer, run by the reconciler.
    jobs: Jobs,
}

impl Gateway {
    /// The call path for `config` over an open store, an upstream client and the
    /// reconciler's jobs.
    pub fn new(config: &Config, store: Store, upstream: Arc<Client>, jobs: Jobs) -> Gateway {
        Gateway {
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
            upstream,
            limits: config.limits(),
            metrics: Metrics::default(),
            plan_names: Arc::default(),
            refused_elids: elid_cache::RefusedElids::default(),
            jobs,
            store,
        }
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

    /// Use `secret` as the password of upstream account `name` from now on (an account
    /// applied to the running gateway).
    pub fn set_account_secret(&self, name: &str, secret: crate::secret::Secret) {
        self.upstream.accounts().set_secret(name, secret);
    }

    /// Answer one call. Never fails: every refusal is an error document.
    pub async fn handle(&self, req: Incoming<'_>, log: &mut RequestLog) -> Reply {
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
                return refuse(&e.into(), format, "en", log);
            }
        };
        let format = params.format();
        log.func = params.func().map(policy::printable);
        match self.dispatch(&params, &req, log).await {
            Ok(reply) => reply,
            Err(r) => refuse(&r, format, params.lang(), log),
        }
    }

    /// The pipeline: gate, authenticate, decide, map, own, claim, forward, record, answer.
    async fn dispatch(
        &self,
        params: &Params,
        req: &Incoming<'_>,
        log: &mut RequestLog,
    ) -> Result<Reply, Refusal> {
        let func = params.func().ok_or(Refusal::NoFunction)?;
        self.gate(func, params)?;
        let creds = auth::credentials(params, req.cookie_sid)?;
        let format = params.format();
        if func == "auth" {
            return self.log_in(creds, req.client_ip, format, log).await;
        }
        let reseller = auth::authenticate(&self.auth, &self.store, creds, req.client_ip).await?;
        log.reseller = Some(reseller.login.clone());
        if let functions::Decision::Known(f) = self.decide(&reseller, func, params)? {
            if f.kind == functions::Kind::Local {
                // `keepalive`: authenticating the session above already slid its expiry.
                log.outcome = "local";
                return Ok(Reply::doc(
                    &Element::doc().child(Element::new("ok")),
                    format,
                ));
            }
        }
        // Refuse early (nothing forwarded) when the reseller's upstream account is unusable.
        let account = self
            .upstream
            .accounts()
            .resolve(&reseller)
            .map_err(|_| Refusal::AccountUnavailable)?;
        let caller = Caller { reseller, account };
        // Catalogue: local plan ids → upstream ids (issue 3).
        let mut up_params =
            crate::catalog::map_request(&self.store, &caller.reseller, func, params)
                .map_err(Refusal::Catalog)?;
        let is_order = orders::is_order_submit(func, &up_params);
        if is_order {
            // Pay from the balance at once: an order left in the upstream's cart is one no
            // reseller can reach through the gateway.
            up_params = orders::with_skipbasket(&up_params);
        }
        // Ownership of every elid, then the exactly-once claim (issue 4).
        let plans = if functions::elid_is_certificate(func) {
            self.check_elids(&caller, &up_params).await?
        } else {
            Vec::new()
        };
        let claim = if is_order {
            let claimed = self.claim_order(&caller, &up_params).await;
            if let Some(event) = order_events::claim_event(&claimed) {
                self.metrics.count_order(event);
            }
            match claimed? {
                orders::Claimed::Forward(claim) => Some(claim),
                orders::Claimed::Replay(doc) => {
                    log.outcome = "replayed";
                    return Ok(Reply::doc(&doc, format));
                }
            }
        } else {
            None
        };
        let service_plan = match (&claim, plans.as_slice()) {
            (None, [Some(plan)]) => plan.trim().parse().ok(),
            _ => None,
        };
        let mut call = rewrite::Call {
            reseller: &caller.reseller,
            func,
            params,
            service_plan,
            caller: format,
            secrets: &[],
        };
        if claim.is_none() && crate::catalog::response::list_items(func).is_some() {
            return self.list_call(&caller.account, call, &up_params, log).await;
        }
        let result = self.forward(&caller.account, &up_params, log).await;
        let (body, doc) = match claim {
            Some(claim) => {
                let finished = self.finish_order(&caller, claim, result).await;
                self.metrics
                    .count_order(order_events::finish_event(&finished));
                finished?
            }
            None => self.record_call(&caller, func, &up_params, result).await?,
        };
        let secrets = judged(&doc, &caller.account, log);
        call.secrets = &secrets;
        let body = self
            .reseller_answer(&call, body)
            .await
            .inspect_err(|e| log.upstream_failure = Some(e.label()))?;
        Ok(Reply {
            body,
            format,
            set_cookie: None,
        })
    }

    /// A list function's call (`pricelist.export`, `certificate`: nothing to claim or to
    /// record) sent upstream with `up_params`, its answer read once: the rewrite gives the
    /// light document the call is judged by ([`rewrite::reseller_list_document`]).
    async fn list_call(
        &self,
        account: &Account,
        mut call: rewrite::Call<'_>,
        up_params: &Params,
        log: &mut RequestLog,
    ) -> Result<Reply, Refusal> {
        let out = Outgoing {
            params: up_params,
            retry: !functions::changes_state(up_params),
            list_items: None,
        };
        let body = self.upstream.send(account, out, log).await?;
        let (body, doc) = self
            .list_document(&call, body)
            .await
            .inspect_err(|e| log.upstream_failure = Some(e.label()))?;
        let secrets = judged(&doc, account, log);
        call.secrets = &secrets;
        Ok(Reply {
            body: rewrite::redacted(&call, body),
            format: call.caller,
            set_cookie: None,
        })
    }

    /// Send `params` upstream under the caller's account and read the answer in the
    /// caller's format. Only calls that change nothing may be retried (not a submit, not
    /// a toolbar action: [`functions::changes_state`]).
    async fn forward(
        &self,
        account: &Account,
        params: &Params,
        log: &mut RequestLog,
    ) -> Result<(Bytes, Element), UpstreamError> {
        let call = Outgoing {
            params,
            retry: !functions::changes_state(params),
            // A list answer goes through `list_call` instead.
            list_items: None,
        };
        self.upstream.forward(account, call, log).await
    }
}

/// The outcome of a call whose upstream answered `doc`, noted on the access line, and what
/// must not reach the reseller in the answer: an upstream may echo the request, so its
/// account's password never does, nor its login in an error.
fn judged<'a>(doc: &Element, account: &'a Account, log: &mut RequestLog) -> Vec<&'a str> {
    let mut secrets = vec![account.password.expose()];
    match BmError::from_doc(doc) {
        Some(err) => {
            log.outcome = "upstream_refused";
            log.error_type = Some(err.kind.as_str());
            secrets.push(&account.login);
        }
        None => log.outcome = "ok",
    }
    secrets
}

/// The error document for a refusal; the access line notes why.
fn refuse(r: &Refusal, format: Format, lang: &str, log: &mut RequestLog) -> Reply {
    log.outcome = r.outcome();
    log.error_type = Some(r.error().kind.as_str());
    Reply {
        body: r.document(format, lang),
        format,
        set_cookie: None,
    }
}

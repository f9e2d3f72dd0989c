//! The selling BILLmanager, as the gateway talks to it: one [`Client`] per process.
//!
//! - [`connector`] — forwarding over pingora's pooled connector, timeouts, retries.
//! - [`wire`]      — what the upstream receives (the reseller's own account swapped in)
//!   and reading its answer as a document.
//! - [`accounts`]  — upstream accounts and their passwords, resolved once per call into
//!   an [`Account`].
//! - [`certs`]     — certificate look-ups on a reseller's account: the list (all, or one
//!   `remoteid`), a renewal's cost.
//!
//! Nothing here knows about resellers' requests or refusals: a failure is an
//! [`UpstreamError`] or [`AccountUnavailable`], and the proxy names the refusal.

pub mod accounts;
pub mod certs;
pub mod connector;
pub mod wire;

use std::time::Duration;

use bytes::Bytes;

use crate::billmgr::{Element, Params};
use crate::config::Config;
use crate::store::Store;
use crate::telemetry::RequestLog;

pub use accounts::{Account, AccountUnavailable, Accounts};
pub use certs::UpstreamCert;
pub use connector::{Upstream, UpstreamAnswer, UpstreamError, UpstreamSettings};

/// Why the upstream client cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// An upstream account's password cannot be resolved (a variable unset, a file
    /// missing): invalid configuration.
    #[error("upstream account '{name}': {error}")]
    Account { name: String, error: String },
    /// The upstream's address cannot be resolved.
    #[error("{0}")]
    Connector(anyhow::Error),
}

/// One call to send: its parameters (the reseller's account is added by
/// [`Client::forward`]), whether it may be retried, and the items of a list answer.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub params: &'a Params,
    /// Only calls that change nothing may be retried.
    pub retry: bool,
    /// The top-level items of a list answer (read without them, see [`wire::read_answer`]).
    pub list_items: Option<&'a [&'a str]>,
}

/// The upstream connector and the accounts calls go out under.
pub struct Client {
    connector: Upstream,
    accounts: Accounts,
}

impl Client {
    /// The client for `config`'s upstream; resolves every upstream account's password in
    /// `store` now, so a missing variable or file stops the start.
    pub fn new(config: &Config, store: Store) -> Result<Client, SetupError> {
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
        let accounts = Accounts::load(store)?;
        Ok(Client {
            connector: Upstream::new(settings).map_err(SetupError::Connector)?,
            accounts,
        })
    }

    pub fn settings(&self) -> &UpstreamSettings {
        self.connector.settings()
    }

    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// Send a call upstream under `account` and read the answer as a document in the
    /// caller's format (`params`' `out`). The access line records the upstream's status,
    /// latency, or why it failed.
    pub async fn forward(
        &self,
        account: &Account,
        call: Outgoing<'_>,
        log: &mut RequestLog,
    ) -> Result<(Bytes, Element), UpstreamError> {
        let body = self.send(account, call, log).await?;
        let doc =
            wire::read_answer(&body, call.params.format(), call.list_items).inspect_err(|e| {
                log.upstream_failure = Some(e.label());
            })?;
        Ok((body, doc))
    }

    /// [`Client::forward`] without reading the answer: its bytes, for a caller that
    /// reads them itself (a list answer read once, by its rewrite).
    pub async fn send(
        &self,
        account: &Account,
        call: Outgoing<'_>,
        log: &mut RequestLog,
    ) -> Result<Bytes, UpstreamError> {
        let up = wire::upstream_params(call.params, &account.login, account.password.expose());
        let answer = self
            .connector
            .call(Bytes::from(up.to_form()), call.retry)
            .await
            .inspect_err(|e| {
                log.upstream_failure = Some(e.label());
            })?;
        log.upstream_status = Some(answer.status);
        log.upstream_latency = Some(answer.latency);
        Ok(answer.body)
    }
}

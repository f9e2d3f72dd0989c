//! resellgate — a reseller gateway for BILLmanager SSL certificate reselling, on pingora.
//!
//! Map of the modules. Dependencies run one way, top to bottom:
//! `app → admin → proxy → reconcile → {upstream, catalog, config} → store →
//! {billmgr, secret, telemetry}`; `cli`, `demo`, `sandbox` and `perf` sit beside the stack.
//!
//! - [`app`]       — the process: [`app::Parts`] (the upstream client, the call path's
//!   gateway and the background reconciler), the pingora server, the admin listener and
//!   the background services (purge, periodic reconciliation, the job runner).
//! - [`admin`]     — the operator's listener: health, metrics, mapping apply/export,
//!   services, orders and reconciliation, JSON resources with roles and ETags, the audit
//!   log, the web console, and the CLI's client of a running gateway.
//! - [`proxy`]     — one call's path: the pipeline ([`proxy::Gateway`], a per-call
//!   [`proxy::Caller`]), authentication and sessions ([`proxy::auth`]), function policy,
//!   ownership of ids, orders claimed and finished exactly once, service history, request
//!   and answer rewriting, and [`proxy::Refusal`] — every refusal named after its
//!   condition, turned into an error document in one function. Outcomes are counted
//!   only in the pingora `logging` phase.
//! - [`reconcile`] — background work against the upstream: reconciliation of pending
//!   orders, ledger costs filled in, services sync, fed by a bounded job channel from
//!   the call path; [`reconcile::record`] holds the store writes both share.
//! - [`upstream`]  — the selling BILLmanager: the pooled pingora connector (the product's
//!   one HTTP client), accounts resolved once per call, certificate look-ups.
//! - [`catalog`]   — plan mappings and markups, all pricing: local plan ids and prices over
//!   the upstream's, price labels kept, amounts in texts marked up, the ledger's price
//!   ([`catalog::pricing`]).
//! - [`config`]    — `config.toml` and mapping files: serde schema, defaults in one place,
//!   validation that names file, key and value; secrets from the environment or files;
//!   mapping files applied to and exported from the store ([`config::mappings`]).
//! - [`store`]     — the state behind one interface ([`store::backend`]): sled for one
//!   gateway, PostgreSQL for a fleet ([`store::postgres`], SQL migrations in
//!   `migrations/postgres/`, [`store::copy`] between them); its own record types,
//!   versioned values and a store format migrated on open ([`store::migrate`]), order
//!   claims with pending/failed indexes ([`store::orders`]), services, the ledger
//!   ([`store::ledger`]), a dashmap cache for hot-path reads (reloaded on other
//!   gateways' changes in fleet mode).
//! - [`billmgr`]   — the wire protocol: strict parameter parsing ([`billmgr::Params`]),
//!   the function table ([`billmgr::functions`]), documents in every output format
//!   ([`billmgr::Element`], [`billmgr::render`], [`billmgr::parse`]), upstream answers
//!   checked and edited in their own format one item at a time ([`billmgr::edit`]), and
//!   BILLmanager error documents ([`billmgr::BmError`]).
//! - [`secret`]    — secrets that never print, argon2id password hashing, env/file resolution.
//! - [`telemetry`] — tracing set-up, pingora's `log` bridged in, secret-free access lines,
//!   the one `printable` escaping of untrusted text.
//! - [`sandbox`]   — a built-in upstream BILLmanager simulator for the demo, tests and benches.
//! - [`demo`]      — `resellgate demo`: sandbox + gateway + a scripted reseller session.
//! - [`perf`]      — in-process timings of the gateway's own work on an answer, for `bench/`.
//! - [`cli`]       — the command line; `main.rs` only calls [`cli::main`].
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod billmgr;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod demo;
pub mod perf;
pub mod proxy;
pub mod reconcile;
pub mod sandbox;
pub mod secret;
pub mod store;
pub mod telemetry;
pub mod upstream;

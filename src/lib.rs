//! resellgate — a reseller gateway for BILLmanager SSL certificate reselling, on pingora.
//!
//! Map of the modules (data flows top to bottom on a request):
//!
//! - [`billmgr`]   — the wire protocol: strict parameter parsing ([`billmgr::Params`]),
//!   documents in every output format ([`billmgr::Element`], [`billmgr::render`],
//!   [`billmgr::parse`]), upstream answers checked and edited in their own format, lists
//!   one item at a time ([`billmgr::edit`]), and BILLmanager error documents
//!   ([`billmgr::BmError`]).
//! - [`catalog`]   — plan mappings and markups: local plan ids and prices over the upstream's,
//!   price labels kept, amounts in texts marked up.
//! - [`config`]    — `config.toml` and mapping files: serde schema, defaults in one place,
//!   validation that names file, key and value; secrets from the environment or files.
//! - [`store`]     — the state behind one interface: a sled backend with versioned binary
//!   values, flushed before acknowledging, and a dashmap cache for hot-path reads.
//! - [`secret`]    — secrets that never print, argon2id password hashing, env/file resolution.
//! - [`proxy`]     — the pingora service: authentication, function policy, request
//!   rewriting, forwarding and the one place where failures become error documents.
//! - [`admin`]     — the operator's listener: health, metrics, mapping apply/export,
//!   services, orders and reconciliation, JSON resources with roles and ETags, the audit
//!   log, the web console, and the CLI's client of a running gateway.
//! - [`sandbox`]   — a built-in upstream BILLmanager simulator for the demo, tests and benches.
//! - [`demo`]      — `resellgate demo`: sandbox + gateway + a scripted reseller session.
//! - [`telemetry`] — tracing set-up, pingora's `log` bridged in, secret-free access lines.
//! - [`cli`]       — the command line; `main.rs` only calls [`cli::main`].
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod billmgr;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod demo;
pub mod proxy;
pub mod reconcile;
pub mod sandbox;
pub mod secret;
pub mod store;
pub mod telemetry;
pub mod upstream;

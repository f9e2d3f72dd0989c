//! A simulator of the selling (upstream) BILLmanager, for the demo, the tests and the
//! benchmarks (`resellgate sandbox`).
//!
//! The logic ([`Sandbox::handle`]) is pure: parameters in, a document out, no sockets, so it
//! is unit-tested directly. [`server`] puts it behind a small HTTP/1.1 server with raw
//! control over the connection, which the fault injection needs.
//!
//! # Accounts and catalogue
//! [`Sandbox::demo`] seeds two customer accounts (demo credentials, printed by the CLI):
//! `acme@sandbox` / `acme-upstream-pw` with 1000.00 EUR and `globex@sandbox` /
//! `globex-upstream-pw` with 500.00 EUR. The catalogue is fixed:
//!
//! | pricelist | name | periods (months → EUR) | add-on (`domainlimit`, per domain per 12 months) |
//! |---|---|---|---|
//! | 3033 | PositiveSSL | 12 → 9.00, 24 → 16.00, 36 → 22.50 | 3034: 5.00 |
//! | 3040 | PositiveSSL Wildcard | 12 → 79.00, 24 → 150.00 | — |
//! | 3050 | EV Multi-Domain | 12 → 199.00 | 3051: 25.00 |
//!
//! # Functions
//! Authentication is `authinfo=login:password` (split at the first colon), or `auth=SID` /
//! cookie `billmgrses5=SID` from `func=auth&username=…&password=…` (sessions are bound to the
//! client address and expire 1 hour after the last use). `pricelist.export` needs no
//! authentication. `su` is refused with `access`.
//!
//! - `auth` → `<auth id="SID" level="16">SID</auth>`.
//! - `whoami` → `<user><name>login</name><balance>1000.00</balance><currency>EUR</currency></user>`.
//! - `pricelist.export` (`itemtype`, `pricelist`, `onlyavailable`) → `<pricelist>` elements
//!   as a real BILLmanager 6 writes them: the price is each period's `cost`, the period's
//!   text a label (`1 year`), `itemtype` numeric, with `name_ru`, `description`,
//!   `datacenter`, and add-ons with `intname`, `addonlimit`, `measure`; add-on prices are
//!   listed for every period of the plan (scaled by months/12).
//! - `certificate` (`remoteid` filter) → the account's non-deleted certificates as `<elem>`
//!   rows (`pricelist` is the plan name, `pricelist_id` its id) and `p_num`/`p_cnt`/`p_elems`.
//! - `certificate.order.csr` + `sok` → `<model><csr/><key/></model><ok/>` (fake, PEM-shaped;
//!   the CN is readable back from the CSR).
//! - `certificate.order.param` → a form; with `sok` validates and orders (`<ok/><id>5001</id>`).
//!   Without `skipbasket=on` the order goes to the cart, as on a real billing: `<ok/>`, no id,
//!   nothing charged or created ([`Sandbox::basket_count`]).
//!   The add-on `addon_<id>` is the number of extra domains bought and is charged whether or
//!   not all are used in `altname`.
//! - `certificate.reissue` → a form; `certificate.reissue.step2` + `sok` with `crt_type`
//!   `oldrequest` | `manual` (`csr`) | `altname` (`altname`). `approver_email_1` is validated
//!   when given; when absent the stored approver is kept.
//! - `certificate.edit` → the fields; with `sok` updates approver, contacts, `org_*`, `remoteid`.
//! - `certificate.delete` (`elid=5001, 5002`; all must belong to the account).
//! - Toolbar actions, `elid` one id or a list, no `sok` needed, all or nothing (every id
//!   is checked before any changes): `certificate.sync` (nothing new from the CA: `<ok/>`)
//!   and `sslkey.delete` (forgets the stored key).
//! - `certificate.file&elid=…` → the certificate's files as `<elem>` rows;
//!   `certificate.file.edit&elid=…[&file=crt|ca]` → `<content>` (PEM-shaped).
//! - `sslkey.download&elid=…` → `<sslkey>` (PEM-shaped); `sslkey.edit` → a form.
//! - `certificate.filter` → a form; with `sok`, `<ok/>`.
//! - `v2.certificate.order.param` (BILLmanager 6's order API) → like
//!   `certificate.order.param`, the period as `order_period`.
//! - The admin-level `certificate.open`, `certificate.retry`, `certificate.resume`,
//!   `certificate.setfilter` and `certificate.su` are refused with `access`/`func`: the
//!   sandbox's accounts are customer accounts. There is no `certificate.suspend`
//!   (BILLmanager 6 has none): it is an unknown function (`missed`/`func`).
//! - `service.prolong` → a form with costs; with `sok` charges and moves the expiry date by
//!   `period` months from the old expiry: `<ok/><doc><newexpiredate>YYYY-MM-DD</newexpiredate></doc>`
//!   (a nested `doc`, read at `/doc/doc/newexpiredate` by ISPsystem's own client).
//!
//! Certificates are created with status 3 ("Requested") and ids from 5001 up;
//! [`Sandbox::fail_issuance`] puts one into status 6 ("Failed") for tests.
//!
//! # Knobs
//! [`Knobs`] (shared by every clone): `latency_ms` delays every answer; [`Sandbox::inject`]
//! queues one-shot [`Fault`]s, each [`FaultPhase::BeforeHandling`] (the call is not
//! processed) or [`FaultPhase::AfterHandling`] (the call is processed — an order really is
//! created — and then the answer is lost); `fail_rate` answers that fraction of calls with a
//! random fault in a random phase. From the command line:
//! `resellgate sandbox --listen 127.0.0.1:1600 --latency-ms 50 --fail-rate 0.1`.

mod catalog;
mod csr;
mod dates;
mod forms;
mod logic;
pub mod server;

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rust_decimal::Decimal;
use time::Date;

use crate::billmgr::{Element, Params};

pub use catalog::{money2, money4, plan, Addon, Plan, PLANS};
pub use server::{run_cli, spawn, SandboxHandle, SandboxServer};

/// One seeded customer account of the upstream billing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSeed {
    pub login: String,
    pub password: String,
    pub balance: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    pub accounts: Vec<AccountSeed>,
    pub currency: String,
}

impl Default for SandboxConfig {
    /// The demo seed: `acme@sandbox` (1000.00) and `globex@sandbox` (500.00), in EUR.
    fn default() -> Self {
        SandboxConfig {
            accounts: vec![
                AccountSeed {
                    login: "acme@sandbox".into(),
                    password: "acme-upstream-pw".into(),
                    balance: Decimal::new(100000, 2),
                },
                AccountSeed {
                    login: "globex@sandbox".into(),
                    password: "globex-upstream-pw".into(),
                    balance: Decimal::new(50000, 2),
                },
            ],
            currency: "EUR".into(),
        }
    }
}

/// A certificate as the upstream stores it (for tests; see [`Sandbox::certificates`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub id: u64,
    /// Login of the owning account.
    pub account: String,
    pub pricelist: u32,
    pub period: u32,
    pub cn: String,
    pub altnames: Vec<String>,
    /// Extra domains bought through the `domainlimit` add-on.
    pub domainlimit: u32,
    pub remoteid: Option<String>,
    /// SSL processing status: 3 requested, 4 enrolled, 5 issued, 6 failed.
    pub status: u8,
    pub createdate: Date,
    pub expiredate: Date,
    pub approver_email: String,
    /// What the order paid.
    pub cost: Decimal,
    pub csr: Option<String>,
    /// `adm_*`, `tech_*`, `org_*` fields.
    pub contacts: BTreeMap<String, String>,
    /// The private key was removed by `sslkey.delete`.
    pub key_deleted: bool,
    pub deleted: bool,
}

/// How an injected fault misbehaves on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Close the TCP connection without answering.
    Reset,
    /// Never answer; the socket stays open until the server shuts down.
    Hang,
    /// HTTP 200 with random binary bytes.
    Garbage,
    /// `502 Bad Gateway` with an HTML page.
    Html502,
    /// HTTP 200 with an empty body.
    Empty,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::Reset,
        Fault::Hang,
        Fault::Garbage,
        Fault::Html502,
        Fault::Empty,
    ];
}

/// When an injected fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultPhase {
    /// The call is not processed.
    BeforeHandling,
    /// The call is processed (orders are created, money charged), then the answer is lost.
    AfterHandling,
}

/// Runtime knobs, shared by every clone of a [`Sandbox`].
#[derive(Debug, Default)]
pub struct Knobs {
    latency_ms: AtomicU64,
    /// `f64` bits.
    fail_rate: AtomicU64,
    faults: Mutex<VecDeque<(Fault, FaultPhase)>>,
}

impl Knobs {
    pub fn latency_ms(&self) -> u64 {
        self.latency_ms.load(Ordering::Relaxed)
    }

    pub fn set_latency_ms(&self, ms: u64) {
        self.latency_ms.store(ms, Ordering::Relaxed);
    }

    pub fn fail_rate(&self) -> f64 {
        f64::from_bits(self.fail_rate.load(Ordering::Relaxed))
    }

    /// The fraction of calls (0.0–1.0, clamped) answered with a random fault.
    pub fn set_fail_rate(&self, rate: f64) {
        let rate = if rate.is_nan() {
            0.0
        } else {
            rate.clamp(0.0, 1.0)
        };
        self.fail_rate.store(rate.to_bits(), Ordering::Relaxed);
    }

    /// Queue a one-shot fault for the next call.
    pub fn inject(&self, fault: Fault, phase: FaultPhase) {
        lock(&self.faults).push_back((fault, phase));
    }

    /// The fault for the call being served: the next queued one, else a random one drawn
    /// with probability `fail_rate`.
    pub fn next_fault(&self) -> Option<(Fault, FaultPhase)> {
        if let Some(f) = lock(&self.faults).pop_front() {
            return Some(f);
        }
        let rate = self.fail_rate();
        if rate > 0.0 && rand::random::<f64>() < rate {
            let fault = Fault::ALL[rand::random::<usize>() % Fault::ALL.len()];
            let phase = if rand::random::<bool>() {
                FaultPhase::BeforeHandling
            } else {
                FaultPhase::AfterHandling
            };
            return Some((fault, phase));
        }
        None
    }

    /// Faults still queued.
    pub fn pending_faults(&self) -> usize {
        lock(&self.faults).len()
    }
}

/// A std mutex is right here: every critical section is short and nothing awaits under it.
/// A poisoned lock only means a test panicked elsewhere; the state is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The simulated upstream billing. Cheap to clone; clones share state and knobs.
#[derive(Clone)]
pub struct Sandbox {
    state: Arc<Mutex<logic::State>>,
    knobs: Arc<Knobs>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").finish_non_exhaustive()
    }
}

impl Sandbox {
    pub fn new(config: SandboxConfig) -> Sandbox {
        Sandbox {
            state: Arc::new(Mutex::new(logic::State::new(config))),
            knobs: Arc::new(Knobs::default()),
        }
    }

    /// The default seeded sandbox ([`SandboxConfig::default`]).
    pub fn demo() -> Sandbox {
        Sandbox::new(SandboxConfig::default())
    }

    /// Answer one call. Errors are BILLmanager error documents ([`crate::billmgr::BmError::to_doc`]).
    pub fn handle(&self, params: &Params, client_ip: IpAddr) -> Element {
        self.handle_request(params, client_ip, None)
    }

    /// Answer one call, with the session id from the `billmgrses5` cookie if the caller sent one.
    pub fn handle_request(
        &self,
        params: &Params,
        client_ip: IpAddr,
        session_cookie: Option<&str>,
    ) -> Element {
        let mut st = lock(&self.state);
        st.remember(params);
        st.handle(params, client_ip, session_cookie)
    }

    /// Record a call that reached the sandbox but was not processed (a fault struck first).
    pub fn record(&self, params: &Params) {
        lock(&self.state).remember(params);
    }

    /// The calls' parameters as received, oldest first (including `authinfo`): the last
    /// `RECEIVED_LIMIT` (10,000).
    pub fn received(&self) -> Vec<Params> {
        lock(&self.state).received.iter().cloned().collect()
    }

    pub fn clear_received(&self) {
        lock(&self.state).received.clear();
    }

    /// Every certificate of every account, deleted ones included, by id.
    pub fn certificates(&self) -> Vec<Certificate> {
        lock(&self.state).certs.clone()
    }

    /// Put certificate `id` into the failed state (status 6), as when the CA refused to
    /// issue it (the list shows "Failed"). `false` when there is no such live
    /// certificate.
    pub fn fail_issuance(&self, id: u64) -> bool {
        let mut st = lock(&self.state);
        match st.certs.iter_mut().find(|c| c.id == id && !c.deleted) {
            Some(c) => {
                c.status = 6;
                true
            }
            None => false,
        }
    }

    /// How many orders were accepted.
    pub fn order_count(&self) -> usize {
        lock(&self.state).orders
    }

    /// How many orders came without `skipbasket=on` and were left in the cart (unpaid, no
    /// certificate, no id in the answer).
    pub fn basket_count(&self) -> usize {
        lock(&self.state).basket
    }

    pub fn balance(&self, login: &str) -> Option<Decimal> {
        lock(&self.state)
            .accounts
            .iter()
            .find(|a| a.login == login)
            .map(|a| a.balance)
    }

    /// The accounts as seeded (and changed since): login, password, balance.
    pub fn accounts(&self) -> Vec<AccountSeed> {
        lock(&self.state).accounts.clone()
    }

    pub fn currency(&self) -> String {
        lock(&self.state).currency.clone()
    }

    /// Fix "today" (create and expiry dates) for deterministic tests; the real UTC date otherwise.
    pub fn set_today(&self, date: Date) {
        lock(&self.state).today = Some(date);
    }

    pub fn knobs(&self) -> &Knobs {
        &self.knobs
    }

    /// Queue a one-shot fault (see [`Knobs::inject`]).
    pub fn inject(&self, fault: Fault, phase: FaultPhase) {
        self.knobs.inject(fault, phase);
    }
}

#[cfg(test)]
mod tests;

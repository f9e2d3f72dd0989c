//! The sandbox's state and one handler per function. Every handler takes parameters and
//! answers a document or a [`BmError`]; [`State::handle`] turns the error into a document.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use time::Date;

use super::catalog::{self, money2, money4};
use super::forms::{
    altnames, check_altname_count, check_approver, contacts, ok, order_csr, order_form,
    period_param, plan_param, require_contact, status_msg, valid_domain, Answer, CONTACT_FIELDS,
};
use super::{csr, dates, AccountSeed, Certificate, SandboxConfig};
use crate::billmgr::{BmError, Element, ErrorType, Params};

/// Sessions expire this long after their last use.
const SESSION_TTL: Duration = Duration::from_secs(3600);
const FIRST_ID: u64 = 5001;

mod certificate;

struct Session {
    login: String,
    ip: IpAddr,
    last_used: Instant,
}

pub(super) struct State {
    pub accounts: Vec<AccountSeed>,
    pub currency: String,
    sessions: HashMap<String, Session>,
    pub certs: Vec<Certificate>,
    /// Indexes into `certs` of the certificates that were given each `remoteid` (on order
    /// or edit), so a list filtered by `remoteid` reads those instead of every
    /// certificate, as a real billing's database would. May name certificates whose
    /// `remoteid` changed since: the list checks each.
    by_remoteid: HashMap<String, Vec<usize>>,
    next_id: u64,
    pub orders: usize,
    /// Orders sent without `skipbasket=on`, left in the cart.
    pub basket: usize,
    pub today: Option<Date>,
    /// The last [`RECEIVED_LIMIT`] calls, oldest first.
    pub received: std::collections::VecDeque<Params>,
}

/// Calls the sandbox remembers ([`crate::sandbox::Sandbox::received`]): the newest, so a
/// sandbox under a benchmark's load does not grow without bound.
pub const RECEIVED_LIMIT: usize = 10_000;

impl State {
    /// Remembers a call received, forgetting the oldest past [`RECEIVED_LIMIT`].
    pub fn remember(&mut self, params: &Params) {
        if self.received.len() == RECEIVED_LIMIT {
            self.received.pop_front();
        }
        self.received.push_back(params.clone());
    }

    pub fn new(config: SandboxConfig) -> State {
        State {
            accounts: config.accounts,
            currency: config.currency,
            sessions: HashMap::new(),
            certs: Vec::new(),
            by_remoteid: HashMap::new(),
            next_id: FIRST_ID,
            orders: 0,
            basket: 0,
            today: None,
            received: std::collections::VecDeque::new(),
        }
    }

    pub fn handle(&mut self, p: &Params, ip: IpAddr, cookie: Option<&str>) -> Element {
        self.dispatch(p, ip, cookie)
            .unwrap_or_else(|e| e.to_doc(p.lang()))
    }

    fn dispatch(&mut self, p: &Params, ip: IpAddr, cookie: Option<&str>) -> Answer {
        if p.contains("su") {
            return Err(BmError::access(
                "su",
                "Acting as another user is not allowed",
            ));
        }
        let func = p.func().ok_or_else(|| BmError::missed("func"))?;
        match func {
            "auth" => return self.login(p, ip),
            "pricelist.export" => return Ok(self.pricelist_export(p)),
            _ => {}
        }
        let login = self.authenticate(p, ip, cookie)?;
        match func {
            "whoami" => self.whoami(&login),
            "certificate" => Ok(self.list(&login, p)),
            "certificate.order.csr" => order_csr(p),
            "certificate.order" | "certificate.order.param" | "v2.certificate.order.param"
                if !p.is_submit() =>
            {
                Ok(order_form(p))
            }
            "certificate.order.param" => self.order(&login, p),
            "v2.certificate.order.param" => {
                // BILLmanager 6's order API names the period `order_period`.
                let mut p = p.clone();
                if let Some(period) = p.get("order_period").map(str::to_string) {
                    p.remove("order_period");
                    p.set("period", period);
                }
                self.order(&login, &p)
            }
            "certificate.reissue" | "certificate.reissue.step1" => self.reissue_form(&login, p),
            "certificate.reissue.step2" => self.reissue(&login, p),
            "certificate.edit" => self.edit(&login, p),
            "certificate.delete" => self.delete(&login, p),
            "certificate.sync" => self.sync(&login, p),
            "certificate.filter" => Ok(if p.is_submit() {
                ok()
            } else {
                Element::doc()
                    .child(Element::leaf("CN", p.get("CN").unwrap_or("")))
                    .child(Element::leaf("status", p.get("status").unwrap_or("")))
            }),
            "certificate.file" => self.files(&login, p),
            "certificate.file.edit" => self.file_edit(&login, p),
            "sslkey.download" => self.key_download(&login, p),
            "sslkey.edit" => self.key_edit(&login, p),
            "sslkey.delete" => self.key_delete(&login, p),
            "service.prolong" => self.prolong(&login, p),
            // Admin-level on BILLmanager 6: a customer account may not call them.
            "certificate.open"
            | "certificate.retry"
            | "certificate.resume"
            | "certificate.setfilter"
            | "certificate.su" => Err(BmError::access(
                "func",
                format!("Insufficient privileges to call '{func}'"),
            )
            .value(func)),
            other => Err(
                BmError::new(ErrorType::Missed, format!("Unknown function '{other}'"))
                    .object("func")
                    .value(other),
            ),
        }
    }

    fn today(&self) -> Date {
        self.today.unwrap_or_else(dates::today_utc)
    }

    // ---------- authentication ----------

    fn check_password(&self, login: &str, password: &str) -> Result<String, BmError> {
        self.accounts
            .iter()
            .find(|a| a.login == login && a.password == password)
            .map(|a| a.login.clone())
            .ok_or_else(|| BmError::auth("Invalid username or password"))
    }

    fn authenticate(
        &mut self,
        p: &Params,
        ip: IpAddr,
        cookie: Option<&str>,
    ) -> Result<String, BmError> {
        if let Some(info) = p.get("authinfo") {
            let (login, password) = info.split_once(':').unwrap_or((info, ""));
            return self.check_password(login, password);
        }
        let sid = p.get_nonempty("auth").or(cookie.filter(|c| !c.is_empty()));
        let Some(sid) = sid else {
            return Err(BmError::auth("Authorization required"));
        };
        match self.sessions.get_mut(sid) {
            Some(s) if s.ip == ip && s.last_used.elapsed() < SESSION_TTL => {
                s.last_used = Instant::now();
                Ok(s.login.clone())
            }
            _ => Err(BmError::auth("The session has expired or is invalid")),
        }
    }

    fn login(&mut self, p: &Params, ip: IpAddr) -> Answer {
        let user = p.get("username").unwrap_or("");
        let password = p.get("password").unwrap_or("");
        let login = self.check_password(user, password)?;
        self.sessions
            .retain(|_, s| s.last_used.elapsed() < SESSION_TTL);
        let sid: String = (0..16)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        self.sessions.insert(
            sid.clone(),
            Session {
                login,
                ip,
                last_used: Instant::now(),
            },
        );
        Ok(Element::doc().child(
            Element::new("auth")
                .attr("id", &sid)
                .attr("level", "16")
                .text(sid),
        ))
    }

    fn account_mut(&mut self, login: &str) -> Result<&mut AccountSeed, BmError> {
        self.accounts
            .iter_mut()
            .find(|a| a.login == login)
            .ok_or_else(|| BmError::auth("Unknown account"))
    }

    /// Take `cost` from the account, or refuse with `balance`.
    fn charge(&mut self, login: &str, cost: Decimal) -> Result<(), BmError> {
        let currency = self.currency.clone();
        let account = self.account_mut(login)?;
        if account.balance < cost {
            return Err(BmError::new(
                ErrorType::Balance,
                format!(
                    "Not enough money on the account: the cost is {} {currency}, the balance is {} {currency}",
                    money2(cost),
                    money2(account.balance)
                ),
            )
            .object("balance"));
        }
        account.balance -= cost;
        Ok(())
    }

    // ---------- read-only functions ----------

    fn whoami(&mut self, login: &str) -> Answer {
        let currency = self.currency.clone();
        let account = self.account_mut(login)?;
        Ok(Element::doc().child(
            Element::new("user")
                .child(Element::leaf("name", login))
                .child(Element::leaf("balance", money2(account.balance)))
                .child(Element::leaf("currency", currency))
                .child(Element::leaf("level", "16")),
        ))
    }

    fn pricelist_export(&self, p: &Params) -> Element {
        let itemtype_ok = p
            .get_nonempty("itemtype")
            .is_none_or(|t| t == "certificate");
        // One plan by `pricelist` or, as public price calculators call it, by `elid`.
        let only = p.get_nonempty("pricelist").or(p.get_nonempty("elid"));
        let mut doc = Element::doc();
        for plan in catalog::PLANS {
            if itemtype_ok && only.is_none_or(|id| id.trim() == plan.id.to_string()) {
                doc.push(plan.export(&self.currency));
            }
        }
        doc
    }

    fn list(&self, login: &str, p: &Params) -> Element {
        let remoteid = p.get_nonempty("remoteid");
        let mut doc = Element::doc();
        let mut n = 0;
        let candidates: Box<dyn Iterator<Item = &Certificate>> = match remoteid {
            Some(r) => Box::new(self.with_remoteid(r)),
            None => Box::new(self.certs.iter()),
        };
        for c in candidates.filter(|c| c.account == login && !c.deleted) {
            if remoteid.is_some_and(|r| c.remoteid.as_deref() != Some(r)) {
                continue;
            }
            n += 1;
            let plan = catalog::plan(c.pricelist);
            doc.push(
                Element::new("elem")
                    .child(Element::leaf("id", c.id.to_string()))
                    .child(Element::leaf("CN", &c.cn))
                    .child(Element::leaf("altname", c.altnames.join(" ")))
                    .child(Element::leaf("account", &c.account))
                    .child(Element::leaf("pricelist", plan.map_or("", |p| p.name)))
                    .child(Element::leaf("pricelist_id", c.pricelist.to_string()))
                    .child(Element::leaf("period", c.period.to_string()))
                    .child(Element::leaf(
                        "remoteid",
                        c.remoteid.clone().unwrap_or_default(),
                    ))
                    .child(Element::leaf("createdate", dates::ymd(c.createdate)))
                    .child(Element::leaf("expiredate", dates::ymd(c.expiredate)))
                    .child(Element::leaf("status_msg", status_msg(c.status)))
                    .child(Element::leaf("item_status", c.status.to_string()))
                    .child(Element::leaf("cost", money4(c.cost))),
            );
        }
        doc.push(Element::leaf("p_num", "1"));
        doc.push(Element::leaf("p_cnt", n.to_string()));
        doc.push(Element::leaf("p_elems", n.to_string()));
        doc
    }

    /// The certificates ever given `remoteid`, in id order (some may have another now).
    fn with_remoteid(&self, remoteid: &str) -> impl Iterator<Item = &Certificate> {
        let mut at = self.by_remoteid.get(remoteid).cloned().unwrap_or_default();
        at.sort_unstable();
        at.dedup();
        at.into_iter().filter_map(|i| self.certs.get(i))
    }

    /// Note that certificate `i` now has `remoteid` (see `by_remoteid`).
    pub(super) fn index_remoteid(&mut self, i: usize) {
        if let Some(r) = self.certs.get(i).and_then(|c| c.remoteid.clone()) {
            self.by_remoteid.entry(r).or_default().push(i);
        }
    }

    /// The index of the account's live certificate `elid`, or `access`/`elid`.
    fn owned(&self, login: &str, elid: &str) -> Result<usize, BmError> {
        let refuse = || {
            BmError::access("elid", "There is no such certificate on your account")
                .value(elid.trim())
        };
        let id: u64 = elid.trim().parse().map_err(|_| refuse())?;
        self.certs
            .iter()
            .position(|c| c.id == id && c.account == login && !c.deleted)
            .ok_or_else(refuse)
    }

    fn owned_param(&self, login: &str, p: &Params) -> Result<usize, BmError> {
        let elid = p
            .get_nonempty("elid")
            .ok_or_else(|| BmError::missed("elid"))?;
        self.owned(login, elid)
    }

    /// The indexes of every id of a toolbar action's `elid` (`5001, 5002`), each the
    /// account's live certificate, without repeats; `missed` when there is none.
    fn owned_list(&self, login: &str, p: &Params) -> Result<Vec<usize>, BmError> {
        let mut idx = Vec::new();
        for value in p.get_all("elid") {
            for id in value.split(',').filter(|s| !s.trim().is_empty()) {
                let i = self.owned(login, id)?;
                if !idx.contains(&i) {
                    idx.push(i);
                }
            }
        }
        if idx.is_empty() {
            return Err(BmError::missed("elid"));
        }
        Ok(idx)
    }

    // ---------- ordering ----------

    fn order(&mut self, login: &str, p: &Params) -> Answer {
        let plan = plan_param(p)?;
        let period = period_param(p, plan)?;
        let mut contacts = contacts(p)?;
        if p.get("like_admin") == Some("on") {
            for f in CONTACT_FIELDS {
                if let Some(v) = contacts.get(&format!("adm_{f}")).cloned() {
                    contacts.insert(format!("tech_{f}"), v);
                }
            }
        } else {
            require_contact(p, "tech", &mut contacts)?;
        }
        let csr = p.get_nonempty("csr");
        let cn = match csr {
            Some(csr) => {
                if !csr::is_csr(csr) {
                    return Err(BmError::invalid("csr", "not a PEM certificate request"));
                }
                csr::common_name(csr).or_else(|| p.get_nonempty("CN").map(str::to_string))
            }
            None => p.get_nonempty("CN").map(str::to_string),
        }
        .ok_or_else(|| BmError::missed("CN"))?;
        let cn = cn.trim().to_ascii_lowercase();
        if !valid_domain(&cn, plan.wildcard) || (plan.wildcard && !cn.starts_with("*.")) {
            return Err(BmError::invalid("CN", cn));
        }
        let altnames = altnames(p, true)?.unwrap_or_default();
        let domainlimit = match plan.addon {
            Some(a) => {
                let key = format!("addon_{}", a.id);
                match p.get(&key).map(str::trim).filter(|v| !v.is_empty()) {
                    None => 0,
                    Some(v) => v
                        .parse::<u32>()
                        .ok()
                        .filter(|n| *n <= 1000)
                        .ok_or_else(|| BmError::invalid(&key, v))?,
                }
            }
            None => 0,
        };
        check_altname_count(&altnames, domainlimit)?;
        let approver = p
            .get_nonempty("approver_email_1")
            .ok_or_else(|| BmError::missed("approver_email_1"))?;
        check_approver(&cn, approver, "approver_email_1")?;
        let cost = plan
            .cost(period, domainlimit)
            .ok_or_else(|| BmError::invalid("period", period.to_string()))?;
        if p.get("skipbasket") != Some("on") {
            // Like a real billing: the order waits unpaid in the account's cart; nothing
            // is charged or created, and there is no id to answer.
            self.basket += 1;
            return Ok(ok());
        }
        self.charge(login, cost)?;

        let id = self.next_id;
        self.next_id += 1;
        self.orders += 1;
        let today = self.today();
        self.certs.push(Certificate {
            id,
            account: login.to_string(),
            pricelist: plan.id,
            period,
            cn,
            altnames,
            domainlimit,
            remoteid: p.get_nonempty("remoteid").map(str::to_string),
            status: 3,
            createdate: today,
            expiredate: dates::add_months(today, period),
            approver_email: approver.trim().to_ascii_lowercase(),
            cost,
            csr: csr.map(str::to_string),
            contacts,
            key_deleted: false,
            deleted: false,
        });
        self.index_remoteid(self.certs.len() - 1);
        Ok(Element::doc()
            .child(Element::new("ok"))
            .child(Element::leaf("id", id.to_string())))
    }

    // ---------- reissue, edit, delete, prolong ----------
}

//! The sandbox's state and one handler per function. Every handler takes parameters and
//! answers a document or a [`BmError`]; [`State::handle`] turns the error into a document.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use time::Date;

use super::catalog::{self, money2, money4, Plan};
use super::{csr, dates, AccountSeed, Certificate, SandboxConfig};
use crate::billmgr::{BmError, Element, ErrorType, Params};

/// Sessions expire this long after their last use.
const SESSION_TTL: Duration = Duration::from_secs(3600);
/// Mailboxes a CA accepts for domain-control validation.
const APPROVER_MAILBOXES: [&str; 5] = [
    "admin",
    "administrator",
    "hostmaster",
    "postmaster",
    "webmaster",
];
const CONTACT_FIELDS: [&str; 4] = ["fname", "lname", "email", "phone"];
const FIRST_ID: u64 = 5001;

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
    next_id: u64,
    pub orders: usize,
    /// Orders sent without `skipbasket=on`, left in the cart.
    pub basket: usize,
    pub today: Option<Date>,
    pub received: Vec<Params>,
}

type Answer = Result<Element, BmError>;

impl State {
    pub fn new(config: SandboxConfig) -> State {
        State {
            accounts: config.accounts,
            currency: config.currency,
            sessions: HashMap::new(),
            certs: Vec::new(),
            next_id: FIRST_ID,
            orders: 0,
            basket: 0,
            today: None,
            received: Vec::new(),
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
        for c in self
            .certs
            .iter()
            .filter(|c| c.account == login && !c.deleted)
        {
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
        Ok(Element::doc()
            .child(Element::new("ok"))
            .child(Element::leaf("id", id.to_string())))
    }

    // ---------- reissue, edit, delete, prolong ----------

    fn reissue_form(&self, login: &str, p: &Params) -> Answer {
        let c = &self.certs[self.owned_param(login, p)?];
        Ok(Element::doc()
            .child(Element::leaf("elid", c.id.to_string()))
            .child(Element::leaf("CN", &c.cn))
            .child(Element::leaf("altname", c.altnames.join(" ")))
            .child(Element::leaf("approver_email_1", &c.approver_email))
            .child(slist(
                "crt_type",
                &[
                    ("oldrequest", "Use the old request"),
                    ("manual", "Enter a new CSR"),
                    ("altname", "Change the domain list"),
                ],
            ))
            .child(slist("approver_method", &[("auth_email", "E-mail")])))
    }

    fn reissue(&mut self, login: &str, p: &Params) -> Answer {
        let i = self.owned_param(login, p)?;
        let crt_type = p
            .get_nonempty("crt_type")
            .ok_or_else(|| BmError::missed("crt_type"))?;
        let (mut new_csr, mut new_alt) = (None, None);
        match crt_type {
            "oldrequest" => {}
            "manual" => {
                let csr = p
                    .get_nonempty("csr")
                    .ok_or_else(|| BmError::missed("csr"))?;
                if !csr::is_csr(csr) {
                    return Err(BmError::invalid("csr", "not a PEM certificate request"));
                }
                new_csr = Some(csr.to_string());
            }
            "altname" => {
                let alt = altnames(p, true)?.ok_or_else(|| BmError::missed("altname"))?;
                check_altname_count(&alt, self.certs[i].domainlimit)?;
                new_alt = Some(alt);
            }
            other => return Err(BmError::invalid("crt_type", other)),
        }
        let approver = p.get_nonempty("approver_email_1");
        if let Some(a) = approver {
            check_approver(&self.certs[i].cn, a, "approver_email_1")?;
        }
        let c = &mut self.certs[i];
        if let Some(csr) = new_csr {
            c.csr = Some(csr);
        }
        if let Some(alt) = new_alt {
            c.altnames = alt;
        }
        if let Some(a) = approver {
            c.approver_email = a.trim().to_ascii_lowercase();
        }
        c.status = 3;
        Ok(ok())
    }

    fn edit(&mut self, login: &str, p: &Params) -> Answer {
        let i = self.owned_param(login, p)?;
        if !p.is_submit() {
            let c = &self.certs[i];
            let mut doc = Element::doc()
                .child(Element::leaf("elid", c.id.to_string()))
                .child(Element::leaf("CN", &c.cn))
                .child(Element::leaf("altname", c.altnames.join(" ")))
                .child(Element::leaf("pricelist", c.pricelist.to_string()))
                .child(Element::leaf("period", c.period.to_string()))
                .child(Element::leaf("approver_email", &c.approver_email))
                .child(Element::leaf("approver_method", "auth_email"))
                .child(Element::leaf(
                    "remoteid",
                    c.remoteid.clone().unwrap_or_default(),
                ))
                .child(Element::leaf("createdate", dates::ymd(c.createdate)))
                .child(Element::leaf("expiredate", dates::ymd(c.expiredate)))
                .child(Element::leaf("status", c.status.to_string()));
            for (k, v) in &c.contacts {
                doc.push(Element::leaf(k.as_str(), v.as_str()));
            }
            return Ok(doc);
        }
        let approver = p.get_nonempty("approver_email");
        if let Some(a) = approver {
            check_approver(&self.certs[i].cn, a, "approver_email")?;
        }
        let mut updates = Vec::new();
        for (k, v) in p.iter() {
            if k.starts_with("adm_") || k.starts_with("tech_") || k.starts_with("org_") {
                if k.ends_with("_email") && !v.is_empty() && !valid_email(v) {
                    return Err(BmError::invalid(k, v));
                }
                updates.push((k.to_string(), v.to_string()));
            }
        }
        let c = &mut self.certs[i];
        if let Some(a) = approver {
            c.approver_email = a.trim().to_ascii_lowercase();
        }
        c.contacts.extend(updates);
        if let Some(r) = p.get("remoteid") {
            c.remoteid = Some(r.to_string()).filter(|r| !r.is_empty());
        }
        Ok(ok())
    }

    fn delete(&mut self, login: &str, p: &Params) -> Answer {
        for i in self.owned_list(login, p)? {
            self.certs[i].deleted = true;
        }
        Ok(ok())
    }

    /// `certificate.sync` (toolbar): refresh the status from the CA. The sandbox's CA has
    /// nothing new to say; every id must be the account's.
    fn sync(&mut self, login: &str, p: &Params) -> Answer {
        self.owned_list(login, p)?;
        Ok(ok())
    }

    /// `certificate.file&elid=ID`: the files of a certificate, as a list.
    fn files(&self, login: &str, p: &Params) -> Answer {
        let c = &self.certs[self.owned_param(login, p)?];
        let mut doc = Element::doc();
        for (id, name) in [("crt", "certificate.crt"), ("ca", "ca-bundle.crt")] {
            doc.push(
                Element::new("elem")
                    .child(Element::leaf("id", id))
                    .child(Element::leaf("name", format!("{}-{name}", c.cn))),
            );
        }
        Ok(doc)
    }

    /// `certificate.file.edit&elid=ID[&file=crt|ca]`: a file's content; with `sok`, ok.
    fn file_edit(&self, login: &str, p: &Params) -> Answer {
        let c = &self.certs[self.owned_param(login, p)?];
        if p.is_submit() {
            return Ok(ok());
        }
        let file = p.get_nonempty("file").unwrap_or("crt");
        Ok(Element::doc()
            .child(Element::leaf("elid", c.id.to_string()))
            .child(Element::leaf("file", file))
            .child(Element::leaf("content", fake_pem("CERTIFICATE", c.id))))
    }

    /// `sslkey.download&elid=ID`: the certificate's private key.
    fn key_download(&self, login: &str, p: &Params) -> Answer {
        let c = &self.certs[self.owned_param(login, p)?];
        if c.key_deleted {
            return Err(BmError::missed("sslkey").value(c.id.to_string()));
        }
        Ok(Element::doc().child(Element::leaf("sslkey", fake_pem("PRIVATE KEY", c.id))))
    }

    /// `sslkey.edit&elid=ID`: the key's form; with `sok`, ok.
    fn key_edit(&self, login: &str, p: &Params) -> Answer {
        let c = &self.certs[self.owned_param(login, p)?];
        if p.is_submit() {
            return Ok(ok());
        }
        Ok(Element::doc()
            .child(Element::leaf("elid", c.id.to_string()))
            .child(Element::leaf("key_stored", on_off(!c.key_deleted))))
    }

    /// `sslkey.delete&elid=ID[, ID]` (toolbar): forget the stored keys.
    fn key_delete(&mut self, login: &str, p: &Params) -> Answer {
        for i in self.owned_list(login, p)? {
            self.certs[i].key_deleted = true;
        }
        Ok(ok())
    }

    fn prolong(&mut self, login: &str, p: &Params) -> Answer {
        let i = self.owned_param(login, p)?;
        let (pricelist, domainlimit, expiredate) = {
            let c = &self.certs[i];
            (c.pricelist, c.domainlimit, c.expiredate)
        };
        let plan = catalog::plan(pricelist)
            .ok_or_else(|| BmError::invalid("pricelist", pricelist.to_string()))?;
        if !p.is_submit() {
            let mut periods = Element::new("slist").attr("name", "period");
            for (months, _) in plan.periods {
                let cost = plan.cost(*months, domainlimit).unwrap_or_default();
                periods.push(
                    Element::new("val")
                        .attr("key", months.to_string())
                        .attr("cost", money4(cost))
                        .text(format!(
                            "{months} months - {} {}",
                            money4(cost),
                            self.currency
                        )),
                );
            }
            return Ok(Element::doc()
                .child(Element::leaf("elid", self.certs[i].id.to_string()))
                .child(Element::leaf("expiredate", dates::ymd(expiredate)))
                .child(Element::leaf("currency", &self.currency))
                .child(periods));
        }
        let period = period_param(p, plan)?;
        let cost = plan
            .cost(period, domainlimit)
            .ok_or_else(|| BmError::invalid("period", period.to_string()))?;
        self.charge(login, cost)?;
        let c = &mut self.certs[i];
        c.expiredate = dates::add_months(expiredate, period);
        // As ISPsystem's own client reads it: `/doc/doc/newexpiredate`.
        Ok(ok()
            .child(Element::doc().child(Element::leaf("newexpiredate", dates::ymd(c.expiredate)))))
    }
}

// ---------- stateless helpers ----------

/// A PEM-shaped stand-in for a certificate's `label` object.
fn fake_pem(label: &str, id: u64) -> String {
    format!("-----BEGIN {label}-----\nc2FuZGJveC0{id}\n-----END {label}-----\n")
}

fn ok() -> Element {
    Element::doc().child(Element::new("ok"))
}

/// A BILLmanager flag value.
fn on_off(flag: bool) -> &'static str {
    if flag {
        "on"
    } else {
        "off"
    }
}

fn status_msg(status: u8) -> &'static str {
    match status {
        3 => "Requested",
        4 => "Enrolled",
        5 => "Issued",
        6 => "Failed",
        _ => "Unknown",
    }
}

fn slist(name: &str, vals: &[(&str, &str)]) -> Element {
    let mut e = Element::new("slist").attr("name", name);
    for (k, v) in vals {
        e.push(Element::new("val").attr("key", *k).text(*v));
    }
    e
}

fn order_csr(p: &Params) -> Answer {
    if !p.is_submit() {
        return Ok(Element::doc()
            .child(Element::leaf("crt_type", "generate"))
            .child(slist(
                "crt_type",
                &[("generate", "Generate a CSR"), ("manual", "Enter a CSR")],
            )));
    }
    let cn = p
        .get_nonempty("CN")
        .ok_or_else(|| BmError::missed("CN"))?
        .trim()
        .to_ascii_lowercase();
    if !valid_domain(&cn, true) {
        return Err(BmError::invalid("CN", cn));
    }
    Ok(Element::doc()
        .child(
            Element::new("model")
                .child(Element::leaf("csr", csr::fake_csr(&cn)))
                .child(Element::leaf("key", csr::fake_key())),
        )
        .child(Element::new("ok")))
}

fn order_form(p: &Params) -> Element {
    let plan = p
        .get_nonempty("pricelist")
        .and_then(|v| v.trim().parse().ok())
        .and_then(catalog::plan);
    let mut pricelists = Element::new("slist").attr("name", "pricelist");
    for pl in catalog::PLANS {
        pricelists.push(
            Element::new("val")
                .attr("key", pl.id.to_string())
                .text(pl.name),
        );
    }
    let mut periods = Element::new("slist").attr("name", "period");
    for pl in catalog::PLANS
        .iter()
        .filter(|pl| plan.is_none_or(|x| x.id == pl.id))
    {
        for (months, cents) in pl.periods {
            periods.push(
                Element::new("val")
                    .attr("key", months.to_string())
                    .attr("pricelist", pl.id.to_string())
                    .attr("cost", money4(Decimal::new(*cents, 2)))
                    .text(format!("{months} months")),
            );
        }
    }
    let mut doc = Element::doc();
    if let Some(pl) = plan {
        doc.push(Element::leaf("pricelist", pl.id.to_string()));
        doc.push(Element::leaf("period", pl.periods[0].0.to_string()));
        if let Some(a) = pl.addon {
            doc.push(Element::leaf(format!("addon_{}", a.id), "0"));
        }
    }
    doc.child(pricelists).child(periods)
}

fn plan_param(p: &Params) -> Result<&'static Plan, BmError> {
    let v = p
        .get_nonempty("pricelist")
        .ok_or_else(|| BmError::missed("pricelist"))?;
    v.trim()
        .parse()
        .ok()
        .and_then(catalog::plan)
        .ok_or_else(|| BmError::invalid("pricelist", v))
}

fn period_param(p: &Params, plan: &Plan) -> Result<u32, BmError> {
    let v = p
        .get_nonempty("period")
        .ok_or_else(|| BmError::missed("period"))?;
    v.trim()
        .parse::<u32>()
        .ok()
        .filter(|m| plan.price(*m).is_some())
        .ok_or_else(|| BmError::invalid("period", v))
}

/// `adm_*` (required) and `org_*`/`adm_jtitle` (optional) contacts.
fn contacts(p: &Params) -> Result<BTreeMap<String, String>, BmError> {
    let mut out = BTreeMap::new();
    require_contact(p, "adm", &mut out)?;
    for (k, v) in p.iter() {
        if (k.starts_with("org_") || k.ends_with("_jtitle")) && !v.is_empty() {
            out.insert(k.to_string(), v.to_string());
        }
    }
    Ok(out)
}

fn require_contact(
    p: &Params,
    prefix: &str,
    out: &mut BTreeMap<String, String>,
) -> Result<(), BmError> {
    for f in CONTACT_FIELDS {
        let key = format!("{prefix}_{f}");
        let v = p
            .get_nonempty(&key)
            .ok_or_else(|| BmError::missed(&key))?
            .trim();
        if f == "email" && !valid_email(v) {
            return Err(BmError::invalid(&key, v));
        }
        out.insert(key, v.to_string());
    }
    Ok(())
}

/// `altname` and `altname_input` (space separated; equal when both are given), validated.
/// `None` when neither is present.
fn altnames(p: &Params, allow_wildcard: bool) -> Result<Option<Vec<String>>, BmError> {
    let split = |s: &str| {
        s.split_whitespace()
            .map(str::to_ascii_lowercase)
            .collect::<Vec<_>>()
    };
    let alt = p.get("altname").map(split);
    let input = p.get("altname_input").map(split);
    let list = match (alt, input) {
        (Some(a), Some(b)) if a != b => {
            return Err(
                BmError::new(ErrorType::Value, "'altname' and 'altname_input' differ")
                    .object("altname")
                    .value(a.join(" ")),
            )
        }
        (Some(a), _) => a,
        (None, Some(b)) => b,
        (None, None) => return Ok(None),
    };
    if let Some(bad) = list.iter().find(|d| !valid_domain(d, allow_wildcard)) {
        return Err(BmError::invalid("altname", bad.as_str()));
    }
    Ok(Some(list))
}

fn check_altname_count(altnames: &[String], limit: u32) -> Result<(), BmError> {
    if altnames.len() > limit as usize {
        return Err(BmError::new(
            ErrorType::Value,
            format!(
                "{} additional domains requested, the domainlimit add-on allows {limit}",
                altnames.len()
            ),
        )
        .object("altname")
        .value(altnames.join(" ")));
    }
    Ok(())
}

fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !local.contains(char::is_whitespace)
        && !domain.contains('@')
        && valid_domain(&domain.to_ascii_lowercase(), false)
}

/// A host name with at least two labels; `*.` in front only when `allow_wildcard`.
fn valid_domain(s: &str, allow_wildcard: bool) -> bool {
    let s = match s.strip_prefix("*.") {
        Some(rest) if allow_wildcard => rest,
        Some(_) => return false,
        None => s,
    };
    let labels: Vec<&str> = s.split('.').collect();
    s.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

/// The approver must be admin@, administrator@, hostmaster@, postmaster@ or webmaster@ the
/// CN's domain or one of its parent domains (of at least two labels).
fn check_approver(cn: &str, email: &str, object: &str) -> Result<(), BmError> {
    let email_lc = email.trim().to_ascii_lowercase();
    let base = cn.trim_start_matches("*.");
    let ok = email_lc.split_once('@').is_some_and(|(local, domain)| {
        APPROVER_MAILBOXES.contains(&local)
            && domain.contains('.')
            && (base == domain || base.ends_with(&format!(".{domain}")))
    });
    if ok {
        Ok(())
    } else {
        Err(BmError::new(
            ErrorType::Value,
            format!("The approver e-mail must be admin@, administrator@, hostmaster@, postmaster@ or webmaster@ {base} or a parent domain"),
        )
        .object(object)
        .value(email))
    }
}

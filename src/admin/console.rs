//! The web console at `/console/` on the admin listener: server-rendered HTML, no
//! script, no external asset (it works offline), a strict Content-Security-Policy.
//!
//! - Log in with an admin token (a form); the console then keeps an HttpOnly,
//!   SameSite=Strict session cookie (`rg_console`, path `/console`), ending
//!   `[admin] console_session_ttl_s` after its last use; at most
//!   `[admin] max_console_sessions` at once (the least recently used ends).
//! - Every change is a POST form carrying the session's CSRF token; a read token's
//!   session sees everything and changes nothing.
//! - Edits carry the record's ETag: a plan or reseller changed by someone else since the
//!   page was opened is refused with a message, never overwritten.
//! - Every change goes through [`crate::store::Store::edit`] (audited, `via = console`,
//!   under the token's name); the page answers with what changed or what is wrong.
//!
//! Pages: plans and resellers (`/console/`), a plan or reseller with the reseller's
//! price preview beside the form, services, orders (with a reconcile button), the ledger
//! per month (CSV download) and the audit log.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{Response, StatusCode};
use pingora::protocols::http::ServerSession;
use rand::RngCore;
use serde_json::{json, Value};

use super::api::{self, ApiError};
use super::AdminApp;
use crate::billmgr::{Element, Format};
use crate::config::AdminRole;
use crate::store::{Actor, Edit, RecordKind, Via};

/// The cookie holding a console session id.
pub const COOKIE: &str = "rg_console";

/// Every console answer's policy: only this listener's own stylesheet, forms posting
/// back to it, no script, no frames.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = include_str!("console.css");

/// Largest console form accepted.
const MAX_FORM: usize = 64 * 1024;

struct Session {
    token: String,
    role: AdminRole,
    csrf: String,
    last: Instant,
}

/// The console's sessions, bounded in number and lifetime.
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    ttl: Duration,
    max: usize,
}

/// A live session as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    pub token: String,
    pub role: AdminRole,
    pub csrf: String,
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Sessions {
    pub fn new(ttl: Duration, max: usize) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            ttl,
            max: max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session for `token`; answers its id. Expired sessions go first, then, at
    /// the bound, the least recently used.
    pub fn create(&self, token: &str, role: AdminRole, now: Instant) -> String {
        let mut map = self.lock();
        map.retain(|_, s| now.saturating_duration_since(s.last) < self.ttl);
        while map.len() >= self.max {
            let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            map.remove(&oldest);
        }
        let id = random_hex();
        map.insert(
            id.clone(),
            Session {
                token: token.to_string(),
                role,
                csrf: random_hex(),
                last: now,
            },
        );
        id
    }

    /// The live session `id`, its expiry slid to `now`.
    pub fn get(&self, id: &str, now: Instant) -> Option<Live> {
        let mut map = self.lock();
        let s = map.get_mut(id)?;
        if now.saturating_duration_since(s.last) >= self.ttl {
            map.remove(id);
            return None;
        }
        s.last = now;
        Some(Live {
            token: s.token.clone(),
            role: s.role,
            csrf: s.csrf.clone(),
        })
    }

    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Text for HTML (element content and quoted attribute values).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn page(
    status: StatusCode,
    title: &str,
    live: Option<&Live>,
    message: &Message,
    body: &str,
) -> Response<Vec<u8>> {
    let nav = match live {
        Some(l) => format!(
            r#"<nav><a href="/console/">Plans &amp; resellers</a> <a href="/console/services">Services</a> <a href="/console/orders">Orders</a> <a href="/console/ledger">Ledger</a> <a href="/console/audit">Audit log</a>
<form method="post" action="/console/logout" class="inline"><input type="hidden" name="csrf" value="{}"><button id="logout">Log out</button></form>
<span class="who">token <b id="token-name">{}</b> ({})</span></nav>"#,
            esc(&l.csrf),
            esc(&l.token),
            l.role.as_str()
        ),
        None => String::new(),
    };
    let msg = match message {
        Message::None => String::new(),
        Message::Ok(m) => format!(r#"<p id="message" class="ok" role="status">{}</p>"#, esc(m)),
        Message::Error(m) => format!(
            r#"<p id="message" class="error" role="alert">{}</p>"#,
            esc(m)
        ),
    };
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{} · resellgate</title><link rel="stylesheet" href="/console/style.css"></head>
<body><header><h1>resellgate console</h1>{nav}</header>
<main>{msg}<h2>{}</h2>
{body}</main></body></html>
"#,
        esc(title),
        esc(title)
    );
    let mut r = super::reply(status, "text/html; charset=UTF-8", html);
    secure(&mut r);
    r
}

fn secure(r: &mut Response<Vec<u8>>) {
    let h = r.headers_mut();
    for (k, v) in [
        ("content-security-policy", CSP),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
    ] {
        h.insert(k, http::HeaderValue::from_static(v));
    }
}

fn redirect(to: &'static str, cookie: Option<String>) -> Response<Vec<u8>> {
    let mut r = super::reply(StatusCode::SEE_OTHER, "text/plain; charset=UTF-8", "");
    r.headers_mut()
        .insert(http::header::LOCATION, http::HeaderValue::from_static(to));
    if let Some(c) = cookie.and_then(|c| http::HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(http::header::SET_COOKIE, c);
    }
    secure(&mut r);
    r
}

/// What the page tells the person.
pub enum Message {
    None,
    Ok(String),
    Error(String),
}

fn cookie_sid(s: &ServerSession) -> Option<String> {
    for v in s.req_header().headers.get_all(http::header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(';') {
            if let Some(id) = part.trim().strip_prefix("rg_console=") {
                return Some(id.to_string());
            }
        }
    }
    None
}

type Form = Vec<(String, String)>;

fn field<'a>(form: &'a Form, name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

fn query_of(uri: &http::Uri) -> Form {
    uri.query()
        .and_then(|q| serde_urlencoded::from_str::<Form>(q).ok())
        .unwrap_or_default()
}

/// Constant-time comparison of two CSRF tokens.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn markup_text(m: &Option<crate::store::Markup>) -> String {
    match m {
        None => "—".to_string(),
        Some(m) => format!("{} % + {} (round {})", m.percent, m.fixed, m.round_to),
    }
}

/// The markup form fields as the API's JSON (`null` when all three are empty).
fn markup_json(form: &Form) -> Value {
    let parts: Vec<(&str, &str)> = ["percent", "fixed", "round_to"]
        .iter()
        .map(|k| (*k, field(form, &format!("markup_{k}")).trim()))
        .collect();
    if parts.iter().all(|(_, v)| v.is_empty()) {
        return Value::Null;
    }
    let mut m = serde_json::Map::new();
    for (k, v) in parts {
        if !v.is_empty() {
            m.insert(k.to_string(), Value::String(v.to_string()));
        }
    }
    Value::Object(m)
}

/// `101, 102` → ids; anything else names the field.
fn id_list(field_name: &str, text: &str) -> Result<Vec<u64>, ApiError> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u64>().map_err(|_| ApiError {
                status: StatusCode::BAD_REQUEST,
                error: "not a list of plan ids such as 101, 102".into(),
                field: Some(field_name.into()),
                value: Some(t.to_string()),
            })
        })
        .collect()
}

/// `201=3034, 202=3035` → add-ons.
fn addon_list(text: &str) -> Result<Vec<Value>, ApiError> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            let bad = || ApiError {
                status: StatusCode::BAD_REQUEST,
                error: "not a list of add-ons such as 201=3034 (local id = upstream id)".into(),
                field: Some("addons".into()),
                value: Some(t.to_string()),
            };
            let (a, b) = t.split_once('=').ok_or_else(bad)?;
            let id: u64 = a.trim().parse().map_err(|_| bad())?;
            let up: u64 = b.trim().parse().map_err(|_| bad())?;
            Ok(json!({"id": id, "upstream_id": up}))
        })
        .collect()
}

fn error_text(e: &ApiError) -> String {
    let mut t = e.error.clone();
    if let Some(f) = &e.field {
        let _ = write!(t, " (field {f}");
        if let Some(v) = &e.value {
            let _ = write!(t, ", value '{v}'");
        }
        t.push(')');
    }
    match e.status {
        StatusCode::PRECONDITION_FAILED => format!(
            "Not saved: someone changed this record since you opened it. Its current state is shown; make your change again. ({t})"
        ),
        _ => format!("Not saved: {t}"),
    }
}

/// One plan of a price list document as the reseller sees it.
struct PricedPlan {
    id: String,
    name: String,
    periods: Vec<(String, String)>,
    addons: Vec<(String, String)>,
}

fn priced_plans(doc: &Element) -> Vec<PricedPlan> {
    let periods = |e: &Element| -> Vec<(String, String)> {
        e.find("price")
            .map(|p| {
                p.find_all("period")
                    .map(|x| {
                        (
                            x.text.clone().unwrap_or_default(),
                            x.get_attr("cost").unwrap_or("?").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    doc.find_all("pricelist")
        .map(|p| PricedPlan {
            id: p.child_text("id").unwrap_or("?").to_string(),
            name: p.child_text("name").unwrap_or("").to_string(),
            periods: periods(p),
            addons: p
                .find_all("addon")
                .map(|a| {
                    let cost = periods(a)
                        .into_iter()
                        .map(|(_, c)| c)
                        .collect::<Vec<_>>()
                        .join(" / ");
                    (a.child_text("id").unwrap_or("?").to_string(), cost)
                })
                .collect(),
        })
        .collect()
}

impl AdminApp {
    /// Everything under `/console`.
    pub(crate) async fn console(&self, s: &mut ServerSession) -> Response<Vec<u8>> {
        let method = s.req_header().method.as_str().to_string();
        let uri = s.req_header().uri.clone();
        let path = uri.path().to_string();
        let now = Instant::now();
        if path == "/console" {
            return redirect("/console/", None);
        }
        if path == "/console/style.css" {
            let mut r = super::reply(StatusCode::OK, "text/css; charset=UTF-8", STYLE);
            secure(&mut r);
            return r;
        }
        let form: Form = if method == "POST" {
            match api::read_body(s).await {
                Ok(b) if b.len() <= MAX_FORM => {
                    serde_urlencoded::from_bytes(&b).unwrap_or_default()
                }
                _ => {
                    return page(
                        StatusCode::BAD_REQUEST,
                        "Bad request",
                        None,
                        &Message::Error("The form could not be read.".into()),
                        "",
                    )
                }
            }
        } else {
            Vec::new()
        };
        let sid = cookie_sid(s);
        let live = sid.as_deref().and_then(|id| self.sessions.get(id, now));
        if method == "POST" && path == "/console/login" {
            return self.log_in(&form, now);
        }
        let Some(live) = live else {
            if method == "GET" && path == "/console/" {
                return login_page(StatusCode::OK, &Message::None);
            }
            return redirect("/console/", None);
        };
        if method == "POST" {
            if !same(field(&form, "csrf"), &live.csrf) {
                return page(
                    StatusCode::FORBIDDEN,
                    "Refused",
                    Some(&live),
                    &Message::Error(
                        "The form's security token is missing or stale: reload the page and try again."
                            .into(),
                    ),
                    "",
                );
            }
            if path == "/console/logout" {
                if let Some(id) = &sid {
                    self.sessions.remove(id);
                }
                return redirect(
                    "/console/",
                    Some(format!(
                        "{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0"
                    )),
                );
            }
            if live.role != AdminRole::Write {
                return page(
                    StatusCode::FORBIDDEN,
                    "Refused",
                    Some(&live),
                    &Message::Error(format!(
                        "Token '{}' has role read: it cannot change anything.",
                        live.token
                    )),
                    "",
                );
            }
        }
        let actor = Actor::new(live.token.clone(), Via::Console);
        let q = query_of(&uri);
        let rest = path.strip_prefix("/console/").unwrap_or("");
        let segs: Vec<String> = rest
            .split('/')
            .map(|x| {
                percent_encoding::percent_decode_str(x)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        match (
            method.as_str(),
            segs.iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice(),
        ) {
            ("GET", [""]) => self.home(&live, Message::None),
            ("GET", ["plans", id]) => self.plan_page(&live, id, Message::None, None).await,
            ("POST", ["plans", id]) => self.save_plan(&live, &actor, id, &form).await,
            ("GET", ["resellers", login]) => {
                self.reseller_page(&live, login, Message::None, None).await
            }
            ("POST", ["resellers", login]) => self.save_reseller(&live, &actor, login, &form).await,
            ("GET", ["services"]) => self.services_page(&live, field(&q, "reseller")).await,
            ("GET", ["orders"]) => self.orders_page(&live, Message::None).await,
            ("POST", ["orders", "reconcile"]) => self.reconcile_now(&live).await,
            ("GET", ["ledger"]) => {
                self.ledger_page(&live, field(&q, "reseller"), field(&q, "month"))
                    .await
            }
            ("GET", ["ledger.csv"]) => {
                self.ledger_csv(field(&q, "reseller"), field(&q, "month"))
                    .await
            }
            ("GET", ["audit"]) => {
                self.audit_page(&live, field(&q, "kind"), field(&q, "key"))
                    .await
            }
            _ => page(
                StatusCode::NOT_FOUND,
                "Not found",
                Some(&live),
                &Message::Error("There is no such page.".into()),
                "",
            ),
        }
    }

    fn log_in(&self, form: &Form, now: Instant) -> Response<Vec<u8>> {
        let given = field(form, "token").trim();
        let header = format!("Bearer {given}");
        match self.token_of(Some(&header)) {
            Some(t) if !given.is_empty() => {
                let id = self.sessions.create(&t.name, t.role, now);
                tracing::info!(token = %t.name, "console log-in");
                redirect(
                    "/console/",
                    Some(format!(
                        "{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}",
                        self.sessions.ttl.as_secs()
                    )),
                )
            }
            _ => {
                tracing::info!("console log-in refused");
                login_page(
                    StatusCode::UNAUTHORIZED,
                    &Message::Error("That is not an admin token of this gateway.".into()),
                )
            }
        }
    }

    fn home(&self, live: &Live, message: Message) -> Response<Vec<u8>> {
        let store = self.gateway.store();
        let mut b = String::from(
            r#"<section><h3>Plans</h3><table id="plans"><tr><th>id</th><th>name</th><th>upstream id</th><th>markup</th><th>add-ons</th></tr>"#,
        );
        for p in store.plans() {
            let addons: Vec<String> = p
                .addons
                .iter()
                .map(|a| format!("{}={}", a.id, a.upstream_id))
                .collect();
            let _ = write!(
                b,
                r#"<tr><td><a id="plan-{id}" href="/console/plans/{id}">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                esc(p.name.as_deref().unwrap_or("")),
                p.upstream_id,
                esc(&markup_text(&p.markup)),
                esc(&addons.join(", ")),
                id = p.id
            );
        }
        b.push_str(r#"</table></section><section><h3>Resellers</h3><table id="resellers"><tr><th>login</th><th>upstream account</th><th>plans</th><th>own markup</th></tr>"#);
        for r in store.resellers() {
            let plans: Vec<String> = r.plans.iter().map(u64::to_string).collect();
            let _ = write!(
                b,
                r#"<tr><td><a id="reseller-{}" href="/console/resellers/{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                esc(&r.login),
                enc(&r.login),
                esc(&r.login),
                esc(&r.upstream_account),
                plans.join(", "),
                esc(&markup_text(&r.markup))
            );
        }
        b.push_str("</table></section>");
        page(
            StatusCode::OK,
            "Plans and resellers",
            Some(live),
            &message,
            &b,
        )
    }

    /// The price list `login` would import, as a table, or why it cannot be shown.
    async fn preview_html(&self, login: &str, only_plan: Option<&str>) -> String {
        let body = match self.gateway.preview_pricelist(login, Format::Xml).await {
            Ok(b) => b,
            Err(r) => {
                return format!(
                    r#"<p class="error">The price list of {} could not be read: {}</p>"#,
                    esc(login),
                    esc(&r.error().msg)
                )
            }
        };
        let doc = match crate::billmgr::parse(&body, Format::Xml) {
            Ok(d) => d,
            Err(_) => return r#"<p class="error">The price list could not be read.</p>"#.into(),
        };
        if let Some(e) = crate::billmgr::BmError::from_doc(&doc) {
            return format!(
                r#"<p class="error">The upstream refused: {}</p>"#,
                esc(&e.msg)
            );
        }
        let mut t = String::from(
            r#"<table class="preview"><tr><th>plan</th><th>name</th><th>prices</th><th>add-ons</th></tr>"#,
        );
        let mut rows = 0;
        for p in priced_plans(&doc) {
            if only_plan.is_some_and(|id| id != p.id) {
                continue;
            }
            rows += 1;
            let prices: Vec<String> = p
                .periods
                .iter()
                .map(|(label, cost)| {
                    format!(
                        r#"<span class="price">{}: <b>{}</b></span>"#,
                        esc(label),
                        esc(cost)
                    )
                })
                .collect();
            let addons: Vec<String> = p
                .addons
                .iter()
                .map(|(id, cost)| format!("{}: {}", esc(id), esc(cost)))
                .collect();
            let _ = write!(
                t,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&p.id),
                esc(&p.name),
                prices.join(" "),
                addons.join(", ")
            );
        }
        if rows == 0 {
            return "<p>No plan of this reseller is in its price list.</p>".into();
        }
        t.push_str("</table>");
        t
    }

    async fn plan_page(
        &self,
        live: &Live,
        id: &str,
        message: Message,
        form: Option<&Form>,
    ) -> Response<Vec<u8>> {
        let store = self.gateway.store();
        let Some(plan) = id.parse().ok().and_then(|i| store.plan(i)) else {
            return page(
                StatusCode::NOT_FOUND,
                "No such plan",
                Some(live),
                &Message::Error(format!("There is no plan {id}.")),
                "",
            );
        };
        let etag = store.etag(RecordKind::Plan, id).unwrap_or_default();
        let m = plan.markup.unwrap_or_default();
        let has = plan.markup.is_some();
        let addons: Vec<String> = plan
            .addons
            .iter()
            .map(|a| format!("{}={}", a.id, a.upstream_id))
            .collect();
        // After a refused save, the person's own input stays in the form.
        let val = |name: &str, current: String| -> String {
            esc(&form.map_or(current, |f| field(f, name).to_string()))
        };
        let mut b = format!(
            r#"<div class="edit"><form method="post" action="/console/plans/{id}" class="record">
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="etag" value="{etag}">
<label>upstream id <input id="upstream_id" name="upstream_id" value="{up}"></label>
<label>name <input id="name" name="name" value="{name}"></label>
<fieldset><legend>markup (empty: none)</legend>
<label>percent <input id="markup_percent" name="markup_percent" value="{pc}"></label>
<label>fixed <input id="markup_fixed" name="markup_fixed" value="{fx}"></label>
<label>round to <input id="markup_round_to" name="markup_round_to" value="{rt}"></label></fieldset>
<label>add-ons (local=upstream, …) <input id="addons" name="addons" value="{ad}"></label>
<button id="save">Save</button></form>
<aside id="preview"><h3>Price preview</h3>"#,
            id = plan.id,
            csrf = esc(&live.csrf),
            etag = esc(&etag),
            up = val("upstream_id", plan.upstream_id.to_string()),
            name = val("name", plan.name.clone().unwrap_or_default()),
            pc = val(
                "markup_percent",
                if has {
                    m.percent.to_string()
                } else {
                    String::new()
                }
            ),
            fx = val(
                "markup_fixed",
                if has {
                    m.fixed.to_string()
                } else {
                    String::new()
                }
            ),
            rt = val(
                "markup_round_to",
                if has {
                    m.round_to.to_string()
                } else {
                    String::new()
                }
            ),
            ad = val("addons", addons.join(", ")),
        );
        let users: Vec<_> = store
            .resellers()
            .into_iter()
            .filter(|r| r.has_plan(plan.id))
            .collect();
        if users.is_empty() {
            b.push_str("<p>No reseller has this plan.</p>");
        }
        for r in users {
            let _ = write!(
                b,
                r#"<h4>as {} sees it{}</h4>"#,
                esc(&r.login),
                if r.markup.is_some() {
                    " (its own markup replaces the plan's)"
                } else {
                    ""
                }
            );
            b.push_str(
                &self
                    .preview_html(&r.login, Some(&plan.id.to_string()))
                    .await,
            );
        }
        b.push_str("</aside></div>");
        let status = match &message {
            Message::Error(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::OK,
        };
        page(
            status,
            &format!("Plan {}", plan.id),
            Some(live),
            &message,
            &b,
        )
    }

    async fn save_plan(
        &self,
        live: &Live,
        actor: &Actor,
        id: &str,
        form: &Form,
    ) -> Response<Vec<u8>> {
        let built = (|| {
            let up: u64 = field(form, "upstream_id")
                .trim()
                .parse()
                .map_err(|_| ApiError {
                    status: StatusCode::BAD_REQUEST,
                    error: "not a plan id".into(),
                    field: Some("upstream_id".into()),
                    value: Some(field(form, "upstream_id").to_string()),
                })?;
            let name = field(form, "name").trim();
            let mut body = json!({
                "upstream_id": up,
                "addons": addon_list(field(form, "addons"))?,
            });
            if !name.is_empty() {
                body["name"] = Value::String(name.to_string());
            }
            let m = markup_json(form);
            if !m.is_null() {
                body["markup"] = m;
            }
            api::plan_from_body(body.to_string().as_bytes(), Some(id))
        })();
        let result = match built {
            Ok(plan) => {
                self.commit(actor, Edit::PutPlan(plan), field(form, "etag"))
                    .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(msg) => self.plan_page(live, id, Message::Ok(msg), None).await,
            Err(e) => {
                let keep = (e.status != StatusCode::PRECONDITION_FAILED).then_some(form);
                self.plan_page(live, id, Message::Error(error_text(&e)), keep)
                    .await
            }
        }
    }

    /// One audited edit from the console; answers the message to show.
    async fn commit(&self, actor: &Actor, edit: Edit, etag: &str) -> Result<String, ApiError> {
        let store = self.gateway.store().clone();
        let a = actor.clone();
        let tag = etag.to_string();
        let changes = tokio::task::spawn_blocking(move || {
            store.edit(&a, edit, Some(tag.as_str()).filter(|t| !t.is_empty()))
        })
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the write task failed"))?
        .map_err(ApiError::store)?;
        tracing::info!(token = %actor.name, via = "console", changes = changes.len(), "admin change");
        Ok(if changes.is_empty() {
            "Saved: nothing changed.".into()
        } else {
            let lines: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
            format!("Saved: {}", lines.join("; "))
        })
    }

    async fn reseller_page(
        &self,
        live: &Live,
        login: &str,
        message: Message,
        form: Option<&Form>,
    ) -> Response<Vec<u8>> {
        let store = self.gateway.store();
        let Some(r) = store.reseller(login) else {
            return page(
                StatusCode::NOT_FOUND,
                "No such reseller",
                Some(live),
                &Message::Error(format!("There is no reseller '{login}'.")),
                "",
            );
        };
        let etag = store.etag(RecordKind::Reseller, login).unwrap_or_default();
        let m = r.markup.unwrap_or_default();
        let has = r.markup.is_some();
        let val = |name: &str, current: String| -> String {
            esc(&form.map_or(current, |f| field(f, name).to_string()))
        };
        let plans: Vec<String> = r.plans.iter().map(u64::to_string).collect();
        let mut b = format!(
            r#"<div class="edit"><form method="post" action="/console/resellers/{enc}" class="record">
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="etag" value="{etag}">
<label>upstream account <input id="upstream_account" name="upstream_account" value="{ua}"></label>
<label>plans (ids, comma-separated) <input id="plans" name="plans" value="{pl}"></label>
<fieldset><legend>own markup (replaces the plans' markups; empty: none)</legend>
<label>percent <input id="markup_percent" name="markup_percent" value="{pc}"></label>
<label>fixed <input id="markup_fixed" name="markup_fixed" value="{fx}"></label>
<label>round to <input id="markup_round_to" name="markup_round_to" value="{rt}"></label></fieldset>
<button id="save">Save</button></form>
<aside id="preview"><h3>Price preview: what {login} imports</h3>"#,
            enc = enc(login),
            login = esc(login),
            csrf = esc(&live.csrf),
            etag = esc(&etag),
            ua = val("upstream_account", r.upstream_account.clone()),
            pl = val("plans", plans.join(", ")),
            pc = val(
                "markup_percent",
                if has {
                    m.percent.to_string()
                } else {
                    String::new()
                }
            ),
            fx = val(
                "markup_fixed",
                if has {
                    m.fixed.to_string()
                } else {
                    String::new()
                }
            ),
            rt = val(
                "markup_round_to",
                if has {
                    m.round_to.to_string()
                } else {
                    String::new()
                }
            ),
        );
        b.push_str(&self.preview_html(login, None).await);
        b.push_str("</aside></div>");
        let status = match &message {
            Message::Error(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::OK,
        };
        page(
            status,
            &format!("Reseller {login}"),
            Some(live),
            &message,
            &b,
        )
    }

    async fn save_reseller(
        &self,
        live: &Live,
        actor: &Actor,
        login: &str,
        form: &Form,
    ) -> Response<Vec<u8>> {
        let store = self.gateway.store().clone();
        let built = (|| {
            let mut body = json!({
                "upstream_account": field(form, "upstream_account").trim(),
                "plans": id_list("plans", field(form, "plans"))?,
            });
            let m = markup_json(form);
            if !m.is_null() {
                body["markup"] = m;
            }
            api::reseller_from_body(&store, body.to_string().as_bytes(), Some(login))
        })();
        let result = match built {
            Ok(r) => {
                self.commit(actor, Edit::PutReseller(r), field(form, "etag"))
                    .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(msg) => {
                self.reseller_page(live, login, Message::Ok(msg), None)
                    .await
            }
            Err(e) => {
                let keep = (e.status != StatusCode::PRECONDITION_FAILED).then_some(form);
                self.reseller_page(live, login, Message::Error(error_text(&e)), keep)
                    .await
            }
        }
    }

    fn reseller_picker(&self, action: &str, chosen: &str, extra: &str) -> String {
        let mut b = format!(
            r#"<form method="get" action="{action}" class="inline"><label>reseller <select id="reseller" name="reseller">"#
        );
        for r in self.gateway.store().resellers() {
            let _ = write!(
                b,
                r#"<option value="{0}"{1}>{0}</option>"#,
                esc(&r.login),
                if r.login == chosen { " selected" } else { "" }
            );
        }
        let _ = write!(
            b,
            r#"</select></label>{extra}<button id="show">Show</button></form>"#
        );
        b
    }

    async fn services_page(&self, live: &Live, reseller: &str) -> Response<Vec<u8>> {
        let mut b = self.reseller_picker("/console/services", reseller, "");
        if !reseller.is_empty() {
            let store = self.gateway.store().clone();
            let l = reseller.to_string();
            match super::read_store("services", move || store.services(Some(&l))).await {
                Ok(list) => {
                    b.push_str(r#"<table id="services"><tr><th>id</th><th>remoteid</th><th>plan</th><th>period</th><th>source</th><th>recorded</th><th>calls</th></tr>"#);
                    for s in list.iter().map(super::records::service_view) {
                        let _ = write!(
                            b,
                            "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            s.upstream_id,
                            if s.deleted { " (deleted)" } else { "" },
                            esc(s.remoteid.as_deref().unwrap_or("—")),
                            esc(s.plan.as_deref().unwrap_or("—")),
                            esc(s.period.as_deref().unwrap_or("—")),
                            esc(&s.source),
                            esc(&s.recorded_at),
                            s.history.len()
                        );
                    }
                    b.push_str("</table>");
                }
                Err(_) => b.push_str(r#"<p class="error">The services could not be read.</p>"#),
            }
        }
        page(StatusCode::OK, "Services", Some(live), &Message::None, &b)
    }

    async fn orders_page(&self, live: &Live, message: Message) -> Response<Vec<u8>> {
        let store = self.gateway.store().clone();
        let mut b = format!(
            r#"<form method="post" action="/console/orders/reconcile" class="inline"><input type="hidden" name="csrf" value="{}"><button id="reconcile">Reconcile pending orders now</button></form>"#,
            esc(&live.csrf)
        );
        match super::read_store("orders", move || store.orders()).await {
            Ok(orders) => {
                let view = super::records::orders_view(&orders, &Default::default());
                b.push_str(r#"<table id="orders"><tr><th>reseller</th><th>remoteid</th><th>state</th><th>certificate</th><th>plan</th><th>claimed</th><th>failure</th></tr>"#);
                let mut sorted: Vec<_> = view.orders.iter().collect();
                sorted.sort_by_key(|o| o.state != "pending");
                for o in sorted {
                    let _ = write!(
                        b,
                        r#"<tr class="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                        o.state,
                        esc(&o.reseller),
                        esc(&o.remoteid),
                        o.state,
                        o.upstream_id.map_or("—".to_string(), |i| i.to_string()),
                        esc(o.plan.as_deref().unwrap_or("—")),
                        esc(&o.claimed_at),
                        esc(o.failure.as_deref().unwrap_or(""))
                    );
                }
                b.push_str("</table>");
            }
            Err(_) => b.push_str(r#"<p class="error">The orders could not be read.</p>"#),
        }
        page(StatusCode::OK, "Orders", Some(live), &message, &b)
    }

    async fn reconcile_now(&self, live: &Live) -> Response<Vec<u8>> {
        let settle = self.reconciler.settle();
        let message = match self.reconciler.reconcile_orders(settle).await {
            Ok(r) => Message::Ok(format!(
                "Reconciled: {} found, {} failed, {} still pending (orders claimed at least {} ms ago).",
                r.found.len(),
                r.failed.len(),
                r.left.len(),
                settle.as_millis()
            )),
            Err(e) => {
                tracing::error!(error = %e, "reconciliation from the console failed");
                Message::Error(format!("The reconciliation failed: {e}"))
            }
        };
        self.orders_page(live, message).await
    }

    async fn ledger_page(&self, live: &Live, reseller: &str, month: &str) -> Response<Vec<u8>> {
        let month_now = crate::store::ledger::month_of(crate::store::audit::now_ms());
        let month = if month.is_empty() {
            month_now.as_str()
        } else {
            month
        };
        let extra = format!(
            r#"<label>month <input id="month" name="month" value="{}"></label>"#,
            esc(month)
        );
        let mut b = self.reseller_picker("/console/ledger", reseller, &extra);
        let mut message = Message::None;
        if !reseller.is_empty() {
            if !api::valid_month(month) {
                message = Message::Error(format!("'{month}' is not a month (YYYY-MM)."));
            } else {
                match self.ledger_text(reseller, month).await {
                    Ok(csv) => {
                        let _ = write!(
                            b,
                            r#"<p><a id="csv" href="/console/ledger.csv?reseller={}&amp;month={}">Download CSV</a></p><table id="ledger">"#,
                            enc(reseller),
                            enc(month)
                        );
                        for (i, line) in csv.lines().enumerate() {
                            let cell = if i == 0 { "th" } else { "td" };
                            b.push_str("<tr>");
                            for c in line.split(',') {
                                let _ = write!(b, "<{cell}>{}</{cell}>", esc(c.trim_matches('"')));
                            }
                            b.push_str("</tr>");
                        }
                        b.push_str("</table>");
                    }
                    Err(e) => message = Message::Error(e),
                }
            }
        }
        page(StatusCode::OK, "Ledger", Some(live), &message, &b)
    }

    async fn ledger_text(&self, reseller: &str, month: &str) -> Result<String, String> {
        if self.gateway.store().reseller(reseller).is_none() {
            return Err(format!("There is no reseller '{reseller}'."));
        }
        let store = self.gateway.store().clone();
        let l = reseller.to_string();
        let entries = super::read_store("ledger", move || store.ledger(Some(&l)))
            .await
            .map_err(|_| "The ledger could not be read.".to_string())?;
        Ok(crate::store::ledger::to_csv(&entries, month))
    }

    async fn ledger_csv(&self, reseller: &str, month: &str) -> Response<Vec<u8>> {
        if !api::valid_month(month) {
            return super::text(StatusCode::BAD_REQUEST, "month must be YYYY-MM");
        }
        match self.ledger_text(reseller, month).await {
            Ok(csv) => {
                let mut r = super::reply(StatusCode::OK, "text/csv; charset=UTF-8", csv);
                let name = format!(
                    "attachment; filename=\"ledger-{}-{}.csv\"",
                    reseller.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_"),
                    month
                );
                if let Ok(v) = http::HeaderValue::from_str(&name) {
                    r.headers_mut().insert(http::header::CONTENT_DISPOSITION, v);
                }
                secure(&mut r);
                r
            }
            Err(e) => super::text(StatusCode::NOT_FOUND, e),
        }
    }

    async fn audit_page(&self, live: &Live, kind: &str, key: &str) -> Response<Vec<u8>> {
        let filter = crate::store::AuditFilter {
            kind: Some(kind.to_string()).filter(|k| !k.is_empty()),
            key: Some(key.to_string()).filter(|k| !k.is_empty()),
            limit: api::DEFAULT_AUDIT_ENTRIES,
            ..Default::default()
        };
        let mut b = String::new();
        let _ = write!(
            b,
            r#"<form method="get" action="/console/audit" class="inline"><label>kind <select name="kind"><option value="">any</option>{}</select></label><label>key <input name="key" value="{}"></label><button>Filter</button></form>"#,
            ["plan", "reseller", "upstream_account"]
                .iter()
                .map(|k| format!(
                    r#"<option{}>{k}</option>"#,
                    if *k == kind { " selected" } else { "" }
                ))
                .collect::<String>(),
            esc(key)
        );
        let store = self.gateway.store().clone();
        match super::read_store("audit log", move || store.audit(&filter)).await {
            Ok(entries) => {
                b.push_str(r#"<table id="audit"><tr><th>when</th><th>token</th><th>via</th><th>what</th><th>object</th><th>changes</th></tr>"#);
                for e in entries {
                    let _ = write!(
                        b,
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td></tr>",
                        esc(&crate::store::ledger::timestamp(e.at_ms)),
                        esc(&e.actor),
                        esc(&e.via),
                        esc(&e.op),
                        esc(&e.kind),
                        esc(&e.key),
                        esc(&e.changes.join("; "))
                    );
                }
                b.push_str("</table>");
            }
            Err(_) => b.push_str(r#"<p class="error">The audit log could not be read.</p>"#),
        }
        page(StatusCode::OK, "Audit log", Some(live), &Message::None, &b)
    }
}

fn login_page(status: StatusCode, message: &Message) -> Response<Vec<u8>> {
    page(
        status,
        "Log in",
        None,
        message,
        r#"<form method="post" action="/console/login" class="record"><label>admin token <input id="token" name="token" type="password" autocomplete="off" autofocus></label><button id="login">Log in</button></form>"#,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_bounded_and_expire() {
        let s = Sessions::new(Duration::from_secs(10), 2);
        let t0 = Instant::now();
        let a = s.create("a", AdminRole::Write, t0);
        let b = s.create("b", AdminRole::Read, t0 + Duration::from_secs(1));
        assert_eq!(s.len(), 2);
        // At the bound, the least recently used ends.
        assert!(s.get(&a, t0 + Duration::from_secs(2)).is_some());
        let c = s.create("c", AdminRole::Read, t0 + Duration::from_secs(3));
        assert_eq!(s.len(), 2);
        assert!(s.get(&b, t0 + Duration::from_secs(3)).is_none());
        assert!(s.get(&c, t0 + Duration::from_secs(3)).is_some());
        // Sliding expiry: 10 s after the last use, not after the first.
        assert!(s.get(&a, t0 + Duration::from_secs(11)).is_some());
        assert!(s.get(&a, t0 + Duration::from_secs(21)).is_none());
        assert!(
            s.get(&a, t0 + Duration::from_secs(12)).is_none(),
            "gone for good"
        );
        let l = s.get(&c, t0 + Duration::from_secs(12)).unwrap();
        assert_eq!((l.token.as_str(), l.role), ("c", AdminRole::Read));
        assert_eq!(l.csrf.len(), 64);
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(esc("a\nb"), "a\\u{a}b");
    }

    #[test]
    fn form_lists() {
        assert_eq!(id_list("plans", "101, 102,").unwrap(), [101, 102]);
        assert_eq!(
            id_list("plans", "101 x").unwrap_err().value.as_deref(),
            Some("101 x")
        );
        assert_eq!(
            addon_list("201=3034").unwrap(),
            [json!({"id": 201, "upstream_id": 3034})]
        );
        assert!(addon_list("201").is_err());
    }
}

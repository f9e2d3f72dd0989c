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

use std::fmt::Write as _;
use std::time::Instant;

use http::{Response, StatusCode};
use pingora::protocols::http::ServerSession;
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

mod edit;
mod sessions;
mod views;

pub use sessions::{Live, Sessions};

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
    use super::edit::{addon_list, id_list};
    use super::*;
    use std::time::Duration;

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

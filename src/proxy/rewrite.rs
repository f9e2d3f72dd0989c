//! What the reseller gets back: the upstream's answer (already read and checked by
//! [`crate::upstream::wire`]) rewritten by the catalogue in its own shape, rendered as
//! `text` when asked so, and with any upstream credentials it echoed redacted.

use crate::billmgr::{self, Format, Params};
use crate::upstream::wire::upstream_format;
use crate::upstream::UpstreamError;

/// The bytes to send the reseller for the upstream's answer to `func`: rewritten in the
/// upstream's own format (only the catalogue's values change), or the upstream's own
/// bytes when nothing had to change; `text` is rendered from the (rewritten) xml. Any of
/// `secrets` the upstream echoed (its account's password, its login in an error) is
/// replaced by `***` ([`redact`]).
pub fn reseller_answer(
    cat: crate::catalog::Catalog,
    call: &Call,
    body: bytes::Bytes,
) -> Result<bytes::Bytes, UpstreamError> {
    let out = reseller_document(cat, call, body)?;
    Ok(redacted(call, out))
}

/// `out` with every one of `call.secrets` it carries redacted ([`redact`]), logged.
pub fn redacted(call: &Call, out: bytes::Bytes) -> bytes::Bytes {
    match redact(&out, call.secrets) {
        Some(clean) => {
            tracing::warn!(reseller = %call.reseller.login, func = call.func, "the upstream's answer carried the upstream account's credentials: redacted");
            clean.into()
        }
        None => out,
    }
}

/// A list function's answer read once: what [`reseller_answer`] gives before redaction,
/// and the light document the call is judged by (the upstream's answer without its list
/// items, root `doc`; see [`crate::upstream::wire::read_answer`]) from the same pass.
/// `None` when `call.func` is not a list function.
pub fn reseller_list_document(
    cat: crate::catalog::Catalog,
    call: &Call,
    body: &bytes::Bytes,
) -> Option<Result<(bytes::Bytes, billmgr::Element), UpstreamError>> {
    let f = upstream_format(call.caller);
    let garbage = |e| crate::upstream::wire::unreadable(e, f, body.len());
    let read = crate::catalog::response::rewrite_list_answer(
        cat,
        call.reseller,
        call.func,
        call.params,
        body,
        f,
    )?;
    Some((|| {
        let (out, rest) = read.map_err(garbage)?;
        let doc = crate::upstream::wire::read_doc(&rest, f).map_err(garbage)?;
        if call.caller == Format::Text {
            let xml = billmgr::parse(&out, Format::Xml).map_err(garbage)?;
            return Ok((billmgr::render(&xml, Format::Text).into(), doc));
        }
        Ok((out.into(), doc))
    })())
}

/// The reseller's call, as answering it needs it.
pub struct Call<'a> {
    pub reseller: &'a crate::store::model::Reseller,
    pub func: &'a str,
    /// The reseller's own parameters (local plan ids).
    pub params: &'a Params,
    /// The upstream plan of the service `elid` names (prices a renewal form).
    pub service_plan: Option<u64>,
    pub caller: Format,
    /// What must never reach the reseller (see [`redact`]).
    pub secrets: &'a [&'a str],
}

fn reseller_document(
    cat: crate::catalog::Catalog,
    call: &Call,
    body: bytes::Bytes,
) -> Result<bytes::Bytes, UpstreamError> {
    let caller = call.caller;
    let f = upstream_format(caller);
    let garbage = |e| crate::upstream::wire::unreadable(e, f, body.len());
    let rewritten = crate::catalog::rewrite_response(
        cat,
        call.reseller,
        call.func,
        call.params,
        call.service_plan,
        &body,
        f,
    )
    .map_err(garbage)?;
    if caller == Format::Text {
        let xml = rewritten.as_deref().unwrap_or(&body);
        let doc = billmgr::parse(xml, Format::Xml).map_err(garbage)?;
        return Ok(billmgr::render(&doc, Format::Text).into());
    }
    Ok(rewritten.map(bytes::Bytes::from).unwrap_or(body))
}

/// Secrets shorter than this are not searched for (they would match ordinary text).
pub const MIN_REDACTED_LEN: usize = 4;

/// `body` with every appearance of each secret replaced by `***`: as written, and as xml,
/// json or a form would escape it (an upstream error page may echo the request). `None`
/// when no secret appears.
pub fn redact(body: &[u8], secrets: &[&str]) -> Option<Vec<u8>> {
    with_forms(secrets, |forms| replace_forms(body, forms))
}

/// How many secret lists each worker thread remembers the spelled-out forms of.
const FORMS_CACHED: usize = 8;

/// A secret list and its forms.
type CachedForms = (Vec<String>, std::rc::Rc<Vec<Vec<u8>>>);

thread_local! {
    /// The last secret lists seen on this thread and their forms (longest first): the
    /// same account's password comes with every call, so its forms are spelled out once
    /// rather than five allocations per answer.
    static FORMS: std::cell::RefCell<Vec<CachedForms>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Run `f` over the forms of `secrets` ([`secret_forms`]), from this thread's cache.
fn with_forms<R>(secrets: &[&str], f: impl FnOnce(&[Vec<u8>]) -> R) -> R {
    let hit = FORMS.with_borrow(|cache| {
        cache
            .iter()
            .find(|(k, _)| k.len() == secrets.len() && k.iter().zip(secrets).all(|(a, b)| a == b))
            .map(|(_, forms)| forms.clone())
    });
    let forms = match hit {
        Some(forms) => forms,
        None => {
            let forms = std::rc::Rc::new(secret_forms(secrets));
            FORMS.with_borrow_mut(|cache| {
                if cache.len() >= FORMS_CACHED {
                    cache.remove(0);
                }
                cache.push((
                    secrets.iter().map(|s| s.to_string()).collect(),
                    forms.clone(),
                ));
            });
            forms
        }
    };
    f(&forms)
}

/// Every spelling of `secrets` searched for (as written, json-, xml-, form-escaped, with
/// `&` as a character reference), distinct, longest first.
pub fn secret_forms(secrets: &[&str]) -> Vec<Vec<u8>> {
    let mut forms: Vec<Vec<u8>> = Vec::new();
    for s in secrets.iter().filter(|s| s.len() >= MIN_REDACTED_LEN) {
        let json = serde_json::to_string(s).unwrap_or_default();
        let mut xml = String::new();
        for c in s.chars() {
            match c {
                '&' => xml.push_str("&amp;"),
                '<' => xml.push_str("&lt;"),
                '>' => xml.push_str("&gt;"),
                '"' => xml.push_str("&quot;"),
                '\'' => xml.push_str("&apos;"),
                c => xml.push(c),
            }
        }
        let form: String = serde_urlencoded::to_string([("", s)])
            .unwrap_or_default()
            .trim_start_matches('=')
            .to_string();
        for f in [
            s.to_string(),
            json.trim_matches('"').to_string(),
            xml,
            form,
            s.replace('&', "&#38;"),
        ] {
            if !f.is_empty() && !forms.iter().any(|x| x == f.as_bytes()) {
                forms.push(f.into_bytes());
            }
        }
    }
    // Longest first, so that a form containing another is replaced whole.
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms
}

/// `body` with every appearance of each of `forms` (longest first) replaced by `***`.
fn replace_forms(body: &[u8], forms: &[Vec<u8>]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    for f in forms {
        let cur = out.as_deref().unwrap_or(body);
        if memchr::memmem::find(cur, f).is_none() {
            continue;
        }
        let mut next = Vec::with_capacity(cur.len());
        let mut last = 0;
        for pos in memchr::memmem::find_iter(cur, f) {
            if pos < last {
                continue;
            }
            next.extend_from_slice(&cur[last..pos]);
            next.extend_from_slice(b"***");
            last = pos + f.len();
        }
        next.extend_from_slice(&cur[last..]);
        out = Some(next);
    }
    out
}

pub use crate::billmgr::sniff_format;

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &str) -> Params {
        Params::parse(Some(q), b"", &Default::default()).unwrap()
    }

    #[test]
    fn secrets_are_redacted_in_every_escaping() {
        let pw = "s3:cr<e>t&\"x y";
        let bodies = [
            format!("<doc><error><msg>bad authinfo login:{pw}</msg></error></doc>"),
            "<doc><error><msg>bad login:s3:cr&lt;e&gt;t&amp;&quot;x y</msg></error></doc>"
                .to_string(),
            r#"{"doc":{"error":{"msg":{"$":"bad s3:cr<e>t&\"x y"}}}}"#.to_string(),
            "<doc><error><msg>authinfo=login%3As3%3Acr%3Ce%3Et%26%22x+y</msg></error></doc>"
                .to_string(),
        ];
        for b in bodies {
            let out = redact(b.as_bytes(), &[pw, "login"]).unwrap_or_else(|| panic!("{b}"));
            let out = String::from_utf8(out).unwrap();
            assert!(out.contains("***"), "{out}");
            for leak in ["s3", "cr<e>", "cr&lt;e", "cr%3C", "login"] {
                assert!(!out.contains(leak), "{leak} in {out}");
            }
        }
        assert_eq!(redact(b"<doc><ok/></doc>", &[pw, "login"]), None);
        // Too short to search for: left alone.
        assert_eq!(redact(b"<doc><ok/></doc>", &["ok"]), None);
    }

    #[test]
    fn cached_forms_follow_the_secrets_asked_for() {
        // More secret lists than the cache holds, each asked twice: every answer is
        // redacted with its own secrets, whatever the cache held before.
        for round in 0..2 {
            for i in 0..(FORMS_CACHED + 3) {
                let pw = format!("pw-{i}-s&cret");
                let other = format!("pw-{}-s&cret", i + 1);
                let body = format!("<doc><msg>{pw} &amp; {other}</msg></doc>");
                let out = String::from_utf8(redact(body.as_bytes(), &[&pw]).unwrap()).unwrap();
                assert_eq!(
                    out,
                    format!("<doc><msg>*** &amp; {other}</msg></doc>"),
                    "round {round}"
                );
                let xml = format!("<doc><msg>pw-{i}-s&amp;cret</msg></doc>");
                assert_eq!(
                    redact(xml.as_bytes(), &[&pw]).as_deref(),
                    Some(&b"<doc><msg>***</msg></doc>"[..])
                );
                assert_eq!(redact(xml.as_bytes(), &[&other]), None);
            }
        }
        assert_eq!(secret_forms(&["abc"]), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn sniffs_out_from_broken_requests() {
        assert_eq!(sniff_format(Some("a=%zz&out=json"), b""), Format::Json);
        assert_eq!(sniff_format(None, b"x=%&out=bjson"), Format::Bjson);
        assert_eq!(sniff_format(None, b"\xff\xfe"), Format::Xml);
    }

    #[test]
    fn unchanged_answers_pass_through_byte_for_byte() {
        let store = crate::store::Store::open_temporary().unwrap();
        let names = crate::catalog::UpstreamNames::default();
        let cat = crate::catalog::Catalog::new(&store, &names);
        let r = crate::store::model::Reseller {
            login: "r".into(),
            password_hash: String::new(),
            upstream_account: "up".into(),
            plans: vec![],
            markup: None,
        };
        let raw = bytes::Bytes::from_static(b"<?xml version=\"1.0\"?>\n<doc>  <ok/></doc>");
        let params = p("func=whoami");
        let answer = |caller| {
            let call = Call {
                reseller: &r,
                func: "whoami",
                params: &params,
                service_plan: None,
                caller,
                secrets: &[],
            };
            reseller_answer(cat, &call, raw.clone()).unwrap()
        };
        assert_eq!(answer(Format::Xml), raw);
        assert_eq!(&answer(Format::Text)[..], b"ok\n");
    }
}

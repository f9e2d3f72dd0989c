//! What the upstream receives and what the reseller gets back.
//!
//! Requests: the downstream's `authinfo`, `auth` and session cookie never travel on; the
//! reseller's own upstream account is put in their place, and `out` is normalised to a
//! format the gateway can read back (`text` is asked for as XML and rendered here).
//!
//! Responses: the upstream's answer must be a document in the format asked for;
//! anything else (an HTML error page, binary garbage, an empty body) becomes an
//! `upstream` error document rather than reaching the reseller.

use crate::billmgr::{self, BmError, Element, Format, Params};

use super::upstream::UpstreamError;

/// Keys that identify the downstream caller and must never reach the upstream.
pub const DOWNSTREAM_ONLY: &[&str] = &["authinfo", "auth", "su"];

/// The parameters to send upstream for an authenticated reseller's call.
pub fn upstream_params(params: &Params, upstream_login: &str, upstream_password: &str) -> Params {
    let mut out = params.clone();
    for k in DOWNSTREAM_ONLY {
        out.remove(k);
    }
    out.set("out", upstream_format(params.format()).as_str());
    out.set("authinfo", format!("{upstream_login}:{upstream_password}"));
    out
}

/// The format asked of the upstream for a caller's format.
pub fn upstream_format(f: Format) -> Format {
    match f {
        Format::Text => Format::Xml,
        other => other,
    }
}

/// Read the upstream's answer to `func` as a document in the format asked of it: a
/// well-formed document whose root is `doc` (or a bjson object), without duplicate keys
/// or attributes. Anything else (HTML, a maintenance page, an arbitrary JSON object,
/// garbage, an empty body) is [`UpstreamError::Garbage`]. The answer to a list function
/// is checked whole but read without its items (they are rewritten one at a time later),
/// so its tree stays small however long the list.
pub fn read_answer(
    body: &[u8],
    caller: Format,
    func: Option<&str>,
) -> Result<Element, UpstreamError> {
    let f = upstream_format(caller);
    let parsed = match func.and_then(crate::catalog::response::list_items) {
        Some(items) => billmgr::edit::rewrite_items(body, f, items, &mut |_, _| Vec::new())
            .and_then(|light| billmgr::parse(&light, f)),
        None => billmgr::parse(body, f),
    };
    let parsed = parsed.and_then(|doc| {
        if doc.name == "doc" {
            Ok(doc)
        } else {
            Err(billmgr::DocError::NotDoc)
        }
    });
    parsed.map_err(|e| {
        tracing::warn!(error = %e, format = f.as_str(), bytes = body.len(), "upstream answered an unreadable document");
        UpstreamError::Garbage
    })
}

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
    match redact(&out, call.secrets) {
        Some(clean) => {
            tracing::warn!(reseller = %call.reseller.login, func = call.func, "the upstream's answer carried the upstream account's credentials: redacted");
            Ok(clean.into())
        }
        None => Ok(out),
    }
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
    let garbage = |e: billmgr::DocError| {
        tracing::warn!(error = %e, format = f.as_str(), bytes = body.len(), "upstream answered an unreadable document");
        UpstreamError::Garbage
    };
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
    let mut out: Option<Vec<u8>> = None;
    for f in &forms {
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

/// Error document bytes for `err` in the caller's format.
pub fn error_bytes(err: &BmError, format: Format, lang: &str) -> Vec<u8> {
    billmgr::render(&err.to_doc(lang), format)
}

pub use crate::billmgr::sniff_format;

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &str) -> Params {
        Params::parse(Some(q), b"", &Default::default()).unwrap()
    }

    #[test]
    fn authinfo_is_swapped_and_downstream_identity_dropped() {
        let up = upstream_params(
            &p("func=certificate&authinfo=acme:pw&auth=S&out=json&elid=1"),
            "acme@up",
            "s3:cret",
        );
        let pairs: Vec<_> = up.iter().collect();
        assert_eq!(
            pairs,
            vec![
                ("func", "certificate"),
                ("out", "json"),
                ("elid", "1"),
                ("authinfo", "acme@up:s3:cret")
            ]
        );
    }

    #[test]
    fn text_is_asked_as_xml_and_default_out_is_explicit() {
        assert_eq!(
            upstream_params(&p("func=whoami&out=text"), "u", "p").get("out"),
            Some("xml")
        );
        assert_eq!(
            upstream_params(&p("func=whoami"), "u", "p").get("out"),
            Some("xml")
        );
        assert_eq!(
            upstream_params(&p("func=whoami&out=xjson"), "u", "p").get("out"),
            Some("json")
        );
    }

    #[test]
    fn garbage_and_html_are_refused() {
        for (body, f) in [
            (&b"<html><body>Bad gateway</body>"[..], Format::Xml),
            (b"<?xml version=\"1.0\"?><html xmlns=\"http://www.w3.org/1999/xhtml\"><body>Maintenance</body></html>", Format::Xml),
            (b"\x89PNG\r\n\x1a\n", Format::Json),
            (b"{\"status\":\"maintenance\"}", Format::Json),
            (b"{\"doc\":{\"ok\":{},\"ok\":{}}}", Format::Json),
            (b"{\"doc\":{\"elem\":[{\"id\":{\"$\":\"1\"},\"id\":{\"$\":\"2\"}}]}}", Format::Sjson),
            (b"<doc><v a=\"1\" a=\"2\"/></doc>", Format::Xml),
            (b"<doc>\xff\xfe</doc>", Format::Xml),
            (b"", Format::Bjson),
            (b"[1]", Format::Bjson),
        ] {
            for func in [None, Some("certificate"), Some("pricelist.export")] {
                assert_eq!(read_answer(body, f, func), Err(UpstreamError::Garbage), "{:?} {func:?}", String::from_utf8_lossy(body));
            }
        }
        assert!(read_answer(b"<doc><ok/></doc>", Format::Text, None).is_ok());
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
    fn sniffs_out_from_broken_requests() {
        assert_eq!(sniff_format(Some("a=%zz&out=json"), b""), Format::Json);
        assert_eq!(sniff_format(None, b"x=%&out=bjson"), Format::Bjson);
        assert_eq!(sniff_format(None, b"\xff\xfe"), Format::Xml);
    }

    #[test]
    fn unchanged_answers_pass_through_byte_for_byte() {
        let store = crate::store::Store::open_temporary().unwrap();
        let names = crate::catalog::UpstreamNames::default();
        let cat = crate::catalog::Catalog {
            store: &store,
            names: &names,
        };
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

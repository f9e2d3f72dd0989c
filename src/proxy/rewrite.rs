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
/// bytes when nothing had to change; `text` is rendered from the (rewritten) xml.
pub fn reseller_answer(
    cat: crate::catalog::Catalog,
    reseller: &crate::store::model::Reseller,
    func: &str,
    params: &Params,
    service_plan: Option<u64>,
    body: bytes::Bytes,
    caller: Format,
) -> Result<bytes::Bytes, UpstreamError> {
    let f = upstream_format(caller);
    let garbage = |e: billmgr::DocError| {
        tracing::warn!(error = %e, format = f.as_str(), bytes = body.len(), "upstream answered an unreadable document");
        UpstreamError::Garbage
    };
    let rewritten =
        crate::catalog::rewrite_response(cat, reseller, func, params, service_plan, &body, f)
            .map_err(garbage)?;
    if caller == Format::Text {
        let xml = rewritten.as_deref().unwrap_or(&body);
        let doc = billmgr::parse(xml, Format::Xml).map_err(garbage)?;
        return Ok(billmgr::render(&doc, Format::Text).into());
    }
    Ok(rewritten.map(bytes::Bytes::from).unwrap_or(body))
}

/// Error document bytes for `err` in the caller's format.
pub fn error_bytes(err: &BmError, format: Format, lang: &str) -> Vec<u8> {
    billmgr::render(&err.to_doc(lang), format)
}

/// The caller's `out` and `lang` read leniently from a request whose parameters could
/// not be parsed, so that even that error comes back in the format it asked for.
pub fn sniff_format(query: Option<&str>, body: &[u8]) -> Format {
    let find = |s: &[u8]| -> Option<Format> {
        s.split(|&b| b == b'&')
            .find_map(|kv| kv.strip_prefix(b"out="))
            .map(|v| Format::from_param(std::str::from_utf8(v).ok()))
    };
    query
        .and_then(|q| find(q.as_bytes()))
        .or_else(|| find(body))
        .unwrap_or(Format::Xml)
}

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
        let answer = |f| {
            reseller_answer(cat, &r, "whoami", &p("func=whoami"), None, raw.clone(), f).unwrap()
        };
        assert_eq!(answer(Format::Xml), raw);
        assert_eq!(&answer(Format::Text)[..], b"ok\n");
    }
}

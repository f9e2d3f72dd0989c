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

/// Read the upstream's answer as a document in the format asked of it; anything else
/// (HTML, garbage, an empty body) is [`UpstreamError::Garbage`].
pub fn read_answer(body: &[u8], caller: Format) -> Result<Element, UpstreamError> {
    let f = upstream_format(caller);
    billmgr::parse(body, f).map_err(|e| {
        tracing::warn!(error = %e, format = f.as_str(), bytes = body.len(), "upstream answered an unreadable document");
        UpstreamError::Garbage
    })
}

/// The bytes to send the reseller for an upstream document.
///
/// When nothing was rewritten and the caller's format is the one the upstream answered
/// in, the upstream's own bytes are sent unchanged.
pub fn answer_bytes(
    upstream_body: bytes::Bytes,
    doc: &Element,
    caller: Format,
    rewritten: bool,
) -> bytes::Bytes {
    if !rewritten && upstream_format(caller) == caller {
        upstream_body
    } else {
        billmgr::render(doc, caller).into()
    }
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
        assert_eq!(
            read_answer(b"<html><body>Bad gateway</body>", Format::Xml),
            Err(UpstreamError::Garbage)
        );
        assert_eq!(
            read_answer(b"\x89PNG\r\n\x1a\n", Format::Json),
            Err(UpstreamError::Garbage)
        );
        assert_eq!(read_answer(b"", Format::Bjson), Err(UpstreamError::Garbage));
        assert!(read_answer(b"<doc><ok/></doc>", Format::Text).is_ok());
    }

    #[test]
    fn sniffs_out_from_broken_requests() {
        assert_eq!(sniff_format(Some("a=%zz&out=json"), b""), Format::Json);
        assert_eq!(sniff_format(None, b"x=%&out=bjson"), Format::Bjson);
        assert_eq!(sniff_format(None, b"\xff\xfe"), Format::Xml);
    }

    #[test]
    fn unchanged_answers_pass_through_byte_for_byte() {
        let raw = bytes::Bytes::from_static(b"<?xml version=\"1.0\"?>\n<doc>  <ok/></doc>");
        let doc = read_answer(&raw, Format::Xml).unwrap();
        assert_eq!(answer_bytes(raw.clone(), &doc, Format::Xml, false), raw);
        assert_eq!(&answer_bytes(raw, &doc, Format::Text, false)[..], b"ok\n");
    }
}

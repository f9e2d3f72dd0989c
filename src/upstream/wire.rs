//! What the upstream receives, and reading what it answers.
//!
//! Requests: the downstream's `authinfo`, `auth` and session cookie never travel on; the
//! reseller's own upstream account is put in their place, and `out` is normalised to a
//! format the gateway can read back (`text` is asked for as XML and rendered by the
//! proxy).
//!
//! Responses: the upstream's answer must be a document in the format asked for;
//! anything else (an HTML error page, binary garbage, an empty body) is
//! [`UpstreamError::Garbage`] rather than reaching the reseller.

use crate::billmgr::{self, Element, Format, Params};

use super::UpstreamError;

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

/// Read the upstream's answer as a document in the format asked of it: a
/// well-formed document whose root is `doc` (or a bjson object), without duplicate keys
/// or attributes. Anything else (HTML, a maintenance page, an arbitrary JSON object,
/// garbage, an empty body) is [`UpstreamError::Garbage`]. An answer with list `items`
/// (a list function's) is read without them, so its tree stays small however long the
/// list. The items are only delimited here ([`crate::billmgr::edit::delimit_items`]):
/// the caller reads (and checks) them next, one at a time, and refuses a bad one as
/// [`UpstreamError::Garbage`] too. (A reseller's list call reads its answer once
/// instead: [`crate::proxy::rewrite::reseller_list_document`].)
pub fn read_answer(
    body: &[u8],
    caller: Format,
    items: Option<&[&str]>,
) -> Result<Element, UpstreamError> {
    let f = upstream_format(caller);
    match items {
        Some(items) => {
            billmgr::edit::delimit_items(body, f, items).and_then(|light| read_doc(&light, f))
        }
        None => read_doc(body, f),
    }
    .map_err(|e| unreadable(e, f, body.len()))
}

/// A document (or a list answer without its items) in the format asked of the upstream,
/// read whole: its root must be `doc`.
pub fn read_doc(body: &[u8], f: Format) -> Result<Element, billmgr::DocError> {
    let doc = billmgr::parse(body, f)?;
    if doc.name == "doc" {
        Ok(doc)
    } else {
        Err(billmgr::DocError::NotDoc)
    }
}

/// An upstream answer of `bytes` bytes in format `f` that could not be read: logged,
/// and [`UpstreamError::Garbage`].
pub fn unreadable(e: billmgr::DocError, f: Format, bytes: usize) -> UpstreamError {
    if matches!(e, billmgr::DocError::Stopped) {
        return UpstreamError::Garbage; // the gateway's own doing: the answer is read again
    }
    tracing::warn!(error = %e, format = f.as_str(), bytes, "upstream answered an unreadable document");
    UpstreamError::Garbage
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unreadable answer is logged; a rewrite the gateway stopped itself is not.
    #[test]
    fn a_stopped_rewrite_is_not_logged_as_unreadable() {
        let logged = |e: billmgr::DocError| {
            crate::telemetry::logged_by(|| {
                assert!(matches!(
                    unreadable(e, Format::Xml, 10),
                    UpstreamError::Garbage
                ));
            })
        };
        assert_eq!(logged(billmgr::DocError::Stopped), "");
        assert!(logged(billmgr::DocError::NotDoc).contains("unreadable document"));
    }

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
                let items = func.and_then(crate::catalog::response::list_items);
                // A list's items are checked when they are read, right after.
                let judged = read_answer(body, f, items).and_then(|doc| match items {
                    Some(items) => billmgr::edit::rewrite_items(body, f, items, &mut |_, n| vec![n])
                        .map(|_| doc)
                        .map_err(|e| unreadable(e, f, body.len())),
                    None => Ok(doc),
                });
                assert_eq!(judged, Err(UpstreamError::Garbage), "{:?} {func:?}", String::from_utf8_lossy(body));
            }
        }
        assert!(read_answer(b"<doc><ok/></doc>", Format::Text, None).is_ok());
    }
}

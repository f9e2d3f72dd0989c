//! Upstream answers are checked, not trusted: only a BILLmanager document (root `doc`, or
//! the bjson shape) in the format asked for is accepted — not a maintenance page, an
//! arbitrary JSON object, duplicate keys or invalid UTF-8, and never as an order's
//! acknowledgement; interim `100 Continue` answers are skipped; the upstream account's
//! credentials echoed by the upstream never reach the reseller; huge key and attribute
//! counts are read in linear time.

use resellgate::billmgr::Format;

use crate::harness::*;

fn gateway_answering(body: &'static [u8]) -> (TestEnv, RecordingUpstream) {
    let up = RecordingUpstream::start(move |_| body.to_vec());
    let env = TestEnv::builder().upstream_url(&up.url()).start();
    (env, up)
}

/// A maintenance page, an arbitrary JSON object, duplicate keys and invalid UTF-8 are an
/// `upstream` error for a read, in the caller's format.
#[test]
fn non_documents_are_upstream_errors() {
    for (body, out, format) in [
        (
            &b"<?xml version=\"1.0\"?><!-- maintenance --><html xmlns=\"http://www.w3.org/1999/xhtml\"><body><h1>Down for maintenance</h1></body></html>"[..],
            "xml",
            Format::Xml,
        ),
        (b"{\"status\":\"maintenance\",\"retry\":60}", "json", Format::Json),
        (b"{\"doc\":{\"user\":{\"$\":\"a\"},\"user\":{\"$\":\"b\"}}}", "json", Format::Json),
        (b"{\"doc\":{\"elem\":[{\"id\":{\"$\":\"1\"},\"id\":{\"$\":\"2\"}}]}}", "sjson", Format::Sjson),
        (b"<doc><user>caf\xe9</user></doc>", "xml", Format::Xml),
        (b"<doc><elem a=\"1\" a=\"2\"/></doc>", "xml", Format::Xml),
    ] {
        let (env, _up) = gateway_answering(body);
        for func in ["whoami", "certificate", "pricelist.export"] {
            assert_error(
                &env.acme(&format!("func={func}&out={out}")),
                format,
                "upstream",
                "upstream",
            );
        }
    }
}

/// An order answered by a maintenance page, or by a document without the new id, is not
/// acknowledged: the reseller is told the outcome is pending, and the order stays pending.
#[test]
fn an_order_is_never_acknowledged_by_a_non_answer() {
    for body in [
        &b"<html><body>Maintenance</body></html>"[..],
        b"<doc><ok/></doc>",
        b"<doc/>",
    ] {
        let (env, up) = gateway_answering(body);
        let resp = env.acme(&order("l-hostile", "shop.example.com"));
        assert_error(&resp, Format::Xml, "pending", "remoteid");
        assert_eq!(up.last().get("func"), Some("certificate.order.param"));
        let orders = env.store.orders().unwrap();
        assert!(
            orders.iter().any(|o| o.reseller == "acme"
                && o.remoteid == "l-hostile"
                && o.state_name() == "pending"),
            "{:?}",
            orders
                .iter()
                .map(|o| (&o.remoteid, o.state_name()))
                .collect::<Vec<_>>()
        );
    }
}

/// Interim `100 Continue` (and `103 Early Hints`) answers before the real one are
/// skipped: the reseller gets the real answer, and the connection stays usable.
#[test]
fn interim_answers_are_skipped() {
    let body = "<doc><user level=\"16\">acme@sandbox</user></doc>\n";
    let raw = format!(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let raw: &'static [u8] = Box::leak(raw.into_bytes().into_boxed_slice());
    let (env, _up) = gateway_answering(raw);
    for _ in 0..3 {
        let d = doc(&env.acme("func=whoami"), Format::Xml);
        assert_eq!(d.child_text("user"), Some("acme@sandbox"));
    }
}

/// An upstream error that echoes the request (the upstream account's login and password)
/// reaches the reseller with both replaced by `***`, in every escaping, for a form and for
/// a list (whose error is judged by the same pass that rewrites it); a successful answer
/// keeps the login (a certificate list names its account) but never the password.
#[test]
fn upstream_credentials_are_redacted() {
    let up = RecordingUpstream::start(|p| {
        if p.get("out") == Some("json") {
            br#"{"doc":{"error":{"$type":"auth","$object":"authinfo","msg":{"$":"Bad authinfo acme@sandbox:acme-upstream-pw (acme%40sandbox%3Aacme-upstream-pw)"}}}}"#.to_vec()
        } else {
            b"<doc><error type=\"auth\" object=\"authinfo\"><msg>Bad authinfo acme@sandbox:acme-upstream-pw (acme%40sandbox%3Aacme-upstream-pw)</msg></error></doc>".to_vec()
        }
    });
    let env = TestEnv::builder().upstream_url(&up.url()).start();
    for (out, format, func) in [
        ("xml", Format::Xml, "whoami"),
        ("json", Format::Json, "whoami"),
        ("text", Format::Text, "whoami"),
        ("xml", Format::Xml, "certificate"),
        ("json", Format::Json, "certificate"),
        ("text", Format::Text, "certificate"),
        ("xml", Format::Xml, "pricelist.export"),
        ("json", Format::Json, "pricelist.export"),
    ] {
        let resp = env.acme(&format!("func={func}&out={out}"));
        let text = resp.text();
        assert!(
            !text.contains("acme-upstream-pw") && !text.contains("acme@sandbox"),
            "{text}"
        );
        assert!(!text.contains("acme%40sandbox"), "{text}");
        if format != Format::Text {
            let err = error_of(&resp, format);
            assert!(err.msg.contains("***"), "{func} {text}");
            assert_eq!(err.kind.as_str(), "auth", "{func} {text}");
        } else {
            assert!(text.contains("***"), "{text}");
        }
    }
    let (env, _up) = gateway_answering(
        b"<doc><elem><id>1</id><account>acme@sandbox</account><note>pw acme-upstream-pw</note></elem></doc>",
    );
    let text = env.acme("func=certificate").text();
    assert!(
        text.contains("acme@sandbox") && !text.contains("acme-upstream-pw"),
        "{text}"
    );
}

/// 40,000 json keys and 80,000 xml attributes are read (and passed on) without stalling:
/// parsing is linear (it used to take seconds, quadratic in the count).
#[test]
fn huge_key_and_attribute_counts_are_read() {
    let mut json = String::from("{\"doc\":{\"user\":{\"$\":\"acme@sandbox\"}");
    for i in 0..40_000 {
        json.push_str(&format!(",\"k{i}\":{{\"$\":\"v\"}}"));
    }
    json.push_str("}}");
    let json: &'static [u8] = Box::leak(json.into_bytes().into_boxed_slice());
    let (env, _up) = gateway_answering(json);
    let resp = env.acme("func=whoami&out=json");
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(v["doc"]["k39999"]["$"], "v");

    let mut xml = String::from("<doc><user");
    for i in 0..80_000 {
        xml.push_str(&format!(" a{i}=\"v\""));
    }
    xml.push_str(">acme@sandbox</user></doc>");
    let xml: &'static [u8] = Box::leak(xml.into_bytes().into_boxed_slice());
    let (env, _up) = gateway_answering(xml);
    let d = doc(&env.acme("func=whoami"), Format::Xml);
    assert_eq!(d.find("user").unwrap().attrs.len(), 80_000);
}

//! Unit tests of documents: rendering in every format, reading back, hostile text.

use super::*;
use crate::billmgr::{BmError, ErrorType};

fn hostile() -> &'static str {
    "a<b>&\"q\" 'x'\u{1}\u{7}\ttab\nline é й 🙂"
}

fn sample() -> Element {
    Element::doc()
        .child(
            Element::new("elem")
                .child(Element::leaf("id", "1"))
                .child(Element::leaf("CN", "a.com")),
        )
        .child(
            Element::new("elem")
                .child(Element::leaf("id", "2"))
                .child(Element::leaf("CN", "b.com")),
        )
        .child(Element::new("p_num").text("1"))
}

#[test]
fn xml_list() {
    assert_eq!(
        String::from_utf8(render(&sample(), Format::Xml)).unwrap(),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<doc><elem><id>1</id><CN>a.com</CN></elem><elem><id>2</id><CN>b.com</CN></elem><p_num>1</p_num></doc>\n"
    );
}

#[test]
fn xml_escapes_hostile_values_and_stays_parseable() {
    let doc = Element::doc().child(Element::leaf("v", hostile()).attr("a", hostile()));
    let out = String::from_utf8(render(&doc, Format::Xml)).unwrap();
    assert_eq!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<doc><v a=\"a&lt;b&gt;&amp;&quot;q&quot; &apos;x&apos;\u{FFFD}\u{FFFD}&#9;tab&#10;line é й 🙂\">a&lt;b&gt;&amp;\"q\" 'x'\u{FFFD}\u{FFFD}\ttab\nline é й 🙂</v></doc>\n"
    );
    let back = parse(out.as_bytes(), Format::Xml).unwrap();
    let v = back.find("v").unwrap();
    assert_eq!(
        v.text.as_deref(),
        Some("a<b>&\"q\" 'x'\u{FFFD}\u{FFFD}\ttab\nline é й 🙂")
    );
    assert_eq!(v.get_attr("a"), v.text.as_deref());
}

#[test]
fn json_shape() {
    let doc = Element::doc().child(
        Element::new("auth")
            .attr("id", "S1")
            .attr("level", "16")
            .text("S1"),
    );
    assert_eq!(
        String::from_utf8(render(&doc, Format::Json)).unwrap(),
        r#"{"doc":{"auth":{"$id":"S1","$level":"16","$":"S1"}}}"#
    );
    assert_eq!(
        String::from_utf8(render(&sample(), Format::Sjson)).unwrap(),
        r#"{"doc":{"elem":[{"id":{"$":"1"},"CN":{"$":"a.com"}},{"id":{"$":"2"},"CN":{"$":"b.com"}}],"p_num":{"$":"1"}}}"#
    );
}

#[test]
fn json_escapes_hostile_values() {
    let doc = Element::doc().child(Element::leaf("v", hostile()));
    let out = String::from_utf8(render(&doc, Format::Json)).unwrap();
    assert_eq!(
        out,
        "{\"doc\":{\"v\":{\"$\":\"a<b>&\\\"q\\\" 'x'\\u0001\\u0007\\ttab\\nline é й 🙂\"}}}"
    );
    assert_eq!(parse(out.as_bytes(), Format::Json).unwrap(), doc);
}

#[test]
fn bjson_shape() {
    let ok = Element::doc()
        .child(Element::new("ok"))
        .child(Element::leaf("id", "5001"));
    assert_eq!(
        String::from_utf8(render(&ok, Format::Bjson)).unwrap(),
        r#"{"ok":true,"id":"5001"}"#
    );
    assert_eq!(
        String::from_utf8(render(&sample(), Format::Bjson)).unwrap(),
        r#"{"elem":[{"id":"1","CN":"a.com"},{"id":"2","CN":"b.com"}],"p_num":"1"}"#
    );
}

#[test]
fn errors_in_every_format() {
    let e = BmError::invalid("elid", "12<3").to_doc("en");
    assert_eq!(
        String::from_utf8(render(&e, Format::Xml)).unwrap(),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<doc><error type=\"value\" object=\"elid\" lang=\"en\"><param name=\"object\" type=\"msg\" msg=\"elid\">elid</param><param name=\"value\">12&lt;3</param><msg>The value of the &apos;elid&apos; field is invalid</msg></error></doc>\n".replace("&apos;elid&apos; field", "'elid' field")
    );
    assert_eq!(
        String::from_utf8(render(&e, Format::Json)).unwrap(),
        r#"{"doc":{"error":{"$type":"value","$object":"elid","$lang":"en","param":[{"$name":"object","$type":"msg","$msg":"elid","$":"elid"},{"$name":"value","$":"12<3"}],"msg":{"$":"The value of the 'elid' field is invalid"}}}}"#
    );
    let bjson: Value = serde_json::from_slice(&render(&e, Format::Bjson)).unwrap();
    assert_eq!(bjson["error"]["type"], "value");
    assert_eq!(bjson["error"]["object"], "elid");
    assert_eq!(
        bjson["error"]["msg"],
        "The value of the 'elid' field is invalid"
    );
    assert_eq!(
        String::from_utf8(render(&e, Format::Text)).unwrap(),
        "ERROR value(elid): The value of the 'elid' field is invalid\n"
    );
    for f in [Format::Xml, Format::Json, Format::Sjson, Format::Bjson] {
        let back = parse(&render(&e, f), f).unwrap();
        let err = BmError::from_doc(&back).unwrap();
        assert_eq!(
            (err.kind, err.object.as_deref()),
            (ErrorType::Value, Some("elid")),
            "{f:?}"
        );
        assert_eq!(err.value.as_deref(), Some("12<3"), "{f:?}");
    }
}

#[test]
fn text_format() {
    let doc = Element::doc()
        .child(Element::new("ok"))
        .child(Element::leaf("id", "7\nx\\y"));
    assert_eq!(
        String::from_utf8(render(&doc, Format::Text)).unwrap(),
        "ok\nid=7\\nx\\\\y\n"
    );
    assert_eq!(
        String::from_utf8(render(&sample(), Format::Text)).unwrap(),
        "id=1 CN=a.com\nid=2 CN=b.com\np_num=1\n"
    );
}

#[test]
fn parses_upstream_xml_with_layout_and_entities() {
    let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<doc>
  <pricelist><id>277</id><name>Comodo &amp; Co</name>
<price currency="EUR"><period cost="913.9286" type="month" length="12"/></price>
  </pricelist>
</doc>"#;
    let d = parse(xml, Format::Xml).unwrap();
    let p = d.find("pricelist").unwrap();
    assert_eq!(p.text, None);
    assert_eq!(p.child_text("name"), Some("Comodo & Co"));
    let period = p.find("price").unwrap().find("period").unwrap();
    assert_eq!(period.get_attr("cost"), Some("913.9286"));
}

#[test]
fn garbage_is_refused() {
    assert!(parse(b"<html><body>502</body>", Format::Xml).is_err());
    assert!(parse(b"", Format::Xml).is_err());
    assert!(parse(b"\x00\xff\xfe", Format::Xml).is_err());
    assert!(parse(b"<doc/><doc/>", Format::Xml).is_err());
    assert!(parse(b"<!DOCTYPE x [<!ENTITY a 'b'>]><doc>&a;</doc>", Format::Xml).is_err());
    assert!(parse(b"{\"doc\":", Format::Json).is_err());
    assert!(parse(b"[1]", Format::Bjson).is_err());
    let deep = "<a>".repeat(100) + &"</a>".repeat(100);
    assert_eq!(
        parse(deep.as_bytes(), Format::Xml),
        Err(DocError::TooDeep(MAX_DEPTH))
    );
}
